"""OneFlow's single schedulers, each a :class:`~flowoptim_sched.base.ClosedFormLR` over a formula.

Every class takes OneFlow's arguments (``last_step``, ``verbose``) and torch's ``last_epoch``
keyword. Notation: ``b`` the group's base lr (its ``initial_lr``), ``s`` the step (``last_step``).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import torch

from . import _validation as check
from . import formulas as F
from .base import ClosedFormLR, check_optimizer

__all__ = [
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CosineDecayLR",
    "ExponentialLR",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "PolynomialLR",
    "StepLR",
]


class StepLR(ClosedFormLR):
    r"""Decay by ``gamma`` every ``step_size`` steps.

    .. math:: lr(s) = b\,\gamma^{\lfloor s/\mathrm{step\_size}\rfloor}

    torch's ``StepLR`` gives the same values, but computes them recursively (it multiplies the
    group's current lr), so an lr set by hand persists there; here it is overwritten at the next
    step, as in OneFlow.

    Raises ``ValueError`` if ``step_size`` is not a positive integer.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        step_size: int,
        gamma: float = 0.1,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.step_size = check.positive_int("step_size", step_size)
        self.gamma = check.real("gamma", gamma)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.step_lr(base_lr, step, step_size=self.step_size, gamma=self.gamma)


class MultiStepLR(ClosedFormLR):
    r"""Decay by ``gamma`` at each milestone.

    .. math:: lr(s) = b\,\gamma^{\mathrm{bisect\_right}(milestones,\ s)}

    ``milestones`` must be strictly increasing integers >= 0 (``ValueError`` otherwise). torch
    sorts them and counts repeats (a milestone given twice decays twice); OneFlow bisects the list
    as given, which is only meaningful when sorted, so an unsorted list is rejected here.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        milestones: Sequence[int],
        gamma: float = 0.1,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.milestones = check.strictly_increasing_ints("milestones", milestones)
        self.gamma = check.real("gamma", gamma)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.multistep_lr(base_lr, step, milestones=self.milestones, gamma=self.gamma)


class ExponentialLR(ClosedFormLR):
    r"""Decay by ``gamma`` every step.

    .. math:: lr(s) = b\,\gamma^{s}

    Same values as torch's ``ExponentialLR`` (closed form rather than recursive).
    Raises ``ValueError`` if ``gamma <= 0``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        gamma: float,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.gamma = check.positive_number("gamma", gamma)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.exponential_lr(base_lr, step, gamma=self.gamma)


class CosineAnnealingLR(ClosedFormLR):
    r"""Cosine from ``b`` down to ``eta_min`` over ``T_max`` steps, periodic afterwards.

    .. math:: lr(s) = \eta_{min} + (b - \eta_{min})\,\frac{1 + \cos(\pi s / T_{max})}{2}

    Not clamped: past ``T_max`` the cosine continues and the lr climbs back to ``b`` at
    ``2 T_max`` (OneFlow's behaviour and torch's closed form). torch's default (recursive) form
    matches this only up to rounding drift, and keeps an lr set by hand; this is exact and
    overwrites it. For a schedule that stays at its floor, use :class:`CosineDecayLR`.

    Raises ``ValueError`` if ``T_max`` is not positive.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        T_max: int,
        eta_min: float = 0.0,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.T_max = check.positive_number("T_max", T_max)
        self.eta_min = check.real("eta_min", eta_min)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.cosine_annealing_lr(base_lr, step, T_max=self.T_max, eta_min=self.eta_min)


class CosineDecayLR(ClosedFormLR):
    r"""Half a cosine from ``b`` to ``b*alpha`` over ``decay_steps``, then flat (OneFlow only).

    .. math::
        lr(s) = \begin{cases}
          b\left((1-\alpha)\frac{1+\cos(\pi s/D)}{2} + \alpha\right) & s < D \\
          b\,\alpha & s \ge D
        \end{cases}

    torch has no counterpart (``CosineAnnealingLR(T_max=D, eta_min=b*alpha)`` matches it only
    up to ``D``, and only for one group). Raises ``ValueError`` if ``decay_steps`` is not positive
    or ``alpha`` is outside ``[0, 1]``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        decay_steps: int,
        alpha: float = 0.0,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.decay_steps = check.positive_number("decay_steps", decay_steps)
        self.alpha = check.in_closed_range("alpha", alpha, 0.0, 1.0)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.cosine_decay_lr(base_lr, step, decay_steps=self.decay_steps, alpha=self.alpha)


