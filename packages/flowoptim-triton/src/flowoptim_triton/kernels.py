"""Triton kernels of the ``triton`` backend: ``@triton.jit`` functions only.

Launchers, plans and the backend adapter live in :mod:`flowoptim_triton.launch` and
:mod:`flowoptim_triton.backend`; configurations in :mod:`flowoptim_triton.autotune_configs`.

Note [multi-tensor addressing]
------------------------------
Every kernel updates a whole (device, dtype) partition in one launch. It receives, per operand
(param, grad, each state), an int64 *table* holding the base address of that operand for every
tensor of the partition, plus three int64 arrays describing the *chunks*: a chunk is a run of at
most ``CHUNK`` elements of one tensor, and program ``pid`` handles chunk ``pid``:
``chunk_tensor[pid]`` (the tensor index), ``chunk_start[pid]`` (its first element, int64) and
``sizes[t]`` (the tensor's numel, int64). A program turns the tensor's table entry into a typed
pointer with ``tl.load(table + t).to(tl.pointer_type(DT))`` (the int-to-pointer cast of Triton's
grouped-GEMM tutorial; it works natively and, verified with triton 3.9, under
``TRITON_INTERPRET=1``, where the addresses are those of CPU tensors) and walks its chunk in
tiles of ``BLOCK`` elements. Offsets are int64 throughout, so tensors over 2**31 elements work.
``CHUNK`` is a runtime integer fixed per backend (it never changes between steps, so it never
causes a recompile); ``BLOCK`` is a tuned constexpr and does not change the chunk map.

Note [kernel arithmetic]
------------------------
Elements are loaded in the storage dtype ``DT`` and computed in ``CT`` (float32; float64 for
float64 tensors). Hyperparameters are runtime float32 scalars, already rounded and combined on
the host exactly as float32 arithmetic would (Note [float32 hyperparameters] in
``flowoptim.backends.base``), so a scheduler changing lr never recompiles. ``tl.constexpr``
parameters are structural switches only; each says why it is one. New state is rounded to ``DT``
when stored (fp16/bf16 state, as torch). Weight decay is applied with ``tl.where(wd != 0, ...)``
so that ``wd == 0`` leaves ``g`` exactly as it was even for infinite ``p`` (``0 * inf`` is nan).

Note [deterministic reductions]
-------------------------------
No float atomics anywhere. A reduction writes one partial per chunk (a fixed function of the
chunk's elements, the fixed reduction config and the fixed ``CHUNK``), and a second, tiny launch
combines the partials in index order. The same inputs therefore give bit-identical results on
every run. The max/min reductions use ``tl.reduce`` with NaN-propagating combiners (``max|g|``
over a NaN gradient is NaN, as in torch), independent of how a backend lowers ``tl.maximum``.
"""

from __future__ import annotations

import triton
import triton.language as tl

# +inf as a compile-time constant (the identity of the -inf norm's min-reduction).
INF: tl.constexpr = tl.constexpr(float("inf"))

# NORM kinds of the grad-norm kernels (a constexpr: each kind is a different reduction).
NORM_L2: tl.constexpr = tl.constexpr(0)
NORM_L1: tl.constexpr = tl.constexpr(1)
NORM_INF: tl.constexpr = tl.constexpr(2)
NORM_NEG_INF: tl.constexpr = tl.constexpr(3)
NORM_ZERO: tl.constexpr = tl.constexpr(4)
NORM_P: tl.constexpr = tl.constexpr(5)


# ----------------------------------------------------------------------------- helpers
@triton.jit
def _locate(
    chunk_tensor,  # int64[n_chunks]: tensor index of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk within its tensor
    sizes,  # int64[n_tensors]: numel of each tensor
    CHUNK,  # runtime int: elements per chunk (fixed per backend)
):
    pid = tl.program_id(0)
    t = tl.load(chunk_tensor + pid)
    start = tl.load(chunk_start + pid)
    n = tl.load(sizes + t)
    end = tl.minimum(start + CHUNK, n)
    return pid, t, start, end


