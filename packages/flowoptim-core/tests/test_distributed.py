"""flowoptim under torch.distributed: FSDP2 (DTensor), DDP and ZeroRedundancyOptimizer, 2 ranks.

Two worker processes (gloo, CPU, 127.0.0.1) are started once for the whole module: each runs
every scenario of :data:`SCENARIOS` in order, in one process group, and rank 0 saves each
scenario's result (full, unsharded tensors) to a folder. The tests then compare them with the
same training run in this (single) process. A worker that fails writes its traceback and exits;
the other is killed, and every test whose result is missing fails with that traceback. Every
collective has a timeout, and the whole run one too, so nothing hangs.

This file is also the workers' program: ``python test_distributed.py --worker RANK ...``.

Tolerance (Note [distributed tolerance]): in the 2-rank runs the gradient of the batch is the
average of two half-batch gradients (FSDP2's reduce-scatter, DDP's all-reduce) and the norms are
sums over ranks of local partial sums, so the float32 roundings differ from the single process's
by a few ulps per step. Four steps keep parameters within ``rtol=1e-5, atol=1e-6``: measured
(torch 2.13, CPU) at most 3e-8 absolute on parameters and 2e-6 relative on clip totals, so the
tolerance is ~30x the observed float32 noise yet far below what a missing reduction gives (1e-3 and
more; every LAMB and clip test fails when the all_reduce is skipped). Runs with the same gradients
on both sides (the explicit-gradient scenarios) match to the same tolerance; checkpoint and ZeRO
state-dict round trips match bit for bit.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import importlib.util
import inspect
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
from torch import nn

import flowoptim as fo

WORLD = 2
COLLECTIVE_TIMEOUT_S = 60
RUN_TIMEOUT_S = 240
RTOL, ATOL = 1e-5, 1e-6  # Note [distributed tolerance]


def _distributed_ok() -> str | None:
    """None if 2-process gloo + DTensor + FSDP2 can run here, else the reason."""
    import torch.distributed as dist

    if not dist.is_available():
        return "torch.distributed is not available in this torch build"
    if not dist.is_gloo_available():
        return "torch.distributed has no gloo backend in this build"
    try:
        import torch.distributed.tensor  # noqa: F401
    except ImportError:
        return "this torch has no torch.distributed.tensor (DTensor); torch >= 2.4 is needed"
    from flowoptim.distributed import fully_shard_fn

    if fully_shard_fn() is None:
        return "this torch has no FSDP2 fully_shard"
    return None


_SKIP_REASON = _distributed_ok()
pytestmark = pytest.mark.skipif(_SKIP_REASON is not None, reason=str(_SKIP_REASON))


# ====================================================================== shared by both sides
class Tiny(nn.Module):
    """A small model whose FSDP2 shards are uneven: b.weight (5, 10), b.bias (5,) and c (5, 3)
    split 3/2 rows on 2 ranks, s (1, 3) leaves rank 1 an empty shard."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 10)
        self.b = nn.Linear(10, 5)
        self.c = nn.Parameter(0.5 * torch.randn(5, 3))
        self.s = nn.Parameter(0.1 * torch.randn(1, 3))

    def forward(self, x):
        return self.b(torch.tanh(self.a(x))) @ self.c + self.s


BATCH = 8
STEPS = 4


def _batch(t: int):
    gen = torch.Generator().manual_seed(100 + t)
    return torch.randn(BATCH, 6, generator=gen), torch.randn(BATCH, 3, generator=gen)


def _full(t):
    from flowoptim.distributed import is_dtensor

    return (t.full_tensor() if is_dtensor(t) else t).detach().clone()


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: _full(p) for n, p in model.named_parameters()}


def _groups(m: Tiny, **clip):
    return [
        {"params": list(m.a.parameters()), **clip},
        {"params": [m.b.weight, m.b.bias, m.c, m.s], **clip},
    ]


def _clip(norm_type, max_norm=0.01):
    return {"clip_grad_max_norm": max_norm, "clip_grad_norm_type": norm_type}


