"""clip_grad(fused=True) gives exactly the numbers of clip_grad() then step() (spec §3), for a
group mixing a 0-d float32 param, a float64 param, a non-contiguous gradient and an fp16 param.

Before issue 10 such a group raised ``RuntimeError: expected scalar type Float but found Double``
in the fused mode, after earlier groups had been updated. The optimizer passes the coefficient
as a 0-d tensor of each partition's compute dtype (Note [grad_scale]); the backends must apply
it with the same rounding in ``scale_`` and in ``grad_scale``.
"""

from __future__ import annotations

import pytest
import torch

import flowoptim as fo

MAKERS = {
    "sgd-momentum": lambda groups: fo.SGD(groups, lr=0.1, momentum=0.9),
    "adam": lambda groups: fo.Adam(groups, lr=0.05),
    "rmsprop": lambda groups: fo.RMSprop(groups, lr=0.01),
}


def _params():
    gen = torch.Generator().manual_seed(3)
    return [
        torch.randn((), generator=gen).requires_grad_(),  # 0-d float32
        torch.randn(5, generator=gen, dtype=torch.float64).requires_grad_(),
        torch.randn(3, 4, generator=gen).requires_grad_(),  # gets a transposed gradient
        torch.randn(6, generator=gen).half().requires_grad_(),
        torch.randn(2, 3, generator=gen).requires_grad_(),  # gets a sliced gradient
    ]


def _grads(step: int):
    gen = torch.Generator().manual_seed(100 + step)
    return [
        torch.randn((), generator=gen) * 3,
        torch.randn(5, generator=gen, dtype=torch.float64) * 3,
        (torch.randn(4, 3, generator=gen) * 3).t(),  # non-contiguous
        (torch.randn(6, generator=gen) * 3).half(),
        (torch.randn(2, 6, generator=gen) * 3)[:, ::2],  # non-contiguous
    ]


def _build(name):
    params = _params()
    # a first, plain group so that a failure in the mixed group shows a half-applied step
    head = torch.ones(2, requires_grad=True)
    opt = MAKERS[name]([{"params": [head]}, {"params": params, "clip_grad_max_norm": 0.5}])
    return opt, [head, *params]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_fused_clip_is_bit_identical_to_in_place_clip(name):
    inplace_opt, inplace_params = _build(name)
    fused_opt, fused_params = _build(name)
    for s in range(3):
        for params in (inplace_params, fused_params):
            params[0].grad = torch.full((2,), 0.25)
            for p, g in zip(params[1:], _grads(s)):  # fresh tensors for each optimizer
                p.grad = g
        assert not fused_params[3].grad.is_contiguous()
        assert not fused_params[5].grad.is_contiguous()
        raw = [p.grad.clone() for p in fused_params]
        totals_inplace = inplace_opt.clip_grad()
        totals_fused = fused_opt.clip_grad(fused=True)
        assert all(torch.equal(a, b) for a, b in zip(totals_inplace, totals_fused))
        inplace_opt.step()
        fused_opt.step()
        for p, g in zip(fused_params, raw):
            assert torch.equal(p.grad, g)  # the fused mode leaves the grads unscaled
        for i, (a, b) in enumerate(zip(inplace_params, fused_params)):
            assert a.dtype == b.dtype and torch.equal(a.detach(), b.detach()), (s, i, a, b)
            sa, sb = inplace_opt.state[a], fused_opt.state[b]
            assert set(sa) == set(sb)
            for key in sa:
                assert torch.equal(sa[key], sb[key]), (s, i, key)
