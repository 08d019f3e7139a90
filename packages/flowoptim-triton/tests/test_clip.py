"""grad_norm / scale_: every norm type against the reference, determinism, NaN, empties."""

from __future__ import annotations

import math

import pytest
import torch
from triton_helpers import DEVICE, randn

from flowoptim.backends.reference import ReferenceBackend
from flowoptim_triton.backend import TritonBackend

NORMS = [2.0, 1.0, math.inf, -math.inf, 0.0, 0.5, 3.0]


@pytest.mark.parametrize("norm_type", NORMS)
def test_worked_values(norm_type):
    """spec §8: grads (3,-4,0) and (1,-2)."""
    expected = {2.0: 5.4772, 1.0: 10.0, math.inf: 4.0, -math.inf: 0.0, 0.0: 2.0, 0.5: 37.7766,
                3.0: 4.6416}  # fmt: skip
    grads = [
        torch.tensor([3.0, -4.0, 0.0], device=DEVICE),
        torch.tensor([1.0, -2.0], device=DEVICE),
    ]
    total = TritonBackend().grad_norm(grads, norm_type)
    assert total.dtype == torch.float32 and total.dim() == 0 and total.device == grads[0].device
    assert total.item() == pytest.approx(expected[norm_type], rel=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("norm_type", NORMS)
def test_against_reference_many_tensors(norm_type, dtype):
    sizes = [1, 7, 1023, 1025, 5000, 3]
    grads = [randn(n, dtype, seed=i) for i, n in enumerate(sizes)]
    grads[5].zero_()  # a zero tensor (norm 0 counts nonzero tensors)
    ours = TritonBackend().grad_norm(grads, norm_type)
    ref = ReferenceBackend().grad_norm(grads, norm_type)
    assert ours.dtype == ref.dtype
    rtol = 1e-10 if dtype == torch.float64 else 2e-6
    if norm_type not in (2.0, 1.0, math.inf, -math.inf, 0.0):
        rtol = max(rtol, 1e-5)  # pow through exp2/log2
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=0)


@pytest.mark.parametrize("norm_type", NORMS)
def test_deterministic(norm_type):
    grads = [randn(n, torch.float32, seed=i) for i, n in enumerate([5000, 17, 4097])]
    b = TritonBackend()
    first = b.grad_norm(grads, norm_type)
    for _ in range(3):
        assert torch.equal(b.grad_norm(grads, norm_type), first)
    # a fresh backend (fresh plans) gives the same bits
    assert torch.equal(TritonBackend().grad_norm(grads, norm_type), first)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 3.0])
def test_nan_propagates(norm_type):
    grads = [randn(3000, torch.float32, seed=1), randn(9, torch.float32, seed=2)]
    grads[0][2500] = float("nan")
    assert math.isnan(TritonBackend().grad_norm(grads, norm_type).item())


def test_inf_norm_of_inf_grad():
    g = torch.tensor([1.0, -float("inf")], device=DEVICE)
    assert TritonBackend().grad_norm([g], math.inf).item() == math.inf


def test_empty_tensors_are_skipped():
    grads = [torch.zeros(0, device=DEVICE), torch.tensor([3.0, -4.0], device=DEVICE)]
    assert TritonBackend().grad_norm(grads, 2.0).item() == pytest.approx(5.0)
    assert TritonBackend().grad_norm(grads, -math.inf).item() == pytest.approx(3.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_scale_matches_reference(dtype):
    grads = [randn(n, dtype, seed=i) for i, n in enumerate([1, 1025, 0, 3000])]
    ref = [g.clone() for g in grads]
    coef = torch.tensor(0.123, device=DEVICE)
    TritonBackend().scale_(grads, coef)
    ReferenceBackend().scale_(ref, coef)
    for a, e in zip(grads, ref, strict=True):
        assert torch.equal(a, e)
