"""Deliberately broken backends: each must fail the suite (the meta-tests).

Each is the reference backend with one functional overridden by a classic mistake. Run one with
``python -m flowoptim_conformance --backend flowoptim_conformance.mutants:AdagradEpsInsideSqrt``.
"""

from __future__ import annotations

import math
import weakref

import torch

from flowoptim.backends.reference import ReferenceBackend

__all__ = [
    "MUTANTS",
    "AdagradEpsInsideSqrt",
    "ClipPerTensorNorm",
    "LambDecayInsideNorm",
    "PerParameterStep",
    "SparseDensified",
]


class AdagradEpsInsideSqrt(ReferenceBackend):
    """Adagrad with ``sqrt(S + eps)`` (the OneFlow reference text) instead of ``sqrt(S) + eps``."""

    name = "mutant-adagrad-eps-inside-sqrt"

    def adagrad(self, params, grads, state_sums, *, step, lr, lr_decay, weight_decay, eps,
                maximize, grad_scale):  # fmt: skip
        with torch.no_grad():
            for p, g, s in zip(params, grads, state_sums, strict=True):
                g = g.float() if grad_scale is None else g.float() * grad_scale
                g = -g if maximize else g
                g = g + float(weight_decay) * p.float()
                s32 = s.float() + g * g
                s.copy_(s32)
                clr = lr / (1 + (step - 1) * lr_decay)
                p.copy_(p.float() - clr * g / torch.sqrt(s32 + eps))


class LambDecayInsideNorm(ReferenceBackend):
    """LAMB with ``wd*p`` inside the update norm (the paper, apex), not outside (OneFlow)."""

    name = "mutant-lamb-decay-inside-norm"

    def lamb(self, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, lr, beta1,
             beta2, eps, weight_decay, adam_w_mode, amsgrad, do_bias_correction, maximize,
             grad_scale):  # fmt: skip
        if not adam_w_mode or weight_decay == 0:
            return super().lamb(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step,
                                lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                weight_decay=weight_decay, adam_w_mode=adam_w_mode,
                                amsgrad=amsgrad, do_bias_correction=do_bias_correction,
                                maximize=maximize, grad_scale=grad_scale)  # fmt: skip
        with torch.no_grad():
            for i, p in enumerate(params):
                g = grads[i].double() if grad_scale is None else grads[i].double() * grad_scale
                g = -g if maximize else g
                m, v = exp_avgs[i], exp_avg_sqs[i]
                m64 = beta1 * m.double() + (1 - beta1) * g
                v64 = beta2 * v.double() + (1 - beta2) * g * g
                m.copy_(m64)
                v.copy_(v64)
                if max_exp_avg_sqs is not None:
                    torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
                    v64 = max_exp_avg_sqs[i].double()
                bc1, bc2 = ((1 - beta1**step), (1 - beta2**step)) if do_bias_correction else (1, 1)
                u = (m64 / bc1) / (v64.sqrt() / math.sqrt(bc2) + eps)
                u = u + weight_decay * p.double()  # the mistake: decay inside the norm
                w_norm, u_norm = p.double().norm(), u.norm()
                trust = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
                p.copy_(p.double() - lr * trust * u)


class PerParameterStep(ReferenceBackend):
    """Ignores the optimizer-wide ``step`` and counts steps per parameter tensor (torch's way)."""

    name = "mutant-per-parameter-step"

    def __init__(self) -> None:
        self._steps: dict[int, tuple[weakref.ref, int]] = {}  # id(param) -> (ref, count)

    def _own_steps(self, params) -> list[int]:
        out = []
        for p in params:
            ref, count = self._steps.get(id(p), (None, 0))
            if ref is None or ref() is not p:  # a new tensor (ids are reused after free)
                count = 0
            self._steps[id(p)] = (weakref.ref(p), count + 1)
            out.append(count + 1)
        return out

    def adam(self, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, **kw):
        for i, own in enumerate(self._own_steps(params)):
            mx = None if max_exp_avg_sqs is None else [max_exp_avg_sqs[i]]
            super().adam([params[i]], [grads[i]], [exp_avgs[i]], [exp_avg_sqs[i]], mx, step=own,
                         **kw)  # fmt: skip

    def lamb(self, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, *, step, **kw):
        for i, own in enumerate(self._own_steps(params)):
            mx = None if max_exp_avg_sqs is None else [max_exp_avg_sqs[i]]
            super().lamb([params[i]], [grads[i]], [exp_avgs[i]], [exp_avg_sqs[i]], mx, step=own,
                         **kw)  # fmt: skip

    def adagrad(self, params, grads, state_sums, *, step, **kw):
        for i, own in enumerate(self._own_steps(params)):
            super().adagrad([params[i]], [grads[i]], [state_sums[i]], step=own, **kw)


class ClipPerTensorNorm(ReferenceBackend):
    """``grad_norm`` of the largest single tensor instead of the norm over all of them."""

    name = "mutant-clip-per-tensor-norm"

    def grad_norm(self, grads, norm_type):
        norms = [super(ClipPerTensorNorm, self).grad_norm([g], norm_type) for g in grads]
        return torch.stack(norms).max()


#: every mutant by a short name
class SparseDensified(ReferenceBackend):
    """Sparse gradients updated as the equivalent dense gradient (what flowoptim did before spec
    §5's lazy updates): every row's moments decay and AdamW's decay reaches every row."""

    name = "mutant-sparse-densified"

    def adam_sparse(self, params, indices, values, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, **kw):
        grads = [torch.zeros_like(p).index_add_(0, ix, v)
                 for p, ix, v in zip(params, indices, values, strict=True)]  # fmt: skip
        self.adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, **kw)


MUTANTS = {
    "adagrad-eps-inside-sqrt": AdagradEpsInsideSqrt,
    "lamb-decay-inside-norm": LambDecayInsideNorm,
    "per-parameter-step": PerParameterStep,
    "clip-per-tensor-norm": ClipPerTensorNorm,
    "sparse-densified": SparseDensified,
}
