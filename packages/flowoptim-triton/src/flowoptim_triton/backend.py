"""The ``triton`` backend: :class:`TritonBackend`, a ``flowoptim.backends.Backend``.

Each functional turns the Python hyperparameters into the kernel's ``scal`` tensor (Note [kernel
scalars] in :mod:`flowoptim_triton.kernels`): ``f32`` hyperparameters, float32 bias corrections,
and derived quantities computed in double and rounded by ``derived`` (float32 values for
float32/fp16/bf16 partitions, doubles for float64 ones: Notes [float32 hyperparameters] and
[float64 derived quantities] in ``flowoptim.backends.base``, spec §1.10). ``maximize`` is the
``MAXIMIZE`` constexpr (Note [maximize]); degenerate values (``f32(beta) == 1``, ``f32(momentum)
== 0``) need no special case (Note [degenerate hyperparameters]). Each functional issues one
multi-tensor launch per pass for the whole partition (Note [multi-tensor addressing]).

Note [LAMB passes]
------------------
LAMB needs per-tensor norms of ``p`` and of the Adam direction ``u`` before it can update ``p``.

* Pass 1 (one launch, a program per chunk) reads p, g, m, v (and vmax), computes the new moments
  and ``u`` in the compute dtype (float32; float64 for float64), writes one partial of
  ``||p||^2`` and of ``||u||^2`` per chunk and, for float32/float64 state, stores m, v (and vmax).
* A tiny launch (one program per tensor, O(chunks) bytes) sums each tensor's partials in chunk
  order and stores ``lr * trust`` per tensor, in the compute dtype (float64 end to end for
  float64, spec §1.10). With a ``norm_reduce`` hook it stores the ``(2, n)`` sums instead, the
  hook reduces them across ranks, and a second tiny launch forms ``lr * trust``.
* Pass 2 (one launch) reads p, m and v (vmax with amsgrad), recomputes ``u`` and writes p.

No full-size temporary. fp32 bytes per parameter: pass 1 reads 16 and writes 8, pass 2 reads 12
and writes 4: **40** (amsgrad: 48). The per-tensor combination is its own launch rather than being
redone by every program of pass 2, because a tensor of k chunks would then read its k partials k
times (quadratic in the tensor's size).

fp16/bf16 state is different: if pass 1 stored the rounded moments, pass 2 would rebuild ``u``
from rounded ``v`` (fp16's range makes ``0.001 * g**2`` subnormal or zero for small gradients:
errors of tens of percent were measured), unlike the norms and unlike the reference backend,
which uses the unrounded float32 moments within a step. So for low precision pass 1 writes no
state, and pass 2 reads g and the *old* state again, recomputes the moments bit-identically to
pass 1 (the same ``_lamb_tile`` code), stores them and applies the update: 2 + 2 + 2 + 2 read in
pass 1, 4 * 2 read + 3 * 2 written in pass 2, 22 bytes per fp16/bf16 parameter.

Note [fused clip]
-----------------
For a group whose gradients form one partition, ``Optimizer.clip_grad()`` calls
:meth:`TritonBackend.clip_coef`: one deterministic multi-tensor norm launch whose last program
reduces the chunk partials and writes the total and the coefficient (Note [last-program finish]
in :mod:`flowoptim_triton.kernels`, with the bits of Note [clip coefficient] in
``flowoptim.backends.base``); no torch op but the total's allocation, no host sync. (Several
partitions: one :meth:`TritonBackend.grad_norm` launch each, combined with torch ops.) By
default it then calls :meth:`TritonBackend.scale_` (one multi-tensor launch; the coefficient is
read through a device pointer): 2 launches per clip, and clip + Adam moves 4 + 8 + 28 = 40 bytes
per fp32 parameter. With ``clip_grad(fused=True)`` the optimizer passes the coefficient as
``grad_scale`` instead and every update kernel multiplies ``g`` by it as it loads it (in the
compute dtype, rounded to the grad dtype, before maximize and weight decay), leaving the grads
unscaled: 1 launch per clip, 4 + 28 = 32 bytes per parameter. (``kernels/bench/host_step.py
--ops`` counts 2 and 1 launches and one torch op, ``empty``, per clip for 150 and 600 tensors.)
``grad_scale`` arrives in the compute dtype (float64 for float64 partitions, Note
[grad_scale]). The product is the one :meth:`TritonBackend.scale_` stores, and with fp fusion off
(Note [native arithmetic]) it is rounded before any add natively too, so both modes give the same
bits (tested for 0-d params, non-contiguous grads, fp32/fp16/bf16/fp64 and every algorithm).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence

import torch
from torch import Tensor

from flowoptim.backends.base import (
    CLIP_EPS,
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

from . import launch as L
from .autotune_configs import RBLOCK

__all__ = ["TritonBackend"]

#: tensor types whose checks are those of their dtype and device (check_tensors)
_PLAIN_TYPES = frozenset({Tensor, torch.nn.Parameter})
_DTYPE = operator.attrgetter("dtype")
_DEVICE = operator.attrgetter("device")

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _lr(lr: float | Tensor, params: Sequence[Tensor]) -> float | Tensor:
    """``f32(lr)``; a tensor lr stays on the device (Note [device scalars])."""
    return device_f32(lr, params[0].device) if isinstance(lr, Tensor) else f32(lr)


def _is64(params: Sequence[Tensor]) -> bool:
    """Whether derived quantities stay float64 (Note [float64 derived quantities])."""
    return bool(params) and params[0].dtype == torch.float64


class TritonBackend(Backend):
    """Multi-tensor Triton kernels for every flowoptim update (see docs/design/triton-backend.md).

    ``chunk``: elements per program (default: 65536 on CUDA, 2048 under the interpreter);
    ``configs``: the elementwise launch configs to tune over (default: ``autotune_configs``).
    """

    name = "triton"
    #: Note [AMP] in flowoptim.optimizer: device scalars with the host values' bits
    amp_scaling = True
    #: Note [AMP]: every functional takes ``found_inf`` and its kernels then store nothing
    amp_found_inf = True

    def __init__(self, chunk: int | None = None, configs: Sequence | None = None):
        self.engine = L.Engine(chunk=chunk, configs=configs)

    # ------------------------------------------------------------------ availability
    def is_available(self) -> bool:
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return L.interpreted() or torch.cuda.is_available()

    def check_tensors(self, params: Sequence[Tensor]) -> None:
        if (
            len(params) > 1
            and _PLAIN_TYPES.issuperset(map(type, params))
            and len(set(map(_DTYPE, params))) == 1
            and len(set(map(_DEVICE, params))) == 1
        ):
            # plain tensors of one dtype and device: the first answers for all (two C-level
            # maps instead of a loop over every tensor: Note [partition check])
            params = params[:1]
        interp = L.interpreted()
        device = None
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"param {i} is a {type(p).__name__}, not a tensor")
            if p.dtype not in SUPPORTED_DTYPES:
                raise TypeError(
                    f"param {i} has dtype {p.dtype}; the triton backend supports float32, "
                    "float16, bfloat16 and float64"
                )
            # is_cpu / is_cuda rather than p.device.type: the same test at a fifth of the cost
            # (device.type builds a string; this loop runs over every param at every step)
            if interp:
                if not p.is_cpu:
                    raise ValueError(
                        f"param {i} is on {p.device}; under TRITON_INTERPRET=1 the triton "
                        "backend runs CPU tensors only"
                    )
            elif not p.is_cuda:
                raise ValueError(
                    f"param {i} is on {p.device}; the triton backend needs CUDA tensors "
                    "(CPU tensors only with TRITON_INTERPRET=1 set before triton kernels are "
                    "loaded); use backend='reference' for CPU tensors"
                )
            if device is None:
                device = p.device
            elif p.device != device:
                raise ValueError(
                    f"param {i} is on {p.device} but param 0 is on {device}; the triton "
                    "backend updates one device per call"
                )

    # ------------------------------------------------------------------ helpers
    def _scale_arg(self, grad_scale: Tensor | None, plan_or_device) -> tuple[Tensor | None, bool]:
        if grad_scale is None:
            return None, False
        device = plan_or_device
        if not isinstance(grad_scale, Tensor) or grad_scale.numel() != 1:
            raise TypeError("grad_scale must be None or a 0-d tensor (Note [grad_scale])")
        if grad_scale.device != device:
            grad_scale = grad_scale.to(device, non_blocking=True)
        return grad_scale, True

    def _update(
        self,
        name: str,
        kernel,
        operands: list[list[Tensor]],
        written: list[bool],
        make_args,
        constexprs: dict,
        grad_scale: Tensor | None,
        scalars: dict[str, float],
        names: tuple[str, ...],
        found_inf: Tensor | None = None,
    ) -> None:
        """Stage odd layouts, launch once over the partition, copy staged results back.

        ``scalars``: the kernel's hyperparameter values by name, already rounded (Note [kernel
        scalars]); ``names``: the kernel's slot order. ``found_inf``: GradScaler's (Note [AMP]
        in ``flowoptim.optimizer``): nonzero, the kernels store nothing.
        ``make_args(plan, grad_scale, found_inf, scal)``.
        """
        if not operands[0]:
            return
        self.check_tensors(operands[0][:1])
        ops, writeback = L.stage(operands, written)
        dtype = ops[0][0].dtype
        scal = self._scal(scalars, names, ops[0][0])
        gs, has_gs = self._scale_arg(grad_scale, ops[0][0].device)
        fi, has_fi = self._scale_arg(found_inf, ops[0][0].device)  # Note [AMP]
        constexprs = dict(constexprs)
        constexprs.update(DT=L.tl_dtype(dtype), CT=L.compute_dtype(dtype), HAS_FOUND_INF=has_fi)
        if "HAS_GRAD_SCALE" in constexprs:
            constexprs["HAS_GRAD_SCALE"] = has_gs
        self.engine.run(
            name,
            kernel,
            ops,
            written,
            lambda pl: make_args(pl, gs if has_gs else pl.sizes, fi if has_fi else pl.sizes, scal),
            constexprs,
            validate=self.check_tensors,
        )
        for orig, tmp in writeback:
            orig.copy_(tmp)

    def _scal(self, scalars: dict, names: tuple[str, ...], p0: Tensor) -> Tensor:
        """The ``scal`` tensor of a partition whose first param is ``p0`` (compute dtype).

        Values that are 0-d tensors (a capturable group's step-dependent scalars, Note [device
        scalars] in ``flowoptim.backends.base``) make it a new tensor built on the device: the
        host floats filled in, the tensors copied, no host read and no host-to-device copy, so
        a CUDA graph that captures the step replays the current step and lr."""
        values = [scalars[n] for n in names]
        ct = compute_dtype(p0.dtype)
        if not any(isinstance(v, Tensor) for v in values):
            return self.engine.scalars(values, ct, p0.device)
        return torch.stack(
            [
                v.to(device=p0.device, dtype=ct)
                if isinstance(v, Tensor)
                else torch.full((), v, dtype=ct, device=p0.device)
                for v in values
            ]
        )

    @staticmethod
    def _k():
        return L._kernels()

    # ------------------------------------------------------------------ updates (spec §2)
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
        found_inf=None,  # Note [AMP] (amp_found_inf)
    ):
        has_m = momentum_buffers is not None
        operands = [list(params), list(grads)] + ([list(momentum_buffers)] if has_m else [])
        is64 = _is64(params)
        sc = dict(
            lr=_lr(lr, params),
            momentum=f32(momentum),  # 1e-46 rounds to 0: the buffer is then (1-d)*g'
            one_minus_dampening=derived(1.0 - f32(dampening), is64),
            wd=f32(weight_decay),
        )

        def args(pl, gs, fi, scal):
            buf = pl.tables[2] if has_m else pl.tables[0]
            return (pl.tables[0], pl.tables[1], buf, pl.chunk_tensor, pl.chunk_start, pl.sizes,
                    gs, fi, scal, pl.chunk)  # fmt: skip

        self._update(
            "sgd",
            self._k().sgd_kernel,
            operands,
            [True, False, True][: len(operands)],
            args,
            dict(
                HAS_MOMENTUM=has_m,
                NESTEROV=bool(nesterov) and has_m,
                MAXIMIZE=bool(maximize),
                HAS_GRAD_SCALE=False,
            ),
            grad_scale,
            sc,
            self._k().SGD_SCALARS,
            found_inf,
        )

    @staticmethod
    def _adam_scalars(lr, beta1, beta2, eps, weight_decay, step, do_bias_correction, is64, p0):
        """Adam/AdamW/LAMB kernel scalars (Note [kernel scalars]): f32 hyperparameters, float32
        bias corrections from the double betas (never 0, even when ``f32(beta) == 1``: Note
        [degenerate hyperparameters]), derived values in double then ``derived``-rounded.
        A tensor step or lr: the step- and lr-dependent ones as tensors on ``p0``'s device
        (Note [device scalars])."""
        b1, b2 = f32(beta1), f32(beta2)
        if isinstance(step, Tensor) or isinstance(lr, Tensor):
            dev = p0.device
            if isinstance(step, Tensor):
                bc1, bc2 = device_bias_corrections(beta1, beta2, step.to(dev), do_bias_correction)
            else:
                bc1, bc2 = (
                    torch.full((), v, dtype=torch.float64, device=dev)
                    for v in bias_corrections(beta1, beta2, step, do_bias_correction)
                )
            lr32, wd = device_f32(lr, dev), f32(weight_decay)
            return dict(
                beta1=b1,
                one_minus_beta1=derived(1.0 - b1, is64),
                beta2=b2,
                one_minus_beta2=derived(1.0 - b2, is64),
                bc1=bc1,
                sqrt_bc2=device_derived(torch.sqrt(bc2), is64),
                eps=f32(eps),
                wd=wd,
                lr=lr32,
                step_size=device_derived(torch.div(lr32, bc1), is64),
                lr_wd=device_derived(lr32 * wd, is64),
            )
        bc1, bc2 = bias_corrections(beta1, beta2, step, do_bias_correction)
        lr32, wd = f32(lr), f32(weight_decay)
        return dict(
            beta1=b1,
            one_minus_beta1=derived(1.0 - b1, is64),
            beta2=b2,
            one_minus_beta2=derived(1.0 - b2, is64),
            bc1=bc1,
            sqrt_bc2=derived(math.sqrt(bc2), is64),
            eps=f32(eps),
            wd=wd,
            lr=lr32,
            step_size=derived(lr32 / bc1, is64),
            lr_wd=derived(lr32 * wd, is64),
        )

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
        found_inf=None,  # Note [AMP] (amp_found_inf)
    ):
        amsgrad = bool(amsgrad) and max_exp_avg_sqs is not None
        operands = [list(params), list(grads), list(exp_avgs), list(exp_avg_sqs)]
        if amsgrad:
            operands.append(list(max_exp_avg_sqs))
        s = self._adam_scalars(
            lr, beta1, beta2, eps, weight_decay, step, do_bias_correction, _is64(params), params[0]
        )

        def args(pl, gs, fi, scal):
            vmax = pl.tables[4] if amsgrad else pl.tables[3]
            return (pl.tables[0], pl.tables[1], pl.tables[2], pl.tables[3], vmax,
                    pl.chunk_tensor, pl.chunk_start, pl.sizes, gs, fi, scal, pl.chunk)  # fmt: skip

        self._update(
            "adam",
            self._k().adam_kernel,
            operands,
            [True, False, True, True, True][: len(operands)],
            args,
            dict(
                AMSGRAD=amsgrad,
                DECOUPLED=bool(decoupled_weight_decay),
                MAXIMIZE=bool(maximize),
                HAS_GRAD_SCALE=False,
            ),
            grad_scale,
            s,
            self._k().ADAM_SCALARS,
            found_inf,
        )

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
        found_inf=None,  # Note [AMP] (amp_found_inf)
    ):
        if not params:
            return
        k = self._k()
        amsgrad = bool(amsgrad) and max_exp_avg_sqs is not None
        adam_w = bool(adam_w_mode)
        operands = [list(params), list(grads), list(exp_avgs), list(exp_avg_sqs)]
        if amsgrad:
            operands.append(list(max_exp_avg_sqs))
        n_ops = len(operands)
        s = self._adam_scalars(
            lr, beta1, beta2, eps, weight_decay, step, do_bias_correction, _is64(params), params[0]
        )
        self.check_tensors(operands[0][:1])
        ops, writeback = L.stage(operands, [True, False] + [True] * (n_ops - 2))
        dtype = ops[0][0].dtype
        # Note [LAMB passes]: float32/float64 state is stored by pass 1 (40 bytes/param);
        # fp16/bf16 state is stored by pass 2, which recomputes it from g and the old state
        write1 = dtype in (torch.float32, torch.float64)
        ct = compute_dtype(dtype)
        DT, CT = L.tl_dtype(dtype), L.compute_dtype(dtype)
        gs, has_gs = self._scale_arg(grad_scale, ops[0][0].device)
        fi, has_fi = self._scale_arg(found_inf, ops[0][0].device)  # Note [AMP]
        eng = self.engine
        plan = eng.plan("lamb", ops, self.check_tensors)
        if plan.n_chunks:
            vi = 4 if amsgrad else 3
            scal = self._scal(s, k.ADAM_SCALARS, ops[0][0])
            const = dict(
                AMSGRAD=amsgrad, ADAM_W=adam_w, HAS_GRAD_SCALE=has_gs, MAXIMIZE=bool(maximize),
                WRITE_STATE=write1, HAS_FOUND_INF=has_fi,
                DT=DT, CT=CT,
            )  # fmt: skip

            def head(pl):
                return (pl.tables[0], pl.tables[1], pl.tables[2], pl.tables[3], pl.tables[vi],
                        pl.chunk_tensor, pl.chunk_start, pl.sizes,
                        gs if has_gs else pl.sizes, fi if has_fi else pl.sizes, scal)  # fmt: skip

            def args1(pl):
                parts = (pl.buffer("w_part", pl.n_chunks, ct), pl.buffer("u_part", pl.n_chunks, ct))
                return (*head(pl), *parts, pl.chunk)

            def args2(pl):
                return (*head(pl), pl.buffer("lr_trust", pl.n_tensors, ct), pl.chunk)

            state_w = [False, False] + [write1] * (n_ops - 2)
            eng.run("lamb1", k.lamb_pass1_kernel, ops, state_w, args1, const, tunable=False,
                    plan=plan)  # fmt: skip
            sums = torch.empty((2, plan.n_tensors), dtype=ct, device=plan.device)
            lr_trust = plan.buffer("lr_trust", plan.n_tensors, ct)
            eng.launch(
                k.lamb_norms_kernel,
                (plan.n_tensors,),
                (
                    plan.buffer("w_part", plan.n_chunks, ct),
                    plan.buffer("u_part", plan.n_chunks, ct),
                    *(plan.tensor_chunk0, plan.tensor_nchunks, sums, lr_trust),
                    *(scal, plan.n_tensors),
                ),
                dict(WRITE_TRUST=norm_reduce is None, CT=CT, RBLOCK=RBLOCK),
            )
            if norm_reduce is not None:
                # Note [LAMB norm_reduce hook] (flowoptim.backends.base): full-tensor norms
                norm_reduce(sums)
                eng.launch(
                    k.lamb_trust_kernel,
                    (-(-plan.n_tensors // RBLOCK),),
                    (sums, lr_trust, scal, plan.n_tensors),
                    dict(CT=CT, RBLOCK=RBLOCK),
                )
            written2 = [True, False] + [not write1] * (n_ops - 2)
            eng.run("lamb2", k.lamb_pass2_kernel, ops, written2, args2, const, plan=plan)
        for orig, tmp in writeback:
            orig.copy_(tmp)

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
        found_inf=None,  # Note [AMP] (amp_found_inf)
    ):
        centered = bool(centered) and grad_avgs is not None
        has_m = momentum_buffers is not None
        operands = [list(params), list(grads), list(square_avgs)]
        gi = bi = 2
        if centered:
            gi = len(operands)
            operands.append(list(grad_avgs))
        if has_m:
            bi = len(operands)
            operands.append(list(momentum_buffers))
        a = f32(alpha)
        sc = dict(
            lr=_lr(lr, params),
            alpha=a,
            one_minus_alpha=derived(1.0 - a, _is64(params)),
            eps=f32(eps),
            wd=f32(weight_decay),
            momentum=f32(momentum),
        )

        def args(pl, gs, fi, scal):
            return (pl.tables[0], pl.tables[1], pl.tables[2], pl.tables[gi], pl.tables[bi],
                    pl.chunk_tensor, pl.chunk_start, pl.sizes, gs, fi, scal, pl.chunk)  # fmt: skip

        self._update(
            "rmsprop",
            self._k().rmsprop_kernel,
            operands,
            [True, False] + [True] * (len(operands) - 2),
            args,
            dict(
                CENTERED=centered,
                HAS_MOMENTUM=has_m,
                MAXIMIZE=bool(maximize),
                HAS_GRAD_SCALE=False,
            ),
            grad_scale,
            sc,
            self._k().RMSPROP_SCALARS,
            found_inf,
        )

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
        found_inf=None,  # Note [AMP] (amp_found_inf)
    ):
        # spec §1.10: in double from the float32 values, then derived-rounded
        if isinstance(step, Tensor) or isinstance(lr, Tensor):  # Note [device scalars]
            clr = device_adagrad_lr(lr, lr_decay, step, _is64(params), params[0].device)
        else:
            clr = adagrad_lr(lr, lr_decay, step, _is64(params))
        sc = dict(clr=clr, eps=f32(eps), wd=f32(weight_decay))

        def args(pl, gs, fi, scal):
            return (pl.tables[0], pl.tables[1], pl.tables[2], pl.chunk_tensor, pl.chunk_start,
                    pl.sizes, gs, fi, scal, pl.chunk)  # fmt: skip

        self._update(
            "adagrad",
            self._k().adagrad_kernel,
            [list(params), list(grads), list(state_sums)],
            [True, False, True],
            args,
            dict(MAXIMIZE=bool(maximize), HAS_GRAD_SCALE=False),
            grad_scale,
            sc,
            self._k().ADAGRAD_SCALARS,
            found_inf,
        )

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
        found_inf=None,  # Note [AMP] (amp_found_inf)
    ):
        r = f32(rho)
        sc = dict(
            lr=_lr(lr, params),
            rho=r,
            one_minus_rho=derived(1.0 - r, _is64(params)),
            eps=f32(eps),
            wd=f32(weight_decay),
        )

        def args(pl, gs, fi, scal):
            return (pl.tables[0], pl.tables[1], pl.tables[2], pl.tables[3], pl.chunk_tensor,
                    pl.chunk_start, pl.sizes, gs, fi, scal, pl.chunk)  # fmt: skip

        self._update(
            "adadelta",
            self._k().adadelta_kernel,
            [list(params), list(grads), list(square_avgs), list(acc_deltas)],
            [True, False, True, True],
            args,
            dict(MAXIMIZE=bool(maximize), HAS_GRAD_SCALE=False),
            grad_scale,
            sc,
            self._k().ADADELTA_SCALARS,
            found_inf,
        )

    # ------------------------------------------------------------------ clip_grad (spec §3)
    def grad_norm(self, grads: list[Tensor], norm_type: float) -> Tensor:
        """One launch: the chunk partials, reduced by the launch's last program (Note
        [last-program finish] in :mod:`flowoptim_triton.kernels`)."""
        return self._norm(grads, norm_type, None)[0]

    def clip_coef(
        self, grads: list[Tensor], norm_type: float, max_norm: float
    ) -> tuple[Tensor, Tensor]:
        """:meth:`grad_norm`'s launch, whose last program also forms the coefficient (Note
        [fused clip]): no other launch, no torch op but the total's allocation. The coefficient
        lives in a buffer of the partition's plan, rewritten by the next call on that plan."""
        total, coef = self._norm(grads, norm_type, max_norm)
        if coef is None:  # no element at all: Backend's torch expression on a zero total
            return total, torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)
        return total, coef

    def _norm(
        self, grads: list[Tensor], norm_type: float, max_norm: float | None
    ) -> tuple[Tensor, Tensor | None]:
        """``(total, coef)`` from one ``norm_partial_kernel`` launch; ``coef`` is None unless
        ``max_norm`` is given (the ``COEF`` constexpr) and the grads hold an element."""
        k = self._k()
        nonempty = list(itertools.compress(grads, map(Tensor.numel, grads)))
        if not nonempty:  # no element, so no program to finish: total 0, as for no grads
            if not grads:
                return torch.zeros((), dtype=torch.float32), None
            ct = compute_dtype(grads[0].dtype)
            return torch.zeros((), dtype=ct, device=grads[0].device), None
        grads = nonempty
        self.check_tensors(grads)
        p = float(norm_type)
        if math.isinf(p):
            kind = k.NORM_INF if p > 0 else k.NORM_NEG_INF
        elif p == 0:
            kind = k.NORM_ZERO
        elif p == 1:
            kind = k.NORM_L1
        elif p == 2:
            kind = k.NORM_L2
        else:
            kind = k.NORM_P
        kind = int(kind.value if hasattr(kind, "value") else kind)
        ops, _ = L.stage([grads], [False])
        dtype = ops[0][0].dtype
        ct = compute_dtype(dtype)
        DT, CT = L.tl_dtype(dtype), L.compute_dtype(dtype)
        eng = self.engine
        plan = eng.plan("norm", ops)
        total = torch.empty((), dtype=ct, device=plan.device)
        has_coef = max_norm is not None
        if has_coef:
            # Note [clip coefficient]: max_norm and CLIP_EPS rounded to the compute dtype as
            # torch rounds them; the 0-d coefficient is the plan's, allocated once
            clip = eng.scalars((max_norm, CLIP_EPS), ct, plan.device)
            coef = plan.buffers.get("clip_coef")
            if coef is None:
                coef = plan.buffers["clip_coef"] = torch.empty((), dtype=ct, device=plan.device)
        else:
            clip = coef = total  # unused (COEF False)
        counter = eng.counter(plan.device)
        p32 = f32(p) if not math.isinf(p) else 0.0
        eng.run(
            "norm",
            k.norm_partial_kernel,
            ops,
            [False],
            lambda pl: (
                *(pl.tables[0], pl.chunk_tensor, pl.chunk_start, pl.sizes),
                *(pl.tensor_chunk0, pl.tensor_nchunks, pl.n_tensors),
                *(pl.buffer("norm_part", pl.n_chunks, ct), counter, total, coef, clip),
                *(p32, pl.chunk),
            ),
            dict(NORM=kind, COEF=has_coef, DT=DT, CT=CT, RBLOCK=RBLOCK),
            tunable=False,
            plan=plan,
        )
        return total, coef if has_coef else None

    def scale_(self, tensors: list[Tensor], coef: Tensor) -> None:
        tensors = list(itertools.compress(tensors, map(Tensor.numel, tensors)))
        if not tensors:
            return
        self.check_tensors(tensors[:1])
        ops, writeback = L.stage([tensors], [True])
        dtype = ops[0][0].dtype
        coef = self._scale_arg(coef, ops[0][0].device)[0]

        self.engine.run(
            "scale",
            self._k().scale_kernel,
            ops,
            [True],
            lambda pl: (pl.tables[0], pl.chunk_tensor, pl.chunk_start, pl.sizes, coef, pl.chunk),
            dict(DT=L.tl_dtype(dtype), CT=L.compute_dtype(dtype)),
            validate=self.check_tensors,
        )
        for orig, tmp in writeback:
            orig.copy_(tmp)

    # ------------------------------------------------------------------ sparse updates (spec §5)
    def sgd_sparse(
        self,
        params,
        indices,
        values,
        momentum_buffers,
        *,
        lr,
        momentum,
        dampening,
        weight_decay,
        nesterov,
        maximize,
        grad_scale,
        found_inf=None,  # Note [AMP] (amp_found_inf): nonzero, nothing is stored
    ):
        """Lazy SGD: one row-gather launch (Note [row-gather addressing] in
        :mod:`flowoptim_triton.sparse_kernels`); odd layouts gather and scatter instead."""
        from . import sparse_kernels as SK
        from . import sparse_launch as SL

        if not SL.rows_addressable(params, momentum_buffers):
            return super().sgd_sparse(
                params, indices, values, momentum_buffers, lr=lr, momentum=momentum,
                dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                maximize=maximize, grad_scale=grad_scale, found_inf=found_inf,
            )  # fmt: skip
        keep = [i for i, v in enumerate(values) if v.numel() > 0]
        if not keep:
            return
        has_m = momentum_buffers is not None
        ps = [params[i] for i in keep]
        operands = [ps, [values[i] for i in keep]]
        if has_m:
            operands.append([momentum_buffers[i] for i in keep])
        self.check_tensors(ps[:1])
        is64 = _is64(ps)
        sc = dict(
            lr=_lr(lr, ps),  # a tensor lr stays on the device (Note [device scalars])
            momentum=f32(momentum),
            one_minus_dampening=derived(1.0 - f32(dampening), is64),
            wd=f32(weight_decay),
        )
        scal = self._scal(sc, self._k().SGD_SCALARS, ps[0])
        gs, has_gs = self._scale_arg(grad_scale, ps[0].device)
        fi, has_fi = self._scale_arg(found_inf, ps[0].device)  # Note [AMP]
        pl = SL.build_sparse_plan(
            ps, operands, [indices[i] for i in keep], operands[1], self.engine.chunk
        )
        t = pl.tables
        SL.launch_sparse(
            self.engine,
            SK.sgd_sparse_kernel,
            pl,
            (
                t[0],
                t[1],
                t[2] if has_m else t[0],
                t[-1],
                pl.row_len,
                pl.n_rows,
                pl.chunk_tensor,
                pl.chunk_start,
                pl.sizes,
                gs if has_gs else pl.sizes,
                fi if has_fi else pl.sizes,
                scal,
                pl.chunk,
            ),
            dict(
                HAS_MOMENTUM=has_m,
                NESTEROV=bool(nesterov) and has_m,
                MAXIMIZE=bool(maximize),
                HAS_GRAD_SCALE=has_gs,
                HAS_FOUND_INF=has_fi,
                DT=L.tl_dtype(ps[0].dtype),
                CT=L.compute_dtype(ps[0].dtype),
            ),
        )

    def adam_sparse(
        self,
        params,
        indices,
        values,
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
        found_inf=None,  # Note [AMP] (amp_found_inf): nonzero, nothing is stored
    ):
        """Lazy Adam/AdamW: one row-gather launch (Note [row-gather addressing] in
        :mod:`flowoptim_triton.sparse_kernels`); odd layouts gather and scatter instead."""
        from . import sparse_kernels as SK
        from . import sparse_launch as SL

        amsgrad = bool(amsgrad) and max_exp_avg_sqs is not None
        if not SL.rows_addressable(params, exp_avgs, exp_avg_sqs, max_exp_avg_sqs):
            return super().adam_sparse(
                params, indices, values, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step=step,
                lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad,
                do_bias_correction=do_bias_correction, maximize=maximize, grad_scale=grad_scale,
                found_inf=found_inf,
            )  # fmt: skip
        keep = [i for i, v in enumerate(values) if v.numel() > 0]
        if not keep:
            return
        ps = [params[i] for i in keep]
        operands = [ps, [values[i] for i in keep], [exp_avgs[i] for i in keep],
                    [exp_avg_sqs[i] for i in keep]]  # fmt: skip
        if amsgrad:
            operands.append([max_exp_avg_sqs[i] for i in keep])
        self.check_tensors(ps[:1])
        s = self._adam_scalars(
            lr, beta1, beta2, eps, weight_decay, step, do_bias_correction, _is64(ps), ps[0]
        )
        scal = self._scal(s, self._k().ADAM_SCALARS, ps[0])
        gs, has_gs = self._scale_arg(grad_scale, ps[0].device)
        fi, has_fi = self._scale_arg(found_inf, ps[0].device)  # Note [AMP]
        pl = SL.build_sparse_plan(
            ps, operands, [indices[i] for i in keep], operands[1], self.engine.chunk
        )
        t = pl.tables
        SL.launch_sparse(
            self.engine,
            SK.adam_sparse_kernel,
            pl,
            (
                t[0],
                t[1],
                t[2],
                t[3],
                t[4] if amsgrad else t[3],
                t[-1],
                pl.row_len,
                pl.n_rows,
                pl.chunk_tensor,
                pl.chunk_start,
                pl.sizes,
                gs if has_gs else pl.sizes,
                fi if has_fi else pl.sizes,
                scal,
                pl.chunk,
            ),
            dict(
                AMSGRAD=amsgrad,
                DECOUPLED=bool(decoupled_weight_decay),
                MAXIMIZE=bool(maximize),
                HAS_GRAD_SCALE=has_gs,
                HAS_FOUND_INF=has_fi,
                DT=L.tl_dtype(ps[0].dtype),
                CT=L.compute_dtype(ps[0].dtype),
            ),
        )
