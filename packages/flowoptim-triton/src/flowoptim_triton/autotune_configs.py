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
tile shape and warp count fix the summation order, so they run with :data:`REDUCTION_CONFIG`
always, and reruns (and other processes) give bit-identical norms.

Under ``TRITON_INTERPRET=1`` there is one elementwise config, so nothing is benchmarked (tests
force several configs to exercise the scratch path).
"""

from __future__ import annotations

import triton

#: elements per program (one chunk) on CUDA: as torch's multi_tensor_apply (64K).
CHUNK_CUDA = 65536
#: elements per program under the interpreter: small, so the CPU tests cross chunk boundaries.
CHUNK_INTERPRET = 2048

#: candidates for the elementwise kernels on CUDA.
ELEMENTWISE_CONFIGS = [
    triton.Config({"BLOCK": 1024}, num_warps=4),
    triton.Config({"BLOCK": 2048}, num_warps=4),
    triton.Config({"BLOCK": 2048}, num_warps=8),
    triton.Config({"BLOCK": 4096}, num_warps=8),
    triton.Config({"BLOCK": 4096}, num_warps=16),
]
#: the single elementwise config under the interpreter (big tiles: fewer numpy steps).
INTERPRET_CONFIGS = [triton.Config({"BLOCK": 1024}, num_warps=4)]

#: the fixed config of reduction kernels (determinism: never tuned).
REDUCTION_CONFIG = triton.Config({"BLOCK": 1024}, num_warps=4)
#: partials per tile in the tiny final reductions (fixed).
RBLOCK = 1024

#: size buckets stop here; tuning scratch copies are capped at 2**TUNE_MAX_LOG2 elements.
TUNE_MAX_LOG2 = 26


def size_bucket(numel: int) -> int:
    """``ceil(log2(numel))``, capped at :data:`TUNE_MAX_LOG2` (0 for numel <= 1)."""
    return min(max(int(numel) - 1, 0).bit_length(), TUNE_MAX_LOG2)
