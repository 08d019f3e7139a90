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

Note [vectorized access]
------------------------
A load or store of ``BLOCK`` elements compiles to 128-bit accesses (``ld.global.v4.b32``: 4
fp32 or 8 fp16/bf16 elements; ``v2.b64``: 2 fp64) only when the compiler can prove that each
thread's run of elements is contiguous, starts 16-byte aligned, and is masked all-or-nothing.
Base addresses come from the int64 tables and chunk bounds are runtime values, so by default it
proves nothing and every element is a scalar ``ld.global.b32`` (seen in the sm_90 PTX). Hence:

* ``ALIGN`` (a constexpr, chosen per partition when its plan is built: Note [aligned plans] in
  :mod:`flowoptim_triton.launch`) says every operand's base address is 16-byte aligned and
  ``CHUNK`` is a multiple of :data:`VEC` elements. Then :func:`_base` marks the typed pointers
  ``tl.multiple_of(.., 16)`` (bytes) and :func:`_locate` marks the chunk start a multiple of
  ``VEC`` and returns ``vend``, the chunk's end rounded down to a multiple of ``VEC``.
* Each kernel walks its chunk in two segments (``tl.static_range``: the loop body is written
  once and compiled twice, each copy with its own facts): segment 0 is ``[start, vend)``, whose
  mask ``offs < vend`` changes only at multiples of ``VEC`` (128-bit accesses); segment 1, the
  tail ``[vend, end)`` (fewer than ``VEC`` elements, only in a tensor's last chunk), is masked
  per element (scalar accesses). An odd-sized tensor therefore costs one scalar tile, not its
  partition's vector path.
* The tail's tiles lie on the same ``BLOCK`` grid from ``start`` as the vector part's (its loop
  starts at the tile holding ``vend`` and masks ``offs >= vend``), so every element lands in the
  same lane, in the same order, as without the split: the reductions (LAMB pass 1, the grad
  norms) add the same values in the same order and the masked lanes add their identity
  (``+0.0`` to a non-negative sum, ``max`` with 0, ``min`` with inf), so both paths give the
  same bits (tested under the interpreter, where the hints are no-ops).
* ``ALIGN`` False (a misaligned operand, or a ``CHUNK`` that is not a multiple of ``VEC``)
  compiles segment 1 alone with ``vend == start``: exactly the original scalar loop.

The hints are facts whenever ``ALIGN`` is true (never a promise about the data), and
``kernels/aot/audit.py`` proves the result on sm_80 and sm_90: every aligned update variant
moves its floor bytes per parameter through 128-bit accesses.

Note [kernel arithmetic]
------------------------
Elements are loaded in the storage dtype ``DT`` and computed in ``CT`` (float32; float64 for
float64 tensors). Hyperparameters reach the kernels through ``scal`` (Note [kernel scalars]), so
a scheduler changing lr never recompiles. ``tl.constexpr`` parameters are structural switches
only; each says why it is one. New state is rounded to ``DT`` when stored (fp16/bf16 state, as
torch). Weight decay is applied with ``tl.where(wd != 0, ...)`` so that ``wd == 0`` leaves ``g``
exactly as it was even for infinite or NaN ``p`` (``0 * inf`` is nan; spec §1.6); AdamW's
decoupled decay is skipped the same way when ``lr * wd == 0``. Divisions and square roots go
through :func:`_div` and :func:`_sqrt`, and expressions follow spec §2 left to right
(``(lr/bc1) * m / denom``, ``lr * g / sqrt(den + eps)``, ``clr * g / (sqrt(S) + eps)``).

Note [kernel scalars]
---------------------
Every update kernel takes its hyperparameters as one small device tensor ``scal`` of the compute
dtype ``CT`` and ``tl.load``s each slot (the slot order is the ``*_SCALARS`` tuple of the
kernel, below). The host fills it with the values of Note [float32 hyperparameters] and Note
[float64 derived quantities] (``flowoptim.backends.base``): hyperparameters are ``f32(x)``, bias
corrections ``float32(1 - beta**t)``, and every derived quantity (``1 - beta``, ``1 -
dampening``, ``1 - alpha``, ``1 - rho``, ``sqrt(bc2)``, ``lr/bc1``, ``lr*wd``, Adagrad's decayed
lr) is computed in double on the host and rounded to float32 for float32/fp16/bf16 partitions,
kept as a double for float64 ones. LAMB's ``lr * trust`` is formed on the device in ``CT``
(float64 end to end for float64: sums of squares, norms, ratio, product). Why a tensor and not
runtime float arguments: Triton types a Python float argument as fp32, so a float64 derived value
would be rounded to float32 at the call (spec §1.10 forbids it); a pointer works the same way
natively and in the interpreter, is one kernel signature for every lr (no recompile: the pointer
is 16-byte aligned like every allocation, so its specialisation never changes), and is built
without a host sync (a pinned host tensor copied ``non_blocking``, as the plans are; reused while
the values repeat), which also keeps the door open for CUDA-graph capture.

Note [native arithmetic]
------------------------
The interpreter computes every operation with numpy, rounding each product and sum, with IEEE
division and square root. Natively Triton (3.6 and 3.9) by default (1) contracts ``a*b + c``
into one fused multiply-add (LLVM contraction plus ``ptxas --fmad``), (2) lowers a float32 ``/``
to ``div.full.f32`` (about 2 ulp) and (3) a float32 ``tl.sqrt`` to ``sqrt.approx.ftz.f32``
(approximate, subnormal inputs flushed to zero). Verified by AOT compiling ``rmsprop_kernel`` for
sm_90 on a CPU machine with triton 3.9 (PTX: 40 ``fma`` with fusion on; none, ``mul.rn``/``sub.rn``
only, with it off; ``div.full.f32`` and ``sqrt.approx.ftz.f32`` for ``/`` and ``tl.sqrt``).
Decisions, per kernel:

* Every launch (all update kernels, LAMB's passes and norm kernels, the grad-norm and scale
  kernels) passes ``enable_fp_fusion=False``. Required by spec §2 for centered RMSprop (``den =
  r - a*a`` with ``a*a`` rounded first: alpha = 0 must give ``den = 0`` exactly, not the
  residual of an fma) and by Note [grad_scale] for every update kernel (``g * grad_scale`` is
  rounded before it meets weight decay or a moment, exactly as ``scale_kernel`` stores it, so
  fused clip and scale-then-step give the same bits natively; with fusion on, a float32
  ``g*gs + wd*p`` could become ``fma(g, gs, wd*p)``). For the other kernels it is a choice:
  they are memory-bound (the extra rounding costs nothing measurable), native results then equal
  the interpreter's operation for operation, and the CPU tests and the float64 1e-12 check
  describe the GPU's arithmetic too. (Triton 3.9 also warns when the option is left implicit.)
* Float32 division and square root use ``tl.math.div_rn`` / ``tl.math.sqrt_rn`` (IEEE, as
  OneFlow's CUDA kernels compiled with nvcc's default ``-prec-div -prec-sqrt``). Float64 ``/``
  and ``tl.sqrt`` are already IEEE (``div.rn.f64``, ``sqrt.rn.f64``); ``div_rn``/``sqrt_rn``
  accept float32 only, hence the constexpr branch on ``CT``.
* Left as is: the p-norm of clip_grad (``exp2(p * log2|g|)``, approximate natively; the spec
  asks only for "up to rounding" there).
* Checked in CI: ``kernels/aot/audit.py`` (``nox -s aot_audit``) counts ``fma.rn`` in the PTX of
  every audited specialization for sm_80 and sm_90 under triton 3.9 and 3.6 and fails on any.
  There are none, except inside libdevice's ``log2``/``exp2`` (the p-norm above), whose bodies
  use fma by design; the audit reports those counts without failing.

Note [deterministic reductions]
-------------------------------
No float atomics anywhere (the grad norm's ticket is an integer one). A reduction writes one
partial per chunk (a fixed function of the chunk's elements, the fixed reduction config and the
fixed ``CHUNK``), and the partials are combined in index order with a fixed tile: by a second,
tiny launch (LAMB's per-tensor norms) or by the last program of the same launch (the grad norm,
Note [last-program finish]). The same inputs therefore give bit-identical results on every run.
The max/min reductions use ``tl.reduce`` with NaN-propagating combiners (``max|g|`` over a NaN
gradient is NaN, as in torch), independent of how a backend lowers ``tl.maximum``.

Note [last-program finish]
--------------------------
``norm_partial_kernel`` (``clip_grad``'s norm) finishes its own reduction, so the in-place clip
is two launches (norm, ``scale_kernel``) and the fused clip one (the update kernel reads the
coefficient as ``grad_scale``). Every program stores its chunk's partial, then draws a ticket
from an int32 ``counter`` with ``tl.atomic_add``; the program that draws ``num_programs - 1``
is the last one to get there, reduces all the partials with :func:`_norm_total` (index order,
fixed ``RBLOCK`` tile: the arithmetic of the former single-program final launch), stores
``total`` and, with ``COEF``, the clip coefficient (:func:`_clip_coef`, Note [clip coefficient]
in ``flowoptim.backends.base``), and stores 0 to the counter. Which program finishes depends on
scheduling; what it computes does not (it reads every partial, in index order), so the total has
the same bits whichever it is.

Memory ordering, natively (CUDA's threadFenceReduction sample, with a release/acquire atomic in
place of ``__threadfence``): (1) the partial's store; (2) ``tl.debug_barrier()`` (``bar.sync``):
every thread of the program has issued its stores before (3) one thread draws the ticket with
``atom.add.acq_rel.gpu``, whose release half orders the program's stores (cumulatively, through
the barrier) before its increment at GPU scope. The last ticket's increment comes after every
other program's in the counter's modification order, so its acquire half makes every partial
visible to the finishing thread, and Triton broadcasts the ticket to the program's other
threads through shared memory behind a barrier, so their loads come after it. The partials are
loaded with ``cache_modifier=".cg"`` (``ld.global.cg``: L2 only; L1 is not coherent across
SMs). The PTX of a probe kernel (sm_90, triton 3.9, compiled ahead of time on a CPU) shows that
sequence: a predicated ``st.global``, ``bar.sync``, ``atom.global.gpu.acq_rel.add.u32``,
``bar.sync``, ``ld.global.cg``. The counter is 0 between launches: after the last ticket no
program of the launch touches it, and the next launch on the stream starts after this one ends.
It is one per device, created by the first launch (:meth:`flowoptim_triton.launch.Engine.counter`;
make that call outside CUDA-graph capture, e.g. a warm-up step, as capturing needs anyway), so
two norm launches on one device must not run at the same time on different streams.

Every norm launch finishes (``grad_norm`` too, with ``COEF`` False), so every ``clip_grad`` path
(one partition, several, DTensor shards, torch.compile) runs the same reduction code with the
same ``num_warps``: natively the order of a ``tl.sum`` depends on the layout, which depends on
``num_warps``, so a separate final launch with other warps could round differently. (The former
final launch ran with 4 warps, the float64 reduction config has 8: float64 totals may differ in
the last bits from before, natively; float32 has 4 warps either way.)

What the interpreter tests: it runs the programs one after another, so the last program draws
the last ticket; the tests check the logic (with more programs than one ``RBLOCK`` tile: the
total bit-identical to a separate single-program reduce of the stored partials, the coefficient
to the torch expression; the counter back at 0; repeated calls), never the ordering. The
ordering argument above is unverified on a GPU.
"""

from __future__ import annotations

import triton
import triton.language as tl

# +inf as a compile-time constant (the identity of the -inf norm's min-reduction).
INF: tl.constexpr = tl.constexpr(float("inf"))

# Elements per vector unit (Note [vectorized access]): 16 elements hold a whole number of
# 128-bit accesses in every dtype (4 fp32, 8 fp16/bf16 or 2 fp64 per 16 bytes).
VEC: tl.constexpr = tl.constexpr(16)

# NORM kinds of the grad-norm kernels (a constexpr: each kind is a different reduction).
NORM_L2: tl.constexpr = tl.constexpr(0)
NORM_L1: tl.constexpr = tl.constexpr(1)
NORM_INF: tl.constexpr = tl.constexpr(2)
NORM_NEG_INF: tl.constexpr = tl.constexpr(3)
NORM_ZERO: tl.constexpr = tl.constexpr(4)
NORM_P: tl.constexpr = tl.constexpr(5)
#: tensors per tile of the norm-0 finish (``_norm_total``): its counts are exact integers, so any
#: tile gives the same bits; at RBLOCK (1024) the fp16/bf16 norm kernel took 88-90 registers
#: (AOT, sm_80/sm_90), under the audit's occupancy rule; a constexpr because it is a tile shape
ZERO_TILE: tl.constexpr = tl.constexpr(128)

# Slot order of each update kernel's ``scal`` tensor (Note [kernel scalars]); the host fills it
# by these names (flowoptim_triton.backend), the kernels load the slots by index.
SGD_SCALARS = ("lr", "momentum", "one_minus_dampening", "wd")
ADAM_SCALARS = (
    "beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "bc1", "sqrt_bc2", "eps", "wd",
    "lr", "step_size", "lr_wd",
)  # fmt: skip
RMSPROP_SCALARS = ("lr", "alpha", "one_minus_alpha", "eps", "wd", "momentum")
ADAGRAD_SCALARS = ("clr", "eps", "wd")
ADADELTA_SCALARS = ("lr", "rho", "one_minus_rho", "eps", "wd")


# ----------------------------------------------------------------------------- helpers
@triton.jit
def _adam_scalars(
    scal,  # CT[ADAM_SCALARS] (Note [kernel scalars])
):
    """Slots 0-7 of ``ADAM_SCALARS``, shared by Adam and both LAMB passes: beta1, 1 - beta1,
    beta2, 1 - beta2, bc1, sqrt(bc2), eps, wd."""
    return (
        tl.load(scal + 0),
        tl.load(scal + 1),
        tl.load(scal + 2),
        tl.load(scal + 3),
        tl.load(scal + 4),
        tl.load(scal + 5),
        tl.load(scal + 6),
        tl.load(scal + 7),
    )


@triton.jit
def _locate(
    chunk_tensor,  # int64[n_chunks]: tensor index of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk within its tensor
    sizes,  # int64[n_tensors]: numel of each tensor
    CHUNK,  # runtime int: elements per chunk (fixed per backend)
    ALIGN: tl.constexpr,  # structural: the partition is aligned (Note [vectorized access])
):
    # the chunk of this program: [start, end) of tensor t; [start, vend) is its vector part
    # (VEC-multiple bounds) when ALIGN, empty otherwise
    pid = tl.program_id(0)
    t = tl.load(chunk_tensor + pid)
    start = tl.load(chunk_start + pid)
    n = tl.load(sizes + t)
    end = tl.minimum(start + CHUNK, n)
    if ALIGN:
        start = tl.multiple_of(start, VEC)  # a multiple of CHUNK, itself a multiple of VEC
        vend = tl.multiple_of(end // VEC * VEC, VEC)
    else:
        vend = start
    return pid, t, start, vend, end


@triton.jit
def _unless_inf(
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (read only if HAS_FOUND_INF)
    start,  # first element of the chunk
    vend,  # end of its vector part (Note [vectorized access])
    end,  # end of the chunk
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    ALIGN: tl.constexpr,  # structural: keep vend's VEC-multiple hint (Note [vectorized access])
):
    # Note [AMP]: an inf/NaN gradient somewhere (found_inf != 0) empties the program's range,
    # so no tile runs and nothing is stored; (vend, end) of the chunk otherwise
    if HAS_FOUND_INF:
        inf = tl.load(found_inf) != 0
        end = tl.where(inf, start, end)
        vend = tl.where(inf, start, vend)
        if ALIGN:
            vend = tl.multiple_of(vend, VEC)  # start is a VEC multiple under ALIGN
    return vend, end


@triton.jit
def _span(
    start,  # first element of the chunk
    vend,  # end of its vector part (== start when the partition is not aligned)
    end,  # end of the chunk
    SEG: tl.constexpr,  # 0: the vector part, 1: the tail (a static_range index)
    BLOCK: tl.constexpr,  # tile size
):
    # (loop start, mask lower bound, loop and mask end) of segment SEG (Note [vectorized access])
    if SEG == 0:
        return start, start, vend
    else:
        # the tail's tiles sit on the same BLOCK grid as the vector part's (a reduction's lane
        # sums see every element in the same lane and order, whatever vend is); empty if vend
        # == end
        lo = tl.where(vend < end, start + (vend - start) // BLOCK * BLOCK, end)
        return lo, vend, end


@triton.jit
def _base(
    table,  # int64[n_tensors]: base addresses of one operand
    t,  # tensor index
    DT: tl.constexpr,  # element type the address points to (typed pointer)
    ALIGN: tl.constexpr,  # structural: every base address of the partition is 16-byte aligned
):
    base = tl.load(table + t).to(tl.pointer_type(DT))
    if ALIGN:
        # on the typed pointer (bytes): a hint on the int64 does not survive the cast
        base = tl.multiple_of(base, 16)
    return base


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
def _div(
    a,  # numerator (CT)
    b,  # denominator (CT)
    CT: tl.constexpr,  # compute dtype: picks the IEEE division for float32
):
    # IEEE round-to-nearest division, natively and in the interpreter (Note [native arithmetic]):
    # Triton lowers a float32 ``/`` to the approximate ``div.full.f32``; ``div_rn`` is exact.
    # float64 ``/`` is already ``div.rn.f64`` (div_rn takes float32 only).
    if CT == tl.float32:  # noqa: SIM300 (CT is a constexpr parameter)
        return tl.math.div_rn(a, b)
    else:
        return a / b


@triton.jit
def _sqrt(
    x,  # values (CT)
    CT: tl.constexpr,  # compute dtype: picks the IEEE square root for float32
):
    # IEEE square root (Note [native arithmetic]): a float32 ``tl.sqrt`` is
    # ``sqrt.approx.ftz.f32`` natively (approximate, subnormals flushed to 0).
    if CT == tl.float32:  # noqa: SIM300
        return tl.math.sqrt_rn(x)
    else:
        return tl.sqrt(x)


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
    # g, times grad_scale (in CT, rounded to DT exactly as scale_kernel stores it; fp fusion is
    # off, so the product is rounded before any add even when DT == CT), negated for maximize:
    # all before weight decay
    g = tl.load(g_base + offs, mask=mask, other=0.0).to(CT)
    if HAS_GRAD_SCALE:
        g = _to_dt(g * gs, DT).to(CT)
    if MAXIMIZE:
        g = -g
    return g


@triton.jit
def _grad_scale(
    grad_scale,  # pointer to the 0-d coefficient (in CT; read on the device)
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip on/off
    CT: tl.constexpr,  # compute dtype
):
    gs = tl.zeros([], dtype=CT) + 1.0
    if HAS_GRAD_SCALE:
        gs = tl.load(grad_scale).to(CT)
    return gs


@triton.jit
def _max_nan(
    a,  # CT values (a tile, or the running max)
    b,  # CT values of the same shape
):
    # NaN-propagating max combiner (tl.maximum may drop NaN natively).
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def _min_nan(
    a,  # CT values (a tile, or the running min)
    b,  # CT values of the same shape
):
    # NaN-propagating min combiner.
    return tl.where((a < b) | (a != a), a, b)


# ----------------------------------------------------------------------------- SGD
@triton.jit
def _sgd_tile(
    p_base,  # typed pointer: param
    g_base,  # typed pointer: gradient (dense, or a sparse gradient's values)
    buf_base,  # typed pointer: momentum_buffer (read only if HAS_MOMENTUM)
    offs,  # offsets of the tile's elements in p and its buffer
    mask,  # lanes of offs in bounds
    g_offs,  # offsets of the same elements in the gradient (== offs when dense)
    g_mask,  # lanes of g_offs in bounds
    gs,  # grad_scale value (ignored unless HAS_GRAD_SCALE)
    lr,  # scal slot 0
    momentum,  # scal slot 1
    one_minus_dampening,  # scal slot 2
    wd,  # scal slot 3
    HAS_MOMENTUM: tl.constexpr,  # structural: momentum buffer exists
    NESTEROV: tl.constexpr,  # structural: nesterov direction
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
):
    # one tile of SGD (spec §2); shared by sgd_kernel and the row-gather sgd_sparse_kernel, so
    # a sparse gradient naming every row gives the dense update bit for bit (spec §5)
    p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
    g = _load_grad(g_base, g_offs, g_mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
    g = tl.where(wd != 0.0, g + wd * p, g)
    d = g
    if HAS_MOMENTUM:
        buf = tl.load(buf_base + offs, mask=mask, other=0.0).to(CT)
        buf = momentum * buf + one_minus_dampening * g
        tl.store(buf_base + offs, _to_dt(buf, DT), mask=mask)
        if NESTEROV:  # noqa: SIM108 (constexpr branches read as the spec)
            d = g + momentum * buf
        else:
            d = buf
    p = p - lr * d
    tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


@triton.jit
def _adam_moments(
    p_base,  # typed pointer: param
    g_base,  # typed pointer: gradient (dense, or a sparse gradient's values)
    m_base,  # typed pointer: exp_avg
    v_base,  # typed pointer: exp_avg_sq
    offs,  # offsets of the tile's elements in p and its state
    mask,  # lanes of offs in bounds
    g_offs,  # offsets of the same elements in the gradient (== offs when dense)
    g_mask,  # lanes of g_offs in bounds
    gs,  # grad_scale value (ignored unless HAS_GRAD_SCALE)
    beta1,  # CT: beta1
    one_minus_beta1,  # CT: 1 - beta1
    beta2,  # CT: beta2
    one_minus_beta2,  # CT: 1 - beta2
    wd,  # CT: weight decay (added to g unless DECOUPLED)
    DECOUPLED: tl.constexpr,  # structural: AdamW/LAMB-W decay outside the gradient
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
):
    # p and the new first and second moments of one tile, in CT (spec §2), from the *old*
    # state; shared by Adam (_adam_tile) and LAMB (_lamb_tile), which store them their own way
    p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
    g = _load_grad(g_base, g_offs, g_mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
    if not DECOUPLED:
        g = tl.where(wd != 0.0, g + wd * p, g)
    m = tl.load(m_base + offs, mask=mask, other=0.0).to(CT)
    v = tl.load(v_base + offs, mask=mask, other=0.0).to(CT)
    m = beta1 * m + one_minus_beta1 * g
    v = beta2 * v + one_minus_beta2 * (g * g)
    return p, m, v


@triton.jit
def _adam_tile(
    p_base,  # typed pointer: param
    g_base,  # typed pointer: gradient (dense, or a sparse gradient's values)
    m_base,  # typed pointer: exp_avg
    v_base,  # typed pointer: exp_avg_sq
    vmax_base,  # typed pointer: max_exp_avg_sq (read only if AMSGRAD)
    offs,  # offsets of the tile's elements in p and its state
    mask,  # lanes of offs in bounds
    g_offs,  # offsets of the same elements in the gradient (== offs when dense)
    g_mask,  # lanes of g_offs in bounds
    gs,  # grad_scale value (ignored unless HAS_GRAD_SCALE)
    beta1,  # the _adam_scalars values ...
    one_minus_beta1,
    beta2,
    one_minus_beta2,
    sqrt_bc2,
    eps,
    wd,
    step_size,  # scal slot 9: lr / bc1
    lr_wd,  # scal slot 10: lr * wd (AdamW)
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    DECOUPLED: tl.constexpr,  # structural: AdamW (decay outside the gradient)
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
):
    # one tile of Adam/AdamW (spec §2); shared by adam_kernel and the row-gather
    # adam_sparse_kernel, so a sparse gradient naming every row gives the dense update bit for bit
    p, m, v = _adam_moments(p_base, g_base, m_base, v_base, offs, mask, g_offs, g_mask, gs, beta1,
                            one_minus_beta1, beta2, one_minus_beta2, wd, DECOUPLED,
                            HAS_GRAD_SCALE, MAXIMIZE, DT, CT)  # fmt: skip
    tl.store(m_base + offs, _to_dt(m, DT), mask=mask)
    tl.store(v_base + offs, _to_dt(v, DT), mask=mask)
    vv = v
    if AMSGRAD:
        vmax = tl.load(vmax_base + offs, mask=mask, other=0.0).to(CT)
        vmax = tl.where(v > vmax, v, vmax)
        tl.store(vmax_base + offs, _to_dt(vmax, DT), mask=mask)
        vv = vmax
    denom = _div(_sqrt(vv, CT), sqrt_bc2, CT) + eps
    # spec §2 left to right: ((lr/bc1) * m) / denom (an overflowing v gives 0, not inf/inf)
    new_p = p - _div(step_size * m, denom, CT)
    if DECOUPLED:
        new_p = tl.where(lr_wd != 0.0, new_p - lr_wd * p, new_p)
    tl.store(p_base + offs, _to_dt(new_p, DT), mask=mask)


@triton.jit
def sgd_kernel(
    p_tab,  # int64 table: param addresses
    g_tab,  # int64 table: grad addresses
    buf_tab,  # int64 table: momentum_buffer addresses (unused unless HAS_MOMENTUM)
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[SGD_SCALARS]: lr, momentum, 1 - dampening, wd (Note [kernel scalars])
    CHUNK,  # int: elements per chunk
    HAS_MOMENTUM: tl.constexpr,  # structural: momentum buffer exists (an extra operand)
    NESTEROV: tl.constexpr,  # structural: nesterov direction
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype (pointer types)
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned; a register-shape parameter)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    buf_base = _base(buf_tab, t, DT, ALIGN) if HAS_MOMENTUM else p_base
    lr = tl.load(scal + 0)
    momentum = tl.load(scal + 1)
    one_minus_dampening = tl.load(scal + 2)
    wd = tl.load(scal + 3)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            _sgd_tile(p_base, g_base, buf_base, offs, mask, offs, mask, gs, lr, momentum,
                      one_minus_dampening, wd, HAS_MOMENTUM, NESTEROV, MAXIMIZE, HAS_GRAD_SCALE,
                      DT, CT)  # fmt: skip


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
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[ADAM_SCALARS] (Note [kernel scalars])
    CHUNK,  # int: elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    DECOUPLED: tl.constexpr,  # structural: AdamW (decay outside the gradient)
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    m_base = _base(m_tab, t, DT, ALIGN)
    v_base = _base(v_tab, t, DT, ALIGN)
    vmax_base = _base(vmax_tab, t, DT, ALIGN) if AMSGRAD else v_base
    # bc1 is folded into step_size (slot 9) here
    beta1, one_minus_beta1, beta2, one_minus_beta2, _bc1, sqrt_bc2, eps, wd = _adam_scalars(scal)
    step_size = tl.load(scal + 9)
    lr_wd = tl.load(scal + 10)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            _adam_tile(p_base, g_base, m_base, v_base, vmax_base, offs, mask, offs, mask, gs,
                       beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, wd,
                       step_size, lr_wd, AMSGRAD, DECOUPLED, MAXIMIZE, HAS_GRAD_SCALE, DT,
                       CT)  # fmt: skip


# ----------------------------------------------------------------------------- LAMB
@triton.jit
def _lamb_tile(
    p_base,  # typed pointer: param
    g_base,  # typed pointer: grad
    m_base,  # typed pointer: exp_avg
    v_base,  # typed pointer: exp_avg_sq
    vmax_base,  # typed pointer: max_exp_avg_sq (unused unless AMSGRAD)
    offs,  # int64 offsets of the tile
    mask,  # in-bounds lanes
    gs,  # grad_scale value (ignored unless HAS_GRAD_SCALE)
    beta1,  # CT: beta1
    one_minus_beta1,  # CT: 1 - beta1
    beta2,  # CT: beta2
    one_minus_beta2,  # CT: 1 - beta2
    bc1,  # CT: bias correction 1 (1 without bias correction)
    sqrt_bc2,  # CT: sqrt(bias correction 2)
    eps,  # CT: eps
    wd,  # CT: weight decay (in g unless ADAM_W)
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    ADAM_W: tl.constexpr,  # structural: decay outside the gradient
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
):
    # the LAMB moments and Adam direction u of one tile, in CT, from p, g and the *old* state
    p, m, v = _adam_moments(p_base, g_base, m_base, v_base, offs, mask, offs, mask, gs, beta1,
                            one_minus_beta1, beta2, one_minus_beta2, wd, ADAM_W, HAS_GRAD_SCALE,
                            MAXIMIZE, DT, CT)  # fmt: skip
    vv = v
    if AMSGRAD:
        vmax = tl.load(vmax_base + offs, mask=mask, other=0.0).to(CT)
        vv = tl.where(v > vmax, v, vmax)
    u = _lamb_u(m, vv, bc1, sqrt_bc2, eps, CT)
    return p, m, v, vv, u


@triton.jit
def _lamb_u(
    m,  # new exp_avg (CT)
    vv,  # new exp_avg_sq, or max_exp_avg_sq with amsgrad (CT)
    bc1,  # CT: bias correction 1
    sqrt_bc2,  # CT: sqrt(bias correction 2)
    eps,  # CT: eps
    CT: tl.constexpr,  # compute dtype
):
    # u = (m/bc1) / (sqrt(v)/sqrt(bc2) + eps), spec §2, in one place for both passes
    return _div(_div(m, bc1, CT), _div(_sqrt(vv, CT), sqrt_bc2, CT) + eps, CT)


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
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[ADAM_SCALARS] (Note [kernel scalars])
    w_part,  # CT[n_chunks] out: per-chunk sum of p^2
    u_part,  # CT[n_chunks] out: per-chunk sum of u^2
    CHUNK,  # int: elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    ADAM_W: tl.constexpr,  # structural: decay outside the gradient
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    WRITE_STATE: tl.constexpr,  # structural: store m, v here (exact dtypes) or in pass 2
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (fixed, not tuned: it shapes the partial sums)
):
    pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    m_base = _base(m_tab, t, DT, ALIGN)
    v_base = _base(v_tab, t, DT, ALIGN)
    vmax_base = _base(vmax_tab, t, DT, ALIGN)
    beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, sqrt_bc2, eps, wd = _adam_scalars(scal)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    acc_w = tl.zeros([BLOCK], dtype=CT)
    acc_u = tl.zeros([BLOCK], dtype=CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
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
    w_sq,  # CT: sum of p^2 of the tensor
    u_sq,  # CT: sum of u^2 of the tensor
    lr,  # CT: learning rate
    CT: tl.constexpr,  # compute dtype (float64 end to end for float64: spec §1.10)
):
    w_norm = _sqrt(w_sq, CT)
    u_norm = _sqrt(u_sq, CT)
    ok = (w_norm > 0.0) & (u_norm > 0.0)
    trust = tl.where(ok, _div(w_norm, tl.where(ok, u_norm, 1.0), CT), 1.0)
    return lr * trust


@triton.jit
def lamb_norms_kernel(
    w_part,  # CT[n_chunks]: per-chunk sum of p^2 (from pass 1)
    u_part,  # CT[n_chunks]: per-chunk sum of u^2 (from pass 1)
    tensor_chunk0,  # int64[n_tensors]: first chunk of each tensor
    tensor_nchunks,  # int64[n_tensors]: number of chunks of each tensor
    sums,  # CT[2, n_tensors] out: per-tensor sums of squares (row 0: p, row 1: u)
    lr_trust,  # CT[n_tensors] out: lr * trust ratio (only if WRITE_TRUST)
    scal,  # CT[ADAM_SCALARS]: slot 8 is lr (Note [kernel scalars])
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
        tl.store(lr_trust + t, _trust(w_sq, u_sq, tl.load(scal + 8), CT))


@triton.jit
def lamb_trust_kernel(
    sums,  # CT[2, n_tensors]: per-tensor sums of squares, reduced across ranks by the hook
    lr_trust,  # CT[n_tensors] out: lr * trust ratio of each tensor
    scal,  # CT[ADAM_SCALARS]: slot 8 is lr (Note [kernel scalars])
    n_tensors,  # int: number of tensors
    CT: tl.constexpr,  # compute dtype
    RBLOCK: tl.constexpr,  # tensors per tile
):
    offs = tl.program_id(0) * RBLOCK + tl.arange(0, RBLOCK)
    mask = offs < n_tensors
    w_sq = tl.load(sums + offs, mask=mask, other=0.0).to(CT)
    u_sq = tl.load(sums + n_tensors + offs, mask=mask, other=0.0).to(CT)
    tl.store(lr_trust + offs, _trust(w_sq, u_sq, tl.load(scal + 8), CT), mask=mask)


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
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[ADAM_SCALARS] (Note [kernel scalars])
    lr_trust,  # CT[n_tensors]: lr * trust ratio of each tensor
    CHUNK,  # int: elements per chunk
    AMSGRAD: tl.constexpr,  # structural: max_exp_avg_sq operand
    ADAM_W: tl.constexpr,  # structural: decoupled decay term in the update
    MAXIMIZE: tl.constexpr,  # structural: negate g (only read when WRITE_STATE is False)
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    WRITE_STATE: tl.constexpr,  # structural: pass 1 stored the state (else recompute + store)
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned; elementwise)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    m_base = _base(m_tab, t, DT, ALIGN)
    v_base = _base(v_tab, t, DT, ALIGN)
    vmax_base = _base(vmax_tab, t, DT, ALIGN)
    beta1, one_minus_beta1, beta2, one_minus_beta2, bc1, sqrt_bc2, eps, wd = _adam_scalars(scal)
    coef = tl.load(lr_trust + t)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            if WRITE_STATE:
                # float32/float64: the state pass 1 stored is exactly what it computed
                p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
                m = tl.load(m_base + offs, mask=mask, other=0.0).to(CT)
                if AMSGRAD:
                    vv = tl.load(vmax_base + offs, mask=mask, other=0.0).to(CT)
                else:
                    vv = tl.load(v_base + offs, mask=mask, other=0.0).to(CT)
                u = _lamb_u(m, vv, bc1, sqrt_bc2, eps, CT)
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
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[RMSPROP_SCALARS]: lr, alpha, 1 - alpha, eps, wd, momentum
    CHUNK,  # int: elements per chunk
    CENTERED: tl.constexpr,  # structural: grad_avg operand
    HAS_MOMENTUM: tl.constexpr,  # structural: momentum_buffer operand
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    sq_base = _base(sq_tab, t, DT, ALIGN)
    lr = tl.load(scal + 0)
    alpha = tl.load(scal + 1)
    one_minus_alpha = tl.load(scal + 2)
    eps = tl.load(scal + 3)
    wd = tl.load(scal + 4)
    momentum = tl.load(scal + 5)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
            g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
            g = tl.where(wd != 0.0, g + wd * p, g)
            r = tl.load(sq_base + offs, mask=mask, other=0.0).to(CT)
            r = alpha * r + one_minus_alpha * (g * g)
            tl.store(sq_base + offs, _to_dt(r, DT), mask=mask)
            den = r
            if CENTERED:
                ga_base = _base(ga_tab, t, DT, ALIGN)
                a = tl.load(ga_base + offs, mask=mask, other=0.0).to(CT)
                a = alpha * a + one_minus_alpha * g
                tl.store(ga_base + offs, _to_dt(a, DT), mask=mask)
                # spec §2: a*a rounded before the subtraction (alpha = 0 gives den = 0 exactly);
                # natively this holds because fp fusion is off for every launch (Note [native
                # arithmetic]): no fma(-a, a, r)
                den = r - a * a
            step = _div(lr * g, _sqrt(den + eps, CT), CT)  # lr * g' / sqrt(den + eps), in order
            if HAS_MOMENTUM:
                buf_base = _base(buf_tab, t, DT, ALIGN)
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
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[ADAGRAD_SCALARS]: clr = lr / (1 + (t-1) * lr_decay), eps, wd
    CHUNK,  # int: elements per chunk
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    s_base = _base(sum_tab, t, DT, ALIGN)
    clr = tl.load(scal + 0)
    eps = tl.load(scal + 1)
    wd = tl.load(scal + 2)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
            g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
            g = tl.where(wd != 0.0, g + wd * p, g)
            s = tl.load(s_base + offs, mask=mask, other=0.0).to(CT)
            s = s + g * g
            tl.store(s_base + offs, _to_dt(s, DT), mask=mask)
            p = p - _div(clr * g, _sqrt(s, CT) + eps, CT)  # clr * g' / (sqrt(S) + eps), in order
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
    grad_scale,  # pointer to the 0-d CT clip coefficient (unused unless HAS_GRAD_SCALE)
    found_inf,  # pointer to GradScaler's 0-d float32 found_inf (unused unless HAS_FOUND_INF)
    scal,  # CT[ADADELTA_SCALARS]: lr, rho, 1 - rho, eps, wd
    CHUNK,  # int: elements per chunk
    MAXIMIZE: tl.constexpr,  # structural: negate g (Note [maximize])
    HAS_GRAD_SCALE: tl.constexpr,  # structural: fused clip coefficient present
    HAS_FOUND_INF: tl.constexpr,  # structural: AMP's found_inf given (Note [AMP])
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    vend, end = _unless_inf(found_inf, start, vend, end, HAS_FOUND_INF, ALIGN)  # Note [AMP]
    p_base = _base(p_tab, t, DT, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    sq_base = _base(sq_tab, t, DT, ALIGN)
    ad_base = _base(ad_tab, t, DT, ALIGN)
    lr = tl.load(scal + 0)
    rho = tl.load(scal + 1)
    one_minus_rho = tl.load(scal + 2)
    eps = tl.load(scal + 3)
    wd = tl.load(scal + 4)
    gs = _grad_scale(grad_scale, HAS_GRAD_SCALE, CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            p = tl.load(p_base + offs, mask=mask, other=0.0).to(CT)
            g = _load_grad(g_base, offs, mask, gs, HAS_GRAD_SCALE, MAXIMIZE, DT, CT)
            g = tl.where(wd != 0.0, g + wd * p, g)
            sa = tl.load(sq_base + offs, mask=mask, other=0.0).to(CT)
            ad = tl.load(ad_base + offs, mask=mask, other=0.0).to(CT)
            sa = rho * sa + one_minus_rho * (g * g)
            d = _div(_sqrt(ad + eps, CT), _sqrt(sa + eps, CT), CT) * g
            ad = rho * ad + one_minus_rho * (d * d)
            tl.store(sq_base + offs, _to_dt(sa, DT), mask=mask)
            tl.store(ad_base + offs, _to_dt(ad, DT), mask=mask)
            p = p - lr * d
            tl.store(p_base + offs, _to_dt(p, DT), mask=mask)


# ----------------------------------------------------------------------------- clip_grad
@triton.jit
def _norm_total(
    part,  # CT[n_chunks]: the partials, read with .cg (Note [last-program finish])
    n_chunks,  # int: number of partials (the launch's programs)
    tensor_chunk0,  # int64[n_tensors]: first chunk of each tensor
    tensor_nchunks,  # int64[n_tensors]: number of chunks of each tensor
    n_tensors,  # int: number of tensors
    norm_p,  # f32: the norm order (NORM_P only)
    NORM: tl.constexpr,  # structural: which reduction
    CT: tl.constexpr,  # compute dtype
    RBLOCK: tl.constexpr,  # partials per tile (fixed: shapes the reduction)
):
    # The group's norm from the chunk partials, in index order with a fixed tile (Note
    # [deterministic reductions]): the arithmetic and order of the former norm_final_kernel.
    if NORM == NORM_ZERO:
        # count the tensors with a nonzero element: max of the flags of each tensor's chunks.
        # The counts are small integers, exact in CT, so the tile does not change the bits; a
        # narrow one keeps this finish from raising the whole kernel's registers (ZERO_TILE)
        cnt = tl.zeros([ZERO_TILE], dtype=CT)
        for t0 in range(0, n_tensors, ZERO_TILE):
            ts = t0 + tl.arange(0, ZERO_TILE)
            tmask = ts < n_tensors
            c0 = tl.load(tensor_chunk0 + ts, mask=tmask, other=0)
            nc = tl.load(tensor_nchunks + ts, mask=tmask, other=0)
            flag = tl.zeros([ZERO_TILE], dtype=CT)
            for j in range(0, tl.max(nc, axis=0)):
                f = tl.load(part + c0 + j, mask=tmask & (j < nc), other=0.0, cache_modifier=".cg")
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
                acc = _max_nan(tl.load(part + idx, mask=mask, other=0.0, cache_modifier=".cg"), acc)
            elif NORM == NORM_NEG_INF:
                acc = _min_nan(tl.load(part + idx, mask=mask, other=INF, cache_modifier=".cg"), acc)
            else:
                acc += tl.load(part + idx, mask=mask, other=0.0, cache_modifier=".cg")
        if NORM == NORM_INF:
            r = tl.reduce(acc, 0, _max_nan)
        elif NORM == NORM_NEG_INF:
            r = tl.reduce(acc, 0, _min_nan)
        else:
            r = tl.sum(acc, axis=0)
            if NORM == NORM_L2:
                r = _sqrt(r, CT)
            elif NORM == NORM_P:
                r = tl.exp2(tl.log2(r) / norm_p)
    return r


@triton.jit
def _clip_coef(
    total,  # CT scalar: the group's total norm
    clip,  # CT[2]: max_norm, CLIP_EPS, rounded to CT as torch rounds a Python scalar operand
    CT: tl.constexpr,  # compute dtype: picks the IEEE division for float32
):
    # Note [clip coefficient] (flowoptim.backends.base): torch.clamp(max_norm / (total + eps),
    # max=1.0) on a CT tensor is reciprocal(total + eps) * max_norm, then min(., 1) keeping NaN,
    # each operation rounded to CT; the same operations in the same order (fp fusion is off).
    max_norm = tl.load(clip + 0)
    eps = tl.load(clip + 1)
    one = tl.zeros([], dtype=CT) + 1.0
    c = _div(one, total + eps, CT) * max_norm
    return tl.where(c > 1.0, one, c)  # NaN > 1 is false: a NaN coefficient stays NaN


@triton.jit
def norm_partial_kernel(
    g_tab,  # int64 table: grad addresses
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    tensor_chunk0,  # int64[n_tensors]: first chunk of each tensor (the finish, NORM_ZERO)
    tensor_nchunks,  # int64[n_tensors]: number of chunks of each tensor (the finish, NORM_ZERO)
    n_tensors,  # int: number of tensors (the finish, NORM_ZERO)
    part,  # CT[n_chunks] out: the chunk's partial (sum, max, min or nonzero flag)
    counter,  # int32[1]: ticket counter, 0 between launches (Note [last-program finish])
    total,  # CT[] out: the norm, written by the last program
    coef,  # CT[] out: the clip coefficient, written by the last program (unused unless COEF)
    clip,  # CT[2]: max_norm, CLIP_EPS (unused unless COEF)
    norm_p,  # f32: the norm order (used only for NORM == NORM_P)
    CHUNK,  # int: elements per chunk
    NORM: tl.constexpr,  # structural: which reduction (NORM_* constants)
    COEF: tl.constexpr,  # structural: also form the clip coefficient (clip_coef, not grad_norm)
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (fixed, not tuned: it shapes the partials)
    RBLOCK: tl.constexpr,  # partials per tile of the finish (fixed: shapes the reduction)
):
    pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    g_base = _base(g_tab, t, DT, ALIGN)
    if NORM == NORM_NEG_INF:  # noqa: SIM108
        acc = tl.full([BLOCK], INF, CT)
    else:
        acc = tl.zeros([BLOCK], dtype=CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
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
    # Note [last-program finish]: the store above, a CTA barrier, then a release/acquire ticket;
    # the program that draws the last ticket sees every partial and reduces them
    tl.debug_barrier()
    n_programs = tl.num_programs(0)
    ticket = tl.atomic_add(counter, 1, sem="acq_rel", scope="gpu")
    if ticket == n_programs - 1:
        tot = _norm_total(
            part, n_programs, tensor_chunk0, tensor_nchunks, n_tensors, norm_p, NORM, CT, RBLOCK
        )
        tl.store(total, tot)
        if COEF:
            tl.store(coef, _clip_coef(tot, clip, CT))
        tl.store(counter, 0)  # every ticket is drawn: ready for the next launch


@triton.jit
def scale_kernel(
    x_tab,  # int64 table: addresses of the tensors to scale in place
    chunk_tensor,  # int64[n_chunks]: tensor of each chunk
    chunk_start,  # int64[n_chunks]: first element of each chunk
    sizes,  # int64[n_tensors]: numel of each tensor
    coef,  # pointer to the 0-d coefficient (read on the device: no host sync)
    CHUNK,  # int: elements per chunk
    ALIGN: tl.constexpr,  # structural: 128-bit access path (Note [vectorized access])
    DT: tl.constexpr,  # storage dtype
    CT: tl.constexpr,  # compute dtype
    BLOCK: tl.constexpr,  # tile size (tuned)
):
    _pid, t, start, vend, end = _locate(chunk_tensor, chunk_start, sizes, CHUNK, ALIGN)
    x_base = _base(x_tab, t, DT, ALIGN)
    c = tl.load(coef).to(CT)
    for seg in tl.static_range(0 if ALIGN else 1, 2):  # Note [vectorized access]
        lo, mlo, hi = _span(start, vend, end, seg, BLOCK)
        for off in range(lo, hi, BLOCK):
            offs = off + tl.arange(0, BLOCK)
            mask = (offs >= mlo) & (offs < hi)
            x = tl.load(x_base + offs, mask=mask, other=0.0).to(CT)
            tl.store(x_base + offs, _to_dt(x * c, DT), mask=mask)
