"""CPU optimizer step times: flowoptim's reference backend vs torch.optim.

Prints, for each optimizer and parameter list, the median step time of flowoptim and of
torch.optim's implementations (fused where torch has a CPU kernel, foreach, for-loop) and the
ratio of flowoptim to torch's fastest. LAMB has no torch.optim counterpart: it is compared with
torch's fastest Adam (LAMB moves 40 bytes per parameter to Adam's 28, so the target is 1.57x).

    python kernels/bench/cpu_step.py                 # both workloads, every optimizer
    python kernels/bench/cpu_step.py --only adam     # one optimizer
    python kernels/bench/cpu_step.py --markdown      # a table for the README

A benchmark, not a test: it reports numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import flowoptim as fo

# name -> (flowoptim factory, torch factory or None, torch has a fused CPU kernel)
OPTIMIZERS = {
    "adam": (
        lambda ps, **k: fo.Adam(ps, lr=1e-3),
        lambda ps, **k: torch.optim.Adam(ps, lr=1e-3, **k),
        True,
    ),
    "adamw": (
        lambda ps, **k: fo.AdamW(ps, lr=1e-3, weight_decay=0.01),
        lambda ps, **k: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **k),
        True,
    ),
    "sgd-momentum": (
        lambda ps, **k: fo.SGD(ps, lr=1e-3, momentum=0.9),
        lambda ps, **k: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, **k),
        True,
    ),
    "adagrad": (
        lambda ps, **k: fo.Adagrad(ps, lr=1e-2),
        lambda ps, **k: torch.optim.Adagrad(ps, lr=1e-2, **k),
        True,
    ),
    "rmsprop": (
        lambda ps, **k: fo.RMSprop(ps, lr=1e-3),
        lambda ps, **k: torch.optim.RMSprop(ps, lr=1e-3, **k),
        False,
    ),
    "adadelta": (
        lambda ps, **k: fo.Adadelta(ps),
        lambda ps, **k: torch.optim.Adadelta(ps, **k),
        False,
    ),
    "lamb": (lambda ps, **k: fo.LAMB(ps, lr=1e-3, weight_decay=0.01), None, False),
}

WORKLOADS = {
    # about 600 tensors, 20M parameters: a mid-size model's parameter list
    "600x20M": [(4 * 1024 * 1024 // 120,)] * 2 + [(33_000,)] * 598,
    # 2 tensors, 33M parameters: large flat buffers
    "2x33M": [(16_500_000,), (16_500_000,)],
}


def _params(shapes):
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    return ps


def bench(name: str, workload: str, repeats: int) -> dict[str, float]:
    """Median step time (ms) per provider.

    Every provider steps the same parameter and gradient tensors (each with its own optimizer
    state), and providers are timed in interleaved rounds, so page placement and machine drift
    do not favour one of them.
    """
    make_fo, make_torch, has_fused = OPTIMIZERS[name]
    params = _params(WORKLOADS[workload])
    if make_torch is None:  # LAMB: compare with torch's fastest Adam
        make_torch, has_fused = OPTIMIZERS["adam"][1], True
    opts = {"flowoptim": make_fo(params)}
    if has_fused:
        opts["torch-fused"] = make_torch(params, fused=True)
    opts["torch-foreach"] = make_torch(params, foreach=True)
    opts["torch-forloop"] = make_torch(params, foreach=False)
    times: dict[str, list[float]] = {k: [] for k in opts}
    for round_ in range(repeats + 2):
        for key, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            if round_ >= 2:  # warm-up rounds: state creation, first-touch page faults
                times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(OPTIMIZERS))
    ap.add_argument("--workload", action="append", choices=sorted(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    names = args.only or list(OPTIMIZERS)
    workloads = args.workload or list(WORKLOADS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    header = (
        "optimizer",
        "workload",
        "flowoptim ms",
        "torch fused",
        "torch foreach",
        "torch for-loop",
        "ratio",
        "target",
    )
    rows = []
    for w in workloads:
        for n in names:
            r = bench(n, w, args.repeats)
            torch_best = min(v for k, v in r.items() if k != "flowoptim")
            target = 1.57 if n == "lamb" else 1.10
            rows.append(
                (
                    n + (" (vs Adam)" if n == "lamb" else ""),
                    w,
                    f"{r['flowoptim']:.2f}",
                    f"{r['torch-fused']:.2f}" if "torch-fused" in r else "-",
                    f"{r['torch-foreach']:.2f}",
                    f"{r['torch-forloop']:.2f}",
                    f"{r['flowoptim'] / torch_best:.2f}",
                    f"<= {target:.2f}",
                )
            )
            if not args.markdown:
                print("  ".join(f"{c:>14}" for c in rows[-1]), flush=True)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
