"""float64 NumPy implementations of every update, clip and schedule of ``docs/semantics.md``.

This module imports neither torch nor flowoptim: the expected values of the conformance suite are
derived from these formulas alone, so that a broken reference backend cannot hide its own bugs.

Note [float32 hyperparameters]
------------------------------
OneFlow passes hyperparameters to its kernels as C ``float``. The spec therefore rounds every
hyperparameter to float32 (also for float64 parameters): ``f32(beta)``, and bias corrections
``1 - beta**t`` computed in double from the Python value, then rounded to float32
(:func:`bias_corrections`). Every other quantity derived from them (``1 - beta`` by
:func:`one_minus`, ``1 - dampening``, ``sqrt(bc2)``, ``lr/bc1``, ``lr*wd``, LAMB's trust ratio) is
float64 arithmetic on those values and is never rounded to float32: that is exactly spec §1.10's
rule for float64 parameters, so float64 backends are checked to 1e-12. A float32 backend rounds
those derived quantities to float32 (its C ``float``), a difference of at most 2**-24 relative that
the float32 tolerance covers.

Note [machine-independent formulas]
-----------------------------------
The vectors are checked in and regenerated bit for bit on whatever x86-64 (or other) CPU runs
``nox -s vectors``, so every float64 value here must be exactly defined by IEEE 754, whatever
SIMD path numpy dispatches to. Elementwise ``+ - * /``, ``sqrt``, ``abs``, ``maximum`` and
conversions are correctly rounded on every path, so numpy may do them. Reductions are not:
``np.sum`` and ``np.linalg.norm`` add in an order (and with a pairwise blocking) that depends on
the SIMD width, and numpy's vectorised ``**`` may differ from the scalar ``pow`` in the last bit.
So sums go through :func:`_fsum` (``math.fsum``: the exactly rounded sum, independent of order)
and non-trivial powers through scalar ``math.pow`` (:func:`_pow`). ``test_generate`` regenerates
with numpy's CPU dispatch narrowed and checks that the bits do not move.

Note [low precision storage]
----------------------------
The simulators take an optional ``store`` function, applied to every parameter, gradient and state
tensor whenever it is written to memory. ``None`` keeps float64; :func:`rounder` gives the rounding
of float16 / bfloat16 storage, which is how the suite derives expected values for low-precision
runs (float32 arithmetic, state kept in the parameter's dtype, spec §7).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "DEFAULTS",
    "LAMBDAS",
    "STATE_KEYS",
    "bias_corrections",
    "clip_grads",
    "coalesce",
    "dense_of",
    "f32",
    "grad_norm",
    "one_minus",
    "plateau_lrs",
    "rounder",
    "sched_lr",
    "simulate",
]

Array = np.ndarray
Store = Callable[[Array], Array] | None


# ---------------------------------------------------------------------------- rounding helpers
def f32(x: float) -> float:
    """The float32 value nearest to ``x``, as a Python float."""
    return float(np.float32(x))


def one_minus(x: float) -> float:
    """``1 - beta`` from ``f32(beta)``, in float64 (spec §1.10; exact for beta in [0.5, 1))."""
    return 1.0 - f32(x)


def bias_corrections(beta1: float, beta2: float, step: int, enabled: bool) -> tuple[float, float]:
    """``(1 - beta1**t, 1 - beta2**t)`` in double from the Python values, rounded to float32."""
    if not enabled:
        return 1.0, 1.0
    return f32(1.0 - beta1**step), f32(1.0 - beta2**step)


def _round_bf16(x: Array) -> Array:
    """Round to bfloat16 (round to nearest even, through float32), returned as float64."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    bits = a.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    out = np.where(np.isnan(a), a, out)  # keep NaN a NaN
    return out.astype(np.float64)


