"""Note [layouts]: non-contiguous params are handled (same numbers as the reference)."""

from __future__ import annotations

import torch
from triton_helpers import DEVICE

from flowoptim.backends.reference import ReferenceBackend
from flowoptim_triton.backend import TritonBackend


def adam(b, ps, gs, ms, vs):
    b.adam(ps, gs, ms, vs, None, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.1, decoupled_weight_decay=False, amsgrad=False,
           do_bias_correction=True, maximize=False, grad_scale=None)  # fmt: skip


def test_transposed_strided_and_channels_last():
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(40, 60, generator=gen).to(DEVICE)
    cl = torch.randn(2, 3, 5, 7, generator=gen).to(DEVICE).to(memory_format=torch.channels_last)
    params = [base.t(), base[:, ::3], cl]  # dense permuted, not dense, channels-last
    params = [p.clone(memory_format=torch.preserve_format) if i != 1 else base.clone()[:, ::3]
              for i, p in enumerate(params)]  # fmt: skip
    grads = [torch.randn(p.shape, generator=gen).to(DEVICE) for p in params]  # contiguous grads
    ms = [torch.zeros_like(p) for p in params]
    vs = [torch.zeros_like(p) for p in params]
    # the expected numbers from contiguous copies: the reference backend's fused CPU path gives
    # wrong numbers when a param and its grad have different strides (reported to the lead)
    ref = [p.contiguous() for p in params]
    rm, rv = [torch.zeros_like(p) for p in ref], [torch.zeros_like(p) for p in ref]
    assert not params[0].is_contiguous() and not params[2].is_contiguous()
    strides = [p.stride() for p in params]
    adam(TritonBackend(), params, grads, ms, vs)
    adam(ReferenceBackend(), ref, [g.contiguous() for g in grads], rm, rv)
    for a, e in zip(params + ms + vs, ref + rm + rv, strict=True):
        torch.testing.assert_close(a, e, rtol=2e-6, atol=2e-7)
    assert [p.stride() for p in params] == strides


def test_stage_fast_path_only_when_every_operand_is_contiguous():
    from flowoptim_triton import launch as L

    ps = [torch.randn(3, 4, device=DEVICE), torch.randn(5, device=DEVICE)]
    gs = [torch.randn(3, 4, device=DEVICE), torch.randn(5, device=DEVICE)]
    out, writeback = L.stage([ps, gs], [True, False])
    assert writeback == []  # nothing staged: the launch uses the tensors themselves
    assert all(a is b for o, e in zip(out, [ps, gs]) for a, b in zip(o, e, strict=True))
    # one transposed grad of a contiguous param: that grad alone is staged (read-only: no
    # write-back), the other operands are used as they are
    g_t = torch.randn(4, 3, device=DEVICE).t()
    out, writeback = L.stage([ps, [g_t, gs[1]]], [True, False])
    assert writeback == [] and out[0][0] is ps[0] and out[1][1] is gs[1]
    assert out[1][0] is not g_t and out[1][0].is_contiguous() and torch.equal(out[1][0], g_t)