@triton.jit
def _base(
    table,  # int64[n_tensors]: base addresses of one operand
    t,  # tensor index
    DT: tl.constexpr,  # element type the address points to (typed pointer)
):
    return tl.load(table + t).to(tl.pointer_type(DT))


@triton.jit
def _to_dt(
    x,  # values in the compute dtype
    DT: tl.constexpr,  # storage dtype to round to
):
    # Round to the storage dtype, to nearest even. bfloat16 is rounded by hand: Triton's
    # interpreter truncates float32 -> bfloat16 (verified with triton 3.9), while CUDA rounds to
    # nearest; doing it explicitly gives the same bits in both (integer ops: free in a
    # memory-bound kernel). NaN is kept as NaN (the rounding bias could carry it into inf).
    if DT == tl.bfloat16:  # noqa: SIM300 (DT is a constexpr parameter)
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
        r = tl.where(x != x, x, bits.to(tl.float32, bitcast=True))
        return r.to(DT)
    else:
        return x.to(DT)


@triton.jit
def _load_grad(
    g_base,  # typed pointer to the gradient
    offs,  # int64 offsets of the tile
    mask,  # in-bounds lanes
    gs,  # the grad_scale value (ignored unless HAS_GRAD_SCALE)
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip on/off (Note [grad_scale])
    MAXIMIZE: tl.constexpr,  # structural: negate g after grad_scale (Note [maximize])
    DT: tl.constexpr,  # storage dtype (the scaled gradient is rounded to it)
    CT: tl.constexpr,  # compute dtype
):
    # g, times grad_scale (rounded to DT), negated for maximize: before weight decay
    g = tl.load(g_base + offs, mask=mask, other=0.0).to(CT)
    if HAS_GRAD_SCALE:
        g = _to_dt(g * gs, DT).to(CT)
    if MAXIMIZE:
        g = -g
    return g


@triton.jit
def _max_nan(a, b):
    # NaN-propagating max combiner (tl.maximum may drop NaN natively).
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def _min_nan(a, b):
    # NaN-propagating min combiner.
    return tl.where((a < b) | (a != a), a, b)


# ----------------------------------------------------------------------------- SGD
@triton.jit
def sgd_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses
    buf_tab,  # int64 table: momentum_buffer addresses (unused unless HAS_MOMENTUM)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    lr,  # f32: learning rate
    momentum,  # f32: momentum
    one_minus_dampening,  # f32: 1 - dampening
    wd,  # f32: weight decay (L2)
    CHUNK,  # int: elements per chunk
    HAS_MOMENTUM: tl.constexpr,  # structural: momentum buffer exists (an extra operand)
    NESTEROV: tl.constexpr,  # structural: nesterov direction
    MAXIMIZE: tl.constexpr,  # structural: negate g
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    DT: tl.constexpr,  # storage dtype (pointer types)
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned; a register-shape parameter)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
        g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
        g = tl.where(wd != 0.0, g + wd * p, g)
        d = g
        if HAS_MOMENTUM:
            buf_base = _base(buf_tab, t, DT)
            buf = tl.load(buf_base + offs, mask=mask, other=0.0).to(CT)
            buf = momentum * buf + one_minus_dampening * g
            tl.store(buf_base + offs, _to_dt(buf, DT), mask=mask)
            if NESTEROV:  # noqa: SIM108 (constexpr branches read as the spec)
                d = g + momentum * buf
            else:
                d = buf
        p = p - lr * d
        tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