# name -> (optimizer factory (model, backend) -> optimizer, clip: None | "fused" | "inplace")
TRAIN_CONFIGS = {
    "sgd": (
        lambda m, b: fo.SGD(
            _groups(m), lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, backend=b
        ),
        None,
    ),
    "sgd-clip2": (
        lambda m, b: fo.SGD(_groups(m, **_clip(2.0)), lr=0.1, momentum=0.9, backend=b),
        "inplace",
    ),
    # one group over every parameter: what torch's clip_grad_norm_ computes (ZeRO scenarios)
    "sgd-clip2-all": (
        lambda m, b: fo.SGD(
            [{"params": list(m.parameters()), **_clip(2.0)}], lr=0.1, momentum=0.9, backend=b
        ),
        "inplace",
    ),
    "lamb-clip2-all": (
        lambda m, b: fo.LAMB(
            [{"params": list(m.parameters()), **_clip(2.0)}], lr=0.02, weight_decay=0.1, backend=b
        ),
        "inplace",
    ),
    "adam": (
        lambda m, b: fo.Adam(_groups(m), lr=0.01, weight_decay=0.1, amsgrad=True, backend=b),
        None,
    ),
    "adam-clip1": (
        lambda m, b: fo.Adam(_groups(m, **_clip(1.0)), lr=0.01, backend=b),
        "inplace",
    ),
    "lamb": (lambda m, b: fo.LAMB(_groups(m), lr=0.02, weight_decay=0.1, backend=b), None),
    "lamb-clip2": (
        lambda m, b: fo.LAMB(_groups(m, **_clip(2.0)), lr=0.02, weight_decay=0.1, backend=b),
        "inplace",
    ),
    "lamb-clipinf": (
        lambda m, b: fo.LAMB(_groups(m, **_clip(float("inf"))), lr=0.02, backend=b),
        "inplace",
    ),
    "lamb-clip1": (
        lambda m, b: fo.LAMB(
            _groups(m, **_clip(1.0)), lr=0.02, adam_w_mode=False, weight_decay=0.1, backend=b
        ),
        "inplace",
    ),
    "lamb-clip2-fused": (
        lambda m, b: fo.LAMB(_groups(m, **_clip(2.0)), lr=0.02, weight_decay=0.1, backend=b),
        "fused",
    ),
}


def train(config: str, wrap: str | None, backend: str | None = None, rank=0, world=1):
    """``STEPS`` steps of ``Tiny`` on the fixed batches; returns (params after each step,
    clip totals of each step). ``wrap``: None (one process), "fsdp" or "ddp"."""
    make_opt, clip = TRAIN_CONFIGS[config]
    torch.manual_seed(0)
    model = inner = Tiny()
    if wrap == "fsdp":
        from flowoptim.distributed import fully_shard_fn

        fully_shard = fully_shard_fn()
        fully_shard(model.a)
        fully_shard(model)
    elif wrap == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(inner)
    opt = make_opt(inner, backend)
    traj, totals = [], []
    for t in range(STEPS):
        x, y = _batch(t)
        lo, hi = BATCH * rank // world, BATCH * (rank + 1) // world
        loss = (model(x[lo:hi]) - y[lo:hi]).square().mean()
        loss.backward()
        if clip is not None:
            totals.append([tt.clone() for tt in opt.clip_grad(fused=clip == "fused")])
        opt.step()
        opt.zero_grad(set_to_none=True)
        traj.append(_snapshot(inner))
    return traj, totals


# explicit gradients on DTensors of every layout: even, uneven, empty local shard, replicated,
# sharded on dim 1 (uneven)
EXPLICIT_SHAPES = [((5, 3), "S0"), ((1, 3), "S0"), ((4,), "R"), ((6, 5), "S1"), ((8, 2), "S0")]
CLIP_NORM_TYPES = [2.0, float("inf"), 1.0, 0.0, float("-inf"), 0.5, 3.0]


def _explicit_full(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) for shape, _ in EXPLICIT_SHAPES]


def _explicit_grads(t: int):
    grads = _explicit_full(500 + t)
    grads[3][:, 3:] = 0.0  # the dim-1 shard of rank 1 is all zero: norm 0 must count it once
    return grads


