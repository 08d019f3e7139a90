"""Shared helpers of the flowoptim-triton tests (Note [interpreted tests] in conftest.py)."""

from __future__ import annotations

import os

import torch

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
DEVICE = "cpu" if INTERPRET else "cuda"

#: (rtol, atol) of a differential comparison after a few steps, per dtype
TOL = {
    torch.float32: (2e-5, 2e-6),
    torch.float64: (1e-6, 1e-7),  # hyperparameters are float32 on every backend, derived
    # scalars (lr/bc1 ...) are float32 here and double in the reference
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}


def assert_close(actual, expected, dtype, msg=""):
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=msg or None)


def randn(n, dtype, seed, device=DEVICE, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g, dtype=torch.float64) * scale).to(dtype).to(device)


# ----------------------------------------------------------------------------- functional harness
def _adam(decoupled, amsgrad, bias, wd):
    return dict(
        decoupled_weight_decay=decoupled, amsgrad=amsgrad, do_bias_correction=bias, weight_decay=wd
    )


#: every algorithm's option sets (spec §2), as functional keyword arguments
OPTIONS = {
    "sgd": [
        dict(momentum=0.0, dampening=0.0, nesterov=False, maximize=False, weight_decay=0.0),
        dict(momentum=0.0, dampening=0.0, nesterov=False, maximize=True, weight_decay=0.1),
        dict(momentum=0.9, dampening=0.0, nesterov=False, maximize=False, weight_decay=0.1),
        dict(momentum=0.9, dampening=0.3, nesterov=False, maximize=True, weight_decay=0.0),
        dict(momentum=0.9, dampening=0.0, nesterov=True, maximize=False, weight_decay=0.1),
    ],
    "adam": [
        dict(
            decoupled_weight_decay=False, amsgrad=False, do_bias_correction=True, weight_decay=0.0
        ),
        dict(decoupled_weight_decay=False, amsgrad=True, do_bias_correction=True, weight_decay=0.1),
        dict(decoupled_weight_decay=True, amsgrad=False, do_bias_correction=True, weight_decay=0.1),
        dict(decoupled_weight_decay=True, amsgrad=True, do_bias_correction=False, weight_decay=0.1),
        dict(
            decoupled_weight_decay=False, amsgrad=False, do_bias_correction=False, weight_decay=0.0
        ),
    ],
    "lamb": [
        dict(adam_w_mode=True, amsgrad=False, do_bias_correction=True, weight_decay=0.1),
        dict(adam_w_mode=False, amsgrad=False, do_bias_correction=True, weight_decay=0.1),
        dict(adam_w_mode=True, amsgrad=True, do_bias_correction=False, weight_decay=0.0),
        dict(adam_w_mode=False, amsgrad=True, do_bias_correction=True, weight_decay=0.0),
    ],
    "rmsprop": [
        dict(alpha=0.99, centered=False, momentum=0.0, weight_decay=0.0),
        dict(alpha=0.9, centered=True, momentum=0.0, weight_decay=0.1),
        dict(alpha=0.99, centered=False, momentum=0.9, weight_decay=0.1),
        dict(alpha=0.9, centered=True, momentum=0.5, weight_decay=0.0),
    ],
    "adagrad": [
        dict(lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0),
        dict(lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1),
    ],
    "adadelta": [dict(rho=0.9, weight_decay=0.0), dict(rho=0.95, weight_decay=0.1)],
}


def state_names(algo, opts):
    """The functional's state lists (None where the option is off), in call order."""
    if algo == "sgd":
        return ["momentum_buffer" if opts["momentum"] > 0 else None]
    if algo in ("adam", "lamb"):
        return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if opts["amsgrad"] else None]
    if algo == "rmsprop":
        return [
            "square_avg",
            "grad_avg" if opts["centered"] else None,
            "momentum_buffer" if opts["momentum"] > 0 else None,
        ]
    if algo == "adagrad":
        return ["sum"]
    return ["square_avg", "acc_delta"]


def make_states(algo, opts, params):
    init = opts.get("initial_accumulator_value", 0.0)
    out = []
    for name in state_names(algo, opts):
        if name is None:
            out.append(None)
        else:
            out.append([torch.full_like(p, init if name == "sum" else 0.0) for p in params])
    return out


def call(backend, algo, opts, params, grads, states, *, step, lr, grad_scale=None):
    kw = {k: v for k, v in opts.items() if k != "initial_accumulator_value"}
    kw.update(lr=lr, grad_scale=grad_scale)
    kw.setdefault("maximize", False)
    for k, v in call_defaults(algo, step).items():
        kw.setdefault(k, v)  # opts may override betas and eps
    getattr(backend, algo)(params, grads, *states, **kw)


def call_defaults(algo, step):
    """The keyword arguments :func:`call` adds to an option set (unless it has them)."""
    if algo in ("adam", "lamb"):
        return dict(step=step, beta1=0.9, beta2=0.999, eps=1e-8)
    if algo == "rmsprop":
        return dict(eps=1e-8)
    if algo == "adagrad":
        return dict(step=step, eps=1e-10)
    if algo == "adadelta":
        return dict(eps=1e-6)
    return {}


def clone_all(tensors):
    return [None if x is None else [t.clone() for t in x] for x in tensors]
