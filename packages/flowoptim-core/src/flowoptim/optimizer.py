"""``flowoptim.Optimizer``: groups, the optimizer-wide step, state, clip_grad and state dicts.

Note [optimizer-wide step]
--------------------------
OneFlow counts steps per optimizer, not per parameter (spec §1.1): every ``step()`` increments the
counter, even when no parameter has a gradient, and Adam/AdamW/LAMB bias corrections and Adagrad's
``lr_decay`` use it. The counter is kept in every param group under the key ``"step"`` (all groups
hold the same value). Living in the groups, it survives every tool that round-trips param groups
(``state_dict``, ``torch.distributed.checkpoint``, ``ZeroRedundancyOptimizer``'s group syncing,
Lightning). Each parameter's state also has ``step``, as torch's optimizers do: a float32 0-d
tensor holding the optimizer step at which that parameter was last updated.

Note [step phases]
------------------
``step()`` first checks every group (sparse gradients, gradient dtype and shape, backend choice and
``check_tensors``, the presence, shape, dtype and device of every existing state tensor the update
will use, and the fused clip coefficients as 0-d tensors in each partition's compute dtype) and
only then advances the step counter, creates state and updates anything, so a bad input raises
with every parameter, every state tensor and the step counter untouched. State created lazily on
a parameter's first update (or when an option such as ``amsgrad`` is switched on) is created in
phase 2. A backend functional that raises in phase 2 can still leave earlier partitions updated:
backends are expected to fail only on what ``check_tensors`` can check. Phase 1 reruns in full at
every step for plain tensors: nothing it decides is cached across steps (Note [state check
cache]), because what it guards can change without a new object or address (a tensor resized,
transposed or given another dtype in place); the Triton backend's plan cache is keyed on the
whole content of its tables (Note [plan cache] in ``flowoptim_triton.launch``). Warm and cold
optimizers are compared after such changes in ``tests/test_step_fast_path.py``.

Note [load_state_dict checks]
-----------------------------
``load_state_dict`` refuses what ``step()`` cannot use, before anything changes (spec §4): a dict
without ``state`` or ``param_groups``; group count or sizes that differ; a group carrying another
algorithm's options (keys that are option names of some flowoptim or torch.optim optimizer but
not of this one: an SGD dict into Adam gains ``momentum``); invalid option values; state for an
unknown parameter id; per-parameter state with a key this algorithm does not use, a non-tensor
value (``step`` aside), a non-floating tensor, a tensor whose shape is not its parameter's (0-d
included: only ``step`` is a scalar), a meta tensor, or (for a non-empty entry) lacking a key
:meth:`Optimizer._required_state` requires. Every error names the group, the parameter index in
it and the key. torch.optim's own switches for the same algorithm (``foreach``, ``capturable``,
``differentiable``, ``fused``, ``decoupled_weight_decay``) are accepted and dropped unless this
optimizer has the option. Hooks registered with ``register_load_state_dict_pre_hook`` /
``..._post_hook`` fire as in torch.optim (pre-hooks may return a new state dict).

Note [torch.optim switches]
---------------------------
Every optimizer takes torch.optim's keyword-only ``foreach``, ``fused``, ``capturable`` and
``differentiable`` (so that factories such as timm's ``create_optimizer_v2(..., foreach=True)``
work). ``foreach`` and ``fused`` change nothing: the backend decides how an update runs (the
reference backend uses torch's fused CPU kernels where they give the spec's numbers, else
foreach ops; the Triton backend always runs fused kernels). Adam, AdamW and SGD keep ``fused``
in their groups, as OneFlow does; elsewhere it is checked and dropped. ``capturable`` is kept in
every group (default False, as torch); ``differentiable=True`` raises ``NotImplementedError``.

Note [capturable]
-----------------
``capturable=True`` (torch's meaning): the group's step makes no host synchronisation and can
be captured in a CUDA graph. The optimizer keeps the optimizer-wide step on each device as a
float32 0-d tensor, advanced in place (``add_(1)``) by every ``step()``, and hands the backend
that tensor as ``step`` (Note [device scalars] in ``flowoptim.backends.base``); each parameter's
``step`` state is a float32 0-d tensor on its device, written in place from it (torch's layout
for capturable optimizers; ``load_state_dict`` puts it there too). The host count in the groups
still advances with every ``step()`` call: replays of a captured graph advance only the device
tensors. A device counter is created from the host count the first time a capturable group
updates on that device: run the first step (a warm-up) before capturing. DTensor groups are
never capturable.

Note [AMP]
----------
``torch.amp.GradScaler`` hands an optimizer whose ``_step_supports_amp_scaling`` is true two
device tensors as attributes for one ``step()``: ``grad_scale`` (the loss scale, or None when the
user already called ``unscale_``) and ``found_inf`` (nonzero when some gradient was inf/NaN),
instead of unscaling the gradients and reading ``found_inf`` on the host. It is true when every
backend in use says ``amp_scaling`` (the Triton backend: its device scalars have the host
values' bits, Note [device scalars]); the reference backend keeps GradScaler's ordinary path
(on the CPU its host read costs nothing, and its device-scalar path would give other roundings).
Then ``step()`` folds ``1/scale``, computed as ``unscale_`` computes it, into the update's
``grad_scale`` (times a pending fused clip coefficient), so the gradients are multiplied by it
exactly as ``unscale_`` would; and with ``found_inf`` set it changes nothing: a backend with
``amp_found_inf`` (Triton) gets ``found_inf`` and its kernels store nothing; with any other,
each partition is updated and then masked back to its old params and state on the device (a
clone and a ``where`` per tensor), the step counters advance by
``found_inf == 0`` on the device (every group takes the device-step path of Note [capturable]
for that step), and the host count in the groups, which cannot know, is reconciled from the
device counter (one host read) when it is next needed: ``global_step``, ``state_dict()``, or a
later step without GradScaler. DTensor parameters keep GradScaler's ordinary path. Lazy sparse
updates (spec §5) take ``found_inf`` too (Note [sparse functionals]): the Triton row-gather
kernels store nothing, with no gather or copy of the rows.

Note [DTensor parameters]
-------------------------
Parameters may be DTensors (FSDP2's ``fully_shard``, tensor parallelism). Their state is created
with ``zeros_like(p)`` and is therefore a DTensor with the parameter's mesh and placements (as
torch's optimizers under FSDP2), so ``torch.distributed.checkpoint`` saves and loads it sharded;
the per-parameter ``step`` stays a plain 0-d tensor. Backends never see a DTensor: ``step`` hands
them the local shards (``to_local()``) of params, grads and state, and wraps any state tensor the
update creates back into a DTensor. LAMB's per-tensor norms (through the backend's
``norm_reduce`` hook) and ``clip_grad``'s total are reduced across the mesh, one collective per
group (Note [norm reduction across ranks] in ``flowoptim.distributed``). Groups whose tensors
cannot be reduced together are a ``ValueError`` before anything is modified. Plain tensors take
exactly the non-distributed path.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import operator
import os
import pickle
import warnings
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from . import _ops
from . import backends as _backends
from . import distributed as _dist
from ._validation import validate_options
from .backends.base import CLIP_EPS, Backend, compute_dtype

__all__ = ["Optimizer"]


# OneFlow 0.9.0 state names that differ from torch's (spec §4: OneFlow's layout is accepted)
_ONEFLOW_STATE_ALIASES = {"momentum_buf": "momentum_buffer"}

#: group keys every optimizer knows besides its defaults (Note [load_state_dict checks]):
#: ``initial_lr`` (schedulers), ``param_names`` (torch's named parameters), OneFlow 0.9.0's
#: ``contiguous_params`` (accepted and dropped)
_COMMON_GROUP_KEYS = frozenset(
    {"params", "step", "clip_grad_max_norm", "clip_grad_norm_type", "initial_lr", "param_names"}
)
_DROPPED_GROUP_KEYS = frozenset({"contiguous_params"})


@functools.cache
def _algorithm_option_names() -> frozenset[str]:
    """Every option name of every flowoptim and torch.optim optimizer (the keys that mark a group
    as some algorithm's), computed once from their constructors' signatures."""
    names: set[str] = set()
    classes = [
        c
        for c in vars(torch.optim).values()
        if isinstance(c, type) and issubclass(c, torch.optim.Optimizer)
    ]
    todo = list(Optimizer.__subclasses__())
    while todo:
        c = todo.pop()
        classes.append(c)
        todo.extend(c.__subclasses__())
    for c in classes:
        try:
            sig = inspect.signature(c.__init__)
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            continue
        names.update(
            n
            for n, prm in sig.parameters.items()
            if prm.kind not in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD)
        )
    return frozenset(names - {"self", "params", "defaults", "backend"})


#: source folders whose frames a warning skips (Optimizer._warn_once)
_INTERNAL_DIRS = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.path.abspath(torch.optim.__file__)) + os.sep,
)


#: tensor types whose checks need no local shard (Note [vectorized step checks])
_PLAIN_TYPES = frozenset({Tensor, torch.nn.Parameter})
#: C-level getters for ``map`` (Note [vectorized step checks])
_SHAPE = operator.attrgetter("shape")
_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")
_GRAD = operator.attrgetter("grad")
_LAYOUT = operator.attrgetter("layout")
_STRIDED = frozenset({torch.strided})
_SECOND = operator.itemgetter(1)


def _states_match(
    params: list[Tensor],
    states: list[Any],
    keys: tuple[str, ...],
    required: set[str],
    where: tuple[torch.device, torch.dtype],
) -> bool:
    """Note [vectorized step checks]
    --------------------------------
    Whether every existing state of plain-tensor ``params`` passes ``Optimizer._check_state``,
    decided with one C-level ``map`` per attribute and key instead of a Python loop per tensor.
    It reads the metadata the per-tensor check reads (floating-point and meta aside: those follow
    from the dtype and device equal to the parameter's, and are read once per distinct dtype and
    device), at every step, and caches nothing: True exactly when that check finds nothing
    (state ``None`` or empty: created in phase 2; a lazy key absent: created in phase 2;
    otherwise a ``Tensor`` or ``nn.Parameter``, floating, not meta, with the parameter's shape,
    dtype and device). False on any doubt: the caller then runs the per-tensor check, which
    raises with its own message. ``params`` are ``Tensor`` or ``nn.Parameter`` (their local
    shard is themselves) and all have the device and dtype ``where`` (one partition of
    ``Optimizer._plan_step``: only their shapes are read)."""
    has = list(map(bool, states))
    if not all(has):
        params = list(itertools.compress(params, has))
        states = list(itertools.compress(states, has))
    if not states:
        return True
    device, dtype = where
    # with every dtype and device equal to the parameters', floating and not meta are
    # properties of that one dtype and device (not read per tensor)
    if not dtype.is_floating_point or device.type == "meta":
        return False
    shapes = list(map(_SHAPE, params))
    for key in keys:
        vals = list(map(operator.methodcaller("get", key), states))
        present = list(map(operator.is_not, vals, itertools.repeat(None)))
        if all(present):
            sh = shapes
        elif key in required:
            return False
        else:
            vals = list(itertools.compress(vals, present))
            sh = list(itertools.compress(shapes, present))
        if vals and not (
            _PLAIN_TYPES.issuperset(map(type, vals))
            and list(map(_SHAPE, vals)) == sh
            and set(map(_DTYPE, vals)) == {dtype}
            and set(map(_DEVICE, vals)) == {device}
        ):
            return False
    return True


def _partition_of(
    devices: list[torch.device], dtypes: list[torch.dtype]
) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """Indices by ``(device, dtype)`` from the tensors' devices and dtypes, in order; no loop
    when there is one partition (Note [vectorized grad checks])."""
    n = len(devices)
    if n and devices.count(devices[0]) == n and dtypes.count(dtypes[0]) == n:
        return {(devices[0], dtypes[0]): list(range(n))}
    parts: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, key in enumerate(zip(devices, dtypes)):
        parts[key].append(i)
    return parts


def _describe(p: Tensor) -> str:
    return f"tensor of shape {tuple(p.shape)}, dtype {p.dtype}, device {p.device}"


def _state_tensor_problem(p: Tensor, value: Any, exact: bool) -> str | None:
    """Why ``value`` cannot be a state tensor of ``p`` (None if it can).

    ``exact``: also require ``p``'s dtype and device (what the backends get at ``step``); at
    load time floating tensors are cast to them instead."""
    if not isinstance(value, Tensor):
        return f"is a {type(value).__name__} (expected a tensor of shape {tuple(p.shape)})"
    if not value.is_floating_point():
        return f"has dtype {value.dtype} (expected a floating-point tensor)"
    if value.shape != p.shape:
        return (
            f"has shape {tuple(value.shape)} (expected its parameter's shape {tuple(p.shape)}; "
            "only 'step' is a scalar)"
        )
    if value.device.type == "meta":
        return "is a meta tensor (it holds no values)"
    if exact:
        lv, lp = _dist.local(value), _dist.local(p)
        if value.dtype != p.dtype or lv.device != lp.device or lv.shape != lp.shape:
            return (
                f"is a {_describe(lv)} (expected its parameter's dtype and device: {_describe(lp)})"
            )
    return None


class Optimizer(torch.optim.Optimizer):
    """Base class of flowoptim's optimizers: a ``torch.optim.Optimizer`` with OneFlow's semantics.

    Subclasses set :attr:`support_sparse` and :attr:`_state_names`, and implement
    :meth:`_init_state` (create one parameter's state) and :meth:`_update` (call the backend's
    functional for one (device, dtype) partition of a group). Everything else lives here:
    validation, param groups, the optimizer-wide step (Note [optimizer-wide step]), backend choice
    (Note [backend choice]), ``clip_grad``, ``zero_grad``, ``state_dict``/``load_state_dict``.

    Args:
        params: an iterable of tensors, or of dicts defining param groups. Group dicts may carry
            any option of the optimizer plus ``clip_grad_max_norm`` and ``clip_grad_norm_type``.
        defaults: the constructor's options.
        backend: ``None`` (automatic), a registered backend name, ``"module:attribute"``, or a
            :class:`flowoptim.backends.Backend` instance.
        foreach, fused: torch.optim's switches, accepted and without effect (Note [torch.optim
            switches]).
        capturable: no host sync in ``step()``/``clip_grad()``, for CUDA graphs (Note
            [capturable]); a group option.
        differentiable: only ``False`` (``True`` raises ``NotImplementedError``).
    """

    #: whether sparse gradients are accepted (spec §5)
    support_sparse: bool = False
    #: names of the per-parameter state tensors, besides ``step``
    _state_names: tuple[str, ...] = ()
    #: whether the update takes per-tensor norms (LAMB): on DTensors it needs the backend's
    #: ``norm_reduce`` hook and its groups must be reducible (Note [DTensor parameters])
    _reduces_norms: bool = False
    #: validation rules of this optimizer only (``_validation.validate_options``' extra_rules)
    _extra_rules: ClassVar[dict[str, Callable[[str, Any], None]]] = {}
    #: torch.optim's switches for the same algorithm, accepted by load_state_dict
    _torch_extras: frozenset[str] = frozenset()
    #: torch.optim options whose value selects the algorithm: a state dict with another value
    #: is another algorithm's (torch.optim.AdamW's ``decoupled_weight_decay=True`` into Adam)
    _torch_fixed: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        defaults: dict[str, Any],
        *,
        backend: str | Backend | None = None,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        # Note [torch.optim switches]
        _check_switches(type(self).__name__, foreach, fused, capturable, differentiable)
        defaults = {**defaults, "capturable": capturable}
        validate_options(defaults, self._extra_rules)
        self._explicit_backend = _backends.explicit_choice(backend)
        # how to find the backend again after deepcopy/pickle (Optimizer.__getstate__)
        self._backend_spec = (
            backend if backend is not None else (os.environ.get(_backends.ENV_VAR) or None)
        )
        self._backend_cache: dict[torch.device, Backend] = {}
        self._pending_clip: dict[int, Tensor] = {}  # group index -> coef (clip_grad(fused=True))
        self._warned: set[str] = set()  # warnings already given once by this optimizer
        self._clip_called = False  # clip_grad() ran since the last step()
        # device -> the optimizer-wide step as a float32 0-d tensor there (Note [capturable])
        self._device_steps: dict[torch.device, Tensor] = {}
        # the host count may exceed the device one: GradScaler skipped steps (Note [AMP])
        self._host_step_stale = False
        # id(param) -> what passed _check_state last (Note [state check cache]); also holds
        # the (keys, (device, dtype)) tokens
        self._state_checked: dict[Any, tuple] = {}
        groups = self._normalize_params(params)
        # torch's __init__ sets up hooks and calls add_param_group for every group
        super().__init__(groups, defaults)

    # ------------------------------------------------------------------ params and groups
    @staticmethod
    def _normalize_params(params: Any) -> list[dict[str, Any]]:
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got a single {_describe(params)} (wrap it in a list)"
            )
        if isinstance(params, (set, frozenset, dict)):
            raise TypeError(
                f"params argument should be an ordered iterable of Tensors or dicts, got a "
                f"{type(params).__name__} (its order is not defined; use a list)"
            )
        try:
            items = list(params)
        except TypeError:
            raise TypeError(
                "params argument should be an iterable of Tensors or dicts, got "
                f"{type(params).__name__}"
            ) from None
        if not items:
            raise ValueError("optimizer got an empty parameter list")
        if all(isinstance(x, dict) for x in items):
            return [dict(x) for x in items]
        if all(isinstance(x, (Tensor, tuple)) for x in items):
            return [{"params": items}]  # tuples: named parameters, checked by add_param_group
        bad = next(x for x in items if not isinstance(x, (Tensor, tuple, dict)))
        raise TypeError(
            "params argument should be an iterable of Tensors, of (name, Tensor) pairs or of "
            f"dicts (not a mix), got an element of type {type(bad).__name__}"
        )

    @staticmethod
    def _split_names(params: list[Any], gi: int) -> tuple[list[Any], list[str] | None]:
        """``named_parameters()`` pairs split into tensors and names (torch >= 2.5: the names
        go to the group's ``param_names``); plain tensors pass through with no names."""
        named = [isinstance(p, tuple) for p in params]
        if not any(named):
            return params, None
        if not all(named):
            raise ValueError(
                f"param group {gi} mixes named parameters ((name, tensor) pairs) and unnamed "
                "ones; all optimizer params should be with/without names"
            )
        for i, item in enumerate(params):
            if len(item) != 2 or not isinstance(item[0], str):
                raise TypeError(
                    f"param {i} of group {gi} is {type(item).__name__} of length {len(item)}: "
                    "expected a (name, tensor) pair as named_parameters() yields"
                )
        return [t for _, t in params], [n for n, _ in params]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group; options it lacks come from the constructor's defaults.

        Validates everything before the group is added: the params (tensors, leaves, floating
        point, not already in this optimizer), every option, and the backend's support.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        if "params" not in group:
            raise ValueError("param_group must have a 'params' key")
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)
        gi = len(self.param_groups)
        params, names = self._split_names(params, gi)
        if names is not None:
            group["param_names"] = names
        if self.param_groups and ("param_names" in group) != (
            "param_names" in self.param_groups[0]
        ):
            raise ValueError(
                f"all optimizer param groups should be with/without names: param group {gi} is "
                f"{'with' if 'param_names' in group else 'without'} names, group 0 is not"
            )
        if not params:
            raise ValueError(
                f"{type(self).__name__}: param group {gi} has no parameters ('params' is empty; "
                "an exhausted generator, e.g. the same group dicts used to build two optimizers?)"
            )
        existing = {id(p): gj for gj, g in enumerate(self.param_groups) for p in g["params"]}
        seen: dict[int, int] = {}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but param {i} of the group is a "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf and not self.defaults.get("differentiable", False):
                raise ValueError(f"can't optimize a non-leaf Tensor (param {i}: {_describe(p)})")
            if not (p.is_floating_point()):
                raise TypeError(
                    f"param {i} has dtype {p.dtype}; flowoptim optimizes floating-point tensors"
                )
            if id(p) in seen:
                raise ValueError(
                    "some parameters appear in more than one parameter group: param "
                    f"{i} of group {gi} ({_describe(p)}) appears twice in the same group (also "
                    f"at index {seen[id(p)]}); each parameter may be optimized once"
                )
            if id(p) in existing:
                raise ValueError(
                    "some parameters appear in more than one parameter group: param "
                    f"{i} of group {gi} ({_describe(p)}) is already in group {existing[id(p)]}"
                )
            seen[id(p)] = i
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        group.setdefault("clip_grad_max_norm", None)
        group.setdefault("clip_grad_norm_type", 2.0)
        validate_options(group, self._extra_rules)
        self._check_group(group)
        if self._reduces_norms or group["clip_grad_max_norm"] is not None:
            # DTensors whose norms cannot be reduced together: error now (Note [DTensor
            # parameters]); plain tensors: None, nothing to check
            _dist.group_layout(params, group_index=len(self.param_groups))
        if self._explicit_backend is not None:
            self._explicit_backend.check_tensors([_dist.local(p) for p in params])
        group["params"] = params
        group["step"] = self.global_step if self.param_groups else 0
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Per-optimizer checks of a validated group (add_param_group, load_state_dict): raise,
        or warn once (SGD's nesterov). Changes nothing."""

    def _warn_once(self, key: str, message: str) -> None:
        """Warn once per optimizer, attributed to the first caller outside flowoptim and
        torch.optim (the user's constructor, step or load_state_dict call)."""
        if key in self._warned:
            return
        self._warned.add(key)
        level, frame = 1, inspect.currentframe()
        while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
            level += 1
            frame = frame.f_back
        warnings.warn(message, UserWarning, stacklevel=level)

    @property
    def global_step(self) -> int:
        """The optimizer-wide step counter (Note [optimizer-wide step]); after steps that
        GradScaler may have skipped, read from the device (Note [AMP])."""
        if self.__dict__.get("_host_step_stale"):
            self._reconcile_step()
        return self._host_step()

    def _set_global_step(self, step: int) -> None:
        for g in self.param_groups:
            g["step"] = step

    # ------------------------------------------------------------------ backends
    def _backend_for(self, device: torch.device) -> Backend:
        backend = self._backend_cache.get(device)
        if backend is None:
            backend = _backends.resolve(device, self._explicit_backend)
            self._backend_cache[device] = backend
        return backend

    @staticmethod
    def _partition(params: list[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
        """Indices of ``params`` by ``(device, dtype)``, in order (Note [vectorized grad
        checks]: one C-level ``map`` per attribute, no loop when there is one partition)."""
        return _partition_of(list(map(_DEVICE, params)), list(map(_DTYPE, params)))

    @staticmethod
    def _check_partition(backend: Backend, params: list[Tensor]) -> None:
        """``backend.check_tensors`` for one partition of plain or other tensors: the first
        parameter only when all are plain (Note [partition check] in ``Backend.check_tensors``:
        one device, one dtype)."""
        plain = _PLAIN_TYPES.issuperset(map(type, params))
        backend.check_tensors(params[:1] if plain else params)

    # ------------------------------------------------------------------ subclass hooks
    def _init_state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _required_state(self, group: dict[str, Any]) -> set[str]:
        """State keys a parameter's non-empty state must hold for ``group``'s options (checked
        by load_state_dict; Note [load_state_dict checks])."""
        return set()

    def _lazy_state(self, group: dict[str, Any]) -> set[str]:
        """State keys the update uses and creates (zeros) when absent, e.g. ``max_exp_avg_sq``
        when ``amsgrad`` is switched on after the first steps."""
        return set()

    def _update(
        self,
        backend: Backend,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        step: int,
        grad_scale: Tensor | None,
    ) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ step
    def _check_grads(self, gi: int, group: dict[str, Any]) -> list[tuple[Tensor, Tensor]]:
        """``(param, grad)`` for every parameter of the group that has a gradient, checked
        (phase 1, Note [step phases]); a sparse gradient comes back coalesced (Note [sparse
        gradient checks])."""
        return self._grads_by_partition(gi, group)[0]

    def _grads_by_partition(
        self, gi: int, group: dict[str, Any]
    ) -> tuple[list[tuple[Tensor, Tensor]], dict[tuple[torch.device, torch.dtype], list[int]]]:
        """Note [vectorized grad checks]
        --------------------------------
        ``_check_grads`` and the pairs' partition by the parameters' ``(device, dtype)``, read
        at every step with one C-level ``map`` per attribute (as Note [vectorized step checks]):
        when every gradient is strided with its parameter's dtype, device and shape (the usual
        case) the pairs are made without a Python loop, and a group whose parameters share one
        device and dtype is one partition without a loop either. Anything else (a sparse
        gradient, a mismatch, which then raises with its message) takes the per-parameter loop.
        Nothing is cached: the same metadata are read at every step."""
        params = group["params"]
        grads = list(map(_GRAD, params))
        has = list(map(operator.is_not, grads, itertools.repeat(None)))
        if not all(has):
            params = list(itertools.compress(params, has))
            grads = list(itertools.compress(grads, has))
        if not grads:
            return [], {}
        devices = list(map(_DEVICE, params))
        dtypes = list(map(_DTYPE, params))
        if (
            _STRIDED.issuperset(map(_LAYOUT, grads))
            and list(map(_DTYPE, grads)) == dtypes
            and list(map(_DEVICE, grads)) == devices
            and list(map(_SHAPE, grads)) == list(map(_SHAPE, params))
        ):
            return list(zip(params, grads)), _partition_of(devices, dtypes)
        pairs = []
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            if g.layout != torch.strided:
                g = self._check_sparse_grad(gi, i, p, g)
            if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
                raise ValueError(
                    f"gradient of param {i} of group {gi} does not match its parameter: grad "
                    f"{_describe(g)}, param {_describe(p)}"
                )
            pairs.append((p, g))
        return pairs, self._partition([p for p, _ in pairs])

    def _check_sparse_grad(self, gi: int, i: int, p: Tensor, g: Tensor) -> Tensor:
        """Note [sparse gradient checks]
        --------------------------------
        Spec §5. A sparse gradient is checked in phase 1 of ``step()`` and of ``clip_grad()``
        (before anything changes) and comes back coalesced (duplicate rows summed; a new tensor:
        the user's gradient is not modified; an already coalesced one is returned as is): the
        optimizer must support sparse gradients (``support_sparse``), the layout must be COO
        with exactly one sparse dimension (rows; any dense trailing dims), the parameter must
        be a plain tensor (not a DTensor), shape, dtype and device must be the parameter's, and
        on the CPU every row index must be in ``[0, p.shape[0])`` (checked before coalescing, whose
        result is undefined otherwise: two reads for a coalesced gradient, one pass over the
        indices, O(nnz), for an uncoalesced one). On other devices the range is *not*
        checked, because that needs a host sync: gradients made by autograd
        (``nn.Embedding(sparse=True)``) are always in range; a hand-built out-of-range one is
        the caller's error (``torch.sparse.check_sparse_tensor_invariants`` checks it at
        construction). Coalescing an uncoalesced gradient on CUDA synchronises inside torch
        (the new nnz must reach the host); a coalesced one costs nothing."""
        name = type(self).__name__
        where = f"param {i} of group {gi}"
        if not self.support_sparse:
            raise RuntimeError(
                f"{name} does not support sparse gradients ({where}: {_describe(p)}); use "
                "SGD, Adam or AdamW, or a dense gradient"
            )
        if g.layout != torch.sparse_coo:
            raise ValueError(
                f"gradient of {where} has layout {g.layout}; {name} takes dense gradients or "
                "sparse COO gradients (torch.sparse_coo) with one sparse dimension"
            )
        if _dist.is_dtensor(p):
            raise ValueError(
                f"gradient of {where} is sparse but the parameter is a DTensor; sparse "
                "gradients are supported for plain tensors only"
            )
        if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
            raise ValueError(
                f"gradient of {where} does not match its parameter: grad {_describe(g)} "
                f"(sparse), param {_describe(p)}"
            )
        if g.sparse_dim() != 1:
            raise ValueError(
                f"gradient of {where} is sparse with sparse_dim {g.sparse_dim()} (expected 1: "
                "rows of dim 0, as nn.Embedding(sparse=True) makes; the other dims dense)"
            )
        if g.device.type == "cpu" and g._nnz() > 0:
            # before coalescing: torch's coalesce of out-of-range indices is undefined (it aborts)
            rows = g._indices()[0]
            if g.is_coalesced():  # sorted: two reads
                lo, hi = int(rows[0]), int(rows[-1])
            else:
                lo, hi = (int(x) for x in torch.aminmax(rows))
            if lo < 0 or hi >= p.shape[0]:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"sparse gradient of {where} has row index {bad}, out of range for a "
                    f"parameter with {p.shape[0]} rows ({_describe(p)})"
                )
        return g.coalesce()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; returns what ``closure`` returned, else None.

        The closure runs with grad enabled (it may call ``backward()``) before the update.
        ``step()`` never clips by itself: call :meth:`clip_grad` first.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if torch.compiler.is_compiling():
            # Note [step under torch.compile]: the bookkeeping eagerly, the updates as ops
            calls = self._record_step()
            with torch.no_grad():
                _ops.run(calls)
            return loss
        with torch.no_grad():
            self._step(None)
        return loss

    @torch._disable_dynamo
    def _record_step(self) -> list[tuple[Any, tuple]]:
        """``step()``'s phases 1 and 2 with every backend call on plain tensors recorded, not
        run (Note [step under torch.compile]); run eagerly, outside dynamo."""
        calls: list[tuple[Any, tuple]] = []
        with torch.no_grad():
            self._step(_ops.Recorder(calls))
        return calls

    def _step(self, recorder: _ops.Recorder | None) -> None:
        """Phases 1 and 2 of ``step()`` (Note [step phases]); with a ``recorder``, backend calls
        on plain tensors are recorded into it instead of run."""
        plan = self._plan_step()  # phase 1: check everything (Note [step phases])
        # phase 2: update
        found_inf = self._amp_found_inf()  # Note [AMP]
        if self._host_step_stale and (
            found_inf is None and any(not g.get("capturable") for g, _, _ in plan)
        ):
            self._reconcile_step()  # a host sync, only after AMP steps and then a plain one
        step = self._host_step() + 1
        self._set_global_step(step)
        # Note [per-parameter step tensor]: one new tensor per step, shared by every
        # parameter updated in it and never written afterwards; state_dict() hands out a
        # copy per parameter, so nothing outside ever sees the sharing
        step_t = torch.tensor(float(step), dtype=torch.float32)
        # Note [capturable]: every device counter advances once per step, on the device (by
        # 0 when GradScaler found an inf: Note [AMP]); a new one starts at the host count
        for group, parts, layout in plan:
            if layout is None and (found_inf is not None or group.get("capturable")):
                for part in parts:
                    self._device_step(part[1][0].device, step - 1)
        for device, t in self._device_steps.items():
            if found_inf is None:
                t.add_(1)
            else:
                t.add_(found_inf.to(device=device, non_blocking=True).eq(0).to(t.dtype))
        if found_inf is not None:
            self._host_step_stale = True
        for group, parts, layout in plan:
            capturable = (group.get("capturable", False) or found_inf is not None) and (
                layout is None
            )
            for backend, params, grads, scale, states in parts:
                # under GradScaler's found_inf the masked update runs eagerly (Note [AMP])
                if recorder is not None and layout is None and found_inf is None:
                    recorder.backend, backend = backend, recorder
                    recorder.capturable = capturable
                # phase 1's states (None: no state yet), completed here
                for i, state in enumerate(states):
                    if not state:
                        p = params[i]
                        states[i] = state = self.state[p]
                        self._init_state(p, state, group)
                if not capturable:
                    for state in states:
                        state["step"] = step_t
                part_step: int | Tensor = step
                if capturable:
                    part_step = self._device_step(params[0].device, step)
                    self._copy_param_steps(states, part_step)
                if layout is None and found_inf is not None:
                    if getattr(backend, "amp_found_inf", False):  # its kernels skip (Note [AMP])
                        with_inf = _WithFoundInf(backend, found_inf)
                        self._update(with_inf, group, params, grads, states, part_step, scale)
                    else:
                        self._update_unless_inf(
                            backend, group, params, grads, states, part_step, scale, found_inf
                        )
                elif layout is None:
                    self._update(backend, group, params, grads, states, part_step, scale)
                else:
                    self._update_local(backend, group, params, grads, states, step, scale, layout)
        self._pending_clip.clear()
        self._clip_called = False

    def _update_unless_inf(self, backend, group, params, grads, states, step, scale, found_inf):
        """``_update``, leaving params and state exactly as they were when ``found_inf`` is
        nonzero (Note [AMP]): the update runs on copies, which are kept only where no inf was
        found (a masked copy on the device, no host read)."""
        live = [*params, *(v for s in states for k, v in s.items() if k != "step")]
        saved = [t.clone() for t in live]
        self._update(backend, group, params, grads, states, step, scale)
        skip = found_inf.to(device=params[0].device, non_blocking=True).ne(0)
        for t, old in zip(live, saved):
            t.copy_(torch.where(skip, old, t))
        # state created by this update (amsgrad switched on, say) was zeros before it
        before = {id(t) for t in live}
        for s in states:
            for k, v in s.items():
                if k != "step" and isinstance(v, Tensor) and id(v) not in before:
                    v.copy_(torch.where(skip, torch.zeros_like(v), v))

    def _amp_inv_scale(self) -> Tensor | None:
        """``1/scale`` from GradScaler's ``grad_scale`` (None once the user unscaled), computed
        as ``GradScaler.unscale_`` computes it: in double, rounded to float32 (Note [AMP])."""
        scale = self.__dict__.get("grad_scale")
        if scale is None:
            return None
        return scale.double().reciprocal().float()

    def _amp_found_inf(self) -> Tensor | None:
        """GradScaler's ``found_inf`` for this step (Note [AMP]), None outside GradScaler."""
        return self.__dict__.get("found_inf")

    @property
    def _step_supports_amp_scaling(self) -> bool:
        """Note [AMP]: whether ``torch.amp.GradScaler`` hands this optimizer ``grad_scale`` and
        ``found_inf`` instead of unscaling and reading ``found_inf`` on the host: when every
        backend its parameters use computes on device scalars with torch's numbers
        (``Backend.amp_scaling``)."""
        params = [p for g in self.param_groups for p in g["params"]]
        if any(_dist.is_dtensor(p) for p in params):
            return False  # DTensor updates run on local shards, without the masked restore
        devices = {p.device for p in params}
        try:
            return all(getattr(self._backend_for(d), "amp_scaling", False) for d in devices)
        except Exception:  # an unavailable backend: GradScaler's ordinary path
            return False

    def _host_step(self) -> int:
        """The host count in the groups, without reconciling (Note [AMP])."""
        return max((int(g.get("step", 0)) for g in self.param_groups), default=0)

    def _reconcile_step(self) -> None:
        """Set the host count from the device counter after steps GradScaler may have skipped
        (Note [AMP]); reads the device (a host sync)."""
        if self.__dict__.get("_host_step_stale") and self._device_steps:
            counter = next(iter(self._device_steps.values()))
            self._set_global_step(int(counter.item()))
        self._host_step_stale = False

    def _device_step(self, device: torch.device, step: int) -> Tensor:
        """The optimizer-wide step on ``device`` (Note [capturable]); created from the host
        count the first time a capturable group updates there."""
        t = self._device_steps.get(device)
        if t is None:
            t = torch.full((), float(step), dtype=torch.float32, device=device)
            self._device_steps[device] = t
        return t

    @staticmethod
    def _copy_param_steps(states: list[dict[str, Any]], counter: Tensor) -> None:
        """Each parameter's ``step``: a float32 0-d tensor on its device written in place from
        the device counter (Note [capturable]); one from before (a CPU tensor, say) is
        replaced."""
        steps = []
        for state in states:
            old = state.get("step")
            if (
                isinstance(old, Tensor)
                and old.device == counter.device
                and old.dtype == torch.float32
                and old.dim() == 0
                and old is not counter
            ):
                steps.append(old)
            else:
                state["step"] = counter.clone()
        if steps:
            torch._foreach_copy_(steps, [counter] * len(steps))

    def _plan_step(self) -> list[tuple[dict[str, Any], list[tuple], Any]]:
        """Phase 1 of ``step()``: check every group and return what phase 2 updates, as
        ``(group, [(backend, params, grads, grad_scale)], layout)``; modifies nothing."""
        name = type(self).__name__
        plan = []
        for gi, group in enumerate(self.param_groups):
            pairs, partition = self._grads_by_partition(gi, group)
            if not pairs:
                continue
            if group.get("clip_grad_max_norm") is not None and not self._clip_called:
                self._warn_once(
                    "unclipped_step",
                    f"{name}.step(): param group {gi} has clip_grad_max_norm="
                    f"{group['clip_grad_max_norm']!r} but clip_grad() was not called since the "
                    "last step, so nothing was clipped (step() never clips by itself). Call "
                    "optimizer.clip_grad() after backward() and before step(), or let your "
                    "trainer clip instead (Lightning: Trainer(gradient_clip_val=...); Hugging "
                    "Face: TrainingArguments(max_grad_norm=...)) and drop clip_grad_max_norm",
                )
            layout = self._dtensor_layout(gi, group, pairs, self._reduces_norms)
            coef = self._pending_clip.get(gi)
            parts = []
            for (device, dtype), idx in partition.items():
                backend = self._backend_for(device)
                params = [pairs[i][0] for i in idx]
                states = self._check_state(gi, group, params, (device, dtype))
                if layout is not None:
                    backend.check_tensors([_dist.local(p) for p in params])
                else:
                    self._check_partition(backend, params)
                if layout is not None and self._reduces_norms:
                    _check_norm_reduce(backend, name)
                # Note [grad_scale]: a 0-d tensor in the partition's compute dtype on its device,
                # exactly what clip_grad's in-place scale_ gets
                scale = None
                if coef is not None:
                    scale = coef.to(
                        device=_dist.local(params[0]).device, dtype=compute_dtype(dtype)
                    )
                inv = self._amp_inv_scale()  # Note [AMP]
                if inv is not None:
                    inv = inv.to(device=_dist.local(params[0]).device, dtype=compute_dtype(dtype))
                    scale = inv if scale is None else inv * scale
                parts.append((backend, params, [pairs[i][1] for i in idx], scale, states))
            plan.append((group, parts, layout))
        return plan

    def _check_state(
        self, gi: int, group: dict[str, Any], params: list[Tensor], where_: tuple
    ) -> list[dict[str, Any] | None]:
        """Raise naming the group, parameter index and key if an existing state tensor the update
        will use is missing or does not match its parameter (Note [step phases]). ``params``
        share the device and dtype ``where_``. Returns each parameter's state dict (None where
        it has none yet: phase 2 creates it), read once for both phases.

        Note [state check cache]: for plain tensors (``Tensor`` and ``nn.Parameter``, the
        usual case) every state tensor is checked at every step, with C-level maps over the
        partition (Note [vectorized step checks]); nothing is cached, so a state tensor
        replaced, resized or transposed in place, or given another dtype through ``.data``,
        raises at the next step exactly as on the first. Other tensor types (DTensors, whose
        check compares local shards) take the loop below, which skips a parameter whose used
        state tensors are the very objects that passed last time (same keys, same tensor
        objects, held through weak references so that offloaded state is freed) and whose own
        shape is unchanged: about 0.5 us per parameter instead of 1 us. For those, in-place
        changes of a checked state tensor's metadata (``resize_``, ``set_``) are not seen.
        """
        lazy = self._lazy_state(group)
        required = self._required_state(group) - lazy
        keys = tuple(sorted(required | lazy))
        states = self.state
        found = list(map(states.get, params))
        plain = _PLAIN_TYPES.issuperset(map(type, params))
        if plain and _states_match(params, found, keys, required, where_):
            return found
        cache = self._state_checked
        # one object per (keys, device, dtype), so that a cache hit is an identity test
        token = cache.setdefault((keys, where_), (keys, where_))
        where = None
        for p in params:
            state = states.get(p)
            if not state:
                continue  # created in phase 2
            # id: Tensor.__hash__ is slow Python code; plain tensors are never skipped
            hit = None if plain else cache.get(id(p))
            if hit is not None and hit[0] is token and hit[1] == p.shape:
                for k, ref in zip(keys, hit[2]):
                    v = state.get(k)
                    if (v is not None) if ref is None else (v is None or ref() is not v):
                        break
                else:
                    continue
            problem = None
            for key in keys:
                value = state.get(key)
                if value is None:
                    if key in required:
                        problem = "is missing"
                        break
                    continue
                problem = _state_tensor_problem(p, value, exact=True)
                if problem is not None:
                    break
            if problem is not None:
                if where is None:
                    where = {id(q): i for i, q in enumerate(group["params"])}
                raise ValueError(
                    f"{type(self).__name__}.step(): state {key!r} of param {where[id(p)]} of "
                    f"group {gi} {problem}; nothing was updated"
                )
            cache[id(p)] = (
                token,
                p.shape,
                tuple(None if state.get(k) is None else weakref.ref(state[k]) for k in keys),
            )
        return found

    def _dtensor_layout(
        self,
        gi: int,
        group: dict[str, Any],
        pairs: list[tuple[Tensor, Tensor]],
        reducible: bool,
    ) -> _dist.GroupLayout | None:
        """None for plain tensors; else check the group's DTensors (Note [DTensor parameters]).

        ``reducible``: the group's norms are reduced, so its tensors must share one mesh (LAMB,
        clip_grad); otherwise only each gradient's layout is checked against its parameter's.
        """
        cls = _dist.dtensor_class()
        if cls is None or not any(isinstance(p, cls) or isinstance(g, cls) for p, g in pairs):
            return None
        where = {id(p): i for i, p in enumerate(group["params"])}
        indices = [where[id(p)] for p, _ in pairs]
        if reducible:
            return _dist.group_layout(
                [p for p, _ in pairs], [g for _, g in pairs], group_index=gi, indices=indices
            )
        for i, (p, g) in zip(indices, pairs):
            _dist.group_layout([p], [g], group_index=gi, indices=[i])
        return _dist.GroupLayout(None, {}, (), [])  # elementwise: nothing is reduced

    def _update_local(
        self,
        backend: Backend,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        step: int,
        grad_scale: Tensor | None,
        layout: _dist.GroupLayout,
    ) -> None:
        """``_update`` on the local shards of DTensor params (Note [DTensor parameters])."""
        local_params = [_dist.local(p) for p in params]
        local_grads = [_dist.local(g) for g in grads]
        local_states = [{k: _dist.local(v) for k, v in s.items()} for s in states]
        before = [dict(ls) for ls in local_states]
        if self._reduces_norms and layout.mesh is not None:
            where = {id(p): i for i, p in enumerate(group["params"])}
            hook = layout.lamb_norm_reduce([where[id(p)] for p in params])
            self._update(
                backend,
                group,
                local_params,
                local_grads,
                local_states,
                step,
                grad_scale,
                norm_reduce=hook,
            )
            if hook.calls != 1:
                raise RuntimeError(
                    f"backend {backend.name!r} called LAMB's norm_reduce hook {hook.calls} "
                    "times in one call (expected once, see Note [LAMB norm_reduce hook])"
                )
        else:
            self._update(backend, group, local_params, local_grads, local_states, step, grad_scale)
        # state the update created or replaced on local shards: back into DTensors
        for p, lp, s, ls, old in zip(params, local_params, states, local_states, before):
            for k in [k for k in old if k not in ls]:
                del s[k]
            for k, v in ls.items():
                if k == "step" or (k in old and old[k] is v):
                    continue
                if _dist.is_dtensor(p) and isinstance(v, Tensor) and v.shape == lp.shape:
                    v = _dist.from_local_like(v, p)
                s[k] = v

    # ------------------------------------------------------------------ zero_grad
    @torch._disable_dynamo  # as torch.optim's: bookkeeping, and no guard on the groups' floats
    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zero every gradient in place (default, as OneFlow), or set them to None.

        Also drops a clip coefficient pending from ``clip_grad(fused=True)``.
        """
        self._pending_clip.clear()
        to_zero: dict[tuple[torch.device, torch.dtype], list[Tensor]] = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                if p.grad.is_sparse:
                    p.grad.zero_()
                else:
                    to_zero[(p.grad.device, p.grad.dtype)].append(p.grad)
        for grads in to_zero.values():
            torch._foreach_zero_(grads)

    # ------------------------------------------------------------------ clip_grad
    def clip_grad(self, error_if_nonfinite: bool = False, fused: bool = False) -> list[Tensor]:
        """Clip the gradients of every group that has ``clip_grad_max_norm`` (spec §3).

        Each such group is clipped over its own parameters that have a gradient::

            total = norm_p([norm_p(g_i) for each grad g_i])   (max |g| for inf, min |g| for -inf)
            coef  = min(max_norm / (total + 1e-6), 1)

        Returns the list of totals (0-d tensors on the group's first gradient's device, one per
        clipped group, in group order); no host synchronisation. A group without gradients has
        total 0. If no group has ``clip_grad_max_norm`` this warns once and returns ``[]``.

        Args:
            error_if_nonfinite: raise ``RuntimeError`` if a total is nan or inf, before any
                gradient is touched. This reads the totals on the host (a device sync on GPU).
            fused: the opt-in fused clip mode. Instead of scaling the gradients in place now,
                keep ``coef`` and fold it into the next :meth:`step` of the group; the parameters
                get exactly the same numbers while the gradients stay unscaled (a backend's
                update then reads the gradients once, not three times). ``zero_grad`` drops a
                pending coefficient.
        """
        if torch.compiler.is_compiling():
            return self._clip_grad_compiled(error_if_nonfinite, fused)
        clipped = self._clipped_groups()
        if not clipped:
            return []
        results = []
        # group index -> (param, coalesced grad) for sparse grads that were not coalesced
        coalesced: dict[int, list[tuple[Tensor, Tensor]]] = {}
        with torch.no_grad():
            for gi, group in clipped:
                norm_type = float(group.get("clip_grad_norm_type", 2.0))
                pairs = self._check_grads(gi, group)
                if not _STRIDED.issuperset(map(_LAYOUT, map(_SECOND, pairs))):
                    coalesced[gi] = [(p, g) for p, g in pairs if g.is_sparse and g is not p.grad]
                    # sparse gradients: the norm of their coalesced values, which are scaled in
                    # place (spec §5; the coalesced gradient replaces p.grad, see _sparse_values)
                    pairs = [_sparse_values(p, g) if g.is_sparse else (p, g) for p, g in pairs]
                # empty tensors contribute nothing to any norm (and inf/-inf have no identity
                # over zero elements); a group with only empty grads has total 0 like no grads
                numels = list(map(Tensor.numel, map(_SECOND, pairs)))
                if not all(numels):
                    pairs = list(itertools.compress(pairs, numels))
                layout = self._dtensor_layout(gi, group, pairs, reducible=True)
                if layout is not None:
                    dt = self._clip_total_dtensor(gi, group, pairs, norm_type, layout)
                    results.append((*dt, None))
                    continue
                grads = list(map(_SECOND, pairs))
                parts = []
                for (device, _), idx in self._partition(grads).items():
                    backend = self._backend_for(device)
                    self._check_partition(backend, [pairs[i][0] for i in idx])
                    parts.append((backend, [grads[i] for i in idx]))
                coef = None
                if len(parts) == 1:
                    # one partition, the usual case: its backend forms the total and the
                    # coefficient (Note [clip coefficient]; the triton backend in its norm launch)
                    backend, part = parts[0]
                    max_norm = float(group["clip_grad_max_norm"])
                    total, coef = backend.clip_coef(part, norm_type, max_norm)
                else:
                    partials = [backend.grad_norm(part, norm_type) for backend, part in parts]
                    total = _combine_norms(partials, norm_type)
                results.append((gi, group, total, parts, coef))
            if error_if_nonfinite:
                for gi, group, total, _, _ in results:
                    if not bool(torch.isfinite(total)):
                        raise RuntimeError(
                            f"The total norm of order {group.get('clip_grad_norm_type', 2.0)} "
                            f"for gradients of group {gi} "
                            f"is non-finite ({float(total)}), so it cannot be clipped. To "
                            "disable this error, call clip_grad(error_if_nonfinite=False)"
                        )
            for gi, group, total, parts, coef in results:
                if not parts:
                    continue
                if coef is None:  # several partitions: Note [clip coefficient]'s expression
                    max_norm = float(group["clip_grad_max_norm"])
                    coef = torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)
                if fused:
                    self._pending_clip[gi] = coef
                else:
                    # the grads are clipped now: an earlier fused coefficient of the group, from
                    # the same unclipped grads, must not clip them a second time at step()
                    self._pending_clip.pop(gi, None)
                    for p, g in coalesced.pop(gi, ()):
                        p.grad = g  # the same numbers, coalesced: scaled through its values
                    for backend, part in parts:
                        # Note [grad_scale]: the compute dtype of the partition, as step()
                        # passes the fused coefficient, so both modes give the same numbers
                        dtype = compute_dtype(part[0].dtype)
                        backend.scale_(part, coef.to(device=part[0].device, dtype=dtype))
        self._clip_called = True
        return [total for _, _, total, _, _ in results]

    def _clip_grad_compiled(self, error_if_nonfinite: bool, fused: bool) -> list[Tensor]:
        """``clip_grad`` under dynamo (Note [step under torch.compile]): the checks and
        partitions eagerly, the norms, coefficients and scaling as custom ops."""
        plan = self._plan_clip()
        totals = []
        with torch.no_grad():
            results = []
            for gi, norm_type, max_norm, parts, total in plan:
                coef = None
                if parts:
                    partials = [_ops.grad_norm(h, part, norm_type) for h, part in parts]
                    total, coef = _ops.clip_coef(partials, norm_type, max_norm)
                results.append((gi, total, coef, parts))
                totals.append(total)
            if error_if_nonfinite:
                for gi, total, _, _ in results:
                    if not bool(torch.isfinite(total)):
                        raise RuntimeError(
                            f"The total norm for gradients of group {gi} is non-finite "
                            f"({float(total)}), so it cannot be clipped. To disable this "
                            "error, call clip_grad(error_if_nonfinite=False)"
                        )
            for gi, _, coef, parts in results:
                if coef is None:
                    continue
                if fused:
                    self._pending_clip[gi] = coef
                else:
                    self._pending_clip.pop(gi, None)  # as in clip_grad
                    for h, part in parts:
                        dtype = compute_dtype(part[0].dtype)
                        _ops.scale_(h, part, coef.to(device=part[0].device, dtype=dtype))
        self._set_clip_called()
        return totals

    @torch._disable_dynamo
    def _set_clip_called(self) -> None:
        self._clip_called = True

    def _clipped_groups(self) -> list[tuple[int, dict[str, Any]]]:
        """``(index, group)`` of the groups with ``clip_grad_max_norm``, for both ``clip_grad``
        paths; warns once when there is none (nothing to clip)."""
        clipped = [
            (gi, g)
            for gi, g in enumerate(self.param_groups)
            if g.get("clip_grad_max_norm") is not None
        ]
        if not clipped:
            self._warn_once(
                "no_clip",
                "clip_grad() called but no param group has 'clip_grad_max_norm'; "
                "nothing was clipped",
            )
        return clipped

    @torch._disable_dynamo
    def _plan_clip(self) -> list[tuple[int, float, float, list[tuple[int, list[Tensor]]], Any]]:
        """``clip_grad``'s checks and partitions, run eagerly (Note [step under
        torch.compile]): ``(gi, norm_type, max_norm, [(backend handle, grads)], total)`` per
        clipped group, ``total`` a zero tensor for a group without gradients, else None."""
        clipped = self._clipped_groups()
        if not clipped:
            return []
        plan = []
        for gi, group in clipped:
            norm_type = float(group.get("clip_grad_norm_type", 2.0))
            if any(p.grad is not None and p.grad.is_sparse for p in group["params"]):
                raise RuntimeError(f"clip_grad does not support sparse gradients (group {gi})")
            pairs = [(p, g) for p, g in self._check_grads(gi, group) if g.numel() > 0]
            if self._dtensor_layout(gi, group, pairs, reducible=True) is not None:
                raise NotImplementedError(
                    f"clip_grad under torch.compile does not support DTensor gradients (group "
                    f"{gi}); call it outside the compiled region"
                )
            grads = [g for _, g in pairs]
            parts = []
            for (device, _), idx in self._partition(grads).items():
                backend = self._backend_for(device)
                self._check_partition(backend, [pairs[i][0] for i in idx])
                parts.append((_ops.handle(backend), [grads[i] for i in idx]))
            total = None if parts else _combine_norms([], norm_type)
            plan.append((gi, norm_type, float(group["clip_grad_max_norm"]), parts, total))
        return plan

    def _clip_total_dtensor(
        self,
        gi: int,
        group: dict[str, Any],
        pairs: list[tuple[Tensor, Tensor]],
        norm_type: float,
        layout: _dist.GroupLayout,
    ) -> tuple[int, dict[str, Any], Tensor, list[tuple[Backend, list[Tensor]]]]:
        """clip_grad's total for a group of DTensors: local partial norms through the backends,
        reduced across the mesh in one collective (Note [norm reduction across ranks]).

        Returns ``(gi, group, total, parts)`` as the plain path does; ``parts`` hold the
        non-empty local gradient shards to scale."""
        where = {id(p): i for i, p in enumerate(group["params"])}
        items = []
        scale_parts: dict[tuple[torch.device, torch.dtype], list[Tensor]] = defaultdict(list)
        backends: dict[tuple[torch.device, torch.dtype], Backend] = {}
        for p, g in pairs:
            lp, lg = _dist.local(p), _dist.local(g)
            key = (lg.device, lg.dtype)
            if key not in backends:
                backends[key] = self._backend_for(lg.device)
            backends[key].check_tensors([lp])
            items.append((where[id(p)], lg, backends[key]))
            if lg.numel() > 0:
                scale_parts[key].append(lg)
        first = _dist.local(pairs[0][1])
        total = layout.clip_total(items, norm_type, _combine_norms, first.device, first.dtype)
        parts = [(backends[key], gs) for key, gs in scale_parts.items()]
        return gi, group, total, parts

    # ------------------------------------------------------------------ state dicts
    @torch._disable_dynamo
    def state_dict(self) -> dict[str, Any]:
        """torch's layout: ``state`` keyed by parameter index, ``param_groups`` with ``params``
        index lists; each group also carries the optimizer-wide ``step``. Each parameter's
        ``step`` is its own tensor (Note [per-parameter step tensor]). Hooks registered with
        ``register_state_dict_pre_hook``/``..._post_hook`` fire as in torch.optim."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        if self.__dict__.get("_host_step_stale"):
            self._reconcile_step()  # Note [AMP]
        param_mappings: dict[int, int] = {}
        start = 0

        def pack_group(group: dict[str, Any]) -> dict[str, Any]:
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            for i, p in enumerate(group["params"], start):
                param_mappings.setdefault(id(p), i)
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {
            (param_mappings[id(k)] if isinstance(k, Tensor) else k): (
                {**v, "step": v["step"].clone()}
                if isinstance(v, dict) and isinstance(v.get("step"), Tensor)
                else v
            )
            for k, v in self.state.items()
        }
        state_dict = {"state": packed_state, "param_groups": param_groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    @torch._disable_dynamo
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load our own, torch.optim's (same algorithm) or OneFlow 0.9.0's layout (spec §4).

        Every check runs before anything changes (Note [load_state_dict checks]): on any error
        the optimizer is left exactly as it was. State tensors are copied (never aliased with
        ``state_dict``) and cast to their parameter's device and floating dtype (``step`` stays
        a float32 CPU tensor). Load-state-dict pre-hooks run first (and may return a new dict),
        post-hooks after loading, as in torch.optim.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise ValueError(
                f"{name}.load_state_dict: state_dict must be a dict with 'state' and "
                f"'param_groups' keys, got {type(state_dict).__name__}"
            )
        state_dict = state_dict.copy()  # shallow, as torch.optim (pre-hooks may edit it)
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        missing = [k for k in ("state", "param_groups") if k not in state_dict]
        if missing:
            raise ValueError(
                f"{name}.load_state_dict: state_dict must be a dict with 'state' and "
                f"'param_groups' keys, but it has no {' or '.join(map(repr, missing))} (its "
                f"keys: {sorted(map(str, state_dict))})"
            )
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, dict):
            raise ValueError(
                f"{name}.load_state_dict: state_dict['param_groups'] must be a list and "
                f"'state' a dict, got {type(saved_groups).__name__} and "
                f"{type(saved_state).__name__}"
            )
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, this optimizer "
                f"has {len(self.param_groups)}"
            )
        oneflow_step = saved_state.get("step")
        groups = [
            self._load_group(gi, saved, current)
            for gi, (saved, current) in enumerate(zip(saved_groups, self.param_groups))
        ]
        # map saved parameter ids to (group index, index in group, parameter)
        id_map: dict[Any, tuple[int, int, Tensor]] = {}
        for gi, (saved, current) in enumerate(zip(groups, self.param_groups)):
            for i, (sid, p) in enumerate(zip(saved["params"], current["params"])):
                id_map[sid] = (gi, i, p)
        new_state: dict[Tensor, dict[str, Any]] = defaultdict(dict)
        last_steps = []
        for sid, pstate in saved_state.items():
            if sid == "step" and not isinstance(pstate, dict):
                continue  # OneFlow's optimizer-wide step
            if sid not in id_map:
                raise ValueError(
                    f"state dict has state for parameter id {sid!r}, which no param group lists"
                )
            gi, i, p = id_map[sid]
            entry, last = self._load_param_state(gi, i, p, pstate, groups[gi])
            if last is not None:
                last_steps.append(last)
            if entry:
                new_state[p] = entry
        # the optimizer-wide step: ours (in groups), OneFlow's (state['step']), else torch's
        # per-parameter counts (their maximum is the number of steps taken)
        group_steps = [int(g["step"]) for g in groups if "step" in g]
        if group_steps:
            step = max(group_steps)
        elif oneflow_step is not None:
            step = _as_step(oneflow_step, "state dict's optimizer-wide 'step'")
        else:
            step = max(last_steps, default=0)
        for entry in new_state.values():
            if "step" not in entry:
                entry["step"] = torch.tensor(float(step), dtype=torch.float32)
        # Note [capturable]: torch keeps a capturable group's step tensors on the device
        for group, current in zip(groups, self.param_groups):
            if group.get("capturable"):
                for p in current["params"]:
                    entry = new_state.get(p)
                    if entry is not None:
                        entry["step"] = entry["step"].to(_dist.local(p).device)
        for group in groups:
            self._check_group(group)
        # commit: nothing above modified self
        for saved, current in zip(groups, self.param_groups):
            saved["params"] = current["params"]
            if "param_names" in current and "param_names" not in saved:
                saved["param_names"] = current["param_names"]
            saved["step"] = step
        self.param_groups[:] = groups
        self.state = new_state
        self._pending_clip.clear()
        self._backend_cache.clear()
        self._state_checked.clear()
        self._device_steps.clear()
        self._host_step_stale = False
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def _load_group(self, gi: int, saved: Any, current: dict[str, Any]) -> dict[str, Any]:
        """One saved param group merged over ``current`` and validated; ``params`` holds the
        saved ids. Raises naming the group (Note [load_state_dict checks])."""
        name = type(self).__name__
        if not isinstance(saved, dict):
            raise ValueError(f"param group {gi} of the state dict is not a dict: {saved!r}")
        if "_options" in saved:  # OneFlow's layout
            options = dict(saved["_options"])
            options["params"] = saved.get("params", [])
        else:
            options = dict(saved)
        if "params" not in options:
            raise ValueError(f"param group {gi} of the state dict has no 'params'")
        if len(options["params"]) != len(current["params"]):
            raise ValueError(
                f"loaded state dict's group {gi} has {len(options['params'])} parameters, "
                f"this optimizer's group {gi} has {len(current['params'])}"
            )
        known = set(self.defaults) | set(current) | _COMMON_GROUP_KEYS
        foreign = sorted(
            k
            for k in options
            if k in _algorithm_option_names()
            and k not in known
            and k not in self._torch_extras
            and k not in _DROPPED_GROUP_KEYS
        )
        if foreign:
            raise ValueError(
                f"{name}.load_state_dict: param group {gi} of the state dict has options of "
                f"another algorithm: {', '.join(foreign)} ({name} takes "
                f"{', '.join(sorted(self.defaults))}); is this another optimizer's state dict?"
            )
        for key, expected in self._torch_fixed.items():
            if key in options and options[key] != expected:
                raise ValueError(
                    f"{name}.load_state_dict: param group {gi} of the state dict has "
                    f"{key}={options[key]!r}, another algorithm than {name} (expected "
                    f"{key}={expected!r})"
                )
        merged = {k: v for k, v in current.items() if k not in ("params", "step")}
        merged.update(
            (k, v)
            for k, v in options.items()
            if k != "params"
            and k not in _DROPPED_GROUP_KEYS
            and (k not in self._torch_extras or k in self.defaults or k in current)
        )
        try:
            validate_options(merged, self._extra_rules)
            if "step" in merged:
                merged["step"] = _as_step(merged["step"], "'step'")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"param group {gi} of the state dict: {exc}") from None
        merged["params"] = list(options["params"])
        return merged

    def _load_param_state(
        self, gi: int, i: int, p: Tensor, pstate: Any, group: dict[str, Any]
    ) -> tuple[dict[str, Any], int | None]:
        """One parameter's saved state, checked and copied to ``p``'s device and dtype; and its
        per-parameter step (None if absent). Raises naming group, index and key."""
        name = type(self).__name__
        where = f"{name}.load_state_dict: state of param {i} of group {gi}"
        if not isinstance(pstate, dict):
            raise ValueError(f"{where} is not a dict: {type(pstate).__name__}")
        allowed = ("step", *self._state_names)
        entry: dict[str, Any] = {}
        last = None
        for key, value in pstate.items():
            key = _ONEFLOW_STATE_ALIASES.get(key, key)
            if key not in allowed:
                raise ValueError(
                    f"{where}: unknown key {key!r} ({name} keeps {', '.join(map(repr, allowed))}"
                    "); is this another optimizer's state dict?"
                )
            if key == "step":
                try:
                    last = _as_step(value, "'step'")
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{where}: {exc}") from None
                entry["step"] = torch.tensor(float(last), dtype=torch.float32)
                continue
            if value is None and self._none_is_no_state:
                continue  # torch.optim.SGD's "no buffer yet": created lazily
            problem = _state_tensor_problem(p, value, exact=False)
            if problem is not None:
                raise ValueError(f"{where}: {key!r} {problem}")
            try:
                # DTensor params: state laid out like the param (Note [DTensor parameters])
                value = _dist.match_param_layout(value, p)
                value = value.detach().to(device=p.device, dtype=p.dtype, copy=True)
            except (RuntimeError, NotImplementedError) as exc:
                raise ValueError(
                    f"{where}: {key!r} cannot be copied to its parameter's device and dtype "
                    f"({_describe(p)}): {exc}"
                ) from None
            entry[key] = value
        if entry:
            # keys step() creates when an option is switched on later (amsgrad's
            # max_exp_avg_sq, ...) may be absent: our own state_dict() saved between the switch
            # and the next step has them absent too, and step() creates them
            lacking = sorted(self._required_state(group) - self._lazy_state(group) - set(entry))
            if lacking:
                raise ValueError(
                    f"{where}: missing {', '.join(map(repr, lacking))} (needed by {name} with "
                    "this group's options)"
                )
        return entry, last

    #: whether a None state value for a lazily created key means "not created yet" (SGD)
    _none_is_no_state: bool = False

    def __getstate__(self) -> dict[str, Any]:
        if self.__dict__.get("_host_step_stale"):
            self._reconcile_step()  # Note [AMP]: the copy gets the true count
        state = super().__getstate__()
        state.update(
            _backend_ref=self._backend_ref(),
            _pending_clip=self._pending_clip,
            _warned=set(self._warned),
            _clip_called=self._clip_called,
        )
        return state

    def _backend_ref(self) -> str | Backend | None:
        """What finds the explicit backend again after deepcopy/pickle: the name or
        ``module:attribute`` it was chosen by, a registered instance's name, else the instance
        itself if it can be pickled, else its name."""
        backend = self._explicit_backend
        if backend is None:
            return None
        spec = self.__dict__.get("_backend_spec")
        if isinstance(spec, str):
            return spec
        try:
            if _backends.get(backend.name, require_available=False) is backend:
                return backend.name
        except Exception:  # an unregistered name
            pass
        try:
            pickle.dumps(backend)
        except Exception:  # whatever pickling raises
            return backend.name
        return backend

    def __setstate__(self, state: dict[str, Any]) -> None:
        ref = state.pop("_backend_ref", None)
        super().__setstate__(state)
        if "_explicit_backend" not in self.__dict__:
            self._explicit_backend = _backends.explicit_choice(ref) if isinstance(ref, str) else ref
            self._backend_spec = ref if isinstance(ref, str) else None
        self.__dict__.setdefault("_backend_spec", None)
        self._backend_cache = {}
        self._state_checked = {}
        self._device_steps = {}
        self.__dict__.setdefault("_host_step_stale", False)
        self.__dict__.setdefault("_pending_clip", {})
        self.__dict__.setdefault("_warned", set())
        self.__dict__.setdefault("_clip_called", False)
        # optimizers pickled before every optimizer had maximize (spec §1.9)
        self.defaults.setdefault("maximize", False)
        for group in self.param_groups:
            group.setdefault("maximize", False)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


