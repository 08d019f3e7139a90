"""``python -m flowoptim_conformance``: run the conformance suite against one or more backends.

    python -m flowoptim_conformance --backend reference
    python -m flowoptim_conformance --backend reference --backend triton --torch-adapter
    python -m flowoptim_conformance --backend my_pkg.backend:MyBackend --dtype float32 \\
        --xfail my_xfails.txt

Prints one table, at most 100 columns wide: an optimizer section (one block per backend, titled
with how it ran, e.g. ``triton (interp)``, one column per dtype) and a scheduler section (the
``flowoptim_sched`` classes, run once per invocation: they touch no backend and no dtype). Then a
reproducer for each failure, and last the line ``N passed, M failed``, where each scheduler case
counts once. Exit status 0 only if M is 0 and N is not; the torch adapter (torch.optim and
torch.optim.lr_scheduler) is information, never counted.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["main"]

_MODES = {
    "interp": "Triton's interpreter on the CPU (TRITON_INTERPRET=1), not compiled kernels",
    "cuda": "native, on the CUDA device",
}


def how_it_ran(backend: Any, device: str) -> str:
    """``interp`` for a Triton backend running in Triton's CPU interpreter, else the device."""
    module = type(backend).__module__
    if "triton" not in module:
        return device
    try:
        from flowoptim_triton.launch import interpreted
    except ImportError:
        interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    else:
        interp = interpreted()
    return "interp" if interp else device


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m flowoptim_conformance",
        description="Run flowoptim's formula-derived conformance vectors against a backend.",
    )
    ap.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NAME",
        help="a registered backend name or 'module:attribute' (repeatable)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="device of the tensors (default cpu)",
    )
    ap.add_argument(
        "--dtype",
        action="append",
        default=[],
        help="float32, float64, float16 or bfloat16 (repeatable; default float32 and "
        "float64, plus float16 and bfloat16 on cuda)",
    )
    ap.add_argument(
        "--torch-adapter",
        action="store_true",
        help="also run torch.optim and torch.optim.lr_scheduler where torch has the algorithm, "
        "for information",
    )
    ap.add_argument(
        "--xfail",
        metavar="FILE",
        help="xfail file ('CASE-ID[@DTYPE]: reason' lines) for the named backends",
    )
    ap.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only case ids matching this fnmatch pattern (repeatable)",
    )
    ap.add_argument(
        "--family",
        action="append",
        default=[],
        help="only this table row, e.g. Adam or clip_grad (repeatable)",
    )
    ap.add_argument(
        "--max-numel",
        type=int,
        default=None,
        metavar="N",
        help="skip cases with a parameter of more than N elements",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="shorthand for --max-numel 64 (e.g. Triton's interpreter)",
    )
    ap.add_argument(
        "--max-failures",
        type=int,
        default=50,
        metavar="K",
        help="print at most K reproducers (0: all; default 50)",
    )
    ap.add_argument("--list", action="store_true", help="list the case ids and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case's verdict")
    return ap  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    from .vectors_io import load_cases

    cases = load_cases(args.case or None, args.family or None)
    if args.list:
        for c in cases:
            print(f"{c['family']:28} {c['id']}")
        print(f"{len(cases)} cases")
        return 0
    if not args.backend and not args.torch_adapter:
        print("error: name at least one --backend (or --torch-adapter)", file=sys.stderr)
        return 2

    import torch

    from .report import format_failures, format_table, legend, verdict_word
    from .runner import (
        FlowoptimSubject,
        Report,
        SchedulerSubject,
        dtype_name,
        is_scheduler_case,
        load_xfails,
        run_subject,
    )

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    try:
        default = ["float32", "float64"] + (["float16", "bfloat16"] if args.device == "cuda"
                                            else [])  # fmt: skip
        dtypes = [dtype_name(d) for d in (args.dtype or default)]
        xfails_cli = load_xfails(args.xfail)
        subjects = [FlowoptimSubject(name) for name in args.backend]
    except (ValueError, TypeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    max_numel = 64 if args.quick and args.max_numel is None else args.max_numel
    report = Report()

    def progress(res):
        if args.verbose:
            word = verdict_word(res, res.subject in report.informational)
            print(f"{word:8} {res.subject:24} {res.dtype or '-':9} {res.case_id}", flush=True)

    titles, modes = {}, {}
    any_sched = any(is_scheduler_case(c) for c in cases)
    runs: list[tuple[Any, dict]] = []  # (subject, run_subject keywords)
    for subject in subjects:
        xf = dict(load_xfails(getattr(subject.backend, "conformance_xfails", None)))
        xf.update(xfails_cli)
        mode = how_it_ran(subject.backend, args.device)
        titles[subject.label] = f"{subject.label} ({mode})"
        if mode in _MODES:
            modes[mode] = _MODES[mode]
        runs.append((subject, {"xfails": xf, "schedulers": False}))
    if subjects and any_sched:
        # once, not per backend: schedulers touch no backend and no dtype
        runs.append((SchedulerSubject(), {"xfails": xfails_cli, "schedulers": "only"}))
    if args.torch_adapter:
        from .torch_adapter import TorchAdapter

        runs.append((TorchAdapter("torch.optim"), {"schedulers": False}))
        if any_sched:
            runs.append((TorchAdapter("torch.optim.lr_scheduler"), {"schedulers": "only"}))
    for subject, kw in runs:
        if subject.informational:
            report.informational.add(subject.label)
        try:
            report.extend(run_subject(subject, device=args.device, dtypes=dtypes, cases=cases,
                                      max_numel=max_numel, progress=progress,
                                      **kw))  # fmt: skip
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"flowoptim conformance: {len(cases)} cases, device {args.device}, "
          f"dtypes {', '.join(dtypes)}")  # fmt: skip
    print(format_table(report, titles))
    print("\n".join(legend(report, modes)))
    fails = report.failures()
    if fails:
        print()
        print(format_failures(report, None if args.max_failures == 0 else args.max_failures))
    skipped = sum(r.status == "skipped" for r in report.counted())
    if skipped:
        reasons = sorted({r.message for r in report.counted() if r.status == "skipped"})
        print(f"\n{skipped} skipped: " + "; ".join(reasons))
    if report.passed == 0:
        print("\nerror: no case ran: refusing to report success on zero cases", file=sys.stderr)
    print(report.summary_line())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
