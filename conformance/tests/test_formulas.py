"""The formulas reproduce the spec's worked values (§1.1, §2, §6, §8) and import no torch."""

import math
import subprocess
import sys

import numpy as np
import pytest

from flowoptim_conformance import formulas as F


def one(family, p, grads, **kw):
    steps = [{"grads": [None if g is None else np.array([g], dtype=float)]} for g in grads]
    out = F.simulate(family, [np.array(p, dtype=float)], [{"params": [0]}], kw, steps)
    return out[-1]["params"][0]


def test_adam_worked_value_float32():
    assert np.float32(one("Adam", [1.0], [1.0], lr=0.1)[0]) == np.float32(0.8999993)


def test_adam_optimizer_wide_step():
    assert np.float32(one("Adam", [1.0], [None, 1.0], lr=0.1)[0]) == np.float32(0.9255858)


def test_adagrad_and_rmsprop_worked_values():
    assert one("Adagrad", [0.0], [1e-3], lr=1.0, eps=1e-4)[0] == pytest.approx(-0.90909, abs=1e-5)
    assert one("RMSprop", [0.0], [1e-3], lr=1.0, alpha=0.0, eps=1e-4)[0] == pytest.approx(
        -0.0995, abs=1e-4
    )


def test_lamb_zero_grad_worked_value():
    out = F.simulate("LAMB", [np.array([1.0, 2.0, 3.0])], [{"params": [0]}],
                     {"lr": 0.1, "weight_decay": 0.5}, [{"grads": [np.zeros(3)]}])  # fmt: skip
    np.testing.assert_allclose(out[0]["params"][0], [0.95, 1.9, 2.85], rtol=1e-7)


def test_sgd_lr_multiplies_whole_buffer():
    steps = [{"grads": [np.ones(1)]}, {"grads": [np.ones(1)], "lr": {0: 0.01}}]
    out = F.simulate("SGD", [np.ones(1)], [{"params": [0]}], {"lr": 0.1, "momentum": 0.9}, steps)
    assert out[-1]["params"][0][0] == pytest.approx(0.881, rel=1e-6)


@pytest.mark.parametrize(
    ("norm", "total"),
    [(2, 5.4772), (1, 10), (math.inf, 4), (-math.inf, 0), (0.5, 37.7766), (3, 4.6416), (0, 2)],
)
def test_clip_worked_totals(norm, total):
    grads = [np.array([3.0, -4.0, 0.0]), np.array([1.0, -2.0])]
    assert F.grad_norm(grads, norm) == pytest.approx(total, abs=1e-4)
    t, clipped = F.clip_grads(grads, 1.0, norm)
    coef = min(1.0 / (t + 1e-6), 1.0)
    np.testing.assert_allclose(clipped[0], grads[0] * coef)


def test_float32_hyperparameter_rounding():
    assert F.one_minus(0.9) == float(np.float32(1) - np.float32(0.9))
    _, bc2 = F.bias_corrections(0.9, 0.999, 1, True)
    assert bc2 == float(np.float32(1 - 0.999))
    assert F.bias_corrections(0.9, 0.999, 3, False) == (1.0, 1.0)


def test_polynomial_cycle_step0():
    kw = {"decay_batch": 5, "end_learning_rate": 0.1, "cycle": True}
    assert F.sched_lr("PolynomialLR", kw, 1.0, 0) == pytest.approx(0.82)


def test_sequential_and_chained_follow_oneflow():
    seq = {"schedulers": [{"kind": "ConstantLR", "kwargs": {"factor": 0.1, "total_iters": 2}},
                          {"kind": "ExponentialLR", "kwargs": {"gamma": 0.9}}],
           "milestones": [2]}  # fmt: skip
    got = [F.sched_lr("SequentialLR", seq, 1.0, s) for s in range(5)]
    np.testing.assert_allclose(got, [0.1, 0.1, 0.81, 0.729, 0.6561])
    chained = {"schedulers": seq["schedulers"]}
    got = [F.sched_lr("ChainedScheduler", chained, 1.0, s) for s in range(4)]
    np.testing.assert_allclose(got, [0.1, 0.09, 0.81, 0.729])


def test_bf16_rounding():
    r = F.rounder("bfloat16")
    assert r(np.array([1.0 + 2**-9]))[0] == 1.0  # ties to even
    assert r(np.array([1.0 + 3 * 2**-9]))[0] == 1.0 + 2**-7
    assert np.isnan(r(np.array([np.nan]))[0])


def test_formulas_and_generator_import_neither_torch_nor_flowoptim():
    code = ("import sys, flowoptim_conformance.formulas, flowoptim_conformance.generate, "
            "flowoptim_conformance.cases; "
            "bad = [m for m in ('torch', 'flowoptim') if m in sys.modules]; "
            "assert not bad, bad")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
