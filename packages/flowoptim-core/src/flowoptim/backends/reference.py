"""The reference backend: pure torch, correct first, and as fast as torch.optim on the CPU.

Note [fused CPU kernels]
------------------------
torch (>= 2.4) has fused CPU kernels for Adam, AdamW, SGD and Adagrad (``torch._fused_adam_`` and
friends). Their arithmetic is the spec's, up to rounding, with two gaps we close from outside:

* SGD: torch copies the gradient into the momentum buffer on the first step; we always pass
  ``is_first_step=False`` with the zero-initialised buffer, which gives OneFlow's
  ``(1 - dampening) * g'`` first step.
* Adam/AdamW: the kernel computes ``1 - beta`` and ``1 - beta**t`` from the same beta, but
  OneFlow takes ``1 - beta`` from float32(beta) and the bias correction from the double value
  (Note [float32 hyperparameters]; spec §8's 0.8999993). We pass ``beta_k = float32(beta)`` and
  fold the bias-correction mismatch into lr and eps: with kernel corrections ``bc1', s' =
  sqrt(bc2')`` and wanted ``bc1, s``, the kernel's update ``lr'/bc1' * m / (sqrt(v)/s' + eps')``
  equals ``lr/bc1 * m / (sqrt(v)/s + eps)`` for ``eps' = eps*s/s'`` and
  ``lr' = lr * (bc1'/bc1) * (s/s')``. The same rescaling turns bias correction off
  (``bc1 = s = 1``). AdamW's decay ``p *= 1 - lr'*wd'`` gets ``wd' = lr*wd/lr'``.

The kernels run for float32/float64 CPU tensors; other devices use the foreach path below, which
is also the specification-shaped code for RMSprop, Adadelta and LAMB.

Note [cache blocking]
---------------------
Updates built from several foreach ops make one pass over memory per op, with full-size
temporaries. On the CPU, where the step is memory-bound, RMSprop, Adadelta and LAMB therefore run
block by block: tensors are split into flat views and batched to about ``BLOCK_ELEMS`` elements,
so every op of a block works in cache and each operand crosses memory about once. The updates are
elementwise (LAMB's norms are accumulated per tensor across blocks), so blocking changes no
number. Non-contiguous tensors are processed whole.

Note [low precision in the reference backend]
---------------------------------------------
fp16/bf16 partitions are updated with float32 arithmetic (spec §7): params, grads and state are
upcast to float32 copies, updated, and the params and state copied back (rounded once per step
to their dtype, as a fused GPU kernel stores them).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .base import Backend, bias_corrections, f32

__all__ = ["ReferenceBackend"]

_LOW = (torch.float16, torch.bfloat16)
_HAS_FUSED = all(hasattr(torch, n) for n in ("_fused_adam_", "_fused_adamw_", "_fused_sgd_"))
_HAS_FUSED_ADAGRAD = hasattr(torch, "_fused_adagrad_")


def _fused_ok(params: list[Tensor], *lists: list[Tensor] | None) -> bool:
    """Whether torch's fused CPU kernels can run: CPU, float32/float64, and every operand
    contiguous (the kernels index all operands with the param's strides: a transposed param with
    a contiguous grad would be updated with the wrong elements)."""
    t = params[0]
    if not (_HAS_FUSED and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)):
        return False
    return all(all(map(Tensor.is_contiguous, lst)) for lst in (params, *lists) if lst is not None)


def _scaled(grads: list[Tensor], grad_scale: Tensor | None) -> list[Tensor]:
    """``g * grad_scale`` rounded to the grad dtype, as new tensors (Note [grad_scale])."""
    if grad_scale is None:
        return grads
    # a 0-d tensor does not promote: the product keeps the grads' dtype (rounded to it)
    return torch._foreach_mul(grads, grad_scale)


def _negated(grads: list[Tensor], maximize: bool) -> list[Tensor]:
    """``-g`` as new tensors when maximizing (Note [maximize]; the user's grads are never
    modified)."""
    return torch._foreach_neg(grads) if maximize else grads


def _upcast(tensors: list[Tensor] | None) -> list[Tensor] | None:
    if tensors is None:
        return None
    return [t.float() for t in tensors]


def _with_float32(fn):
    """Run a foreach-path functional in float32 for fp16/bf16 partitions (Note [low precision
    in the reference backend]); positional lists are params, grads, then state lists."""

    @functools.wraps(fn)  # keeps fn's signature visible (e.g. lamb's norm_reduce keyword)
    def wrapper(self, params, grads, *states, **kw):
        if not params or params[0].dtype not in _LOW:
            return fn(self, params, grads, *states, **kw)
        grads = _scaled(grads, kw.pop("grad_scale"))
        p32 = _upcast(params)
        s32 = [_upcast(s) for s in states]
        fn(self, p32, _upcast(grads), *s32, grad_scale=None, **kw)
        torch._foreach_copy_(params, p32)
        for orig, up in zip(states, s32):
            if orig is not None:
                torch._foreach_copy_(orig, up)

    return wrapper


def _weight_decayed(grads: list[Tensor], params: list[Tensor], wd: float) -> list[Tensor]:
    """``g + wd * p`` as new tensors (never written into the user's grads)."""
    if wd == 0:
        return grads
    return torch._foreach_add(grads, params, alpha=wd)


#: elements per cache block on the CPU (Note [cache blocking]); 256K float32 elements per operand
BLOCK_ELEMS = 1 << 18


def _chunks(lists, budget: int = BLOCK_ELEMS):
    """Split aligned tensor lists into batches of about ``budget`` elements.

    Yields ``(batch, owners)``: ``batch`` holds one list per input list (None lists stay None),
    ``owners`` the index of the tensor each entry came from. A tensor that fits in the current
    batch goes in whole; a larger one is split into flat views when every operand of it is
    contiguous, else it goes whole into a batch of its own.
    """
    first = lists[0]
    present = [lst for lst in lists if lst is not None]
    slots = [i for i, lst in enumerate(lists) if lst is not None]

    def empty():
        return [[] if lst is not None else None for lst in lists]

    batch, owners, size = empty(), [], 0
    for i, t in enumerate(first):
        numel = t.numel()
        if size + numel <= budget or not all(lst[i].is_contiguous() for lst in present):
            if size + numel > budget and owners:
                yield batch, owners
                batch, owners, size = empty(), [], 0
            for k, lst in zip(slots, present):
                batch[k].append(lst[i])
            owners.append(i)
            size += numel
            if size >= budget:
                yield batch, owners
                batch, owners, size = empty(), [], 0
            continue
        flats = [lst[i].view(-1) for lst in present]
        start = 0
        while start < numel:
            stop = min(numel, start + budget - size)
            for k, f in zip(slots, flats):
                batch[k].append(f[start:stop])
            owners.append(i)
            size += stop - start
            start = stop
            if size >= budget:
                yield batch, owners
                batch, owners, size = empty(), [], 0
    if owners:
        yield batch, owners


def _blocked(fn):
    """Run an elementwise functional block by block on the CPU (Note [cache blocking])."""

    @functools.wraps(fn)
    def wrapper(self, params, *lists, **kw):
        if not params or params[0].device.type != "cpu":
            return fn(self, params, *lists, **kw)
        for batch, _ in _chunks([params, *lists]):
            fn(self, *batch, **kw)
        return None

    return wrapper


class ReferenceBackend(Backend):
    """Pure-torch arithmetic for every device (chosen automatically for CPU tensors)."""

    name = "reference"

    def __init__(self) -> None:
        self._scratch: dict[torch.dtype, Tensor] = {}  # Note [LAMB scratch]

    # ------------------------------------------------------------------ SGD
    @_with_float32
    def sgd(
        self,
        params,
        grads,
        momentum_buffers,
        *,
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        maximize,
        grad_scale,
    ):
        lr, momentum, dampening, wd = f32(lr), f32(momentum), f32(dampening), f32(weight_decay)
        grads = _scaled(grads, grad_scale)
        if _fused_ok(params, grads, momentum_buffers):
            torch._fused_sgd_(
                params,
                grads,
                momentum_buffers or [],
                weight_decay=wd,
                momentum=momentum,
                lr=lr,
                dampening=dampening,
                nesterov=nesterov,
                maximize=maximize,
                is_first_step=False,  # Note [fused CPU kernels]: zero buffer, OneFlow's 1st step
            )
            return
        if maximize:
            grads = torch._foreach_neg(grads)
        grads = _weight_decayed(grads, params, wd)
        if momentum_buffers is None:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        torch._foreach_mul_(momentum_buffers, momentum)
        torch._foreach_add_(momentum_buffers, grads, alpha=1.0 - dampening)
        if nesterov:
            d = torch._foreach_add(grads, momentum_buffers, alpha=momentum)
        else:
            d = momentum_buffers
        torch._foreach_add_(params, d, alpha=-lr)

    # ------------------------------------------------------------------ Adam / AdamW
    @_with_float32
    def adam(
        self,
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        *,
        step,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled_weight_decay,
        amsgrad,
        do_bias_correction,
        maximize,
        grad_scale,
    ):
        grads = _negated(_scaled(grads, grad_scale), maximize)
        bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
        b1, b2, lr32, eps32, wd = f32(beta1), f32(beta2), f32(lr), f32(eps), f32(weight_decay)
        if _fused_ok(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
            # Note [fused CPU kernels]: rescale lr and eps so the kernel's bias corrections
            # (from float32 betas) give OneFlow's
            bc1_k = 1.0 - b1**step
            s_k = math.sqrt(1.0 - b2**step)
            s = math.sqrt(bc2)
            lr_k = lr32 * (bc1_k / bc1) * (s / s_k)
            eps_k = eps32 * s / s_k
            steps = [torch.tensor(float(step))] * len(params)
            if decoupled_weight_decay:
                wd_k = lr32 * wd / lr_k if lr_k != 0 else 0.0
                torch._fused_adamw_(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    max_exp_avg_sqs or [],
                    steps,
                    lr=lr_k,
                    beta1=b1,
                    beta2=b2,
                    weight_decay=wd_k,
                    eps=eps_k,
                    amsgrad=amsgrad,
                    maximize=False,
                )
            else:
                torch._fused_adam_(
                    params,
                    grads,
                    exp_avgs,
                    exp_avg_sqs,
                    max_exp_avg_sqs or [],
                    steps,
                    lr=lr_k,
                    beta1=b1,
                    beta2=b2,
                    weight_decay=wd,
                    eps=eps_k,
                    amsgrad=amsgrad,
                    maximize=False,
                )
            return
        if decoupled_weight_decay:
            # p - lr*wd*p with p the pre-update value, then the Adam step
            if wd != 0:
                torch._foreach_mul_(params, 1.0 - f32(lr32 * wd))
        else:
            grads = _weight_decayed(grads, params, wd)
        denom = self._adam_moments(
            grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, b1, b2, bc2, eps32
        )
        torch._foreach_addcdiv_(params, exp_avgs, denom, -f32(lr32 / bc1))

    @staticmethod
    def _adam_moments(grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, b1, b2, bc2, eps):
        """Update m, v (and vmax); return ``sqrt(v_hat)/sqrt(bc2) + eps`` (new tensors)."""
        torch._foreach_mul_(exp_avgs, b1)
        torch._foreach_add_(exp_avgs, grads, alpha=1.0 - b1)
        torch._foreach_mul_(exp_avg_sqs, b2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - b2)
        if max_exp_avg_sqs is not None:
            torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
            v = max_exp_avg_sqs
        else:
            v = exp_avg_sqs
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, f32(math.sqrt(bc2)))
        torch._foreach_add_(denom, eps)
        return denom

    # ------------------------------------------------------------------ LAMB
    @_with_float32
    def lamb(
        self,
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        *,
        step,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        adam_w_mode,
        amsgrad,
        do_bias_correction,
        maximize,
        grad_scale,
        norm_reduce=None,
    ):
        grads = _negated(_scaled(grads, grad_scale), maximize)
        if params[0].device.type == "cpu":
            return self._lamb_cpu(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                max_exp_avg_sqs,
                step=step,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=eps,
                weight_decay=weight_decay,
                adam_w_mode=adam_w_mode,
                amsgrad=amsgrad,
                do_bias_correction=do_bias_correction,
                norm_reduce=norm_reduce,
            )
        bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
        b1, b2, lr32, eps32, wd = f32(beta1), f32(beta2), f32(lr), f32(eps), f32(weight_decay)
        if not adam_w_mode:
            grads = _weight_decayed(grads, params, wd)
        denom = self._adam_moments(
            grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, b1, b2, bc2, eps32
        )
        u = torch._foreach_div(exp_avgs, denom)  # (m/bc1)/denom: bc1 applied below
        torch._foreach_div_(u, bc1)
        del denom
        acc = torch.float64 if params[0].dtype == torch.float64 else torch.float32
        w_norm = torch.stack(torch._foreach_norm(params, 2)).to(acc)
        u_norm = torch.stack(torch._foreach_norm(u, 2)).to(acc)
        if norm_reduce is not None:
            # Note [LAMB norm_reduce hook]: norms of the full tensors from the local shards'
            # sums of squares, reduced across ranks
            sums = torch.stack([w_norm, u_norm]).square_()
            norm_reduce(sums)
            w_norm, u_norm = sums.sqrt_().unbind(0)
        trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        if adam_w_mode and wd != 0:
            torch._foreach_add_(u, params, alpha=wd)
        # p -= (lr * trust) * u, one scalar per tensor
        scale = (trust * lr32).to(params[0].dtype).neg_()
        if params[0].device.type == "cpu":
            torch._foreach_mul_(u, scale.tolist())  # a CPU tensor: no device sync
        else:
            for u_i, s_i in zip(u, scale.unbind(0)):  # stays on the device
                u_i.mul_(s_i)
        torch._foreach_add_(params, u)

    def _lamb_cpu(
        self,
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        max_exp_avg_sqs,
        *,
        step,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        adam_w_mode,
        amsgrad,
        do_bias_correction,
        norm_reduce,
    ):
        """LAMB on the CPU in two cache-blocked phases (Note [cache blocking]).

        Phase 1, block by block: update m, v (vmax), write -u into a scratch buffer and
        accumulate each tensor's sums of squares of p and u. Then the trust ratios (after
        ``norm_reduce``). Phase 2, block by block: ``p -= lr*r*(u [+ wd*p])``. With torch's fused
        kernels, phase 1 is the fused Adam kernel writing into a zeroed scratch block and phase 2
        the fused SGD kernel (``maximize`` turns -u into u, its weight decay is LAMB's decoupled
        decay, its lr is ``lr*r``): about 40 bytes per float32 parameter. The scratch holds one
        partition's u; it is kept between steps (Note [LAMB scratch]).
        """
        bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
        b1, b2, lr32, eps32, wd = f32(beta1), f32(beta2), f32(lr), f32(eps), f32(weight_decay)
        s = math.sqrt(bc2)
        dtype = params[0].dtype
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        sums = torch.zeros(2, len(params), dtype=acc)
        fused = _fused_ok(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)
        if fused:
            # Note [fused CPU kernels]: with a zero "param" and these lr/eps, the fused Adam
            # kernel writes -u = -(m/bc1)/(sqrt(v)/sqrt(bc2) + eps) and updates m, v, vmax
            bc1_k, s_k = 1.0 - b1**step, math.sqrt(1.0 - b2**step)
            lr_k, eps_k = (bc1_k / bc1) * (s / s_k), eps32 * s / s_k
            step_t = torch.tensor(float(step))
        us = self._lamb_scratch(params)
        moments = [exp_avgs, exp_avg_sqs, max_exp_avg_sqs]
        for (p_c, g_c, m_c, v_c, vm_c, u_c), owners in _chunks([params, grads, *moments, us]):
            if not adam_w_mode:
                g_c = _weight_decayed(g_c, p_c, wd)
            if fused:
                torch._foreach_zero_(u_c)
                torch._fused_adam_(
                    u_c,
                    g_c,
                    m_c,
                    v_c,
                    vm_c or [],
                    [step_t] * len(u_c),
                    lr=lr_k,
                    beta1=b1,
                    beta2=b2,
                    weight_decay=0.0,
                    eps=eps_k,
                    amsgrad=amsgrad,
                    maximize=False,
                )
            else:
                denom = self._adam_moments(g_c, m_c, v_c, vm_c, b1, b2, bc2, eps32)
                torch._foreach_mul_(denom, -bc1)  # u = (m/bc1)/denom, stored negated
                torch._foreach_copy_(u_c, torch._foreach_div(m_c, denom))
            index = torch.tensor(owners)
            for row, ts in ((0, p_c), (1, u_c)):
                norms = torch.stack(torch._foreach_norm(ts, 2)).to(acc)
                sums[row].index_add_(0, index, norms.square_())
        if norm_reduce is not None:
            norm_reduce(sums)  # Note [LAMB norm_reduce hook]
        w_norm, u_norm = sums.sqrt().unbind(0)
        trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        coef = (trust * lr32).tolist()  # CPU tensors: no device sync
        decay = wd if adam_w_mode else 0.0
        for (p_c, u_c), owners in _chunks([params, us]):
            for p_i, u_i, i in zip(p_c, u_c, owners):
                if fused:
                    torch._fused_sgd_(
                        [p_i],
                        [u_i],
                        [],
                        weight_decay=decay,
                        momentum=0.0,
                        lr=f32(coef[i]),
                        dampening=0.0,
                        nesterov=False,
                        maximize=True,
                        is_first_step=False,
                    )
                else:
                    if decay:
                        u_i.sub_(p_i, alpha=decay)  # -(u + wd*p)
                    p_i.add_(u_i, alpha=f32(coef[i]))

    def _lamb_scratch(self, params):
        """Note [LAMB scratch]: views, shaped like ``params``, of one flat buffer per dtype that
        the backend keeps and grows to the largest partition LAMB has updated (the price of
        not recomputing u in phase 2; about one extra parameter-sized buffer)."""
        total = sum(p.numel() for p in params)
        key = params[0].dtype
        buf = self._scratch.get(key)
        if buf is None or buf.numel() < total:
            buf = self._scratch[key] = torch.empty(total, dtype=key)
        views, offset = [], 0
        for p in params:
            views.append(buf[offset : offset + p.numel()].view(p.shape))
            offset += p.numel()
        return views

    # ------------------------------------------------------------------ RMSprop
    @_blocked
    @_with_float32
    def rmsprop(
        self,
        params,
        grads,
        square_avgs,
        grad_avgs,
        momentum_buffers,
        *,
        lr,
        alpha,
        eps,
        weight_decay,
        momentum,
        centered,
        maximize,
        grad_scale,
    ):
        grads = _negated(_scaled(grads, grad_scale), maximize)
        lr, alpha, eps, wd, momentum = (
            f32(lr),
            f32(alpha),
            f32(eps),
            f32(weight_decay),
            f32(momentum),
        )
        grads = _weight_decayed(grads, params, wd)
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, 1.0 - alpha)
        if centered:
            torch._foreach_mul_(grad_avgs, alpha)
            torch._foreach_add_(grad_avgs, grads, alpha=1.0 - alpha)
            denom = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, -1.0)
            torch._foreach_add_(denom, eps)
        else:
            denom = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(denom)  # eps INSIDE the sqrt (OneFlow)
        if momentum_buffers is None:
            torch._foreach_addcdiv_(params, grads, denom, -lr)
        else:
            torch._foreach_mul_(momentum_buffers, momentum)
            torch._foreach_addcdiv_(momentum_buffers, grads, denom, lr)
            torch._foreach_sub_(params, momentum_buffers)

    # ------------------------------------------------------------------ Adagrad
    @_with_float32
    def adagrad(
        self,
        params,
        grads,
        state_sums,
        *,
        step,
        lr,
        lr_decay,
        weight_decay,
        eps,
        maximize,
        grad_scale,
    ):
        grads = _negated(_scaled(grads, grad_scale), maximize)
        lr, lr_decay, wd, eps = f32(lr), f32(lr_decay), f32(weight_decay), f32(eps)
        if _HAS_FUSED_ADAGRAD and _fused_ok(params, grads, state_sums):
            steps = [torch.tensor(float(step))] * len(params)
            torch._fused_adagrad_(
                params,
                grads,
                state_sums,
                steps,
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=wd,
                eps=eps,
                maximize=False,
            )
            return
        clr = f32(lr / (1.0 + (step - 1) * lr_decay))
        grads = _weight_decayed(grads, params, wd)
        torch._foreach_addcmul_(state_sums, grads, grads, 1.0)
        std = torch._foreach_sqrt(state_sums)
        torch._foreach_add_(std, eps)  # eps OUTSIDE the sqrt (OneFlow)
        torch._foreach_addcdiv_(params, grads, std, -clr)

    # ------------------------------------------------------------------ Adadelta
    @_blocked
    @_with_float32
    def adadelta(
        self,
        params,
        grads,
        square_avgs,
        acc_deltas,
        *,
        lr,
        rho,
        eps,
        weight_decay,
        maximize,
        grad_scale,
    ):
        grads = _negated(_scaled(grads, grad_scale), maximize)
        lr, rho, eps, wd = f32(lr), f32(rho), f32(eps), f32(weight_decay)
        grads = _weight_decayed(grads, params, wd)
        torch._foreach_mul_(square_avgs, rho)
        torch._foreach_addcmul_(square_avgs, grads, grads, 1.0 - rho)
        std = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(std)
        delta = torch._foreach_add(acc_deltas, eps)
        torch._foreach_sqrt_(delta)
        torch._foreach_div_(delta, std)
        torch._foreach_mul_(delta, grads)
        torch._foreach_mul_(acc_deltas, rho)
        torch._foreach_addcmul_(acc_deltas, delta, delta, 1.0 - rho)
        torch._foreach_add_(params, delta, alpha=-lr)

    # ------------------------------------------------------------------ clip_grad
    def grad_norm(self, grads: list[Tensor], norm_type: float) -> Tensor:
        acc = torch.float64 if grads[0].dtype == torch.float64 else torch.float32
        if math.isinf(norm_type) or norm_type == 0:
            # per-tensor max|g| / min|g| / nonzero count, then max / min / count of nonzero
            per = torch.stack([torch.linalg.vector_norm(g, norm_type, dtype=acc) for g in grads])
            if norm_type == 0:
                return (per != 0).sum().to(acc)
            return per.max() if norm_type > 0 else per.min()
        if norm_type in (1.0, 2.0):
            per = torch._foreach_norm(grads, norm_type, dtype=acc)
        else:
            per = [torch.linalg.vector_norm(g, norm_type, dtype=acc) for g in grads]
        return torch.linalg.vector_norm(torch.stack(per), norm_type)

    def scale_(self, tensors: list[Tensor], coef: Tensor) -> None:
        torch._foreach_mul_(tensors, coef)
