"""The schedules as pure functions of ``(base_lr, step)``: no torch, no state.

Each function returns the learning rate that OneFlow 0.9.0's scheduler of the same name gives a
parameter group whose initial lr is ``base_lr`` after ``step`` calls of ``step()`` (the
constructor's own call is step 0). They are the single source of the numbers: the stateful
classes in :mod:`flowoptim_sched.schedulers` only call them. Hyperparameters are taken as given;
the classes validate them (see :mod:`flowoptim_sched._validation`).

Composite schedules (:func:`sequential_lr`, :func:`chained_lr`, :func:`warmup_lr`) take other
schedules as callables ``f(base_lr, step) -> lr``, e.g. ``functools.partial(step_lr, step_size=3)``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence

Schedule = Callable[[float, int], float]

__all__ = [
    "Schedule",
    "chained_lr",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts_lr",
    "cosine_decay_lr",
    "exponential_lr",
    "lambda_lr",
    "linear_lr",
    "multistep_lr",
    "polynomial_lr",
    "sequential_lr",
    "step_lr",
    "warm_restarts_cycle",
    "warmup_lr",
]


def step_lr(base_lr: float, step: int, *, step_size: int, gamma: float = 0.1) -> float:
    r"""StepLR: :math:`b \gamma^{\lfloor s / \mathrm{step\_size} \rfloor}`."""
    return base_lr * gamma ** (step // step_size)


def multistep_lr(
    base_lr: float, step: int, *, milestones: Sequence[int], gamma: float = 0.1
) -> float:
    r"""MultiStepLR: :math:`b \gamma^{\mathrm{bisect\_right}(milestones, s)}`.

    ``milestones`` must be strictly increasing (the class checks it).
    """
    return base_lr * gamma ** bisect_right(milestones, step)


def exponential_lr(base_lr: float, step: int, *, gamma: float) -> float:
    r"""ExponentialLR: :math:`b \gamma^{s}`."""
    return base_lr * gamma**step


def cosine_annealing_lr(base_lr: float, step: int, *, T_max: float, eta_min: float = 0.0) -> float:
    r"""CosineAnnealingLR: :math:`\eta_{min} + (b-\eta_{min})\,(1+\cos(\pi s/T_{max}))/2`.

    Not clamped at ``T_max``: past it the cosine continues, so the lr climbs back to ``b`` at
    ``2 T_max`` (OneFlow's and torch's closed form).
    """
    return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * step / T_max)) / 2.0


def cosine_decay_lr(base_lr: float, step: int, *, decay_steps: float, alpha: float = 0.0) -> float:
    r"""CosineDecayLR: for :math:`s < D`, :math:`b\,((1-\alpha)(1+\cos(\pi s/D))/2 + \alpha)`;
    afterwards flat at :math:`b\alpha`."""
    if step >= decay_steps:
        return base_lr * alpha
    cos_decay = 0.5 * (1.0 + math.cos(math.pi * step / decay_steps))
    return base_lr * ((1.0 - alpha) * cos_decay + alpha)


def polynomial_lr(
    base_lr: float,
    step: int,
    *,
    decay_batch: float,
    end_learning_rate: float = 0.0001,
    power: float = 1.0,
    cycle: bool = False,
) -> float:
    r"""PolynomialLR: :math:`(b-e)(1-c/D')^{power} + e`.

    ``cycle=False``: :math:`c = \min(s, D)`, :math:`D' = D`.
    ``cycle=True``: :math:`c = s` (1 at step 0), :math:`D' = D \lceil c/D \rceil`, so step 0 is
    already one step into the first cycle (OneFlow's behaviour: b=1, e=0.1, D=5 gives 0.82).
    """
    if cycle:
        cur = step if step > 0 else 1
        decay = decay_batch * math.ceil(cur / decay_batch)
    else:
        cur = min(step, decay_batch)
        decay = decay_batch
    return (base_lr - end_learning_rate) * (1.0 - cur / decay) ** power + end_learning_rate


def lambda_lr(base_lr: float, step: int, *, lr_lambda: Callable[[int], float]) -> float:
    r"""LambdaLR: :math:`b\,\lambda(s)`."""
    return base_lr * lr_lambda(step)


def constant_lr(
    base_lr: float, step: int, *, factor: float = 1.0 / 3, total_iters: int = 5
) -> float:
    r"""ConstantLR: :math:`b\cdot factor` for :math:`s < total\_iters`, then :math:`b`."""
    return base_lr * factor if step < total_iters else base_lr


def linear_lr(
    base_lr: float,
    step: int,
    *,
    start_factor: float = 1.0 / 3,
    end_factor: float = 1.0,
    total_iters: int = 5,
) -> float:
    r"""LinearLR: :math:`b\,(sf + (ef-sf)\,s/T)` for :math:`s < T`, then :math:`b\cdot ef`."""
    if step < total_iters:
        return base_lr * (start_factor + (end_factor - start_factor) * step / total_iters)
    return base_lr * end_factor


def warm_restarts_cycle(step: int, *, T_0: int, T_mult: int = 1) -> tuple[int, int, int]:
    r"""Locate ``step`` in SGDR's cycles: returns ``(i, T_cur, T_i)``.

    Cycle ``i`` lasts :math:`T_i = T_0 T_{mult}^i` steps and starts at
    :math:`T_0 (T_{mult}^i - 1)/(T_{mult} - 1)` (at :math:`i T_0` when ``T_mult == 1``).
    Integer arithmetic: OneFlow and torch find ``i`` with a floating-point logarithm, which can land
    one cycle off exactly at a restart for some ``T_0``/``T_mult``; this is the exact answer.
    """
    if T_mult == 1:
        i, t_cur = divmod(step, T_0)
        return i, t_cur, T_0
    i, start, length = 0, 0, T_0
    while step >= start + length:
        start += length
        length *= T_mult
        i += 1
    return i, step - start, length


def cosine_annealing_warm_restarts_lr(
    base_lr: float,
    step: int,
    *,
    T_0: int,
    T_mult: int = 1,
    eta_min: float = 0.0,
    decay_rate: float = 1.0,
    restart_limit: int = 0,
) -> float:
    r"""CosineAnnealingWarmRestarts (SGDR) with OneFlow's ``decay_rate`` and ``restart_limit``.

    With ``(i, T_cur, T_i)`` from :func:`warm_restarts_cycle`:
    :math:`\eta_{min} + (b\,\mathrm{decay\_rate}^{i} - \eta_{min})(1+\cos(\pi T_{cur}/T_i))/2`
    while ``restart_limit == 0`` (unlimited) or :math:`i <` ``restart_limit``; afterwards
    :math:`\eta_{min}`.
    """
    i, t_cur, t_i = warm_restarts_cycle(step, T_0=T_0, T_mult=T_mult)
    if restart_limit != 0 and i >= restart_limit:
        return eta_min
    peak = base_lr * decay_rate**i
    return eta_min + (peak - eta_min) * 0.5 * (1.0 + math.cos(math.pi * t_cur / t_i))


def sequential_lr(
    base_lr: float,
    step: int,
    *,
    schedules: Sequence[Schedule],
    milestones: Sequence[int],
    interval_rescaling: bool | Sequence[bool] = False,
) -> float:
    r"""SequentialLR: schedule :math:`k = \mathrm{bisect\_right}(milestones, s)` gives the lr.

    It sees the global step :math:`s`, or :math:`s - milestones_{k-1}` where
    ``interval_rescaling[k-1]`` is true (then it starts from its own step 0 at its milestone,
    which is what ``torch.optim.lr_scheduler.SequentialLR`` always does).
    """
    k = bisect_right(milestones, step)
    if isinstance(interval_rescaling, bool):
        rescale = interval_rescaling
    else:
        rescale = k > 0 and interval_rescaling[k - 1]
    if k > 0 and rescale:
        step = step - milestones[k - 1]
    return schedules[k](base_lr, step)


def chained_lr(base_lr: float, step: int, *, schedules: Sequence[Schedule]) -> float:
    r"""ChainedScheduler: :math:`f_n(\dots f_2(f_1(b, s), s)\dots, s)`.

    Each schedule takes the previous one's lr as its base lr, all at the same step (OneFlow).
    """
    lr = base_lr
    for schedule in schedules:
        lr = schedule(lr, step)
    return lr


def warmup_lr(
    base_lr: float,
    step: int,
    *,
    warmup_factor: float = 1.0 / 3,
    warmup_iters: int = 5,
    warmup_method: str = "linear",
    warmup_prefix: bool = False,
    after: Schedule | None = None,
) -> float:
    r"""WarmupLR: a warmup of ``warmup_iters`` steps, then ``after`` (or the constant ``b``).

    For :math:`s < W` (``warmup_iters``):

    - ``"constant"``: :math:`b\,wf`;
    - ``"linear"``: :math:`b\,(wf + (ef - wf)\,s/W)`, where :math:`ef = after(b, W)/b` (the
      warmup ends on the value the wrapped schedule has at step :math:`W`), or :math:`ef = 1`
      when there is no ``after`` or ``warmup_prefix`` is true.

    For :math:`s \ge W`: ``after(b, s)``, or ``after(b, s - W)`` with ``warmup_prefix`` (the
    wrapped schedule starts after the warmup instead of running underneath it); :math:`b`
    without ``after``.
    """
    if warmup_iters > 0 and step < warmup_iters:
        if warmup_method == "constant":
            return base_lr * warmup_factor
        if after is None or warmup_prefix:
            end_factor = 1.0
        else:
            end_lr = after(base_lr, warmup_iters)
            if base_lr == 0:
                return end_lr * step / warmup_iters
            end_factor = end_lr / base_lr
        return base_lr * (warmup_factor + (end_factor - warmup_factor) * step / warmup_iters)
    if after is None:
        return base_lr
    return after(base_lr, step - warmup_iters if warmup_prefix else step)