class _WithFoundInf:
    """A backend whose functionals get GradScaler's ``found_inf`` (Note [AMP]; backends with
    ``amp_found_inf``)."""

    def __init__(self, backend: Backend, found_inf: Tensor) -> None:
        self._backend = backend
        self._found_inf = found_inf

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name in _ops.ALGORITHMS or name in _ops.SPARSE_ALGORITHMS:
            return functools.partial(attr, found_inf=self._found_inf)
        return attr


def _check_switches(
    name: str, foreach: Any, fused: Any, capturable: Any, differentiable: Any
) -> None:
    """Check torch.optim's ``foreach``/``fused``/``capturable``/``differentiable`` keywords
    (Note [torch.optim switches])."""
    for key, value, optional in (
        ("foreach", foreach, True),
        ("fused", fused, True),
        ("capturable", capturable, False),
        ("differentiable", differentiable, False),
    ):
        if not (isinstance(value, bool) or (optional and value is None)):
            expected = "True, False or None" if optional else "True or False"
            raise TypeError(f"{name}: invalid {key} value {value!r} (expected {expected})")
    if differentiable:
        raise NotImplementedError(
            f"{name}(differentiable=True) is not supported: flowoptim's updates run in-place "
            "backend kernels (custom ops without autograd formulas), so autograd cannot "
            "differentiate through step(); use torch.optim for optimizers inside autograd"
        )