# ----------------------------------------------------------------------------- Adam / AdamW
@triton.jit
def adam_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses
    m_tab,  # int64 table: exp_avg addresses
    v_tab,  # int64 table: exp_avg_sq addresses
    vmax_tab,  # int64 table: max_exp_avg_sq addresses (unused unless AMSGRAD)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    beta1,  # f32: beta1
    one_minus_beta1,  # f32: 1 - beta1
    beta2,  # f32: beta2
    one_minus_beta2,  # f32: 1 - beta2
    step_size,  # f32: lr / bc1
    sqrt_bc2,  # f32: sqrt(bc2)
    eps,  # f32: eps
    wd,  # f32: weight decay (L2 unless DECOUPLED)
    lr_wd,  # f32: lr * weight_decay (decoupled decay)
    CHUNK,  # int: elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    DECOUPLED: tl.constexpr,  # structural: AdamW (decay outside the gradient)
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    m_base = _base(m_tab, t, DT)
    v_base = _base(v_tab, t, DT)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
        g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
        if not DECOUPLED:
            g = tl.where(wd != 0.0, g + wd * p, g)
        m = tl.load(m_base + offs, mask=mask, other=0.0).to(CT)
        v = tl.load(v_base + offs, mask=mask, other=0.0).to(CT)
        m = beta1 * m + one_minus_beta1 * g
        v = beta2 * v + one_minus_beta2 * (g * g)
        tl.store(m_base + offs, _to_dt(m, DT), mask=mask)
        tl.store(v_base + offs, _to_dt(v, DT), mask=mask)
        vv = v
        if AMSGRAD:
            vmax_base = _base(vmax_tab, t, DT)
            vmax = tl.load(vmax_base + offs, mask=mask, other=0.0).to(CT)
            vmax = tl.where(v > vmax, v, vmax)
            tl.store(vmax_base + offs, _to_dt(vmax, DT), mask=mask)
            vv = vmax
        denom = tl.sqrt(vv) / sqrt_bc2 + eps
        new_p = p - step_size * (m / denom)
        if DECOUPLED:
            new_p = tl.where(lr_wd != 0.0, new_p - lr_wd * p, new_p)
        tl.store(p_base + offs, _to_dt(new_p, DT), mask=mask)


# ----------------------------------------------------------------------------- LAMB
@triton.jit
def _lamb_tile(
    p_base,
    g_base,
    m_base,
    v_base,
    vmax_base,  # typed pointers of the tensor's operands
    offs,  # int64 offsets of the tile
    mask,  # in-bounds lanes
    gs,  # grad_scale value (ignored unless HAS_GRAD_SCALE)
    beta1,
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    bc1,
    sqrt_bc2,
    eps,
    wd,  # f32 scalars
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    ADAM_W: tl.constexpr,  # structural: decay outside the gradient
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
):
    # the LAMB moments and Adam direction u of one tile, in CT, from p, g and the *old* state
    p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
    g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
    if not ADAM_W:
        g = tl.where(wd != 0.0, g + wd * p, g)
    m = tl.load(m_base + offs, mask=mask, other=0.0).to(CT)
    v = tl.load(v_base + offs, mask=mask, other=0.0).to(CT)
    m = beta1 * m + one_minus_beta1 * g
    v = beta2 * v + one_minus_beta2 * (g * g)
    vv = v
    if AMSGRAD:
        vmax = tl.load(vmax_base + offs, mask=mask, other=0.0).to(CT)
        vv = tl.where(v > vmax, v, vmax)
    u = (m / bc1) / (tl.sqrt(vv) / sqrt_bc2 + eps)
    return p, m, v, vv, u