def rounder(dtype: str) -> Store:
    """The storage rounding of ``dtype`` ("float64", "float32", "float16", "bfloat16")."""
    if dtype == "float64":
        return None
    if dtype == "float32":
        return lambda x: np.asarray(x, dtype=np.float32).astype(np.float64)
    if dtype == "float16":
        return lambda x: np.asarray(x, dtype=np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _round_bf16
    raise ValueError(f"unknown dtype {dtype!r} (expected float64, float32, float16 or bfloat16)")


def _st(store: Store, x: Array) -> Array:
    return x if store is None else store(x)


def _fsum(values) -> float:
    """The exactly rounded sum of non-negative float64 values (Note [machine-independent
    formulas]); an overflowing sum is inf, as the float64 sum it stands for."""
    try:
        return math.fsum(np.asarray(values, dtype=np.float64).ravel().tolist())
    except OverflowError:
        return math.inf


def _pow(x: float, y: float) -> float:
    """``x ** y`` for ``x >= 0`` (or NaN), by scalar libm ``pow``, or exactly for ``y`` in
    (1, 2, 0.5) (Note [machine-independent formulas]); an overflow gives inf."""
    if y == 1.0:
        return x
    if y == 2.0:
        return x * x
    if y == 0.5:
        return math.sqrt(x)
    try:
        return math.pow(x, y)
    except OverflowError:
        return math.inf


def _sum_sq(a: Array) -> float:
    """``sum(a * a)``: elementwise squares (exact IEEE products), then :func:`_fsum`."""
    a = np.asarray(a, dtype=np.float64)
    return _fsum(a * a)


# ---------------------------------------------------------------------------- defaults (spec §2)
DEFAULTS: dict[str, dict[str, object]] = {
    "SGD": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                maximize=False),
    "Adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 do_bias_correction=True, maximize=False),
    "AdamW": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                  do_bias_correction=True, maximize=False),
    "LAMB": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, adam_w_mode=True,
                 do_bias_correction=True, amsgrad=False, maximize=False),
    "RMSprop": dict(lr=1e-3, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False, maximize=False),
    "Adagrad": dict(lr=1e-3, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                    eps=1e-10, maximize=False),
    "Adadelta": dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
}  # fmt: skip


def STATE_KEYS(family: str, opts: dict) -> list[str]:
    """The state tensors a parameter of ``family`` has under the group options ``opts``."""
    if family == "SGD":
        return ["momentum_buffer"] if opts["momentum"] > 0 else []
    if family in ("Adam", "AdamW", "LAMB"):
        keys = ["exp_avg", "exp_avg_sq"]
        return [*keys, "max_exp_avg_sq"] if opts["amsgrad"] else keys
    if family == "RMSprop":
        keys = ["square_avg"]
        if opts["centered"]:
            keys.append("grad_avg")
        if opts["momentum"] > 0:
            keys.append("momentum_buffer")
        return keys
    if family == "Adagrad":
        return ["sum"]
    if family == "Adadelta":
        return ["square_avg", "acc_delta"]
    raise ValueError(f"unknown optimizer family {family!r}")


def _init_state(family: str, opts: dict, p: Array) -> dict[str, Array]:
    fill = float(opts["initial_accumulator_value"]) if family == "Adagrad" else 0.0
    return {k: np.full(p.shape, fill, dtype=np.float64) for k in STATE_KEYS(family, opts)}


# ---------------------------------------------------------------------------- updates (spec §2)
def _grad(g: Array, p: Array, wd: float, maximize: bool) -> Array:
    """``g' = (maximize ? -g : g) + wd*p``; ``wd == 0`` adds nothing, even for a non-finite
    ``p`` (spec §1.6, §1.9)."""
    g = -g if maximize else g
    return g if wd == 0 else g + wd * p


def _decay(x: Array, p: Array, c: float) -> Array:
    """``x - c*p`` (decoupled decay); ``c == 0`` subtracts nothing (spec §1.6)."""
    return x if c == 0 else x - c * p


def sgd(p, g, s, *, lr, momentum, dampening, weight_decay, nesterov, maximize, **_):
    """One SGD update of one tensor; returns the new parameter, updates ``s`` in place."""
    lr, mom, wd = f32(lr), f32(momentum), f32(weight_decay)
    gp = _grad(g, p, wd, maximize)
    # the branch follows the Python value (momentum=1e-46 has a buffer although f32 rounds it to
    # 0), as the optimizer class decides which state exists (Note [degenerate hyperparameters])
    if momentum == 0:
        return p - lr * gp
    buf = mom * s["momentum_buffer"] + one_minus(dampening) * gp
    s["momentum_buffer"] = buf
    d = gp + mom * buf if nesterov else buf
    return p - lr * d


