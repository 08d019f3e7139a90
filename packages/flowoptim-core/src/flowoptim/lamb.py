"""LAMB with OneFlow's semantics (weight decay outside the trust-ratio norm), plus AMSGrad."""

from __future__ import annotations

from ._adam_common import adam_state_lists, init_adam_state, lazy_adam_state, required_adam_state
from .backends.base import Backend
from .optimizer import Optimizer

__all__ = ["LAMB"]


class LAMB(Optimizer):
    r"""LAMB (``oneflow.optim.LAMB``): Adam direction, per-tensor trust ratio.

    For each parameter tensor:

    .. math::
        \tilde g &= \text{maximize} ? -g : g, \qquad
        g' = \text{adam\_w\_mode} ? \tilde g : \tilde g + \lambda p \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g', \qquad v \leftarrow \beta_2 v + (1-\beta_2) g'^2,
        \qquad \hat v = \text{amsgrad} ? \max(v_{max}, v) : v \\
        u &= \frac{m / bc_1}{\sqrt{\hat v}/\sqrt{bc_2} + \epsilon} \\
        r &= \begin{cases} \lVert p \rVert_2 / \lVert u \rVert_2 &
              \lVert p \rVert_2 > 0 \text{ and } \lVert u \rVert_2 > 0 \\
              1 & \text{otherwise} \end{cases} \\
        p &\leftarrow p - \eta r \,(\text{adam\_w\_mode} ? u + \lambda p : u)

    Symbols: :math:`\eta` ``lr``, :math:`(\beta_1,\beta_2)` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``, ``maximize`` negates the gradient before weight decay
    (spec §1.9), :math:`bc_k = 1-\beta_k^t` with :math:`t` the
    optimizer-wide step (1 without ``do_bias_correction``); :math:`\lVert p \rVert` is taken
    before the update. State: ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad).

    Departures: the LAMB paper and apex put :math:`\lambda p` inside :math:`\lVert u \rVert`;
    OneFlow does not, and neither do we. ``amsgrad=True`` is supported (OneFlow raises).
    torch.optim has no LAMB. OneFlow's reference text shows neither bias correction nor decay;
    OneFlow 0.9.0 applies both, as we do.
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    _state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    # per-tensor norms: on DTensor params (FSDP2) they are reduced across the mesh through the
    # backend's norm_reduce hook (Note [DTensor parameters] in flowoptim.optimizer)
    _reduces_norms = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        adam_w_mode: bool = True,
        do_bias_correction: bool = True,
        amsgrad: bool = False,
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
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            adam_w_mode=adam_w_mode,
            do_bias_correction=do_bias_correction,
            amsgrad=amsgrad,
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
        return required_adam_state(group)

    def _lazy_state(self, group) -> set[str]:
        return lazy_adam_state(group)

    def _init_state(self, p, state, group) -> None:
        init_adam_state(p, state, group)

    def _update(
        self, backend, group, params, grads, states, step, grad_scale, norm_reduce=None
    ) -> None:
        exp_avgs, exp_avg_sqs, max_exp_avg_sqs = adam_state_lists(params, states, group)
        beta1, beta2 = group["betas"]
        backend.lamb(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            max_exp_avg_sqs,
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            adam_w_mode=group["adam_w_mode"],
            amsgrad=group["amsgrad"],
            do_bias_correction=group["do_bias_correction"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
            # only passed when set, so backends without the hook keep working on plain tensors
            **({} if norm_reduce is None else {"norm_reduce": norm_reduce}),
        )