@triton.jit
def lamb_pass1_kernel(
    p_tab,  # int64 table: param addresses (read only in this pass)
    g_tab,  # int64 table: grad addresses
    m_tab,  # int64 table: exp_avg addresses
    v_tab,  # int64 table: exp_avg_sq addresses
    vmax_tab,  # int64 table: max_exp_avg_sq addresses (unused unless AMSGRAD)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    w_part,  # CT[n_chunks] out: per-chunk sum of p^2
    u_part,  # CT[n_chunks] out: per-chunk sum of u^2
    beta1,  # f32: beta1
    one_minus_beta1,  # f32: 1 - beta1
    beta2,  # f32: beta2
    one_minus_beta2,  # f32: 1 - beta2
    bc1,  # f32: bias correction 1 (1 without bias correction)
    sqrt_bc2,  # f32: sqrt(bias correction 2)
    eps,  # f32: eps
    wd,  # f32: weight decay (in g unless ADAM_W)
    CHUNK,  # int: elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    ADAM_W: tl.constexpr,  # structural: decay outside the gradient
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    WRITE_STATE: tl.constexpr,  # structural: store m, v here (exact dtypes) or in pass 2
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (fixed, not tuned: it shapes the partial sums)
):
    pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    m_base = _base(m_tab, t, DT)
    v_base = _base(v_tab, t, DT)
    vmax_base = _base(vmax_tab, t, DT)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    acc_w = tl.zeros([BLOCK], dtype=CT)
    acc_u = tl.zeros([BLOCK], dtype=CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        p, m, v, vv, u = _lamb_tile(
            p_base, g_base, m_base, v_base, vmax_base, offs, mask, gs,
            beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, sqrt_bc2, eps, wd,
            AMSGRAD, ADAM_W, HAS_GRAD_SCALE, MAXIMIZE, DT, CT,
        )  # fmt: skip
        if WRITE_STATE:
            tl.store(m_base + offs, _to_dt(m, DT), mask=mask)
            tl.store(v_base + offs, _to_dt(v, DT), mask=mask)
            if AMSGRAD:
                tl.store(vmax_base + offs, _to_dt(vv, DT), mask=mask)
        acc_w += tl.where(mask, p * p, 0.0)
        acc_u += tl.where(mask, u * u, 0.0)
    tl.store(w_part + pid, tl.sum(acc_w, axis=0))
    tl.store(u_part + pid, tl.sum(acc_u, axis=0))


@triton.jit
def _trust(
    w_sq,  # sum of p^2 of the tensor
    u_sq,  # sum of u^2 of the tensor
    lr,  # f32: learning rate
):
    w_norm = tl.sqrt(w_sq)
    u_norm = tl.sqrt(u_sq)
    ok = (w_norm > 0.0) & (u_norm > 0.0)
    trust = tl.where(ok, w_norm / tl.where(ok, u_norm, 1.0), 1.0)
    return lr * trust


@triton.jit
def lamb_norms_kernel(
    w_part,  # CT[n_chunks]: per-chunk sum of p^2 (from pass 1)
    u_part,  # CT[n_chunks]: per-chunk sum of u^2 (from pass 1)
    tensor_chunk0,  # int64[n_tensors]: first chunk of each tensor
    tensor_nchunks,  # int64[n_tensors]: number of chunks of each tensor
    sums,  # CT[2, n_tensors] out: per-tensor sums of squares (row 0: p, row 1: u)
    lr_trust,  # CT[n_tensors] out: lr * trust ratio (only if WRITE_TRUST)
    lr,  # f32: learning rate
    n_tensors,  # int: number of tensors (row stride of sums)
    WRITE_TRUST: tl.constexpr,  # structural: False when a norm_reduce hook must run first
    CT: tl.constexpr,  # compute dtype
    RBLOCK: tl.constexpr,  # partials per tile (fixed: shapes the reduction)
):
    # one program per tensor: its partials summed in chunk order (deterministic)
    t = tl.program_id(0)
    c0 = tl.load(tensor_chunk0 + t)
    nc = tl.load(tensor_nchunks + t)
    acc_w = tl.zeros([RBLOCK], dtype=CT)
    acc_u = tl.zeros([RBLOCK], dtype=CT)
    for j in range(0, nc, RBLOCK):
        idx = j + tl.arange(0, RBLOCK)
        mask = idx < nc
        acc_w += tl.load(w_part + c0 + idx, mask=mask, other=0.0)
        acc_u += tl.load(u_part + c0 + idx, mask=mask, other=0.0)
    w_sq = tl.sum(acc_w, axis=0)
    u_sq = tl.sum(acc_u, axis=0)
    tl.store(sums + t, w_sq)
    tl.store(sums + n_tensors + t, u_sq)
    if WRITE_TRUST:
        tl.store(lr_trust + t, _trust(w_sq, u_sq, lr))


@triton.jit
def lamb_trust_kernel(
    sums,  # CT[2, n_tensors]: per-tensor sums of squares, reduced across ranks by the hook
    lr_trust,  # CT[n_tensors] out: lr * trust ratio of each tensor
    lr,  # f32: learning rate
    n_tensors,  # int: number of tensors
    CT: tl.constexpr,  # compute dtype
    RBLOCK: tl.constexpr,  # tensors per tile
):
    offs = tl.program_id(0) * RBLOCK + tl.arange(0, RBLOCK)
    mask = offs < n_tensors
    w_sq = tl.load(sums + offs, mask=mask, other=0.0).to(CT)
    u_sq = tl.load(sums + n_tensors + offs, mask=mask, other=0.0).to(CT)
    tl.store(lr_trust + offs, _trust(w_sq, u_sq, lr), mask=mask)


@triton.jit
def lamb_pass2_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses (read only unless WRITE_STATE is False)
    m_tab,  # int64 table: exp_avg addresses
    v_tab,  # int64 table: exp_avg_sq addresses
    vmax_tab,  # int64 table: max_exp_avg_sq addresses (unused unless AMSGRAD)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    lr_trust,  # CT[n_tensors]: lr * trust ratio of each tensor
    beta1,  # f32: beta1
    one_minus_beta1,  # f32: 1 - beta1
    beta2,  # f32: beta2
    one_minus_beta2,  # f32: 1 - beta2
    bc1,  # f32: bias correction 1
    sqrt_bc2,  # f32: sqrt(bias correction 2)
    eps,  # f32: eps
    wd,  # f32: weight decay
    CHUNK,  # int: elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    ADAM_W: tl.constexpr,  # structural: decoupled decay term in the update
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    WRITE_STATE: tl.constexpr,  # structural: pass 1 stored the state (else recompute + store)
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned; elementwise)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    m_base = _base(m_tab, t, DT)
    v_base = _base(v_tab, t, DT)
    vmax_base = _base(vmax_tab, t, DT)
    coef = tl.load(lr_trust + t)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        if WRITE_STATE:
            # float32/float64: the state pass 1 stored is exactly what it computed
            p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
            m = tl.load(m_base + offs, mask=mask, other=0.0).to(CT)
            if AMSGRAD:
                vv = tl.load(vmax_base + offs, mask=mask, other=0.0).to(CT)
            else:
                vv = tl.load(v_base + offs, mask=mask, other=0.0).to(CT)
            u = (m / bc1) / (tl.sqrt(vv) / sqrt_bc2 + eps)
        else:
            # fp16/bf16: recompute from the old state and g, bit-identical to pass 1, so the
            # step uses unrounded moments (as the norms did); store the state now
            p, m, v, vv, u = _lamb_tile(
                p_base, g_base, m_base, v_base, vmax_base, offs, mask, gs,
                beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, sqrt_bc2, eps, wd,
                AMSGRAD, ADAM_W, HAS_GRAD_SCALE, MAXIMIZE, DT, CT,
            )  # fmt: skip
            tl.store(m_base + offs, _to_dt(m, DT), mask=mask)
            tl.store(v_base + offs, _to_dt(v, DT), mask=mask)
            if AMSGRAD:
                tl.store(vmax_base + offs, _to_dt(vv, DT), mask=mask)
        if ADAM_W:
            u = tl.where(wd != 0.0, u + wd * p, u)
        p = p - coef * u
        tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


