"""Exact values (issue 10): float64 derived quantities (spec §1.10) to 1e-12 against an
independent numpy implementation of spec §2, no fused multiply-add in centered RMSprop,
degenerate hyperparameters (Note [degenerate hyperparameters]), wd == 0 with inf/NaN params
(spec §1.6), fused clip bit-identical to scale_ then step (Note [grad_scale]), and the kernel
scalars (Note [kernel scalars]): float64 for float64 partitions, no recompile for a new lr."""

from __future__ import annotations

import math

import numpy as np
import pytest
import spec_numpy
import torch
from triton_helpers import (
    DEVICE,
    INTERPRET,
    OPTIONS,
    call,
    call_defaults,
    clone_all,
    make_states,
    randn,
)

import flowoptim as fo
from flowoptim_triton import kernels
from flowoptim_triton.backend import TritonBackend

#: the float64 tolerance of the conformance suite (spec §1.10)
RTOL64 = ATOL64 = 1e-12
CASES = [(algo, i) for algo, opts in OPTIONS.items() for i in range(len(opts))]
#: worst relative float64 error seen per case (printed with -s; the report quotes it)
WORST: dict[str, float] = {}


def _np(t):
    return t.detach().cpu().numpy().copy()


def run_spec_and_triton(algo, opts, sizes, dtype, steps, grad_scale=None, seed=0):
    """``steps`` steps (lr changing like a scheduler) of the triton backend and of spec_numpy
    from the same start; returns ``[(actual, expected)]`` for every param and state tensor."""
    b = TritonBackend()
    params = [randn(n, dtype, seed=seed + i) for i, n in enumerate(sizes)]
    states = make_states(algo, opts, params)
    np_p = [_np(p) for p in params]
    np_s = [None if s is None else [_np(x) for x in s] for s in states]
    full = dict(call_defaults(algo, 1), **opts)
    for t in range(1, steps + 1):
        grads = [randn(n, dtype, seed=seed + 100 * t + i) for i, n in enumerate(sizes)]
        lr = 1e-2 * 0.7 ** (t - 1)
        gs = None
        if grad_scale is not None:
            gs = torch.tensor(grad_scale, dtype=_ct(dtype), device=DEVICE)
        call(b, algo, opts, params, grads, states, step=t, lr=lr, grad_scale=gs)
        for i in range(len(sizes)):
            st = [None if s is None else s[i] for s in np_s]
            gsv = None if gs is None else gs.item()
            spec_numpy.step(algo, full, np_p[i], _np(grads[i]), st, t=t, lr=lr, grad_scale=gsv)
    out = [(p, e) for p, e in zip(params, np_p, strict=True)]
    for s, e in zip(states, np_s, strict=True):
        if s is not None:
            out += list(zip(s, e, strict=True))
    return out


