"""torch.optim run against the same vectors, for information only.

Where torch.optim implements the algorithm (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta; not
LAMB, nor OneFlow's ``do_bias_correction=False``, nor the fused clip mode), the case is run on the
torch class, with ``clip_grad`` done by ``torch.nn.utils.clip_grad_norm_`` per group. A failure
here shows where torch.optim departs from OneFlow's semantics (per-parameter step counts, eps
inside vs outside the square root, the first momentum step with dampening...); it is never
counted as a failure of the suite.
"""

from __future__ import annotations

from typing import Any

import torch

from .formulas import DEFAULTS
from .runner import NotApplicable

__all__ = ["TorchAdapter"]

_TORCH = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "RMSprop": torch.optim.RMSprop,
    "Adagrad": torch.optim.Adagrad,
    "Adadelta": torch.optim.Adadelta,
}
_CLIP_KEYS = ("clip_grad_max_norm", "clip_grad_norm_type")


def _check_options(name: str, opts: dict) -> None:
    if opts.get("do_bias_correction") is False:
        raise NotApplicable(f"torch.optim.{name} has no do_bias_correction=False")


class TorchAdapter:
    """The runner's subject interface on top of torch.optim (informational)."""

    informational = True

    def __init__(self, label: str = "torch.optim") -> None:
        self.label = label

    def optimizer(self, name: str, params: Any, defaults: dict) -> Any:
        if name not in _TORCH:
            raise NotApplicable(f"torch.optim has no {name}")
        kw = dict(DEFAULTS[name])
        kw.update(defaults)
        _check_options(name, kw)
        kw.pop("do_bias_correction", None)
        if isinstance(params, list):
            for g in params:
                if isinstance(g, dict):
                    _check_options(name, g)
                    g.pop("do_bias_correction", None)
        return _TORCH[name](params, **kw)

    def clip(self, opt: Any, error_if_nonfinite: bool, fused: bool) -> list:
        if fused:
            raise NotApplicable("torch.optim has no fused clip mode")
        totals = []
        clipped = [g for g in opt.param_groups if g.get("clip_grad_max_norm") is not None]
        if not clipped:
            import warnings

            warnings.warn("no group has clip_grad_max_norm", UserWarning, stacklevel=2)
            return []
        for group in clipped:
            grads = [p for p in group["params"] if p.grad is not None]
            totals.append(
                torch.nn.utils.clip_grad_norm_(
                    grads,
                    group["clip_grad_max_norm"],
                    norm_type=group.get("clip_grad_norm_type", 2.0),
                    error_if_nonfinite=error_if_nonfinite,
                )
            )
        return totals

    def scheduler_module(self) -> Any:
        raise NotApplicable("flowoptim_sched is not a backend matter")