# ----------------------------------------------------------------------------- RMSprop
@triton.jit
def rmsprop_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses
    sq_tab,  # int64 table: square_avg addresses
    ga_tab,  # int64 table: grad_avg addresses (unused unless CENTERED)
    buf_tab,  # int64 table: momentum_buffer addresses (unused unless HAS_MOMENTUM)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    lr,  # f32: learning rate
    alpha,  # f32: alpha
    one_minus_alpha,  # f32: 1 - alpha
    eps,  # f32: eps (inside the sqrt)
    wd,  # f32: weight decay (L2)
    momentum,  # f32: momentum
    CHUNK,  # int: elements per chunk
    CENTERED: tl.constexpr,  # structural: grad_avg operand
    HAS_MOMENTUM: tl.constexpr,  # structural: momentum_buffer operand
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    sq_base = _base(sq_tab, t, DT)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
        g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
        g = tl.where(wd != 0.0, g + wd * p, g)
        r = tl.load(sq_base + offs, mask=mask, other=0.0).to(CT)
        r = alpha * r + one_minus_alpha * (g * g)
        tl.store(sq_base + offs, _to_dt(r, DT), mask=mask)
        den = r
        if CENTERED:
            ga_base = _base(ga_tab, t, DT)
            a = tl.load(ga_base + offs, mask=mask, other=0.0).to(CT)
            a = alpha * a + one_minus_alpha * g
            tl.store(ga_base + offs, _to_dt(a, DT), mask=mask)
            den = r - a * a
        step = lr * (g / tl.sqrt(den + eps))
        if HAS_MOMENTUM:
            buf_base = _base(buf_tab, t, DT)
            buf = tl.load(buf_base + offs, mask=mask, other=0.0).to(CT)
            buf = momentum * buf + step
            tl.store(buf_base + offs, _to_dt(buf, DT), mask=mask)
            p = p - buf
        else:
            p = p - step
        tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


