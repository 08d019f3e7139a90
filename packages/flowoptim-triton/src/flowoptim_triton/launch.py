"""Launchers of the ``triton`` backend: multi-tensor plans, their cache, tuning, launches.

Note [plan cache]
-----------------
A *plan* is what one multi-tensor launch needs besides the hyperparameters: for every operand
(param, grad, each state) an int64 table of base addresses, the tensors' sizes and the chunk map
(Note [multi-tensor addressing] in :mod:`flowoptim_triton.kernels`), all in **one** int64 device
buffer written by a single host-to-device copy from pinned memory (``non_blocking``, so building
a plan never synchronises with the host; the caching host allocator keeps the pinned block alive
until the copy has run). Plans are cached across steps in a small LRU (:data:`MAX_PLANS` per
backend instance).

The cache key is ``(kind, device, dtype, CHUNK, every operand's data_ptr, every tensor's numel)``:
*the whole content of the table*. A hit therefore reproduces exactly the table that would be
built, whatever object now lives at those addresses. That is the guard against address reuse: a
cache keyed on one pointer per tensor, or on the param's pointer alone, breaks when the allocator
hands a freed grad's or state's address to a different tensor (or a tensor of another size, or
when ``p.data`` is replaced), whereas here a different address or size anywhere is a different
key and a rebuilt plan. Identity (``id``, weakrefs) is deliberately *not* part of the key: two
tensors at the same address with the same size are interchangeable for the table, and keying on
identity would only add misses (grads re-created each step at the same address). The cache holds
no tensor references, so it never keeps a freed tensor's memory alive. On a miss every operand is
checked (device, dtype, numel, layout) before anything is launched.

Note [layouts]
--------------
Kernels address the storage linearly, so each operand must be non-overlapping and dense and
share its parameter's strides (contiguous tensors, but also e.g. transposed or channels-last
parameters with matching state). An operand that is not (a strided view parameter, a gradient
in another memory format) is *handled*, not refused: it is copied into a staging tensor with the
parameter's layout (contiguous if the parameter itself is not dense), the launch runs on the
staging tensor, and written operands are copied back afterwards. Correct, but it costs extra
traffic and defeats the plan cache for that partition; dense parameters never take this path.

Note [aligned plans]
--------------------
Whether a partition takes the kernels' 128-bit access path (Note [vectorized access] in
:mod:`flowoptim_triton.kernels`) is decided when its plan is built: ``Plan.align`` is true when
``CHUNK`` is a multiple of :data:`VEC` elements (so every chunk start is) and the base address of
every operand of every tensor is a multiple of :data:`ALIGN_BYTES` (16). :meth:`Engine.run` passes
it as the ``ALIGN`` constexpr of every chunked kernel. Tensor *sizes* are not part of the rule:
the kernels vectorize each chunk up to its last multiple of ``VEC`` and mask only the tail, so a
bias of size 1 or a 50257-row vocabulary does not take its partition off the vector path. Only a
misaligned base does: a dense view at an odd storage offset, which is rare (allocations, and the
staging copies of Note [layouts], are aligned). The address is part of the plan cache key, so the
decision is cached with the plan. :attr:`Engine.vectorize` = False forces the scalar path (tests
compare the two bit for bit).

Note [interpreter]
------------------
With ``TRITON_INTERPRET=1`` (set before ``triton`` kernels are defined) Triton runs kernels on
the CPU with numpy, and the backend accepts CPU tensors: the tables then hold CPU addresses.
Launches are wrapped in ``numpy.errstate(all="ignore")``: masked-out lanes and IEEE special
values (``0/0`` with ``eps=0``) make numpy warn where a GPU computes silently.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import autotune_configs as cfgs

__all__ = ["Engine", "Plan", "interpreted", "tl_dtype"]

#: plans kept per backend instance (LRU).
MAX_PLANS = 64
#: scalar tensors kept per backend instance (LRU; a few hundred bytes each).
MAX_SCALARS = 32
#: elements per vector unit: ``kernels.VEC`` (Note [aligned plans]; a test checks they agree).
VEC = 16
#: base-address alignment of the vector path: one 128-bit access (Note [aligned plans]).
ALIGN_BYTES = 16

#: ``x.data_ptr()`` / ``x.numel()`` as C-level callables for ``map`` (Engine.plan's key; the
#: unbound methods: they honour ``__torch_function__`` as the bound calls do, and cost a third
#: less than ``operator.methodcaller``)
_DATA_PTR = Tensor.data_ptr
_NUMEL = Tensor.numel

_TL_DTYPES = {
    torch.float32: tl.float32,
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
    torch.float64: tl.float64,
}


def tl_dtype(dtype: torch.dtype):
    return _TL_DTYPES[dtype]


def compute_dtype(dtype: torch.dtype):
    """float64 arithmetic for float64 tensors, float32 for everything else."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def _kernels():
    from . import kernels

    return kernels


