"""The combined table printed by the command.

Two sections, each as wide as it needs and never wider than :data:`WIDTH` (a section with more
column blocks than fit is printed in bands, the family column repeated):

- optimizers (and clip_grad): one block per backend, titled with how it ran (``reference
  (cpu)``, ``triton (interp)`` for Triton's CPU interpreter, ``triton (cuda)`` natively), one
  sub-column per dtype;
- schedulers: the ``flowoptim_sched`` classes, which touch no backend and no dtype, run once.

Counted cells read ``passed/failed``; blocks of informational subjects (torch's own classes) read
``agree/depart``. A suffix gives the rarer outcomes: ``x`` xfailed, ``s`` skipped, ``na`` not
applicable; an informational cell with nothing but n/a reads ``n/a``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .runner import CaseResult, Report

__all__ = [
    "FAMILY_ORDER",
    "SCHEDULER_FAMILIES",
    "WIDTH",
    "format_failures",
    "format_table",
    "legend",
    "verdict_word",
]

WIDTH = 100

OPTIMIZER_FAMILIES = ["SGD", "Adam", "AdamW", "LAMB", "RMSprop", "Adagrad", "Adadelta",
                      "clip_grad"]  # fmt: skip
SCHEDULER_FAMILIES = [
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineDecayLR",
    "PolynomialLR", "LambdaLR", "ConstantLR", "LinearLR", "CosineAnnealingWarmRestarts",
    "SequentialLR", "ChainedScheduler", "WarmupLR", "ReduceLROnPlateau",
]  # fmt: skip
FAMILY_ORDER = OPTIMIZER_FAMILIES + SCHEDULER_FAMILIES

_SHORT_DTYPE = {"float32": "fp32", "float64": "fp64", "float16": "fp16", "bfloat16": "bf16"}
_INFO_WORDS = {"passed": "agree", "failed": "depart", "xpassed": "depart"}


def verdict_word(result: CaseResult, informational: bool) -> str:
    """The word the table uses for ``result``: agree/depart/n/a for informational subjects;
    passed/failed/xfailed/skipped/n/a otherwise (an xpass is a failure)."""
    if informational:
        return _INFO_WORDS.get(result.status, result.status)
    return "failed" if result.status == "xpassed" else result.status


@dataclass
class _Block:
    subject: str
    title: str
    info: bool
    dtypes: list[str | None]  # sub-columns; None: results that do not depend on the dtype


def _cell(c: dict[str, int] | None, info: bool) -> str:
    if not c:
        return "-"
    if info:
        agree, depart = c.get("passed", 0), c.get("failed", 0)
        if agree == depart == 0 and c.get("n/a", 0):
            return "n/a"
        text = f"{agree}/{depart}"
    else:
        text = f"{c.get('passed', 0)}/{c.get('failed', 0)}"
        text += f" x{c['xfailed']}" if c.get("xfailed") else ""
    text += f" s{c['skipped']}" if c.get("skipped") else ""
    text += f" na{c['n/a']}" if c.get("n/a") and text != "n/a" else ""
    return text


def _section(
    title: str,
    families: list[str],
    blocks: list[_Block],
    counts: dict[tuple[str, str | None, str], dict[str, int]],
) -> list[str]:
    """One section, in as many bands as it takes to stay within WIDTH."""
    fw = max(len(title), *(len(f) for f in families), len("total")) + 2
    rendered = []  # per block: (width, header1, header2, cells per family, total cell)
    for b in blocks:
        subs = []
        for d in b.dtypes:
            cells = [_cell(counts.get((b.subject, d, f)), b.info) for f in families]
            total: dict[str, int] = defaultdict(int)
            for f in families:
                for k, v in counts.get((b.subject, d, f), {}).items():
                    total[k] += v
            tcell = _cell(total, b.info)
            head = _SHORT_DTYPE.get(d, d) if d is not None else "any dtype"
            w = max(len(head), *(len(c) for c in cells), len(tcell)) + 2
            subs.append((w, head, cells, tcell))
        width = max(sum(s[0] for s in subs), len(b.title) + 2)
        extra = width - sum(s[0] for s in subs)  # a long title widens the first sub-column
        subs[0] = (subs[0][0] + extra, *subs[0][1:])
        rendered.append((width, b.title, subs))
    bands: list[list] = [[]]
    used = fw
    for r in rendered:
        if bands[-1] and used + r[0] > WIDTH:
            bands.append([])
            used = fw
        bands[-1].append(r)
        used += r[0]
    lines: list[str] = []
    for band in bands:
        head1 = " " * fw + "".join(t.rjust(w) for w, t, _ in band)
        head2 = title.ljust(fw) + "".join(
            h.rjust(sw) for _, _, subs in band for sw, h, _, _ in subs
        )
        rule = "-" * len(head2)
        if lines:
            lines.append("")
        lines += [head1.rstrip(), head2, rule]
        for i, fam in enumerate(families):
            row = fam.ljust(fw) + "".join(
                cells[i].rjust(sw) for _, _, subs in band for sw, _, cells, _ in subs
            )
            lines.append(row)
        lines.append(rule)
        lines.append(
            "total".ljust(fw) + "".join(t.rjust(sw) for _, _, subs in band for sw, _, _, t in subs)
        )
    return lines


def format_table(report: Report, titles: dict[str, str] | None = None) -> str:
    """The table of ``report``; ``titles`` maps a subject label to its column title (how the
    backend ran, e.g. ``"triton": "triton (interp)"``); informational ones get ``(info)``."""
    titles = titles or {}
    counts: dict[tuple[str, str | None, str], dict[str, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    order: dict[str, list[str | None]] = {}  # subject -> dtypes in first-seen order
    for r in report.results:
        dtypes = order.setdefault(r.subject, [])
        if r.dtype not in dtypes:
            dtypes.append(r.dtype)
    first: dict[str, str | None] = {}
    for subject, dtypes in order.items():
        typed = [d for d in dtypes if d is not None]
        first[subject] = typed[0] if typed else None
    for r in report.results:
        # results that do not depend on the dtype (error cases) join the first dtype's column
        d = r.dtype if r.dtype is not None else first[r.subject]
        status = "failed" if r.status == "xpassed" else r.status
        counts[(r.subject, d, r.family)][status] += 1
    seen = {k[2] for k in counts}
    sched = [f for f in SCHEDULER_FAMILIES if f in seen]
    optim = [f for f in OPTIMIZER_FAMILIES if f in seen]
    optim += sorted(seen - set(sched) - set(optim))
    out: list[str] = []
    for title, families in (("optimizers", optim), ("schedulers", sched)):
        if not families:
            continue
        blocks = []
        for subject, dtypes in order.items():
            cols = []
            for d in dtypes:
                d = d if d is not None else first[subject]
                if d not in cols and any((subject, d, f) in counts for f in families):
                    cols.append(d)
            if cols:
                info = subject in report.informational
                label = titles.get(subject, subject) + (" (info)" if info else "")
                blocks.append(_Block(subject, label, info, cols))
        if out:
            out.append("")
        out += _section(title, families, blocks, counts)
    return "\n".join(out)


def legend(report: Report, modes: dict[str, str] | None = None) -> list[str]:
    """The lines under the table that explain it (each within WIDTH)."""
    lines = ["cells: passed/failed; x: xfailed, s: skipped, na: not applicable (no equivalent)"]
    if report.informational:
        lines += [
            "(info): torch's own classes (torch.optim, torch.optim.lr_scheduler) on the same",
            "  vectors, cells agree/depart: 'depart' shows where torch differs from OneFlow's",
            "  semantics. Information only, never counted.",
        ]
    for label, text in (modes or {}).items():
        lines.append(f"({label}): {text}")
    return lines


def format_failures(report: Report, limit: int | None = None) -> str:
    """One reproducer per failure: case id, subject, dtype, hyperparameters, step, expected/got."""
    out = []
    fails = report.failures()
    for r in fails[:limit]:
        dtype = r.dtype or "any dtype"
        out.append(f"FAILED {r.case_id} [{r.subject}, {dtype}]\n    {r.message}")
        if r.family in SCHEDULER_FAMILIES and r.dtype is None and r.subject == "flowoptim_sched":
            # schedulers run once, whatever the backend named
            rerun = f"--backend reference --case {r.case_id}"
        else:
            rerun = f"--backend {r.subject} --dtype {r.dtype or 'float32'} --case {r.case_id}"
        out.append(f"    rerun: python -m flowoptim_conformance {rerun}")
    if limit is not None and len(fails) > limit:
        out.append(f"... and {len(fails) - limit} more failures (use --max-failures 0 for all)")
    return "\n".join(out)
