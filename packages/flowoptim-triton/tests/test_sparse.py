"""Sparse gradients on the triton backend: the row-gather kernels (spec §5; Note [row-gather
addressing] in flowoptim_triton.sparse_kernels). Interpreted on the CPU without CUDA."""

from __future__ import annotations

import pytest
import torch
from triton_helpers import DEVICE, assert_close

import flowoptim as fo
from flowoptim_triton import TritonBackend

OPTIMIZERS = {
    "sgd": lambda ps, b: fo.SGD(ps, lr=0.1, weight_decay=0.01, backend=b),
    "sgd-momentum": lambda ps, b: fo.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, backend=b),
    "sgd-nesterov-max": lambda ps, b: fo.SGD(
        ps, lr=0.1, momentum=0.9, nesterov=True, maximize=True, weight_decay=0.1, backend=b
    ),
    "adam": lambda ps, b: fo.Adam(ps, lr=0.01, weight_decay=0.1, backend=b),
    "adam-amsgrad-nobc": lambda ps, b: fo.Adam(
        ps, lr=0.01, amsgrad=True, do_bias_correction=False, maximize=True, backend=b
    ),
    "adamw-amsgrad": lambda ps, b: fo.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True, backend=b),
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def rand(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(DEVICE)


def coo(rows, values, shape):
    idx = torch.tensor([rows], dtype=torch.int64, device=values.device)
    return torch.sparse_coo_tensor(idx, values, shape, check_invariants=True)


def states(opt, p):
    return {k: v for k, v in opt.state[p].items() if k != "step"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_all_rows_present_equals_the_dense_kernel_bit_for_bit(name, dtype):
    # two params in one partition; the first has 2400 values: more than one interpreted chunk
    shapes = [(300, 8), (5,)]
    ps = [rand(s, dtype, i).requires_grad_() for i, s in enumerate(shapes)]
    twins = [p.detach().clone().requires_grad_() for p in ps]
    opt, opt_dense = OPTIMIZERS[name](ps, "triton"), OPTIMIZERS[name](twins, "triton")
    group = opt.param_groups[0]
    group["clip_grad_max_norm"] = opt_dense.param_groups[0]["clip_grad_max_norm"] = 5.0
    for step in range(2):
        for i, (p, t) in enumerate(zip(ps, twins)):
            g = rand(p.shape, dtype, 10 + 10 * step + i)
            t.grad = g
            rows = torch.randperm(p.shape[0], generator=torch.Generator().manual_seed(step))
            p.grad = coo(rows.tolist(), g[rows.to(DEVICE)], p.shape)
        # fused clip: grad_scale applied to the values inside the row-gather kernel
        opt.clip_grad(fused=True)
        opt_dense.clip_grad(fused=True)
        opt.step()
        opt_dense.step()
    for p, t in zip(ps, twins):
        assert torch.equal(p, t)
        for k, v in states(opt, p).items():
            assert torch.equal(v, states(opt_dense, t)[k]), k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd-nesterov-max", "adam", "adamw-amsgrad"])
def test_partial_rows_match_the_reference_backend_and_leave_other_rows(name, dtype):
    shape = (40, 3)
    a = rand(shape, dtype, 1).requires_grad_()
    b = a.detach().clone().requires_grad_()
    opt_t, opt_r = OPTIMIZERS[name]([a], "triton"), OPTIMIZERS[name]([b], "reference")
    for step, rows in enumerate([[5, 1, 5, 39], [0, 1, 2], [39]]):
        before = a.detach().clone()
        g = coo(rows, rand((len(rows), 3), dtype, 50 + step), shape)
        a.grad, b.grad = g, g.clone()
        opt_t.step()
        opt_r.step()
        absent = [r for r in range(40) if r not in rows]
        assert torch.equal(a.detach()[absent], before[absent])
        assert_close(a, b, dtype)
        for k, v in states(opt_t, a).items():
            assert_close(v, states(opt_r, b)[k], dtype, msg=k)


def test_empty_gradient_and_odd_layouts():
    # nnz 0: nothing is launched; a transposed (non-contiguous) param: gather/scatter fallback
    base = rand((3, 6), torch.float32, 2)
    p = base.t().requires_grad_()  # (6, 3), strides (1, 6)
    q = p.detach().contiguous().requires_grad_()
    opt_t, opt_r = fo.Adam([p], lr=0.1, backend="triton"), fo.Adam([q], lr=0.1, backend="reference")
    for rows in ([], [4, 0], [2]):
        vals = rand((len(rows), 3), torch.float32, 60 + len(rows))
        g = coo(rows, vals, (6, 3)) if rows else None
        if g is None:
            idx = torch.zeros(1, 0, dtype=torch.int64, device=DEVICE)
            g = torch.sparse_coo_tensor(idx, vals, (6, 3), check_invariants=True)
        p.grad, q.grad = g, g.clone()
        opt_t.step()
        opt_r.step()
    assert_close(p, q, torch.float32)


def test_out_of_range_rows_are_masked_in_the_kernel():
    # the optimizer checks the range on the CPU; the kernel never writes outside the parameter
    # (on CUDA the range is not checked: Note [row-gather addressing])
    backend = TritonBackend()
    p = torch.zeros(4, 2, device=DEVICE)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    idx = torch.tensor([1, 7, -3], device=DEVICE)
    vals = torch.ones(3, 2, device=DEVICE)
    backend.adam_sparse(
        [p], [idx], [vals], [m], [v], None, step=1, lr=0.5, beta1=0.9, beta2=0.999, eps=1e-8,
        weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False, do_bias_correction=True,
        maximize=False, grad_scale=None,
    )  # fmt: skip
    expected = torch.zeros(4, 2, device=DEVICE)
    expected[1] = -0.5
    assert_close(p, expected, torch.float32)
    assert torch.equal(m[[0, 2, 3]], torch.zeros(3, 2, device=DEVICE))
