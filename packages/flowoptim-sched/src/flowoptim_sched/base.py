"""The thin stateful layer: a ``torch.optim.lr_scheduler.LRScheduler`` driven by a closed form."""

from __future__ import annotations

import inspect
import warnings
import weakref
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["ClosedFormLR", "check_optimizer"]

# torch's own text (torch.optim.lr_scheduler.LRScheduler.step), so that filters written for
# torch's warning also catch ours.
STEP_ORDER_WARNING = (
    "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
    "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
    "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
    "will result in PyTorch skipping the first value of the learning rate schedule. "
    "See more details at "
    "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"
)


def check_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """Return ``optimizer`` if it is a ``torch.optim.Optimizer``, else raise ``TypeError``."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"Invalid optimizer: {type(optimizer).__name__} object "
            "(expected a torch.optim.Optimizer instance)"
        )
    return optimizer


def _scalar(value: Any) -> Any:
    return float(value) if isinstance(value, torch.Tensor) else value


def _set_group_lr(group: dict[str, Any], lr: float) -> None:
    current = group["lr"]
    if isinstance(current, torch.Tensor):
        current.fill_(lr)  # a tensor lr (capturable optimizers) is updated in place
    else:
        group["lr"] = lr


def _track_optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """Wrap ``optimizer.step`` so that it records its first call, exactly as torch does.

    torch's ``LRScheduler.__init__`` replaces the instance's ``step`` with a wrapper that sets
    ``optimizer._opt_called = True`` and marks itself ``_wrapped_by_lr_sched``; this uses the
    same two names, so an optimizer driven by torch's schedulers and ours is wrapped once and
    either kind sees the other's record. The wrapper holds the optimizer weakly (no cycle), like
    torch's. A ``step`` that is not a plain bound method of the optimizer (replaced by another
    library) is left alone: then the order cannot be known and nothing is ever reported.
    """
    step = optimizer.step
    if hasattr(step, "_wrapped_by_lr_sched"):
        return
    if not inspect.ismethod(step) or step.__self__ is not optimizer:
        return
    func = step.__func__
    opt_ref = weakref.ref(optimizer)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opt = opt_ref()
        opt._opt_called = True  # type: ignore[union-attr]
        return func.__get__(opt, opt.__class__)(*args, **kwargs)

    wrapper.__wrapped__ = func  # type: ignore[attr-defined]
    wrapper.__doc__ = func.__doc__
    wrapper._wrapped_by_lr_sched = True  # type: ignore[attr-defined]
    optimizer.step = wrapper  # type: ignore[method-assign]


class _Drivers:
    """Which of this package's schedulers have stepped an optimizer, and in what order."""

    __slots__ = ("__weakref__", "last", "steppers", "warned")

    def __init__(self) -> None:
        self.last: weakref.ref | None = None
        self.steppers: weakref.WeakSet = weakref.WeakSet()
        self.warned = False


# optimizer -> _Drivers; weak, so that it keeps neither optimizers nor schedulers alive and adds
# nothing to the optimizer (its pickles and state dicts are unchanged).
_DRIVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _note_stepper(scheduler: ClosedFormLR) -> None:
    """Warn once per optimizer when two of this package's schedulers both step it.

    Each scheduler sets the lr from its own closed form, so of two schedulers stepped on one
    optimizer the last one stepped wins (OneFlow 0.9.0's behaviour, kept), where torch's
    chainable schedulers would compose. Only ``step()`` calls count (not the constructor's
    step, nor a composite driving its children), and only *interleaved* stepping: scheduler A
    steps, then B, then A again. Replacing one scheduler by another (A, A, B, B) is fine.
    """
    try:
        drivers = _DRIVERS.get(scheduler.optimizer)
        if drivers is None:
            drivers = _DRIVERS[scheduler.optimizer] = _Drivers()
    except TypeError:  # an optimizer that cannot be weakly referenced: nothing to track
        return
    last = drivers.last() if drivers.last is not None else None
    if (
        not drivers.warned
        and last is not None
        and last is not scheduler
        and scheduler in drivers.steppers
    ):
        drivers.warned = True
        warnings.warn(
            f"Two flowoptim_sched schedulers ({type(last).__name__} and "
            f"{type(scheduler).__name__}) are both stepping the same optimizer. Each one sets "
            "the lr from its own closed form, so the last one stepped wins (OneFlow's "
            "behaviour); torch's chainable schedulers would have composed them. To combine "
            "schedulers, step one composite: SequentialLR (one after another), ChainedScheduler "
            "(their factors multiplied at every step) or WarmupLR (a warmup before or over a "
            "scheduler).",
            UserWarning,
            stacklevel=3,
        )
    drivers.steppers.add(scheduler)
    drivers.last = weakref.ref(scheduler)


