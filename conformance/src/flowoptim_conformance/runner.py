"""Run the vectors against a backend, through the public flowoptim classes.

Note [what is exercised]
------------------------
Optimizer cases construct ``flowoptim.<Optimizer>(groups, backend=..., **defaults)`` and drive it
the way a training loop does: set (or clear) each gradient, change an lr between steps, call
``clip_grad`` and ``step``. So a backend is checked together with the class (groups, the
optimizer-wide step counter, lazily created state, None gradients, clip_grad). After every step the
parameters, every state tensor and each parameter's ``step`` are compared with the expected values.
Scheduler cases drive ``flowoptim_sched`` classes over a ``torch.optim.SGD`` with two groups.

Note [expected values per dtype]
--------------------------------
float64 and float32 runs compare with the vectors themselves (float64 formulas on float32 inputs,
so the same inputs feed both). float16 and bfloat16 runs re-derive the expected values from the
same inputs with :func:`flowoptim_conformance.formulas.simulate` and the storage rounding of the
dtype (inputs, parameters and state rounded after every step), because a low-precision optimizer
legitimately ends far from the float64 trajectory. Tolerances: see
:mod:`flowoptim_conformance.tolerances`.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import formulas
from .encoding import dec, dec_array, dec_grad
from .tolerances import SCHEDULER, Tolerance, tolerance_for
from .vectors_io import load_cases

__all__ = [
    "DTYPES",
    "CaseResult",
    "FlowoptimSubject",
    "NotApplicable",
    "Report",
    "SchedulerSubject",
    "load_xfails",
    "run",
    "run_subject",
]

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
DTYPE_ALIASES = {
    "fp32": "float32", "f32": "float32", "float": "float32",
    "fp64": "float64", "f64": "float64", "double": "float64",
    "fp16": "float16", "f16": "float16", "half": "float16",
    "bf16": "bfloat16",
}  # fmt: skip
OPTIMIZERS = ("SGD", "Adam", "AdamW", "LAMB", "RMSprop", "Adagrad", "Adadelta")


def dtype_name(name: str) -> str:
    """Canonical dtype name (``float32``...) of ``name`` or an alias (``fp16``, ``bf16``...)."""
    n = DTYPE_ALIASES.get(name.lower(), name.lower())
    if n not in DTYPES:
        raise ValueError(
            f"unknown dtype {name!r} (expected one of {', '.join(DTYPES)} or "
            f"{', '.join(DTYPE_ALIASES)})"
        )
    return n


class NotApplicable(Exception):
    """The subject cannot express this case (the torch adapter for LAMB, say)."""


class CaseFailure(AssertionError):
    """A case's observed behaviour differs from the expected one."""


# ---------------------------------------------------------------------------- results
@dataclass
class CaseResult:
    """The verdict of one case run against one subject (backend) and dtype."""

    case_id: str
    family: str
    subject: str
    dtype: str | None  # None: the case does not depend on the dtype
    status: str  # passed, failed, xfailed, xpassed, skipped, n/a
    message: str = ""

    @property
    def counts_as_failure(self) -> bool:
        return self.status in ("failed", "xpassed")


@dataclass
class Report:
    """Every case result of one or more runs; ``informational`` ones never count as failures."""

    results: list[CaseResult] = field(default_factory=list)
    informational: set[str] = field(default_factory=set)  # subject labels shown for information

    def extend(self, other: Report) -> None:
        self.results += other.results
        self.informational |= other.informational

    def counted(self) -> list[CaseResult]:
        return [r for r in self.results if r.subject not in self.informational]

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.counted())

    @property
    def failed(self) -> int:
        return sum(r.counts_as_failure for r in self.counted())

    @property
    def xfailed(self) -> int:
        return sum(r.status == "xfailed" for r in self.counted())

    @property
    def ok(self) -> bool:
        """True when at least one case passed and none failed (zero cases is never success)."""
        return self.failed == 0 and self.passed > 0

    def failures(self) -> list[CaseResult]:
        return [r for r in self.counted() if r.counts_as_failure]

    def summary_line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


