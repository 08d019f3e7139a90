"""DTensor support: flowoptim optimizers on FSDP2 (``fully_shard``) and other DTensor parameters.

Elementwise updates do not care how a tensor is sharded: the optimizer hands each backend the
*local shards* (``DTensor.to_local()``) of the parameters, gradients and state, and the backend
updates them in place as it would plain tensors. Two computations are not elementwise and must see
the full (unsharded) tensors: LAMB's per-tensor ``||p||`` and ``||u||`` and ``clip_grad``'s total
norm. This module builds, for a param group, the reductions across the device mesh that make them
right; see Note [norm reduction across ranks].

Note [norm reduction across ranks]
----------------------------------
For a DTensor on mesh ``M`` with placements ``P``, the local shards along every mesh dimension
where ``P[d]`` shards the tensor (``Shard``, ``_StridedShard``) partition its elements, and along
every dimension where ``P[d]`` is ``Replicate`` they are copies. So:

* a sum over the elements (sum of squares for LAMB, ``sum |g|^p`` for a p-norm) is the SUM over
  the sharding dimensions of the local sums, counting each replica once: a tensor that is
  replicated on a dimension that is reduced contributes only on the ranks whose coordinate on that
  dimension is 0 (elsewhere its contribution is zeroed, "masked");
* a max (inf norm) or min (-inf norm) is the MAX / MIN of the local ones (replicas are harmless);
* the number of tensors with a nonzero element (norm 0) is the sum over tensors of the MAX over
  ranks of a per-tensor indicator.

The reduced dimensions of a group are those where at least one of its tensors is sharded. They are
reduced with one ``all_reduce`` per reduced dimension, or with one ``all_reduce`` over the default
group when several dimensions are reduced and the mesh holds every rank (then every dimension is
reduced, with masking). FSDP2 (1-D mesh, or HSDP's ``(Replicate, Shard)``) therefore costs one
collective per group (per (device, dtype) partition for LAMB) per step. Collectives are enqueued on
device tensors: no host synchronisation. The local shards never contain FSDP2's padding
(``to_local()`` excludes it), so uneven shards give the right norms.

Everything a group needs is checked by :func:`group_layout` before anything is modified: all its
tensors are DTensors (or none is), on one mesh, with no ``Partial`` placement, and every gradient
has its parameter's mesh and placements. Otherwise a ``ValueError`` names the parameters.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "GroupLayout",
    "dtensor_class",
    "fully_shard_fn",
    "group_layout",
    "is_dtensor",
    "match_param_layout",
]

# Note [lazy DTensor import]: importing torch.distributed.tensor costs ~0.5 s, which flowoptim
# must not add to every import. A program that has DTensors has imported it, so the class is
# looked up in sys.modules (torch >= 2.4: torch.distributed.tensor; older: ._tensor).
_DTENSOR_MODULES = ("torch.distributed.tensor", "torch.distributed._tensor")
_dtensor: type | None = None


def dtensor_class() -> type | None:
    """torch's ``DTensor`` class if it has been imported in this process, else None."""
    global _dtensor
    if _dtensor is None:
        for name in _DTENSOR_MODULES:
            cls = getattr(sys.modules.get(name), "DTensor", None)
            if cls is not None:
                _dtensor = cls
                break
    return _dtensor


def is_dtensor(t: Any) -> bool:
    """Whether ``t`` is a ``DTensor`` (False when no DTensor exists in this process)."""
    cls = dtensor_class()
    return cls is not None and isinstance(t, cls)


