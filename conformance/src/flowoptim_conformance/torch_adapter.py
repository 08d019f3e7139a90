"""torch.optim and torch.optim.lr_scheduler run against the same vectors, for information only.

Optimizers: where torch.optim implements the algorithm (SGD, Adam, AdamW, RMSprop, Adagrad,
Adadelta; not LAMB, nor OneFlow's ``do_bias_correction=False``, nor the fused clip mode), the case
is run on the torch class, with ``clip_grad`` done by ``torch.nn.utils.clip_grad_norm_`` per
group.

Schedulers: a case runs on torch's own class when torch has one that takes every argument the case
gives (at the value given); otherwise it is n/a, never "depart", because the torch class would
compute something else by construction. The mapping (``_map_scheduler``), class by class:

====================================  ======================================================
OneFlow (flowoptim_sched)             torch.optim.lr_scheduler
====================================  ======================================================
StepLR(step_size, gamma)              StepLR(step_size, gamma)
MultiStepLR(milestones, gamma)        MultiStepLR(milestones, gamma)
ExponentialLR(gamma)                  ExponentialLR(gamma)
CosineAnnealingLR(T_max, eta_min)     CosineAnnealingLR(T_max, eta_min)
PolynomialLR(decay_batch,             PolynomialLR(total_iters=decay_batch, power) only when
  end_learning_rate, power, cycle)      end_learning_rate == 0 and not cycle: torch's decays
                                        to 0 and never cycles (n/a otherwise; OneFlow's default
                                        end_learning_rate is 1e-4, so most cases are n/a)
LambdaLR(lr_lambda)                   LambdaLR(lr_lambda), the same functions
ConstantLR(factor, total_iters)       ConstantLR(factor, total_iters)
LinearLR(start, end, total_iters)     LinearLR(start, end, total_iters)
CosineAnnealingWarmRestarts(T_0,      CosineAnnealingWarmRestarts(T_0, T_mult, eta_min) only
  T_mult, eta_min, decay_rate,          when decay_rate == 1 and restart_limit == 0 (torch has
  restart_limit)                        neither)
SequentialLR(schedulers, milestones,  SequentialLR(opt, mapped schedulers, milestones) only
  interval_rescaling)                   when interval_rescaling is True at every milestone:
                                        torch always restarts the next scheduler at its step 0
ChainedScheduler(schedulers)          ChainedScheduler(mapped schedulers), not with last_step
ReduceLROnPlateau(...)                ReduceLROnPlateau(...), the same arguments
CosineDecayLR, WarmupLR               none: n/a
====================================  ======================================================

``last_step`` maps to torch's ``last_epoch``. Resuming from a state dict restores the group lrs
too (what loading the optimizer's state dict does), since torch's schedulers are recursive.

A "depart" shows where torch differs from OneFlow's semantics: per-parameter step counts, eps
inside vs outside the square root, the first momentum step with dampening; for schedulers, the
recursive forms (an lr set by hand persists; resuming with ``last_epoch`` but the base lrs in the
groups restarts from them; rounding drift), unsorted milestones accepted, no check of gamma. It is
never counted as a failure of the suite.
"""

from __future__ import annotations

from typing import Any

import torch

from .formulas import DEFAULTS, LAMBDAS
from .runner import NotApplicable, _hyper

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
    #: torch.optim.SGD/Adam/AdamW update sparse gradients densely (momentum, decay and moments
    #: reach every row) or refuse them; SparseAdam is a separate, sparse-only class: n/a (spec §5)
    lazy_sparse = False

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

    # -------------------------------------------------------------- schedulers
    restore_lrs_on_resume = True  # torch's schedulers are recursive: they read the group lrs

    def scheduler_module(self) -> Any:
        return torch.optim.lr_scheduler

    def build_scheduler(self, spec: dict, opt: Any, last_step: int | None = None) -> Any:
        """torch's own scheduler for ``spec`` (a case's OneFlow arguments), or NotApplicable."""
        return _map_scheduler(spec, opt, last_step)


def _no(kind: str, why: str) -> NotApplicable:
    return NotApplicable(f"torch.optim.lr_scheduler.{kind}: {why}")


def _map_scheduler(spec: dict, opt: Any, last_step: int | None) -> Any:
    L = torch.optim.lr_scheduler
    kind, kw = spec["kind"], dict(_hyper(spec["kwargs"]))
    epoch = {} if last_step is None else {"last_epoch": last_step}
    if kind in ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "ConstantLR",
                "LinearLR", "ReduceLROnPlateau"):  # fmt: skip
        if kind == "ReduceLROnPlateau" and epoch:
            raise _no(kind, "has no last_epoch")
        return getattr(L, kind)(opt, **kw, **epoch)
    if kind == "LambdaLR":
        fn = kw["lr_lambda"]
        fns = [LAMBDAS[f] for f in fn] if isinstance(fn, list) else LAMBDAS[fn]
        return L.LambdaLR(opt, fns, **epoch)
    if kind == "PolynomialLR":
        if kw.get("cycle", False):
            raise _no(kind, "has no cycle=True")
        if kw.get("end_learning_rate", 1e-4) != 0:
            raise _no(kind, "has no end_learning_rate (it decays to 0)")
        return L.PolynomialLR(opt, total_iters=kw["decay_batch"], power=kw.get("power", 1.0),
                              **epoch)  # fmt: skip
    if kind == "CosineAnnealingWarmRestarts":
        if kw.pop("decay_rate", 1.0) != 1.0 or kw.pop("restart_limit", 0) != 0:
            raise _no(kind, "has no decay_rate or restart_limit")
        return L.CosineAnnealingWarmRestarts(opt, **kw, **epoch)
    if kind == "SequentialLR":
        rescaling = kw.get("interval_rescaling", False)
        flags = rescaling if isinstance(rescaling, list) else [rescaling] * len(kw["milestones"])
        if not all(flags):
            raise _no(kind, "always restarts the next scheduler (interval_rescaling=True only)")
        subs = [_map_scheduler(s, opt, None) for s in kw["schedulers"]]
        return L.SequentialLR(opt, schedulers=subs, milestones=kw["milestones"], **epoch)
    if kind == "ChainedScheduler":
        if epoch:
            raise _no(kind, "has no last_epoch")
        subs = [_map_scheduler(s, opt, None) for s in kw["schedulers"]]
        return L.ChainedScheduler(subs, optimizer=opt)
    raise NotApplicable(f"torch.optim.lr_scheduler has no {kind}")
