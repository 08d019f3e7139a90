"""Argument checks shared by the schedulers. Pure Python; every error names the bad value."""

from __future__ import annotations

import math
from itertools import pairwise
from numbers import Integral, Real
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(name: str, value: Any) -> int:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"Invalid {name}: {value!r} (expected a positive integer)")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"Invalid {name}: {value!r} (expected an integer >= 0)")
    return int(value)


def positive_number(name: str, value: Any) -> float | int:
    if not _is_real(value) or value <= 0:
        raise ValueError(f"Invalid {name}: {value!r} (expected a positive number)")
    return value


def real(name: str, value: Any) -> float | int:
    if not _is_real(value):
        raise ValueError(f"Invalid {name}: {value!r} (expected a finite number)")
    return value


def in_closed_range(name: str, value: Any, low: float, high: float) -> float | int:
    if not _is_real(value) or not low <= value <= high:
        raise ValueError(f"Invalid {name}: {value!r} (expected a number in [{low}, {high}])")
    return value


def strictly_increasing_ints(name: str, values: Any) -> list[int]:
    try:
        items = list(values)
    except TypeError:
        raise ValueError(
            f"Invalid {name}: {values!r} (expected a list of strictly increasing integers)"
        ) from None
    if not all(_is_int(v) and v >= 0 for v in items) or any(a >= b for a, b in pairwise(items)):
        raise ValueError(f"Invalid {name}: {values!r} (expected strictly increasing integers >= 0)")
    return [int(v) for v in items]


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        expected = " or ".join(repr(a) for a in allowed)
        raise ValueError(f"Invalid {name}: {value!r} (expected {expected})")
    return value
