"""SGD with momentum, dampening, Nesterov and maximize (OneFlow semantics)."""

from __future__ import annotations

import torch

from .backends.base import Backend
from .optimizer import Optimizer

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
    optimizer-wide step (spec §1.1). Departures from OneFlow: ``maximize`` negates the gradient
    before weight decay also without momentum (OneFlow ignores it there); Nesterov is validated
    as torch does. ``fused`` is accepted for OneFlow code and changes nothing: the backend
    decides how the update runs. Sparse gradients are supported: they update as the equivalent
    dense gradient.
    """

    support_sparse = True
    _state_names = ("momentum_buffer",)

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
        super().__init__(params, defaults, backend=backend)

    def _init_state(self, p, state, group) -> None:
        if group["momentum"] != 0:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, backend, group, params, grads, states, step, grad_scale) -> None:
        bufs = None
        if group["momentum"] != 0:
            bufs = []
            for p, s in zip(params, states):
                if "momentum_buffer" not in s:  # momentum switched on after the first steps
                    s["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(s["momentum_buffer"])
        backend.sgd(
            params,
            grads,
            bufs,
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
        )
