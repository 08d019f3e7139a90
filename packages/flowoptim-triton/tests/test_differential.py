"""Differential tests: the triton backend against the reference backend, functional by functional.

Sizes 1, 7, 1023, 1025 and 0 in one partition (several chunks per launch, partial tiles, an empty
tensor), three steps with a changing lr (a scheduler) and fresh gradients, every option set of
spec §2, and fp32/fp16/bf16/fp64 partitions; 65537 once per algorithm.
"""

from __future__ import annotations

import pytest
import torch
from triton_helpers import DEVICE, OPTIONS, assert_close, call, clone_all, make_states, randn

from flowoptim.backends.reference import ReferenceBackend
from flowoptim_triton.backend import TritonBackend

SIZES = [1, 7, 1023, 1025, 0]
CASES = [(algo, i) for algo, opts in OPTIONS.items() for i in range(len(opts))]


def run_both(algo, opts, sizes, dtype, steps=3, grad_scale=None, triton=None):
    triton = triton or TritonBackend()
    ref = ReferenceBackend()
    params = [randn(n, dtype, seed=i) for i, n in enumerate(sizes)]
    states = make_states(algo, opts, params)
    p_t, s_t = [p.clone() for p in params], clone_all(states)
    for step in range(1, steps + 1):
        grads = [randn(n, dtype, seed=100 * step + i) for i, n in enumerate(sizes)]
        g_before = [g.clone() for g in grads]
        lr = 1e-2 * 0.5 ** (step - 1)
        call(ref, algo, opts, params, [g.clone() for g in grads], states, step=step, lr=lr,
             grad_scale=grad_scale)  # fmt: skip
        call(triton, algo, opts, p_t, grads, s_t, step=step, lr=lr, grad_scale=grad_scale)
        for g, g0 in zip(grads, g_before, strict=True):
            assert torch.equal(g, g0), "a functional wrote into a gradient"
    for i, (a, e) in enumerate(zip(p_t, params, strict=True)):
        assert_close(a, e, dtype, msg=f"{algo} {opts} param {i} ({sizes[i]} elements)")
    for k, (sa, se) in enumerate(zip(s_t, states, strict=True)):
        if se is not None:
            for i, (a, e) in enumerate(zip(sa, se, strict=True)):
                assert_close(a, e, dtype, msg=f"{algo} {opts} state {k} of param {i}")
    return p_t, s_t


