"""GPU optimizer step times: flowoptim-triton vs torch.optim (fused, foreach) vs a device copy.

For each optimizer, workload and dtype it times one optimizer step (``clip_grad`` included for
the clip rows) of every provider and writes one CSV row per provider::

    optimizer, workload, n_params, n_tensors, dtype, provider, median_ms, gbps

``gbps`` is the algorithm's *floor* bytes (what the step must read and write, the table in
docs/design/triton-backend.md) divided by the median time, for every provider alike: a provider
that moves more bytes (torch's foreach Adam runs several list passes) shows a lower number. The
``copy`` provider is a device-to-device copy of the same number of bytes (half read, half
written): the practical bandwidth ceiling measured in the same run.

    python kernels/bench/gpu_step.py        # needs CUDA; writes kernels/results/<gpu>.csv
    python kernels/bench/gpu_step.py --only adam --dtype float32
    python kernels/bench/gpu_step.py --smoke --out /tmp/smoke.csv   # CPU, interpreter, tiny sizes

``--smoke`` runs the whole script end to end on the CPU at tiny sizes, the Triton kernels through
``TRITON_INTERPRET=1`` and torch's baselines on CPU tensors (CI runs it through
packages/flowoptim-triton/tests/test_bench_smoke.py); its numbers mean nothing. On a GPU,
times are medians of ``triton.testing.do_bench`` (CUDA events, L2 flushed between calls); where
the host is slower than the GPU (many small tensors) the events include the GPU's idle gaps,
which is what a training loop sees.
A benchmark, not a test: it reports numbers and never fails on them.
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from model_shapes import gpt2_shapes  # kernels/bench/model_shapes.py

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = (
    "optimizer",
    "workload",
    "n_params",
    "n_tensors",
    "dtype",
    "provider",
    "median_ms",
    "gbps",
)

#: floor bytes per fp32 parameter (docs/design/triton-backend.md); low-precision rows below
FLOOR_FP32 = {
    "adam": 28,
    "adamw": 28,
    "lamb": 40,
    "sgd": 20,  # momentum 0.9
    "clip+adam": 40,  # norm 4 + scale 8 + Adam 28
    "clip+adam-fused": 32,  # norm 4 + Adam 28
}
#: bf16 params, grads and state: half the fp32 bytes, except LAMB, whose low-precision pass 2
#: re-reads g and the old state (Note [LAMB passes] in flowoptim_triton.backend): 22 bytes
FLOOR_BF16 = {k: v // 2 for k, v in FLOOR_FP32.items()} | {"lamb": 22}


def workloads(smoke: bool) -> dict[str, list[tuple[int, ...]]]:
    if smoke:  # every program of an interpreted launch is Python: a handful per launch
        # (GPT-2 with no layers: embeddings, ln_f and lm_head, 6 tensors)
        return {"single": [(4096,)], "gpt2": gpt2_shapes(n_layer=0, d=8, vocab=64, ctx=16)}
    return {"single": [(1 << 28,)], "gpt2": gpt2_shapes()}


def _clip_group(ps):
    return [{"params": ps, "clip_grad_max_norm": 1.0}]


def providers(name: str, fo, torch) -> dict[str, Callable]:
    """provider -> factory(params) returning a zero-argument step function."""
    tri = "triton"

    def flowoptim(ps):
        if name in ("adam", "adamw"):
            cls = fo.Adam if name == "adam" else fo.AdamW
            opt = cls(ps, lr=1e-3, weight_decay=0.01 if name == "adamw" else 0.0, backend=tri)
        elif name == "lamb":
            opt = fo.LAMB(ps, lr=1e-3, weight_decay=0.01, backend=tri)
        elif name == "sgd":
            opt = fo.SGD(ps, lr=1e-3, momentum=0.9, backend=tri)
        else:
            opt = fo.Adam(_clip_group(ps), lr=1e-3, backend=tri)
            fused = name == "clip+adam-fused"

            def step():
                opt.clip_grad(fused=fused)
                opt.step()

            return step
        return opt.step

    def torch_opt(flag):
        def make(ps):
            kw = {flag: True}
            if name == "adam" or name.startswith("clip"):
                opt = torch.optim.Adam(ps, lr=1e-3, **kw)
            elif name == "adamw":
                opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **kw)
            else:
                opt = torch.optim.SGD(ps, lr=1e-3, momentum=0.9, **kw)
            if not name.startswith("clip"):
                return opt.step

            def step():
                torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=True)
                opt.step()

            return step

        return make

    out = {"flowoptim-triton": flowoptim}
    if name != "lamb":  # torch.optim has no LAMB
        out["torch-fused"] = torch_opt("fused")
        out["torch-foreach"] = torch_opt("foreach")
    return out


def _params(torch, shapes, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    ps = []
    for s in shapes:
        p = torch.randn(s, generator=gen, device=device, dtype=torch.float32).to(dtype)
        p.requires_grad_()
        p.grad = (torch.randn(s, generator=gen, device=device, dtype=torch.float32) * 1e-2).to(
            dtype
        )
        ps.append(p)
    return ps


def _free(torch, device) -> None:
    """Give a provider's GiBs back before the next one allocates (not needed for the smoke)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def _copier(src, dst) -> Callable[[], None]:
    def copy() -> None:
        dst.copy_(src)

    return copy