def _adam_direction(g, s, *, t, beta1, beta2, eps, amsgrad, do_bias_correction):
    b1, b2 = f32(beta1), f32(beta2)
    bc1, bc2 = bias_corrections(beta1, beta2, t, do_bias_correction)
    m = b1 * s["exp_avg"] + one_minus(beta1) * g
    v = b2 * s["exp_avg_sq"] + one_minus(beta2) * g * g
    s["exp_avg"], s["exp_avg_sq"] = m, v
    if amsgrad:
        v = np.maximum(s["max_exp_avg_sq"], v)
        s["max_exp_avg_sq"] = v
    return m, v, bc1, bc2


def adam(p, g, s, *, t, lr, betas, eps, weight_decay, amsgrad, do_bias_correction,
         decoupled=False, maximize=False, **_):  # fmt: skip
    """One Adam (``decoupled=False``) or AdamW update of one tensor."""
    lr, wd, eps32 = f32(lr), f32(weight_decay), f32(eps)
    gp = _grad(g, p, 0.0 if decoupled else wd, maximize)
    m, v, bc1, bc2 = _adam_direction(
        gp, s, t=t, beta1=betas[0], beta2=betas[1], eps=eps, amsgrad=amsgrad,
        do_bias_correction=do_bias_correction,
    )  # fmt: skip
    new = p - (lr / bc1) * m / (np.sqrt(v) / math.sqrt(bc2) + eps32)
    if decoupled:
        new = _decay(new, p, lr * wd)
    return new


def lamb(p, g, s, *, t, lr, betas, eps, weight_decay, adam_w_mode, amsgrad, do_bias_correction,
         maximize=False, **_):  # fmt: skip
    """One LAMB update of one tensor (per-tensor trust ratio, weight decay outside the norm)."""
    lr, wd, eps32 = f32(lr), f32(weight_decay), f32(eps)
    gp = _grad(g, p, 0.0 if adam_w_mode else wd, maximize)
    m, v, bc1, bc2 = _adam_direction(
        gp, s, t=t, beta1=betas[0], beta2=betas[1], eps=eps, amsgrad=amsgrad,
        do_bias_correction=do_bias_correction,
    )  # fmt: skip
    u = (m / bc1) / (np.sqrt(v) / math.sqrt(bc2) + eps32)
    w_norm = math.sqrt(_sum_sq(p))
    u_norm = math.sqrt(_sum_sq(u))
    trust = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    return p - (lr * trust) * (u if not adam_w_mode or wd == 0 else u + wd * p)


def rmsprop(p, g, s, *, lr, alpha, eps, weight_decay, momentum, centered, maximize=False, **_):
    """One RMSprop update of one tensor (eps inside the square root)."""
    lr, a, eps32, wd, mom = f32(lr), f32(alpha), f32(eps), f32(weight_decay), f32(momentum)
    oma = one_minus(alpha)
    gp = _grad(g, p, wd, maximize)
    r = a * s["square_avg"] + oma * gp * gp
    s["square_avg"] = r
    if centered:
        ga = a * s["grad_avg"] + oma * gp
        s["grad_avg"] = ga
        den = r - ga * ga  # a*a rounded before the subtraction (numpy never fuses)
    else:
        den = r
    step = lr * gp / np.sqrt(den + eps32)
    if momentum > 0:  # the Python value, as in sgd()
        buf = mom * s["momentum_buffer"] + step
        s["momentum_buffer"] = buf
        return p - buf
    return p - step


def adagrad(p, g, s, *, t, lr, lr_decay, weight_decay, eps, maximize=False, **_):
    """One Adagrad update of one tensor (eps outside the square root, optimizer-wide t)."""
    lr, decay, wd, eps32 = f32(lr), f32(lr_decay), f32(weight_decay), f32(eps)
    clr = lr / (1.0 + (t - 1) * decay)
    gp = _grad(g, p, wd, maximize)
    S = s["sum"] + gp * gp
    s["sum"] = S
    return p - clr * gp / (np.sqrt(S) + eps32)