# ----------------------------------------------------------------------------- Adagrad
@triton.jit
def adagrad_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses
    sum_tab,  # int64 table: sum addresses
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    clr,  # f32: lr / (1 + (t-1) * lr_decay)
    eps,  # f32: eps (outside the sqrt)
    wd,  # f32: weight decay (L2)
    CHUNK,  # int: elements per chunk
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    s_base = _base(sum_tab, t, DT)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
        g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
        g = tl.where(wd != 0.0, g + wd * p, g)
        s = tl.load(s_base + offs, mask=mask, other=0.0).to(CT)
        s = s + g * g
        tl.store(s_base + offs, _to_dt(s, DT), mask=mask)
        p = p - clr * (g / (tl.sqrt(s) + eps))
        tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


# ----------------------------------------------------------------------------- Adadelta
@triton.jit
def adadelta_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses
    sq_tab,  # int64 table: square_avg addresses
    ad_tab,  # int64 table: acc_delta addresses
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d float32 clip coefficient (unused unless HAS_GRAD_SCALE)
    lr,  # f32: learning rate
    rho,  # f32: rho
    one_minus_rho,  # f32: 1 - rho
    eps,  # f32: eps
    wd,  # f32: weight decay (L2)
    CHUNK,  # int: elements per chunk
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    p_base = _base(p_tab, t, DT)
    g_base = _base(g_tab, t, DT)
    sq_base = _base(sq_tab, t, DT)
    ad_base = _base(ad_tab, t, DT)
    gs = 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
        g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
        g = tl.where(wd != 0.0, g + wd * p, g)
        sa = tl.load(sq_base + offs, mask=mask, other=0.0).to(CT)
        ad = tl.load(ad_base + offs, mask=mask, other=0.0).to(CT)
        sa = rho * sa + one_minus_rho * (g * g)
        d = tl.sqrt(ad + eps) / tl.sqrt(sa + eps) * g
        ad = rho * ad + one_minus_rho * (d * d)
        tl.store(sq_base + offs, _to_dt(sa, DT), mask=mask)
        tl.store(ad_base + offs, _to_dt(ad, DT), mask=mask)
        p = p - lr * d
        tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