@pytest.mark.parametrize("algo,idx", CASES)
def test_fp32_all_options(algo, idx):
    run_both(algo, OPTIONS[algo][idx], SIZES, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("algo", list(OPTIONS))
def test_other_dtypes(algo, dtype):
    opts = OPTIONS[algo][-1]
    run_both(algo, opts, [7, 1025, 0], dtype)


@pytest.mark.parametrize("algo", [a for a in OPTIONS if a != "sgd"])
def test_maximize(algo):
    """Note [maximize]: -g after grad_scale, before weight decay; the grad is left unchanged."""
    coef = torch.tensor(0.37, dtype=torch.float32, device=DEVICE)
    opts = dict(OPTIONS[algo][1], maximize=True)
    run_both(algo, opts, [7, 1025], torch.float32, steps=2)
    run_both(algo, opts, [7], torch.float32, steps=2, grad_scale=coef)


@pytest.mark.parametrize("algo", list(OPTIONS))
def test_65537(algo):
    run_both(algo, OPTIONS[algo][1], [65537], torch.float32, steps=1)


@pytest.mark.parametrize("algo", list(OPTIONS))
def test_many_mixed_tensors(algo):
    sizes = [(i * 37) % 300 + (2500 if i % 7 == 0 else 0) for i in range(40)]
    run_both(algo, OPTIONS[algo][0], sizes, torch.float32, steps=2)


@pytest.mark.parametrize("algo", list(OPTIONS))
def test_grad_scale_matches_reference(algo):
    coef = torch.tensor(0.37, dtype=torch.float32, device=DEVICE)
    run_both(algo, OPTIONS[algo][1], [7, 1025], torch.float32, steps=2, grad_scale=coef)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("algo", ["adam", "lamb", "sgd"])
def test_grad_scale_equals_scaling_in_place(algo, dtype):
    """Fused clip: the update with grad_scale gives bit for bit what scale_ then step gives."""
    b = TritonBackend()
    opts = OPTIONS[algo][1]
    sizes = [5, 1030]
    params = [randn(n, dtype, seed=i) for i, n in enumerate(sizes)]
    grads = [randn(n, dtype, seed=10 + i) for i, n in enumerate(sizes)]
    states = make_states(algo, opts, params)
    p2, s2, g2 = [p.clone() for p in params], clone_all(states), [g.clone() for g in grads]
    coef = torch.tensor(0.3, device=DEVICE)
    call(b, algo, opts, params, grads, states, step=1, lr=0.1, grad_scale=coef)
    b.scale_(g2, coef)
    call(b, algo, opts, p2, g2, s2, step=1, lr=0.1)
    for a, e in zip(params, p2, strict=True):
        assert torch.equal(a, e)
    for g, g_scaled in zip(grads, g2, strict=True):
        assert not torch.equal(g, g_scaled)  # the fused mode leaves grads unscaled


def test_worked_values():
    """spec §8, float32."""
    b = TritonBackend()
    p, g = torch.ones(1, device=DEVICE), torch.ones(1, device=DEVICE)
    m, v = torch.zeros(1, device=DEVICE), torch.zeros(1, device=DEVICE)
    b.adam([p], [g], [m], [v], None, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False,
           do_bias_correction=True, maximize=False, grad_scale=None)  # fmt: skip
    assert p.item() == pytest.approx(0.8999993, abs=1e-7)
    p = torch.tensor([1.0, 2.0, 3.0], device=DEVICE)
    z = [torch.zeros(3, device=DEVICE) for _ in range(3)]
    b.lamb([p], [z[0]], [z[1]], [z[2]], None, step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
           weight_decay=0.5, adam_w_mode=True, amsgrad=False, do_bias_correction=True,
           maximize=False, grad_scale=None)  # fmt: skip
    torch.testing.assert_close(p, torch.tensor([0.95, 1.9, 2.85], device=DEVICE))
    p, s = torch.zeros(1, device=DEVICE), torch.zeros(1, device=DEVICE)
    g = torch.full((1,), 1e-3, device=DEVICE)
    b.adagrad([p], [g], [s], step=1, lr=1.0, lr_decay=0.0, weight_decay=0.0, eps=1e-4,
              maximize=False, grad_scale=None)  # fmt: skip
    assert p.item() == pytest.approx(-0.90909, abs=1e-5)
    p, s = torch.zeros(1, device=DEVICE), torch.zeros(1, device=DEVICE)
    b.rmsprop([p], [g], [s], None, None, lr=1.0, alpha=0.0, eps=1e-4, weight_decay=0.0,
              momentum=0.0, centered=False, maximize=False, grad_scale=None)  # fmt: skip
    assert p.item() == pytest.approx(-0.0995, abs=1e-4)
    p, g, buf = torch.ones(1, device=DEVICE), torch.ones(1, device=DEVICE), torch.zeros(1)
    buf = buf.to(DEVICE)
    for lr in (0.1, 0.01):
        b.sgd([p], [g], [buf], lr=lr, momentum=0.9, dampening=0.0, weight_decay=0.0,
              nesterov=False, maximize=False, grad_scale=None)  # fmt: skip
    assert p.item() == pytest.approx(0.881, abs=1e-6)


def test_wd_zero_keeps_infinite_params_finite_update():
    """wd == 0 must not turn an infinite p into nan through 0 * inf."""
    b = TritonBackend()
    p = torch.tensor([float("inf"), 1.0], device=DEVICE)
    g = torch.ones(2, device=DEVICE)
    b.sgd([p], [g], None, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
          nesterov=False, maximize=False, grad_scale=None)  # fmt: skip
    assert p[0].item() == float("inf")