def adadelta(p, g, s, *, lr, rho, eps, weight_decay, maximize=False, **_):
    """One Adadelta update of one tensor."""
    lr, r, eps32, wd = f32(lr), f32(rho), f32(eps), f32(weight_decay)
    omr = one_minus(rho)
    gp = _grad(g, p, wd, maximize)
    sa = r * s["square_avg"] + omr * gp * gp
    d = np.sqrt(s["acc_delta"] + eps32) / np.sqrt(sa + eps32) * gp
    s["square_avg"] = sa
    s["acc_delta"] = r * s["acc_delta"] + omr * d * d
    return p - lr * d


UPDATES = {
    "SGD": sgd,
    "Adam": adam,
    "AdamW": lambda p, g, s, **kw: adam(p, g, s, decoupled=True, **kw),
    "LAMB": lamb,
    "RMSprop": rmsprop,
    "Adagrad": adagrad,
    "Adadelta": adadelta,
}


# ---------------------------------------------------------------------------- clip_grad (spec §3)
def grad_norm(grads: Sequence[Array], norm_type: float) -> float:
    """Total norm of a group's gradients: the p-norm of the per-tensor p-norms (spec §3)."""
    grads = [np.asarray(g, dtype=np.float64).ravel() for g in grads]
    if not grads:
        return 0.0
    nt = float(norm_type)
    if nt == math.inf:
        return float(max(np.max(np.abs(g)) if g.size else 0.0 for g in grads))
    if nt == -math.inf:
        return float(min(np.min(np.abs(g)) for g in grads))
    if nt == 0:
        return float(sum(1 for g in grads if np.count_nonzero(g)))
    # Note [machine-independent formulas]: scalar pow and exactly rounded sums
    per = [_pow(_fsum([_pow(x, nt) for x in np.abs(g).tolist()]), 1.0 / nt) for g in grads]
    return _pow(_fsum([_pow(x, nt) for x in per]), 1.0 / nt)


def clip_grads(grads: Sequence[Array], max_norm: float, norm_type: float = 2.0):
    """``(total, clipped_grads)`` of one group: ``coef = min(max_norm/(total+1e-6), 1)``."""
    if not grads:
        return 0.0, []
    total = grad_norm(grads, norm_type)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        coef = max_norm / (total + 1e-6)
        coef = coef if math.isnan(coef) else min(coef, 1.0)
        return total, [np.asarray(g, dtype=np.float64) * coef for g in grads]


# ---------------------------------------------------------------------------- sparse (spec §5)
def _is_sparse(g) -> bool:
    return isinstance(g, dict)


def _sparse_in(store: Store, g: dict) -> dict:
    """A sparse gradient ``{"rows", "values"}`` as stored (values rounded by ``store``)."""
    return {"rows": [int(r) for r in g["rows"]],
            "values": _st(store, np.asarray(g["values"], dtype=np.float64))}  # fmt: skip


def coalesce(g: dict, store: Store = None) -> tuple[list[int], Array]:
    """``(rows, values)``: the distinct rows, sorted, and each row's values summed (in order of
    appearance: elementwise additions, exactly defined; Note [machine-independent formulas]),
    rounded by ``store`` as a coalesced tensor of the parameter's dtype stores them."""
    vals = np.asarray(g["values"], dtype=np.float64)
    sums: dict[int, Array] = {}
    for r, v in zip(g["rows"], vals, strict=True):
        sums[r] = v.copy() if r not in sums else sums[r] + v
    rows = sorted(sums)
    shape = (len(rows), *vals.shape[1:])
    out = np.stack([sums[r] for r in rows]) if rows else np.zeros(shape)
    return rows, _st(store, out)


def dense_of(g: dict, shape: Sequence[int]) -> Array:
    """The dense gradient equivalent to a sparse one (duplicates summed, zeros elsewhere)."""
    rows, vals = coalesce(g)
    out = np.zeros(tuple(shape), dtype=np.float64)
    for r, v in zip(rows, vals, strict=True):
        out[r] = v
    return out


