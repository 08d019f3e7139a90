"""Spec §2 written out in numpy, independently of both backends, for the exact-value tests.

Every update is the spec's formula evaluated left to right, one numpy operation per spec
operation (each rounded to the array dtype: float64 for float64 tensors, float32 otherwise),
with the scalars of Note [float32 hyperparameters] / [float64 derived quantities]: f32(x)
hyperparameters, float32 bias corrections from the double betas, derived quantities computed in
double then rounded to float32 unless the tensors are float64 (spec §1.10). ``derived`` and
``bias_corrections`` are re-implemented here (not imported) so that a mistake in the contract's
helpers cannot hide in both sides.
"""

from __future__ import annotations

import math

import numpy as np


def f32(x):
    return float(np.float32(x))


def bc(beta1, beta2, t, enabled):
    if not enabled:
        return 1.0, 1.0
    return f32(1.0 - beta1**t), f32(1.0 - beta2**t)


def step(algo, opts, p, g, states, *, t, lr, grad_scale=None, f32_derived=False):
    """One spec step (numpy's overflow warnings silenced: inf is a legitimate value here).

    ``f32_derived=True`` rounds derived quantities to float32 even for float64 arrays (the
    behaviour spec §1.10 forbids; the tests use it to show that their check would notice).
    """
    with np.errstate(all="ignore"):
        _step(algo, opts, p, g, states, t=t, lr=lr, grad_scale=grad_scale, f32_d=f32_derived)


def _step(algo, opts, p, g, states, *, t, lr, grad_scale, f32_d):
    """One spec step on numpy arrays (``p`` and the arrays of ``states`` updated in place).

    ``opts``: the functional's keyword arguments (triton_helpers.OPTIONS plus call_defaults);
    ``states``: the functional's state lists' entries for this tensor (None where absent);
    ``grad_scale``: a Python float (already in the compute dtype) or None.
    """
    dt = p.dtype.type
    is64 = p.dtype == np.float64 and not f32_d

    def d(x):  # a derived quantity (spec §1.10)
        return dt(x if is64 else f32(x))

    def h(x):  # a hyperparameter, f32-rounded, as an array scalar of the compute dtype
        return dt(f32(x))

    if grad_scale is not None:
        g = g * dt(grad_scale)
    if opts.get("maximize", False):
        g = -g
    wd = h(opts.get("weight_decay", 0.0))
    lr_ = h(lr)
    if algo == "sgd":
        (buf,) = states
        if wd != 0:
            g = g + wd * p
        if buf is None:
            p -= lr_ * g
            return
        mom = h(opts["momentum"])
        buf[...] = mom * buf + d(1.0 - f32(opts["dampening"])) * g
        dd = g + mom * buf if opts["nesterov"] else buf
        p -= lr_ * dd
        return
    if algo in ("adam", "lamb"):
        m, v, vmax = states
        b1, b2 = f32(opts["beta1"]), f32(opts["beta2"])
        bc1, bc2 = bc(opts["beta1"], opts["beta2"], t, opts["do_bias_correction"])
        decoupled = opts["decoupled_weight_decay"] if algo == "adam" else opts["adam_w_mode"]
        if not decoupled and wd != 0:
            g = g + wd * p
        m[...] = dt(b1) * m + d(1.0 - b1) * g
        v[...] = dt(b2) * v + d(1.0 - b2) * (g * g)
        vv = v
        if vmax is not None:
            vmax[...] = np.maximum(vmax, v)
            vv = vmax
        denom = np.sqrt(vv) / d(math.sqrt(bc2)) + h(opts["eps"])
        if algo == "adam":
            new = p - (d(lr_ / bc1) * m) / denom
            lr_wd = d(lr_ * wd)
            if decoupled and lr_wd != 0:
                new = new - lr_wd * p
            p[...] = new
            return
        u = (m / dt(bc1)) / denom
        w_norm = np.sqrt(np.sum(p.astype(np.float64) ** 2)).astype(dt)
        u_norm = np.sqrt(np.sum(u.astype(np.float64) ** 2)).astype(dt)
        if not is64:  # float32 norms are float32 sums on the device; close enough here
            w_norm, u_norm = dt(w_norm), dt(u_norm)
        trust = w_norm / u_norm if (w_norm > 0 and u_norm > 0) else dt(1.0)
        if decoupled and wd != 0:
            u = u + wd * p
        p -= (lr_ * trust) * u
        return
    if algo == "rmsprop":
        r, a, buf = states
        alpha = f32(opts["alpha"])
        oma = d(1.0 - alpha)
        if wd != 0:
            g = g + wd * p
        r[...] = dt(alpha) * r + oma * (g * g)
        den = r
        if a is not None:
            a[...] = dt(alpha) * a + oma * g
            den = r - a * a  # a*a rounded first: numpy never fuses
        stp = lr_ * g / np.sqrt(den + h(opts["eps"]))
        if buf is None:
            p -= stp
        else:
            buf[...] = h(opts["momentum"]) * buf + stp
            p -= buf
        return
    if algo == "adagrad":
        (s,) = states
        clr = d(lr_ / (1.0 + (t - 1) * f32(opts["lr_decay"])))
        if wd != 0:
            g = g + wd * p
        s += g * g
        p -= clr * g / (np.sqrt(s) + h(opts["eps"]))
        return
    if algo == "adadelta":
        sa, ad = states
        rho = f32(opts["rho"])
        omr = d(1.0 - rho)
        eps = h(opts["eps"])
        if wd != 0:
            g = g + wd * p
        sa[...] = dt(rho) * sa + omr * (g * g)
        dd = np.sqrt(ad + eps) / np.sqrt(sa + eps) * g
        ad[...] = dt(rho) * ad + omr * (dd * dd)
        p -= lr_ * dd
        return
    raise ValueError(algo)