MESHES = {
    # name: (mesh shape, placements of the other mesh dim, its position)
    "1d": ((WORLD,), None),
    "hsdp": ((1, WORLD), "R-first"),  # (Replicate(), X): HSDP's layout
    "2d": ((WORLD, 1), "S0-last"),  # (X, Shard(0)): two sharded dims, one collective
}


def explicit(mesh=None, kind="1d"):
    """Clip totals for every norm type, then LAMB steps with clip and amsgrad switched on
    mid-run, on explicitly given gradients; then a state-dict round trip through full tensors.
    ``mesh``: None (plain tensors) or a mesh of :data:`MESHES` ``[kind]``."""

    def lay(t, k):
        if mesh is None:
            return t.clone()
        from torch.distributed.tensor import Replicate, Shard, distribute_tensor

        pl = [{"S0": Shard(0), "S1": Shard(1), "R": Replicate()}[k]]
        extra = MESHES[kind][1]
        if extra == "R-first":
            pl = [Replicate(), *pl]
        elif extra == "S0-last":
            pl = [*pl, Shard(0)]
        return distribute_tensor(t.clone(), mesh, pl)

    kinds = [k for _, k in EXPLICIT_SHAPES]
    params = [nn.Parameter(lay(t, k)) for t, k in zip(_explicit_full(7), kinds)]
    out = {"clip": {}, "lamb": []}
    for j, norm_type in enumerate(CLIP_NORM_TYPES):
        opt = fo.SGD([{"params": params, **_clip(norm_type, 0.5)}], lr=0.0)
        for p, g, k in zip(params, _explicit_grads(j), kinds):
            p.grad = lay(g, k)
        (total,) = opt.clip_grad()
        out["clip"][norm_type] = (total.clone(), [_full(p.grad) for p in params])
    opt = fo.LAMB([{"params": params, **_clip(2.0, 1.0)}], lr=0.05, weight_decay=0.1)
    for t in range(3):
        if t == 1:
            opt.param_groups[0]["amsgrad"] = True  # state created inside the update
        for p, g, k in zip(params, _explicit_grads(10 + t), kinds):
            p.grad = lay(g, k)
        opt.clip_grad()
        opt.step()
        out["lamb"].append([_full(p) for p in params])
    out["state_types"] = sorted(
        {f"{k}:{type(v).__name__}" for s in opt.state.values() for k, v in s.items()}
    )
    opt.zero_grad()  # in place, on DTensor grads
    out["zeroed"] = all(bool((_full(p.grad) == 0).all()) for p in params)
    # load_state_dict from full (plain) tensors lays the state out like each param
    sd = opt.state_dict()
    full_sd = {
        "param_groups": sd["param_groups"],
        "state": {i: {k: _full(v) for k, v in s.items()} for i, s in sd["state"].items()},
    }
    opt2 = fo.LAMB([{"params": params}], lr=0.05)
    opt2.load_state_dict(full_sd)
    out["reloaded_same_layout"] = all(
        type(opt2.state[p][k]) is type(opt.state[p][k])
        and getattr(opt2.state[p][k], "placements", None)
        == getattr(opt.state[p][k], "placements", None)
        and torch.equal(_full(opt2.state[p][k]), _full(opt.state[p][k]))
        for p in params
        for k in opt.state[p]
    )
    return out


# ====================================================================== worker side
def _triton_backend() -> tuple[str | None, str]:
    """("triton", "") if the triton backend can run LAMB on local shards here, else (None,
    reason)."""
    if importlib.util.find_spec("flowoptim_triton") is None:
        return None, "flowoptim-triton is not installed"
    try:
        backend = fo.backends.get("triton")
    except Exception as exc:
        return None, f"the triton backend is not usable here: {exc}"
    if "norm_reduce" not in inspect.signature(backend.lamb).parameters:
        return None, "the triton backend's lamb() has no norm_reduce hook yet"
    try:
        backend.check_tensors([torch.zeros(2)])
    except Exception as exc:
        return None, f"the triton backend does not take CPU tensors here: {exc}"
    return "triton", ""