# ---------------------------------------------------------------------------- xfail files
def load_xfails(source: str | Path | dict | None) -> dict[str, str]:
    """Parse an xfail file (or take a dict): ``pattern -> reason``.

    One entry a line, ``CASE-ID[@DTYPE]: reason``; ``CASE-ID`` may be an fnmatch pattern
    (``adam-*@bfloat16: ...``); ``#`` starts a comment. Every entry needs a reason.
    """
    if source is None:
        return {}
    if isinstance(source, dict):
        entries = dict(source)
    else:
        entries = {}
        path = Path(source)
        for n, raw in enumerate(path.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            pattern, sep, reason = line.partition(":")
            if not sep or not reason.strip() or not pattern.strip():
                raise ValueError(
                    f"{path}:{n}: expected 'CASE-ID[@DTYPE]: reason', got {raw.strip()!r}"
                )
            entries[pattern.strip()] = reason.strip()
    for pattern, reason in entries.items():
        if not str(reason).strip():
            raise ValueError(f"xfail entry {pattern!r} has no reason")
    return entries


def _xfail_reason(xfails: dict[str, str], case_id: str, dtype: str | None) -> str | None:
    for pattern, reason in xfails.items():
        pid, _, pdtype = pattern.partition("@")
        if fnmatch.fnmatchcase(case_id, pid) and (not pdtype or pdtype == dtype):
            return reason
    return None


def check_xfail_patterns(xfails: dict[str, str], case_ids: Iterable[str]) -> None:
    """Raise ``ValueError`` naming an xfail entry that matches no case (a typo or a stale id)."""
    ids = list(case_ids)
    for pattern in xfails:
        pid = pattern.partition("@")[0]
        if not any(fnmatch.fnmatchcase(i, pid) for i in ids):
            raise ValueError(f"xfail entry {pattern!r} matches no conformance case")


# ---------------------------------------------------------------------------- comparison
def _fmt(x: float) -> str:
    x = float(x)
    return f"{x!r} ({x.hex()})" if math.isfinite(x) else repr(x)


def compare(
    what: str, got: Any, expected: np.ndarray, tol: Tolerance, scale: float | None = None
) -> None:
    """Raise :class:`CaseFailure` describing the worst element when ``got`` is not close.

    ``scale`` (default: the largest finite ``|expected|``) multiplies ``tol.atol``.
    """
    if isinstance(got, torch.Tensor):
        got_np = got.detach().to("cpu", torch.float64).numpy()
    else:
        got_np = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got_np.shape != expected.shape:
        raise CaseFailure(f"{what}: shape {tuple(got_np.shape)}, expected {tuple(expected.shape)}")
    if expected.size == 0:
        return
    e_nan, g_nan = np.isnan(expected), np.isnan(got_np)
    if (e_nan != g_nan).any():
        i = tuple(int(k) for k in np.argwhere(e_nan != g_nan)[0])
        raise CaseFailure(
            f"{what}[{i}]: expected {_fmt(expected[i])}, got {_fmt(got_np[i])} (NaN mismatch)"
        )
    e_inf = np.isinf(expected)
    if (np.isinf(got_np) != e_inf).any() or (got_np[e_inf] != expected[e_inf]).any():
        bad = (np.isinf(got_np) != e_inf) | (e_inf & (got_np != expected))
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise CaseFailure(f"{what}[{i}]: expected {_fmt(expected[i])}, got {_fmt(got_np[i])}")
    fin = np.isfinite(expected)
    if not fin.any():
        return
    if scale is None:
        scale = float(np.max(np.abs(expected[fin])))
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(fin, np.abs(got_np - expected), 0.0)
    allowed = tol.atol * scale + tol.rtol * np.abs(expected)
    bad = fin & (err > allowed)
    if bad.any():
        ratio = np.where(bad, err / np.maximum(allowed, 1e-300), 0.0)
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(ratio)), expected.shape))
        rel = err[i] / abs(expected[i]) if expected[i] else math.inf
        raise CaseFailure(
            f"{what}[{i}]: expected {_fmt(expected[i])}, got {_fmt(got_np[i])} "
            f"(abs err {err[i]:.3g}, rel err {rel:.3g}; {int(bad.sum())} of {bad.size} elements "
            f"outside {tol})"
        )


