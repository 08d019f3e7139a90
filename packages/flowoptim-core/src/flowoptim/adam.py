"""Adam and AdamW (OneFlow semantics: optimizer-wide step, optional bias correction)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._adam_common import adam_state_lists, init_adam_state, lazy_adam_state, required_adam_state
from .backends.base import Backend
from .optimizer import Optimizer, sparse_parts, split_sparse

__all__ = ["Adam", "AdamW"]


def _adam_defaults(lr, betas, eps, weight_decay, amsgrad, do_bias_correction, maximize, fused):
    return dict(
        lr=lr,
        betas=tuple(betas) if isinstance(betas, list) else betas,
        eps=eps,
        weight_decay=weight_decay,
        amsgrad=amsgrad,
        do_bias_correction=do_bias_correction,
        maximize=maximize,
        fused=fused,
    )


class _AdamBase(Optimizer):
    """What Adam and AdamW share; each public class has its own ``__init__`` so that errors
    (an unexpected keyword, say) name ``Adam`` or ``AdamW``."""

    support_sparse = True
    _state_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False
    _torch_extras = frozenset(
        {"foreach", "capturable", "differentiable", "fused", "decoupled_weight_decay"}
    )

    def _required_state(self, group) -> set[str]:
        return required_adam_state(group)

    def _lazy_state(self, group) -> set[str]:
        return lazy_adam_state(group)

    def _init_state(self, p, state, group) -> None:
        init_adam_state(p, state, group)

    def _update(self, backend, group, params, grads, states, step, grad_scale) -> None:
        beta1, beta2 = group["betas"]
        kw = dict(
            step=step,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=self._decoupled,
            amsgrad=group["amsgrad"],
            do_bias_correction=group["do_bias_correction"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
        )
        # dense and sparse gradients may mix in one partition (spec §5)
        for ps, gs, ss, sparse in split_sparse(params, grads, states):
            exp_avgs, exp_avg_sqs, max_exp_avg_sqs = adam_state_lists(ps, ss, group)
            if sparse:
                backend.adam_sparse(
                    ps, *sparse_parts(gs), exp_avgs, exp_avg_sqs, max_exp_avg_sqs, **kw
                )
            else:
                backend.adam(ps, gs, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, **kw)


class Adam(_AdamBase):
    r"""Adam (``oneflow.optim.Adam``), with L2 weight decay and optional AMSGrad.

    .. math::
        g' &= (\text{maximize} ? -g : g) + \lambda p, \qquad
        m \leftarrow \beta_1 m + (1-\beta_1) g', \qquad
        v \leftarrow \beta_2 v + (1-\beta_2) g'^2 \\
        \hat v &= \text{amsgrad} ? (v_{max} \leftarrow \max(v_{max}, v)) : v \\
        p &\leftarrow p - \frac{\eta}{bc_1} \cdot \frac{m}{\sqrt{\hat v}/\sqrt{bc_2} + \epsilon},
        \qquad bc_k = 1 - \beta_k^{t}\ (\text{or } 1 \text{ without bias correction})

    Symbols: :math:`\eta` ``lr``, :math:`(\beta_1, \beta_2)` ``betas``, :math:`\epsilon` ``eps``,
    :math:`\lambda` ``weight_decay``, ``maximize`` negates the gradient before weight decay
    (spec §1.9), :math:`t` the optimizer-wide step; state ``exp_avg`` (m), ``exp_avg_sq`` (v),
    ``max_exp_avg_sq`` (:math:`v_{max}`, amsgrad only).

    Departures from torch.optim.Adam: :math:`t` counts the optimizer's steps, not the
    parameter's (a parameter whose first gradient arrives at step 2 is bias-corrected with t=2);
    ``do_bias_correction=False`` turns bias correction off; hyperparameters act as float32
    (OneFlow's C ``float``). OneFlow's reference text shows no bias correction; OneFlow 0.9.0
    applies it, and so do we. ``fused`` is accepted for OneFlow code and changes nothing.

    Sparse gradients (COO, one sparse dim: ``nn.Embedding(sparse=True)``) update lazily (spec
    §5), as OneFlow's lazy Adam and torch's ``SparseAdam``: duplicate rows are summed, the
    rows present update as above with the optimizer-wide :math:`t`'s bias corrections (amsgrad
    included), and every other row keeps its parameter, ``exp_avg`` and ``exp_avg_sq`` exactly.
    Weight decay (L2, in :math:`g'`) therefore reaches the rows present only. Dense and sparse
    gradients may mix in a group.
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    _torch_fixed: ClassVar[dict[str, Any]] = {"decoupled_weight_decay": False}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        do_bias_correction: bool = True,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        defaults = _adam_defaults(
            lr, betas, eps, weight_decay, amsgrad, do_bias_correction, maximize, fused
        )
        super().__init__(
            params,
            defaults,
            backend=backend,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )


class AdamW(_AdamBase):
    r"""AdamW (``oneflow.optim.AdamW``): Adam with decoupled weight decay.

    .. math::
        g' &= \text{maximize} ? -g : g, \qquad
        m \leftarrow \beta_1 m + (1-\beta_1) g', \qquad v \leftarrow \beta_2 v + (1-\beta_2) g'^2 \\
        p &\leftarrow p - \frac{\eta}{bc_1} \cdot \frac{m}{\sqrt{\hat v}/\sqrt{bc_2} + \epsilon}
            - \eta \lambda p \quad (p \text{ on the right: the value before the update})

    Symbols as in :class:`Adam` (``maximize`` negates the gradient first, spec §1.9);
    :math:`\lambda` ``weight_decay`` (default 0, as OneFlow; torch's default is 1e-2).
    Departures from torch.optim.AdamW: the optimizer-wide step, optional bias correction,
    float32 hyperparameters, the weight-decay default. ``fused`` is accepted and changes
    nothing. Sparse gradients update lazily as in :class:`Adam` (spec §5): the rows present
    only, the decoupled decay :math:`-\eta\lambda p` included (rows absent are not decayed).
    torch.optim's ``foreach``, ``fused``, ``capturable`` and ``differentiable`` keywords: Note
    [torch.optim switches] (``capturable=True``: Note [capturable]); ``torch.compile``
    works (docs/guides/compile-cudagraphs-amp.md).
    """

    _decoupled = True
    _torch_fixed: ClassVar[dict[str, Any]] = {"decoupled_weight_decay": True}

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        do_bias_correction: bool = True,
        *,
        maximize: bool = False,
        fused: bool | None = None,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        defaults = _adam_defaults(
            lr, betas, eps, weight_decay, amsgrad, do_bias_correction, maximize, fused
        )
        super().__init__(
            params,
            defaults,
            backend=backend,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
        )