def fully_shard_fn() -> Callable[..., Any] | None:
    """FSDP2's ``fully_shard`` for this torch (``torch.distributed.fsdp`` from 2.6,
    ``torch.distributed._composable.fsdp`` before), or None if it has none."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        try:
            from torch.distributed._composable.fsdp import fully_shard
        except ImportError:
            return None
    return fully_shard


def local(t: Tensor) -> Tensor:
    """The local shard of a DTensor (the tensor itself otherwise).

    Under ``no_grad`` ``to_local()`` returns the DTensor's own local tensor, so in-place updates
    of it update the DTensor. FSDP2's padding is not part of it.
    """
    return t.to_local() if is_dtensor(t) else t


def _describe(i: int, t: Tensor) -> str:
    if is_dtensor(t):
        return (
            f"param {i} (shape {tuple(t.shape)}, mesh {t.device_mesh}, "
            f"placements {tuple(t.placements)})"
        )
    return f"param {i} (shape {tuple(t.shape)}, a plain {t.device} tensor, not a DTensor)"


def _is_sharding(placement: Any) -> bool:
    # Shard and _StridedShard (whose is_shard() is False in recent torch) both split elements
    return not placement.is_replicate() and not placement.is_partial()


@dataclass
class GroupLayout:
    """How the DTensors of one param group are laid out, and how to reduce over them.

    Built by :func:`group_layout`; see Note [norm reduction across ranks].
    """

    mesh: Any
    #: index in the group -> placements, for every tensor of the group that was checked
    placements: dict[int, tuple[Any, ...]]
    #: mesh dimensions whose partial results are reduced
    reduce_dims: tuple[int, ...]
    #: process groups, one all_reduce each (None: the default group)
    groups: list[Any] = field(default_factory=list)

    def counted(self, i: int) -> bool:
        """Whether tensor ``i``'s local partial sum counts on this rank (False: it is a replica
        of one counted on another rank of a reduced dimension)."""
        coord = self.mesh.get_coordinate()
        if coord is None:
            return False
        return not any(
            self.placements[i][d].is_replicate() and coord[d] != 0 for d in self.reduce_dims
        )

    def all_reduce_(self, t: Tensor, op: str) -> None:
        """Reduce ``t`` in place across the reduced mesh dimensions (``op``: sum, max or min)."""
        import torch.distributed as dist

        red = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
        for g in self.groups:
            dist.all_reduce(t, op=red, group=g)

    # ---------------------------------------------------------------- LAMB
    def lamb_norm_reduce(self, indices: Sequence[int]) -> _LambNormReduce:
        """The ``norm_reduce`` hook for a LAMB backend call over the group's tensors
        ``indices`` (in call order)."""
        masked = [j for j, i in enumerate(indices) if not self.counted(i)]
        return _LambNormReduce(self, len(indices), masked)

    # ---------------------------------------------------------------- clip_grad
    def clip_total(
        self,
        items: Sequence[tuple[int, Tensor, Any]],
        norm_type: float,
        combine: Callable[[list[Tensor], float], Tensor],
        device: torch.device,
        dtype: torch.dtype,
    ) -> Tensor:
        """The group's total gradient norm over the full tensors (spec §3), on every rank.

        ``items``: ``(index in group, local grad, backend)`` for every gradient of the group with
        at least one element globally (local shards may be empty). ``combine`` combines the
        per-partition norms (``flowoptim.optimizer._combine_norms``). One collective.
        """
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        # local tensors this rank accounts for (Note [norm reduction across ranks])
        mine = [(i, g, b) for i, g, b in items if g.numel() > 0 and self.counted(i)]
        if norm_type == 0:
            ind = torch.zeros(len(items), dtype=acc, device=device)
            pos = {i: j for j, (i, _, _) in enumerate(items)}
            for i, g, b in mine:
                ind[pos[i]] = b.grad_norm([g], 0.0).to(device=device, dtype=acc)
            self.all_reduce_(ind, "max")
            return ind.sum()
        local_total = None
        if mine:
            partials = []
            by_part: dict[tuple[Any, torch.device, torch.dtype], list[Tensor]] = {}
            for _, g, b in mine:
                by_part.setdefault((id(b), g.device, g.dtype), []).append(g)
            backends = {id(b): b for _, _, b in mine}
            for (bid, _, _), gs in by_part.items():
                partials.append(backends[bid].grad_norm(gs, norm_type))
            local_total = combine(partials, norm_type).to(device=device, dtype=acc)
        if math.isinf(norm_type):
            identity = 0.0 if norm_type > 0 else math.inf  # max of |g| >= 0; min over nothing
            t = local_total.clone() if local_total is not None else None
            if t is None:
                t = torch.full((), identity, dtype=acc, device=device)
            self.all_reduce_(t, "max" if norm_type > 0 else "min")
            return t
        # p-norm: sum over ranks of sum |g|^p, then the 1/p power
        if local_total is None:
            t = torch.zeros((), dtype=acc, device=device)
        else:
            t = local_total.pow(norm_type)
        self.all_reduce_(t, "sum")
        return t.pow(1.0 / norm_type)


class _LambNormReduce:
    """``norm_reduce`` for one ``Backend.lamb`` call: SUM-reduces the (2, n) per-tensor sums of
    squares of p and u in place across the mesh (replicas masked), and counts its calls."""

    def __init__(self, layout: GroupLayout, n: int, masked: list[int]) -> None:
        self.layout = layout
        self.n = n
        self.masked = masked
        self.calls = 0

    def __call__(self, sums: Tensor) -> None:
        if sums.dim() != 2 or sums.shape[0] != 2 or sums.shape[1] != self.n:
            raise ValueError(
                f"LAMB norm_reduce expects a (2, {self.n}) tensor of per-tensor sums of squares, "
                f"got shape {tuple(sums.shape)}"
            )
        for j in self.masked:
            sums[:, j].zero_()
        self.layout.all_reduce_(sums, "sum")
        self.calls += 1


def _process_groups(mesh: Any, reduce_dims: tuple[int, ...]) -> tuple[tuple[int, ...], list]:
    if not reduce_dims:
        return reduce_dims, []
    if len(reduce_dims) > 1:
        import torch.distributed as dist

        if mesh.size() == dist.get_world_size():
            # one collective over every rank; replicas on every dimension get masked
            return tuple(range(mesh.ndim)), [None]
    return reduce_dims, [mesh.get_group(d) for d in reduce_dims]


def group_layout(
    params: Sequence[Tensor],
    grads: Sequence[Tensor | None] | None = None,
    *,
    group_index: int | None = None,
    indices: Sequence[int] | None = None,
) -> GroupLayout | None:
    """Check that the tensors of one param group can be reduced together; describe their layout.

    Returns None when no tensor is a DTensor (plain tensors: nothing is reduced, the
    non-distributed behaviour). Raises ``ValueError`` naming the parameters (index in the group,
    shape, mesh, placements) when DTensors and plain tensors are mixed, when two parameters live
    on different meshes, when a parameter has a ``Partial`` placement, or when a gradient does
    not have its parameter's mesh and placements. Nothing is modified.

    Args:
        params: the group's parameters (those that take part: with a gradient for a step).
        grads: their gradients (or None to check parameters only, e.g. at construction).
        group_index: for messages.
        indices: each parameter's index in its group (default: position in ``params``).
    """
    if dtensor_class() is None:
        return None
    idx = list(indices) if indices is not None else list(range(len(params)))
    flags = [is_dtensor(p) for p in params]
    if not any(flags) and not (grads and any(is_dtensor(g) for g in grads)):
        return None
    where = f" of group {group_index}" if group_index is not None else ""
    if not all(flags):
        d = idx[flags.index(True)]
        pl = idx[flags.index(False)]
        raise ValueError(
            f"{_describe(pl, params[flags.index(False)])}{where} is not a DTensor but "
            f"{_describe(d, params[flags.index(True)])} is: their norms (LAMB, clip_grad) cannot "
            "be reduced together; put them in separate param groups or shard both"
        )
    mesh = params[0].device_mesh
    placements: dict[int, tuple[Any, ...]] = {}
    for k, (i, p) in enumerate(zip(idx, params)):
        if p.device_mesh != mesh:
            raise ValueError(
                f"{_describe(i, p)}{where} is on a different device mesh than "
                f"{_describe(idx[0], params[0])}: norms of one group (LAMB, clip_grad) are "
                "reduced with one collective over one mesh; put them in separate param groups"
            )
        if any(pl.is_partial() for pl in p.placements):
            raise ValueError(
                f"{_describe(i, p)}{where} has a Partial placement: its local values are not "
                "shards of the parameter; redistribute it to Shard/Replicate placements"
            )
        if grads is not None:
            g = grads[k]
            if g is not None and (
                not is_dtensor(g)
                or g.device_mesh != mesh
                or tuple(g.placements) != tuple(p.placements)
            ):
                got = (
                    f"mesh {g.device_mesh}, placements {tuple(g.placements)}"
                    if is_dtensor(g)
                    else "a plain tensor"
                )
                raise ValueError(
                    f"the gradient of {_describe(i, p)}{where} is {got}: it must have its "
                    "parameter's mesh and placements"
                )
        placements[i] = tuple(p.placements)
    reduce_dims = tuple(
        d for d in range(mesh.ndim) if any(_is_sharding(pl[d]) for pl in placements.values())
    )
    reduce_dims, groups = _process_groups(mesh, reduce_dims)
    return GroupLayout(mesh, placements, reduce_dims, groups)


def from_local_like(t: Tensor, like: Tensor) -> Tensor:
    """Wrap the local shard ``t`` as a DTensor with ``like``'s mesh, placements and global
    shape (state created on local shards by an optimizer's update)."""
    return dtensor_class().from_local(
        t,
        like.device_mesh,
        like.placements,
        run_check=False,
        shape=like.shape,
        stride=like.stride(),
    )


def match_param_layout(value: Tensor, p: Tensor) -> Tensor:
    """``value`` (a state tensor being loaded) laid out like its parameter ``p``.

    A plain tensor of ``p``'s global shape becomes a DTensor sharded like ``p`` (each rank keeps
    its own chunk, no communication where torch allows it); a DTensor with other placements is
    redistributed; a DTensor for a plain ``p`` becomes the full tensor. Collectives, where any,
    are issued by every rank in the same order, since every rank loads the same state dict.
    """
    if is_dtensor(p):
        if is_dtensor(value):
            if value.device_mesh == p.device_mesh and tuple(value.placements) == tuple(
                p.placements
            ):
                return value
            return value.redistribute(p.device_mesh, p.placements)
        if value.dim() == 0 or tuple(value.shape) != tuple(p.shape):
            return value
        from torch.distributed.tensor import distribute_tensor

        value = value.to(local(p).device)
        try:
            return distribute_tensor(value, p.device_mesh, p.placements, src_data_rank=None)
        except TypeError:  # pragma: no cover - torch without src_data_rank
            return distribute_tensor(value, p.device_mesh, p.placements)
    if is_dtensor(value):
        return value.full_tensor()
    return value
