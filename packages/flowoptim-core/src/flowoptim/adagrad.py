"""Adagrad with OneFlow's eps outside the sqrt and lr decay on the optimizer-wide step."""

from __future__ import annotations

import torch

from .backends.base import Backend
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (``oneflow.optim.Adagrad``).

    .. math::
        \tilde\eta &= \eta / (1 + (t - 1)\,\delta), \qquad
        g' = (\text{maximize} ? -g : g) + \lambda p \\
        S &\leftarrow S + g'^2, \qquad p \leftarrow p - \tilde\eta\, g' / (\sqrt{S} + \epsilon)

    Symbols: :math:`\eta` ``lr``, :math:`\delta` ``lr_decay``, :math:`\lambda` ``weight_decay``,
    :math:`\epsilon` ``eps`` (default 1e-10), ``maximize`` negates the gradient before weight
    decay (spec §1.9), :math:`t` the optimizer-wide step; state ``sum``
    (S), starting at ``initial_accumulator_value``.

    Departures from torch.optim.Adagrad: :math:`t` counts the optimizer's steps; state is created
    on a parameter's first update (torch creates it in the constructor), so ``add_param_group``
    works. OneFlow's reference text puts :math:`\epsilon` inside the square root; OneFlow 0.9.0
    adds it outside, as we do.
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    _state_names = ("sum",)
    _torch_extras = frozenset({"foreach", "differentiable", "fused"})

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(
            params,
            defaults,
            backend=backend,
            foreach=foreach,
            fused=fused,
            capturable=capturable,
            differentiable=differentiable,
        )

    def _required_state(self, group) -> set[str]:
        return {"sum"}

    def _init_state(self, p, state, group) -> None:
        state["sum"] = torch.full_like(
            p, float(group["initial_accumulator_value"]), memory_format=torch.preserve_format
        )

    def _update(self, backend, group, params, grads, states, step, grad_scale) -> None:
        backend.adagrad(
            params,
            grads,
            [s["sum"] for s in states],
            step=step,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
        )
