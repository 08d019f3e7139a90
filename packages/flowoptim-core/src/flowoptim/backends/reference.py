"""The reference backend: pure torch, correct first, and as fast as torch.optim on the CPU.

Note [fused CPU kernels]
------------------------
torch (>= 2.4) has fused CPU kernels for Adam, AdamW, SGD and Adagrad (``torch._fused_adam_`` and
friends). Their arithmetic is the spec's, up to rounding: they negate ``g`` for ``maximize`` before
the weight decay, skip a weight decay of 0 (so an inf/NaN parameter adds nothing, spec §1.6), never
write the gradient (we never pass them ``grad_scale``), and compute their scalar coefficients
(``1 - beta``, ``1 - dampening``, ``lr/bc1`` ...) in double, then in the parameter's dtype: float32
values for float32 parameters and float64 values for float64 ones, which is spec §1.10. We close
the remaining gaps from outside:

* SGD: torch copies the gradient into the momentum buffer on the first step; we always pass
  ``is_first_step=False`` with the zero-initialised buffer, which gives OneFlow's
  ``(1 - dampening) * g'`` first step.
* Adam/AdamW (and LAMB's phase 1): the kernel computes ``1 - beta`` and ``1 - beta**t`` from the
  same beta, but OneFlow takes ``1 - beta`` from float32(beta) and the bias correction from the
  double value (Note [float32 hyperparameters]; spec §8's 0.8999993). We pass ``beta_k =
  float32(beta)``. With bias correction on, we fold the mismatch into lr and eps: with kernel
  corrections ``bc1', s' = sqrt(bc2')`` and wanted ``bc1, s``, the kernel's update
  ``lr'/bc1' * m / (sqrt(v)/s' + eps')`` equals ``lr/bc1 * m / (sqrt(v)/s + eps)`` for ``eps' =
  eps*s/s'`` and ``lr' = lr * (bc1'/bc1) * (s/s')``. Both factors only undo the float32
  rounding of beta, so they are close to 1 (1 - 1.3e-5 for beta 0.999 at t = 1; within about
  [0.5, 2] for a beta a float32 ulp below 1) and the kernel's intermediates have the spec's
  magnitudes (an overflow can differ only within that factor of the float32 maximum). AdamW's
  decay ``p *= 1 - lr'*wd'`` gets ``wd' = lr*wd/lr'``. With bias correction off we do *not*
  rescale (``lr' = lr/s'`` would multiply ``m`` by up to ``1/sqrt(1 - beta2)`` before the
  division and overflow where the spec does not: lr 1.9, g 1e38 gave NaN): we pass the step as
  ``inf``, for which the kernel's own corrections are ``1 - beta**inf == 1`` exactly, and
  the kernel then computes the spec's expression as written (checked once, lazily, by
  :func:`_kernel_takes_inf_step`; without it, the foreach path).
* Adagrad: we pass the decayed lr ``clr`` (spec §1.10's rounding) with ``lr_decay=0`` and step 1,
  so the kernel neither re-derives it nor reads a float32 step count (inexact above 2**24).
* Every gradient given to a kernel or to the foreach path is contiguous (:func:`_dense`: a
  non-contiguous one is copied): the kernels index all operands with the param's strides, and
  the fused clip mode (whose scaled copies are contiguous) must take the same path, with the same
  operands, as an in-place clip of the user's non-contiguous gradient (Note [grad_scale]).

The kernels run for float32/float64 CPU tensors (fp16/bf16 are upcast first, Note [low precision
in the reference backend]), float64 included: with float64 coefficients the lr/eps rescaling
above costs about one float64 ulp (the fused Adam update measured within 8.4e-16 relative of the
spec's float64 expression, the foreach one within 6.7e-16), far inside spec §1.10's 1e-12.
Other devices use the foreach path below, which is also the specification-shaped code for
RMSprop, Adadelta and LAMB's norms.

Note [degenerate hyperparameters in the reference backend]
----------------------------------------------------------
Base Note [degenerate hyperparameters]. The fused kernels cannot express three valid inputs; these
are detected on the host from the Python scalars (no tensor is read, no device sync) and run the
foreach path, which computes the spec's formula literally:

* Adam/AdamW/LAMB with ``f32(beta1) == 1`` or ``f32(beta2) == 1`` (``beta = 0.99999999``): the
  kernel's own bias correction ``1 - beta_k**t`` is then 0 (a ZeroDivisionError in the rescaling
  above, or 0/0 = NaN in the kernel), whereas the spec's comes from the double value and the
  moment simply keeps its old value (``1 - beta == 0``).
* SGD given momentum buffers (the Python momentum is nonzero) whose ``f32(momentum) == 0``
  (``momentum = 1e-46``): torch's fused SGD refuses buffers with momentum 0; the spec keeps the
  buffer ``0*buf + (1 - dampening)*g'``.
* Adam/AdamW/LAMB without bias correction when the kernel does not take the ``inf`` step.

Everything else (including ``alpha`` 0 or 1 for RMSprop, ``rho`` 0 or 1, ``lr`` 0) needs no
special case. Centered RMSprop computes ``a*a`` as its own op before ``r - a*a`` (spec §2: no
fused multiply-add; ``addcmul`` would keep the unrounded product, so that alpha 0 gave a rounding
residual instead of 0).

Note [capturable in the reference backend]
------------------------------------------
Base Note [device scalars]. A tensor ``step`` or ``lr`` (a capturable group) takes the foreach
path with the step- and lr-dependent scalars as 0-d tensors in the partition's dtype (the
``Tensor`` overloads of ``_foreach_mul_``/``_foreach_div_``): nothing is read on the host.
torch's fused CPU kernels are not used there (their Adam needs host floats for the lr and eps
rescaling of Note [fused CPU kernels]) and LAMB takes the device path (no ``tolist`` of the
trust ratios), so a capturable group runs other kernels than a plain one and may differ from it
by rounding (``p - lr*d`` as a product then a difference instead of one fused multiply-add).

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
fp16/bf16 partitions are updated with float32 arithmetic (spec §7): the gradients are scaled
(``grad_scale``, rounded to their dtype, Note [grad_scale]), then params, grads and state are
upcast to float32 copies, updated (fused kernels included), and the params and state copied back
(rounded once per step to their dtype, as a fused GPU kernel stores them).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .base import (
    Backend,
    adagrad_lr,
    bias_corrections,
    compute_dtype,
    derived,
    device_adagrad_lr,
    device_bias_corrections,
    device_derived,
    device_f32,
    f32,
)

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


@functools.cache
def _kernel_takes_inf_step() -> bool:
    """Whether torch's fused Adam kernel, given the step ``inf``, uses bias corrections of exactly
    1 (Note [fused CPU kernels]); probed once on one float64 element."""
    if not hasattr(torch, "_fused_adam_"):
        return False
    p, g = torch.zeros(1, dtype=torch.float64), torch.full((1,), 2.0, dtype=torch.float64)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    try:
        torch._fused_adam_(
            [p], [g], [m], [v], [], [torch.tensor(math.inf)],
            lr=1.0, beta1=0.5, beta2=0.75, weight_decay=0.0, eps=0.0, amsgrad=False,
            maximize=False,
        )  # fmt: skip
    except RuntimeError:
        return False
    return p.item() == -0.5 * 2.0 / math.sqrt(0.25 * 4.0)  # m/sqrt(v), uncorrected: -1


def _scale_one(t: Tensor, coef: Tensor) -> Tensor:
    """``t * coef``: ``t`` upcast to its compute dtype, times ``coef`` in that dtype, rounded to
    ``t``'s dtype (Note [grad_scale]); a new tensor. Never a type promotion of two 0-d tensors."""
    compute = compute_dtype(t.dtype)
    c = coef.to(compute)
    if t.dtype == compute:
        return torch.mul(t, c)  # same dtype, 0-d or not: one correctly rounded product
    return torch.mul(t.to(compute), c).to(t.dtype)


