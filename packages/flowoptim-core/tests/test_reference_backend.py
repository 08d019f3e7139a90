"""The reference backend's two paths agree, and low precision uses float32 arithmetic."""

from __future__ import annotations

import pytest
import torch
from core_helpers import make_params, set_grads

import flowoptim as fo
from flowoptim.backends import reference

CASES = {
    "sgd": (fo.SGD, dict(lr=0.1)),
    "sgd-momentum-dampening-wd": (
        fo.SGD,
        dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.1),
    ),
    "sgd-nesterov-maximize": (fo.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    "adam": (fo.Adam, dict(lr=0.01)),
    "adam-wd-amsgrad": (fo.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    "adam-no-bias-correction": (fo.Adam, dict(lr=0.01, do_bias_correction=False)),
    "adamw": (fo.AdamW, dict(lr=0.01, weight_decay=0.3)),
    "adamw-amsgrad-no-bc": (
        fo.AdamW,
        dict(lr=0.01, weight_decay=0.3, amsgrad=True, do_bias_correction=False),
    ),
    "lamb": (fo.LAMB, dict(lr=0.01, weight_decay=0.1)),
    "lamb-l2-amsgrad-no-bc": (
        fo.LAMB,
        dict(lr=0.01, weight_decay=0.1, adam_w_mode=False, amsgrad=True, do_bias_correction=False),
    ),
    "adagrad": (
        fo.Adagrad,
        dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
    ),
}
# the fused kernels and the foreach ops round differently (a fused multiply-add, the order of
# divisions): a few float32 ulps after 4 steps
PATH_TOL = {"rtol": 1e-5, "atol": 1e-6}


def trajectory(cls, kwargs, dtype=torch.float32, steps=4):
    params = make_params(dtype=dtype)
    opt = cls(params, **kwargs)
    for s in range(steps):
        set_grads(params, s)
        opt.step()
    return params, opt


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_kernel_path_matches_foreach_path(name, monkeypatch):
    cls, kwargs = CASES[name]
    fused, _ = trajectory(cls, kwargs)
    monkeypatch.setattr(reference, "_HAS_FUSED", False)
    monkeypatch.setattr(reference, "_HAS_FUSED_ADAGRAD", False)
    plain, _ = trajectory(cls, kwargs)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, **PATH_TOL)


ALL = {
    **CASES,
    "lamb": (fo.LAMB, dict(lr=0.01, weight_decay=0.1)),
    "lamb-l2-amsgrad": (fo.LAMB, dict(lr=0.01, weight_decay=0.1, adam_w_mode=False, amsgrad=True)),
    "rmsprop-centered-momentum": (fo.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    "adadelta": (fo.Adadelta, dict(weight_decay=0.1)),
}
# bf16 keeps 8 bits of mantissa: params and state are rounded to it once per step
LOW_TOL = {
    torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", sorted(ALL))
def test_low_precision_tracks_float32_and_keeps_dtype(name, dtype):
    cls, kwargs = ALL[name]
    ref, _ = trajectory(cls, kwargs, steps=3)
    low, opt = trajectory(cls, kwargs, dtype=dtype, steps=3)
    for a, b in zip(ref, low):
        assert b.dtype == dtype
        torch.testing.assert_close(b.float(), a, **LOW_TOL[dtype])
    for state in opt.state.values():
        for key, value in state.items():
            if key != "step":
                assert value.dtype == dtype, key


def test_float64_parameters_are_supported():
    params, opt = trajectory(fo.Adam, dict(lr=0.01), dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in params)
    assert opt.state[params[0]]["exp_avg"].dtype == torch.float64


@pytest.mark.parametrize("name", sorted(ALL))
def test_transposed_params_with_contiguous_grads(name):
    # torch's fused CPU kernels index every operand with the param's strides: a transposed
    # param with a contiguous grad must not take them (it would update the wrong elements)
    cls, kwargs = ALL[name]
    base = torch.randn(5, 3, generator=torch.Generator().manual_seed(3))
    grad = torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    odd = base.clone().t().requires_grad_()  # shape (3, 5), strides (1, 3)
    plain = base.t().contiguous().requires_grad_()
    o1, o2 = cls([odd], **kwargs), cls([plain], **kwargs)
    for _ in range(2):
        odd.grad, plain.grad = grad.clone(), grad.clone()
        o1.step()
        o2.step()
    torch.testing.assert_close(odd, plain, **PATH_TOL)
