"""The worked values of spec §8 and the examples of §1.1 and §2 (float32, OneFlow 0.9.0)."""

from __future__ import annotations

import math

import pytest
import torch

import flowoptim as fo

# float32 values printed by OneFlow to 7 significant digits: half a unit in the 7th digit
ATOL_7DIGITS = 5e-7


def one_step(cls, p0, g, **kw):
    p = torch.tensor(p0, dtype=torch.float32, requires_grad=True)
    opt = cls([p], **kw)
    p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
    return p.detach()


def test_adam_one_step_uses_float32_hyperparameters():
    # 0.8999993, not 0.9: (1 - beta2) is taken from float32(0.999), bc2 from the double value
    p = one_step(fo.Adam, [1.0], [1.0], lr=0.1)
    assert p.item() == pytest.approx(0.8999993, abs=ATOL_7DIGITS)
    assert abs(p.item() - 0.9) > 5e-7  # the naive double-hyperparameter answer is rejected


def test_adagrad_worked_value():
    p = one_step(fo.Adagrad, [0.0], [1e-3], lr=1.0, eps=1e-4)
    assert p.item() == pytest.approx(-0.90909, abs=5e-6)


def test_rmsprop_worked_value():
    p = one_step(fo.RMSprop, [0.0], [1e-3], lr=1.0, alpha=0.0, eps=1e-4)
    assert p.item() == pytest.approx(-0.0995, abs=5e-5)
    # eps inside the sqrt: 1e-3/sqrt(1e-6 + 1e-4) = 0.0995037
    assert p.item() == pytest.approx(-1e-3 / math.sqrt(1e-6 + 1e-4), rel=1e-6)


def test_lamb_zero_grad_weight_decay_only():
    p = one_step(fo.LAMB, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0], lr=0.1, weight_decay=0.5)
    torch.testing.assert_close(p, torch.tensor([0.95, 1.9, 2.85]), rtol=0, atol=ATOL_7DIGITS)


def test_sgd_lr_multiplies_whole_buffer():
    p = torch.ones(1, requires_grad=True)
    opt = fo.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(1)
    opt.step()
    opt.param_groups[0]["lr"] = 0.01
    opt.step()
    assert p.item() == pytest.approx(0.881, abs=ATOL_7DIGITS)


def test_sgd_dampening_first_step_is_damped():
    # OneFlow: buf = (1 - dampening) * g on the first step (torch would copy g)
    p = one_step(fo.SGD, [1.0], [1.0], lr=0.1, momentum=0.9, dampening=0.5)
    assert p.item() == pytest.approx(1.0 - 0.1 * 0.5, abs=ATOL_7DIGITS)


def test_optimizer_wide_step_with_late_first_gradient():
    p = torch.ones(1, requires_grad=True)
    other = torch.ones(1, requires_grad=True)
    opt = fo.Adam([p, other], lr=0.1)
    other.grad = torch.ones(1)
    opt.step()  # step 1: p has no gradient
    other.grad = None
    p.grad = torch.ones(1)
    opt.step()  # p's first update is bias-corrected with t = 2
    assert p.item() == pytest.approx(0.9255858, abs=ATOL_7DIGITS)
    assert opt.state[p]["step"].item() == 2.0
    assert opt.state[other]["step"].item() == 1.0


def test_step_counts_even_without_gradients():
    p = torch.ones(1, requires_grad=True)
    opt = fo.Adam([p], lr=0.1)
    opt.step()
    opt.step()
    assert opt.global_step == 2
    assert not opt.state[p]  # no gradient: no state (spec §1.2)
    p.grad = torch.ones(1)
    opt.step()
    # t = 3: bc1 = 1 - 0.9^3, bc2 = 1 - 0.999^3
    m, v = 0.1, 0.001
    bc1, bc2 = 1 - 0.9**3, 1 - 0.999**3
    expected = 1 - 0.1 / bc1 * m / (math.sqrt(v) / math.sqrt(bc2) + 1e-8)
    assert p.item() == pytest.approx(expected, abs=2e-6)


CLIP_TOTALS = [
    (2.0, 5.4772),
    (1.0, 10.0),
    (math.inf, 4.0),
    (-math.inf, 0.0),
    (0.5, 37.7766),
    (3.0, 4.6416),
    (0.0, 2.0),  # two tensors with a nonzero element
]


@pytest.mark.parametrize(("norm_type", "total"), CLIP_TOTALS)
def test_clip_grad_totals(norm_type, total):
    a = torch.zeros(3, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    group = {"params": [a, b], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": norm_type}
    opt = fo.SGD([group])
    a.grad = torch.tensor([3.0, -4.0, 0.0])
    b.grad = torch.tensor([1.0, -2.0])
    (got,) = opt.clip_grad()
    assert got.item() == pytest.approx(total, abs=5e-5)
    coef = min(1.0 / (total + 1e-6), 1.0)
    torch.testing.assert_close(a.grad, torch.tensor([3.0, -4.0, 0.0]) * coef)
    torch.testing.assert_close(b.grad, torch.tensor([1.0, -2.0]) * coef)