def _scaled(grads: list[Tensor], grad_scale: Tensor | None) -> list[Tensor]:
    """``g * grad_scale`` rounded to the grad dtype, as new tensors (Note [grad_scale]); exactly
    the values :meth:`ReferenceBackend.scale_` writes in place."""
    if grad_scale is None or not grads:
        return grads
    compute = compute_dtype(grads[0].dtype)
    if all(g.dtype == compute for g in grads):
        return torch._foreach_mul(grads, grad_scale.to(compute))
    return [_scale_one(g, grad_scale) for g in grads]


def _dense(grads: list[Tensor]) -> list[Tensor]:
    """The grads, a non-contiguous one replaced by a contiguous copy (Note [fused CPU kernels])."""
    if all(map(Tensor.is_contiguous, grads)):
        return grads
    return [g if g.is_contiguous() else g.contiguous() for g in grads]


def _negated(grads: list[Tensor], maximize: bool) -> list[Tensor]:
    """``-g`` as new tensors when maximizing (Note [maximize]; the user's grads are never
    modified)."""
    return torch._foreach_neg(grads) if maximize else grads


def _upcast(tensors: list[Tensor] | None) -> list[Tensor] | None:
    if tensors is None:
        return None
    return [t.float() for t in tensors]


def _with_float32(fn):
    """Run a functional in float32 for fp16/bf16 partitions (Note [low precision in the reference
    backend]); positional lists are params, grads, then state lists."""

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


