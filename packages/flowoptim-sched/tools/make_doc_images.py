"""Draw the small curves of docs/algorithms/schedulers.md (docs/algorithms/img/sched-*.png).

    python packages/flowoptim-sched/tools/make_doc_images.py [OUTPUT_DIR]

Needs matplotlib. Every curve comes from the package itself (base lr 1.0), drawn as the plot
command draws it (a drop is a vertical edge: ``flowoptim_sched.cli.plot_points``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import flowoptim_sched as fs
from flowoptim_sched.cli import plot_points, schedule_values

ROOT = Path(__file__).resolve().parents[3]

# (file stem, [(legend label, SPEC), ...], steps): each SPEC as the plot command takes it
CURVES = [
    ("steplr", [("step_size=30, gamma=0.5", "StepLR(step_size=30, gamma=0.5)")], 120),
    (
        "multisteplr",
        [("milestones=[30, 50, 90], gamma=0.5", "MultiStepLR([30, 50, 90], gamma=0.5)")],
        120,
    ),
    ("exponentiallr", [("gamma=0.97", "ExponentialLR(gamma=0.97)")], 120),
    (
        "cosineannealinglr",
        [("T_max=50, eta_min=0.1 (periodic past T_max)", "CosineAnnealingLR(50, eta_min=0.1)")],
        150,
    ),
    ("cosinedecaylr", [("decay_steps=80, alpha=0.1", "CosineDecayLR(80, alpha=0.1)")], 120),
    (
        "polynomiallr",
        [
            ("decay_batch=40, end_lr=0.1, power=2", "PolynomialLR(40, 0.1, power=2)"),
            ("... cycle=True", "PolynomialLR(40, 0.1, power=2, cycle=True)"),
        ],
        120,
    ),
    ("lambdalr", [("lambda s: 1/sqrt(1 + s/10)", "LambdaLR(lambda s: 1/math.sqrt(1+s/10))")], 120),
    ("constantlr", [("factor=0.25, total_iters=40", "ConstantLR(0.25, 40)")], 100),
    (
        "linearlr",
        [("start 0.2, end 0.8, total_iters=60", "LinearLR(0.2, 0.8, total_iters=60)")],
        100,
    ),
    (
        "cosineannealingwarmrestarts",
        [
            ("T_0=20, T_mult=2", "CosineAnnealingWarmRestarts(20, 2)"),
            (
                "... decay_rate=0.6, restart_limit=3",
                "CosineAnnealingWarmRestarts(20, 2, decay_rate=0.6, restart_limit=3)",
            ),
        ],
        160,
    ),
    (
        "sequentiallr",
        [
            (
                "ConstantLR(0.2, 30) then ExponentialLR(0.97) at 30 (global step)",
                "SequentialLR([ConstantLR(0.2, 30), ExponentialLR(0.97)], [30])",
            ),
            (
                "... interval_rescaling=True (torch's behaviour)",
                "SequentialLR([ConstantLR(0.2, 30), ExponentialLR(0.97)], [30], True)",
            ),
        ],
        120,
    ),
    (
        "chainedscheduler",
        [
            (
                "LinearLR(0.2, total_iters=30) x ExponentialLR(0.98)",
                "ChainedScheduler([LinearLR(0.2, total_iters=30), ExponentialLR(0.98)])",
            )
        ],
        120,
    ),
    (
        "warmuplr",
        [
            (
                "linear, 20 steps, onto CosineDecayLR(100, 0.1)",
                "WarmupLR(CosineDecayLR(100, 0.1), 0.25, 20)",
            ),
            (
                "... warmup_prefix=True",
                "WarmupLR(CosineDecayLR(100, 0.1), 0.25, 20, warmup_prefix=True)",
            ),
            (
                "... warmup_method='constant'",
                "WarmupLR(CosineDecayLR(100, 0.1), 0.25, 20, 'constant')",
            ),
        ],
        140,
    ),
]


def _figure(title: str):
    fig, ax = plt.subplots(figsize=(5.6, 2.6), dpi=80, layout="constrained")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=9)
    ax.set_ylabel("lr (base 1.0)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    return fig, ax


def draw(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, specs, steps in CURVES:
        fig, ax = _figure(specs[0][1].split("(", 1)[0])
        for label, spec in specs:
            ax.plot(*plot_points(schedule_values(spec, 1.0, steps)), label=label, linewidth=1.5)
        ax.legend(fontsize=6.5, loc="best")
        path = out_dir / f"sched-{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)

    # ReduceLROnPlateau follows a metric: a loss that improves, then stalls twice.
    metric = [max(1.0 / (1 + s / 8), 0.2) if s < 90 else 0.2 - (s - 90) * 2e-3
              for s in range(140)]  # fmt: skip
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = fs.ReduceLROnPlateau(opt, factor=0.5, patience=10, cooldown=5)
    lrs = []
    for m in metric:
        sched.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    fig, ax = _figure("ReduceLROnPlateau")
    label = "ReduceLROnPlateau(factor=0.5, patience=10, cooldown=5)"
    ax.plot(*plot_points(lrs), label=label, linewidth=1.5)
    ax.plot(metric, label="monitored metric (mode='min')", linewidth=1.0, linestyle="--")
    ax.legend(fontsize=6.5, loc="best")
    path = out_dir / "sched-reducelronplateau.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "algorithms" / "img"
    for p in draw(target):
        print(p)