def _resolve_last_step(last_step: int, last_epoch: int | None) -> int:
    if last_epoch is None:
        return last_step
    if last_step != -1 and last_step != last_epoch:
        raise ValueError(
            f"Invalid last_epoch: {last_epoch!r} disagrees with last_step={last_step!r} "
            "(pass only one of them; last_epoch is torch's name for last_step)"
        )
    return last_epoch


class ClosedFormLR(LRScheduler):
    """Base class: the lr of group ``i`` after ``last_step`` steps is ``f_i(base_lr_i, last_step)``.

    It subclasses ``torch.optim.lr_scheduler.LRScheduler`` (so ``isinstance`` checks in Lightning,
    HF Trainer and torch's own ``SequentialLR`` pass) but does not use its machinery: it never
    calls torch's ``__init__``/``step`` (whose ``verbose`` handling and warnings changed between
    torch releases), so it behaves the same on every torch it supports.

    Construction (OneFlow's and torch's rule): with ``last_step == -1`` every group gets
    ``initial_lr = lr`` if it has none; otherwise every group must already have ``initial_lr``
    (``KeyError`` naming the group). ``base_lrs`` are the ``initial_lr`` values. The constructor
    then performs one :meth:`step`, so afterwards ``last_step == 0`` (or ``last_step + 1`` when
    resuming) and each group's lr is the closed form at that step. Each :meth:`step` increments
    ``last_step`` and *overwrites* every group's lr with the closed form, so an lr set by hand
    lasts until the next step.

    ``last_step`` (OneFlow) and ``last_epoch`` (torch) are the same counter, as constructor
    keywords and as attributes.

    Two warnings, both ``UserWarning``:

    - torch's "Detected call of ``lr_scheduler.step()`` before ``optimizer.step()``", by
      torch's mechanism (the constructor wraps ``optimizer.step`` to record its first call; the
      first :meth:`step` after the constructor checks it), once per scheduler;
    - once per optimizer, when two of this package's schedulers are stepped in turn on the same
      optimizer (the last one stepped sets the lr: nothing composes them), naming
      ``SequentialLR``, ``ChainedScheduler`` and ``WarmupLR``, which do.
    """

    _state_exclude: tuple[str, ...] = ("optimizer",)

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        last_step: int = -1,
        verbose: bool = False,
        *,
        last_epoch: int | None = None,
    ) -> None:
        check_optimizer(optimizer)
        last_step = _resolve_last_step(last_step, last_epoch)
        if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < -1:
            raise ValueError(f"Invalid last_step: {last_step!r} (expected an integer >= -1)")
        self.optimizer = optimizer
        _track_optimizer_step(optimizer)
        if last_step == -1:
            for group in optimizer.param_groups:
                lr = group["lr"]
                group.setdefault("initial_lr", lr.clone() if isinstance(lr, torch.Tensor) else lr)
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param_groups[{i}] has no 'initial_lr', which resuming with "
                        f"last_step={last_step} needs (load the optimizer's state_dict first, "
                        "or start with last_step=-1)"
                    )
        self.base_lrs: list[float] = [_scalar(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_step = last_step
        self.verbose = bool(verbose)
        self._last_lr: list[float] = []
        self._initial_step()

    # -- the counter under both names ---------------------------------------------------------
    @property
    def last_epoch(self) -> int:
        """torch's name for :attr:`last_step`."""
        return self.last_step

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        self.last_step = value

    # -- closed form ----------------------------------------------------------------------------
    def _closed_form(self, base_lr: float, step: int) -> float:
        raise NotImplementedError

    def _group_lr(self, group: int, base_lr: float, step: int) -> float:
        """The lr of param group ``group`` (schedules that differ per group override this)."""
        return self._closed_form(base_lr, step)

    def get_lr(self, base_lr: float | None = None, step: int | None = None) -> Any:
        """Closed form.

        ``get_lr(base_lr, step)`` (OneFlow's signature) returns the lr for one base lr at one step.
        ``get_lr()`` (torch's signature) returns the list of lrs of every group at
        :attr:`last_step`, without changing anything.
        """
        if base_lr is None and step is None:
            self._sync_groups()
            return [self._group_lr(i, b, self.last_step) for i, b in enumerate(self.base_lrs)]
        if base_lr is None or step is None:
            raise TypeError("get_lr() takes either no argument or both base_lr and step")
        return self._group_lr(0, _scalar(base_lr), step)

    def _sync_groups(self) -> None:
        # A group added with optimizer.add_param_group() after construction starts from its lr.
        groups = self.optimizer.param_groups
        for group in groups[len(self.base_lrs) :]:
            group.setdefault("initial_lr", group["lr"])
            self.base_lrs.append(_scalar(group["initial_lr"]))

    # -- stepping -------------------------------------------------------------------------------
    def _initial_step(self) -> None:
        """The constructor's step (torch's SequentialLR also calls this on a sub-scheduler)."""
        self._step_count = 0
        self._update_lr()
        self._step_count = 1

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (torch's deprecated ``step(epoch)``: jump to ``epoch``); set the lrs.

        Call it after ``optimizer.step()``: the first call after the constructor warns, as
        torch's schedulers do, if the optimizer has not stepped yet.
        """
        count = getattr(self, "_step_count", 0)
        if count == 1:
            step = self.optimizer.step
            if getattr(step, "_wrapped_by_lr_sched", False) and not getattr(
                self.optimizer, "_opt_called", False
            ):
                warnings.warn(STEP_ORDER_WARNING, UserWarning, stacklevel=2)
        _note_stepper(self)
        self._step_count = count + 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        # torch >= 2.9's SequentialLR calls _update_lr(0) on the next scheduler at a milestone.
        self.last_step = self.last_step + 1 if epoch is None else epoch
        self._apply(self.get_lr())

    def _apply(self, lrs: list[float]) -> None:
        for i, (group, lr) in enumerate(zip(self.optimizer.param_groups, lrs, strict=True)):
            _set_group_lr(group, lr)
            if self.verbose:
                self.print_lr(i, lr)
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        """The lrs the last :meth:`step` set, one per group."""
        return list(self._last_lr)

    def print_lr(self, group: int, lr: float) -> None:
        """The ``verbose`` line: one per group per step."""
        print(
            f"{type(self).__name__}: step {self.last_step}, "
            f"adjusting learning rate of param_groups[{group}] to {lr:.6e}"
        )

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (and, in subclasses, functions and nested schedulers).

        ``last_epoch`` is included next to ``last_step`` for tools that read torch's key.
        """
        state = {k: v for k, v in self.__dict__.items() if k not in self._state_exclude}
        state["last_epoch"] = self.last_step
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (also accepts one with torch's ``last_epoch`` only).

        Like torch, this does not touch the optimizer's lrs: load the optimizer's own state too,
        or the group lrs stay as they are until the next :meth:`step`.
        """
        state = {k: v for k, v in state_dict.items() if k not in self._state_exclude}
        last_epoch = state.pop("last_epoch", None)
        if "last_step" not in state and last_epoch is not None:
            state["last_step"] = last_epoch
        self.__dict__.update(state)