def _on_device(*values) -> bool:
    """Whether a functional got a tensor step or lr (Note [capturable in the reference
    backend])."""
    return any(isinstance(v, Tensor) for v in values)


def _as(x: Tensor | float, like: Tensor) -> Tensor | float:
    """A 0-d tensor scalar in ``like``'s dtype and device (its value is already rounded for
    that dtype); a float unchanged."""
    return x.to(device=like.device, dtype=like.dtype) if isinstance(x, Tensor) else x


def _sub_scaled_(xs: list[Tensor], ys: list[Tensor], a: Tensor | float) -> None:
    """``x -= a * y``: ``alpha=-a`` for a float, else the product then the difference."""
    if isinstance(a, Tensor):
        torch._foreach_sub_(xs, torch._foreach_mul(ys, _as(a, xs[0])))
    else:
        torch._foreach_add_(xs, ys, alpha=-a)


def _weight_decayed(grads: list[Tensor], params: list[Tensor], wd: float) -> list[Tensor]:
    """``g + wd * p`` as new tensors (never written into the user's grads); ``wd == 0`` adds
    nothing, even to an inf/NaN ``p`` (spec §1.6)."""
    if wd == 0:
        return grads
    return torch._foreach_add(grads, params, alpha=wd)


def _adam_kernel_scalars(b1, b2, bc1, bc2, step, lr, eps, do_bias_correction):
    """``(step, lr', eps')`` making torch's fused Adam kernel compute the spec's update with the
    float32 betas ``b1, b2`` (Note [fused CPU kernels]), or None where it cannot (Note [degenerate
    hyperparameters in the reference backend]). Host arithmetic on Python floats only."""
    if b1 == 1.0 or b2 == 1.0:
        return None
    if not do_bias_correction:
        return (math.inf, lr, eps) if _kernel_takes_inf_step() else None
    st = f32(step)  # the kernel reads its step tensor as float32
    bc1_k = 1.0 - b1**st
    s_k = math.sqrt(1.0 - b2**st)
    s = math.sqrt(bc2)
    return st, lr * (bc1_k / bc1) * (s / s_k), eps * s / s_k


