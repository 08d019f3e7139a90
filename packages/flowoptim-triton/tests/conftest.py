"""Test setup for flowoptim-triton.

Note [interpreted tests]
------------------------
Without a CUDA device the tests run the kernels in Triton's interpreter on CPU tensors. Triton
decides between compiling and interpreting when a ``@triton.jit`` function is *defined*, so
``TRITON_INTERPRET=1`` must be in the environment before :mod:`flowoptim_triton.kernels` is first
imported; this conftest sets it at collection time when torch sees no CUDA device (and leaves an
explicit setting alone). With CUDA and no ``TRITON_INTERPRET`` the same tests run natively on
``DEVICE == "cuda"``. Interpreted sizes stay small (thousands of elements; 65537 once).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # make triton_helpers importable