def interpreted() -> bool:
    """Whether this process's kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` was
    set when :mod:`flowoptim_triton.kernels` was first imported)."""
    if "flowoptim_triton.kernels" not in __import__("sys").modules:
        return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    k = _kernels()
    return type(k.scale_kernel).__name__ == "InterpretedFunction"


def _errstate():
    if interpreted():
        import numpy as np

        return np.errstate(all="ignore")
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------- layouts
def _dense(t: Tensor) -> bool:
    """Non-overlapping and dense (any permutation of a contiguous layout)."""
    if t.is_contiguous():
        return True
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape, strict=True) if n != 1)
    expected = 1
    for s, n in dims:
        if s != expected:
            return False
        expected *= n
    return True


def _strides(t: Tensor) -> tuple[int, ...]:
    return tuple(s for s, n in zip(t.stride(), t.shape, strict=True) if n != 1)


def stage(
    operands: Sequence[Sequence[Tensor]], written: Sequence[bool]
) -> tuple[list[list[Tensor]], list[tuple[Tensor, Tensor]]]:
    """Replace operands the kernels cannot address linearly by staging copies (Note [layouts]).

    ``operands[0]`` are the params. Returns the operand lists to launch on and the
    ``(original, staging)`` pairs to copy back after the launch (written operands only).
    """
    out = [list(ops) for ops in operands]
    writeback: list[tuple[Tensor, Tensor]] = []
    # Fast path: contiguous operands of a contiguous parameter are addressed linearly as they
    # are, so when every tensor is contiguous (the usual case) nothing is staged. One C-level
    # is_contiguous() per tensor instead of the stride comparison below (Adam, 150 tensors:
    # about 1.1 ms less host time per step, kernels/bench/host_step.py).
    if all(all(map(Tensor.is_contiguous, ops)) for ops in operands):
        return out, writeback
    params = operands[0]
    for i, p in enumerate(params):
        if p.numel() <= 1:
            continue
        p_dense = _dense(p)
        ref = _strides(p) if p_dense else None
        for j, ops in enumerate(operands):
            x = ops[i]
            if p_dense and _dense(x) and _strides(x) == ref:
                continue
            if p_dense:
                tmp = torch.empty_like(p)
            else:
                tmp = torch.empty(p.shape, dtype=x.dtype, device=x.device)
            tmp.copy_(x)
            out[j][i] = tmp
            if written[j]:
                writeback.append((x, tmp))
    return out, writeback


# ----------------------------------------------------------------------------- plans
@dataclass
class Plan:
    """Device tables for one multi-tensor launch (Note [plan cache])."""

    device: torch.device
    dtype: torch.dtype
    chunk: int
    n_tensors: int
    n_chunks: int
    numel: int
    align: bool  # every base 16-byte aligned and CHUNK % VEC == 0 (Note [aligned plans])
    tables: list[Tensor]  # per operand: int64[n_tensors] base addresses
    sizes: Tensor  # int64[n_tensors]
    chunk_tensor: Tensor  # int64[n_chunks]
    chunk_start: Tensor  # int64[n_chunks]
    tensor_chunk0: Tensor  # int64[n_tensors]
    tensor_nchunks: Tensor  # int64[n_tensors]
    buffers: dict[str, Tensor] = field(default_factory=dict)  # per-plan scratch (partials ...)

    def buffer(self, name: str, n: int, dtype: torch.dtype) -> Tensor:
        """A cached device buffer of at least ``n`` elements (contents undefined)."""
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = torch.empty(max(n, 1), dtype=dtype, device=self.device)
            self.buffers[name] = buf
        return buf


