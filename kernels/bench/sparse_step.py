"""Sparse-gradient step times on the CPU: lazy Adam vs dense Adam vs torch.optim.SparseAdam.

An embedding of ``--rows`` x ``--dim`` float32 (default 1,000,000 x 64), gradients naming a
fraction of its rows (default 1% and 0.1%), reference backend. For each fraction it times, side
by side and interleaved (the order rotates every repetition), the median of:

* ``dense``: ``flowoptim.Adam`` stepping with the equivalent dense gradient (every row);
* ``lazy``: ``flowoptim.Adam`` stepping with the sparse gradient (spec §5: the rows present);
* ``SparseAdam``: ``torch.optim.SparseAdam`` on the same sparse gradient.

Every sparse gradient is a fresh uncoalesced COO tensor (distinct random rows in random order, as
``nn.Embedding(sparse=True)`` gives after deduplication), so both sparse optimizers pay for
coalescing it. It also prints how much the process's peak resident memory grew over the lazy
steps after the first one (which creates the state): the lazy step makes no temporary of the
parameter's size (256 MB at the default size), so that growth stays far below it.

    python kernels/bench/sparse_step.py                  # 1,000,000 x 64, 1% and 0.1%
    python kernels/bench/sparse_step.py --reps 11 --markdown
    python kernels/bench/sparse_step.py --threads 1       # a loaded machine: see --help

A benchmark, not a test: it reports numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

import flowoptim as fo


def sparse_grad(n_rows: int, dim: int, k: int, gen: torch.Generator) -> torch.Tensor:
    rows = torch.randperm(n_rows, generator=gen)[:k]
    values = torch.randn(k, dim, generator=gen)
    return torch.sparse_coo_tensor(rows.view(1, -1), values, (n_rows, dim), check_invariants=False)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.001])
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions (median)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (0: torch's default). On a loaded machine (more runnable "
        "threads than cores) every parallel region waits for descheduled threads: the same "
        "10,000-row index_select, repeated, took 7.8 ms with 2 threads and 0.44 ms with 1 on "
        "our shared 2-core machine",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, d = args.rows, args.dim
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(n, d, generator=gen)

    # lazy first, alone: its memory growth after the state exists
    lazy_p = torch.nn.Parameter(init.clone())
    lazy = fo.Adam([lazy_p], lr=1e-3, backend="reference")
    k0 = max(1, int(n * max(args.fractions)))
    lazy_p.grad = sparse_grad(n, d, k0, gen)
    lazy.step()  # creates exp_avg / exp_avg_sq (state, not a temporary)
    before = peak_rss_mb()
    for _ in range(5):
        lazy_p.grad = sparse_grad(n, d, k0, gen)
        lazy.step()
    growth = peak_rss_mb() - before
    param_mb = n * d * 4 / 2**20

    dense_p = torch.nn.Parameter(init.clone())
    dense = fo.Adam([dense_p], lr=1e-3, backend="reference")
    torch_p = torch.nn.Parameter(init.clone())
    sparse_adam = torch.optim.SparseAdam([torch_p], lr=1e-3)

    rows_out = []
    for frac in args.fractions:
        k = max(1, int(n * frac))
        times: dict[str, list[float]] = {"dense": [], "lazy": [], "SparseAdam": []}

        def run(name: str, g: torch.Tensor, g_dense: torch.Tensor, times=times) -> None:
            p, opt = {"dense": (dense_p, dense), "lazy": (lazy_p, lazy),
                      "SparseAdam": (torch_p, sparse_adam)}[name]  # fmt: skip
            p.grad = g_dense if name == "dense" else g.clone()  # uncoalesced for both
            t0 = time.perf_counter()
            opt.step()
            times[name].append((time.perf_counter() - t0) * 1e3)

        order = list(times)
        for rep in range(args.reps + 1):  # the first round is a warm-up
            g = sparse_grad(n, d, k, gen)
            g_dense = g.to_dense()
            for name in order[rep % 3 :] + order[: rep % 3]:
                run(name, g, g_dense)
            del g_dense
            if rep == 0:
                for v in times.values():
                    v.clear()
        med = {name: statistics.median(v) for name, v in times.items()}
        rows_out.append((frac, k, med))

    if args.markdown:
        print("| rows present | dense Adam (ms) | lazy Adam (ms) | torch SparseAdam (ms) "
              "| dense / lazy | SparseAdam / lazy |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for frac, k, m in rows_out:
            print(f"| {frac:.1%} ({k:,}) | {m['dense']:.1f} | {m['lazy']:.2f} | "
                  f"{m['SparseAdam']:.2f} | {m['dense'] / m['lazy']:.0f}x | "
                  f"{m['SparseAdam'] / m['lazy']:.2f}x |")  # fmt: skip
    else:
        print(f"embedding {n:,} x {d} float32, reference backend, {torch.get_num_threads()} "
              f"threads, median of {args.reps} interleaved repetitions")  # fmt: skip
        print(f"{'rows present':>16} {'dense ms':>10} {'lazy ms':>10} {'SparseAdam ms':>14} "
              f"{'dense/lazy':>11} {'SparseAdam/lazy':>16}")  # fmt: skip
        for frac, k, m in rows_out:
            print(f"{f'{frac:.1%} ({k:,})':>16} {m['dense']:>10.1f} {m['lazy']:>10.2f} "
                  f"{m['SparseAdam']:>14.2f} {m['dense'] / m['lazy']:>10.0f}x "
                  f"{m['SparseAdam'] / m['lazy']:>15.2f}x")  # fmt: skip
    print(f"peak RSS growth over 5 lazy steps after the first: {growth:.1f} MB "
          f"(the parameter is {param_mb:.0f} MB)")  # fmt: skip


if __name__ == "__main__":
    main()
