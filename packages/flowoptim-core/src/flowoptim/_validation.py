"""Hyperparameter validation shared by every optimizer class (spec §1.7).

Every check raises before anything is modified, with a message that names the bad value and says
what was expected, e.g. ``Invalid beta parameter at index 0: 1.5 (expected 0 <= beta < 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

__all__ = ["RULES", "check_number", "norm_type_value", "range_rule", "validate_options"]


def check_number(name: str, value: Any) -> float:
    """``value`` as a float; ``TypeError`` if it is not a real number (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        # 0-d tensors and numpy scalars are real numbers too; anything else is a TypeError
        try:
            import torch

            if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
                return float(value)
        except ImportError:  # pragma: no cover - torch is a hard dependency
            pass
        raise TypeError(f"Invalid {name}: {value!r} (expected a real number)")
    return float(value)


def range_rule(name: str, lo: float, hi: float | None, lo_open=False, hi_open=True) -> Callable:
    """A rule checking ``lo <= value < hi`` (bounds open or closed as asked; ``hi`` None: no
    upper bound); its error names the value and the expected range."""
    lo_s = f"{lo:g} {'<' if lo_open else '<='} "
    hi_s = "" if hi is None else f" {'<' if hi_open else '<='} {hi:g}"
    expected = f"{lo_s}{name}{hi_s}"

    def check(label: str, value: Any) -> None:
        v = check_number(label, value)
        ok = (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else v <= hi))
        if not ok:  # NaN fails every comparison and lands here
            raise ValueError(f"Invalid {label}: {value!r} (expected {expected})")

    return check


_nonneg = {
    key: range_rule(key, 0.0, None)
    for key in (
        "lr",
        "eps",
        "weight_decay",
        "momentum",
        "alpha",
        "initial_accumulator_value",
        "lr_decay",
    )
}


def _betas(label: str, value: Any) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"Invalid betas: {value!r} (expected a pair (beta1, beta2))")
    for i, b in enumerate(value):
        v = check_number(f"beta parameter at index {i}", b)
        if not 0.0 <= v < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b!r} (expected 0 <= beta < 1)")


def _bool(label: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"Invalid {label}: {value!r} (expected True or False)")


def _optional_bool(label: str, value: Any) -> None:
    if value is not None:
        _bool(label, value)


def _clip_max_norm(label: str, value: Any) -> None:
    if value is not None:
        range_rule("clip_grad_max_norm", 0.0, None)(label, value)


def norm_type_value(label: str, value: Any) -> float:
    """``clip_grad_norm_type`` as a float (spec §1.7): whatever ``float()`` accepts except a
    bool (``"inf"``, ``"-inf"``, ``"2"``, numbers, 1-element real tensors), checked to be
    ``p >= 0``, ``inf`` or ``-inf``."""
    if isinstance(value, (str, bytes, bytearray)):
        try:
            v = float(value)
        except ValueError:
            raise ValueError(
                f"Invalid {label}: {value!r} (expected a number, 'inf' or '-inf')"
            ) from None
    else:
        v = check_number(label, value)
    if math.isnan(v) or (v < 0 and not math.isinf(v)):
        raise ValueError(f"Invalid {label}: {value!r} (expected p >= 0, inf or -inf)")
    return v


#: option name -> check(label, value) (a return value is ignored); unknown options are not
#: checked
RULES: dict[str, Callable[[str, Any], None]] = {
    **_nonneg,
    "betas": _betas,
    "rho": range_rule("rho", 0.0, 1.0, hi_open=False),
    "dampening": range_rule("dampening", 0.0, 1.0, hi_open=False),
    "clip_grad_max_norm": _clip_max_norm,
    "clip_grad_norm_type": norm_type_value,  # its float is stored by validate_options
    **{
        k: _bool
        for k in (
            "amsgrad",
            "nesterov",
            "maximize",
            "centered",
            "do_bias_correction",
            "adam_w_mode",
            "capturable",
        )
    },
    "fused": _optional_bool,
}


def validate_options(
    options: dict[str, Any], extra_rules: dict[str, Callable[[str, Any], None]] | None = None
) -> None:
    """Check every known option of a param group (or of the defaults).

    ``extra_rules``: an optimizer's own rules (e.g. RMSprop's ``alpha <= 1``), checked after
    the shared ones. ``clip_grad_norm_type`` is normalised in place to a float once valid
    (spec §1.7: ``"inf"`` is stored as ``inf``). ``nesterov=True`` with ``momentum == 0`` or
    ``dampening != 0`` is accepted (spec §1.7, as OneFlow 0.9.0); ``SGD`` warns about it.
    """
    for rules in (RULES, extra_rules or {}):
        for key, value in options.items():
            rule = rules.get(key)
            if rule is not None:
                label = f"{key} value" if key not in ("betas",) else key
                rule(label, value)
    if "clip_grad_norm_type" in options:
        options["clip_grad_norm_type"] = norm_type_value(
            "clip_grad_norm_type value", options["clip_grad_norm_type"]
        )