# ----------------------------------------------------------------------------- clip_grad
@triton.jit
def norm_partial_kernel(
    g_tab,  # int64 table: grad addresses
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    part,  # CT[n_chunks] out: the chunk's partial (sum, max, min or nonzero flag)
    norm_p,  # f32: the norm order (used only for NORM == NORM_P)
    CHUNK,  # int: elements per chunk
    NORM: tl.constexpr,  # structural: which reduction (NORM_* constants)
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (fixed, not tuned: it shapes the partials)
):
    pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    g_base = _base(g_tab, t, DT)
    if NORM == NORM_NEG_INF:  # noqa: SIM108
        acc = tl.full([BLOCK], INF, CT)
    else:
        acc = tl.zeros([BLOCK], dtype=CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        a = tl.abs(tl.load(g_base + offs, mask=mask, other=0.0).to(CT))
        if NORM == NORM_L2:
            acc += a * a
        elif NORM == NORM_L1:
            acc += a
        elif NORM == NORM_INF:
            acc = _max_nan(a, acc)
        elif NORM == NORM_NEG_INF:
            acc = _min_nan(tl.where(mask, a, INF), acc)
        elif NORM == NORM_ZERO:
            acc = tl.where(a != 0.0, 1.0, acc)
        else:
            acc += tl.where(mask, tl.exp2(norm_p * tl.log2(a)), 0.0)
    if NORM == NORM_INF:
        r = tl.reduce(acc, 0, _max_nan)
    elif NORM == NORM_NEG_INF:
        r = tl.reduce(acc, 0, _min_nan)
    elif NORM == NORM_ZERO:
        r = tl.max(acc, axis=0)
    else:
        r = tl.sum(acc, axis=0)
    tl.store(part + pid, r)


@triton.jit
def norm_final_kernel(
    part,  # CT[n_chunks]: partials from norm_partial_kernel
    n_chunks,  # int: number of chunks
    tensor_chunk0,  # int64[n_tensors]: first chunk of each tensor
    tensor_nchunks,  # int64[n_tensors]: number of chunks of each tensor
    n_tensors,  # int: number of tensors
    out,  # CT[] out: the norm
    norm_p,  # f32: the norm order (NORM_P only)
    NORM: tl.constexpr,  # structural: which reduction
    CT: tl.constexpr,  # compute dtype
    RBLOCK: tl.constexpr,  # partials per tile (fixed: shapes the reduction)
):
    if NORM == NORM_ZERO:
        # count the tensors with a nonzero element: max of the flags of each tensor's chunks
        cnt = tl.zeros([RBLOCK], dtype=CT)
        for t0 in range(0, n_tensors, RBLOCK):
            ts = t0 + tl.arange(0, RBLOCK)
            tmask = ts < n_tensors
            c0 = tl.load(tensor_chunk0 + ts, mask=tmask, other=0)
            nc = tl.load(tensor_nchunks + ts, mask=tmask, other=0)
            flag = tl.zeros([RBLOCK], dtype=CT)
            for j in range(0, tl.max(nc, axis=0)):
                f = tl.load(part + c0 + j, mask=tmask & (j < nc), other=0.0)
                flag = tl.maximum(flag, f)
            cnt += flag
        r = tl.sum(cnt, axis=0)
    else:
        if NORM == NORM_NEG_INF:  # noqa: SIM108
            acc = tl.full([RBLOCK], INF, CT)
        else:
            acc = tl.zeros([RBLOCK], dtype=CT)
        for c in range(0, n_chunks, RBLOCK):
            idx = c + tl.arange(0, RBLOCK)
            mask = idx < n_chunks
            if NORM == NORM_INF:
                acc = _max_nan(tl.load(part + idx, mask=mask, other=0.0), acc)
            elif NORM == NORM_NEG_INF:
                acc = _min_nan(tl.load(part + idx, mask=mask, other=INF), acc)
            else:
                acc += tl.load(part + idx, mask=mask, other=0.0)
        if NORM == NORM_INF:
            r = tl.reduce(acc, 0, _max_nan)
        elif NORM == NORM_NEG_INF:
            r = tl.reduce(acc, 0, _min_nan)
        else:
            r = tl.sum(acc, axis=0)
            if NORM == NORM_L2:
                r = tl.sqrt(r)
            elif NORM == NORM_P:
                r = tl.exp2(tl.log2(r) / norm_p)
    tl.store(out, r)


@triton.jit
def scale_kernel(
    x_tab,  # int64 table: addresses of the tensors to scale in place
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    coef,  # pointer to the 0-d coefficient (read on the device: no host sync)
    CHUNK,  # int: elements per chunk
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK)
    x_base = _base(x_tab, t, DT)
    c = tl.load(coef).to(CT)
    for off in range(start, end, BLOCK):
        offs = off + tl.arange(0, BLOCK)
        mask = offs < end
        x = tl.load(x_base + offs, mask=mask, other=0.0).to(CT)
        tl.store(x_base + offs, _to_dt(x * c, DT), mask=mask)
