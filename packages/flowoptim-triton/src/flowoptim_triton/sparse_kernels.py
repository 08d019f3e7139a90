"""Row-gather kernels of the ``triton`` backend for sparse gradients (spec §5).

Launchers live in :mod:`flowoptim_triton.sparse_launch`, the backend methods at the end of
:class:`flowoptim_triton.backend.TritonBackend`.

Note [row-gather addressing]
----------------------------
One launch per (device, dtype) partition updates the rows named by every parameter's coalesced
sparse gradient (Note [sparse functionals] in ``flowoptim.backends.base``). The launch walks the
*values* (``(nnz, D)`` per tensor, ``D`` the row length ``numel / shape[0]``) with the chunk map
of Note [multi-tensor addressing] (``sizes[t] = nnz_t * D_t``): value element ``e`` of tensor
``t`` is column ``c = e % D`` of value row ``r = e // D``, which belongs to parameter row
``row = indices_t[r]``, so param and state element ``row * D + c`` (params and state are
contiguous; the backend falls back to gather/scatter otherwise). Row numbers are read on the
device from the index tensors (an int64 address table like the others): no host sync, and the
cost is proportional to ``nnz * D``, not to the parameter's size. A row outside ``[0,
n_rows[t])`` is masked out (nothing is read or written for it): the optimizer checks the range
on the CPU, and on CUDA, where that check would need a host sync, a bad hand-built gradient
cannot write outside the parameter.

Each element is then computed with exactly the per-element code of the dense kernel
(``sgd_kernel`` / ``adam_kernel`` in :mod:`flowoptim_triton.kernels`: the same helpers, the same
operations in the same order, fp fusion off), so a gradient naming every row gives the dense
update bit for bit, natively and in the interpreter. (Checked natively by AOT compilation for
sm_90 with triton 3.9, fp32, every structural switch on: the PTX of each sparse kernel has the
same counts of ``div.rn.f32``, ``sqrt.rn.f32`` and ``mul``/``add``/``sub.rn.f32`` as its dense
kernel, and no ``fma``; the bit-for-bit equality itself is tested under the interpreter.)
"""

from __future__ import annotations

import triton
import triton.language as tl

from .kernels import _adam_scalars, _adam_tile, _base, _grad_scale, _locate, _sgd_tile, _unless_inf

__all__ = ["adam_sparse_kernel", "sgd_sparse_kernel"]


@triton.jit
def _row_offsets(
    idx_base,  # typed int64 pointer to the tensor's row indices
    offs,  # int64 offsets into the values (flat)
    mask,  # in-bounds lanes of the values
    D,  # row length (int64)
    n_rows,  # the parameter's number of rows (int64)
):
    # value element -> (value row r, column c) -> parameter element row * D + c; lanes whose
    # row is out of range are masked out (Note [row-gather addressing])
    r = offs // D
    row = tl.load(idx_base + r, mask=mask, other=0)
    pmask = mask & (row >= 0) & (row < n_rows)
    return row * D + (offs - r * D), pmask


@triton.jit
def sgd_sparse_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: values addresses ((nnz, D) contiguous)
    buf_tab,  # int64 table: momentum_buffer addresses (unused unless HAS_MOMENTUM)
    idx_tab,  # int64 table: row-index addresses (int64[nnz], contiguous)
    row_len,  # int64[n_tensors]: D of each tensor
    n_rows,  # int64[n_tensors]: shape[0] of each param (row range mask)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first value element of each chunk
    sizes,  # int64[n_tensors]: nnz * D of each tensor
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[SGD_SCALARS]: lr, momentum, 1 - dampening, wd (Note [kernel scalars])
    CHUNK,  # int: value elements per chunk
    HAS_MOMENTUM: tl.constexpr,  # structural: momentum buffer exists (an extra operand)
    NESTEROV: tl.constexpr,  # structural: nesterov direction
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    DT: tl.constexpr,  # storage dtype (pointer types)
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (a register-shape parameter)
):
    # row-gather addresses are data: the scalar access path (ALIGN False, Note [vectorized access])
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, False)
    # Note [AMP]: found_inf != 0 empties the range, so nothing is stored (as the dense kernels)
    _vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, False)
    p_base = _base(p_tab, t, DT, False)
    g_base = _base(g_tab, t, DT, False)
    buf_base = _base(buf_tab, t, DT, False) if HAS_MOMENTUM else p_base
    idx_base = _base(idx_tab, t, tl.int64, False)
    D = tl.load(row_len + t)
    nr = tl.load(n_rows + t)
    lr = tl.load(scal + 0)
    momentum = tl.load(scal + 1)
    one_minus_dampening = tl.load(scal + 2)
    wd = tl.load(scal + 3)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        poffs, pmask = _row_offsets(idx_base, offs, mask, D, nr)
        # sgd_kernel's per-element code, addressed through poffs
        _sgd_tile(p_base, g_base, buf_base, poffs, pmask, offs, mask, gs, lr, momentum,
                  one_minus_dampening, wd, HAS_MOMENTUM, NESTEROV, MAXIMIZE, HAS_GRAD_SCALE, DT,
                  CT)  # fmt: skip


@triton.jit
def adam_sparse_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: values addresses ((nnz, D) contiguous)
    m_tab,  # int64 table: exp_avg addresses
    v_tab,  # int64 table: exp_avg_sq addresses
    vmax_tab,  # int64 table: max_exp_avg_sq addresses (unused unless AMSGRAD)
    idx_tab,  # int64 table: row-index addresses (int64[nnz], contiguous)
    row_len,  # int64[n_tensors]: D of each tensor
    n_rows,  # int64[n_tensors]: shape[0] of each param (row range mask)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first value element of each chunk
    sizes,  # int64[n_tensors]: nnz * D of each tensor
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[ADAM_SCALARS] (Note [kernel scalars])
    CHUNK,  # int: value elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    DECOUPLED: tl.constexpr,  # structural: AdamW (decay outside the gradient)
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (a register-shape parameter)
):
    # row-gather addresses are data: the scalar access path (ALIGN False, Note [vectorized access])
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, False)
    # Note [AMP]: found_inf != 0 empties the range, so nothing is stored (as the dense kernels)
    _vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, False)
    p_base = _base(p_tab, t, DT, False)
    g_base = _base(g_tab, t, DT, False)
    m_base = _base(m_tab, t, DT, False)
    v_base = _base(v_tab, t, DT, False)
    vmax_base = _base(vmax_tab, t, DT, False) if AMSGRAD else v_base
    idx_base = _base(idx_tab, t, tl.int64, False)
    D = tl.load(row_len + t)
    nr = tl.load(n_rows + t)
    # bc1 is folded into step_size (slot 9), as in adam_kernel
    beta1, one_minus_beta1, beta2, one_minus_beta2, _bc1, sqrt_bc2, eps, wd = _adam_scalars(scal)
    step_size = tl.load(scal + 9)
    lr_wd = tl.load(scal + 10)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        poffs, pmask = _row_offsets(idx_base, offs, mask, D, nr)
        # adam_kernel's per-element code, addressed through poffs
        _adam_tile(p_base, g_base, m_base, v_base, vmax_base, poffs, pmask, offs, mask, gs,
                   beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, wd, step_size,
                   lr_wd, AMSGRAD, DECOUPLED, MAXIMIZE, HAS_GRAD_SCALE, DT, CT)  # fmt: skip
