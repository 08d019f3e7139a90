"""``python -m flowoptim_sched plot SPEC [SPEC ...]``: draw (or print) learning-rate schedules.

A SPEC is a constructor call without the optimizer, e.g. ``"CosineDecayLR(decay_steps=1000,
alpha=0.1)"``. Arguments are Python literals; a wrapped scheduler is written as a nested call
(``"WarmupLR(CosineDecayLR(decay_steps=1000), warmup_iters=100)"``, ``"SequentialLR(
schedulers=[ConstantLR(), ExponentialLR(gamma=0.9)], milestones=[5])"``), and LambdaLR takes a
lambda (``"LambdaLR(lambda s: 0.95 ** s)"``, with ``math`` available). Each SPEC drives its own
``torch.optim.SGD`` over one dummy parameter with ``--lr`` as its lr.
"""

from __future__ import annotations

import argparse
import ast
import csv
import math
import sys
from collections.abc import Sequence
from typing import Any

import torch

from . import SCHEDULERS, ReduceLROnPlateau

__all__ = ["main", "parse_spec", "plot_points", "schedule_values"]

_NEEDS_NO_OPTIMIZER = {"ChainedScheduler"}

# The plot command's --help text: plain text (the module docstring above is reST, for Sphinx).
PLOT_DESCRIPTION = """\
Draw (or print as CSV) the learning rate of one or more schedulers, step by step.

A SPEC is a scheduler's constructor call without the optimizer, for example
  "CosineDecayLR(decay_steps=1000, alpha=0.1)"
Arguments are Python literals. Write a wrapped scheduler as a nested call:
  "WarmupLR(CosineDecayLR(decay_steps=1000), warmup_iters=100)"
  "SequentialLR(schedulers=[ConstantLR(), ExponentialLR(gamma=0.9)], milestones=[5])"
LambdaLR takes a lambda, with the math module available:
  "LambdaLR(lambda s: 0.95 ** s)"
Each SPEC drives its own torch.optim.SGD over one dummy parameter, with --lr as its lr.
The lr holds for a whole step, so a drop (StepLR, MultiStepLR, a restart) is drawn as a
vertical edge, and smooth schedules as lines.

examples:
  python -m flowoptim_sched plot "StepLR(step_size=30)" --steps 100 -o steplr.png
  python -m flowoptim_sched plot "CosineDecayLR(1000, alpha=0.1)" --steps 1200 --csv
"""


class SpecError(ValueError):
    """A SPEC that cannot be turned into a scheduler."""


def _evaluate(node: ast.AST, optimizer: torch.optim.Optimizer, source: str) -> Any:
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in SCHEDULERS:
            name = ast.get_source_segment(source, node.func) or "?"
            known = ", ".join(sorted(SCHEDULERS))
            raise SpecError(f"unknown scheduler {name!r} (known: {known})")
        cls = SCHEDULERS[node.func.id]
        if cls is ReduceLROnPlateau:
            raise SpecError("ReduceLROnPlateau follows a metric, not the step: cannot plot it")
        args = [_evaluate(a, optimizer, source) for a in node.args]
        kwargs = {k.arg: _evaluate(k.value, optimizer, source) for k in node.keywords if k.arg}
        wraps_scheduler = node.func.id in ("WarmupLR", "WarmUpLR") and (
            args or "scheduler_or_optimizer" in kwargs
        )
        if node.func.id not in _NEEDS_NO_OPTIMIZER and not wraps_scheduler:
            args.insert(0, optimizer)
        return cls(*args, **kwargs)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_evaluate(e, optimizer, source) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Lambda):
        code = compile(ast.Expression(node), "<spec>", "eval")
        return eval(code, {"__builtins__": {}, "math": math})
    try:
        return ast.literal_eval(node)
    except ValueError:
        segment = ast.get_source_segment(source, node) or ast.dump(node)
        raise SpecError(f"not a literal, a scheduler call or a lambda: {segment}") from None


