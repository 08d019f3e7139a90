"""Adadelta (in OneFlow 0.9.0, absent from its reference text)."""

from __future__ import annotations

import torch

from .backends.base import Backend
from .optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta (``oneflow.optim.Adadelta``).

    .. math::
        g' &= (\text{maximize} ? -g : g) + \lambda p, \qquad
        s \leftarrow \rho s + (1-\rho) g'^2, \qquad
        d = \frac{\sqrt{a + \epsilon}}{\sqrt{s + \epsilon}}\, g' \\
        a &\leftarrow \rho a + (1-\rho) d^2, \qquad p \leftarrow p - \eta d

    Symbols: :math:`\eta` ``lr`` (default 1.0), :math:`\rho` ``rho``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``, ``maximize`` negates the gradient before weight decay
    (spec §1.9; OneFlow 0.9.0's Adadelta takes it too); state ``square_avg`` (s) and
    ``acc_delta`` (a).

    Same arithmetic as torch.optim.Adadelta; state is created on a
    parameter's first update, so ``add_param_group`` works (OneFlow 0.9.0 raises ``KeyError``).
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    _state_names = ("square_avg", "acc_delta")
    _torch_extras = frozenset({"foreach", "capturable", "differentiable"})

    def __init__(
        self,
        params,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        maximize: bool = False,
        *,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
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
        return {"square_avg", "acc_delta"}

    def _init_state(self, p, state, group) -> None:
        state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, backend, group, params, grads, states, step, grad_scale) -> None:
        backend.adadelta(
            params,
            grads,
            [s["square_avg"] for s in states],
            [s["acc_delta"] for s in states],
            lr=group["lr"],
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
        )
