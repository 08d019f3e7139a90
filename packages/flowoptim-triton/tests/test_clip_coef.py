"""clip_coef: the grad-norm launch that finishes in its last program (Note [last-program finish]).

Totals bit-identical to ``grad_norm``'s and coefficients to the torch expression of Note [clip
coefficient] for every norm type and dtype (nan/inf/zero grads, one tensor, more programs than
one finishing tile holds), the ticket counter back at 0 after every launch, the optimizer's clip
through it bit-identical to the torch-expression path, and the launches and torch ops per clip.
Under the interpreter the programs run one after another: this checks the finishing logic, not
the memory ordering (unverified without a GPU).
"""

from __future__ import annotations

import math

import pytest
import torch
import triton
import triton.language as tl
from triton_helpers import DEVICE, INTERPRET, randn

import flowoptim as fo
from flowoptim.backends.base import CLIP_EPS, Backend, compute_dtype
from flowoptim_triton import kernels as K
from flowoptim_triton.backend import TritonBackend

NORMS = [2.0, 1.0, math.inf, -math.inf, 0.0, 3.5, 0.5]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
#: max_norm values: ordinary, 0, and one that overflows float32 (inf coefficient before the clamp)
MAX_NORMS = [1.0, 0.0, 1e40]


def _grads(case: str, dtype: torch.dtype) -> list[torch.Tensor]:
    # 5 programs at the interpreter's 2048-element chunk (one tensor of 2 chunks)
    sizes = [3001] if case == "single" else [1, 7, 2049, 3, 700]
    gs = [randn(n, dtype, seed=i, scale=0.3) for i, n in enumerate(sizes)]
    if case == "nan":
        gs[-1][1] = float("nan")
    elif case == "inf":
        gs[0][0] = float("inf")
    elif case == "zero":
        for g in gs:
            g.zero_()
    elif case == "plain":
        gs[1].zero_()  # one zero tensor (norm 0 counts the nonzero ones)
    return gs


