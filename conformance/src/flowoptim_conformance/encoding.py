"""JSON encoding of the vectors: every float as ``float.hex`` (exact, NaN and inf included).

Imports neither torch nor flowoptim.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["dec", "dec_array", "dec_grad", "enc", "enc_array", "enc_grad"]


def enc(x: float) -> str:
    """A float as ``float.hex`` (``"nan"``, ``"inf"`` and ``"-inf"`` for the non-finite ones)."""
    return float(x).hex()


def dec(s: str) -> float:
    """Inverse of :func:`enc`."""
    return float.fromhex(s) if s not in ("nan", "inf", "-inf") else float(s)


def enc_array(a) -> dict:
    """``{"shape": [...], "data": [hex, ...]}`` of a float64 array (row-major)."""
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [enc(x) for x in a.ravel().tolist()]}


def dec_array(d: dict) -> np.ndarray:
    """Inverse of :func:`enc_array`: a float64 array."""
    flat = np.array([dec(s) for s in d["data"]], dtype=np.float64)
    return flat.reshape(d["shape"])


def enc_grad(g) -> dict | None:
    """A gradient of a step: None, a dense array (:func:`enc_array`), or a sparse COO gradient
    ``{"rows": [int, ...], "values": enc_array(values)}`` (spec §5; rows may repeat)."""
    if g is None:
        return None
    if isinstance(g, dict):
        return {"rows": [int(r) for r in g["rows"]], "values": enc_array(g["values"])}
    return enc_array(g)


def dec_grad(d: dict | None):
    """Inverse of :func:`enc_grad`: None, a float64 array, or ``{"rows", "values"}``."""
    if d is None:
        return None
    if "rows" in d:
        return {"rows": list(d["rows"]), "values": dec_array(d["values"])}
    return dec_array(d)


def is_nan(x: float) -> bool:
    """``math.isnan`` that also accepts None (False)."""
    return x is not None and math.isnan(x)