def _scalar(v: Any) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


# ---------------------------------------------------------------------------- subjects
class FlowoptimSubject:
    """The flowoptim classes with one backend (a registered name, ``module:attr`` or instance)."""

    informational = False

    def __init__(self, backend: Any, label: str | None = None) -> None:
        import flowoptim  # noqa: F401 - fail early with a clear ImportError
        from flowoptim import backends

        self.backend = backends.get(backend) if isinstance(backend, str) else backend
        if not isinstance(self.backend, backends.Backend):
            raise TypeError(f"backend must be a name or a flowoptim Backend, got {backend!r}")
        self.label = label or (backend if isinstance(backend, str) else self.backend.name)

    def optimizer(self, name: str, params: Any, defaults: dict) -> Any:
        import flowoptim

        return getattr(flowoptim, name)(params, backend=self.backend, **defaults)

    def clip(self, opt: Any, error_if_nonfinite: bool, fused: bool) -> list:
        return opt.clip_grad(error_if_nonfinite=error_if_nonfinite, fused=fused)

    def scheduler_module(self) -> Any:
        import flowoptim_sched

        return flowoptim_sched


class SchedulerSubject:
    """The ``flowoptim_sched`` classes alone, for the scheduler cases.

    Schedulers touch no backend and no parameter tensor, so their cases do not depend on the
    backend or the dtype: the command runs them once per invocation under this subject (run it
    with ``run_subject(..., schedulers="only")``) instead of once per backend.
    """

    informational = False

    def __init__(self, label: str = "flowoptim_sched") -> None:
        self.label = label

    def optimizer(self, name: str, params: Any, defaults: dict) -> Any:
        raise NotApplicable("flowoptim_sched has no optimizers")

    def clip(self, opt: Any, error_if_nonfinite: bool, fused: bool) -> list:
        raise NotApplicable("flowoptim_sched has no clip_grad")

    def scheduler_module(self) -> Any:
        import flowoptim_sched

        return flowoptim_sched


