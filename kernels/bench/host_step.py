"""Host cost of the Triton backend's optimizer step, measured on the CPU with no-op launches.

For each optimizer/mode and parameter list it times whole ``clip_grad()`` + ``step()`` calls
(everything the host runs: the optimizer's phase-1 checks, state handling, the backend's
preamble, the plan and ``scal`` caches, the launch helper) with Triton's kernel launch replaced by
a counter, and prints the median microseconds per step, the launches per step and the targets
of issue 14:

* launches per step independent of the tensor count: Adam 1, LAMB at most 3, +2 for an
  in-place clip, +1 for a fused one;
* at most 60 us per step for 150 tensors and 150 us for 600.

    TRITON_INTERPRET=1 python kernels/bench/host_step.py              # the table
    TRITON_INTERPRET=1 python kernels/bench/host_step.py --profile adam   # cProfile one config
    TRITON_INTERPRET=1 python kernels/bench/host_step.py --markdown   # for the README

The seam (Note [no-op launch]): ``InterpretedFunction.run``, the one call Triton's interpreter
makes for ``kernel[grid](*args)``, is replaced by a counter, so every line of flowoptim's host
code runs exactly as under the interpreter, and only Triton's own launch is skipped. What that
leaves out against a real CUDA host path is listed in the Triton README ("Host cost"): Triton's
native launcher (argument binding, specialization key, driver call), pinned host-to-device
copies of new ``scal`` tensors, and the CUDA launches of the few torch ops on the path.

The parameters are the GPT-2 small shape list at 1/8 width (host cost does not depend on
tensor sizes once the plans are cached; the width only keeps memory small). A benchmark, not a
test: it reports numbers and exits 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time

if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
    sys.exit("set TRITON_INTERPRET=1 (the backend then runs CPU tensors; launches are no-ops)")

import torch
from model_shapes import gpt2_shapes  # kernels/bench/model_shapes.py
from triton.runtime.interpreter import InterpretedFunction

import flowoptim as fo
from flowoptim_triton import TritonBackend

#: CUDA's default chunk (autotune_configs.CHUNK_CUDA): the plans then have the chunk counts a
#: GPU run would have
CHUNK = 65536


# Note [no-op launch]
# -------------------
# Under TRITON_INTERPRET=1, ``kernel[grid](*args, **kw)`` calls ``InterpretedFunction.run(*args,
# grid=grid, warmup=False, **kw)``. Replacing ``run`` (not the kernels, not ``Engine.launch``)
# keeps everything above it: kernel lookup, the ``kernel[grid]`` proxy, the constexpr dict,
# ``numpy.errstate`` (a nullcontext on CUDA), and all plan/scal/check code.
LAUNCHES: list[str] = []


def _noop_run(self, *args, grid, warmup, **kwargs):
    if not warmup:
        LAUNCHES.append(self.fn.__name__)


def workloads(width_div: int) -> dict[int, list[tuple[int, ...]]]:
    base = gpt2_shapes(d=768 // width_div, vocab=50257 // width_div, ctx=1024 // width_div)
    assert len(base) == 150
    return {150: base, 600: base * 4}


# name -> (factory, clip mode: None, "inplace" or "fused", target launches per step)
CONFIGS = {
    "adam": (lambda ps, b: fo.Adam(ps, lr=1e-3, backend=b), None, 1),
    "adamw": (lambda ps, b: fo.AdamW(ps, lr=1e-3, weight_decay=0.01, backend=b), None, 1),
    "lamb": (lambda ps, b: fo.LAMB(ps, lr=1e-3, weight_decay=0.01, backend=b), None, 3),
    "sgd-momentum": (lambda ps, b: fo.SGD(ps, lr=1e-3, momentum=0.9, backend=b), None, 1),
    "clip+adam": (
        lambda ps, b: fo.Adam([{"params": ps, "clip_grad_max_norm": 1.0}], lr=1e-3, backend=b),
        "inplace",
        3,
    ),
    "clip+adam fused": (
        lambda ps, b: fo.Adam([{"params": ps, "clip_grad_max_norm": 1.0}], lr=1e-3, backend=b),
        "fused",
        2,
    ),
}
TARGET_US = {150: 60.0, 600: 150.0}


def make(name: str, shapes):
    gen = torch.Generator().manual_seed(0)
    ps = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    factory, clip, _ = CONFIGS[name]
    opt = factory(ps, TritonBackend(chunk=CHUNK))

    def step():
        if clip is not None:
            opt.clip_grad(fused=clip == "fused")
        opt.step()

    return opt, step


def torch_ops(step) -> list[str]:
    """The aten ops one step runs (on CUDA the ones on device tensors are kernel launches or
    copies of their own), recorded with a dispatch mode in an untimed call."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops: list[str] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            ops.append(str(func.overloadpacket.__name__))
            return func(*args, **(kwargs or {}))

    with Record():
        step()
    return ops


