"""SGD with momentum, dampening, Nesterov and maximize (OneFlow semantics)."""

from __future__ import annotations

import torch

from .backends.base import Backend
from .optimizer import Optimizer, sparse_parts, split_sparse

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (``oneflow.optim.SGD``).

    .. math::
        g' &= (\text{maximize} ? -g : g) + \lambda p \\
        \mu = 0:&\quad p \leftarrow p - \eta g' \\
        \mu > 0:&\quad b \leftarrow \mu b + (1 - \tau) g', \quad
            d = \text{nesterov} ? g' + \mu b : b, \quad p \leftarrow p - \eta d

    Symbols: :math:`\eta` ``lr``, :math:`\mu` ``momentum``, :math:`\tau` ``dampening``,
    :math:`\lambda` ``weight_decay``, :math:`b` state ``momentum_buffer`` (starts at 0).

    Departures from torch.optim.SGD: the buffer starts at zero, so with dampening the first step
    gives :math:`(1-\tau) g'` (torch copies :math:`g'` on the first step); every step counts in the
    optimizer-wide step (spec §1.1); ``nesterov=True`` with :math:`\mu = 0` or
    :math:`\tau \ne 0` is accepted, as OneFlow 0.9.0 accepts it, and computes the formula above
    (with :math:`\mu = 0` that is plain SGD: no buffer is created); torch.optim refuses it, so
    it warns once per optimizer. Departures from OneFlow: ``maximize`` negates the gradient
    before weight decay also without momentum (OneFlow ignores it there). ``fused`` is accepted
    for OneFlow code and changes nothing: the backend decides how the update runs.

    Sparse gradients (COO, one sparse dim: ``nn.Embedding(sparse=True)``) update lazily (spec
    §5): duplicate rows are summed, the rows present update as above (their buffer rows
    too, nesterov included) and every other row, and its buffer row, is left exactly as it was,
    as OneFlow's ``support_sparse``. Dense and sparse gradients may mix in a group.
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    support_sparse = True
    _state_names = ("momentum_buffer",)
    _torch_extras = frozenset({"foreach", "differentiable", "fused"})
    # torch.optim.SGD's state may hold momentum_buffer None: no buffer yet (created lazily)
    _none_is_no_state = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
        *,
        fused: bool | None = None,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            fused=fused,
        )
        super().__init__(
            params,
            defaults,
            backend=backend,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )

    def _check_group(self, group) -> None:
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            self._warn_once(
                "nesterov",
                f"SGD(nesterov=True) with momentum={group['momentum']!r} and dampening="
                f"{group['dampening']!r}: accepted as OneFlow 0.9.0 accepts it (update d = g' + "
                "momentum*buf; with momentum 0 plain SGD), but torch.optim.SGD refuses it "
                "(Nesterov momentum requires a momentum and zero dampening)",
            )

    def _lazy_state(self, group) -> set[str]:
        return {"momentum_buffer"} if group["momentum"] != 0 else set()

    def _init_state(self, p, state, group) -> None:
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, backend, group, params, grads, states, step, grad_scale) -> None:
        # dense and sparse gradients may mix in one partition (spec §5)
        for ps, gs, ss, sparse in split_sparse(params, grads, states):
            bufs = None
            if group["momentum"] != 0:
                bufs = []
                for p, s in zip(ps, ss):
                    if s.get("momentum_buffer") is None:  # momentum switched on later
                        s["momentum_buffer"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format
                        )
                    bufs.append(s["momentum_buffer"])
            kw = dict(
                lr=group["lr"],
                momentum=group["momentum"],
                dampening=group["dampening"],
                weight_decay=group["weight_decay"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
                grad_scale=grad_scale,
            )
            if sparse:
                backend.sgd_sparse(ps, *sparse_parts(gs), bufs, **kw)
            else:
                backend.sgd(ps, gs, bufs, **kw)