class PolynomialLR(ClosedFormLR):
    r"""Polynomial decay from ``b`` to ``end_learning_rate`` (OneFlow's version).

    .. math::
        lr(s) = (b - e)\left(1 - \frac{c}{D'}\right)^{power} + e

    - ``cycle=False``: :math:`c = \min(s, D)`, :math:`D' = D` (flat at :math:`e` after ``D``);
    - ``cycle=True``: :math:`c = s` (but 1 at step 0), :math:`D' = D\lceil c/D\rceil` (the decay
      restarts, ever longer). Step 0 is already one step in: b=1, e=0.1, D=5, power=1 gives 0.82
      (OneFlow's behaviour, kept).

    torch's ``PolynomialLR(total_iters, power)`` is the ``cycle=False``, ``e = 0`` case; it has
    neither ``end_learning_rate`` nor ``cycle``. Raises ``ValueError`` if ``decay_batch`` is not
    positive.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        decay_batch: int,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.decay_batch = check.positive_number("decay_batch", decay_batch)
        self.end_learning_rate = check.real("end_learning_rate", end_learning_rate)
        self.power = check.real("power", power)
        self.cycle = bool(cycle)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.polynomial_lr(
            base_lr,
            step,
            decay_batch=self.decay_batch,
            end_learning_rate=self.end_learning_rate,
            power=self.power,
            cycle=self.cycle,
        )


class LambdaLR(ClosedFormLR):
    r"""The base lr times a user function of the step.

    .. math:: lr_i(s) = b_i\,\lambda_i(s)

    ``lr_lambda`` is one function for every group, or a list with one function per group
    (``ValueError`` if its length differs from the number of groups). Same values as torch's
    ``LambdaLR``. ``get_lr(base_lr, step)`` uses group 0's function. ``state_dict()`` saves the
    ``__dict__`` of callable objects, not plain functions or lambdas (as torch does).
    """

    _state_exclude = ("optimizer", "lr_lambdas")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        n_groups = len(check_optimizer(optimizer).param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n_groups:
                raise ValueError(
                    f"Invalid lr_lambda: a list of {len(lr_lambda)} functions "
                    f"(expected one per param group: {n_groups})"
                )
            lambdas = list(lr_lambda)
            self._one_lambda = False
        else:
            lambdas = [lr_lambda]
            self._one_lambda = True
        for fn in lambdas:
            if not callable(fn):
                raise TypeError(f"Invalid lr_lambda: {fn!r} (expected a callable)")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return self._group_lr(0, base_lr, step)

    def _group_lr(self, group: int, base_lr: float, step: int) -> float:
        fn = self.lr_lambdas[0 if self._one_lambda else group]
        return F.lambda_lr(base_lr, step, lr_lambda=fn)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else fn.__dict__.copy()
            for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for fn, saved in zip(self.lr_lambdas, state_dict.get("lr_lambdas", ()), strict=False):
            if saved is not None:
                fn.__dict__.update(saved)


class ConstantLR(ClosedFormLR):
    r"""A constant fraction of the base lr for ``total_iters`` steps, then the base lr.

    .. math:: lr(s) = \begin{cases} b\cdot factor & s < total\_iters \\ b & s \ge total\_iters
        \end{cases}

    Same values as torch's ``ConstantLR``. Raises ``ValueError`` if ``factor`` is outside
    ``[0, 1]`` or ``total_iters`` is not a positive integer.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        factor: float = 1.0 / 3,
        total_iters: int = 5,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.factor = check.in_closed_range("factor", factor, 0.0, 1.0)
        self.total_iters = check.positive_int("total_iters", total_iters)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.constant_lr(base_lr, step, factor=self.factor, total_iters=self.total_iters)


class LinearLR(ClosedFormLR):
    r"""The factor goes linearly from ``start_factor`` to ``end_factor`` over ``total_iters``.

    .. math:: lr(s) = \begin{cases}
        b\left(sf + (ef - sf)\frac{s}{T}\right) & s < T \\ b\cdot ef & s \ge T \end{cases}

    Same values as torch's ``LinearLR``. Both factors must lie in ``[0, 1]`` (OneFlow's range;
    torch also rejects ``start_factor == 0``, which only its recursive form cannot handle);
    ``total_iters`` must be a positive integer. OneFlow 0.9.0's class returns ``b`` (not
    ``b*ef``) after ``T``; the contract (and torch) say ``b*ef``, which is what this does.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.start_factor = check.in_closed_range("start_factor", start_factor, 0.0, 1.0)
        self.end_factor = check.in_closed_range("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = check.positive_int("total_iters", total_iters)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.linear_lr(
            base_lr,
            step,
            start_factor=self.start_factor,
            end_factor=self.end_factor,
            total_iters=self.total_iters,
        )


class CosineAnnealingWarmRestarts(ClosedFormLR):
    r"""SGDR: cosine annealing restarted every cycle, with OneFlow's decay and restart limit.

    Cycle :math:`i` lasts :math:`T_i = T_0 T_{mult}^{i}` steps; :math:`T_{cur}` counts the steps
    since the cycle began.

    .. math::
        lr(s) = \eta_{min} + (b\,\mathrm{decay\_rate}^{i} - \eta_{min})\,
                \frac{1 + \cos(\pi T_{cur}/T_i)}{2}

    while ``restart_limit == 0`` (no limit) or :math:`i <` ``restart_limit``, and
    :math:`\eta_{min}` from then on. With ``decay_rate=1, restart_limit=0`` this is torch's
    ``CosineAnnealingWarmRestarts``. The cycle is found with integer arithmetic (OneFlow and
    torch take a floating-point logarithm, which can be one cycle off exactly at a restart).
    ``step(epoch)`` accepts a fractional epoch, as torch's does.

    Raises ``ValueError`` if ``T_0`` is not a positive integer, ``T_mult`` is not an integer
    >= 1, ``decay_rate`` is negative or ``restart_limit`` is not an integer >= 0.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        decay_rate: float = 1.0,
        restart_limit: int = 0,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        self.T_0 = check.positive_int("T_0", T_0)
        if isinstance(T_mult, bool) or not isinstance(T_mult, int) or T_mult < 1:
            raise ValueError(f"Invalid T_mult: {T_mult!r} (expected an integer >= 1)")
        self.T_mult = T_mult
        self.eta_min = check.real("eta_min", eta_min)
        self.decay_rate = check.real("decay_rate", decay_rate)
        if self.decay_rate < 0:
            raise ValueError(f"Invalid decay_rate: {decay_rate!r} (expected a number >= 0)")
        self.restart_limit = check.non_negative_int("restart_limit", restart_limit)
        super().__init__(optimizer, last_step, verbose, last_epoch=last_epoch)

    def _closed_form(self, base_lr: float, step: int) -> float:
        return F.cosine_annealing_warm_restarts_lr(
            base_lr,
            step,
            T_0=self.T_0,
            T_mult=self.T_mult,
            eta_min=self.eta_min,
            decay_rate=self.decay_rate,
            restart_limit=self.restart_limit,
        )
