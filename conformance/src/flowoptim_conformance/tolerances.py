"""Per-dtype tolerances of the suite; the reasons are in docs/design/conformance.md.

An element passes when ``|got - expected| <= atol * scale + rtol * |expected|``, where ``scale`` is
the largest finite magnitude the same quantity (parameters, one state key, gradients) takes over the
whole case, so that a value that cancels down to nearly nothing is judged against the magnitude of
the values it came from; NaN and inf must match exactly.
Imports neither torch nor flowoptim.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCHEDULER", "TOLERANCES", "Tolerance", "tolerance_for"]


@dataclass(frozen=True)
class Tolerance:
    """``rtol`` relative to the element, ``atol`` relative to the tensor's largest element."""

    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}*max|expected|"


TOLERANCES: dict[str, Tolerance] = {
    # float64: spec §1.10 settles every hyperparameter-only expression (float32 hyperparameters
    # and bias corrections, everything derived from them in float64), and the formulas compute
    # exactly that, so what remains is float64 tensor arithmetic: a few ulps (2**-52 each) per
    # op, over up to 7 steps, plus reassociated sums (norms over 1000+ elements, an FMA) and
    # the amplification of a subtraction of nearly equal values (centered RMSprop's r - a*a).
    "float64": Tolerance(rtol=1e-12, atol=1e-12),
    # float32 arithmetic: each step rounds the update and the state (1-3 ulp, 2**-24 each, more
    # where a fused kernel or an FMA reassociates), over up to 7 steps, plus float32 norms over
    # 1000+ elements (LAMB trust ratios, clip totals). Reference backend worst case: 1.8e-7.
    "float32": Tolerance(rtol=1e-6, atol=1e-6),
    # float16 / bfloat16: expected values are re-derived with the storage rounding of the dtype
    # (formulas.rounder), so what remains is the difference between float32 and float64 arithmetic
    # before each rounding: an occasional 1-ulp flip (2**-11, 2**-8) that later steps carry.
    # Four ulps. Reference backend worst cases: 5.2e-4 (float16), 2.8e-3 (bfloat16).
    "float16": Tolerance(rtol=2e-3, atol=2e-3),
    "bfloat16": Tolerance(rtol=1.6e-2, atol=1.6e-2),
}

#: learning rates are Python floats (no tensor arithmetic): only evaluation order differs
SCHEDULER = Tolerance(rtol=1e-12, atol=0.0)


def tolerance_for(dtype: str) -> Tolerance:
    """The tolerance of ``dtype`` (a name of :data:`TOLERANCES`)."""
    try:
        return TOLERANCES[dtype]
    except KeyError:
        raise ValueError(
            f"no tolerance for dtype {dtype!r} (expected one of {', '.join(TOLERANCES)})"
        ) from None