def _device_adam_scalars(beta1, beta2, step, lr, do_bias_correction, params):
    """``(bc1, bc2, f32(lr))`` as float64 0-d tensors on the params' device (Note [capturable in
    the reference backend]); a host step or lr is filled in."""
    device = params[0].device
    if isinstance(step, Tensor):
        bc1, bc2 = device_bias_corrections(beta1, beta2, step.to(device), do_bias_correction)
    else:
        bc1, bc2 = (
            torch.full((), v, dtype=torch.float64, device=device)
            for v in bias_corrections(beta1, beta2, step, do_bias_correction)
        )
    return bc1, bc2, device_f32(lr, device)


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
        is64 = params[0].dtype == torch.float64
        dev = _on_device(lr)  # Note [capturable in the reference backend]
        lr = device_f32(lr, params[0].device) if dev else f32(lr)
        momentum, dampening, wd = f32(momentum), f32(dampening), f32(weight_decay)
        grads = _dense(_scaled(grads, grad_scale))
        # Note [degenerate hyperparameters in the reference backend]: buffers with momentum 0
        degenerate = momentum_buffers is not None and momentum == 0.0
        if not dev and not degenerate and _fused_ok(params, grads, momentum_buffers):
            torch._fused_sgd_(
                params,
                grads,
                momentum_buffers or [],
                weight_decay=wd,
                momentum=momentum,
                lr=lr,
                dampening=dampening,  # the kernel forms 1 - dampening: spec §1.10
                nesterov=nesterov,
                maximize=maximize,
                is_first_step=False,  # Note [fused CPU kernels]: zero buffer, OneFlow's 1st step
            )
            return
        grads = _weight_decayed(_negated(grads, maximize), params, wd)
        if momentum_buffers is None:
            _sub_scaled_(params, grads, lr)
            return
        torch._foreach_mul_(momentum_buffers, momentum)
        torch._foreach_add_(momentum_buffers, grads, alpha=derived(1.0 - dampening, is64))
        if nesterov:
            d = torch._foreach_add(grads, momentum_buffers, alpha=momentum)
        else:
            d = momentum_buffers
        _sub_scaled_(params, d, lr)

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
        is64 = params[0].dtype == torch.float64
        grads = _dense(_scaled(grads, grad_scale))
        dev = _on_device(step, lr)  # Note [capturable in the reference backend]
        if dev:
            bc1, bc2, lr32 = _device_adam_scalars(
                beta1, beta2, step, lr, do_bias_correction, params
            )
        else:
            bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
            lr32 = f32(lr)
        b1, b2, eps32, wd = f32(beta1), f32(beta2), f32(eps), f32(weight_decay)
        kernel = None
        if not dev and _fused_ok(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
            kernel = _adam_kernel_scalars(b1, b2, bc1, bc2, step, lr32, eps32, do_bias_correction)
        if kernel is not None:
            st, lr_k, eps_k = kernel
            steps = [torch.tensor(st)] * len(params)
            common = dict(beta1=b1, beta2=b2, eps=eps_k, amsgrad=amsgrad, maximize=maximize)
            if decoupled_weight_decay:
                # the kernel decays by 1 - lr_k*wd_k, computed in double: lr*wd (spec §1.10)
                wd_k = lr32 * wd / lr_k if lr_k != 0 else 0.0
                fused, wd_arg = torch._fused_adamw_, wd_k
            else:
                fused, wd_arg = torch._fused_adam_, wd
            fused(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                max_exp_avg_sqs or [],
                steps,
                lr=lr_k,
                weight_decay=wd_arg,
                **common,
            )
            return
        grads = _negated(grads, maximize)
        if decoupled_weight_decay:
            # p - lr*wd*p with p the pre-update value, then the Adam step
            if wd != 0:
                if dev:
                    decay = 1.0 - device_derived(lr32 * wd, is64)
                    torch._foreach_mul_(params, _as(decay, params[0]))
                else:
                    torch._foreach_mul_(params, 1.0 - derived(lr32 * wd, is64))
        else:
            grads = _weight_decayed(grads, params, wd)
        denom = self._adam_moments(
            grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, b1, b2, bc2, eps32, is64
        )
        # (lr/bc1) * m / denom, left to right (an overflowing v gives 0, not inf/inf)
        if dev:
            step_size = _as(device_derived(torch.div(lr32, bc1), is64), params[0])
        else:
            step_size = derived(lr32 / bc1, is64)
        upd = torch._foreach_mul(exp_avgs, step_size)
        torch._foreach_div_(upd, denom)
        torch._foreach_sub_(params, upd)

    @staticmethod
    def _adam_moments(grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, b1, b2, bc2, eps, is64):
        """Update m, v (and vmax); return ``sqrt(v_hat)/sqrt(bc2) + eps`` (new tensors)."""
        torch._foreach_mul_(exp_avgs, b1)
        torch._foreach_add_(exp_avgs, grads, alpha=derived(1.0 - b1, is64))
        torch._foreach_mul_(exp_avg_sqs, b2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, derived(1.0 - b2, is64))
        if max_exp_avg_sqs is not None:
            torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
            v = max_exp_avg_sqs
        else:
            v = exp_avg_sqs
        denom = torch._foreach_sqrt(v)
        if isinstance(bc2, Tensor):  # Note [capturable in the reference backend]
            torch._foreach_div_(denom, _as(device_derived(torch.sqrt(bc2), is64), denom[0]))
        else:
            torch._foreach_div_(denom, derived(math.sqrt(bc2), is64))
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
        grads = _dense(_scaled(grads, grad_scale))
        dev = _on_device(step, lr)  # Note [capturable in the reference backend]
        if params[0].device.type == "cpu" and not dev:
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
                maximize=maximize,
                norm_reduce=norm_reduce,
            )
        is64 = params[0].dtype == torch.float64
        if dev:
            bc1, bc2, lr32 = _device_adam_scalars(
                beta1, beta2, step, lr, do_bias_correction, params
            )
            bc1 = _as(bc1, params[0])
        else:
            bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
            lr32 = f32(lr)
        b1, b2, eps32, wd = f32(beta1), f32(beta2), f32(eps), f32(weight_decay)
        grads = _negated(grads, maximize)
        if not adam_w_mode:
            grads = _weight_decayed(grads, params, wd)
        denom = self._adam_moments(
            grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, b1, b2, bc2, eps32, is64
        )
        u = torch._foreach_div(exp_avgs, bc1)  # (m/bc1)/denom
        torch._foreach_div_(u, denom)
        del denom
        acc = torch.float64 if is64 else torch.float32
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
        # p -= (lr * trust) * u, one scalar per tensor (float64 for float64: spec §1.10)
        scale = (trust * _as(lr32, trust)).to(params[0].dtype).neg_()
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
        maximize,
        norm_reduce,
    ):
        """LAMB on the CPU in two cache-blocked phases (Note [cache blocking]).

        Phase 1, block by block: update m, v (vmax), write -u into a scratch buffer and
        accumulate each tensor's sums of squares of p and u. Then the trust ratios (after
        ``norm_reduce``). Phase 2, block by block: ``p -= lr*r*(u [+ wd*p])``. With torch's fused
        kernels, phase 1 is the fused Adam kernel writing into a zeroed scratch block (its
        ``maximize`` is the user's, unless the L2 term was added outside, after negating g) and
        phase 2 the fused SGD kernel (its ``maximize`` turns -u into u, its weight decay is
        LAMB's decoupled decay, its lr is ``lr*r``): about 40 bytes per float32 parameter. The
        scratch holds one partition's u; it is kept between steps (Note [LAMB scratch]).
        """
        dtype = params[0].dtype
        is64 = dtype == torch.float64
        bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
        b1, b2, lr32, eps32, wd = f32(beta1), f32(beta2), f32(lr), f32(eps), f32(weight_decay)
        acc = torch.float64 if is64 else torch.float32
        sums = torch.zeros(2, len(params), dtype=acc)
        kernel = None
        if _fused_ok(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
            # Note [fused CPU kernels]: with a zero "param" and lr' for lr = 1, the fused Adam
            # kernel writes -u = -(m/bc1)/(sqrt(v)/sqrt(bc2) + eps) and updates m, v, vmax
            kernel = _adam_kernel_scalars(b1, b2, bc1, bc2, step, 1.0, eps32, do_bias_correction)
        if kernel is not None:
            st, lr_k, eps_k = kernel
            step_t = torch.tensor(st)
        l2 = not adam_w_mode and wd != 0
        us = self._lamb_scratch(params)
        moments = [exp_avgs, exp_avg_sqs, max_exp_avg_sqs]
        for (p_c, g_c, m_c, v_c, vm_c, u_c), owners in _chunks([params, grads, *moments, us]):
            kernel_maximize = maximize
            if l2:  # g' = (maximize ? -g : g) + wd*p, formed outside the kernel
                g_c = _weight_decayed(_negated(g_c, maximize), p_c, wd)
                kernel_maximize = False
            if kernel is not None:
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
                    maximize=kernel_maximize,
                )
            else:
                g_c = _negated(g_c, kernel_maximize)
                denom = self._adam_moments(g_c, m_c, v_c, vm_c, b1, b2, bc2, eps32, is64)
                torch._foreach_copy_(u_c, m_c)
                torch._foreach_div_(u_c, -bc1)  # -(m/bc1)/denom: u stored negated
                torch._foreach_div_(u_c, denom)
            index = torch.tensor(owners)
            for row, ts in ((0, p_c), (1, u_c)):
                norms = torch.stack(torch._foreach_norm(ts, 2)).to(acc)
                sums[row].index_add_(0, index, norms.square_())
        if norm_reduce is not None:
            norm_reduce(sums)  # Note [LAMB norm_reduce hook]
        w_norm, u_norm = sums.sqrt().unbind(0)
        trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
        # lr*trust: a float32 product for float32, float64 for float64 (spec §1.10)
        coef = (trust * lr32).tolist()  # CPU tensors: no device sync
        decay = wd if adam_w_mode else 0.0
        fused_sgd = _fused_ok(params)
        for (p_c, u_c), owners in _chunks([params, us]):
            for p_i, u_i, i in zip(p_c, u_c, owners):
                if fused_sgd:
                    torch._fused_sgd_(
                        [p_i],
                        [u_i],
                        [],
                        weight_decay=decay,
                        momentum=0.0,
                        lr=coef[i],
                        dampening=0.0,
                        nesterov=False,
                        maximize=True,
                        is_first_step=False,
                    )
                else:
                    if decay:
                        u_i.sub_(p_i, alpha=decay)  # -(u + wd*p)
                    p_i.add_(u_i, alpha=coef[i])

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
        is64 = params[0].dtype == torch.float64
        grads = _dense(_scaled(grads, grad_scale))
        lr, alpha, eps, wd, momentum = (
            _as(device_f32(lr, params[0].device), params[0]) if _on_device(lr) else f32(lr),
            f32(alpha),
            f32(eps),
            f32(weight_decay),
            f32(momentum),
        )
        one_minus_alpha = derived(1.0 - alpha, is64)  # alpha in [0, 1]: 1 keeps r (and a) as is
        grads = _weight_decayed(_negated(grads, maximize), params, wd)
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, one_minus_alpha)
        if centered:
            torch._foreach_mul_(grad_avgs, alpha)
            torch._foreach_add_(grad_avgs, grads, alpha=one_minus_alpha)
            # r - a*a with a*a rounded first (spec §2): addcmul(r, a, a, -1) would fuse it
            denom = torch._foreach_mul(grad_avgs, grad_avgs)
            denom = torch._foreach_sub(square_avgs, denom)
            torch._foreach_add_(denom, eps)
        else:
            denom = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(denom)  # eps INSIDE the sqrt (OneFlow)
        # lr * g' / sqrt(den + eps), left to right: (lr*g') / denom, then subtracted (or added
        # to the buffer) by addcdiv with value -1 (+1), exact
        num = torch._foreach_mul(grads, lr)
        if momentum_buffers is None:
            torch._foreach_addcdiv_(params, num, denom, -1.0)
        else:
            torch._foreach_mul_(momentum_buffers, momentum)
            torch._foreach_addcdiv_(momentum_buffers, num, denom, 1.0)
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
        is64 = params[0].dtype == torch.float64
        grads = _dense(_scaled(grads, grad_scale))
        wd, eps = f32(weight_decay), f32(eps)
        dev = _on_device(step, lr)  # Note [capturable in the reference backend]
        if dev:
            clr = _as(device_adagrad_lr(lr, lr_decay, step, is64, params[0].device), params[0])
        else:
            clr = adagrad_lr(lr, lr_decay, step, is64)
        if not dev and _HAS_FUSED_ADAGRAD and _fused_ok(params, grads, state_sums):
            # Note [fused CPU kernels]: our clr, so the kernel's lr/(1 + (1-1)*0) is clr
            steps = [torch.tensor(1.0)] * len(params)
            torch._fused_adagrad_(
                params,
                grads,
                state_sums,
                steps,
                lr=clr,
                lr_decay=0.0,
                weight_decay=wd,
                eps=eps,
                maximize=maximize,
            )
            return
        grads = _weight_decayed(_negated(grads, maximize), params, wd)
        torch._foreach_addcmul_(state_sums, grads, grads, 1.0)
        std = torch._foreach_sqrt(state_sums)
        torch._foreach_add_(std, eps)  # eps OUTSIDE the sqrt (OneFlow)
        num = torch._foreach_mul(grads, clr)  # clr * g' / std, left to right
        torch._foreach_addcdiv_(params, num, std, -1.0)

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
        is64 = params[0].dtype == torch.float64
        grads = _dense(_scaled(grads, grad_scale))
        lr = device_f32(lr, params[0].device) if _on_device(lr) else f32(lr)
        rho, eps, wd = f32(rho), f32(eps), f32(weight_decay)
        one_minus_rho = derived(1.0 - rho, is64)
        grads = _weight_decayed(_negated(grads, maximize), params, wd)
        torch._foreach_mul_(square_avgs, rho)
        torch._foreach_addcmul_(square_avgs, grads, grads, one_minus_rho)
        std = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(std)
        delta = torch._foreach_add(acc_deltas, eps)
        torch._foreach_sqrt_(delta)
        torch._foreach_div_(delta, std)
        torch._foreach_mul_(delta, grads)
        torch._foreach_mul_(acc_deltas, rho)
        torch._foreach_addcmul_(acc_deltas, delta, delta, one_minus_rho)
        _sub_scaled_(params, delta, lr)

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
        """``t *= coef`` in place, exactly the values ``grad_scale`` gives (:func:`_scaled`)."""
        same = [t for t in tensors if t.dtype == compute_dtype(t.dtype)]
        for dtype in {t.dtype for t in same}:
            torch._foreach_mul_([t for t in same if t.dtype == dtype], coef.to(dtype))
        for t in tensors:
            if t.dtype != compute_dtype(t.dtype):
                t.copy_(_scale_one(t, coef))
