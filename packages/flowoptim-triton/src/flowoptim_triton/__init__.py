"""flowoptim-triton: Triton kernels for every flowoptim update, registered as backend ``triton``.

Install it beside ``flowoptim-core``; the entry point ``flowoptim.backends: triton`` makes it the
automatic choice for CUDA tensors. ``TRITON_INTERPRET=1`` (set before this package's kernels are
first used) runs the same kernels on CPU tensors through Triton's interpreter, for testing.
See ``docs/design/triton-backend.md``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["TritonBackend", "__version__"]


def __getattr__(name: str):
    # lazy: importing the package must not import triton (the registry lists backends cheaply)
    if name == "TritonBackend":
        from .backend import TritonBackend

        return TritonBackend
    raise AttributeError(name)