def _torch_coef(total: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Note [clip coefficient]'s expression (what the optimizer computes for several partitions)."""
    return torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and bool(torch.equal(a, b) or (a.isnan() & b.isnan()).all())


#: every norm type and dtype on ordinary grads; the special grads in float32 and float64 (the
#: two compute dtypes), zero grads and one tensor in float32 (interpreter time: a second a case)
CASES = (
    [(n, d, "plain") for n in NORMS for d in DTYPES]
    + [(n, d, c) for c in ("nan", "inf") for n in NORMS for d in (torch.float32, torch.float64)]
    + [(n, torch.float32, c) for c in ("zero", "single") for n in NORMS]
)


@pytest.mark.parametrize(("norm_type", "dtype", "case"), CASES)
def test_total_and_coef_bits(norm_type, dtype, case):
    grads = _grads(case, dtype)
    be = TritonBackend()
    norm = be.grad_norm(grads, norm_type)
    ct = compute_dtype(dtype)
    coefs = {}
    for max_norm in MAX_NORMS if case in ("plain", "inf") else [1.0]:
        total, coef = be.clip_coef(grads, norm_type, max_norm)
        assert total.shape == () and coef.shape == ()
        assert total.dtype == coef.dtype == ct and total.device == grads[0].device
        assert _same_bits(total, norm), (max_norm, total, norm)
        assert _same_bits(coef, _torch_coef(total, max_norm)), (max_norm, coef, total)
        assert be.engine.counter(grads[0].device).item() == 0
        coefs[max_norm] = coef.item()
    if case == "nan" and norm_type != 0.0:
        assert math.isnan(total.item()) and math.isnan(coefs[1.0])
    if case == "inf" and norm_type in (2.0, 1.0, math.inf, 3.5, 0.5):
        assert total.item() == math.inf and coefs[1.0] == 0.0
        if dtype != torch.float64:
            assert math.isnan(coefs[1e40])  # float32(1e40) is inf, and inf * (1 / inf) is nan
    if case == "zero":
        assert total.item() == 0.0 and coefs[1.0] == 1.0


@pytest.mark.parametrize(
    ("norm_type", "dtype"),
    [(2.0, torch.float32), (0.0, torch.float64), (math.inf, torch.float32),
     (-math.inf, torch.float64)],
)  # fmt: skip
def test_finish_over_many_programs(monkeypatch, norm_type, dtype):
    """More programs than one finishing tile holds (``RBLOCK`` lowered to 16 so that the
    interpreter runs 24 programs, not the 1025 the shipped tile needs): the finishing program
    reads every partial of this launch (poisoned with NaN beforehand), and gives what a separate
    single-program reduce of the stored partials gives."""
    rblock = 16
    monkeypatch.setattr("flowoptim_triton.backend.RBLOCK", rblock)
    grads = [randn(n, dtype, seed=i) for i, n in enumerate([1000, 5, 16, 17, 300])]
    grads[2].zero_()
    be = TritonBackend(chunk=64)
    first = be.grad_norm(grads, norm_type)
    plan = next(iter(be.engine._plans.values()))
    assert plan.n_chunks > rblock
    part = plan.buffers["norm_part"]
    part.fill_(float("nan"))
    total, coef = be.clip_coef(grads, norm_type, 0.5)
    assert torch.equal(total, first)
    assert be.engine.counter(grads[0].device).item() == 0
    assert not part[: plan.n_chunks].isnan().any()
    again = torch.empty((), dtype=total.dtype, device=total.device)
    _reduce_once[(1,)](
        part, plan.n_chunks, plan.tensor_chunk0, plan.tensor_nchunks, plan.n_tensors, again,
        1.0, NORM=_kind(norm_type), CT=tl.float64 if dtype == torch.float64 else tl.float32,
        RBLOCK=rblock,
    )  # fmt: skip
    assert torch.equal(again, total)
    assert _same_bits(coef, _torch_coef(total, 0.5))


@triton.jit
def _reduce_once(part, n_chunks, tensor_chunk0, tensor_nchunks, n_tensors, out, norm_p,
                 NORM: tl.constexpr, CT: tl.constexpr, RBLOCK: tl.constexpr):  # fmt: skip
    # the former separate final launch: one program reducing the stored partials
    r = K._norm_total(part, n_chunks, tensor_chunk0, tensor_nchunks, n_tensors, norm_p, NORM, CT,
                      RBLOCK)  # fmt: skip
    tl.store(out, r)


def _kind(norm_type: float) -> int:
    if math.isinf(norm_type):
        k = K.NORM_INF if norm_type > 0 else K.NORM_NEG_INF
    else:
        k = {2.0: K.NORM_L2, 0.0: K.NORM_ZERO}[norm_type]
    return int(k.value if hasattr(k, "value") else k)


def test_counter_is_reused_across_launches_of_any_size():
    """One counter per device, back at 0 after each launch, whatever the program count."""
    be = TritonBackend(chunk=64)
    counter = be.engine.counter(torch.device(DEVICE))
    for i, sizes in enumerate([[5000], [1], [64, 65, 3], [5000], [1, 1, 1, 9000]]):
        grads = [randn(n, torch.float32, seed=10 * i + j) for j, n in enumerate(sizes)]
        total, coef = be.clip_coef(grads, 2.0, 0.25)
        fresh = TritonBackend(chunk=64).grad_norm(grads, 2.0)
        assert torch.equal(total, fresh)
        assert _same_bits(coef, _torch_coef(total, 0.25))
        assert be.engine.counter(torch.device(DEVICE)) is counter
        assert counter.item() == 0


def test_totals_are_fresh_tensors():
    """The optimizer returns the totals: a later call must not overwrite an earlier one."""
    be = TritonBackend()
    grads = [randn(3000, torch.float32, seed=0)]
    t1, _ = be.clip_coef(grads, 2.0, 1.0)
    kept = t1.clone()
    grads[0].mul_(2.0)
    t2, _ = be.clip_coef(grads, 2.0, 1.0)
    assert torch.equal(t1, kept) and not torch.equal(t1, t2)


class _TorchCoef(TritonBackend):
    """The Triton norm with Backend's torch expression for the coefficient (the former path)."""

    clip_coef = Backend.clip_coef


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_optimizer_clip_matches_torch_coefficient(norm_type, dtype, fused):
    """Optimizer.clip_grad through the finishing launch gives the totals, gradients and (after
    Adam steps) parameters of the torch-expression coefficient, bit for bit."""
    runs = []
    for backend in (TritonBackend(), _TorchCoef()):
        ps = [randn(n, dtype, seed=i).requires_grad_() for i, n in enumerate([1, 2049, 300])]
        group = {"params": ps, "clip_grad_max_norm": 0.1, "clip_grad_norm_type": norm_type}
        opt = fo.Adam([group], lr=0.01, backend=backend)
        totals = []
        for step in range(2):
            for i, p in enumerate(ps):
                p.grad = randn(p.numel(), dtype, seed=100 * step + i)
            totals.append(opt.clip_grad(fused=fused)[0])
            opt.step()
        runs.append((totals, [p.grad for p in ps], [p.detach() for p in ps]))
    (ta, ga, pa), (tb, gb, pb) = runs
    for a, b in zip(ta + ga + pa, tb + gb + pb, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not INTERPRET, reason="counts launches at the interpreter's launch seam")
@pytest.mark.parametrize("n_tensors", [3, 40])
def test_launches_and_torch_ops_per_clip(monkeypatch, n_tensors):
    """+2 launches in place, +1 fused, independent of the tensor count; the only torch op of a
    one-partition clip is the total's allocation (kernels/bench/host_step.py's seam)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from triton.runtime.interpreter import InterpretedFunction

    ps = [randn(n, torch.float32, seed=i).requires_grad_() for i, n in enumerate([5] * n_tensors)]
    for p in ps:
        p.grad = torch.ones_like(p)
    opt = fo.Adam([{"params": ps, "clip_grad_max_norm": 1.0}], lr=0.01, backend="triton")
    for fused in (False, True):  # warm: plans, scal tensors, the counter
        opt.clip_grad(fused=fused)
        opt.step()
    launches: list[str] = []
    ops: list[str] = []

    def count(self, *args, grid, warmup, **kwargs):
        launches.append(self.fn.__name__)

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ops.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    monkeypatch.setattr(InterpretedFunction, "run", count)
    for fused, expected in ((False, ["norm_partial_kernel", "scale_kernel"]),
                            (True, ["norm_partial_kernel"])):  # fmt: skip
        launches.clear()
        ops.clear()
        with Record():
            opt.clip_grad(fused=fused)
        assert launches == expected
        assert ops == ["empty"]
        opt.step()


def test_norm_zero_finish_counts_more_tensors_than_one_tile():
    # norm 0 counts the tensors with a nonzero element; its finish walks the tensors in tiles of
    # ZERO_TILE: 300 tensors take three tiles (every third tensor zero: 200 count)
    assert 2 * K.ZERO_TILE.value < 300
    grads = [torch.full((3,), 0.0 if i % 3 == 0 else 0.5, device=DEVICE) for i in range(300)]
    grads[1][2] = float("-inf")  # still nonzero
    be = TritonBackend()
    total, coef = be.clip_coef(grads, 0.0, 1000.0)
    assert total.item() == 200.0
    assert _same_bits(coef, _torch_coef(total, 1000.0))
    assert be.engine.counter(grads[0].device).item() == 0
