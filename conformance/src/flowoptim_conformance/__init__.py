"""flowoptim-conformance: formula-derived test vectors that any flowoptim backend can run against.

    python -m flowoptim_conformance --backend reference          # the command
    flowoptim_conformance.run("reference", "cpu", "float32")     # the Python API -> Report

The expected values come from :mod:`flowoptim_conformance.formulas` (float64 NumPy, no torch), are
stored in ``vectors/*.json`` (``python -m flowoptim_conformance.generate [--check]``), and are
compared with what the public flowoptim classes compute on the chosen backend.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Report", "load_cases", "run"]


def __getattr__(name: str):
    # the runner imports torch: load it only when asked, so that the formulas and the generator
    # stay importable without torch
    if name in ("run", "Report", "CaseResult", "run_subject", "load_xfails"):
        from . import runner

        return getattr(runner, name)
    if name == "load_cases":
        from .vectors_io import load_cases

        return load_cases
    raise AttributeError(f"module 'flowoptim_conformance' has no attribute {name!r}")