def _as_step(value: Any, what: str) -> int:
    """A step count (a non-negative whole number, or a 1-element real tensor holding one)."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} is {value!r} (expected a step count)")
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"{what} is {value!r} (expected a whole number >= 0)")
    return int(value)


def _sparse_values(p: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """``(p, values)`` of a coalesced sparse gradient: what clip_grad takes the norm of and
    scales in place (``_values()`` aliases the sparse tensor's storage). The norm of the values
    is the norm of the equivalent dense gradient for every norm type but ``-inf``, where it is
    the smallest |value| present (spec §5)."""
    return p, g._values()


def split_sparse(
    params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
) -> list[tuple[list[Tensor], list[Tensor], list[dict[str, Any]], bool]]:
    """A partition split into its dense-gradient and sparse-gradient parts (spec §5: both may
    mix in one group): ``[(params, grads, states, is_sparse)]``, non-empty parts only, each
    keeping the partition's order. Used by the ``_update`` of optimizers with
    ``support_sparse``, which call the backend's dense or ``*_sparse`` functional per part."""
    if _STRIDED.issuperset(map(_LAYOUT, grads)):  # one C-level map: the usual case
        return [(params, grads, states, False)]
    sparse = [i for i, g in enumerate(grads) if g.is_sparse]
    out = []
    for flag in (False, True):
        idx = sparse if flag else [i for i, g in enumerate(grads) if not g.is_sparse]
        if idx:
            out.append(([params[i] for i in idx], [grads[i] for i in idx],
                        [states[i] for i in idx], flag))  # fmt: skip
    return out


def sparse_parts(grads: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """``(indices, values)`` of coalesced sparse gradients, as the backends' ``*_sparse``
    functionals take them (Note [sparse functionals] in ``flowoptim.backends.base``)."""
    indices = [g._indices()[0] for g in grads]
    values = [g._values() for g in grads]
    return (
        [ix if ix.is_contiguous() else ix.contiguous() for ix in indices],
        [v if v.is_contiguous() else v.contiguous() for v in values],
    )


_HAS_NORM_REDUCE: dict[type, bool] = {}  # backend class -> its lamb() takes norm_reduce


def _check_norm_reduce(backend: Backend, optimizer: str) -> None:
    """Raise if ``backend.lamb`` lacks the ``norm_reduce`` hook (Note [LAMB norm_reduce hook])."""
    ok = _HAS_NORM_REDUCE.get(type(backend))
    if ok is None:
        try:
            ok = "norm_reduce" in inspect.signature(backend.lamb).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            ok = False
        _HAS_NORM_REDUCE[type(backend)] = ok
    if not ok:
        raise ValueError(
            f"{optimizer} on DTensor parameters needs the full tensors' norms, but backend "
            f"{backend.name!r} ({type(backend).__module__}.{type(backend).__qualname__}) has no "
            "norm_reduce keyword in its lamb(); use backend='reference' or a backend that "
            "implements the hook (docs/design/backend-contract.md)"
        )


def _combine_norms(partials: list[Tensor], norm_type: float) -> Tensor:
    """Combine per-partition norms into the group's total (spec §3)."""
    if not partials:
        return torch.zeros((), dtype=torch.float32)
    if len(partials) == 1:
        return partials[0]
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in partials) else torch.float32
    device = partials[0].device
    stacked = torch.stack([t.to(device=device, dtype=dtype) for t in partials])
    if math.isinf(norm_type):
        return stacked.max() if norm_type > 0 else stacked.min()
    if norm_type == 0:
        return stacked.sum()
    return torch.linalg.vector_norm(stacked, norm_type)