def _lazy_update(family: str, p: Array, g: dict, tensors: dict, t: int, opts: dict,
                 store: Store) -> Array:  # fmt: skip
    """The lazy update of spec §5: the dense formula on the rows present (coalesced), every other
    row of ``p`` and of each state tensor unchanged. Updates ``tensors`` in place."""
    rows, vals = coalesce(g, store)
    if not rows:
        return p
    sub = {k: v[rows] for k, v in tensors.items()}
    new_rows = _st(store, UPDATES[family](p[rows], vals, sub, t=t, **opts))
    new_p = p.copy()
    new_p[rows] = new_rows
    for k, v in sub.items():
        full = tensors[k].copy()
        full[rows] = _st(store, v)
        tensors[k] = full
    return new_p


# ---------------------------------------------------------------------------- optimizer simulation
def _group_options(family: str, defaults: dict, group: dict) -> dict:
    opts = dict(DEFAULTS[family])
    opts.update(defaults)
    opts.update({k: v for k, v in group.items() if k != "params"})
    return opts


def simulate(
    family: str,
    params: Sequence[Array],
    groups: Sequence[dict],
    defaults: dict,
    steps: Sequence[dict],
    store: Store = None,
) -> list[dict]:
    """Run ``steps`` of optimizer ``family`` and return what each step should leave behind.

    ``groups`` are param-group dicts whose ``params`` are indices into ``params``; ``defaults`` the
    constructor's keyword arguments. Each step is a dict with ``grads`` (one array, a sparse
    ``{"rows", "values"}`` (spec §5: a lazy update of the rows present), or None per
    parameter), optionally ``lr`` (``{group index: new lr}`` set before the step), ``clip``
    (``{"error_if_nonfinite": bool, "fused": bool}``: call ``clip_grad`` before the step) and
    ``update`` (False: only clip). Returns one dict per step: ``params``, ``state`` (per parameter:
    ``{key: array}`` plus ``"step"``, empty if never updated) and, when clipping, ``totals`` and
    ``grads`` (the gradients after ``clip_grad``), or ``raises`` when clip_grad must raise.
    """
    params = [_st(store, np.asarray(p, dtype=np.float64)) for p in params]
    state: list[dict] = [{} for _ in params]
    group_opts = [_group_options(family, defaults, g) for g in groups]
    t = 0
    out = []
    for step in steps:
        for gi, lr in (step.get("lr") or {}).items():
            group_opts[int(gi)]["lr"] = lr
        grads = [None if g is None else _sparse_in(store, g) if _is_sparse(g)
                 else _st(store, np.asarray(g, dtype=np.float64))
                 for g in step["grads"]]  # fmt: skip
        rec: dict = {}
        clip = step.get("clip")
        if clip is not None:
            totals, clipped = [], list(grads)
            for group, opts in zip(groups, group_opts, strict=True):
                if opts.get("clip_grad_max_norm") is None:
                    continue
                idx = [i for i in group["params"] if grads[i] is not None]
                # a sparse gradient contributes its coalesced values and is replaced by the
                # coalesced gradient, its values scaled (spec §5); empty values count for nothing
                norm_in = {i: coalesce(grads[i], store) if _is_sparse(grads[i]) else None
                           for i in idx}  # fmt: skip
                arrays = [norm_in[i][1] if norm_in[i] else grads[i] for i in idx]
                if any(norm_in.values()):
                    idx = [i for i, a in zip(idx, arrays, strict=True) if a.size]
                    arrays = [a for a in arrays if a.size]
                total, scaled = clip_grads(
                    arrays, float(opts["clip_grad_max_norm"]),
                    float(opts.get("clip_grad_norm_type", 2.0)),
                )  # fmt: skip
                totals.append(total)
                for i, g in zip(idx, scaled, strict=True):
                    if norm_in[i]:
                        clipped[i] = {"rows": norm_in[i][0], "values": _st(store, g)}
                    else:
                        clipped[i] = _st(store, g)
            rec["totals"] = totals
            nonfinite = any(not math.isfinite(x) for x in totals)
            if clip.get("error_if_nonfinite") and nonfinite:
                rec["raises"] = "RuntimeError"
                rec["grads"] = grads
            else:
                rec["grads"] = grads if clip.get("fused") else clipped
                grads = clipped
            rec["grads"] = [dense_of(g, p.shape) if _is_sparse(g) else g
                            for g, p in zip(rec["grads"], params, strict=True)]  # fmt: skip
        if step.get("update", True) and "raises" not in rec:
            t += 1
            for group, opts in zip(groups, group_opts, strict=True):
                for i in group["params"]:
                    if grads[i] is None:
                        continue
                    if not state[i]:
                        state[i] = {k: _st(store, v) for k, v in
                                    _init_state(family, opts, params[i]).items()}  # fmt: skip
                    tensors = {k: v for k, v in state[i].items() if k != "step"}
                    if _is_sparse(grads[i]):
                        new_p = _lazy_update(family, params[i], grads[i], tensors, t, opts, store)
                    else:
                        new_p = UPDATES[family](params[i], grads[i], tensors, t=t, **opts)
                    params[i] = _st(store, new_p)
                    state[i] = {k: _st(store, v) for k, v in tensors.items()}
                    state[i]["step"] = t
        rec["params"] = list(params)
        rec["state"] = [dict(s) for s in state]
        out.append(rec)
    return out


