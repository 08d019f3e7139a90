"""Backend registry: entry-point group ``flowoptim.backends`` plus programmatic registration.

Note [backend choice]
---------------------
For each device a parameter lives on, the backend is chosen by, in order: the optimizer's
``backend=`` argument, the ``FLOWOPTIM_BACKEND`` environment variable, then automatically: CPU (and
any non-CUDA device) tensors get ``reference``; CUDA tensors get ``triton`` when it is installed
and available, else ``reference`` with one warning per process. A backend named explicitly (by
argument or environment) that is unknown or unavailable is an error listing the installed ones;
it is never silently replaced.
"""

from __future__ import annotations

import importlib
import os
import warnings
from importlib import metadata

import torch

from .base import Backend, bias_corrections, f32

__all__ = [
    "Backend",
    "BackendError",
    "available",
    "bias_corrections",
    "f32",
    "get",
    "register",
    "resolve",
]

ENTRY_POINT_GROUP = "flowoptim.backends"
ENV_VAR = "FLOWOPTIM_BACKEND"


class BackendError(ValueError):
    """An unknown or unavailable backend was named."""


_registered: dict[str, Backend] = {}  # programmatic registrations and loaded entry points
_entry_points: dict[str, metadata.EntryPoint] | None = None
_warned_fallback = False


def _discover() -> dict[str, metadata.EntryPoint]:
    global _entry_points
    if _entry_points is None:
        _entry_points = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def _instantiate(obj: object, origin: str) -> Backend:
    if isinstance(obj, type) and issubclass(obj, Backend):
        obj = obj()
    if not isinstance(obj, Backend):
        raise BackendError(
            f"{origin} is {obj!r}, expected a flowoptim.backends.Backend subclass or instance"
        )
    return obj


def register(backend: Backend | type[Backend], name: str | None = None) -> Backend:
    """Register a backend under ``name`` (default: its ``name`` attribute) for this process."""
    inst = _instantiate(backend, "register()")
    _registered[name or inst.name] = inst
    return inst


def _names() -> list[str]:
    names = set(_registered) | set(_discover()) | {"reference"}
    return sorted(names)


def available() -> dict[str, bool]:
    """Every installed backend name mapped to whether it is usable on this machine."""
    out = {}
    for name in _names():
        try:
            out[name] = get(name, require_available=False).is_available()
        except Exception:
            out[name] = False
    return out


def get(name: str, *, require_available: bool = True) -> Backend:
    """The backend registered as ``name``, or ``"package.module:attribute"`` for an unregistered
    one. Raises :class:`BackendError` listing the installed backends if it is unknown, fails to
    load, or (with ``require_available``) cannot run here."""
    if name in _registered:
        backend = _registered[name]
    elif ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"cannot load backend {name!r}: {exc}") from exc
        backend = _instantiate(obj, name)
    elif name in _discover():
        try:
            obj = _discover()[name].load()
        except Exception as exc:
            raise BackendError(
                f"backend {name!r} is installed but failed to load: {exc!r} "
                f"(installed backends: {', '.join(_names())})"
            ) from exc
        backend = _registered[name] = _instantiate(obj, f"entry point {name!r}")
    elif name == "reference":
        from .reference import ReferenceBackend

        backend = _registered[name] = ReferenceBackend()
    else:
        raise BackendError(
            f"unknown flowoptim backend {name!r} (expected one of: {', '.join(_names())})"
        )
    if require_available and not backend.is_available():
        raise BackendError(
            f"flowoptim backend {name!r} is installed but not available on this machine "
            f"(installed backends: {', '.join(_names())})"
        )
    return backend


def explicit_choice(backend: str | Backend | None) -> Backend | None:
    """The backend named by the ``backend=`` argument or ``FLOWOPTIM_BACKEND``, else None."""
    if isinstance(backend, Backend):
        return backend
    if backend is None:
        backend = os.environ.get(ENV_VAR) or None
    if backend is None:
        return None
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a backend name, a Backend instance or None, got {backend!r}"
        )
    return get(backend)


def resolve(device: torch.device, explicit: Backend | None = None) -> Backend:
    """The backend for tensors on ``device``; see Note [backend choice]."""
    global _warned_fallback
    if explicit is not None:
        return explicit
    if device.type == "cuda":
        if "triton" in _registered or "triton" in _discover():
            try:
                triton = get("triton")
            except BackendError as exc:
                reason = str(exc)
            else:
                return triton
        else:
            reason = "flowoptim-triton is not installed"
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(
                f"flowoptim: using the pure-torch reference backend for CUDA tensors ({reason}); "
                "install flowoptim-triton for fused GPU kernels",
                RuntimeWarning,
                stacklevel=3,
            )
    return get("reference")
