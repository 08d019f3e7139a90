"""Launcher of the ``triton`` backend's row-gather kernels (sparse gradients, spec §5).

Note [sparse plans]
-------------------
A sparse launch needs, besides the hyperparameters, the base addresses of every operand (params,
values, each state, row indices), each tensor's row length ``D``, its number of rows and
``nnz * D``, and the chunk map over the values (Note [row-gather addressing] in
:mod:`flowoptim_triton.sparse_kernels`). All of it is known on the host from tensor metadata
(``nnz`` is the values' first dimension), so it is written into **one** int64 buffer and copied
to the device by a single ``non_blocking`` copy from pinned memory: no host sync. Unlike the dense
plans it is not cached: a sparse gradient, its indices and its values are new tensors at every
step (autograd makes them, coalescing copies them), so a cache keyed on addresses would miss.
The launch is not tuned either: the dense kernels' first config for its element size (``BLOCK``
1024 with 4 warps; 512 for float64; the interpreter's config under ``TRITON_INTERPRET=1``) is
used, since a sparse step's size changes every step and tuning on scratch copies would cost more
than it could save. The AOT audit (``kernels/aot/audit.py``) compiles exactly that config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton.language as tl
from torch import Tensor

from . import autotune_configs as cfgs
from . import launch as L

__all__ = ["SparsePlan", "build_sparse_plan", "launch_sparse", "rows_addressable"]


@dataclass
class SparsePlan:
    """Device tables for one row-gather launch (Note [sparse plans])."""

    n_chunks: int
    chunk: int
    tables: list[Tensor]  # per operand: int64[n_tensors] base addresses (last: row indices)
    row_len: Tensor  # int64[n_tensors]
    n_rows: Tensor  # int64[n_tensors]
    sizes: Tensor  # int64[n_tensors]: nnz * D
    chunk_tensor: Tensor  # int64[n_chunks]
    chunk_start: Tensor  # int64[n_chunks]


def rows_addressable(params: Sequence[Tensor], *states: Sequence[Tensor] | None) -> bool:
    """Whether the kernels can address rows as ``row * D + c``: every param and state tensor
    contiguous (row-major) and at least 1-d. Otherwise the backend gathers and scatters."""
    for lst in (params, *states):
        if lst is None:
            continue
        if not all(t.dim() >= 1 and t.is_contiguous() for t in lst):
            return False
    return True


def build_sparse_plan(
    params: Sequence[Tensor],
    operands: Sequence[Sequence[Tensor]],
    indices: Sequence[Tensor],
    values: Sequence[Tensor],
    chunk: int,
) -> SparsePlan:
    """The plan for ``operands`` (params, values, states ...; the tables are in that order, then
    the indices). Tensors with no value elements must have been left out by the caller."""
    device = params[0].device
    n_t = len(params)
    row_len = [p.numel() // p.shape[0] for p in params]
    n_rows = [p.shape[0] for p in params]
    sizes = [v.numel() for v in values]
    chunk_tensor: list[int] = []
    chunk_start: list[int] = []
    for i, n in enumerate(sizes):
        starts = range(0, n, chunk)
        chunk_tensor.extend([i] * len(starts))
        chunk_start.extend(starts)
    n_c = len(chunk_tensor)
    rows: list[int] = []
    all_ops = [*operands, indices]
    for ops in all_ops:
        rows.extend(x.data_ptr() for x in ops)
    for seq in (row_len, n_rows, sizes, chunk_tensor, chunk_start):
        rows.extend(seq)
    host = torch.tensor(rows, dtype=torch.int64)
    # pinned + non_blocking: no host sync (Note [sparse plans])
    buf = host if device.type == "cpu" else host.pin_memory().to(device, non_blocking=True)
    tables = [buf[j * n_t : (j + 1) * n_t] for j in range(len(all_ops))]
    o = len(all_ops) * n_t
    views = []
    for n in (n_t, n_t, n_t, n_c, n_c):
        views.append(buf[o : o + n])
        o += n
    return SparsePlan(n_c, chunk, tables, *views)


def launch_sparse(
    engine: L.Engine,
    kernel,
    plan: SparsePlan,
    args: Sequence,
    constexprs: dict,
) -> None:
    """One launch of a row-gather kernel, a program per chunk of values, fixed config."""
    if plan.n_chunks == 0:
        return
    # the first of the dense candidates for the element size (Note [tuning space]: float64 takes
    # 4 elements per thread), which the AOT audit compiles for this kernel
    itemsize = 8 if constexprs.get("CT") is tl.float64 else 4
    configs = cfgs.INTERPRET_CONFIGS if L.interpreted() else cfgs.elementwise_configs(itemsize)
    config = configs[0]
    engine.launch(kernel, (plan.n_chunks,), args, constexprs, config)
