"""RMSprop with OneFlow's eps-inside-the-sqrt, centering and momentum."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ._validation import range_rule
from .backends.base import Backend
from .optimizer import Optimizer

__all__ = ["RMSprop"]


def _zeros(p):
    return torch.zeros_like(p, memory_format=torch.preserve_format)


class RMSprop(Optimizer):
    r"""RMSprop (``oneflow.optim.RMSprop``).

    .. math::
        g' &= (\text{maximize} ? -g : g) + \lambda p, \qquad
        r \leftarrow \alpha r + (1-\alpha) g'^2 \\
        \text{centered}:&\quad a \leftarrow \alpha a + (1-\alpha) g', \quad D = r - a^2;
        \qquad \text{else } D = r \\
        \mu = 0:&\quad p \leftarrow p - \eta\, g' / \sqrt{D + \epsilon} \\
        \mu > 0:&\quad b \leftarrow \mu b + \eta\, g' / \sqrt{D + \epsilon}, \quad
            p \leftarrow p - b

    Symbols: :math:`\eta` ``lr``, :math:`\alpha` ``alpha``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``, :math:`\mu` ``momentum``, ``maximize`` negates the
    gradient before weight decay (spec §1.9); state ``square_avg`` (r),
    ``grad_avg`` (a, centered only), ``momentum_buffer`` (b, momentum only).

    Departures from torch.optim.RMSprop: :math:`\epsilon` is inside the square root (torch adds
    it outside), and with momentum the buffer accumulates the lr-scaled step (torch's buffer
    excludes lr). OneFlow 0.9.0 raises for ``momentum > 0``; we implement the formula its
    reference text gives. ``alpha`` must be in ``[0, 1]`` (above 1, ``square_avg`` goes negative;
    spec §1.7).
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    _state_names = ("square_avg", "grad_avg", "momentum_buffer")
    _extra_rules: ClassVar[dict[str, Callable[[str, Any], None]]] = {
        "alpha": range_rule("alpha", 0.0, 1.0, hi_open=False)
    }
    _torch_extras = frozenset({"foreach", "capturable", "differentiable"})

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
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
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
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

    def _lazy_state(self, group) -> set[str]:
        lazy = set()
        if group["momentum"] > 0:
            lazy.add("momentum_buffer")
        if group["centered"]:
            lazy.add("grad_avg")
        return lazy

    def _required_state(self, group) -> set[str]:
        return {"square_avg"} | self._lazy_state(group)

    def _init_state(self, p, state, group) -> None:
        state["square_avg"] = _zeros(p)
        if group["momentum"] > 0:
            state["momentum_buffer"] = _zeros(p)
        if group["centered"]:
            state["grad_avg"] = _zeros(p)

    def _update(self, backend, group, params, grads, states, step, grad_scale) -> None:
        for key, on in (
            ("momentum_buffer", group["momentum"] > 0),
            ("grad_avg", group["centered"]),
        ):
            if on:  # an option switched on after the first steps starts from zero
                for p, s in zip(params, states):
                    if key not in s:
                        s[key] = _zeros(p)
        backend.rmsprop(
            params,
            grads,
            [s["square_avg"] for s in states],
            [s["grad_avg"] for s in states] if group["centered"] else None,
            [s["momentum_buffer"] for s in states] if group["momentum"] > 0 else None,
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
        )