def _scenario_zero(rank, world):
    """ZeroRedundancyOptimizer(optimizer_class=flowoptim.X) over DDP; clip with torch over all
    params before the step (each rank holds every full gradient); consolidate + load."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    out = {}
    for name, cls, kw, clip in [
        ("adam", fo.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True), None),
        ("sgd-clip2-all", fo.SGD, dict(lr=0.1, momentum=0.9), 0.01),
        ("lamb-clip2-all", fo.LAMB, dict(lr=0.02, weight_decay=0.1), 0.01),
    ]:
        torch.manual_seed(0)
        inner = Tiny()
        model = DistributedDataParallel(inner)
        opt = ZeroRedundancyOptimizer(inner.parameters(), optimizer_class=cls, **kw)
        traj = []
        for t in range(STEPS):
            x, y = _batch(t)
            lo, hi = BATCH * rank // world, BATCH * (rank + 1) // world
            (model(x[lo:hi]) - y[lo:hi]).square().mean().backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(inner.parameters(), clip, norm_type=2.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            traj.append(_snapshot(inner))
            if t == 1:
                opt.consolidate_state_dict(to=0)
                # on CPU the consolidating rank's own part aliases its live state (ZeRO copies
                # with .to(cpu)): copy it, as saving it to a file would
                sd = copy.deepcopy(opt.state_dict()) if rank == 0 else None
                obj = [sd]
                torch.distributed.broadcast_object_list(obj, src=0)
                saved = (obj[0], _snapshot(inner))
        out[name] = {"traj": traj, "group_steps": [g["step"] for g in opt.param_groups]}
        # a fresh ZeRO optimizer loaded from the consolidated state continues identically
        sd, params = saved
        torch.manual_seed(0)
        inner2 = Tiny()
        with torch.no_grad():
            for n, p in inner2.named_parameters():
                p.copy_(params[n])
        model2 = DistributedDataParallel(inner2)
        opt2 = ZeroRedundancyOptimizer(inner2.parameters(), optimizer_class=cls, **kw)
        opt2.load_state_dict(sd)
        resumed = []
        for t in range(2, STEPS):
            x, y = _batch(t)
            lo, hi = BATCH * rank // world, BATCH * (rank + 1) // world
            (model2(x[lo:hi]) - y[lo:hi]).square().mean().backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(inner2.parameters(), clip, norm_type=2.0)
            opt2.step()
            opt2.zero_grad(set_to_none=True)
            resumed.append(_snapshot(inner2))
        out[name]["resumed"] = resumed
        out[name]["local_step"] = opt2.optim.global_step
    return out


def _scenario_dcp(rank, world, folder: Path):
    """FSDP2 + LAMB (+clip): save model and optimizer with torch.distributed.checkpoint after 3
    steps, continue 2 steps; a fresh model/optimizer loaded from it must do the same 2 steps."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    from flowoptim.distributed import fully_shard_fn, is_dtensor

    fully_shard = fully_shard_fn()

    def build():
        torch.manual_seed(0)
        m = Tiny()
        fully_shard(m.a)
        fully_shard(m)
        o = fo.LAMB(_groups(m, **_clip(2.0)), lr=0.02, weight_decay=0.1, amsgrad=True)
        return m, o

    def run(m, o, steps):
        snaps = []
        for t in steps:
            x, y = _batch(t)
            lo, hi = BATCH * rank // world, BATCH * (rank + 1) // world
            (m(x[lo:hi]) - y[lo:hi]).square().mean().backward()
            o.clip_grad()
            o.step()
            o.zero_grad(set_to_none=True)
            snaps.append(_snapshot(m))
        return snaps

    model, opt = build()
    run(model, opt, range(3))
    osd = get_optimizer_state_dict(model, opt)
    state_types = sorted(
        {f"{k}:{type(v).__name__}" for s in osd["state"].values() for k, v in s.items()}
    )
    ckpt = folder / "dcp"
    dcp.save({"model": get_model_state_dict(model), "optim": osd}, checkpoint_id=str(ckpt))
    continued = run(model, opt, range(3, 5))

    model2, opt2 = build()  # fresh: different (initial) params and no state
    sd = {"model": get_model_state_dict(model2), "optim": get_optimizer_state_dict(model2, opt2)}
    dcp.load(sd, checkpoint_id=str(ckpt))
    set_model_state_dict(model2, sd["model"])
    set_optimizer_state_dict(model2, opt2, sd["optim"])
    loaded_step = opt2.global_step
    loaded_types = sorted(
        {f"{k}:{type(v).__name__}" for s in opt2.state.values() for k, v in s.items()}
    )
    placements_ok = all(
        is_dtensor(v) and v.placements == p.placements
        for g in opt2.param_groups
        for p in g["params"]
        for k, v in opt2.state[p].items()
        if k != "step"
    )
    resumed = run(model2, opt2, range(3, 5))
    return {
        "continued": continued,
        "resumed": resumed,
        "loaded_step": loaded_step,
        "saved_state_types": state_types,
        "loaded_state_types": loaded_types,
        "placements_ok": placements_ok,
    }


