"""Launch configurations of the ``triton`` backend's kernels (Note [autotuning]).

Note [autotuning]
-----------------
Elementwise update kernels (SGD, Adam/AdamW, LAMB pass 2, RMSprop, Adagrad, Adadelta, the clip
scale) are tuned over :data:`ELEMENTWISE_CONFIGS`: ``BLOCK`` (the tile a program processes per
loop iteration) and ``num_warps``. The chunk size (elements per program) is *not* tuned: it
defines the chunk map of a plan and the per-chunk partials of the reductions, so it is fixed per
backend instance (:data:`CHUNK_CUDA`, :data:`CHUNK_INTERPRET`).

The tuning key is ``(kernel, its structural constexprs, dtype, size bucket)`` where the size
bucket is ``ceil(log2(total elements of the partition))`` capped at :data:`TUNE_MAX_LOG2`.

Tuning never touches the caller's tensors: an update is in place, and running it once per
candidate config on the real buffers would apply the step several times (the trap reported
against lion-pytorch and in Triton's tracker). ``triton.autotune(restore_value=...)`` cannot help
here: our kernels reach the tensors through pointer *tables*, not through tensor arguments, so
Triton would restore only the tables. Instead :class:`flowoptim_triton.launch.Tuner` benchmarks
every candidate on scratch copies of the written operands (capped at 2**TUNE_MAX_LOG2 elements),
then launches the chosen config once on the real tensors. A test proves that the first, tuned
step is bit-identical to an untuned one.

Reductions (LAMB pass 1 with its norm partials, the grad-norm kernels) are *not* tuned: their
tile shape and warp count fix the summation order, so they run with the fixed
:func:`reduction_config` of their dtype always, and reruns (and other processes) give
bit-identical norms.

Under ``TRITON_INTERPRET=1`` there is one elementwise config, so nothing is benchmarked (tests
force several configs to exercise the scratch path).

Note [tuning space]
-------------------
Every candidate must compile without register spills and at an occupancy that keeps enough bytes
in flight (Note [occupancy rule] in ``kernels/aot/audit.py``) on sm_80 and sm_90, with every
triton version we support: ``nox -s aot_audit`` compiles every candidate of every kernel ahead of
time and fails otherwise. The rule these lists follow, from that compile (triton 3.9 and 3.6,
sm_90, 2026-11-30):

* **8 elements per thread per tile** (``BLOCK == 8 * 32 * num_warps``) for fp32/fp16/bf16, **4**
  for float64: the arithmetic is float32 (float64), so this keeps the same compute registers per
  operand (8 32-bit values). It is also two 128-bit accesses per fp32 operand, one per fp16/bf16
  operand and two per fp64 operand (Note [vectorized access]). 16 elements per thread (the old
  ``(2048, 4)`` and ``(4096, 8)``) took 200-255 registers in most update kernels and spilled in
  Adam/AdamW (with amsgrad in fp32 and bf16; every float64 form), RMSprop and Adagrad in float64.
* **At most 8 warps**: a 16-warp block (512 threads) leaves ptxas 128 registers per thread; the
  old ``(4096, 16)`` spilled there in LAMB pass 2 (fp16/bf16 with amsgrad) and Adadelta.
* **An explicit register cap** (``maxnreg=MAXNREG``, 192, the PTX ``.maxnreg``) on every config,
  the reductions' included (it does not change their summation order). Left to itself ptxas
  sometimes settles on 128 registers and spills a few bytes (seen: Adam fp16 amsgrad, 8 warps,
  sm_80, triton 3.6; RMSprop bf16 centered with momentum, sm_90, 3.6; LAMB pass 1 fp32 amsgrad,
  sm_80, 3.9; LAMB pass 2 fp64 amsgrad, sm_90, 3.9); given a cap it uses what it needs below it
  and spills nothing. 192 still leaves at least 8 resident warps per SM at 4 or 8 warps per block.
* The reductions' fixed config follows the same rule: ``BLOCK`` 1024 with 4 warps (8 elements
  per thread), and 8 warps for float64 (4 per thread; at 8, LAMB pass 1 with amsgrad needs about
  236 registers and spills under the cap). Under the interpreter ``num_warps`` has no effect, so
  the interpreted sums are those of ``BLOCK`` 1024 for every dtype.

Adding a candidate: add it here and run ``nox -s aot_audit`` (or ``python
kernels/aot/audit.py``); the audit names every kernel, dtype and arch where it spills or falls
below the occupancy rule.
"""

from __future__ import annotations

import triton

#: elements per program (one chunk) on CUDA: as torch's multi_tensor_apply (64K).
CHUNK_CUDA = 65536
#: elements per program under the interpreter: small, so the CPU tests cross chunk boundaries.
CHUNK_INTERPRET = 2048

#: register cap of every config (PTX ``.maxnreg``; Note [tuning space]).
MAXNREG = 192

#: candidates for the elementwise kernels on CUDA, fp32/fp16/bf16 partitions: 8 elements per
#: thread per tile, at most 8 warps (Note [tuning space]).
ELEMENTWISE_CONFIGS = [
    triton.Config({"BLOCK": 1024}, num_warps=4, maxnreg=MAXNREG),
    triton.Config({"BLOCK": 2048}, num_warps=8, maxnreg=MAXNREG),
]
#: candidates for float64 partitions: 4 elements per thread (Note [tuning space]).
ELEMENTWISE_CONFIGS_FP64 = [
    triton.Config({"BLOCK": 512}, num_warps=4, maxnreg=MAXNREG),
    triton.Config({"BLOCK": 1024}, num_warps=8, maxnreg=MAXNREG),
]


def elementwise_configs(itemsize: int) -> list[triton.Config]:
    """The tuner's candidates for a partition of ``itemsize``-byte elements (Note [tuning
    space])."""
    return ELEMENTWISE_CONFIGS_FP64 if itemsize == 8 else ELEMENTWISE_CONFIGS


#: the single elementwise config under the interpreter (big tiles: fewer numpy steps).
INTERPRET_CONFIGS = [triton.Config({"BLOCK": 1024}, num_warps=4)]

#: the fixed config of reduction kernels (determinism: never tuned; Note [tuning space]).
REDUCTION_CONFIG = triton.Config({"BLOCK": 1024}, num_warps=4, maxnreg=MAXNREG)


#: the fixed reduction config of float64 partitions: the same BLOCK (so the same interpreted
#: sums), 4 elements per thread (Note [tuning space]).
REDUCTION_CONFIG_FP64 = triton.Config({"BLOCK": 1024}, num_warps=8, maxnreg=MAXNREG)


def reduction_config(itemsize: int) -> triton.Config:
    """The fixed config of the reductions for ``itemsize``-byte elements (Note [tuning
    space])."""
    return REDUCTION_CONFIG_FP64 if itemsize == 8 else REDUCTION_CONFIG


#: partials per tile in the tiny final reductions (fixed).
RBLOCK = 1024

#: size buckets stop here; tuning scratch copies are capped at 2**TUNE_MAX_LOG2 elements.
TUNE_MAX_LOG2 = 26


def size_bucket(numel: int) -> int:
    """``ceil(log2(numel))``, capped at :data:`TUNE_MAX_LOG2` (0 for numel <= 1)."""
    return min(max(int(numel) - 1, 0).bit_length(), TUNE_MAX_LOG2)
