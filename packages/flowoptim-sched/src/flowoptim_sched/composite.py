"""Schedulers made of other schedulers: SequentialLR, ChainedScheduler, WarmupLR.

They compose the wrapped schedulers' closed forms (OneFlow 0.9.0's design), so they accept this
package's schedulers only; to combine torch's own schedulers, use torch's classes (which also
accept this package's schedulers, see the notes on each class).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.lr_scheduler import ReduceLROnPlateau as _TorchPlateau

from . import _validation as check
from . import formulas as F
from .base import ClosedFormLR, check_optimizer

__all__ = ["ChainedScheduler", "SequentialLR", "WarmUpLR", "WarmupLR"]


def _check_child(owner: str, index: int | None, scheduler: Any) -> ClosedFormLR:
    where = f"schedulers[{index}]" if index is not None else "scheduler_or_optimizer"
    if isinstance(scheduler, _TorchPlateau):
        raise ValueError(
            f"Invalid {where}: {owner} cannot wrap ReduceLROnPlateau "
            "(its step() needs a metric and it has no closed form)"
        )
    if not isinstance(scheduler, ClosedFormLR):
        hint = (
            " (torch's own schedulers have no closed form in (base_lr, step); combine them with "
            "torch.optim.lr_scheduler's classes instead)"
            if isinstance(scheduler, LRScheduler)
            else ""
        )
        raise TypeError(
            f"Invalid {where}: {type(scheduler).__name__} object "
            f"(expected a flowoptim_sched scheduler){hint}"
        )
    return scheduler


def _check_children(owner: str, schedulers: Any, optimizer: Any) -> list[ClosedFormLR]:
    if not isinstance(schedulers, (list, tuple)):
        raise TypeError(f"Invalid schedulers: {type(schedulers).__name__} object (expected a list)")
    if len(schedulers) == 0:
        raise ValueError("Invalid schedulers: [] (expected at least one scheduler)")
    children = [_check_child(owner, i, s) for i, s in enumerate(schedulers)]
    for i, s in enumerate(children):
        if s.optimizer is not optimizer:
            raise ValueError(
                f"Invalid schedulers[{i}]: it drives a different optimizer "
                f"(expected every scheduler of {owner} to drive the same one)"
            )
    return children


class _OfSchedulers(ClosedFormLR):
    """A scheduler built from ``self.schedulers``: their states travel inside its state dict."""

    schedulers: list[ClosedFormLR]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["schedulers"] = [s.state_dict() for s in self.schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for s, saved in zip(self.schedulers, state_dict["schedulers"], strict=True):
            s.load_state_dict(saved)


class SequentialLR(_OfSchedulers):
    r"""Hand over from one scheduler to the next at each milestone.

    .. math:: lr(s) = f_k(b, s') ,\quad k = \mathrm{bisect\_right}(milestones, s),\quad
        s' = \begin{cases} s - milestones_{k-1} & \text{interval\_rescaling}_{k-1} \\
        s & \text{otherwise} \end{cases}

    ``interval_rescaling`` (a bool, or one per milestone) decides whether the scheduler taking
    over starts from its own step 0 or sees the global step. OneFlow's default ``False`` means
    the global step; **torch's ``SequentialLR`` always restarts** the next scheduler at 0, i.e.
    ``interval_rescaling=True`` here. (torch's ``SequentialLR`` also accepts this package's
    schedulers and then does exactly that.)

    Errors: ``TypeError`` for a non-optimizer or a scheduler that is not from this package,
    ``ValueError`` for an empty list, a scheduler of another optimizer, ReduceLROnPlateau,
    milestones that are not strictly increasing or not one fewer than the schedulers, or an
    ``interval_rescaling`` list of the wrong length.
    """

    _state_exclude = ("optimizer", "schedulers")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedulers: Sequence[ClosedFormLR],
        milestones: Sequence[int],
        interval_rescaling: bool | Sequence[bool] = False,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        check_optimizer(optimizer)
        self.schedulers = _check_children("SequentialLR", schedulers, optimizer)
        self.milestones = check.strictly_increasing_ints("milestones", milestones)
        if len(self.milestones) != len(self.schedulers) - 1:
            raise ValueError(
                f"Invalid milestones: {list(milestones)!r} ({len(self.milestones)} milestones "
                f"for {len(self.schedulers)} schedulers; expected one fewer than schedulers)"
            )
        if isinstance(interval_rescaling, bool):
            rescaling = [interval_rescaling] * len(self.milestones)
        else:
            rescaling = list(interval_rescaling)
            if len(rescaling) != len(self.milestones) or not all(
                isinstance(r, bool) for r in rescaling
            ):
                raise ValueError(
                    f"Invalid interval_rescaling: {interval_rescaling!r} (expected a bool or "
                    f"{len(self.milestones)} bools, one per milestone)"
                )
        self.interval_rescaling = rescaling
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _group_lr(self, group: int, base_lr: float, step: int) -> float:
        return F.sequential_lr(
            base_lr,
            step,
            schedules=[partial(s._group_lr, group) for s in self.schedulers],
            milestones=self.milestones,
            interval_rescaling=self.interval_rescaling,
        )

    def _closed_form(self, base_lr: float, step: int) -> float:
        return self._group_lr(0, base_lr, step)

    def _update_lr(self, epoch: int | None = None) -> None:
        super()._update_lr(epoch)
        # Keep the active scheduler's counters in step with the one it would have (OneFlow).
        k = bisect_right(self.milestones, self.last_step)
        local = self.last_step
        if k > 0 and self.interval_rescaling[k - 1]:
            local -= self.milestones[k - 1]
        self.schedulers[k].last_step = local
        self.schedulers[k]._last_lr = list(self._last_lr)


class ChainedScheduler(_OfSchedulers):
    r"""Feed each scheduler's lr to the next one as its base lr, all at the same step.

    .. math:: lr(s) = f_n(\dots f_2(f_1(b, s), s) \dots, s)

    OneFlow's closed-form chaining. For multiplicative schedules (StepLR, MultiStepLR,
    ExponentialLR, ConstantLR, LinearLR, LambdaLR) it gives the same values as torch's
    ``ChainedScheduler`` (which multiplies recursively); for others (e.g. a cosine feeding
    another) torch's recursive chaining gives different numbers. torch's ``ChainedScheduler``
    driving this package's schedulers would just let the last one win, since each one sets the
    lr from its closed form: use this class.

    ``optimizer`` (torch's optional argument) defaults to the schedulers' optimizer.
    """

    _state_exclude = ("optimizer", "schedulers")

    def __init__(
        self,
        schedulers: Sequence[ClosedFormLR],
        optimizer: torch.optim.Optimizer | None = None,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        if optimizer is None:
            if not isinstance(schedulers, (list, tuple)):
                raise TypeError(
                    f"Invalid schedulers: {type(schedulers).__name__} object (expected a list)"
                )
            if len(schedulers) == 0:
                raise ValueError("Invalid schedulers: [] (expected at least one scheduler)")
            optimizer = _check_child("ChainedScheduler", 0, schedulers[0]).optimizer
        check_optimizer(optimizer)
        self.schedulers = _check_children("ChainedScheduler", schedulers, optimizer)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _group_lr(self, group: int, base_lr: float, step: int) -> float:
        return F.chained_lr(
            base_lr, step, schedules=[partial(s._group_lr, group) for s in self.schedulers]
        )

    def _closed_form(self, base_lr: float, step: int) -> float:
        return self._group_lr(0, base_lr, step)

    def _update_lr(self, epoch: int | None = None) -> None:
        super()._update_lr(epoch)
        for s in self.schedulers:
            s.last_step = self.last_step


class WarmupLR(ClosedFormLR):
    r"""A warmup of ``warmup_iters`` steps before (or over) another scheduler, or alone.

    With :math:`W` = ``warmup_iters``, :math:`wf` = ``warmup_factor`` and :math:`f` the wrapped
    scheduler (none when an optimizer is passed):

    .. math::
        lr(s) = \begin{cases}
          b\,wf & s < W,\ \text{constant} \\
          b\left(wf + (ef - wf)\frac{s}{W}\right) & s < W,\ \text{linear} \\
          f(b, s) & s \ge W \ (f(b, s - W) \text{ with warmup\_prefix}) \\
          b & s \ge W,\ \text{no } f
        \end{cases}

    where :math:`ef = f(b, W)/b` (the linear warmup lands on the value the wrapped scheduler has
    at step :math:`W`), or :math:`ef = 1` without :math:`f` or with ``warmup_prefix=True``.

    :math:`ef` is computed per param group, from the group's own base lr (and, for a LambdaLR
    with one function per group, the group's function), so each group's warmup lands on its own
    scheduled value: groups with different base lrs (layer-wise lr decay, LLRD) work. OneFlow
    0.9.0 computes :math:`ef` once, from the first group, and raises ``ValueError`` when the
    base lrs differ; whenever its formula is defined (one base lr for every group) the two
    agree.

    By default (``warmup_prefix=False``) the wrapped scheduler runs underneath the warmup on the
    global step; with ``warmup_prefix=True`` it starts at its own step 0 after the warmup.
    ``warmup_iters=0`` with a scheduler means no warmup.

    torch has no counterpart (its ``SequentialLR([LinearLR(start_factor=wf), f], [W])`` is the
    ``warmup_prefix=True`` case).

    Errors: ``TypeError`` if ``scheduler_or_optimizer`` is neither an optimizer nor a scheduler of
    this package; ``ValueError`` for an unknown ``warmup_method``, ``warmup_factor`` outside
    ``[0, 1]``, a negative ``warmup_iters`` or ``warmup_iters=0`` without a scheduler.
    """

    _state_exclude = ("optimizer", "scheduler")

    def __init__(
        self,
        scheduler_or_optimizer: ClosedFormLR | torch.optim.Optimizer,
        warmup_factor: float = 1.0 / 3,
        warmup_iters: int = 5,
        warmup_method: str = "linear",
        warmup_prefix: bool = False,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        if isinstance(scheduler_or_optimizer, torch.optim.Optimizer):
            optimizer, scheduler = scheduler_or_optimizer, None
        else:
            scheduler = _check_child("WarmupLR", None, scheduler_or_optimizer)
            optimizer = scheduler.optimizer
        self.warmup_method = check.choice("warmup_method", warmup_method, ("linear", "constant"))
        self.warmup_factor = check.in_closed_range("warmup_factor", warmup_factor, 0.0, 1.0)
        self.warmup_iters = check.non_negative_int("warmup_iters", warmup_iters)
        if scheduler is None and self.warmup_iters == 0:
            raise ValueError(
                "Invalid warmup_iters: 0 (expected a positive integer when WarmupLR wraps an "
                "optimizer rather than a scheduler)"
            )
        self.warmup_prefix = bool(warmup_prefix)
        self.scheduler = scheduler
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _group_lr(self, group: int, base_lr: float, step: int) -> float:
        after = None if self.scheduler is None else partial(self.scheduler._group_lr, group)
        return F.warmup_lr(
            base_lr,
            step,
            warmup_factor=self.warmup_factor,
            warmup_iters=self.warmup_iters,
            warmup_method=self.warmup_method,
            warmup_prefix=self.warmup_prefix,
            after=after,
        )

    def _closed_form(self, base_lr: float, step: int) -> float:
        return self._group_lr(0, base_lr, step)

    def _update_lr(self, epoch: int | None = None) -> None:
        super()._update_lr(epoch)
        if self.scheduler is not None and self.last_step >= self.warmup_iters:
            local = self.last_step - (self.warmup_iters if self.warmup_prefix else 0)
            self.scheduler.last_step = local
            self.scheduler._last_lr = list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["scheduler"] = None if self.scheduler is None else self.scheduler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        saved = state_dict.get("scheduler")
        if self.scheduler is not None and saved is not None:
            self.scheduler.load_state_dict(saved)


WarmUpLR = WarmupLR
"""OneFlow's other spelling of :class:`WarmupLR`."""
