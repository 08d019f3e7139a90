"""Through the optimizer classes: flowoptim.<Algo>(..., backend="triton") against "reference".

Mixed sizes and two dtypes in one group (two partitions), a param whose grad is None, clip_grad in
place and fused, a scheduler-like lr change, and LAMB's norm_reduce hook.
"""

from __future__ import annotations

import math

import pytest
import torch
from triton_helpers import DEVICE, TOL

import flowoptim as fo
from flowoptim_triton.backend import TritonBackend

MAKERS = {
    "sgd": lambda ps, b: fo.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01,
                                backend=b),
    "sgd-nesterov": lambda ps, b: fo.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, backend=b),
    "adam": lambda ps, b: fo.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True, backend=b),
    "adamw": lambda ps, b: fo.AdamW(ps, lr=0.01, weight_decay=0.1, backend=b),
    "lamb": lambda ps, b: fo.LAMB(ps, lr=0.01, weight_decay=0.1, backend=b),
    "lamb-l2-amsgrad": lambda ps, b: fo.LAMB(ps, lr=0.01, weight_decay=0.1, adam_w_mode=False,
                                             amsgrad=True, backend=b),
    "rmsprop": lambda ps, b: fo.RMSprop(ps, lr=0.01, momentum=0.5, centered=True, backend=b),
    "adagrad": lambda ps, b: fo.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1,
                                        backend=b),
    "adadelta": lambda ps, b: fo.Adadelta(ps, lr=1.0, weight_decay=0.01, backend=b),
}  # fmt: skip

SHAPES = [((7,), torch.float32), ((33, 40), torch.float32), ((1,), torch.bfloat16),
          ((1025,), torch.bfloat16), ((5,), torch.float32), ((0,), torch.float32)]  # fmt: skip


def make_params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dt).to(DEVICE).requires_grad_()
        for s, dt in SHAPES
    ]


def set_grads(params, seed):
    gen = torch.Generator().manual_seed(1000 + seed)
    for i, p in enumerate(params):
        g = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype).to(DEVICE)
        p.grad = None if i == 4 else g  # param 4 never gets a gradient


def run(name, backend, clip=None, steps=3):
    params = make_params()
    groups = [{"params": params}]
    if clip is not None:
        groups[0]["clip_grad_max_norm"] = 0.5
        groups[0]["clip_grad_norm_type"] = clip[0]
    opt = MAKERS[name](groups, backend)
    for step in range(steps):
        set_grads(params, step)
        if clip is not None:
            opt.clip_grad(fused=clip[1])
        opt.step()
        for group in opt.param_groups:
            group["lr"] *= 0.7  # a scheduler
    return params, opt


def compare(ours, ref):
    for a, e in zip(ours, ref, strict=True):
        rtol, atol = TOL[e.dtype]
        torch.testing.assert_close(a.detach(), e.detach(), rtol=rtol * 5, atol=atol * 5)


@pytest.mark.parametrize("name", list(MAKERS))
def test_against_reference(name):
    ours, opt = run(name, "triton")
    ref, _ = run(name, "reference")
    compare(ours, ref)
    assert ours[4].equal(ref[4])  # grad None: untouched
    assert opt.state.get(ours[4]) in (None, {})
    assert isinstance(opt._backend_for(ours[0].device), TritonBackend)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0])
@pytest.mark.parametrize("name", ["adam", "lamb", "sgd"])
def test_clip_grad(name, norm_type, fused):
    ours, _ = run(name, "triton", clip=(norm_type, fused))
    ref, _ = run(name, "reference", clip=(norm_type, fused))
    compare(ours, ref)
    for a, e in zip(ours, ref, strict=True):
        if e.grad is not None:
            rtol, atol = TOL[e.dtype]
            torch.testing.assert_close(a.grad, e.grad, rtol=rtol, atol=atol)


def test_fused_clip_leaves_grads_unscaled_and_matches_in_place():
    params_a = make_params()
    params_b = make_params()
    opts = []
    for ps in (params_a, params_b):
        opts.append(fo.Adam([{"params": ps, "clip_grad_max_norm": 0.1}], lr=0.01,
                            backend="triton"))  # fmt: skip
    set_grads(params_a, 0)
    set_grads(params_b, 0)
    grads_before = [None if p.grad is None else p.grad.clone() for p in params_a]
    totals_a = opts[0].clip_grad(fused=True)
    totals_b = opts[1].clip_grad()
    assert torch.equal(totals_a[0], totals_b[0])
    for p, g0 in zip(params_a, grads_before, strict=True):
        if g0 is not None:
            assert torch.equal(p.grad, g0)  # fused: unscaled
    opts[0].step()
    opts[1].step()
    for a, b in zip(params_a, params_b, strict=True):
        assert torch.equal(a, b)  # bit for bit (Note [grad_scale])


def test_lamb_norm_reduce_hook():
    """The hook sees (2, n) sums of squares; scaling them changes the trust ratios exactly as in
    the reference backend."""
    from flowoptim.backends.reference import ReferenceBackend

    calls = []

    def hook(sums):
        calls.append(tuple(sums.shape))
        sums.mul_(4.0)  # as if 4 ranks held identical shards

    results = []
    for b in (TritonBackend(), ReferenceBackend()):
        gen = torch.Generator().manual_seed(0)
        ps = [torch.randn(n, generator=gen).to(DEVICE) for n in (7, 0, 3000)]
        gs = [torch.randn(n, generator=gen).to(DEVICE) for n in (7, 0, 3000)]
        ms, vs = [torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps]
        b.lamb(ps, gs, ms, vs, None, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.1, adam_w_mode=False, amsgrad=False, do_bias_correction=True,
               maximize=False, grad_scale=None, norm_reduce=hook)  # fmt: skip
        results.append(ps)
    assert calls == [(2, 3), (2, 3)]
    compare(results[0], results[1])


def test_registered_and_chosen_by_name():
    assert "triton" in fo.backends.available()
    assert isinstance(fo.backends.get("triton"), TritonBackend)
