"""ReduceLROnPlateau: the one scheduler that is not a function of the step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, SupportsFloat

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau as _TorchReduceLROnPlateau

from . import _validation as check
from .base import _scalar, _set_group_lr, check_optimizer

__all__ = ["ReduceLROnPlateau", "is_better"]


def is_better(value: float, best: float, mode: str, threshold: float, threshold_mode: str) -> bool:
    r"""Whether ``value`` improves on ``best`` (pure; torch's and OneFlow's rule).

    ``min``/``rel``: :math:`v < best(1 - \theta)`; ``min``/``abs``: :math:`v < best - \theta`;
    ``max``/``rel``: :math:`v > best(1 + \theta)`; ``max``/``abs``: :math:`v > best + \theta`.
    """
    if mode == "min":
        bound = best * (1.0 - threshold) if threshold_mode == "rel" else best - threshold
        return value < bound
    bound = best * (1.0 + threshold) if threshold_mode == "rel" else best + threshold
    return value > bound


class ReduceLROnPlateau(_TorchReduceLROnPlateau):
    r"""Multiply the lr by ``factor`` when a metric has stopped improving.

    Each ``step(metric)``: if the metric is better than the best so far (see :func:`is_better`)
    it becomes the best and the bad-step count resets, else the count grows; during a cooldown
    the count is held at 0. When the count *exceeds* ``patience``, every group's lr becomes
    :math:`\max(lr\cdot factor, min\_lr_i)` (a change smaller than ``eps`` is skipped), the
    cooldown starts and the count resets. This is torch's algorithm, and OneFlow's.

    It subclasses torch's ``ReduceLROnPlateau`` (Lightning and HF Trainer test for it) but
    implements everything itself, so ``verbose`` works on every torch. The lr is read from the
    group, so an lr set by hand is the one reduced. ``last_step`` and ``last_epoch`` name the
    same counter (the number of ``step`` calls).

    Raises ``TypeError`` for a non-optimizer, ``ValueError`` if ``factor`` is outside
    ``[0, 1)``, ``mode``/``threshold_mode`` is unknown, ``min_lr`` is a list whose length differs
    from the number of groups, or ``patience``/``cooldown`` is negative.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0,
        eps: float = 1e-8,
        verbose: bool = False,
    ) -> None:
        self.optimizer = check_optimizer(optimizer)
        if not check._is_real(factor) or not 0.0 <= factor < 1.0:
            raise ValueError(f"Invalid factor: {factor!r} (expected a number in [0, 1))")
        self.factor = factor
        n_groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n_groups:
                raise ValueError(
                    f"Invalid min_lr: a list of {len(min_lr)} values "
                    f"(expected one per param group: {n_groups})"
                )
            self.default_min_lr = None
            self.min_lrs = [check.real("min_lr", v) for v in min_lr]
        else:
            self.default_min_lr = check.real("min_lr", min_lr)
            self.min_lrs = [min_lr] * n_groups
        self.patience = check.non_negative_int("patience", patience)
        self.cooldown = check.non_negative_int("cooldown", cooldown)
        self.eps = check.real("eps", eps)
        self.verbose = bool(verbose)
        self.last_step = 0
        self._last_lr = [_scalar(g["lr"]) for g in optimizer.param_groups]
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    @property
    def last_epoch(self) -> int:
        """torch's name for :attr:`last_step`."""
        return self.last_step

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        self.last_step = value

    @property
    def num_bad_steps(self) -> int:
        """OneFlow's name for :attr:`num_bad_epochs`."""
        return self.num_bad_epochs

    @num_bad_steps.setter
    def num_bad_steps(self, value: int) -> None:
        self.num_bad_epochs = value

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        self.mode = check.choice("mode", mode, ("min", "max"))
        self.threshold_mode = check.choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.threshold = check.real("threshold", threshold)
        self.mode_worse = math.inf if mode == "min" else -math.inf

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, a: float, best: float) -> bool:
        return is_better(a, best, self.mode, self.threshold, self.threshold_mode)

    def is_better(self, a: float, best: float) -> bool:
        """OneFlow's name for the improvement test."""
        return self._is_better(a, best)

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one value of the monitored metric (a float or a one-element tensor)."""
        current = float(metrics)
        self.last_step = self.last_step + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        reduced = [False] * len(self.optimizer.param_groups)
        if self.num_bad_epochs > self.patience:
            reduced = self._reduce_lr(self.last_step)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [_scalar(g["lr"]) for g in self.optimizer.param_groups]
        if self.verbose:
            for i, lr in enumerate(self._last_lr):
                self.print_lr(i, lr, reduced[i])

    def _reduce_lr(self, epoch: int) -> list[bool]:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"The optimizer has {len(groups)} param groups but min_lr lists "
                    f"{len(self.min_lrs)} (a group was added after construction; set min_lrs)"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        reduced = []
        for i, group in enumerate(groups):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, self.min_lrs[i])
            changed = old_lr - new_lr > self.eps
            if changed:
                _set_group_lr(group, new_lr)
            reduced.append(changed)
        return reduced

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def print_lr(self, group: int, lr: float, reduced: bool = False) -> None:  # type: ignore[override]
        """The ``verbose`` line: one per group per step."""
        what = "reducing learning rate of" if reduced else "keeping learning rate of"
        print(f"ReduceLROnPlateau: step {self.last_step}, {what} param_groups[{group}] at {lr:.6e}")

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "optimizer"}
        state["last_epoch"] = self.last_step
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if k != "optimizer"}
        last_epoch = state.pop("last_epoch", None)
        if "last_step" not in state and last_epoch is not None:
            state["last_step"] = last_epoch
        if "num_bad_steps" in state:  # OneFlow's key
            state.setdefault("num_bad_epochs", state.pop("num_bad_steps"))
        self.__dict__.update(state)
        self._init_is_better(
            mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode
        )