class _NoHookBackend(fo.backends.Backend):
    """A backend whose lamb() predates the norm_reduce hook."""

    name = "nohook"

    def lamb(self, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, **kw):
        raise AssertionError("must not be called")


def _scenario_bad_input(rank, world):
    """Groups that cannot be reduced together: a ValueError naming the params, raised before
    anything changes (same on every rank, so no rank is left waiting in a collective)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    mesh2 = init_device_mesh("cpu", (1, world))  # another mesh over the same ranks
    out = {}

    def catch(key, fn):
        try:
            fn()
        except ValueError as exc:
            out[key] = str(exc)
        else:
            out[key] = None

    a = nn.Parameter(distribute_tensor(torch.ones(5, 3), mesh, [Shard(0)]))
    b = nn.Parameter(distribute_tensor(torch.ones(4, 2), mesh2, [Replicate(), Shard(0)]))
    plain = nn.Parameter(torch.ones(3))
    partial = nn.Parameter(DTensor.from_local(torch.ones(2), mesh, [Partial()], run_check=False))
    catch("lamb_two_meshes", lambda: fo.LAMB([a, b]))
    catch("lamb_mixed_plain", lambda: fo.LAMB([a, plain]))
    catch("lamb_partial", lambda: fo.LAMB([partial]))
    catch("sgd_two_meshes_no_clip", lambda: fo.SGD([a, b], lr=0.1))  # elementwise: fine

    # clip_grad on a group over two meshes (clip switched on after construction)
    opt = fo.SGD([a, b], lr=0.1)
    opt.param_groups[0]["clip_grad_max_norm"] = 0.01
    a.grad = distribute_tensor(torch.full((5, 3), 2.0), mesh, [Shard(0)])
    b.grad = distribute_tensor(torch.full((4, 2), 2.0), mesh2, [Replicate(), Shard(0)])
    catch("clip_two_meshes", lambda: opt.clip_grad())
    out["clip_two_meshes_untouched"] = bool(
        (a.grad.full_tensor() == 2).all() and (b.grad.full_tensor() == 2).all()
    )
    opt.param_groups[0]["clip_grad_max_norm"] = None
    opt.step()  # elementwise SGD over two meshes works
    out["sgd_two_meshes_step"] = float(a.full_tensor()[0, 0])

    # a gradient whose placements differ from its parameter's: at step, nothing modified
    c = nn.Parameter(distribute_tensor(torch.ones(5, 3), mesh, [Shard(0)]))
    lamb = fo.LAMB([c], lr=0.1)
    c.grad = distribute_tensor(torch.ones(5, 3), mesh, [Replicate()])
    catch("grad_placements", lambda: lamb.step())
    out["grad_placements_untouched"] = bool((c.full_tensor() == 1).all()) and not lamb.state
    # a backend without the hook: LAMB on DTensors refuses before anything changes
    d = nn.Parameter(distribute_tensor(torch.ones(5, 3), mesh, [Shard(0)]))
    lamb = fo.LAMB([d], lr=0.1, backend=_NoHookBackend())
    d.grad = distribute_tensor(torch.ones(5, 3), mesh, [Shard(0)])
    catch("no_hook", lambda: lamb.step())
    out["no_hook_untouched"] = bool((d.full_tensor() == 1).all()) and not lamb.state
    return out


def _scenario_collectives(rank, world):
    """How many all_reduce calls clip_grad() and step() make: one per group, not per tensor."""
    import torch.distributed as dist

    from flowoptim.distributed import fully_shard_fn

    torch.manual_seed(0)
    model = Tiny()
    fully_shard_fn()(model)
    opt = fo.LAMB(_groups(model, **_clip(2.0)), lr=0.02)
    x, y = _batch(0)
    (model(x) - y).square().mean().backward()
    calls = []
    real = dist.all_reduce

    def counting(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return real(*args, **kwargs)

    dist.all_reduce = counting
    try:
        opt.clip_grad()
        clip_calls, calls[:] = list(calls), []
        opt.step()
        step_calls = list(calls)
    finally:
        dist.all_reduce = real
    return {"clip": clip_calls, "step": step_calls}


def _scenarios(rank, world, folder):
    """(name, callable) in the order every rank runs them."""
    from torch.distributed.device_mesh import init_device_mesh

    items = []
    for config in TRAIN_CONFIGS:
        items.append((f"fsdp/{config}", lambda c=config: train(c, "fsdp", None, rank, world)))
    items.append(("ddp/lamb-clip2", lambda: train("lamb-clip2", "ddp", None, rank, world)))
    items.append(("ddp/adam", lambda: train("adam", "ddp", None, rank, world)))
    for kind, (shape, _) in MESHES.items():
        items.append(
            (f"explicit/{kind}", lambda k=kind, s=shape: explicit(init_device_mesh("cpu", s), k))
        )
    items.append(("collectives", lambda: _scenario_collectives(rank, world)))
    items.append(("zero", lambda: _scenario_zero(rank, world)))
    items.append(("dcp", lambda: _scenario_dcp(rank, world, folder)))
    items.append(("bad_input", lambda: _scenario_bad_input(rank, world)))
    backend, reason = _triton_backend()
    for config in ("sgd", "adam", "lamb-clip2", "lamb-clip2-fused"):
        name = f"triton/fsdp/{config}"
        if backend is None:
            items.append((name, lambda r=reason: {"skip": r}))
        else:
            items.append((name, lambda c=config: train(c, "fsdp", backend, rank, world)))
    return items


def worker_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", type=int, required=True)
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    rank, world, folder = args.worker, args.world, Path(args.out)
    import torch.distributed as dist

    torch.set_num_threads(1)
    current = "init_process_group"
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{args.port}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
        for current, fn in _scenarios(rank, world, folder):
            t0 = time.perf_counter()
            result = fn()
            dist.barrier()
            if rank == 0:
                key = current.replace("/", "__")
                torch.save(
                    {"result": result, "seconds": time.perf_counter() - t0},
                    folder / f"{key}.pt",
                )
        dist.barrier()
        dist.destroy_process_group()
    except BaseException:
        (folder / f"error_rank{rank}.txt").write_text(
            f"rank {rank} failed in scenario {current!r}:\n{traceback.format_exc()}"
        )
        sys.stderr.flush()
        os._exit(1)  # don't wait in a collective for the other rank


# ====================================================================== test side
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Run:
    """The outcome of the 2-process run: results by scenario name, or the reason they lack."""

    def __init__(self, folder: Path, failure: str | None, seconds: float) -> None:
        self.folder = folder
        self.failure = failure
        self.seconds = seconds

    def get(self, name: str):
        path = self.folder / f"{name.replace('/', '__')}.pt"
        if not path.exists():
            pytest.fail(f"no result for scenario {name!r}: {self.failure or 'unknown reason'}")
        res = torch.load(path, weights_only=False)["result"]
        if isinstance(res, dict) and "skip" in res:
            pytest.skip(res["skip"])
        return res


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> _Run:
    folder = tmp_path_factory.mktemp("distributed")
    port = _free_port()
    env = dict(os.environ)
    env.setdefault("TRITON_INTERPRET", "1")  # the triton scenarios run on CPU tensors
    env["OMP_NUM_THREADS"] = "1"
    if Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    procs, logs = [], []
    t0 = time.perf_counter()
    for rank in range(WORLD):
        log = open(folder / f"log_rank{rank}.txt", "w")  # noqa: SIM115 - closed below
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    *("--worker", str(rank), "--world", str(WORLD)),
                    *("--port", str(port), "--out", str(folder)),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    failure = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while any(p.poll() is None for p in procs):
        if any(p.returncode not in (None, 0) for p in procs) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for log in logs:
        log.close()
    codes = [p.returncode for p in procs]
    if any(c != 0 for c in codes):
        parts = [f"worker exit codes {codes} (timeout {RUN_TIMEOUT_S} s)"]
        for rank in range(WORLD):
            err = folder / f"error_rank{rank}.txt"
            if err.exists():
                parts.append(err.read_text())
        for rank in range(WORLD):
            tail = (folder / f"log_rank{rank}.txt").read_text()[-3000:]
            parts.append(f"--- output of rank {rank} (tail) ---\n{tail}")
        failure = "\n".join(parts)
    return _Run(folder, failure, time.perf_counter() - t0)


def _assert_traj(got, want, rtol=RTOL, atol=ATOL):
    assert len(got) == len(want)
    for t, (g, w) in enumerate(zip(got, want)):
        assert g.keys() == w.keys()
        for name in w:
            torch.testing.assert_close(
                g[name], w[name], rtol=rtol, atol=atol, msg=lambda m, n=name, t=t: f"{n}@{t}: {m}"
            )


@pytest.mark.parametrize("config", list(TRAIN_CONFIGS))
def test_fsdp2_matches_single_process(run, config):
    traj, totals = run.get(f"fsdp/{config}")
    want_traj, want_totals = train(config, None)
    _assert_traj(traj, want_traj)
    assert len(totals) == len(want_totals)
    for got, want in zip(totals, want_totals):
        torch.testing.assert_close(torch.stack(got), torch.stack(want), rtol=RTOL, atol=ATOL)
    if TRAIN_CONFIGS[config][1] is not None:  # the clip must have been active
        assert all(float(t) > 0.01 for step in want_totals for t in step)


@pytest.mark.parametrize("config", ["lamb-clip2", "adam"])
def test_ddp_matches_single_process(run, config):
    traj, totals = run.get(f"ddp/{config}")
    want_traj, want_totals = train(config, None)
    _assert_traj(traj, want_traj)
    for got, want in zip(totals, want_totals):
        torch.testing.assert_close(torch.stack(got), torch.stack(want), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", list(MESHES))
@pytest.mark.parametrize("norm_type", CLIP_NORM_TYPES, ids=str)
def test_clip_grad_over_shards_equals_full_tensors(run, norm_type, kind):
    """Uneven, empty, replicated and dim-1 shards, on 1-D and 2-D meshes; norm 0 counts a
    tensor nonzero on one rank only once."""
    got_total, got_grads = run.get(f"explicit/{kind}")["clip"][norm_type]
    want_total, want_grads = explicit(None)["clip"][norm_type]
    torch.testing.assert_close(got_total, want_total, rtol=RTOL, atol=ATOL)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=RTOL, atol=ATOL)
    if norm_type == 0:
        assert float(got_total) == len(EXPLICIT_SHAPES)


@pytest.mark.parametrize("kind", list(MESHES))
def test_lamb_uneven_shards_equal_full_tensors(run, kind):
    """LAMB with clip on a (5, 3) param split 3/2, a (1, 3) one with an empty shard, a
    replicated one and a dim-1 shard; amsgrad switched on after the first step creates state
    inside the update, which must come back as DTensors. Then zero_grad and a state-dict
    round trip through full tensors."""
    res = run.get(f"explicit/{kind}")
    want = explicit(None)
    for got, w in zip(res["lamb"], want["lamb"]):
        for g, ww in zip(got, w):
            torch.testing.assert_close(g, ww, rtol=RTOL, atol=ATOL)
    assert res["state_types"] == [
        "exp_avg:DTensor",
        "exp_avg_sq:DTensor",
        "max_exp_avg_sq:DTensor",
        "step:Tensor",
    ]
    assert res["zeroed"]
    assert res["reloaded_same_layout"]


@pytest.mark.parametrize("config", ["adam", "sgd-clip2-all", "lamb-clip2-all"])
def test_zero_redundancy_optimizer(run, config):
    """ZeroRedundancyOptimizer(optimizer_class=flowoptim.X): same trajectory as one process
    (clipped with torch's clip_grad_norm_ over all params: our clip_grad over one group), the
    optimizer-wide step survives its group syncing, and consolidate/state_dict/load resumes."""
    res = run.get("zero")[config]
    want_traj, _ = train(config, None)
    _assert_traj(res["traj"], want_traj)
    assert res["group_steps"] == [STEPS]
    assert res["local_step"] == STEPS
    _assert_traj(res["resumed"], res["traj"][2:], rtol=0, atol=0)


def test_dcp_checkpoint_round_trip(run):
    """FSDP2 optimizer state is DTensor, saved and loaded by torch.distributed.checkpoint on 2
    ranks; training after loading is bit-identical to training on."""
    res = run.get("dcp")
    assert res["loaded_step"] == 3
    assert res["saved_state_types"] == res["loaded_state_types"]
    assert "exp_avg:DTensor" in res["saved_state_types"]
    assert "step:Tensor" in res["saved_state_types"]
    assert res["placements_ok"]
    _assert_traj(res["resumed"], res["continued"], rtol=0, atol=0)


def test_one_collective_per_group(run):
    """Tiny's two groups (2 and 4 tensors): clip_grad reduces one scalar per group, LAMB's step
    one (2, n) tensor of sums of squares per group."""
    res = run.get("collectives")
    assert res["clip"] == [(), ()]
    assert res["step"] == [(2, 2), (2, 4)]


def test_bad_groups_raise_before_modifying(run):
    res = run.get("bad_input")
    assert "different device mesh" in res["lamb_two_meshes"]
    assert "param 1 (shape (4, 2)" in res["lamb_two_meshes"]
    assert "param 0 (shape (5, 3)" in res["lamb_two_meshes"]
    assert "not a DTensor" in res["lamb_mixed_plain"]
    assert "param 1 (shape (3,)" in res["lamb_mixed_plain"]
    assert "Partial" in res["lamb_partial"]
    assert res["sgd_two_meshes_no_clip"] is None
    assert "different device mesh" in res["clip_two_meshes"]
    assert "of group 0" in res["clip_two_meshes"]
    assert res["clip_two_meshes_untouched"]
    assert res["sgd_two_meshes_step"] == pytest.approx(1.0 - 0.1 * 2.0)
    assert "gradient of param 0" in res["grad_placements"]
    assert "Replicate" in res["grad_placements"]
    assert res["grad_placements_untouched"]
    assert "norm_reduce" in res["no_hook"] and "'nohook'" in res["no_hook"]
    assert res["no_hook_untouched"]


@pytest.mark.parametrize("config", ["sgd", "adam", "lamb-clip2", "lamb-clip2-fused"])
def test_triton_backend_on_local_shards(run, config):
    """The triton backend (TRITON_INTERPRET=1, CPU tensors) on FSDP2 local shards; runs only
    where flowoptim-triton is installed and its lamb() has the norm_reduce hook."""
    traj, totals = run.get(f"triton/fsdp/{config}")
    want_traj, want_totals = train(config, None)
    _assert_traj(traj, want_traj)
    for got, want in zip(totals, want_totals):
        torch.testing.assert_close(torch.stack(got), torch.stack(want), rtol=RTOL, atol=ATOL)


def test_whole_run_is_fast(run):
    """The 2-process run stays well inside CI's time (all scenarios, both ranks)."""
    if run.failure:
        pytest.fail(run.failure)
    assert run.seconds < 120, f"the 2-process run took {run.seconds:.0f} s"


if __name__ == "__main__":
    worker_main(sys.argv[1:])