def parse_spec(spec: str, optimizer: torch.optim.Optimizer) -> Any:
    """Build the scheduler a SPEC describes, on ``optimizer``."""
    try:
        tree = ast.parse(spec.strip(), mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"cannot parse {spec!r}: {exc.msg}") from None
    if not isinstance(tree.body, ast.Call):
        raise SpecError(f"expected a call such as 'StepLR(step_size=30)', got {spec!r}")
    return _evaluate(tree.body, optimizer, spec)


def schedule_values(spec: str, lr: float, steps: int) -> list[float]:
    """The lr at steps ``0 .. steps-1`` of the scheduler SPEC describes, for base lr ``lr``."""
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = parse_spec(spec, optimizer)
    values = []
    for _ in range(steps):
        values.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()  # nothing to update (no gradient): keeps the order torch expects
        scheduler.step()
    return values


def plot_points(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """The polyline to draw for the lrs of steps ``0 .. n-1``: jumps vertical, slopes as lines.

    The lr of step ``s`` holds for the whole step, so where it jumps (a StepLR or MultiStepLR
    drop, a warm restart, a hand-over in SequentialLR) the curve holds the old value up to
    ``s`` and then goes straight to the new one, as matplotlib's ``steps-post``; joining the
    two points directly would draw the drop as a ramp one step wide. Elsewhere the points are
    joined by straight lines, so a cosine stays smooth rather than a staircase. A change counts
    as a jump when it is over four times larger than the changes on either side of it (a change
    after or before a flat stretch always is).
    """
    n = len(values)
    xs: list[float] = []
    ys: list[float] = []

    def change(i: int) -> float:
        return abs(values[i] - values[i - 1]) if 0 < i < n else 0.0

    for i, v in enumerate(values):
        d = change(i)
        if d > 0 and d > 4 * max(change(i - 1), change(i + 1)):
            xs.append(i)
            ys.append(values[i - 1])
        xs.append(i)
        ys.append(v)
    return xs, ys


def _write_csv(specs: Sequence[str], curves: Sequence[list[float]], out: Any) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "lr"] if len(specs) == 1 else ["step", *specs])
    for step, row in enumerate(zip(*curves, strict=True)):
        writer.writerow([step, *(repr(v) for v in row)])


def _plot(
    specs: Sequence[str],
    curves: Sequence[list[float]],
    lr: float,
    output: str,
    title: str | None,
    log_y: bool,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120, layout="constrained")
    for spec, values in zip(specs, curves, strict=True):
        ax.plot(*plot_points(values), label=spec, linewidth=1.8)
    ax.set_title(title or f"Learning-rate schedule (base lr {lr:g})")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(output)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowoptim_sched", description="flowoptim-sched tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plot = sub.add_parser(
        "plot",
        help="draw learning-rate schedules",
        description=PLOT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plot.add_argument("specs", nargs="+", metavar="SPEC", help='e.g. "StepLR(step_size=30)"')
    plot.add_argument("--lr", type=float, default=0.1, help="base lr (default: 0.1)")
    plot.add_argument("--steps", type=int, default=100, help="steps to draw (default: 100)")
    plot.add_argument("-o", "--output", default="lr.png", help="PNG to write (default: lr.png)")
    plot.add_argument("--title", default=None, help="figure title")
    plot.add_argument("--log-y", action="store_true", help="logarithmic lr axis")
    plot.add_argument(
        "--csv", action="store_true", help="print step,lr rows to stdout instead of drawing"
    )
    args = parser.parse_args(argv)

    if args.steps <= 0:
        parser.error(f"invalid --steps: {args.steps} (expected a positive integer)")
    try:
        curves = [schedule_values(spec, args.lr, args.steps) for spec in args.specs]
    except (SpecError, ValueError, TypeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        _write_csv(args.specs, curves, sys.stdout)
        return 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "error: drawing needs matplotlib: pip install 'flowoptim-sched[plot]' (or use --csv)",
            file=sys.stderr,
        )
        return 2
    _plot(args.specs, curves, args.lr, args.output, args.title, args.log_y)
    print(f"wrote {args.output}")
    return 0
