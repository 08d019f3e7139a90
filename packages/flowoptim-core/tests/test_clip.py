"""clip_grad (spec §3): per-group norms, no grads, non-finite, and the fused mode."""

from __future__ import annotations

import math

import pytest
import torch
from core_helpers import ALL_OPTIMIZERS, make_params, set_grads

import flowoptim as fo
from flowoptim.backends.reference import ReferenceBackend


def test_groups_are_clipped_independently_and_unclipped_groups_skipped():
    a, b, c = (torch.zeros(2, requires_grad=True) for _ in range(3))
    opt = fo.SGD(
        [
            {"params": [a], "clip_grad_max_norm": 1.0},  # norm type defaults to 2
            {"params": [b]},
            {"params": [c], "clip_grad_max_norm": 10.0, "clip_grad_norm_type": 1.0},
        ]
    )
    a.grad, b.grad, c.grad = (
        torch.tensor([3.0, 4.0]),
        torch.tensor([3.0, 4.0]),
        torch.tensor([1.0, 2.0]),
    )
    totals = opt.clip_grad()
    assert [t.item() for t in totals] == pytest.approx([5.0, 3.0])
    torch.testing.assert_close(a.grad, torch.tensor([3.0, 4.0]) / (5.0 + 1e-6))
    torch.testing.assert_close(b.grad, torch.tensor([3.0, 4.0]), rtol=0, atol=0)
    torch.testing.assert_close(c.grad, torch.tensor([1.0, 2.0]), rtol=0, atol=0)  # coef = 1


def test_no_grads_gives_zero_and_touches_nothing():
    a = torch.zeros(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0}])
    (total,) = opt.clip_grad()
    assert total.item() == 0.0
    assert a.grad is None


def test_without_clip_options_warns_once():
    a = torch.zeros(2, requires_grad=True)
    opt = fo.SGD([a])
    a.grad = torch.ones(2)
    with pytest.warns(UserWarning, match="no param group has 'clip_grad_max_norm'"):
        assert opt.clip_grad() == []
    assert opt.clip_grad() == []  # only once (pytest turns a second warning into an error)
    torch.testing.assert_close(a.grad, torch.ones(2), rtol=0, atol=0)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_with_error_touches_no_grad(bad):
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = fo.SGD(
        [{"params": [a], "clip_grad_max_norm": 1.0}, {"params": [b], "clip_grad_max_norm": 1.0}]
    )
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([bad, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        opt.clip_grad(error_if_nonfinite=True)
    torch.testing.assert_close(a.grad, torch.tensor([3.0, 4.0]), rtol=0, atol=0)


def test_non_finite_without_error_scales_like_torch():
    a = torch.zeros(2, requires_grad=True)
    twin = torch.zeros(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0}])
    a.grad, twin.grad = torch.tensor([math.inf, 1.0]), torch.tensor([math.inf, 1.0])
    (total,) = opt.clip_grad()
    assert math.isinf(total.item())
    torch.nn.utils.clip_grad_norm_([twin], 1.0)
    torch.testing.assert_close(a.grad, twin.grad, equal_nan=True)  # coef 0: inf*0 = nan


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 0.0, 0.5, 3.0])
def test_matches_torch_clip_grad_norm(norm_type):
    params = make_params()
    twins = [p.detach().clone().requires_grad_() for p in params]
    set_grads(params, 0)
    set_grads(twins, 0)
    opt = fo.SGD([{"params": params, "clip_grad_max_norm": 0.5, "clip_grad_norm_type": norm_type}])
    (total,) = opt.clip_grad()
    expected = torch.nn.utils.clip_grad_norm_(twins, 0.5, norm_type=norm_type)
    torch.testing.assert_close(total, expected)
    for p, t in zip(params, twins):
        torch.testing.assert_close(p.grad, t.grad)