def _pad(n: int) -> int:
    return n + (n & 1)  # keep every sub-array 16-byte aligned


def build_plan(operands: Sequence[Sequence[Tensor]], chunk: int) -> Plan:
    params = operands[0]
    device, dtype = params[0].device, params[0].dtype
    sizes = [p.numel() for p in params]
    for j, ops in enumerate(operands):
        if len(ops) != len(params):
            raise ValueError(
                f"operand list {j} has {len(ops)} tensors, expected {len(params)} (one per param)"
            )
        for i, x in enumerate(ops):
            if x.device != device or x.dtype != dtype or x.numel() != sizes[i]:
                raise ValueError(
                    f"tensor {i} of operand {j} is {tuple(x.shape)} {x.dtype} on {x.device}; "
                    f"expected {sizes[i]} elements of {dtype} on {device} like its parameter"
                )
    n_t = len(params)
    chunk_tensor: list[int] = []
    chunk_start: list[int] = []
    c0: list[int] = []
    nc: list[int] = []
    for i, n in enumerate(sizes):
        c0.append(len(chunk_tensor))
        starts = range(0, n, chunk)
        nc.append(len(starts))
        chunk_tensor.extend([i] * len(starts))
        chunk_start.extend(starts)
    n_c = len(chunk_tensor)
    pt, pc = _pad(n_t), _pad(n_c)
    rows: list[int] = []
    for ops in operands:
        rows.extend(x.data_ptr() for x in ops)
        rows.extend([0] * (pt - n_t))
    # Note [aligned plans]: every address of the table (padding rows are 0) and the chunk size
    align = chunk % VEC == 0 and all(a % ALIGN_BYTES == 0 for a in rows)
    meta_off = len(rows)
    for seq, width in ((sizes, pt), (chunk_tensor, pc), (chunk_start, pc), (c0, pt), (nc, pt)):
        rows.extend(seq)
        rows.extend([0] * (width - len(seq)))
    host = torch.tensor(rows, dtype=torch.int64)
    # pinned + non_blocking: no host sync (Note [plan cache])
    buf = host if device.type == "cpu" else host.pin_memory().to(device, non_blocking=True)
    tables = [buf[j * pt : j * pt + n_t] for j in range(len(operands))]
    o = meta_off
    views = []
    for width, n in ((pt, n_t), (pc, n_c), (pc, n_c), (pt, n_t), (pt, n_t)):
        views.append(buf[o : o + n])
        o += width
    return Plan(
        device=device,
        dtype=dtype,
        chunk=chunk,
        n_tensors=n_t,
        n_chunks=n_c,
        numel=sum(sizes),
        align=align,
        tables=tables,
        sizes=views[0],
        chunk_tensor=views[1],
        chunk_start=views[2],
        tensor_chunk0=views[3],
        tensor_nchunks=views[4],
    )


# ----------------------------------------------------------------------------- tuning
def _time_ms(fn: Callable[[], None], device: torch.device) -> float:
    if device.type == "cuda":
        return float(triton.testing.do_bench(fn, warmup=5, rep=25))
    fn()  # warm-up (compiles)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


class Tuner:
    """Picks a config per key by benchmarking on scratch copies (Note [autotuning])."""

    def __init__(self, configs: Sequence[triton.Config] | Callable[[int], Sequence[triton.Config]]):
        # a fixed list, or the candidates as a function of the element size in bytes
        # (autotune_configs.elementwise_configs: Note [tuning space])
        self._configs = configs if callable(configs) else list(configs)
        self.chosen: dict[tuple, triton.Config] = {}
        self.benchmarked = 0  # number of (key, config) benchmarks run (tests read it)

    def candidates(self, itemsize: int) -> list[triton.Config]:
        c = self._configs
        return list(c(itemsize)) if callable(c) else c

    def pick(
        self,
        key: tuple,
        device: torch.device,
        bench: Callable[[triton.Config], None],
        itemsize: int = 4,
    ) -> triton.Config:
        configs = self.candidates(itemsize)
        if len(configs) == 1:
            return configs[0]
        cfg = self.chosen.get(key)
        if cfg is None:
            timings = []
            for c in configs:
                timings.append(_time_ms(lambda c=c: bench(c), device))
                self.benchmarked += 1
            cfg = configs[min(range(len(timings)), key=timings.__getitem__)]
            self.chosen[key] = cfg
        return cfg


