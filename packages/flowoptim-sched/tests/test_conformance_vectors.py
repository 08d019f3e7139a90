"""The conformance suite's scheduler vectors (conformance/…/vectors/schedulers.json), run here.

Skipped when the vectors are absent (the package on its own). Each case: a two-group
torch.optim.SGD; lrs after construction and after every step, also resumed from a state dict
(``resume_at``), with ``last_step``, with an lr set by hand, and the error cases. Tolerance: rel
1e-12 — the vectors come from an independent float64 implementation of the same closed forms, so
only the order of a few float operations may differ (a few ulp).
"""

import builtins
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import flowoptim_sched as fs

LAMBDAS = {  # the named lr_lambda functions of the vectors (conformance formulas.LAMBDAS)
    "pow0.95": lambda s: 0.95**s,
    "inverse": lambda s: 1.0 / (s + 1),
    "warmup3": lambda s: min(1.0, (s + 1) / 3),
}


def _vectors_file() -> Path | None:
    spec = importlib.util.find_spec("flowoptim_conformance")
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [
            Path(p) / "vectors" / "schedulers.json" for p in spec.submodule_search_locations
        ]
    repo = Path(__file__).resolve().parents[3]
    candidates.append(
        repo / "conformance" / "src" / "flowoptim_conformance" / "vectors" / "schedulers.json"
    )
    return next((p for p in candidates if p.is_file()), None)


VECTORS = _vectors_file()
CASES = json.loads(VECTORS.read_text())["cases"] if VECTORS else []
pytestmark = pytest.mark.skipif(VECTORS is None, reason="conformance vectors not present")


def _dec(s: str) -> float:
    return float.fromhex(s) if s not in ("nan", "inf", "-inf") else float(s)


def _build(spec: dict, opt: torch.optim.Optimizer, **extra):
    kind, kw = spec["kind"], dict(spec["kwargs"])
    cls = fs.SCHEDULERS[kind]
    if "schedulers" in kw:
        kw["schedulers"] = [_build(s, opt) for s in kw["schedulers"]]
    if kind == "LambdaLR":
        fn = kw["lr_lambda"]
        kw["lr_lambda"] = [LAMBDAS[f] for f in fn] if isinstance(fn, list) else LAMBDAS[fn]
    if kind in ("WarmupLR", "WarmUpLR"):
        inner = kw.pop("scheduler", None)
        target = opt if inner is None else _build(inner, opt)
        return cls(target, **kw, **extra)
    if kind == "ChainedScheduler":
        return cls(**kw, **extra)
    return cls(opt, **kw, **extra)


def _sgd(case, with_initial_lr=False):
    groups = []
    for b in case["base_lrs"]:
        group = {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": b}
        if with_initial_lr:
            group["initial_lr"] = b
        groups.append(group)
    return torch.optim.SGD(groups)


def _lrs(opt):
    return [float(g["lr"]) for g in opt.param_groups]


def _run(case):
    last_step = case.get("last_step")
    opt = _sgd(case, with_initial_lr=last_step is not None)
    extra = {} if last_step is None else {"last_step": last_step}
    sched = _build(case["sched"], opt, **extra)
    rows = [_lrs(opt)]
    for k, step in enumerate(case["steps"]):
        if case.get("resume_at") == k:
            opt2 = _sgd(case)
            sched2 = _build(case["sched"], opt2)
            opt2.load_state_dict(opt.state_dict())
            sched2.load_state_dict(sched.state_dict())
            opt, sched = opt2, sched2
        for index, lr in step.get("set_lr", {}).items():
            opt.param_groups[int(index)]["lr"] = lr
        if "metric" in step:
            sched.step(step["metric"])
        else:
            sched.step()
        rows.append(_lrs(opt))
    return rows


SCHED = [c for c in CASES if c["kind"] == "sched"]
ERRORS = [c for c in CASES if c["kind"] == "error" and c.get("target") == "scheduler"]

# Error vectors this package no longer matches on purpose (strict: an xpass is a failure).
#: vectors that no longer describe this package (id -> reason): a strict xfail
SUPERSEDED: dict[str, str] = {}


def _error_param(case):
    reason = SUPERSEDED.get(case["id"])
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.mark.parametrize("case", SCHED, ids=[c["id"] for c in SCHED])
def test_schedule_vector(case):
    expected = [[_dec(x) for x in row] for row in case["expected_lrs"]]
    got = _run(case)
    assert len(got) == len(expected)
    for k, (row, want) in enumerate(zip(got, expected, strict=True)):
        for lr, e in zip(row, want, strict=True):
            assert math.isclose(lr, e, rel_tol=1e-12, abs_tol=1e-300), (k, row, want)


@pytest.mark.parametrize("case", [_error_param(c) for c in ERRORS])
def test_error_vector(case):
    raises = tuple(getattr(builtins, name) for name in case["raises"])
    extra = {"last_step": case["last_step"]} if "last_step" in case else {}
    with pytest.raises(raises) as info:
        _build(case["sched"], _sgd(case), **extra)  # groups without initial_lr
    if "names" in case:
        assert case["names"] in str(info.value)
