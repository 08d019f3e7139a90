"""Generate (or ``--check``) the test vectors ``vectors/*.json`` from the formulas.

``python -m flowoptim_conformance.generate`` rewrites the vectors; ``--check`` regenerates them in
memory and exits 1 naming every file that differs (``nox -s vectors``). Deterministic: inputs come
from generators seeded by the case ids, rounded to float32; every float is written as
``float.hex``. Imports neither torch nor flowoptim.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import formulas
from .cases import all_cases, build_inputs, file_of
from .encoding import enc, enc_array, enc_grad

__all__ = ["FORMAT", "VECTORS_DIR", "build_vectors", "main"]

FORMAT = 1
BIG_STATE = 64
VECTORS_DIR = Path(__file__).with_name("vectors")


def _jsonable(x):
    """Hyperparameters in JSON: tuples as lists, non-finite floats as hex strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return {"float": enc(x)}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


def _enc_state(state: dict) -> dict:
    return {k: (v if k == "step" else enc_array(v)) for k, v in state.items()}


def _optim_vector(case: dict) -> dict:
    c = build_inputs(case)
    expected = formulas.simulate(c["optimizer"], c["params"], c["groups"], c["defaults"],
                                 c["steps"])  # fmt: skip
    # big cases store the state only after the last step (the parameters after every step)
    every = max(p.size for p in c["params"]) <= BIG_STATE
    steps = []
    for k, (step, exp) in enumerate(zip(c["steps"], expected, strict=True)):
        s = {"grads": [enc_grad(g) for g in step["grads"]]}
        for key in ("lr", "clip", "update"):
            if key in step:
                s[key] = step[key] if key != "lr" else {str(k): v for k, v in step[key].items()}
        e = {"params": [enc_array(p) for p in exp["params"]]}
        if every or k == len(expected) - 1:
            e["state"] = [_enc_state(st) for st in exp["state"]]
        if "totals" in exp:
            e["totals"] = [enc(x) for x in exp["totals"]]
            e["grads"] = [None if g is None else enc_array(g) for g in exp["grads"]]
        if "raises" in exp:
            e["raises"] = exp["raises"]
        s["expected"] = e
        steps.append(s)
    out = {k: v for k, v in c.items() if k not in ("params", "steps", "grad_scale")}
    out["params"] = [enc_array(p) for p in c["params"]]
    out["steps"] = steps
    return _jsonable(out)


def _sched_vector(case: dict) -> dict:
    out = dict(case)
    spec, bases = case["sched"], case["base_lrs"]
    if spec["kind"] == "ReduceLROnPlateau":
        metrics = [s["metric"] for s in case["steps"]]
        lrs = [list(bases), *formulas.plateau_lrs(spec["kwargs"], bases, metrics)]
    else:
        first = case.get("last_step", -1) + 1
        lrs = []
        for k in range(len(case["steps"]) + 1):
            lrs.append([formulas.sched_lr(spec["kind"], spec["kwargs"], b, first + k, bases, i)
                        for i, b in enumerate(bases)])  # fmt: skip
    out["expected_lrs"] = [[enc(x) for x in row] for row in lrs]
    return _jsonable(out)


def build_vectors() -> dict[str, str]:
    """Every vectors file name mapped to its JSON text."""
    files: dict[str, list] = {}
    for case in all_cases():
        if case["kind"] in ("optim", "warn"):
            vec = _optim_vector(case)
        elif case["kind"] == "sched":
            vec = _sched_vector(case)
        else:
            vec = _jsonable(case)
        files.setdefault(file_of(case), []).append(vec)
    return {
        f"{name}.json": json.dumps({"format": FORMAT, "file": name, "cases": cases},
                                   indent=None, separators=(",", ":"), sort_keys=True) + "\n"
        for name, cases in sorted(files.items())
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Write the vectors, or with ``--check`` compare them; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m flowoptim_conformance.generate",
                                 description=__doc__.splitlines()[0])  # fmt: skip
    ap.add_argument(
        "--check",
        action="store_true",
        help="compare with the checked-in vectors, exit 1 on any difference",
    )
    ap.add_argument("--dir", type=Path, default=VECTORS_DIR, help="vectors directory")
    args = ap.parse_args(argv)
    files = build_vectors()
    existing = {p.name for p in args.dir.glob("*.json")} if args.dir.is_dir() else set()
    if args.check:
        bad = [
            n
            for n, text in files.items()
            if not (args.dir / n).is_file() or (args.dir / n).read_text() != text
        ]
        bad += sorted(existing - set(files))  # fmt: skip
        for n in bad:
            print(f"vectors differ from the formulas: {args.dir / n}", file=sys.stderr)
        if bad:
            print(
                "run `python -m flowoptim_conformance.generate` and commit the result",
                file=sys.stderr,
            )
            return 1
        n_cases = sum(len(json.loads(t)["cases"]) for t in files.values())
        print(f"{len(files)} vector files, {n_cases} cases: up to date")
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for n in sorted(existing - set(files)):
        (args.dir / n).unlink()
    for n, text in files.items():
        (args.dir / n).write_text(text)
    total = sum(len(t) for t in files.values())
    print(f"wrote {len(files)} vector files ({total / 1e6:.2f} MB) to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