# ----------------------------------------------------------------------------- engine
class Engine:
    """Plan cache + tuner + launch helper, one per backend instance."""

    def __init__(
        self,
        chunk: int | None = None,
        configs: Sequence[triton.Config] | None = None,
        reduction_config: triton.Config | None = None,
    ):
        self._chunk = chunk
        self._configs = configs
        # None: autotune_configs.reduction_config of the partition's dtype (Note [tuning space])
        self.reduction_config = reduction_config
        self._tuner: Tuner | None = None
        self._plans: OrderedDict[tuple, Plan] = OrderedDict()
        self.plan_builds = 0  # number of plans built (tests read it)
        self._scalars: OrderedDict[tuple, Tensor] = OrderedDict()
        self.scalar_uploads = 0  # number of scalar tensors built (tests read it)
        self._counters: dict[torch.device, Tensor] = {}  # Note [last-program finish]
        #: False forces the scalar access path of every chunked kernel (Note [aligned plans])
        self.vectorize = True

    def scalars(self, values: Sequence[float], dtype: torch.dtype, device: torch.device) -> Tensor:
        """The kernels' ``scal`` tensor (Note [kernel scalars] in kernels.py): ``values`` as a
        1-d ``dtype`` tensor on ``device``, built with no host sync (pinned + ``non_blocking``,
        as the plans) and reused while the same values come back (kernels only read it).

        ``values`` are rounded to ``dtype`` by ``torch.tensor`` (to nearest, overflowing to inf,
        as torch rounds a Python scalar operand of a ``dtype`` tensor); the update launchers
        round them first (Note [kernel scalars]), the clip coefficient's do not (Note [clip
        coefficient] in ``flowoptim.backends.base``). The key holds the values as given.
        """
        values = [float(v) for v in values]
        # keyed on the exact bits (-0.0 and 0.0 differ, a NaN finds itself)
        key = (device, dtype, struct.pack(f"{len(values)}d", *values))
        t = self._scalars.get(key)
        if t is not None:
            self._scalars.move_to_end(key)
            return t
        host = torch.tensor(values, dtype=dtype)
        t = host if device.type == "cpu" else host.pin_memory().to(device, non_blocking=True)
        self.scalar_uploads += 1
        self._scalars[key] = t
        while len(self._scalars) > MAX_SCALARS:
            self._scalars.popitem(last=False)
        return t

    def counter(self, device: torch.device) -> Tensor:
        """The int32 ticket counter of the grad-norm launches on ``device`` (Note [last-program
        finish] in kernels.py): zeroed once, here, on the first call for the device; the
        kernels leave it at 0 after every launch, so later calls allocate nothing (CUDA-graph
        capture included)."""
        c = self._counters.get(device)
        if c is None:
            c = self._counters[device] = torch.zeros(1, dtype=torch.int32, device=device)
        return c

    @property
    def chunk(self) -> int:
        if self._chunk is None:
            self._chunk = cfgs.CHUNK_INTERPRET if interpreted() else cfgs.CHUNK_CUDA
        return self._chunk

    @property
    def tuner(self) -> Tuner:
        if self._tuner is None:
            configs = self._configs
            if configs is None:
                configs = cfgs.INTERPRET_CONFIGS if interpreted() else cfgs.elementwise_configs
            self._tuner = Tuner(configs)
        return self._tuner

    def plan(
        self,
        kind: str,
        operands: Sequence[Sequence[Tensor]],
        validate: Callable[[Sequence[Tensor]], None] | None = None,
    ) -> Plan:
        """The cached plan for ``operands`` (``operands[0]``: the params); on a miss
        ``validate(params)`` runs first, then every operand is checked against its param."""
        p0 = operands[0][0]
        # one C-level map per field instead of a generator: the key is built at every step
        # (Adam, 150 tensors: 104 -> about 40 us; kernels/bench/host_step.py --breakdown)
        key = (
            kind,
            p0.device,
            p0.dtype,
            self.chunk,
            tuple(map(_DATA_PTR, itertools.chain.from_iterable(operands))),
            tuple(map(_NUMEL, operands[0])),
        )
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
            return plan
        if validate is not None:
            validate(operands[0])
        plan = build_plan(operands, self.chunk)
        self.plan_builds += 1
        self._plans[key] = plan
        while len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return plan

    def launch(
        self,
        kernel,
        grid: tuple[int, ...],
        args: Sequence,
        constexprs: dict,
        config: triton.Config | None = None,
    ) -> None:
        """Launch ``kernel`` once; ``config`` supplies ``BLOCK``-like constexprs and num_warps."""
        kwargs = dict(constexprs)
        num_warps = 4
        if config is not None:
            kwargs.update(config.kwargs)
            num_warps = config.num_warps
            if config.maxnreg is not None:
                kwargs["maxnreg"] = config.maxnreg  # Note [tuning space]
        with _errstate():
            # Note [native arithmetic] (kernels.py): no fp contraction in any kernel
            kernel[grid](*args, **kwargs, num_warps=num_warps, enable_fp_fusion=False)

    def run(
        self,
        name: str,
        kernel,
        operands: Sequence[Sequence[Tensor]],
        written: Sequence[bool],
        make_args: Callable[[Plan], Sequence],
        constexprs: dict,
        *,
        tunable: bool = True,
        plan: Plan | None = None,
        validate: Callable[[Sequence[Tensor]], None] | None = None,
    ) -> Plan:
        """One multi-tensor launch of ``kernel`` over ``operands`` (grid: one program per chunk).

        ``make_args(plan)`` gives the kernel's positional arguments for a plan; it is called
        for scratch plans too while tuning, so it must take every tensor from the plan. The
        kernel must take the ``ALIGN`` constexpr (added here).
        """
        if plan is None:
            plan = self.plan(name, operands, validate)
        if plan.n_chunks == 0:
            return plan
        # every chunked kernel takes ALIGN; decided by the plan (Note [aligned plans]). Tuning
        # runs on scratch copies of the written operands with the same ALIGN: when it is True
        # every original is aligned, and so are the fresh copies.
        constexprs = {**constexprs, "ALIGN": plan.align and self.vectorize}
        if tunable:
            key = (
                name,
                tuple(sorted((k, str(v)) for k, v in constexprs.items())),
                plan.dtype,
                plan.device.type,
                cfgs.size_bucket(plan.numel),
            )
            bench = self._scratch_bench(kernel, operands, written, make_args, constexprs)
            config = self.tuner.pick(key, plan.device, bench, plan.dtype.itemsize)
        else:
            config = self.reduction_config or cfgs.reduction_config(plan.dtype.itemsize)
        self.launch(kernel, (plan.n_chunks,), make_args(plan), constexprs, config)
        return plan

    def _scratch_bench(self, kernel, operands, written, make_args, constexprs):
        """A benchmark closure that launches on scratch copies, never on ``operands``."""
        state: dict[str, object] = {}

        def bench(config: triton.Config) -> None:
            if "plan" not in state:
                cap = 1 << cfgs.TUNE_MAX_LOG2
                idx, total = [], 0
                for i, p in enumerate(operands[0]):
                    if total >= cap:
                        break
                    if p.numel() > 0:
                        idx.append(i)
                        total += p.numel()
                scratch = [
                    [ops[i].detach().clone() if written[j] else ops[i] for i in idx]
                    for j, ops in enumerate(operands)
                ]
                state["operands"] = scratch  # keeps the copies alive while tuning
                state["plan"] = build_plan(scratch, self.chunk)
            plan = state["plan"]
            self.launch(kernel, (plan.n_chunks,), make_args(plan), constexprs, config)

        return bench