def _ct(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _worst_rel(pairs):
    worst = 0.0
    for a, e in pairs:
        a = _np(a)
        big = np.abs(e) > 1e-300
        if big.any():
            worst = max(worst, float(np.max(np.abs(a[big] - e[big]) / np.abs(e[big]))))
    return worst


# ----------------------------------------------------------------------------- float64 (§1.10)
@pytest.mark.parametrize("algo,idx", CASES)
def test_float64_matches_spec_to_1e12(algo, idx):
    """Every option set, float64, three steps with a changing lr, two tensors (one crossing a
    chunk boundary): params and state within rtol = atol = 1e-12 of spec §2 in float64 with
    §1.10's rounding; maximize and a float64 grad_scale on alternate cases."""
    opts = dict(OPTIONS[algo][idx])
    if algo != "sgd":
        opts["maximize"] = idx % 2 == 1
    gs = 0.8125 + 1e-9 if idx % 2 == 0 else None  # a float64 coefficient, not a float32 one
    pairs = run_spec_and_triton(algo, opts, [7, 2100], torch.float64, steps=3, grad_scale=gs)
    for a, e in pairs:
        np.testing.assert_allclose(_np(a), e, rtol=RTOL64, atol=ATOL64)
    WORST[f"{algo}[{idx}]"] = _worst_rel(pairs)


def test_float64_check_is_sensitive_to_float32_derived_values():
    """The 1e-12 check above would catch float32-rounded derived quantities (f32(lr/bc1),
    f32(sqrt(bc2)) ...): they move float64 results by far more than 1e-12."""
    rng = np.random.default_rng(0)
    p0, g = rng.standard_normal(50), rng.standard_normal(50)
    # (rmsprop/adadelta/dampening at 0.9: 1 - f32(0.9) is exact in float32, so only small
    # alpha/rho/dampening values would show a difference there)
    for algo, opts in (("adam", OPTIONS["adam"][2]), ("adagrad", OPTIONS["adagrad"][1])):
        full = dict(call_defaults(algo, 3), **opts)
        res = []
        for f32_derived in (False, True):
            p = p0.copy()
            st = [np.zeros(50), np.zeros(50), None] if algo == "adam" else [np.zeros(50)]
            spec_numpy.step(algo, full, p, g, st, t=3, lr=0.1, f32_derived=f32_derived)
            res.append(p)
        assert np.max(np.abs(res[1] - res[0]) / np.abs(res[0])) > 1e-10, algo


def test_float64_scalars_are_float64():
    """Note [kernel scalars]: the scal tensor of a float64 partition holds lr/bc1, sqrt(bc2),
    lr*wd ... as doubles (not float32 values); a float32 partition's holds float32 values."""
    seen = []
    b = TritonBackend()
    orig = b.engine.scalars

    def spy(values, dtype, device):
        seen.append((list(values), dtype))
        return orig(values, dtype, device)

    b.engine.scalars = spy
    names = kernels.ADAM_SCALARS
    for dtype in (torch.float64, torch.float32):
        p = torch.ones(3, dtype=dtype, device=DEVICE)
        z = [torch.zeros(3, dtype=dtype, device=DEVICE) for _ in range(3)]
        b.adam([p], [z[0]], [z[1]], [z[2]], None, step=3, lr=0.1, beta1=0.9, beta2=0.999,
               eps=1e-8, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=False,
               do_bias_correction=True, maximize=False, grad_scale=None)  # fmt: skip
    (v64, dt64), (v32, dt32) = seen
    assert dt64 == torch.float64 and dt32 == torch.float32
    s64, s32 = dict(zip(names, v64, strict=True)), dict(zip(names, v32, strict=True))
    lr32, bc1 = spec_numpy.f32(0.1), spec_numpy.f32(1 - 0.9**3)
    bc2 = spec_numpy.f32(1 - 0.999**3)
    assert s64["step_size"] == lr32 / bc1 != spec_numpy.f32(lr32 / bc1)
    assert s64["sqrt_bc2"] == math.sqrt(bc2)
    assert s64["lr_wd"] == lr32 * spec_numpy.f32(0.1)
    assert s64["one_minus_beta2"] == 1.0 - spec_numpy.f32(0.999)
    assert s64["bc1"] == bc1 and s64["beta1"] == spec_numpy.f32(0.9)  # these stay float32
    for k in names:
        assert s32[k] == spec_numpy.f32(s32[k]), k


def test_lr_change_reuses_kernel_and_scalar_cache():
    """A scheduler changing lr: new scalar values (a new scal tensor), never a new kernel
    signature; repeating values reuse the scal tensor (no upload). Natively, also checks that
    the kernel cache does not grow."""
    b = TritonBackend()
    p = randn(100, torch.float32, seed=1)
    g = randn(100, torch.float32, seed=2)
    st = make_states("adam", OPTIONS["adam"][0], [p])
    opts = OPTIONS["adam"][0]
    call(b, "adam", opts, [p], [g], st, step=1, lr=0.1)
    n_compiled = _compiled(kernels.adam_kernel)
    uploads = b.engine.scalar_uploads
    for i, lr in enumerate((0.05, 0.025, 0.0125)):
        call(b, "adam", opts, [p], [g], st, step=1, lr=lr)
        assert b.engine.scalar_uploads == uploads + i + 1
    call(b, "adam", opts, [p], [g], st, step=1, lr=0.0125)  # same values: cached
    assert b.engine.scalar_uploads == uploads + 3
    assert _compiled(kernels.adam_kernel) == n_compiled


def _compiled(kernel):
    """Number of compiled variants of a jit kernel (0 under the interpreter)."""
    caches = getattr(kernel, "device_caches", None)
    if not caches:
        return 0
    return sum(len(c[0]) for c in caches.values())


def test_no_float_kernel_arguments():
    """Every hyperparameter of an update kernel reaches it through ``scal`` (a float argument
    would be typed fp32 by Triton: Note [kernel scalars])."""
    hyper = {"lr", "momentum", "wd", "beta1", "beta2", "eps", "alpha", "rho", "clr", "step_size"}
    for name in ("sgd_kernel", "adam_kernel", "lamb_pass1_kernel", "lamb_pass2_kernel",
                 "lamb_norms_kernel", "lamb_trust_kernel", "rmsprop_kernel", "adagrad_kernel",
                 "adadelta_kernel"):  # fmt: skip
        args = getattr(kernels, name).arg_names
        assert "scal" in args and not hyper & set(args), name


# ----------------------------------------------------------------------------- RMSprop, no FMA
def test_centered_rmsprop_alpha0_no_fma():
    """spec §2: den = r - a*a with a*a rounded first, so alpha = 0 gives den = 0 exactly and
    p = -lr * g / sqrt(eps). The expected values are computed independently in float64."""
    p = torch.zeros(3, device=DEVICE, requires_grad=True)
    opt = fo.RMSprop([p], lr=0.1, alpha=0, eps=1e-8, centered=True, backend="triton")
    g = [0.1257302, -0.1321049, 0.6404226]
    p.grad = torch.tensor(g, device=DEVICE)
    opt.step()
    g32 = np.array(g, dtype=np.float32).astype(np.float64)
    expected = -np.float64(np.float32(0.1)) * g32 / np.sqrt(np.float64(np.float32(1e-8)))
    np.testing.assert_allclose(_np(p), expected, rtol=1e-6)
    np.testing.assert_allclose(_np(p), [-125.73, 132.10, -640.42], atol=0.01)
    st = opt.state[p]
    assert torch.equal(st["square_avg"], st["grad_avg"] * st["grad_avg"])  # den is 0


# ----------------------------------------------------------------------------- degenerate values
ADAMISH = [
    ("adam", dict(decoupled_weight_decay=False, amsgrad=False, weight_decay=0.1)),
    ("adam", dict(decoupled_weight_decay=True, amsgrad=True, weight_decay=0.1)),
    ("lamb", dict(adam_w_mode=True, amsgrad=False, weight_decay=0.1)),
    ("lamb", dict(adam_w_mode=False, amsgrad=True, weight_decay=0.1)),
]


@pytest.mark.parametrize("betas", [(0.9, 0.99999999), (0.99999999, 0.9)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("algo,opts", ADAMISH)
def test_betas_rounding_to_one(algo, opts, bias, betas):
    """f32(beta) == 1: 1 - beta == 0 keeps the moment, the bias corrections come from the
    double beta and stay nonzero: finite numbers equal to the spec's (float32 numpy)."""
    opts = dict(opts, do_bias_correction=bias, beta1=betas[0], beta2=betas[1], maximize=False)
    pairs = run_spec_and_triton(algo, opts, [5, 40], torch.float32, steps=3)
    for a, e in pairs:
        assert torch.isfinite(a).all()
        np.testing.assert_allclose(_np(a), e, rtol=2e-6, atol=1e-7)
    if betas[0] == 0.99999999:
        m = pairs[2][0]  # exp_avg of the first param: never moves
        assert torch.equal(m, torch.zeros_like(m))


@pytest.mark.parametrize("algo,opts", ADAMISH[1:3])
def test_beta1_one_only_decay_moves_p(algo, opts):
    """AdamW / LAMB(adam_w_mode) with f32(beta1) == 1: m stays 0, so only the decay changes p."""
    b = TritonBackend()
    opts = dict(opts, do_bias_correction=True, beta1=0.99999999, beta2=0.999, maximize=False)
    p = randn(6, torch.float32, seed=4)
    p0 = p.clone()
    st = make_states(algo, opts, [p])
    call(b, algo, opts, [p], [randn(6, torch.float32, seed=5)], st, step=1, lr=0.1)
    lr, wd = np.float32(0.1), np.float32(0.1)
    np.testing.assert_allclose(_np(p), _np(p0) - (lr * wd) * _np(p0), rtol=1e-6)


def test_sgd_momentum_rounding_to_zero_keeps_buffer():
    """momentum = 1e-46 > 0 rounds to 0: the buffer is 0*buf + (1 - dampening)*g'."""
    b = TritonBackend()
    p = torch.ones(4, device=DEVICE)
    buf = torch.full((4,), 7.0, device=DEVICE)
    g = torch.tensor([0.5, -1.0, 2.0, 0.0], device=DEVICE)
    for _ in range(2):
        b.sgd([p], [g], [buf], lr=0.1, momentum=1e-46, dampening=0.25, weight_decay=0.0,
              nesterov=False, maximize=False, grad_scale=None)  # fmt: skip
    torch.testing.assert_close(buf, 0.75 * g, rtol=0, atol=0)
    torch.testing.assert_close(p, 1 - 2 * np.float32(0.1) * (0.75 * g), rtol=1e-6, atol=0)
    # and through the class, which decides from the Python value that a buffer exists
    q = torch.ones(4, device=DEVICE, requires_grad=True)
    opt = fo.SGD([q], lr=0.1, momentum=1e-46, backend="triton")
    q.grad = g.clone()
    opt.step()
    opt.step()
    assert torch.equal(opt.state[q]["momentum_buffer"], g)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_no_bias_correction_huge_grad_stays_finite(decoupled):
    """lr 1.9, no bias correction, grads [1e38, .5, -.5] then [.5, .5, .5] from zeros(3):
    (lr/bc1)*m is formed before the division by the (infinite) denominator, so p[0] stays
    finite, and every value is the spec's."""
    opts = dict(decoupled_weight_decay=decoupled, amsgrad=False, do_bias_correction=False,
                weight_decay=0.0, maximize=False)  # fmt: skip
    b = TritonBackend()
    p = torch.zeros(3, device=DEVICE)
    st = make_states("adam", opts, [p])
    np_p, np_st = _np(p), [_np(st[0][0]), _np(st[1][0]), None]
    full = dict(call_defaults("adam", 1), **opts)
    for t, g in enumerate(([1e38, 0.5, -0.5], [0.5, 0.5, 0.5]), start=1):
        gt = torch.tensor(g, device=DEVICE)
        call(b, "adam", opts, [p], [gt], st, step=t, lr=1.9)
        spec_numpy.step("adam", full, np_p, _np(gt), np_st, t=t, lr=1.9)
    assert torch.isfinite(p).all()
    np.testing.assert_allclose(_np(p), np_p, rtol=1e-6)


# ----------------------------------------------------------------------------- wd == 0, inf/NaN p
@pytest.mark.parametrize("algo,idx", CASES)
def test_wd_zero_adds_nothing_for_inf_nan_params(algo, idx):
    """spec §1.6 in every kernel: with weight_decay 0, an inf or NaN element of p changes
    nothing else (state stays finite; the other elements get their usual update)."""
    opts = dict(OPTIONS[algo][idx], weight_decay=0.0)
    b = TritonBackend()
    bad = randn(8, torch.float32, seed=1)
    bad[2], bad[5] = float("inf"), float("nan")
    other = randn(8, torch.float32, seed=2)  # LAMB: its own tensor, its own trust ratio
    ref_p = [randn(8, torch.float32, seed=1), other.clone()]
    ps = [bad, other]
    st, ref_st = make_states(algo, opts, ps), make_states(algo, opts, ref_p)
    for t in (1, 2):
        grads = [randn(8, torch.float32, seed=10 * t + i) for i in range(2)]
        call(b, algo, opts, ps, grads, st, step=t, lr=0.1)
        call(b, algo, opts, ref_p, [g.clone() for g in grads], ref_st, step=t, lr=0.1)
    for s in st:
        if s is not None:
            for x in s:
                assert torch.isfinite(x).all(), f"{algo} {opts}: state became non-finite"
    keep = torch.ones(8, dtype=torch.bool)
    keep[2] = keep[5] = False
    assert bad[2].item() == float("inf") or algo == "lamb"
    assert math.isnan(bad[5].item())
    if algo != "lamb":  # LAMB's ||p|| of that tensor is inf/NaN by the spec's formula
        assert torch.equal(bad[keep], ref_p[0][keep])
    assert torch.equal(ps[1], ref_p[1])


# ----------------------------------------------------------------------------- fused clip
def _fused_vs_inplace(algo, opts, params, grads, coef):
    b = TritonBackend()
    p1, p2 = [p.clone() for p in params], [p.clone() for p in params]
    g1, g2 = [g.clone() for g in grads], [g.clone() for g in grads]
    s1 = make_states(algo, opts, p1)
    s2 = clone_all(s1)
    call(b, algo, opts, p1, g1, s1, step=1, lr=0.1, grad_scale=coef)
    b.scale_(g2, coef)
    call(b, algo, opts, p2, g2, s2, step=1, lr=0.1)
    for a, e in zip(p1, p2, strict=True):
        assert torch.equal(a, e), f"{algo} {opts}: fused clip differs from scale_ then step"
    for a, e in zip(s1, s2, strict=True):
        if a is not None:
            for x, y in zip(a, e, strict=True):
                assert torch.equal(x, y)
    for g, g0 in zip(g1, grads, strict=True):
        assert torch.equal(g, g0)  # fused mode leaves the grads alone


FUSED_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.parametrize("dtype", FUSED_DTYPES)
@pytest.mark.parametrize("algo", list(OPTIONS))
def test_fused_clip_bit_identical(algo, dtype):
    """Note [grad_scale]: 0-d params, a non-contiguous grad, every dtype (the coefficient in
    the compute dtype: float64 for float64), every algorithm."""
    opts = dict(OPTIONS[algo][-1], maximize=True)
    params = [randn(1, dtype, seed=1).reshape(()), randn(300, dtype, seed=2).reshape(20, 15)]
    big = randn(600, dtype, seed=3).reshape(20, 30)
    grads = [randn(1, dtype, seed=4).reshape(()), big[:, ::2]]  # non-contiguous
    assert not grads[1].is_contiguous()
    coef = torch.tensor(0.3 + 1e-10, dtype=_ct(dtype), device=DEVICE)
    _fused_vs_inplace(algo, opts, params, grads, coef)


# ----------------------------------------------------------------------------- native only
@pytest.mark.skipif(INTERPRET, reason="checks the compiled kernels' cache (CUDA only)")
def test_native_lr_schedule_compiles_once():
    b = TritonBackend()
    p = randn(5000, torch.float64, seed=1)
    st = make_states("adam", OPTIONS["adam"][2], [p])
    for t in range(1, 5):
        call(b, "adam", OPTIONS["adam"][2], [p], [randn(5000, torch.float64, seed=t)], st,
             step=t, lr=0.1 / t)  # fmt: skip
        if t == 1:
            n = _compiled(kernels.adam_kernel)
    assert _compiled(kernels.adam_kernel) == n
    torch.cuda.synchronize()