def test_empty_and_mixed_dtype_grads():
    a = torch.zeros(0, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    c = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = fo.SGD(
        [{"params": [a, b, c], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": -math.inf}]
    )
    a.grad, b.grad = torch.zeros(0), torch.tensor([3.0, -0.5])
    c.grad = torch.tensor([2.0, 4.0], dtype=torch.float64)
    (total,) = opt.clip_grad()
    assert total.item() == 0.5


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_fused_mode_gives_the_same_parameters_and_leaves_grads(name):
    make = ALL_OPTIMIZERS[name]
    inplace_p, fused_p = make_params(), make_params()
    o1, o2 = make(inplace_p), make(fused_p)
    for o in (o1, o2):
        o.param_groups[0]["clip_grad_max_norm"] = 0.3
    for s in range(3):
        set_grads(inplace_p, s)
        set_grads(fused_p, s)
        raw = [p.grad.clone() for p in fused_p]
        t1 = o1.clip_grad()
        t2 = o2.clip_grad(fused=True)
        torch.testing.assert_close(t1, t2, rtol=0, atol=0)
        for p, g in zip(fused_p, raw):
            torch.testing.assert_close(p.grad, g, rtol=0, atol=0)  # unscaled
        o1.step()
        o2.step()
        for a, b in zip(inplace_p, fused_p):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_zero_grad_drops_a_pending_fused_coefficient():
    a = torch.ones(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 0.1}], lr=1.0)
    a.grad = torch.tensor([3.0, 4.0])
    opt.clip_grad(fused=True)
    opt.zero_grad()
    a.grad = torch.tensor([1.0, 0.0])
    opt.step()
    torch.testing.assert_close(a.detach(), torch.tensor([0.0, 1.0]))


def test_an_in_place_clip_after_a_fused_one_clips_once():
    # the in-place clip scales the grads now and drops the group's pending fused coefficient:
    # the step sees grads clipped once, not once in place and once more through grad_scale
    a = torch.ones(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0}], lr=1.0)
    a.grad = torch.tensor([3.0, 4.0])
    opt.clip_grad(fused=True)
    (total,) = opt.clip_grad()
    assert total.item() == 5.0
    coef = torch.tensor(1.0) / (torch.tensor(5.0) + 1e-6)
    torch.testing.assert_close(a.grad, torch.tensor([3.0, 4.0]) * coef, rtol=0, atol=0)
    opt.step()
    torch.testing.assert_close(a.detach(), 1.0 - torch.tensor([3.0, 4.0]) * coef, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [fo.RMSprop, fo.LAMB])
def test_sparse_gradient_is_refused_by_clip_grad_without_support_sparse(cls):
    # with support_sparse (SGD, Adam, AdamW) clip_grad clips the values: tests/test_sparse.py
    a = torch.zeros(4, requires_grad=True)
    opt = cls([{"params": [a], "clip_grad_max_norm": 1.0}])
    a.grad = torch.sparse_coo_tensor([[1]], [5.0], (4,), check_invariants=True)
    with pytest.raises(RuntimeError, match=f"{cls.__name__} does not support sparse gradients"):
        opt.clip_grad()
    assert a.grad.is_sparse
    torch.testing.assert_close(a.grad.to_dense(), torch.tensor([0.0, 5.0, 0.0, 0.0]))


# ---------------------------------------------------------------- issue 10
def test_step_without_clip_grad_on_a_clip_group_warns_once():
    a = torch.ones(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 0.1}], lr=1.0)
    a.grad = torch.tensor([3.0, 4.0])
    with pytest.warns(UserWarning, match=r"clip_grad\(\) was not called") as record:
        opt.step()
    msg = str(record[0].message)
    assert "gradient_clip_val" in msg and "max_grad_norm" in msg and "group 0" in msg
    torch.testing.assert_close(a.detach(), torch.tensor([-2.0, -3.0]))  # not clipped
    opt.step()  # once per optimizer (pytest turns a second warning into an error)
    opt.clip_grad()
    opt.step()  # clipped: nothing to say


def test_clip_grad_then_step_does_not_warn():
    a = torch.ones(2, requires_grad=True)
    opt = fo.Adam([{"params": [a], "clip_grad_max_norm": 0.1}], lr=1.0)
    for _ in range(3):
        a.grad = torch.tensor([3.0, 4.0])
        opt.clip_grad(fused=True)
        opt.step()


class _RecordingBackend(ReferenceBackend):
    name = "recording"

    def __init__(self):
        self.scales = []

    def scale_(self, tensors, coef):
        self.scales.append(("scale_", tensors[0].dtype, coef.dtype, coef.dim()))
        return super().scale_(tensors, coef)

    def sgd(self, params, grads, bufs, **kw):
        gs = kw["grad_scale"]
        if gs is not None:
            self.scales.append(("sgd", params[0].dtype, gs.dtype, gs.dim()))
        return super().sgd(params, grads, bufs, **kw)


@pytest.mark.parametrize("fused", [False, True])
def test_clip_coefficient_is_in_each_partitions_compute_dtype(fused):
    """Note [grad_scale]: float64 for float64 partitions, float32 otherwise, 0-d."""
    backend = _RecordingBackend()
    a = torch.ones((), requires_grad=True)
    b = torch.ones(3, dtype=torch.float64, requires_grad=True)
    c = torch.ones(2, dtype=torch.float16, requires_grad=True)
    opt = fo.SGD([{"params": [a, b, c], "clip_grad_max_norm": 0.5}], lr=0.1, backend=backend)
    for p in (a, b, c):
        p.grad = torch.full_like(p, 2.0)
    opt.clip_grad(fused=fused)
    opt.step()
    kind = "sgd" if fused else "scale_"
    assert sorted(backend.scales, key=str) == sorted(
        [
            (kind, torch.float32, torch.float32, 0),
            (kind, torch.float64, torch.float64, 0),
            (kind, torch.float16, torch.float32, 0),
        ],
        key=str,
    )