def _time_ms(torch, fn: Callable[[], None], device, smoke: bool) -> float:
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median"))
    if smoke:  # one call (state creation and plan builds included): the path, not a number
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    fn()  # warm-up: state creation, plans, interpreter rewrites
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def gpu_name(torch, smoke: bool) -> str:
    if smoke:
        return "cpu-interpret"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (interpreter)")
    ap.add_argument(
        "--out", help="CSV path (default kernels/results/<gpu>.csv; smoke: a temp file)"
    )
    ap.add_argument("--only", action="append", choices=list(FLOOR_FP32))
    ap.add_argument("--workload", action="append", choices=["single", "gpt2"])
    ap.add_argument("--dtype", action="append", choices=["float32", "bfloat16"])
    args = ap.parse_args(argv)
    if args.smoke:
        # before triton kernels are defined (Note [interpreter] in flowoptim_triton.launch)
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    import flowoptim as fo

    if args.smoke:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU, or pass --smoke for the CPU end-to-end check")
    else:
        device = torch.device("cuda")
    name = gpu_name(torch, args.smoke)
    if args.out:
        out = Path(args.out)
    elif args.smoke:
        out = Path(tempfile.mkdtemp(prefix="gpu_step_smoke_")) / f"{name}.csv"
    else:
        out = ROOT / "kernels" / "results" / f"{name}.csv"
    wls = workloads(args.smoke)
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    rows = []
    print(f"torch {torch.__version__} on {name}; writing {out}", flush=True)
    for opt_name in args.only or list(FLOOR_FP32):
        for wl in args.workload or list(wls):
            shapes = wls[wl]
            n_params = sum(math.prod(s) for s in shapes)
            for dt_name in args.dtype or list(dtypes):
                dtype = dtypes[dt_name]
                floor = (FLOOR_FP32 if dtype == torch.float32 else FLOOR_BF16)[opt_name]
                nbytes = floor * n_params
                results = {}
                for prov, make in providers(opt_name, fo, torch).items():
                    ps = _params(torch, shapes, dtype, device)
                    results[prov] = _time_ms(torch, make(ps), device, args.smoke)
                    del ps
                    _free(torch, device)  # this provider's params and state
                # a device copy of the same bytes: nbytes/2 read, nbytes/2 written
                src = torch.empty(nbytes // 2, dtype=torch.uint8, device=device)
                dst = torch.empty_like(src)
                results["copy"] = _time_ms(torch, _copier(src, dst), device, args.smoke)
                del src, dst
                _free(torch, device)
                for prov, ms in results.items():
                    gbps = nbytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")
                    row = (opt_name, wl, n_params, len(shapes), dt_name, prov, f"{ms:.6g}",
                           f"{gbps:.6g}")  # fmt: skip
                    rows.append(row)
                    print("  ".join(str(c) for c in row), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