# ---------------------------------------------------------------------------- case decoding
def _hyper(x: Any) -> Any:
    """JSON hyperparameters back to Python: ``{"float": hex}`` -> float, lists of 2 -> tuples."""
    if isinstance(x, dict) and set(x) == {"float"}:
        return dec(x["float"])
    if isinstance(x, dict):
        return {k: _hyper(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_hyper(v) for v in x]
    return x


def _opts(d: dict) -> dict:
    out = {}
    for k, v in _hyper(d).items():
        out[k] = tuple(v) if k == "betas" else v
    return out


def _describe_case(case: dict) -> str:
    if case["kind"] in ("optim", "warn"):
        groups = [
            {k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
            for g in case["groups"]
        ]
        shapes = [tuple(p["shape"]) for p in case["params"]]
        return (
            f"{case['optimizer']}(**{_opts(case['defaults'])}); groups {groups}; "
            f"param shapes {shapes}"
        )
    if case["kind"] == "sched" or case.get("target") == "scheduler":
        extra = f", resumed after {case['resume_at']} steps" if "resume_at" in case else ""
        extra += f", last_step={case['last_step']}" if "last_step" in case else ""
        return f"{_hyper(case['sched'])} on base lrs {case['base_lrs']}{extra}"
    return f"{case.get('optimizer')} {case.get('target')} {_hyper(case.get('kwargs', {}))}"


def _numel(case: dict) -> int:
    return max((int(np.prod(p["shape"])) for p in case.get("params", [])), default=0)


# ---------------------------------------------------------------------------- optimizer cases
def _expected_steps(case: dict, dtype: str) -> tuple[list, list[np.ndarray], list[list]]:
    """(expected per step, initial params, grads per step) for ``dtype``."""
    params = [dec_array(p) for p in case["params"]]
    grads = [[dec_grad(g) for g in s["grads"]] for s in case["steps"]]
    if dtype in ("float32", "float64"):
        expected = []
        for s in case["steps"]:
            e = s["expected"]
            rec = {"params": [dec_array(p) for p in e["params"]]}
            if "state" in e:
                rec["state"] = [
                    {k: (v if k == "step" else dec_array(v)) for k, v in st.items()}
                    for st in e["state"]
                ]
            if "totals" in e:
                rec["totals"] = [dec(x) for x in e["totals"]]
                rec["grads"] = [None if g is None else dec_array(g) for g in e["grads"]]
            if "raises" in e:
                rec["raises"] = e["raises"]
            expected.append(rec)
        return expected, params, grads
    store = formulas.rounder(dtype)
    steps = []
    for s, g in zip(case["steps"], grads, strict=True):
        steps.append({**{k: v for k, v in s.items() if k != "expected"}, "grads": g})
    groups = [_opts(g) for g in case["groups"]]
    expected = formulas.simulate(
        case["optimizer"], params, groups, _opts(case["defaults"]), steps, store=store
    )
    params = [store(p) for p in params]
    grads = [[None if x is None else _stored_grad(store, x) for x in row] for row in grads]
    return expected, params, grads


def _stored_grad(store: Callable[[np.ndarray], np.ndarray], g: Any) -> Any:
    """A gradient rounded to a low-precision dtype (a sparse one: its values)."""
    if isinstance(g, dict):
        return {"rows": g["rows"], "values": store(g["values"])}
    return store(g)


def _grad_tensor(g: Any, p: torch.Tensor) -> torch.Tensor | None:
    """The gradient tensor of a step for ``p``: dense, or sparse COO with the rows of dim 0 in
    the order given (repeats kept: uncoalesced, spec §5)."""
    if g is None:
        return None
    if isinstance(g, dict):
        rows = torch.tensor([g["rows"]], dtype=torch.int64, device=p.device).reshape(1, -1)
        values = torch.tensor(g["values"], dtype=p.dtype, device=p.device)
        return torch.sparse_coo_tensor(rows, values, p.shape, check_invariants=True)
    return torch.tensor(g, dtype=p.dtype, device=p.device)


def _run_optim(case: dict, subject: Any, device: str, dtype: str) -> None:
    tdtype = DTYPES[dtype]
    tol = tolerance_for(dtype)
    if not getattr(subject, "lazy_sparse", True) and any(
        isinstance(g, dict) for s in case["steps"] for g in s["grads"]
    ):
        raise NotApplicable(f"{subject.label} has no lazy update for sparse gradients (spec §5)")
    expected, params0, grads = _expected_steps(case, dtype)
    scales = _scales(expected)
    params = [torch.nn.Parameter(torch.tensor(p, dtype=tdtype, device=device)) for p in params0]
    groups = []
    for g in case["groups"]:
        opts = _opts({k: v for k, v in g.items() if k != "params"})
        groups.append({"params": [params[i] for i in g["params"]], **opts})
    opt = subject.optimizer(case["optimizer"], groups, _opts(case["defaults"]))
    for k, (step, exp, grads_k) in enumerate(zip(case["steps"], expected, grads, strict=True)):
        where = f"step {k + 1}"
        for gi, lr in (step.get("lr") or {}).items():
            opt.param_groups[int(gi)]["lr"] = lr
        for p, g in zip(params, grads_k, strict=True):
            p.grad = _grad_tensor(g, p.detach())
        if "clip" in step:
            clip = step["clip"]
            error = bool(clip.get("error_if_nonfinite", False))
            if "raises" in exp:
                try:
                    subject.clip(opt, error, bool(clip.get("fused", False)))
                except RuntimeError:
                    pass
                else:
                    raise CaseFailure(
                        f"{where}: clip_grad(error_if_nonfinite=True) with a non-finite total "
                        "did not raise RuntimeError"
                    )
            else:
                totals = subject.clip(opt, error, bool(clip.get("fused", False)))
                totals = list(totals or [])
                if len(totals) != len(exp["totals"]):
                    raise CaseFailure(
                        f"{where}: clip_grad returned {len(totals)} totals, expected "
                        f"{len(exp['totals'])} (one per group with clip_grad_max_norm)"
                    )
                for j, (got, want) in enumerate(zip(totals, exp["totals"], strict=True)):
                    compare(f"{where}: clip_grad total of clipped group {j}", _scalar(got),
                            np.array(want), tol)  # fmt: skip
            for i, (p, want) in enumerate(zip(params, exp["grads"], strict=True)):
                if want is None:
                    if p.grad is not None:
                        raise CaseFailure(f"{where}: param {i} gained a gradient")
                    continue
                got = p.grad.to_dense() if p.grad.is_sparse else p.grad  # spec §5
                compare(f"{where}: param {i} grad after clip_grad", got, want, tol, scales["grad"])
        if step.get("update", True) and "raises" not in exp:
            opt.step()
        for i, (p, want) in enumerate(zip(params, exp["params"], strict=True)):
            compare(f"{where}: param {i}", p, want, tol, scales["param"])
        if "state" in exp:
            for i, (p, want) in enumerate(zip(params, exp["state"], strict=True)):
                _compare_state(f"{where}: param {i}", opt, p, want, tol, scales)


def _scales(expected: list[dict]) -> dict[str, float]:
    """The largest finite magnitude of each quantity (parameters, each state key, gradients)
    over the whole case: the scale of ``atol``, so that a value that cancels down to nearly
    nothing is judged against the magnitude of the values it came from (Note [tolerances])."""
    out: dict[str, float] = {}

    def see(key: str, a: np.ndarray | None) -> None:
        if a is not None and a.size:
            fin = np.abs(a[np.isfinite(a)])
            if fin.size:
                out[key] = max(out.get(key, 0.0), float(fin.max()))

    for rec in expected:
        for p in rec["params"]:
            see("param", p)
        for st in rec.get("state", []):
            for k, v in st.items():
                if k != "step":
                    see(k, v)
        for g in rec.get("grads", []):
            see("grad", g)
    return defaultdict(float, out)


def _compare_state(where: str, opt: Any, p: torch.Tensor, want: dict, tol: Tolerance,
                   scales: dict[str, float]) -> None:  # fmt: skip
    got = opt.state.get(p, {})
    tensors = {k: v for k, v in got.items() if k != "step" and isinstance(v, torch.Tensor)}
    want_tensors = {k: v for k, v in want.items() if k != "step"}
    if not want:
        if tensors or "step" in got:
            raise CaseFailure(
                f"{where}: has state {sorted(got)} but was never updated (its grad was None)"
            )
        return
    for key, value in want_tensors.items():
        if key not in tensors:
            raise CaseFailure(f"{where}: state has no {key!r} (has {sorted(got)})")
        compare(f"{where} state[{key!r}]", tensors[key], value, tol, scales[key])
    if "step" in got or want_tensors:
        if "step" not in got:
            raise CaseFailure(f"{where}: state has no 'step' (has {sorted(got)})")
        if _scalar(got["step"]) != want["step"]:
            raise CaseFailure(
                f"{where} state['step']: expected {want['step']} (the optimizer step of its "
                f"last update), got {_scalar(got['step'])}"
            )


def _run_warn(case: dict, subject: Any, device: str, dtype: str) -> None:
    tdtype = DTYPES[dtype]
    params0 = [dec_array(p) for p in case["params"]]
    params = [torch.nn.Parameter(torch.tensor(p, dtype=tdtype, device=device)) for p in params0]
    opt = subject.optimizer(case["optimizer"], [{"params": params}], _opts(case["defaults"]))
    g = dec_array(case["steps"][0]["grads"][0])
    params[0].grad = torch.tensor(g, dtype=tdtype, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subject.clip(opt, False, False)
    if not caught:
        raise CaseFailure("clip_grad() with no group having clip_grad_max_norm did not warn")
    compare("grad after clip_grad", params[0].grad, g, tolerance_for(dtype))


# ---------------------------------------------------------------------------- error cases
def _check_raises(what: str, fn: Callable[[], Any], raises: list[str], names: str | None) -> None:
    try:
        fn()
    except NotApplicable:
        raise  # the subject lacks the algorithm: not applicable, not a departure
    except Exception as exc:
        if type(exc).__name__ not in raises and not any(
            k.__name__ in raises for k in type(exc).__mro__
        ):
            raise CaseFailure(
                f"{what} raised {type(exc).__name__}: {exc}; expected {' or '.join(raises)}"
            ) from None
        if names is not None and names not in str(exc):
            raise CaseFailure(
                f"{what} raised {type(exc).__name__} as expected, but its message does not name "
                f"the bad value {names}: {exc!r}"
            ) from None
        return
    raise CaseFailure(f"{what} did not raise {' or '.join(raises)}")


def _run_error(case: dict, subject: Any, device: str, dtype: str) -> None:
    if case["target"] == "scheduler":
        _run_sched_error(case, subject)
        return
    tdtype = DTYPES[dtype]

    def param() -> torch.nn.Parameter:
        return torch.nn.Parameter(torch.zeros(3, dtype=tdtype, device=device))

    name, kwargs = case["optimizer"], _opts(case.get("kwargs", {}))
    raises, names = case["raises"], case.get("names")
    if case["target"] == "constructor":
        _check_raises(f"{name}(params, **{kwargs})",
                      lambda: subject.optimizer(name, [param()], kwargs), raises,
                      names)  # fmt: skip
    elif case["target"] == "add_param_group":
        opt = subject.optimizer(name, [param()], {})
        _check_raises(f"{name}.add_param_group({{'params': [p], **{kwargs}}})",
                      lambda: opt.add_param_group({"params": [param()], **kwargs}), raises,
                      names)  # fmt: skip
    else:
        p = param()
        forms = {
            "bare-tensor": lambda: p,
            "set": lambda: {p},
            "empty": lambda: [],
            "duplicate-in-group": lambda: [p, p],
            "duplicate-across-groups": lambda: [{"params": [p]}, {"params": [p]}],
            # the same group dicts used twice: the second optimizer gets an empty group
            "exhausted-generator-group": lambda: [{"params": [p]}, {"params": iter(())}],
        }
        form = case["form"]
        _check_raises(f"{name}(<params: {form}>)",
                      lambda: subject.optimizer(name, forms[form](), {}), raises,
                      names)  # fmt: skip


# ---------------------------------------------------------------------------- schedulers
def _sched_optimizer(base_lrs: list[float], initial: bool = False) -> torch.optim.Optimizer:
    groups = []
    for b in base_lrs:
        g = {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": b}
        if initial:
            g["initial_lr"] = b
        groups.append(g)
    return torch.optim.SGD(groups, lr=base_lrs[0])


def build_scheduler(mod: Any, spec: dict, opt: Any, last_step: int | None = None) -> Any:
    """Construct the ``flowoptim_sched`` scheduler that ``spec`` describes on ``opt``."""
    kind, kw = spec["kind"], dict(_hyper(spec["kwargs"]))
    cls = getattr(mod, kind)
    extra = {} if last_step is None else {"last_step": last_step}
    if kind == "LambdaLR":
        fn = kw["lr_lambda"]
        kw["lr_lambda"] = (
            [formulas.LAMBDAS[f] for f in fn] if isinstance(fn, list) else formulas.LAMBDAS[fn]
        )
    if kind == "SequentialLR":
        subs = [build_scheduler(mod, s, opt) for s in kw.pop("schedulers")]
        return cls(opt, schedulers=subs, **kw, **extra)
    if kind == "ChainedScheduler":
        subs = [build_scheduler(mod, s, opt) for s in kw.pop("schedulers")]
        return cls(subs, **extra)
    if kind == "WarmupLR":
        inner = kw.pop("scheduler")
        target = opt if inner is None else build_scheduler(mod, inner, opt)
        return cls(target, **kw, **extra)
    return cls(opt, **kw, **extra)


def _builder(subject: Any) -> Callable[[dict, Any, int | None], Any]:
    """How ``subject`` builds a scheduler from a case's spec: its own ``build_scheduler`` (the
    torch adapter maps OneFlow's arguments onto torch's classes), else :func:`build_scheduler`
    over its ``scheduler_module()``."""
    own = getattr(subject, "build_scheduler", None)
    if own is not None:
        return own
    mod = subject.scheduler_module()
    return lambda spec, opt, last_step=None: build_scheduler(mod, spec, opt, last_step)


def _run_sched_error(case: dict, subject: Any) -> None:
    build = _builder(subject)
    last_step = case.get("last_step")
    opt = _sched_optimizer(case["base_lrs"])
    # the case itself is described above the verdict: name only what was called
    _check_raises(f"{case['sched']['kind']}(...)",
                  lambda: build(case["sched"], opt, last_step), case["raises"],
                  case.get("names"))  # fmt: skip


def _lrs(opt: Any) -> list[float]:
    return [float(g["lr"]) for g in opt.param_groups]


def _run_sched(case: dict, subject: Any) -> None:
    build = _builder(subject)
    spec = case["sched"]
    plateau = spec["kind"] == "ReduceLROnPlateau"
    # Resuming: a closed form needs only the scheduler's state; a recursive scheduler (torch's,
    # ReduceLROnPlateau) also needs the group lrs back, as the optimizer's state dict gives them.
    restore_lrs = plateau or getattr(subject, "restore_lrs_on_resume", False)
    expected = [[dec(x) for x in row] for row in case["expected_lrs"]]
    last_step = case.get("last_step")
    opt = _sched_optimizer(case["base_lrs"], initial=last_step is not None)
    sched = build(spec, opt, last_step)

    def check(k: int, what: str) -> None:
        compare(f"{what}: group lrs", np.array(_lrs(opt)), np.array(expected[k]), SCHEDULER)
        if not plateau:
            compare(f"{what}: get_last_lr()", np.array([float(x) for x in sched.get_last_lr()]),
                    np.array(expected[k]), SCHEDULER)  # fmt: skip

    check(0, "after construction")
    for k, step in enumerate(case["steps"], 1):
        if case.get("resume_at") == k - 1:
            saved = copy.deepcopy(sched.state_dict())
            lrs = _lrs(opt)
            opt = _sched_optimizer(case["base_lrs"])
            sched = build(spec, opt, None)
            if restore_lrs:
                for g, lr in zip(opt.param_groups, lrs, strict=True):
                    g["lr"] = lr
            sched.load_state_dict(saved)
        for gi, lr in (step.get("set_lr") or {}).items():
            opt.param_groups[int(gi)]["lr"] = lr
        if "metric" in step:
            sched.step(step["metric"])
        else:
            sched.step()
        check(k, f"step {k}" + (" (resumed)" if "resume_at" in case and k > case["resume_at"]
                                else ""))  # fmt: skip


# ---------------------------------------------------------------------------- driver
def is_scheduler_case(case: dict) -> bool:
    """Whether ``case`` exercises a scheduler (a schedule, or a scheduler constructor error)."""
    return case["kind"] == "sched" or case.get("target") == "scheduler"


def _dtype_independent(case: dict) -> bool:
    return case["kind"] == "sched" or case["kind"] == "error"


def _run_one(case: dict, subject: Any, device: str, dtype: str) -> None:
    kind = case["kind"]
    if kind == "optim":
        _run_optim(case, subject, device, dtype)
    elif kind == "warn":
        _run_warn(case, subject, device, dtype)
    elif kind == "error":
        _run_error(case, subject, device, dtype)
    elif kind == "sched":
        _run_sched(case, subject)
    else:
        raise ValueError(f"case {case['id']}: unknown kind {kind!r}")


def run_subject(
    subject: Any,
    *,
    device: str = "cpu",
    dtypes: Iterable[str] = ("float32", "float64"),
    cases: list[dict] | None = None,
    max_numel: int | None = None,
    xfails: dict[str, str] | None = None,
    schedulers: bool | str = True,
    progress: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Run ``cases`` (default: every vector) against ``subject`` for each dtype.

    Cases that do not depend on the dtype (errors, schedulers) run once, with the first dtype.
    ``schedulers``: ``True`` runs every case, ``False`` leaves the scheduler cases out (no
    result at all), ``"only"`` runs nothing but them (the command runs them once, under
    :class:`SchedulerSubject`, rather than under every backend).
    """
    if schedulers not in (True, False, "only"):
        raise ValueError(f"schedulers must be True, False or 'only', got {schedulers!r}")
    dtypes = [dtype_name(d) for d in dtypes]
    if not dtypes:
        raise ValueError("no dtype to run")
    cases = load_cases() if cases is None else cases
    xfails = xfails or {}
    check_xfail_patterns(xfails, [c["id"] for c in cases])
    report = Report()
    if subject.informational:
        report.informational.add(subject.label)
    sched_missing = None
    if schedulers:
        try:
            subject.scheduler_module()
        except ImportError as exc:
            sched_missing = f"flowoptim_sched is not importable: {exc}"
        except NotApplicable as exc:
            sched_missing = str(exc)
    for di, dtype in enumerate(dtypes):
        for case in cases:
            independent = _dtype_independent(case)
            if independent and di > 0:
                continue
            is_sched = is_scheduler_case(case)
            if (schedulers is False and is_sched) or (schedulers == "only" and not is_sched):
                continue
            res = CaseResult(case["id"], case["family"], subject.label,
                             None if independent else dtype, "passed")  # fmt: skip
            reason = _xfail_reason(xfails, case["id"], res.dtype)
            if is_sched and sched_missing:
                res.status = "n/a" if subject.informational else "skipped"
                res.message = sched_missing
            elif max_numel is not None and _numel(case) > max_numel:
                res.status = "skipped"
                res.message = f"a parameter has {_numel(case)} > --max-numel {max_numel} elements"
            else:
                try:
                    with warnings.catch_warnings():
                        # warnings are not verdicts (the "warn" case records its own)
                        warnings.simplefilter("ignore")
                        _run_one(case, subject, device, dtype)
                except NotApplicable as exc:
                    res.status, res.message = "n/a", str(exc)
                except CaseFailure as exc:
                    res.status, res.message = "failed", str(exc)
                except Exception as exc:
                    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
                    res.status = "failed"
                    res.message = f"raised {type(exc).__name__}: {exc}\n" + "".join(tb[-3:])
                if reason is not None:
                    if res.status == "failed":
                        res.status, res.message = "xfailed", f"{reason} ({res.message})"
                    elif res.status == "passed":
                        res.status = "xpassed"
                        res.message = (f"passed but is listed as xfail ({reason}): remove it from "
                                       "the xfail file")  # fmt: skip
            if res.status in ("failed", "xpassed"):
                res.message = f"{_describe_case(case)}\n    {res.message}"
            report.results.append(res)
            if progress is not None:
                progress(res)
    return report


def run(
    backend: Any,
    device: str = "cpu",
    dtype: str | Iterable[str] = ("float32", "float64"),
    *,
    cases: list[str] | None = None,
    families: list[str] | None = None,
    max_numel: int | None = None,
    xfail: str | Path | dict | None = None,
    label: str | None = None,
) -> Report:
    """Run the suite against ``backend`` (a registered name, ``"module:attr"`` or a Backend).

    ``dtype``: one name or several; ``cases``: fnmatch patterns of case ids; ``families``: table
    rows to run; ``xfail``: an xfail file (see :func:`load_xfails`) or a dict. A backend may also
    carry its own list as attribute ``conformance_xfails`` (a dict or a file path).
    """
    subject = FlowoptimSubject(backend, label)
    dtypes = [dtype] if isinstance(dtype, str) else list(dtype)
    xf = dict(load_xfails(getattr(subject.backend, "conformance_xfails", None)))
    xf.update(load_xfails(xfail))
    return run_subject(subject, device=device, dtypes=dtypes,
                       cases=load_cases(cases, families), max_numel=max_numel,
                       xfails=xf)  # fmt: skip
