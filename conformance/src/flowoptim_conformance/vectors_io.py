"""Loading the checked-in vectors (package data). Imports neither torch nor flowoptim."""

from __future__ import annotations

import fnmatch
import json
from importlib import resources

from .generate import FORMAT

__all__ = ["load_cases"]


def _files() -> list:
    root = resources.files("flowoptim_conformance") / "vectors"
    return sorted((f for f in root.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)


def load_cases(patterns: list[str] | None = None, families: list[str] | None = None) -> list[dict]:
    """Every case of the vectors, optionally only ids matching one of ``patterns`` (fnmatch) and
    families named in ``families`` (case-insensitive)."""
    cases = []
    for f in _files():
        data = json.loads(f.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{f.name}: vectors format {data.get('format')!r}, expected {FORMAT}")
        cases += data["cases"]
    if patterns:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c["id"], p) for p in patterns)]
    if families:
        wanted = {f.lower() for f in families}
        cases = [c for c in cases if c["family"].lower() in wanted]
    return cases
