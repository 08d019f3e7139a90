"""The two access paths of every chunked kernel (Note [vectorized access] in kernels.py, Note
[aligned plans] in launch.py): which partitions are aligned, and that the 128-bit path (vector
part + scalar tail) and the scalar fallback give the same bits for every algorithm, option set
and dtype, for the grad norms and for scale_. Under the interpreter the hints are no-ops, so
this checks the segment arithmetic (bounds, masks, the tail's lane grid), the part that can be
wrong; kernels/aot/audit.py proves the 128-bit instructions natively."""

from __future__ import annotations

import math

import pytest
import torch
from triton_helpers import DEVICE, OPTIONS, call, clone_all, make_states, randn

from flowoptim_triton import kernels
from flowoptim_triton import launch as L
from flowoptim_triton.backend import TritonBackend

#: odd sizes (1, 37, a tail after two chunks) next to VEC multiples, crossing chunk boundaries
#: (CHUNK is 2048 under the interpreter, BLOCK 1024) and tile boundaries inside the tail's chunk
SIZES = [1, 37, 2048 + 1000 + 5, 4096 + 16, 1024 + 15, 3000]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
CASES = [(algo, i) for algo, opts in OPTIONS.items() for i in range(len(opts))]


def _steps(algo, opts, dtype, vectorize, params_of=None, steps=2):
    b = TritonBackend()
    b.engine.vectorize = vectorize
    params = [randn(n, dtype, seed=i) for i, n in enumerate(SIZES)]
    if params_of is not None:
        params = params_of(params)
    states = make_states(algo, opts, params)
    for t in range(1, steps + 1):
        grads = [randn(n, dtype, seed=100 * t + i) for i, n in enumerate(SIZES)]
        call(b, algo, opts, params, grads, states, step=t, lr=1e-2 * 0.7 ** (t - 1))
    plans = list(b.engine._plans.values())
    return [params, *(s for s in states if s is not None)], plans


def _assert_same_bits(a, b):
    for xs, ys in zip(a, b, strict=True):
        for x, y in zip(xs, ys, strict=True):
            assert torch.equal(x.view(torch.uint8), y.view(torch.uint8))


def test_vec_constant_agrees():
    assert kernels.VEC.value == L.VEC


def test_plan_alignment_rule():
    p = [randn(n, torch.float32, seed=i) for i, n in enumerate(SIZES)]
    assert L.build_plan([p, p], 2048).align  # odd sizes do not matter
    assert not L.build_plan([p, p], 1000).align  # 1000 % 16 != 0: chunk starts unaligned
    flat = randn(4097, torch.float32, seed=9)
    view = flat[1:]  # a dense view 4 bytes past an aligned address
    assert view.data_ptr() % 16 == 4
    assert not L.build_plan([[*p, view], [*p, view.clone()]], 2048).align
    assert L.build_plan([[*p, flat[4:]], [*p, flat[4:].clone()]], 2048).align  # 16 bytes in


@pytest.mark.parametrize(
    "algo,i,dtype",
    # every option set in float32; one per algorithm in each other dtype (the segment logic is
    # dtype-independent; these cover the state rounding and LAMB's fp16/bf16 pass split)
    [(a, i, torch.float32) for a, i in CASES] + [(a, 0, dt) for a in OPTIONS for dt in DTYPES[1:]],
    ids=str,
)
def test_vector_and_scalar_paths_same_bits(algo, i, dtype):
    opts = OPTIONS[algo][i]
    vec, plans = _steps(algo, opts, dtype, True)
    assert plans and all(pl.align for pl in plans)
    scalar, _ = _steps(algo, opts, dtype, False)
    _assert_same_bits(vec, scalar)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("algo", ["adam", "lamb", "rmsprop"])
def test_misaligned_views_take_the_scalar_path(algo, dtype):
    """Params that are views at an odd offset of one buffer (as in flat-parameter wrappers)
    make the partition unaligned; the results equal those of aligned tensors bit for bit."""
    opts = OPTIONS[algo][-1]

    def views(params):
        flat = torch.empty(sum(SIZES) + len(SIZES), dtype=dtype, device=DEVICE)
        out, o = [], 1  # one element in: misaligned for every dtype
        for p in params:
            v = flat[o : o + p.numel()]
            v.copy_(p)
            out.append(v)
            o += p.numel()
        return out

    got, plans = _steps(algo, opts, dtype, True, params_of=views)
    assert plans and not any(pl.align for pl in plans)
    want, _ = _steps(algo, opts, dtype, True)
    _assert_same_bits(got, want)


@pytest.mark.parametrize(
    "norm_type,dtype",
    [(nt, torch.float32) for nt in (2.0, 1.0, math.inf, -math.inf, 0.0, 3.0)]
    + [(2.0, dt) for dt in DTYPES[1:]],
    ids=str,
)
def test_grad_norm_same_bits(norm_type, dtype):
    grads = [randn(n, dtype, seed=i) for i, n in enumerate(SIZES)]
    grads[1][5] = 0.0
    out = []
    for vectorize in (True, False):
        b = TritonBackend()
        b.engine.vectorize = vectorize
        out.append(b.grad_norm(grads, norm_type))
        assert all(pl.align for pl in b.engine._plans.values())
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_scale_same_bits(dtype):
    res = []
    for vectorize in (True, False):
        xs = [randn(n, dtype, seed=i) for i, n in enumerate(SIZES)]
        b = TritonBackend()
        b.engine.vectorize = vectorize
        b.scale_(xs, torch.tensor(0.3, dtype=torch.float32))
        res.append(xs)
    _assert_same_bits([res[0]], [res[1]])


def test_tail_only_and_vector_only_tensors():
    """Sizes below VEC (vector part empty) and exact multiples of VEC (tail empty) alone; every
    element is updated on both paths (a segment bound off by one would skip some)."""
    opts = OPTIONS["sgd"][2]
    for sizes in ([1], [15], [16], [2048], [2048 + 16]):
        got = []
        for vectorize in (True, False):
            b = TritonBackend()
            b.engine.vectorize = vectorize
            p = [randn(n, torch.float32, seed=i) for i, n in enumerate(sizes)]
            p0 = [x.clone() for x in p]
            g = [randn(n, torch.float32, seed=50 + i) for i, n in enumerate(sizes)]
            states = make_states("sgd", opts, p)
            call(b, "sgd", opts, p, g, states, step=1, lr=0.1)
            assert all(bool((x != x0).all()) for x, x0 in zip(p, p0, strict=True))
            got.append(clone_all([p, *states]))
        _assert_same_bits(got[0], got[1])