def measure(name: str, shapes, steps: int, rounds: int) -> dict:
    _, step = make(name, shapes)
    for _ in range(20):  # state creation, plan builds, scal cache warm-up
        step()
    LAUNCHES.clear()
    step()
    launches = list(LAUNCHES)
    ops = torch_ops(step)
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for _ in range(steps):
                t0 = time.perf_counter_ns()
                step()
                times.append(time.perf_counter_ns() - t0)
            gc.collect()
    finally:
        gc.enable()
    LAUNCHES.clear()
    return dict(
        us=statistics.median(times) / 1e3,
        p10=sorted(times)[len(times) // 10] / 1e3,
        launches=launches,
        ops=ops,
    )


def profile(name: str, shapes, steps: int) -> None:
    _, step = make(name, shapes)
    for _ in range(20):
        step()
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(30)


def breakdown(shapes, repeats: int = 200) -> list[tuple[str, float]]:
    """Adam's step split into its host phases (best of 5 timeit runs each, us): where the time
    goes, for the README. The phases overlap (``_plan_step`` contains the three checks)."""
    import timeit

    from flowoptim_triton import launch as L

    opt, step = make("adam", shapes)
    for _ in range(20):
        step()
    g = opt.param_groups[0]
    ps = g["params"]
    be = opt._backend_for(ps[0].device)
    states = [opt.state[p] for p in ps]
    grads = [p.grad for p in ps]
    ops = [ps, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]]
    where = (ps[0].device, ps[0].dtype)
    parts = {
        "whole step": step,
        "  phase 1: Optimizer._plan_step": opt._plan_step,
        "    _check_grads": lambda: opt._check_grads(0, g),
        "    _check_state": lambda: opt._check_state(0, g, ps, where),
        "    backend.check_tensors": lambda: be.check_tensors(ps),
        "  phase 2: Adam._update (backend.adam)": lambda: opt._update(
            be, g, ps, grads, states, 21, None
        ),
        "    launch.stage (layout check)": lambda: L.stage(ops, [True, False, True, True]),
        "    Engine.plan (cache key, hit)": lambda: be.engine.plan("adam", ops),
    }
    return [
        (k, min(timeit.repeat(f, number=repeats, repeat=5)) / repeats * 1e6)
        for k, f in parts.items()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=list(CONFIGS), help="optimizer/mode")
    ap.add_argument("--tensors", type=int, action="append", choices=[150, 600])
    ap.add_argument("--steps", type=int, default=500, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--width-div", type=int, default=8, help="GPT-2 width divisor (memory)")
    ap.add_argument("--profile", choices=list(CONFIGS), help="cProfile this config instead")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--ops", action="store_true", help="list the torch ops of one step")
    ap.add_argument("--breakdown", action="store_true", help="Adam's host phases, timed apart")
    a = ap.parse_args()
    InterpretedFunction.run = _noop_run
    torch.set_num_threads(1)
    wl = workloads(a.width_div)
    if a.breakdown:
        res = {n: dict(breakdown(wl[n])) for n in a.tensors or [150, 600]}
        print(f"{'Adam host phase (us, best of 5)':<42}" + "".join(f"{n:>8}" for n in res))
        for k in next(iter(res.values())):
            print(f"{k:<42}" + "".join(f"{r[k]:>8.0f}" for r in res.values()))
        return
    if a.profile:
        for n in a.tensors or [150]:
            profile(a.profile, wl[n], a.steps)
        return
    names = a.only or list(CONFIGS)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load} (host timings")
    print(
        f"# move with the load: p10 is the least disturbed); median of {a.rounds}x{a.steps} steps"
    )
    rows = []
    for name in names:
        for n in a.tensors or [150, 600]:
            r = measure(name, wl[n], a.steps, a.rounds)
            tl = CONFIGS[name][2]
            ok = r["us"] <= TARGET_US[n] and len(r["launches"]) <= tl
            rows.append(
                (
                    name,
                    n,
                    r["us"],
                    r["p10"],
                    len(r["launches"]),
                    tl,
                    TARGET_US[n],
                    len(r["ops"]),
                    ok,
                )
            )
            if a.ops:
                print(f"# {name} x{n}: launches {r['launches']}; torch ops {r['ops']}")
    head = ("optimizer/mode", "tensors", "us/step", "p10 us", "launches", "target launches",
            "target us", "torch ops", "pass")  # fmt: skip
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]} | {r[5]} | {r[6]:.0f} "
                  f"| {r[7]} | {'yes' if r[8] else 'no'} |")  # fmt: skip
    else:
        print(f"{head[0]:<16} {head[1]:>7} {head[2]:>9} {head[3]:>8} {head[4]:>8} {'tgt':>4} "
              f"{'tgt us':>6} {'t.ops':>5}  pass")  # fmt: skip
        for r in rows:
            print(f"{r[0]:<16} {r[1]:>7} {r[2]:>9.1f} {r[3]:>8.1f} {r[4]:>8} {r[5]:>4} "
                  f"{r[6]:>6.0f} {r[7]:>5}  {'PASS' if r[8] else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
