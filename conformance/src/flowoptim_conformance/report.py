"""The combined table printed by the command."""

from __future__ import annotations

from collections import defaultdict

from .runner import Report

__all__ = ["FAMILY_ORDER", "format_failures", "format_table"]

FAMILY_ORDER = [
    "SGD", "Adam", "AdamW", "LAMB", "RMSprop", "Adagrad", "Adadelta", "clip_grad",
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineDecayLR",
    "PolynomialLR", "LambdaLR", "ConstantLR", "LinearLR", "CosineAnnealingWarmRestarts",
    "SequentialLR", "ChainedScheduler", "WarmupLR", "ReduceLROnPlateau",
]  # fmt: skip


def _blocks(report: Report) -> list[tuple[str, str]]:
    """(subject, dtype) column blocks in first-seen order; dtype-free results join the first."""
    seen: list[tuple[str, str]] = []
    for r in report.results:
        if r.dtype is not None and (r.subject, r.dtype) not in seen:
            seen.append((r.subject, r.dtype))
    for r in report.results:
        if r.dtype is None and not any(s == r.subject for s, _ in seen):
            seen.append((r.subject, "-"))
    return seen


def format_table(report: Report) -> str:
    """Rows: optimizer or scheduler family; one column block per backend and dtype.

    Counted blocks show passed / failed / xfailed (and skipped when any); blocks of
    informational subjects (the torch.optim adapter) show agree / depart / n/a.
    """
    blocks = _blocks(report)
    first_dtype = {}
    for s, d in blocks:
        first_dtype.setdefault(s, d)
    counts: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in report.results:
        d = r.dtype if r.dtype is not None else first_dtype[r.subject]
        status = "failed" if r.status == "xpassed" else r.status
        counts[(r.subject, d, r.family)][status] += 1
    families = [f for f in FAMILY_ORDER if any(k[2] == f for k in counts)]
    families += sorted({k[2] for k in counts} - set(families))
    any_skip = any(r.status == "skipped" for r in report.results)
    cols = []
    for s, d in blocks:
        if s in report.informational:
            cols.append((s, d, ["passed", "failed", "n/a"], ["agree", "depart", "n/a"]))
        else:
            keys = ["passed", "failed", "xfailed"] + (["skipped"] if any_skip else [])
            cols.append((s, d, keys, keys))
    fw = max(len("family"), *(len(f) for f in families), len("total")) + 2
    widths = [max(len(f"{s} {d}") + 2, 8 * len(names)) for s, d, _, names in cols]
    # build the header so that each block label sits over its columns
    head1 = " " * fw
    head2 = "family".ljust(fw)
    for (s, d, _, names), w in zip(cols, widths, strict=True):
        label = f"{s} {d}" + (" (info)" if s in report.informational else "")
        w = max(w, len(label) + 2)
        head1 += label.ljust(w)
        sub = "".join(n.rjust(8) for n in names)
        head2 += sub.ljust(w)
    lines = [head1.rstrip(), head2.rstrip(), "-" * len(head2.rstrip())]
    totals = defaultdict(lambda: defaultdict(int))
    for fam in families:
        row = fam.ljust(fw)
        for (s, d, keys, _names), w in zip(cols, widths, strict=True):
            label = f"{s} {d}" + (" (info)" if s in report.informational else "")
            w = max(w, len(label) + 2)
            c = counts.get((s, d, fam))
            if c is None:
                cell = "".join("-".rjust(8) for _ in keys)
            else:
                cell = "".join(str(c.get(k, 0)).rjust(8) for k in keys)
                for k in keys:
                    totals[(s, d)][k] += c.get(k, 0)
            row += cell.ljust(w)
        lines.append(row.rstrip())
    lines.append("-" * len(head2.rstrip()))
    row = "total".ljust(fw)
    for (s, d, keys, _names), w in zip(cols, widths, strict=True):
        label = f"{s} {d}" + (" (info)" if s in report.informational else "")
        w = max(w, len(label) + 2)
        row += "".join(str(totals[(s, d)].get(k, 0)).rjust(8) for k in keys).ljust(w)
    lines.append(row.rstrip())
    return "\n".join(lines)


def format_failures(report: Report, limit: int | None = None) -> str:
    """One reproducer per failure: case id, subject, dtype, hyperparameters, step, expected/got."""
    out = []
    fails = report.failures()
    for r in fails[:limit]:
        dtype = r.dtype or "any dtype"
        out.append(f"FAILED {r.case_id} [{r.subject}, {dtype}]\n    {r.message}")
        out.append(
            f"    rerun: python -m flowoptim_conformance --backend {r.subject} "
            f"--dtype {r.dtype or 'float32'} --case {r.case_id}"
        )
    if limit is not None and len(fails) > limit:
        out.append(f"... and {len(fails) - limit} more failures (use --max-failures 0 for all)")
    return "\n".join(out)