# ---------------------------------------------------------------------------- schedulers (spec §6)
LAMBDAS: dict[str, Callable[[int], float]] = {
    "pow0.95": lambda s: 0.95**s,
    "inverse": lambda s: 1.0 / (s + 1),
    "warmup3": lambda s: min(1.0, (s + 1) / 3),
}
"""Named ``lr_lambda`` functions (a JSON vector names one; the runner builds the same function)."""


def sched_lr(
    kind: str, kw: dict, base: float, s: int, bases: Sequence[float] = (), group: int = 0
) -> float:
    """The lr of a group with base lr ``base`` at scheduler step ``s`` (closed form, spec §6).

    ``bases`` are all groups' base lrs (WarmupLR takes the first one's end factor, as OneFlow).
    For ``LambdaLR`` ``kw["lr_lambda"]`` names a function of :data:`LAMBDAS` (or is a list of
    names, one per group; ``group`` is the group's index).
    """
    b = float(base)
    if kind == "StepLR":
        return b * kw.get("gamma", 0.1) ** (s // kw["step_size"])
    if kind == "MultiStepLR":
        return b * kw.get("gamma", 0.1) ** bisect.bisect_right(kw["milestones"], s)
    if kind == "ExponentialLR":
        return b * kw["gamma"] ** s
    if kind == "CosineAnnealingLR":
        e = kw.get("eta_min", 0.0)
        return e + (b - e) * (1 + math.cos(math.pi * s / kw["T_max"])) / 2
    if kind == "CosineDecayLR":
        d, alpha = kw["decay_steps"], kw.get("alpha", 0.0)
        if s < d:
            return b * ((1 - alpha) * (1 + math.cos(math.pi * s / d)) / 2 + alpha)
        return b * alpha
    if kind == "PolynomialLR":
        d, e = kw["decay_batch"], kw.get("end_learning_rate", 1e-4)
        power = kw.get("power", 1.0)
        if kw.get("cycle", False):
            c = s if s > 0 else 1
            dd = d * math.ceil(c / d)
            return (b - e) * (1 - c / dd) ** power + e
        c = min(s, d)
        return (b - e) * (1 - c / d) ** power + e
    if kind == "LambdaLR":
        fn = kw["lr_lambda"]
        return b * LAMBDAS[fn[group] if isinstance(fn, list | tuple) else fn](s)
    if kind == "ConstantLR":
        return b * kw.get("factor", 1.0 / 3) if s < kw.get("total_iters", 5) else b
    if kind == "LinearLR":
        sf, ef = kw.get("start_factor", 1.0 / 3), kw.get("end_factor", 1.0)
        total = kw.get("total_iters", 5)
        return b * (sf + (ef - sf) * s / total) if s < total else b * ef
    if kind == "CosineAnnealingWarmRestarts":
        return _warm_restarts(kw, b, s)
    if kind == "SequentialLR":
        ms = kw["milestones"]
        resc = kw.get("interval_rescaling", False)
        resc = list(resc) if isinstance(resc, list | tuple) else [resc] * len(ms)
        i = bisect.bisect_right(ms, s)
        cur = s - ms[i - 1] if i > 0 and resc[i - 1] else s
        sub = kw["schedulers"][i]
        return sched_lr(sub["kind"], sub["kwargs"], b, cur, bases, group)
    if kind == "ChainedScheduler":
        lr = b
        for sub in kw["schedulers"]:
            lr = sched_lr(sub["kind"], sub["kwargs"], lr, s, bases, group)
        return lr
    if kind == "WarmupLR":
        return _warmup(kw, b, s, bases or [b], group)
    raise ValueError(f"unknown scheduler {kind!r}")


def _warm_restarts(kw: dict, b: float, s: int) -> float:
    t0, tm = kw["T_0"], kw.get("T_mult", 1)
    eta_min, decay = kw.get("eta_min", 0.0), kw.get("decay_rate", 1.0)
    limit = kw.get("restart_limit", 0)
    if tm > 1:
        epoch = math.floor(math.log(1 - s / t0 * (1 - tm), tm))
        epoch_steps = tm**epoch * t0
        in_epoch = s - (1 - tm**epoch) / (1 - tm) * t0
    else:
        epoch = s // t0
        epoch_steps = t0
        in_epoch = s - epoch_steps * epoch
    gamma = decay**epoch
    if limit == 0 or (limit > 0 and epoch < limit):
        cos_decay = 0.5 * (1 + math.cos(math.pi * in_epoch / epoch_steps))
        return eta_min + (b * gamma - eta_min) * cos_decay
    return eta_min


def _warmup(kw: dict, b: float, s: int, bases: Sequence[float], group: int) -> float:
    """OneFlow 0.9.0's WarmupLR: a LinearLR/ConstantLR warm-up, then the wrapped scheduler."""
    wf = kw.get("warmup_factor", 1.0 / 3)
    iters = kw.get("warmup_iters", 5)
    method = kw.get("warmup_method", "linear")
    prefix = kw.get("warmup_prefix", False)
    inner = kw.get("scheduler")
    if (iters > 0 and s < iters) or inner is None:
        if method == "constant":
            return sched_lr("ConstantLR", {"factor": wf, "total_iters": iters}, b, s)
        if inner is not None and not prefix:
            # the end factor per group, from the group's own base lr: OneFlow 0.9.0 takes the
            # first group's and raises unless every group has the same base lr, where the two
            # agree; per group, layer-wise base lrs work (issue 12, docs/semantics.md §9)
            end_lr = sched_lr(inner["kind"], inner["kwargs"], b, iters, bases, group)
            if b == 0:
                return end_lr * s / iters
            end = end_lr / b
        else:
            end = 1.0
        lin = {"start_factor": wf, "end_factor": end, "total_iters": iters}
        return sched_lr("LinearLR", lin, b, s)
    cur = s - iters if prefix and iters > 0 else s
    return sched_lr(inner["kind"], inner["kwargs"], b, cur, bases, group)


def plateau_lrs(kw: dict, lrs: Sequence[float], metrics: Sequence[float]) -> list[list[float]]:
    """The group lrs after each ``ReduceLROnPlateau.step(metric)`` (torch's algorithm)."""
    mode, factor = kw.get("mode", "min"), kw.get("factor", 0.1)
    patience, threshold = kw.get("patience", 10), kw.get("threshold", 1e-4)
    tmode, cooldown = kw.get("threshold_mode", "rel"), kw.get("cooldown", 0)
    eps = kw.get("eps", 1e-8)
    min_lr = kw.get("min_lr", 0.0)
    min_lrs = list(min_lr) if isinstance(min_lr, list | tuple) else [min_lr] * len(lrs)
    lrs = [float(x) for x in lrs]
    best = math.inf if mode == "min" else -math.inf
    bad, cool = 0, 0
    out = []

    def better(a: float) -> bool:
        if mode == "min":
            return a < best * (1 - threshold) if tmode == "rel" else a < best - threshold
        return a > best * (threshold + 1) if tmode == "rel" else a > best + threshold

    for metric in metrics:
        if better(metric):
            best, bad = metric, 0
        else:
            bad += 1
        if cool > 0:
            cool -= 1
            bad = 0
        if bad > patience:
            for i, old in enumerate(lrs):
                new = max(old * factor, min_lrs[i])
                if old - new > eps:
                    lrs[i] = new
            cool, bad = cooldown, 0
        out.append(list(lrs))
    return out
