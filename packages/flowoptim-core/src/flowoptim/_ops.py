"""torch.library custom ops: what ``torch.compile`` sees of a flowoptim step and ``clip_grad``.

Note [step under torch.compile]
-------------------------------
Dynamo cannot trace a backend's functional (the reference backend calls ``torch._fused_*`` ops,
which have no fake kernels or do not functionalize; the Triton backend builds pointer tables from
``data_ptr()``), and it specializes on every Python number it reads: the optimizer-wide step
(an ``int`` that changes every step) or a scheduler's ``lr`` would recompile every step.
So under dynamo (``torch.compiler.is_compiling()``) ``Optimizer.step`` and ``clip_grad`` split
in two:

* the bookkeeping runs eagerly, in a function dynamo skips (``torch._disable_dynamo``: one graph
  break): phase 1 checks (Note [step phases]), the step counter, lazily created state, the
  partitions. Each backend call the eager step would make is *recorded* instead of run
  (:class:`Recorder`): its tensor lists, ``grad_scale``, its numbers packed into one float64 CPU
  tensor ``hyper`` (a graph input, never a guard, so a new lr or step recompiles nothing), and
  its booleans as constants (they change only when an option is switched: then dynamo
  recompiles, as torch's compiled optimizers do);
* the recorded calls then run as custom ops (``flowoptim::adam_`` ...): one opaque node per
  (group, device, dtype) partition, declaring what it mutates, with a fake implementation that
  does nothing (the ops return nothing). Their real implementation calls the backend's
  functional with exactly the arguments the eager step passes (``hyper.tolist()`` gives back
  the same Python floats), so a compiled step gives the eager step's bits.

``clip_grad`` does the same: its checks and partitions run eagerly; the per-partition norms
(``flowoptim::grad_norm``), the group's total and coefficient (``flowoptim::clip_coef``, the eager
expression) and the in-place scale (``flowoptim::scale_``) are custom ops. A pending fused
coefficient is the op's output, stored for the next step.

A backend is passed to an op as an integer handle (:func:`handle`): a constant for dynamo.
A capturable group's tensor ``step`` and a tensor ``lr`` (Note [device scalars]) reach the op
as tensors, never read on the host. Under GradScaler's ``found_inf`` (Note [AMP]) the update
runs eagerly inside the skipped function, and so do lazy sparse updates (``sgd_sparse``,
``adam_sparse``, spec §5: a sparse gradient's indices are data, nothing a graph could keep):
:class:`Recorder` hands those calls straight to the backend. Costs: two graph breaks per
``step()`` and per ``clip_grad()``; ``hyper.tolist()`` reads a CPU tensor (no device sync).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .backends.base import Backend

__all__ = [
    "ALGORITHMS",
    "SPARSE_ALGORITHMS",
    "Recorder",
    "clip_coef",
    "grad_norm",
    "handle",
    "run",
    "scale_",
]

#: every algorithm functional of the backend contract -> the number of state lists it takes
ALGORITHMS = {"sgd": 1, "adam": 3, "lamb": 3, "rmsprop": 3, "adagrad": 1, "adadelta": 2}
#: the lazy sparse functionals (spec §5), which run eagerly under dynamo and GradScaler
SPARSE_ALGORITHMS = frozenset({"sgd_sparse", "adam_sparse"})

_handles: dict[int, int] = {}  # id(backend) -> handle
_backends: list[Backend] = []  # handle -> backend (kept alive: backends are few and long-lived)


def handle(backend: Backend) -> int:
    """The integer that names ``backend`` to the custom ops."""
    h = _handles.get(id(backend))
    if h is None or _backends[h] is not backend:
        h = len(_backends)
        _backends.append(backend)
        _handles[id(backend)] = h
    return h


def _encode(kw: dict[str, Any], devices: bool) -> tuple[str, list[float], list[Tensor]]:
    """Split a functional's keyword arguments (``grad_scale`` excluded) into a constant spec
    string (names, in order; booleans with their value), the numbers (floats and the int
    ``step``) in that order, and the tensors. ``devices``: tensors (a capturable group's step,
    a tensor lr: Note [device scalars]) stay tensors; else a tensor lr is read as a float, as
    the backend would read it."""
    names, values, tensors = [], [], []
    for key, value in kw.items():
        if isinstance(value, bool):
            names.append(f"{key}={int(value)}")
        elif isinstance(value, Tensor) and (devices or key == "step"):
            names.append(f"{key}@")
            tensors.append(value)
        else:
            names.append(key)
            values.append(float(value))
    return ",".join(names), values, tensors


def _decode(spec: str, hyper: Tensor, tensors: list[Tensor]) -> dict[str, Any]:
    values = iter(hyper.tolist()) if hyper.numel() else iter(())
    given = iter(tensors)
    kw: dict[str, Any] = {}
    for item in spec.split(","):
        if item.endswith("@"):
            kw[item[:-1]] = next(given)
            continue
        key, eq, flag = item.partition("=")
        if eq:
            kw[key] = flag == "1"
        else:
            v = next(values)
            kw[key] = int(v) if key == "step" else v
    return kw


def _make_update_op(algo: str, n_states: int):
    def impl(
        backend: int,
        params: list[Tensor],
        grads: list[Tensor],
        state0: list[Tensor],
        state1: list[Tensor],
        state2: list[Tensor],
        grad_scale: Tensor | None,
        hyper: Tensor,
        tensors: list[Tensor],
        spec: str,
    ) -> None:
        # an empty state list is the functional's None (a present one has len(params) > 0)
        states = [s if s else None for s in (state0, state1, state2)[:n_states]]
        fn = getattr(_backends[backend], algo)
        fn(params, grads, *states, grad_scale=grad_scale, **_decode(spec, hyper, tensors))

    op = torch.library.custom_op(
        f"flowoptim::{algo}_",
        impl,
        mutates_args=("params", "state0", "state1", "state2"),
    )

    @op.register_fake
    def _fake(backend, params, grads, state0, state1, state2, grad_scale, hyper, tensors, spec):
        return None

    return op


UPDATE_OPS = {algo: _make_update_op(algo, n) for algo, n in ALGORITHMS.items()}


class Recorder:
    """Stands in for a backend in ``Optimizer._update`` under dynamo: each functional call is
    recorded as ``(op, args)`` for :func:`run` (Note [step under torch.compile])."""

    def __init__(self, calls: list[tuple[Any, tuple]]) -> None:
        self.calls = calls
        self.backend: Backend | None = None
        self.capturable = False  # the recorded group's (Note [device scalars])

    def __getattr__(self, name: str):
        backend = self.backend
        if name in SPARSE_ALGORITHMS and backend is not None:
            return getattr(backend, name)  # run eagerly (Note [step under torch.compile])
        if name not in ALGORITHMS:
            raise AttributeError(name)
        n_states = ALGORITHMS[name]

        def record(params, grads, *states, grad_scale=None, **kw):
            if len(states) != n_states:  # pragma: no cover - a class/contract mismatch
                raise TypeError(f"{name}: expected {n_states} state lists, got {len(states)}")
            lists = [list(s) if s is not None else [] for s in states]
            lists += [[] for _ in range(3 - n_states)]
            spec, values, tensors = _encode(kw, self.capturable)
            hyper = torch.tensor(values, dtype=torch.float64)
            args = (handle(backend), list(params), list(grads), *lists, grad_scale, hyper,
                    tensors, spec)  # fmt: skip
            self.calls.append((UPDATE_OPS[name], args))

        return record


def run(calls: list[tuple[Any, tuple]]) -> None:
    """Run recorded updates (traced by dynamo: one custom op each)."""
    for op, args in calls:
        op(*args)


# ---------------------------------------------------------------------------- clip_grad
@torch.library.custom_op("flowoptim::grad_norm", mutates_args=())
def _grad_norm(backend: int, grads: list[Tensor], norm_type: float) -> Tensor:
    return _backends[backend].grad_norm(grads, norm_type)


@_grad_norm.register_fake
def _grad_norm_fake(backend, grads, norm_type):
    dtype = torch.float64 if grads[0].dtype == torch.float64 else torch.float32
    return grads[0].new_empty((), dtype=dtype)


@torch.library.custom_op("flowoptim::clip_coef", mutates_args=())
def _clip_coef(partials: list[Tensor], norm_type: float, max_norm: float) -> list[Tensor]:
    from .optimizer import CLIP_EPS, _combine_norms

    total = _combine_norms(partials, norm_type)
    coef = torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)
    # outputs must not alias inputs: a single partition's total is its partial
    return [total.clone() if len(partials) == 1 else total, coef]


@_clip_coef.register_fake
def _clip_coef_fake(partials, norm_type, max_norm):
    if len(partials) == 1:
        dtype = partials[0].dtype
    else:
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in partials) else torch.float32
    out = partials[0].new_empty((), dtype=dtype)
    return [out, torch.empty_like(out)]


@torch.library.custom_op("flowoptim::scale_", mutates_args=("tensors",))
def _scale(backend: int, tensors: list[Tensor], coef: Tensor) -> None:
    _backends[backend].scale_(tensors, coef)


@_scale.register_fake
def _scale_fake(backend, tensors, coef):
    return None


def grad_norm(backend: int, grads: list[Tensor], norm_type: float) -> Tensor:
    return _grad_norm(backend, grads, norm_type)


def clip_coef(partials: list[Tensor], norm_type: float, max_norm: float) -> tuple[Tensor, Tensor]:
    total, coef = _clip_coef(partials, norm_type, max_norm)
    return total, coef


def scale_(backend: int, tensors: list[Tensor], coef: Tensor) -> None:
    _scale(backend, tensors, coef)
