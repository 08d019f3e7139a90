"""The table of conformance cases: readable ids, hyperparameters and inputs, no expected values.

Every case is a plain dict; :mod:`flowoptim_conformance.generate` adds the expected values derived
from :mod:`flowoptim_conformance.formulas` and writes ``vectors/*.json``. This module imports
neither torch nor flowoptim. Inputs come from a generator seeded by the case id and are rounded to
float32, so the same inputs feed every dtype.

Kinds of case:

``optim``  an optimizer (``optimizer``) with ``defaults`` (constructor kwargs), ``groups`` (dicts
           whose ``params`` index ``params``, a list of shapes or arrays) and ``steps`` (``grads``
           per parameter or None, ``lr`` changes, ``clip``: call ``clip_grad`` before the step).
           A gradient may be sparse: ``{"rows": [...], "values": array}`` (spec §5).
``error``  constructing ``optimizer`` (or ``add_param_group``, or a scheduler) must raise.
``sched``  a scheduler on a torch.optim.SGD with two groups; expected lrs after construction and
           after every step (also resumed from a state dict or with ``last_step``).
``warn``   ``clip_grad`` with no group clipped: a warning, nothing touched.

To add a case, append it in the builder of its family below, then run
``python -m flowoptim_conformance.generate`` and commit the changed vectors.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

__all__ = ["FAMILY_FILES", "all_cases", "build_inputs"]

#: the vectors file of each table row (optimizer or scheduler family)
FAMILY_FILES = {
    "SGD": "sgd",
    "Adam": "adam",
    "AdamW": "adamw",
    "LAMB": "lamb",
    "RMSprop": "rmsprop",
    "Adagrad": "adagrad",
    "Adadelta": "adadelta",
    "clip_grad": "clip_grad",
}
SCHED_FILE = "schedulers"
BIG = 1031  # the "1000+" size: not a multiple of any block size
STEPS = 6


# ---------------------------------------------------------------------------- inputs
def _rng(case_id: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case_id.encode()))


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def build_inputs(case: dict) -> dict:
    """Materialise a case's ``params`` and ``grads``: shapes become seeded float32 values.

    A parameter given as a shape gets standard-normal values; a gradient given as ``"rand"`` gets
    standard-normal values times the case's ``grad_scale`` (default 1); a sparse gradient
    ``{"rows": [r, ...]}`` (COO rows of dim 0, repeats allowed, spec §5) gets standard-normal
    values of shape ``(len(rows), *p.shape[1:])`` and becomes ``{"rows": ..., "values": ...}``;
    arrays are kept (rounded to float32); None stays None.
    """
    rng = _rng(case["id"])
    out = dict(case)
    params = []
    for p in case["params"]:
        if isinstance(p, tuple):
            params.append(_f32(rng.standard_normal(p)))
        else:
            params.append(_f32(p))
    out["params"] = params
    scale = case.get("grad_scale", 1.0)
    steps = []
    for step in case.get("steps", []):
        s = dict(step)
        grads = []
        for p, g in zip(params, step["grads"], strict=True):
            if g is None:
                grads.append(None)
            elif isinstance(g, str) and g == "rand":
                grads.append(_f32(rng.standard_normal(p.shape) * scale))
            elif isinstance(g, dict):  # sparse: {"rows": [...]} (spec §5)
                vals = rng.standard_normal((len(g["rows"]), *p.shape[1:])) * scale
                grads.append({"rows": list(g["rows"]), "values": _f32(vals)})
            else:
                grads.append(_f32(np.broadcast_to(np.asarray(g, dtype=np.float64), p.shape)))
        s["grads"] = grads
        steps.append(s)
    out["steps"] = steps
    return out


def _steps(n_params: int, n: int = STEPS, none: dict | None = None, lr: dict | None = None,
           clip: dict | None = None) -> list[dict]:  # fmt: skip
    """``n`` steps of random grads; ``none`` maps a step index to the params without a grad."""
    out = []
    for k in range(n):
        missing = (none or {}).get(k, ())
        step = {"grads": [None if i in missing else "rand" for i in range(n_params)]}
        if lr and k in lr:
            step["lr"] = lr[k]
        if clip is not None:
            step["clip"] = dict(clip)
        out.append(step)
    return out


# ---------------------------------------------------------------------------- optimizer options
# (variant name, constructor kwargs); the first of each list is the family's "plain" case.
VARIANTS: dict[str, list[tuple[str, dict]]] = {
    "SGD": [
        ("plain", dict(lr=0.1)),
        ("weight-decay", dict(lr=0.1, weight_decay=0.05)),
        ("momentum", dict(lr=0.1, momentum=0.9)),
        ("momentum-dampening", dict(lr=0.1, momentum=0.9, dampening=0.3)),
        ("momentum-full-dampening", dict(lr=0.1, momentum=0.5, dampening=1.0)),
        ("nesterov", dict(lr=0.1, momentum=0.9, nesterov=True)),
        ("nesterov-weight-decay", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
        ("maximize", dict(lr=0.1, maximize=True)),
        ("maximize-weight-decay", dict(lr=0.1, maximize=True, weight_decay=0.1)),
        ("maximize-momentum-dampening-weight-decay",
         dict(lr=0.05, momentum=0.7, dampening=0.2, weight_decay=0.03, maximize=True)),
        ("maximize-nesterov", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
        ("defaults", dict()),
        # OneFlow 0.9.0 accepts nesterov without momentum and with dampening (spec §1.7, §9)
        ("nesterov-no-momentum", dict(lr=0.1, nesterov=True)),
        ("nesterov-dampening", dict(lr=0.1, momentum=0.9, dampening=0.5, nesterov=True)),
        # valid momentum that float32 rounds to 0: a buffer, damped, with momentum 0
        ("momentum-underflow-dampening", dict(lr=0.1, momentum=1e-46, dampening=0.5)),
        ("nesterov-dampening-maximize-weight-decay",
         dict(lr=0.05, momentum=0.6, dampening=1.0, nesterov=True, maximize=True,
              weight_decay=0.02)),
    ],
    "Adam": [
        ("plain", dict(lr=0.01)),
        ("weight-decay", dict(lr=0.01, weight_decay=0.1)),
        ("amsgrad", dict(lr=0.01, amsgrad=True)),
        ("no-bias-correction", dict(lr=0.01, do_bias_correction=False)),
        ("amsgrad-no-bias-correction", dict(lr=0.01, amsgrad=True, do_bias_correction=False)),
        ("amsgrad-weight-decay", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
        ("betas", dict(lr=0.02, betas=(0.8, 0.99))),
        ("low-betas", dict(lr=0.02, betas=(0.3, 0.45))),
        ("eps", dict(lr=0.01, eps=1e-3)),
        ("all-options", dict(lr=0.03, betas=(0.85, 0.95), eps=1e-4, weight_decay=0.02,
                             amsgrad=True, do_bias_correction=False)),
        ("defaults", dict()),
        ("maximize", dict(lr=0.01, maximize=True)),
        ("maximize-amsgrad-weight-decay",
         dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.05)),
    ],
    "AdamW": [
        ("plain", dict(lr=0.01)),
        ("weight-decay", dict(lr=0.01, weight_decay=0.1)),
        ("amsgrad", dict(lr=0.01, amsgrad=True)),
        ("no-bias-correction", dict(lr=0.01, do_bias_correction=False)),
        ("amsgrad-weight-decay", dict(lr=0.01, amsgrad=True, weight_decay=0.2)),
        ("no-bias-correction-weight-decay",
         dict(lr=0.01, do_bias_correction=False, weight_decay=0.1)),
        ("betas", dict(lr=0.02, betas=(0.7, 0.9), weight_decay=0.01)),
        ("eps", dict(lr=0.01, eps=1e-3, weight_decay=0.05)),
        ("all-options", dict(lr=0.03, betas=(0.85, 0.95), eps=1e-4, weight_decay=0.3,
                             amsgrad=True, do_bias_correction=False)),
        ("defaults", dict()),
        ("maximize-weight-decay", dict(lr=0.01, maximize=True, weight_decay=0.1)),
    ],
    "LAMB": [
        ("plain", dict(lr=0.01)),
        ("weight-decay", dict(lr=0.01, weight_decay=0.5)),
        ("l2", dict(lr=0.01, weight_decay=0.5, adam_w_mode=False)),
        ("no-adam-w-mode", dict(lr=0.01, adam_w_mode=False)),
        ("amsgrad", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
        ("no-bias-correction", dict(lr=0.01, do_bias_correction=False, weight_decay=0.1)),
        ("amsgrad-no-bias-correction-l2",
         dict(lr=0.01, amsgrad=True, do_bias_correction=False, weight_decay=0.2,
              adam_w_mode=False)),
        ("betas-eps", dict(lr=0.02, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.05)),
        ("defaults", dict()),
        ("maximize-weight-decay", dict(lr=0.01, maximize=True, weight_decay=0.5)),
        ("maximize-l2-amsgrad",
         dict(lr=0.01, maximize=True, weight_decay=0.2, adam_w_mode=False, amsgrad=True)),
    ],
    "RMSprop": [
        ("plain", dict(lr=0.01)),
        ("weight-decay", dict(lr=0.01, weight_decay=0.1)),
        ("centered", dict(lr=0.01, centered=True)),
        ("momentum", dict(lr=0.01, momentum=0.9)),
        ("centered-momentum", dict(lr=0.01, centered=True, momentum=0.5)),
        ("centered-momentum-weight-decay",
         dict(lr=0.01, centered=True, momentum=0.7, weight_decay=0.05)),
        ("alpha", dict(lr=0.01, alpha=0.9)),
        ("eps", dict(lr=0.01, eps=1e-2)),
        ("alpha-zero", dict(lr=0.5, alpha=0.0, eps=1e-4)),
        ("defaults", dict()),
        ("maximize", dict(lr=0.01, maximize=True)),
        ("maximize-centered-momentum-weight-decay",
         dict(lr=0.01, maximize=True, centered=True, momentum=0.5, weight_decay=0.05)),
        # alpha = 0: r = g'^2 and a = g', so den = r - a*a is exactly 0 when a*a is rounded
        # before the subtraction (spec §2: no fused multiply-add)
        ("centered-alpha-zero", dict(lr=0.1, alpha=0.0, eps=1e-8, centered=True)),
        ("alpha-one", dict(lr=0.01, alpha=1.0, eps=1e-2)),
    ],
    "Adagrad": [
        ("plain", dict(lr=0.1)),
        ("lr-decay", dict(lr=0.1, lr_decay=0.1)),
        ("weight-decay", dict(lr=0.1, weight_decay=0.1)),
        ("initial-accumulator", dict(lr=0.1, initial_accumulator_value=0.5)),
        ("eps", dict(lr=0.1, eps=0.1)),
        ("small-grads-eps", dict(lr=1.0, eps=1e-4, grad_scale=1e-3)),
        ("lr-decay-weight-decay-initial-accumulator",
         dict(lr=0.2, lr_decay=0.3, weight_decay=0.05, initial_accumulator_value=0.25, eps=1e-3)),
        ("defaults", dict()),
        ("maximize", dict(lr=0.1, maximize=True)),
        ("maximize-lr-decay-weight-decay",
         dict(lr=0.1, maximize=True, lr_decay=0.1, weight_decay=0.1)),
    ],
    "Adadelta": [
        ("plain", dict()),
        ("lr", dict(lr=0.5)),
        ("rho", dict(rho=0.5)),
        ("eps", dict(eps=1e-3)),
        ("weight-decay", dict(weight_decay=0.1)),
        ("rho-zero", dict(rho=0.0)),
        ("rho-one", dict(rho=1.0)),
        ("all-options", dict(lr=0.7, rho=0.8, eps=1e-4, weight_decay=0.05)),
        ("maximize", dict(maximize=True)),
        ("maximize-weight-decay", dict(lr=0.7, maximize=True, weight_decay=0.05)),
    ],
}  # fmt: skip

#: hyperparameters of the second group in the "2groups" cases
SECOND_GROUP = {
    "SGD": dict(lr=0.03, weight_decay=0.02),
    "Adam": dict(lr=0.003, betas=(0.8, 0.95), weight_decay=0.01),
    "AdamW": dict(lr=0.003, betas=(0.8, 0.95), weight_decay=0.02),
    "LAMB": dict(lr=0.02, betas=(0.85, 0.98), weight_decay=0.02),
    "RMSprop": dict(lr=0.003, alpha=0.9),
    "Adagrad": dict(lr=0.05, lr_decay=0.05),
    "Adadelta": dict(lr=0.5, rho=0.8),
}
#: the second group flips the options of the first ("mixed-options" cases)
MIXED = {
    "SGD": ({"momentum": 0.9}, {"momentum": 0.0, "lr": 0.2}),
    "Adam": ({"amsgrad": False}, {"amsgrad": True, "do_bias_correction": False, "lr": 0.02}),
    "AdamW": ({"weight_decay": 0.1}, {"amsgrad": True, "weight_decay": 0.0}),
    "LAMB": ({"adam_w_mode": True, "weight_decay": 0.1},
             {"adam_w_mode": False, "amsgrad": True, "weight_decay": 0.3}),
    "RMSprop": ({"centered": False}, {"centered": True, "momentum": 0.9}),
    "Adagrad": ({"lr_decay": 0.0}, {"lr_decay": 0.2, "initial_accumulator_value": 1.0}),
    "Adadelta": ({"rho": 0.9}, {"rho": 0.6, "weight_decay": 0.2}),
}  # fmt: skip

FAMILY_SLUG = {
    "SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "LAMB": "lamb", "RMSprop": "rmsprop",
    "Adagrad": "adagrad", "Adadelta": "adadelta",
}  # fmt: skip


def _optim(case_id, optimizer, defaults, groups, params, steps, family=None, **extra) -> dict:
    defaults = dict(defaults)
    grad_scale = defaults.pop("grad_scale", None)
    case = dict(id=case_id, kind="optim", family=family or optimizer, optimizer=optimizer,
                defaults=defaults, groups=groups, params=params, steps=steps)  # fmt: skip
    if grad_scale is not None:
        case["grad_scale"] = grad_scale
    case.update(extra)
    return case


def optimizer_cases(family: str) -> list[dict]:
    """Every option variant of ``family``, alone and in the scenarios of the issue."""
    slug = FAMILY_SLUG[family]
    cases = []
    variants = VARIANTS[family]
    for k, (name, kw) in enumerate(variants):
        base = f"{slug}-{name}"
        # one group, a 1-D and a 2-D parameter, six steps
        cases.append(_optim(base, family, kw, [{"params": [0, 1]}], [(7,), (2, 3)], _steps(2)))
        # two groups with different hyperparameters
        second = dict(SECOND_GROUP[family])
        if kw.get("grad_scale"):
            second["lr"] = second["lr"] * 0.01
        cases.append(_optim(f"{base}-2groups", family, kw,
                            [{"params": [0, 1]}, {"params": [2], **second}],
                            [(3,), (2, 2), (2,)], _steps(3)))  # fmt: skip
        # parameters without a gradient at some steps (the optimizer-wide step counter), and a
        # step where no parameter has one
        cases.append(_optim(f"{base}-none-grads", family, kw, [{"params": [0, 1, 2]}],
                            [(3,), (4,), (2, 2)],
                            _steps(3, n=7, none={0: (0,), 1: (0, 2), 2: (0, 1, 2), 4: (1,),
                                                 5: (2,)})))  # fmt: skip
        if k < 4:
            # an lr changed between steps (as a scheduler would)
            cases.append(_optim(f"{base}-lr-change", family, kw, [{"params": [0]}], [(5,)],
                                _steps(1, lr={2: {0: kw.get("lr", 1e-3) * 0.5},
                                              4: {0: kw.get("lr", 1e-3) * 2.0}})))  # fmt: skip
        if k == 0:
            # sizes 0, 1 and 1000+ in one group
            cases.append(_optim(f"{base}-sizes", family, kw, [{"params": [0, 1, 2]}],
                                [(0,), (1,), (BIG,)], _steps(3, n=5)))  # fmt: skip
    a, b = MIXED[family]
    plain = variants[0][1]
    cases.append(_optim(f"{slug}-mixed-options-2groups", family, {**plain, **a},
                        [{"params": [0]}, {"params": [1, 2], **b}], [(6,), (2, 3), (1,)],
                        _steps(3, none={1: (1,)})))  # fmt: skip
    cases.append(_optim(f"{slug}-2d-large-grads", family, dict(plain, grad_scale=30.0),
                        [{"params": [0]}], [(3, 4)], _steps(1)))  # fmt: skip
    if family == "LAMB":
        cases += _lamb_zero_norm_cases()
    if family == "Adam":
        # spec §8 and §1.1 worked values
        cases.append(_optim("adam-worked-value", family, dict(lr=0.1), [{"params": [0]}],
                            [np.ones(1)], [{"grads": [np.ones(1)]}]))  # fmt: skip
        cases.append(_optim("adam-worked-value-late-grad", family, dict(lr=0.1),
                            [{"params": [0]}], [np.ones(1)],
                            [{"grads": [None]}, {"grads": [np.ones(1)]}]))  # fmt: skip
    if family == "Adagrad":
        cases.append(
            _optim(
                "adagrad-worked-value",
                family,
                dict(lr=1.0, eps=1e-4),
                [{"params": [0]}],
                [np.zeros(1)],
                [{"grads": [np.full(1, 1e-3)]}],
            )
        )
    if family == "RMSprop":
        cases.append(
            _optim(
                "rmsprop-worked-value",
                family,
                dict(lr=1.0, alpha=0.0, eps=1e-4),
                [{"params": [0]}],
                [np.zeros(1)],
                [{"grads": [np.full(1, 1e-3)]}],
            )
        )
    if family == "SGD":
        cases.append(_optim("sgd-worked-value-momentum-lr-change", family,
                            dict(lr=0.1, momentum=0.9), [{"params": [0]}], [np.ones(1)],
                            [{"grads": [np.ones(1)]},
                             {"grads": [np.ones(1)], "lr": {0: 0.01}}]))  # fmt: skip
    return cases


def _lamb_zero_norm_cases() -> list[dict]:
    zero3 = np.zeros(3)
    return [
        # spec §8: fresh state, zero gradient: u = 0, trust ratio 1
        _optim("lamb-zero-grad-worked-value", "LAMB", dict(lr=0.1, weight_decay=0.5),
               [{"params": [0]}], [np.array([1.0, 2.0, 3.0])], [{"grads": [zero3]}]),
        # a zero parameter: ||p|| = 0, trust ratio 1
        _optim("lamb-zero-param", "LAMB", dict(lr=0.01, weight_decay=0.1),
               [{"params": [0, 1]}], [np.zeros(5), (4,)], _steps(2)),
        # zero gradients after some steps (u decays but is not zero), then a zero parameter norm
        _optim("lamb-zero-grad-after-steps", "LAMB", dict(lr=0.01, weight_decay=0.1),
               [{"params": [0, 1]}], [(5,), (4,)],
               [{"grads": ["rand", "rand"]}, {"grads": [zero3[:1] * 0, "rand"]},
                {"grads": [np.zeros(1), np.zeros(1)]}, {"grads": ["rand", None]},
                {"grads": ["rand", "rand"]}]),
        _optim("lamb-zero-param-zero-grad-l2", "LAMB",
               dict(lr=0.01, weight_decay=0.1, adam_w_mode=False),
               [{"params": [0, 1]}], [np.zeros(4), (4,)],
               [{"grads": [np.zeros(1), "rand"]}] * 2 + _steps(2, n=3)),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- clip_grad
CLIP_NORMS = [("2", 2.0), ("1", 1.0), ("inf", math.inf), ("-inf", -math.inf), ("0", 0.0),
              ("0.5", 0.5), ("3", 3.0)]  # fmt: skip


def clip_cases() -> list[dict]:
    """``clip_grad`` with every norm type, groups, None grads, non-finite grads, fused mode."""
    fam = "clip_grad"
    worked = [np.array([3.0, -4.0, 0.0]), np.array([1.0, -2.0])]
    cases = []
    for name, nt in CLIP_NORMS:
        grp = {"clip_grad_max_norm": 1.0, "clip_grad_norm_type": nt}
        # spec §8 worked totals
        cases.append(_optim(f"clip-norm{name}-worked-value", "SGD", dict(lr=0.1),
                            [{"params": [0, 1], **grp}], [np.ones(3), np.ones(2)],
                            [{"grads": worked, "clip": {}}], family=fam))  # fmt: skip
        # three groups: clipped, not reached (coef 1), not clipped; six steps with updates
        cases.append(_optim(f"clip-norm{name}-3groups", "SGD", dict(lr=0.1, momentum=0.5),
                            [{"params": [0, 1], **grp},
                             {"params": [2], "clip_grad_max_norm": 1e6,
                              "clip_grad_norm_type": nt},
                             {"params": [3]}],
                            [(7,), (2, 3), (4,), (2,)], _steps(4, clip={}),
                            family=fam))  # fmt: skip
        # some grads None at some steps (only present grads count)
        cases.append(_optim(f"clip-norm{name}-none-grads", "Adam", dict(lr=0.01),
                            [{"params": [0, 1, 2], **grp}], [(5,), (6,), (1,)],
                            _steps(3, none={0: (0,), 2: (1, 2), 3: (0, 1)}, clip={}),
                            family=fam))  # fmt: skip
        # the fused mode: the same parameters, the gradients left unscaled
        cases.append(_optim(f"clip-norm{name}-fused-adam", "Adam", dict(lr=0.01, weight_decay=0.1),
                            [{"params": [0, 1], **grp}], [(7,), (2, 3)],
                            _steps(2, clip={"fused": True}), family=fam))  # fmt: skip
        # 1000+ elements in a clipped group
        if name == "2":
            cases.append(_optim(f"clip-norm{name}-large", "SGD", dict(lr=0.1),
                                [{"params": [0, 1], **grp}], [(BIG,), (3,)],
                                _steps(2, n=2, clip={}), family=fam))  # fmt: skip
    # clip_grad_norm_type given as a string, as OneFlow and torch accept it (float() of it)
    for name, nt in [("inf", "inf"), ("-inf", "-inf"), ("2", "2"), ("1.5", "1.5")]:
        grp = {"clip_grad_max_norm": 1.0, "clip_grad_norm_type": nt}
        cases.append(_optim(f"clip-norm-string{name}-worked-value", "SGD", dict(lr=0.1),
                            [{"params": [0, 1], **grp}], [np.ones(3), np.ones(2)],
                            [{"grads": worked, "clip": {}}], family=fam))  # fmt: skip
        cases.append(_optim(f"clip-norm-string{name}-fused-adam", "Adam", dict(lr=0.01),
                            [{"params": [0, 1], **grp}], [(7,), (2, 3)],
                            _steps(2, clip={"fused": True}), family=fam))  # fmt: skip
    for name, opt, kw in [
        ("sgd-momentum", "SGD", dict(lr=0.1, momentum=0.9)),
        ("lamb", "LAMB", dict(lr=0.01, weight_decay=0.1)),
        ("rmsprop-centered", "RMSprop", dict(lr=0.01, centered=True)),
        ("adagrad", "Adagrad", dict(lr=0.1)),
        ("adadelta", "Adadelta", dict()),
        ("adamw", "AdamW", dict(lr=0.01, weight_decay=0.1)),
    ]:
        for fused in (False, True):
            suffix = "-fused" if fused else ""
            cases.append(_optim(f"clip-{name}{suffix}", opt, kw,
                                [{"params": [0, 1], "clip_grad_max_norm": 0.5}], [(6,), (2, 2)],
                                _steps(2, clip={"fused": fused}), family=fam))  # fmt: skip
    cases.append(_optim("clip-default-norm-type", "SGD", dict(lr=0.1),
                        [{"params": [0, 1], "clip_grad_max_norm": 2.0}], [(5,), (5,)],
                        _steps(2, n=3, clip={}), family=fam))  # fmt: skip
    cases.append(_optim("clip-no-grads", "SGD", dict(lr=0.1),
                        [{"params": [0, 1], "clip_grad_max_norm": 1.0}, {"params": [2],
                         "clip_grad_max_norm": 1.0, "clip_grad_norm_type": 1.0}],
                        [(3,), (2,), (4,)],
                        [{"grads": [None, None, "rand"], "clip": {}},
                         {"grads": [None, None, None], "clip": {}}],
                        family=fam))  # fmt: skip
    for bad_name, bad in [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)]:
        for name, nt in [("2", 2.0), ("1", 1.0), ("inf", math.inf)]:
            for err in (False, True):
                g0 = np.array([1.0, bad, -2.0])
                cases.append(_optim(
                    f"clip-nonfinite-{bad_name}-norm{name}" + ("-error" if err else ""), "SGD",
                    dict(lr=0.1),
                    [{"params": [0, 1], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": nt}],
                    [(3,), (2,)],
                    [{"grads": [g0, "rand"], "clip": {"error_if_nonfinite": err},
                      "update": False}],
                    family=fam))  # fmt: skip
    cases.append(dict(id="clip-no-clipped-group-warns", kind="warn", family=fam, optimizer="SGD",
                      defaults=dict(lr=0.1), groups=[{"params": [0]}], params=[(3,)],
                      steps=[{"grads": ["rand"]}]))  # fmt: skip
    return cases


# ---------------------------------------------------------------------------- sparse (spec §5)
def _rows(*rows: int) -> dict:
    return {"rows": list(rows)}


#: six steps over a (6, 3), a (4,) and a (3, 2, 2) parameter: row sets with repeats, an empty
#: gradient (nnz 0), every row present (shuffled), dense and sparse gradients mixed in the group
#: and across steps on the same parameter, and steps without a gradient
SPARSE_STEPS = [
    {"grads": [_rows(4, 1, 4, 0), "rand", _rows(2)]},
    {"grads": [_rows(), _rows(3, 0), _rows(0, 0)]},
    {"grads": ["rand", _rows(1), None]},
    {"grads": [_rows(5, 2, 3, 0, 1, 4), None, _rows(1, 2, 0)]},
    {"grads": [_rows(2, 2, 2), "rand", "rand"]},
    {"grads": [None, _rows(0, 1, 2, 3, 0), _rows(2, 1)]},
]
#: the option variants run with sparse gradients (names from VARIANTS)
SPARSE_VARIANTS = {
    "SGD": ["plain", "maximize-momentum-dampening-weight-decay", "nesterov-weight-decay"],
    "Adam": ["plain", "maximize-amsgrad-weight-decay", "all-options"],
    "AdamW": ["weight-decay", "all-options", "maximize-weight-decay"],
}


def sparse_cases(family: str) -> list[dict]:
    """Lazy updates with sparse gradients (spec §5) for the families with ``support_sparse``."""
    slug = FAMILY_SLUG[family]
    kws = dict(VARIANTS[family])
    cases = []
    for name in SPARSE_VARIANTS[family]:
        cases.append(_optim(f"{slug}-sparse-{name}", family, kws[name], [{"params": [0, 1, 2]}],
                            [(6, 3), (4,), (3, 2, 2)], SPARSE_STEPS))  # fmt: skip
    # every row present at every step: the dense update (spec §5)
    cases.append(
        _optim(
            f"{slug}-sparse-all-rows",
            family,
            kws[SPARSE_VARIANTS[family][1]],
            [{"params": [0]}],
            [(4, 2)],
            [{"grads": [_rows(3, 1, 0, 2)]}, {"grads": [_rows(0, 1, 2, 3, 3)]}],
        )
    )
    return cases


def sparse_clip_cases() -> list[dict]:
    """``clip_grad`` over sparse gradients: the norm of their coalesced values (spec §5)."""
    cases = []
    steps = [{"grads": [_rows(4, 1, 4), "rand"]}, {"grads": [_rows(0, 5, 2, 3, 1, 4), None]},
             {"grads": [_rows(), "rand"]}]  # fmt: skip
    for name, nt in CLIP_NORMS:
        for fused in (False, True):
            grp = {"clip_grad_max_norm": 0.5, "clip_grad_norm_type": nt}
            cases.append(_optim(f"clip-sparse-norm{name}" + ("-fused" if fused else ""), "Adam",
                                dict(lr=0.01, weight_decay=0.1), [{"params": [0, 1], **grp}],
                                [(6, 2), (3,)], [dict(s, clip={"fused": fused}) for s in steps],
                                family="clip_grad"))  # fmt: skip
    return cases


# ---------------------------------------------------------------------------- errors (spec §1.7)
ERRORS: dict[str, list[tuple[str, dict, object]]] = {
    "common": [("lr-negative", dict(lr=-0.1), -0.1),
               ("weight-decay-negative", dict(weight_decay=-0.01), -0.01)],
    "SGD": [("momentum-negative", dict(momentum=-0.5), -0.5),
            ("dampening-above-one", dict(momentum=0.9, dampening=1.5), 1.5),
            ("dampening-negative", dict(momentum=0.9, dampening=-0.1), -0.1),
            ("maximize-not-bool", dict(maximize="yes"), None, ["TypeError"])],
    "adam-like": [("eps-negative", dict(eps=-1e-8), -1e-8),
                  ("beta1-one", dict(betas=(1.0, 0.999)), 1.0),
                  ("beta2-one", dict(betas=(0.9, 1.0)), 1.0),
                  ("beta1-negative", dict(betas=(-0.1, 0.999)), -0.1),
                  ("beta2-above-one", dict(betas=(0.9, 1.5)), 1.5)],
    "RMSprop": [("alpha-negative", dict(alpha=-0.1), -0.1),
                ("alpha-above-one", dict(alpha=1.5), 1.5),
                ("eps-negative", dict(eps=-1.0), -1.0),
                ("momentum-negative", dict(momentum=-0.1), -0.1)],
    "Adagrad": [("initial-accumulator-negative", dict(initial_accumulator_value=-0.5), -0.5),
                ("eps-negative", dict(eps=-1e-10), -1e-10)],
    "Adadelta": [("rho-above-one", dict(rho=1.5), 1.5), ("rho-negative", dict(rho=-0.1), -0.1),
                 ("eps-negative", dict(eps=-1e-6), -1e-6)],
}  # fmt: skip


def error_cases(family: str) -> list[dict]:
    """Constructor (and ``add_param_group``) arguments that must raise ``ValueError``."""
    slug = FAMILY_SLUG[family]
    rules = list(ERRORS["common"])
    rules += ERRORS.get(family, [])
    if family in ("Adam", "AdamW", "LAMB"):
        rules += ERRORS["adam-like"]
    cases = []
    for name, kw, value, *raises in rules:
        c = dict(id=f"{slug}-error-{name}", kind="error", family=family, optimizer=family,
                 target="constructor", kwargs=kw,
                 raises=raises[0] if raises else ["ValueError"])  # fmt: skip
        if value is not None:
            c["names"] = repr(value)
        cases.append(c)
    cases.append(dict(id=f"{slug}-error-add-param-group-lr-negative", kind="error", family=family,
                      optimizer=family, target="add_param_group", kwargs=dict(lr=-0.5),
                      raises=["ValueError"], names="-0.5"))  # fmt: skip
    # clip_grad_norm_type goes through float() (spec §1.7): a string float() refuses is an error
    cases.append(dict(id=f"{slug}-error-add-param-group-clip-norm-type-bad-string", kind="error",
                      family=family, optimizer=family, target="add_param_group",
                      kwargs=dict(clip_grad_max_norm=1.0, clip_grad_norm_type="infinite"),
                      raises=["ValueError"], names="'infinite'"))  # fmt: skip
    for form, raises in [
        ("bare-tensor", ["TypeError", "ValueError"]),
        ("set", ["TypeError", "ValueError"]),
        ("empty", ["ValueError"]),
        ("duplicate-in-group", ["ValueError"]),
        ("duplicate-across-groups", ["ValueError"]),
        ("exhausted-generator-group", ["ValueError"]),
    ]:
        if family in ("SGD", "Adam") or form.startswith(("duplicate", "exhausted")):
            cases.append(dict(id=f"{slug}-error-params-{form}", kind="error", family=family,
                              optimizer=family, target="params", form=form, kwargs={},
                              raises=raises))  # fmt: skip
    return cases


# ---------------------------------------------------------------------------- schedulers (spec §6)
def _s(kind: str, **kw) -> dict:
    return {"kind": kind, "kwargs": kw}


# (case name, scheduler spec, steps, resume) - resume: k for "resume from state dict after k
# steps" cases and "last_step=k" cases (closed-form ones only)
SCHEDULERS: list[tuple[str, dict, int]] = [
    ("steplr", _s("StepLR", step_size=3, gamma=0.5), 10),
    ("steplr-default-gamma", _s("StepLR", step_size=1), 5),
    ("multisteplr", _s("MultiStepLR", milestones=[2, 5, 6], gamma=0.5), 9),
    ("multisteplr-default-gamma", _s("MultiStepLR", milestones=[1, 3]), 5),
    ("exponentiallr", _s("ExponentialLR", gamma=0.9), 8),
    ("exponentiallr-growth", _s("ExponentialLR", gamma=1.5), 5),
    ("cosineannealinglr", _s("CosineAnnealingLR", T_max=5, eta_min=0.001), 14),
    ("cosineannealinglr-tmax1", _s("CosineAnnealingLR", T_max=1), 5),
    ("cosinedecaylr", _s("CosineDecayLR", decay_steps=5, alpha=0.1), 8),
    ("cosinedecaylr-default-alpha", _s("CosineDecayLR", decay_steps=3), 6),
    ("polynomiallr", _s("PolynomialLR", decay_batch=5, end_learning_rate=0.01), 8),
    ("polynomiallr-power2", _s("PolynomialLR", decay_batch=4, end_learning_rate=0.001, power=2.0),
     7),
    ("polynomiallr-cycle", _s("PolynomialLR", decay_batch=5, end_learning_rate=0.01, cycle=True),
     13),
    ("polynomiallr-cycle-power2",
     _s("PolynomialLR", decay_batch=3, end_learning_rate=0.001, power=2.0, cycle=True), 10),
    ("polynomiallr-defaults", _s("PolynomialLR", decay_batch=4), 6),
    ("lambdalr", _s("LambdaLR", lr_lambda="pow0.95"), 6),
    ("lambdalr-list", _s("LambdaLR", lr_lambda=["inverse", "warmup3"]), 6),
    ("constantlr", _s("ConstantLR"), 7),
    ("constantlr-factor", _s("ConstantLR", factor=0.5, total_iters=3), 5),
    ("linearlr", _s("LinearLR"), 7),
    ("linearlr-factors", _s("LinearLR", start_factor=0.25, end_factor=0.75, total_iters=4), 6),
    ("cosineannealingwarmrestarts", _s("CosineAnnealingWarmRestarts", T_0=3), 10),
    ("cosineannealingwarmrestarts-tmult2",
     _s("CosineAnnealingWarmRestarts", T_0=2, T_mult=2, eta_min=0.001), 16),
    ("cosineannealingwarmrestarts-decay-rate",
     _s("CosineAnnealingWarmRestarts", T_0=3, decay_rate=0.5), 10),
    ("cosineannealingwarmrestarts-restart-limit",
     _s("CosineAnnealingWarmRestarts", T_0=2, T_mult=3, restart_limit=2, eta_min=0.002), 12),
    ("sequentiallr", _s("SequentialLR", schedulers=[_s("ConstantLR", factor=0.1, total_iters=2),
                                                    _s("ExponentialLR", gamma=0.9)],
                        milestones=[2]), 7),
    ("sequentiallr-interval-rescaling",
     _s("SequentialLR", schedulers=[_s("LinearLR", start_factor=0.5, total_iters=3),
                                    _s("StepLR", step_size=2, gamma=0.5),
                                    _s("CosineDecayLR", decay_steps=4, alpha=0.1)],
        milestones=[3, 6], interval_rescaling=True), 12),
    ("sequentiallr-mixed-rescaling",
     _s("SequentialLR", schedulers=[_s("ConstantLR", factor=0.5, total_iters=2),
                                    _s("ExponentialLR", gamma=0.8),
                                    _s("CosineAnnealingLR", T_max=4)],
        milestones=[2, 5], interval_rescaling=[True, False]), 10),
    ("chainedscheduler", _s("ChainedScheduler", schedulers=[
        _s("ConstantLR", factor=0.1, total_iters=2), _s("ExponentialLR", gamma=0.9)]), 6),
    ("chainedscheduler-three", _s("ChainedScheduler", schedulers=[
        _s("StepLR", step_size=2, gamma=0.5), _s("LinearLR", start_factor=0.5, total_iters=3),
        _s("ExponentialLR", gamma=0.95)]), 7),
    ("warmuplr-optimizer-linear", _s("WarmupLR", scheduler=None, warmup_factor=0.5,
                                     warmup_iters=4), 7),
    ("warmuplr-optimizer-constant", _s("WarmupLR", scheduler=None, warmup_factor=0.2,
                                       warmup_iters=3, warmup_method="constant"), 6),
    ("warmuplr-optimizer-defaults", _s("WarmupLR", scheduler=None), 7),
    ("warmuplr-cosinedecay-linear",
     _s("WarmupLR", scheduler=_s("CosineDecayLR", decay_steps=5, alpha=0.1), warmup_factor=0.5,
        warmup_iters=2), 8),
    ("warmuplr-cosinedecay-linear-prefix",
     _s("WarmupLR", scheduler=_s("CosineDecayLR", decay_steps=5, alpha=0.1), warmup_factor=0.5,
        warmup_iters=2, warmup_prefix=True), 9),
    ("warmuplr-steplr-constant",
     _s("WarmupLR", scheduler=_s("StepLR", step_size=2, gamma=0.5), warmup_factor=0.1,
        warmup_iters=3, warmup_method="constant"), 8),
    # groups with different base lrs (layer-wise lr decay): the end factor per group
    ("warmuplr-cosineannealing-linear-per-group",
     _s("WarmupLR", scheduler=_s("CosineAnnealingLR", T_max=6, eta_min=0.01), warmup_factor=0.2,
        warmup_iters=3), 8),
    ("warmuplr-multisteplr-constant-prefix",
     _s("WarmupLR", scheduler=_s("MultiStepLR", milestones=[2, 4], gamma=0.5), warmup_factor=0.1,
        warmup_iters=3, warmup_method="constant", warmup_prefix=True), 9),
]  # fmt: skip
# OneFlow 0.9.0 needs equal base lrs for a linear WarmupLR over a scheduler (its formula takes
# the first group's end factor); this case keeps that form, the "-per-group" one departs (§9)
EQUAL_LRS = {"warmuplr-cosinedecay-linear"}
CLOSED_FORM = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineDecayLR",
               "PolynomialLR", "LambdaLR", "ConstantLR", "LinearLR",
               "CosineAnnealingWarmRestarts"}  # fmt: skip


def sched_cases() -> list[dict]:
    """Every scheduler across its boundaries, resumed, set by hand, and its errors."""
    cases = []
    for name, spec, n in SCHEDULERS:
        lrs = [0.1, 0.1] if name in EQUAL_LRS else [0.1, 0.05]
        base = dict(kind="sched", family=spec["kind"], sched=spec, base_lrs=lrs)
        cases.append(dict(base, id=f"sched-{name}", steps=[{}] * n))
        k = max(2, n // 2)
        cases.append(dict(base, id=f"sched-{name}-resumed", steps=[{}] * n, resume_at=k))
        if spec["kind"] in CLOSED_FORM and "list" not in name:
            cases.append(dict(base, id=f"sched-{name}-last-step", steps=[{}] * (n - k),
                              last_step=k))  # fmt: skip
        if name in (
            "steplr",
            "exponentiallr",
            "cosinedecaylr",
            "sequentiallr",
            "warmuplr-cosinedecay-linear",
            "chainedscheduler",
            "polynomiallr-cycle",
        ):
            steps = [{}] * n
            steps[2] = {"set_lr": {0: 0.7, 1: 0.3}}
            cases.append(dict(base, id=f"sched-{name}-lr-set-by-hand", steps=steps))
    cases.append(dict(kind="sched", family="PolynomialLR", id="sched-polynomiallr-cycle-worked",
                      sched=_s("PolynomialLR", decay_batch=5, end_learning_rate=0.1, cycle=True),
                      base_lrs=[1.0, 0.5], steps=[{}] * 6))  # fmt: skip
    plateau = [
        ("min", dict(mode="min", patience=2),
         [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9, 0.9]),
        ("max", dict(mode="max", patience=1, factor=0.5),
         [0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.3, 0.3]),
        ("abs-threshold", dict(threshold_mode="abs", threshold=0.1, patience=1, factor=0.5),
         [1.0, 0.95, 0.85, 0.8, 0.79, 0.5, 0.45]),
        ("cooldown", dict(patience=0, cooldown=2, factor=0.5), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("min-lr-list", dict(patience=0, factor=0.1, min_lr=[0.001, 0.004]),
         [1.0, 2.0, 3.0, 4.0, 5.0]),
        ("eps", dict(patience=0, factor=0.5, eps=0.02), [1.0, 2.0, 3.0, 4.0, 5.0]),
        ("defaults", dict(), [1.0] * 13),
    ]  # fmt: skip
    for name, kw, metrics in plateau:
        cases.append(dict(kind="sched", family="ReduceLROnPlateau",
                          id=f"sched-reducelronplateau-{name}",
                          sched=_s("ReduceLROnPlateau", **kw), base_lrs=[0.1, 0.05],
                          steps=[{"metric": m} for m in metrics]))  # fmt: skip
    errs = [
        ("multisteplr-not-increasing", _s("MultiStepLR", milestones=[3, 2]), ["ValueError"]),
        ("multisteplr-repeated", _s("MultiStepLR", milestones=[2, 2]), ["ValueError"]),
        ("exponentiallr-gamma-zero", _s("ExponentialLR", gamma=0.0), ["ValueError"]),
        ("exponentiallr-gamma-negative", _s("ExponentialLR", gamma=-0.5), ["ValueError"]),
        ("lambdalr-list-length", _s("LambdaLR", lr_lambda=["inverse", "warmup3", "pow0.95"]),
         ["ValueError"]),
        ("reducelronplateau-factor-one", _s("ReduceLROnPlateau", factor=1.0), ["ValueError"]),
        ("reducelronplateau-unknown-mode", _s("ReduceLROnPlateau", mode="middle"),
         ["ValueError"]),
        ("reducelronplateau-unknown-threshold-mode",
         _s("ReduceLROnPlateau", threshold_mode="log"), ["ValueError"]),
        ("reducelronplateau-min-lr-length", _s("ReduceLROnPlateau", min_lr=[0.1, 0.2, 0.3]),
         ["ValueError"]),
        ("warmuplr-unknown-method", _s("WarmupLR", scheduler=None, warmup_method="cosine"),
         ["ValueError"]),
    ]  # fmt: skip
    for name, spec, raises in errs:
        cases.append(dict(kind="error", target="scheduler", family=spec["kind"],
                          id=f"sched-error-{name}", sched=spec, base_lrs=[0.1, 0.05],
                          raises=raises))  # fmt: skip
    for name, spec in [
        ("steplr", _s("StepLR", step_size=2)),
        ("cosineannealinglr", _s("CosineAnnealingLR", T_max=3)),
    ]:
        cases.append(dict(kind="error", target="scheduler", family=spec["kind"],
                          id=f"sched-error-{name}-last-step-without-initial-lr", sched=spec,
                          base_lrs=[0.1, 0.05], last_step=3, raises=["KeyError"],
                          names="param_groups[0]"))  # fmt: skip
    return cases


# ---------------------------------------------------------------------------- all of them
def all_cases() -> list[dict]:
    """Every case of the suite (inputs not yet materialised), ids unique."""
    cases = []
    for family in FAMILY_SLUG:
        cases += optimizer_cases(family)
        if family in SPARSE_VARIANTS:
            cases += sparse_cases(family)
        cases += error_cases(family)
    cases += clip_cases()
    cases += sparse_clip_cases()
    cases += sched_cases()
    ids = [c["id"] for c in cases]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"duplicate case ids: {sorted(dup)}")
    return cases


def file_of(case: dict) -> str:
    """The vectors file (without ``.json``) a case is stored in."""
    if case["kind"] == "sched" or case.get("target") == "scheduler":
        return SCHED_FILE
    return FAMILY_FILES[case["family"]]
