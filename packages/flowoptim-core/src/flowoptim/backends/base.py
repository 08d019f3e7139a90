"""The backend contract: what a backend must implement (see docs/design/backend-contract.md).

Note [backend owns arithmetic]
------------------------------
An optimizer class (``flowoptim.Adam`` ...) owns validation, param groups, the optimizer-wide step
counter, lazily created state and state dicts. A backend owns only arithmetic: one list-of-tensors
functional per algorithm, plus the parts of ``clip_grad`` (a norm, the norm with its clip
coefficient, an in-place scale).
The class calls a functional once per (device, dtype) partition of a param group, so within one call
every tensor shares a device and a dtype, every list has the same length, all gradients are dense
and have their parameter's shape and dtype, and every state tensor exists (zero-initialised, or
``initial_accumulator_value`` for Adagrad's ``sum``). Functionals update ``params`` and state
tensors in place and return None. They never synchronise with the host.

Note [float32 hyperparameters]
------------------------------
OneFlow passes hyperparameters to its kernels as C ``float``. Every backend must therefore use
``f32(beta)`` for beta, compute ``1 - beta`` from ``f32(beta)``, and take bias corrections from
:func:`bias_corrections` (computed in double from the Python value, then rounded to float32). This
holds for float64 parameters too. Ignoring it leaves a ~1e-6 relative drift (spec §8: Adam gives
0.8999993, not 0.9).

Note [float64 derived quantities]
---------------------------------
Spec §1.10. For float64 parameters the hyperparameters are still rounded to float32 once (``f32``)
and the bias corrections are still ``float32(1 - beta_k**t)`` (:func:`bias_corrections`), as for
every dtype; but every *other* quantity derived from them (``1 - beta``, ``1 - dampening``,
``1 - alpha``, ``1 - rho``, ``sqrt(bc2)``, ``lr/bc1``, ``lr*wd``, Adagrad's ``lr/(1+(t-1)*decay)``,
LAMB's trust ratio and ``lr*trust``) is computed in float64 from those values and never rounded to
float32. For float32 (and fp16/bf16, computed in float32) parameters they are float32 values, as
OneFlow's C ``float`` kernels compute them. :func:`derived` rounds accordingly. Float64 results
are then checked to 1e-12 relative by the conformance suite.

Note [maximize]
---------------
Every functional takes ``maximize`` (spec §1.9, torch's semantics): the update uses ``-g`` in place
of ``g`` (after ``grad_scale``, before weight decay and everything else); the gradient tensor is
never modified.

Note [degenerate hyperparameters]
---------------------------------
Valid hyperparameters may round to degenerate float32 values: ``beta = 0.99999999`` is ``< 1`` but
``f32(beta) == 1.0`` (so ``1 - beta == 0``), ``momentum = 1e-46`` is ``> 0`` but ``f32(momentum) ==
0``. Backends compute the spec's formula with those values and never fail or produce NaN because
of them: the bias corrections come from the double values (:func:`bias_corrections`), so they stay
nonzero; a ``1 - beta`` of 0 leaves the moment at its old value; a momentum of 0 keeps a buffer
``0 * buf + (1 - dampening) * g'``. Which state exists is decided by the optimizer class from the
Python value (``momentum != 0``), never from the rounded one.

Note [grad_scale]
-----------------
``grad_scale`` is None or a 0-d tensor on the partition's device whose dtype is the partition's
compute dtype (float64 for float64 partitions, float32 otherwise): the clip coefficient of the fused
clip mode, ``Optimizer.clip_grad(fused=True)``. When given, the update uses ``g * grad_scale``
(computed in the compute dtype, then rounded to the gradient's dtype) in place of ``g``, and the
gradient tensor itself is left unchanged. :meth:`Backend.scale_` (the in-place clip) computes
exactly the same product and rounding, for every shape (0-d included) and stride, so the fused
mode gives the parameters bit for bit what clipping in place then stepping gives (spec §3). It
is applied before maximize and weight decay.

Note [device scalars]
---------------------
For a group with ``capturable=True`` (Note [capturable] in ``flowoptim.optimizer``) the optimizer
passes ``step`` as a float32 0-d tensor on the partition's device, and ``lr`` may be a 0-d tensor
(torch's tensor lr, which a scheduler can change between CUDA-graph replays). A backend that
supports capturable groups then computes every step- or lr-dependent scalar on the device with
no host read (``.item()``, ``float()``, ``.tolist()``, ``.cpu()``), with the helpers below:
:func:`device_f32`, :func:`device_bias_corrections`, :func:`device_derived`,
:func:`device_adagrad_lr`. They are float64 tensor ops that give the host values' bits: the
bias corrections are ``pow`` in double (the C library's on the CPU, as Python's ``**``; CUDA's
double ``pow`` may differ from it in the last double bit, which the rounding to float32 hides
except in a tie), then rounded to float32; divisions are tensor-by-tensor (a division by a
host scalar may be computed as a multiplication by its reciprocal on CUDA); sums, products and
square roots are single IEEE operations either way. Numbers that do not depend on the step or
the lr (betas, eps, weight decay) stay host floats, baked into a captured graph as constants.

Note [LAMB norm_reduce hook]
----------------------------
``Backend.lamb`` takes an optional keyword ``norm_reduce`` (default None). The optimizer passes it
when the parameters are local shards of DTensors (FSDP2, ``flowoptim.distributed``): LAMB's
``||p||`` and ``||u||`` must then be the norms of the full tensors. A backend that gets it must,
once per call and before forming any trust ratio, build a tensor of shape ``(2, n)`` (``n =
len(params)``, column ``i`` for ``params[i]``, in call order) holding the per-tensor *sums of
squares* of ``p`` (before the update) and of ``u`` (the Adam direction without weight decay), on
the params' device, float32 (float64 for float64 params), call ``norm_reduce(sums)`` (which
reduces it in place across ranks: a collective, enqueued on the device, no host sync), and take
``||p|| = sqrt(sums[0, i])``, ``||u|| = sqrt(sums[1, i])``. Local shards may be empty (numel 0):
their sums are 0. With ``norm_reduce=None`` the backend does exactly what it did before.
A backend whose ``lamb`` has no ``norm_reduce`` parameter cannot run LAMB on DTensors: the
optimizer raises before anything is modified.

Note [sparse functionals]
-------------------------
Spec §5. ``sgd_sparse`` and ``adam_sparse`` are the lazy updates for a parameter whose gradient
is a sparse COO tensor with one sparse dimension (an embedding's): only the rows it names are
read and written, in params and in every state tensor; every other row, and its state, is left
exactly as it was. The optimizer hands a backend, per parameter, the *coalesced* gradient split
into ``indices`` (a 1-d int64 tensor of distinct, sorted row numbers, each in ``[0, p.shape[0])``
-- checked by the optimizer on the CPU, see Note [sparse gradient checks] in
``flowoptim.optimizer``) and ``values`` (a contiguous tensor of shape ``(nnz, *p.shape[1:])`` and
the parameter's dtype); ``nnz`` may be 0 (nothing changes). Params and state are dense, as in
the dense functionals. Every keyword means what it means for the dense functional, and each
named row is updated with exactly the dense functional's arithmetic for that row (``grad_scale``
scales the values, Adam's bias corrections use the optimizer-wide step, AdamW's decay touches the
named rows only; nesterov and amsgrad work): a gradient naming every row gives the dense update
bit for bit. No host synchronisation, and no temporary of the parameter's size (temporaries are
proportional to ``nnz``).

:class:`Backend` provides both by gathering the named rows (``index_select``), running the dense
functional on the gathered rows and scattering them back (``index_copy_``): any backend that
implements the dense functionals therefore supports sparse gradients, and a backend may override
them with something faster (the triton backend's row-gather kernel). A backend with
``amp_found_inf`` also gets ``found_inf`` in both (Note [AMP] in ``flowoptim.optimizer``):
nonzero, nothing is stored; the default passes it to the dense functional, whose stores into the
gathered rows it suppresses, so the scatter writes the rows back unchanged.

Note [clip coefficient]
-----------------------
Spec §3: ``coef = min(max_norm / (total + 1e-6), 1)``. Its bits are those of the torch expression
``torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)`` on the 0-d ``total`` in the compute dtype
(what the optimizer has always computed, and still computes for a group of several partitions),
which torch evaluates as four operations, each rounded to the compute dtype: ``y = total +
CT(CLIP_EPS)``; ``r = 1 / y`` (a Python number divided by a tensor is ``reciprocal`` then ``*``);
``c = r * CT(max_norm)``; ``coef = 1 if c > 1 else c``, NaN staying NaN (``clamp`` propagates
NaN). ``CT(x)`` is the Python float rounded to the compute dtype to nearest, overflowing to inf
(float32 ``CLIP_EPS`` is 9.999999974752427e-07). A nan total gives a nan coefficient, an inf
total gives 0. :meth:`Backend.clip_coef` computes it with those torch ops; a backend that
overrides it (the triton backend: in the norm launch itself) must give the same bits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "CLIP_EPS",
    "Backend",
    "adagrad_lr",
    "bias_corrections",
    "compute_dtype",
    "derived",
    "device_adagrad_lr",
    "device_bias_corrections",
    "device_derived",
    "device_f32",
    "f32",
]


#: the epsilon of the clip coefficient, ``max_norm / (total + 1e-6)`` (spec §3; Note [clip
#: coefficient])
CLIP_EPS = 1e-6


def f32(x: float) -> float:
    """Round a Python float to the nearest float32 value (kept as a Python float)."""
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def bias_corrections(beta1: float, beta2: float, step: int, enabled: bool) -> tuple[float, float]:
    """``(bc1, bc2) = (1 - beta1**step, 1 - beta2**step)`` in double, rounded to float32.

    Returns ``(1.0, 1.0)`` when bias correction is off. See Note [float32 hyperparameters].
    """
    if not enabled:
        return 1.0, 1.0
    return f32(1.0 - beta1**step), f32(1.0 - beta2**step)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a partition's arithmetic runs in (and ``grad_scale``'s, Note [grad_scale]):
    float64 for float64 tensors, float32 otherwise (fp16/bf16 are computed in float32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def adagrad_lr(lr: float, lr_decay: float, step: int, is64: bool) -> float:
    """Adagrad's decayed lr ``lr / (1 + (t - 1) * lr_decay)`` of spec §2: in double from the
    float32 hyperparameters, then :func:`derived` (Note [float64 derived quantities])."""
    return derived(f32(lr) / (1.0 + (step - 1) * f32(lr_decay)), is64)


def derived(x: float, compute_dtype_is_float64: bool) -> float:
    """A derived hyperparameter quantity (Note [float64 derived quantities]): ``x`` unchanged
    (float64) for float64 parameters, else rounded to float32."""
    return float(x) if compute_dtype_is_float64 else f32(x)


def device_f32(x: float | Tensor, device: torch.device) -> Tensor:
    """``f32(x)`` as a float64 0-d tensor on ``device`` (Note [device scalars]): a tensor is
    rounded to float32 on the device (no host read), a float is filled in."""
    if isinstance(x, Tensor):
        return x.detach().to(device=device).reshape(()).to(torch.float32).to(torch.float64)
    return torch.full((), f32(x), dtype=torch.float64, device=device)


def device_bias_corrections(
    beta1: float, beta2: float, step: Tensor, enabled: bool
) -> tuple[Tensor, Tensor]:
    """:func:`bias_corrections` for a device step tensor (Note [device scalars]): float64 0-d
    tensors holding the float32 values ``f32(1 - beta**t)``, with ``beta`` the double value."""
    t = step.detach().reshape(()).to(torch.float64)
    if not enabled:
        one = torch.ones((), dtype=torch.float64, device=step.device)
        return one, one
    out = []
    for beta in (beta1, beta2):
        bc = 1.0 - torch.pow(float(beta), t)
        out.append(bc.to(torch.float32).to(torch.float64))
    return out[0], out[1]


def device_derived(x: Tensor, compute_dtype_is_float64: bool) -> Tensor:
    """:func:`derived` of a float64 0-d tensor: unchanged for float64 parameters, else rounded
    to float32 (kept as a float64 tensor holding that value)."""
    return x if compute_dtype_is_float64 else x.to(torch.float32).to(torch.float64)


def device_adagrad_lr(
    lr: float | Tensor, lr_decay: float, step: int | Tensor, is64: bool, device: torch.device
) -> Tensor:
    """:func:`adagrad_lr` on the device (Note [device scalars]): ``lr / (1 + (t - 1) * decay)``
    in double from the float32 hyperparameters, then :func:`device_derived`."""
    if isinstance(step, Tensor):
        t = step.detach().reshape(()).to(device=device, dtype=torch.float64)
    else:
        t = torch.full((), float(step), dtype=torch.float64, device=device)
    denom = (t - 1.0) * f32(lr_decay) + 1.0
    return device_derived(torch.div(device_f32(lr, device), denom), is64)


class Backend:
    """Base class of every backend. Subclasses implement every functional below.

    A backend is registered under the entry-point group ``flowoptim.backends``; the entry point
    names a ``Backend`` subclass (instantiated with no arguments) or an instance.
    """

    #: the registry name, e.g. ``"reference"`` or ``"triton"``
    name: str = "abstract"
    #: whether optimizers on this backend take GradScaler's ``grad_scale``/``found_inf`` (Note
    #: [AMP] in ``flowoptim.optimizer``): the functionals take a tensor ``step`` and ``lr``
    #: (Note [device scalars]) with the host values' bits
    amp_scaling: bool = False
    #: whether every functional, the sparse ones included, takes ``found_inf`` (a 0-d device
    #: tensor, Note [AMP]): nonzero, it must change nothing (no param or state store);
    #: otherwise the optimizer restores them
    amp_found_inf: bool = False

    def is_available(self) -> bool:
        """Whether the backend can run at all on this machine (imports, drivers)."""
        return True

    def check_tensors(self, params: Sequence[Tensor]) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first parameter this backend cannot update
        (its device or dtype), before anything is modified. Called by the optimizer at
        construction, in ``add_param_group`` and at every ``step`` for the tensors it routes here.

        Note [partition check]: the check is one of device and dtype (and tensor type). At every
        ``step`` the optimizer routes a *partition*: tensors of one device and one dtype; when
        they are all plain ``Tensor``/``nn.Parameter`` it passes the first one only (the others
        have the same answer; one call instead of a loop over every parameter at every step).
        A backend must not rely on this method to check anything else per tensor.
        """

    # ---------------------------------------------------------------- updates (spec §2)
    def sgd(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        momentum_buffers: list[Tensor] | None,  # state "momentum_buffer"; None iff momentum == 0
        *,
        lr: float,
        momentum: float,
        dampening: float,
        weight_decay: float,
        nesterov: bool,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,
    ) -> None:
        raise NotImplementedError

    def adam(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        max_exp_avg_sqs: list[Tensor] | None,  # None iff not amsgrad
        *,
        step: int,  # the optimizer-wide step, 1-based, already incremented
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        decoupled_weight_decay: bool,  # False: Adam (L2 in g); True: AdamW
        amsgrad: bool,
        do_bias_correction: bool,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,
    ) -> None:
        raise NotImplementedError

    def lamb(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        max_exp_avg_sqs: list[Tensor] | None,  # None iff not amsgrad
        *,
        step: int,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        adam_w_mode: bool,
        amsgrad: bool,
        do_bias_correction: bool,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,
        norm_reduce: Callable[[Tensor], None] | None = None,
    ) -> None:
        """Per-tensor trust ratio: each tensor's own ||p|| and ||u|| (spec §2).

        ``norm_reduce``: None, or a callable that reduces in place across ranks the ``(2, n)``
        per-tensor sums of squares of p and u; see Note [LAMB norm_reduce hook].
        """
        raise NotImplementedError

    def rmsprop(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        square_avgs: list[Tensor],
        grad_avgs: list[Tensor] | None,  # None iff not centered
        momentum_buffers: list[Tensor] | None,  # None iff momentum == 0
        *,
        lr: float,
        alpha: float,
        eps: float,
        weight_decay: float,
        momentum: float,
        centered: bool,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,
    ) -> None:
        raise NotImplementedError

    def adagrad(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        state_sums: list[Tensor],
        *,
        step: int,
        lr: float,
        lr_decay: float,
        weight_decay: float,
        eps: float,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,
    ) -> None:
        raise NotImplementedError

    def adadelta(
        self,
        params: list[Tensor],
        grads: list[Tensor],
        square_avgs: list[Tensor],
        acc_deltas: list[Tensor],
        *,
        lr: float,
        rho: float,
        eps: float,
        weight_decay: float,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,
    ) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------- sparse updates (spec §5)
    def sgd_sparse(
        self,
        params: list[Tensor],
        indices: list[
            Tensor
        ],  # per param: int64[nnz] distinct sorted rows (Note [sparse functionals])
        values: list[Tensor],  # per param: (nnz, *p.shape[1:]) contiguous, the param's dtype
        momentum_buffers: list[Tensor] | None,  # None iff momentum == 0
        *,
        lr: float,
        momentum: float,
        dampening: float,
        weight_decay: float,
        nesterov: bool,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,  # scales the values (Note [grad_scale])
        found_inf: Tensor | None = None,  # only with amp_found_inf (Note [sparse functionals])
    ) -> None:
        """Lazy SGD: :meth:`sgd` on the rows ``indices`` only (Note [sparse functionals])."""
        states = None if momentum_buffers is None else [momentum_buffers]
        self._rows_update(
            self.sgd,
            params,
            indices,
            values,
            states,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                weight_decay=weight_decay,
                nesterov=nesterov,
                maximize=maximize,
                grad_scale=grad_scale,
            ),
            layout=(momentum_buffers is not None,),
            found_inf=found_inf,
        )

    def adam_sparse(
        self,
        params: list[Tensor],
        indices: list[
            Tensor
        ],  # per param: int64[nnz] distinct sorted rows (Note [sparse functionals])
        values: list[Tensor],  # per param: (nnz, *p.shape[1:]) contiguous, the param's dtype
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        max_exp_avg_sqs: list[Tensor] | None,  # None iff not amsgrad
        *,
        step: int,  # the optimizer-wide step (bias corrections of every named row)
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        decoupled_weight_decay: bool,  # AdamW: the decay of the named rows only
        amsgrad: bool,
        do_bias_correction: bool,
        maximize: bool,  # Note [maximize]
        grad_scale: Tensor | None,  # scales the values (Note [grad_scale])
        found_inf: Tensor | None = None,  # only with amp_found_inf (Note [sparse functionals])
    ) -> None:
        """Lazy Adam/AdamW: :meth:`adam` on the rows ``indices`` only (Note [sparse
        functionals]); the other rows keep param, ``exp_avg``, ``exp_avg_sq`` (and
        ``max_exp_avg_sq``)."""
        states = [exp_avgs, exp_avg_sqs]
        if max_exp_avg_sqs is not None:
            states.append(max_exp_avg_sqs)
        self._rows_update(
            self.adam,
            params,
            indices,
            values,
            states,
            dict(
                step=step,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                eps=eps,
                weight_decay=weight_decay,
                decoupled_weight_decay=decoupled_weight_decay,
                amsgrad=amsgrad,
                do_bias_correction=do_bias_correction,
                maximize=maximize,
                grad_scale=grad_scale,
            ),
            layout=(True, True, max_exp_avg_sqs is not None),
            found_inf=found_inf,
        )

    @staticmethod
    def _rows_update(
        dense: Callable[..., None],
        params: list[Tensor],
        indices: list[Tensor],
        values: list[Tensor],
        states: list[list[Tensor]] | None,
        kwargs: dict,
        layout: tuple[bool, ...],
        found_inf: Tensor | None = None,
    ) -> None:
        """Gather the named rows of params and states, run the dense functional ``dense`` on
        them with ``values`` as the gradients, scatter them back (Note [sparse functionals]).
        ``found_inf`` goes to ``dense`` when given: it then stores nothing into the gathered
        rows, and the scatter puts back the rows as they were.

        ``layout``: for each state slot of ``dense`` after the gradients, whether a list is
        passed there (False: None, e.g. SGD without momentum); ``states`` holds the present
        lists in order. Parameters with no named row are skipped (nothing to change)."""
        keep = [i for i, ix in enumerate(indices) if ix.numel() > 0]
        if not keep:
            return
        idx = [indices[i] for i in keep]
        p_rows = [params[i].index_select(0, ix) for i, ix in zip(keep, idx)]
        s_rows = [
            [lst[i].index_select(0, ix) for i, ix in zip(keep, idx)] for lst in (states or [])
        ]
        it = iter(s_rows)
        state_args = [next(it) if present else None for present in layout]
        if found_inf is not None:
            kwargs = dict(kwargs, found_inf=found_inf)
        dense(p_rows, [values[i] for i in keep], *state_args, **kwargs)
        for i, ix, rows in zip(keep, idx, p_rows):
            params[i].index_copy_(0, ix, rows)
        for lst, rows_list in zip(states or [], s_rows):
            for i, ix, rows in zip(keep, idx, rows_list):
                lst[i].index_copy_(0, ix, rows)

    # ---------------------------------------------------------------- clip_grad (spec §3)
    def grad_norm(self, grads: list[Tensor], norm_type: float) -> Tensor:
        """The norm of the concatenation of ``grads`` (all on one device, one dtype).

        Returns a 0-d tensor on that device: float64 for float64 grads, float32 otherwise.
        ``norm_type``: ``inf`` max |g|, ``-inf`` min |g|, ``0`` the number of tensors with a
        nonzero element (spec §3), any other p the p-norm. Deterministic, no host sync.
        """
        raise NotImplementedError

    def clip_coef(
        self, grads: list[Tensor], norm_type: float, max_norm: float
    ) -> tuple[Tensor, Tensor]:
        """``(total, coef)`` of one partition that is a whole clipped group (spec §3): ``total``
        is :meth:`grad_norm` of ``grads`` (the same bits), ``coef = min(max_norm / (total +
        1e-6), 1)`` with the bits of Note [clip coefficient]; both 0-d tensors on the grads'
        device in their compute dtype, neither aliasing the other or an earlier call's
        ``total`` (the optimizer returns the totals). No host sync. ``coef`` is read only until
        the group's next ``scale_`` or step, so a backend may reuse its storage across calls.

        The optimizer calls it when a group's gradients form one (device, dtype) partition,
        the usual case; for several it combines their :meth:`grad_norm` results itself. This
        default is :meth:`grad_norm` followed by the torch expression; a backend may override
        it to form the coefficient without extra launches (the triton backend)."""
        total = self.grad_norm(grads, norm_type)
        return total, torch.clamp(max_norm / (total + CLIP_EPS), max=1.0)

    def scale_(self, tensors: list[Tensor], coef: Tensor) -> None:
        """``t *= coef`` in place for every tensor: the product in the compute dtype, rounded to
        ``t``'s dtype, exactly as ``grad_scale`` is applied (Note [grad_scale]). ``coef``: a 0-d
        tensor on the same device, in the compute dtype of ``tensors``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<flowoptim backend {self.name!r}>"
