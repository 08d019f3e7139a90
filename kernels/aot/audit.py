"""Ahead-of-time compile audit of the ``triton`` backend's kernels for sm_80 and sm_90.

No GPU is needed: Triton compiles for a CUDA target on a CPU-only machine (``triton.compile``
with an ``ASTSource`` and a ``GPUTarget``; ``ptxas`` ships in the triton wheel). This script
compiles every launch specialization the launchers can produce (Note [compile audit]
--------------------
The launch specializations of a kernel are its constexprs (structural flags, ``ALIGN``, ``DT``
and ``CT``, the tile), ``num_warps``, and the integer/pointer specialization Triton applies at
launch (every pointer the launchers pass is 16-byte aligned: plan sub-arrays are padded, ``scal``
and ``grad_scale`` are whole allocations; ``CHUNK`` is a multiple of 16), all compiled with
``enable_fp_fusion=False`` as :meth:`flowoptim_triton.launch.Engine.launch` does. Per arch and
dtype (fp32, fp16, bf16, fp64) the audit compiles:

* the elementwise kernels (SGD, Adam/AdamW, LAMB pass 2, RMSprop, Adagrad, Adadelta, scale_)
  with every candidate the tuner has for that dtype (``autotune_configs.elementwise_configs``),
  ``ALIGN`` True and False;
* the reductions (LAMB pass 1, the grad norm with its last-program finish) with their fixed
  ``autotune_configs.reduction_config``, ``ALIGN`` True and False; the single-program kernels
  (LAMB norms and trust) with ``RBLOCK``.

What CI runs (the default) keeps to a few minutes on 2 cores by taking, per kernel, the flag set
with the most operands (SGD with momentum and nesterov, Adam and LAMB with amsgrad, RMSprop
centered with momentum), ``MAXIMIZE`` and ``HAS_GRAD_SCALE`` True (each adds per-element
arithmetic and no operand, so this variant carries the others' instructions and more), and the
L2, norm-0 and general-p norms with ``COEF`` True (the finish that also forms the clip
coefficient: ``grad_norm``'s code and more; norm 0's finish is the widest, p's the longest).
``--full`` compiles every flag combination (about 9x as many variants; run it when a kernel
changes). On 2026-11-30, before the grad norm's last-program finish: 1298 compiles per arch,
0 failures for sm_80 and sm_90 under triton 3.9 and under 3.6 (160-495 s per arch and version
on 2 shared cores); after it (and HAS_FOUND_INF in the row-gather kernels), under triton 3.9:
5548 compiles (2774 variants x sm_80/sm_90), 0 failures, 793 s on 2 cores.

Note [occupancy rule]
---------------------
The update kernels are bandwidth-bound: what keeps DRAM busy is the bytes each SM has in flight.
By Little's law an SM needs (bandwidth per SM) x (latency) in flight: this workplace measured a
device-to-device copy at about 4.3 TB/s on its H200 (``shared/notes/gpu-anchors.md``), 33 GB/s
per SM over its 132 SMs; with a loaded DRAM latency of the order of 500 ns (an assumption: not
measured here; recalibrate on the GPU) that is about 16 KiB. A warp issues all of a tile's loads
before it uses them, so it has ``32 * (elements per thread) * (bytes read per element)`` in
flight, and the resident warps follow from the register count (64K 32-bit registers per SM,
allocated per warp in units of 256, at most 64 warps and 32 blocks per SM on sm_80 and sm_90).
The rule: resident warps x bytes in flight per warp >= ``MIN_INFLIGHT`` (16 KiB), and resident
warps >= ``MIN_WARPS`` (8, two per scheduler: fewer expose the latency of the dependent
arithmetic itself). Kernels that read no elements (the single-program reductions) are held to
the second part only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "packages" / "flowoptim-triton" / "src"

#: Note [occupancy rule]
MIN_INFLIGHT = 16 * 1024
MIN_WARPS = 8
REGS_PER_SM = 65536
MAX_WARPS_PER_SM = 64
MAX_BLOCKS_PER_SM = 32

DTYPES = ("fp32", "fp16", "bf16", "fp64")
#: kernels.NORM_P: the p-norm calls libdevice's exp2/log2 (fp64; log2 for fp32), whose bodies
#: use fma by design (Note [native arithmetic]: left approximate); reported, not failed
NORM_P = 5
BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8}
ARCHS = (80, 90)


@dataclass(frozen=True)
class Variant:
    kernel: str  # attribute name in flowoptim_triton.kernels (or .sparse_kernels: ``*_sparse_*``)
    flags: tuple[tuple[str, object], ...]  # structural constexprs other than DT/CT/ALIGN/BLOCK
    dtype: str  # storage dtype
    align: bool | None  # None: the kernel has no ALIGN
    block: tuple[str, int]  # ("BLOCK" or "RBLOCK", value)
    num_warps: int
    maxnreg: int | None = None  # the config's register cap (Note [tuning space])
    reads: int = 0  # element operands read (0: not a chunked elementwise kernel)
    writes: int = 0  # element operands written

    @property
    def ct(self) -> str:
        return "fp64" if self.dtype == "fp64" else "fp32"

    @property
    def floor(self) -> int:
        """Bytes per parameter the variant must move (its operands, once each)."""
        return (self.reads + self.writes) * BYTES[self.dtype]

    @property
    def per_thread(self) -> int:
        return self.block[1] // (32 * self.num_warps)

    def flag_str(self) -> str:
        on = [k.lower() for k, v in self.flags if v is True]
        other = [f"{k.lower()}={v}" for k, v in self.flags if v not in (True, False)]
        return ",".join(on + other) or "-"


@dataclass
class Result:
    variant: Variant
    arch: int
    error: str = ""
    regs: int = 0
    spill: int = 0  # bytes of spill stores + loads
    n128: int = 0  # 128-bit global loads/stores
    fma: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- variants
def _bool_grid(**names):
    keys = list(names)
    for vals in itertools.product(*(names[k] for k in keys)):
        yield dict(zip(keys, vals, strict=True))


def _flag_sets(names: tuple[str, ...], full: bool, ci: list[tuple[bool, ...]]):
    """Every combination of ``names`` (full) or the listed ones (CI); MAXIMIZE, HAS_GRAD_SCALE
    and HAS_FOUND_INF (every update kernel, the row-gather ones included) are appended, True in
    CI and both values in full (Note [compile audit]: each adds loads of scalars or per-element
    arithmetic, no operand)."""
    ext = (False, True) if full else (True,)
    base = itertools.product((False, True), repeat=len(names)) if full else ci
    for vals, mx, gs, fi in itertools.product(list(base), ext, ext, ext):
        yield dict(zip(names, vals, strict=True), MAXIMIZE=mx, HAS_GRAD_SCALE=gs, HAS_FOUND_INF=fi)


def variants(full: bool, only: str | None) -> list[Variant]:
    sys.path.insert(0, str(SRC))
    from flowoptim_triton import autotune_configs as cfgs

    out: list[Variant] = []

    def add(kernel, flags, reads_writes, reduction=False, sparse=False):
        """Every dtype x config x ALIGN of one flag set; ``flags`` and ``reads_writes`` may be
        functions of the dtype. ``sparse``: a row-gather kernel (no ALIGN; its launcher's one
        fixed config, ``sparse_launch.launch_sparse``)."""
        for dt in DTYPES:
            fl = flags(dt) if callable(flags) else flags
            rw = reads_writes(dt) if callable(reads_writes) else reads_writes
            if reduction:
                cands = [cfgs.reduction_config(BYTES[dt])]
            else:
                cands = cfgs.elementwise_configs(BYTES[dt])
            aligns: tuple[bool | None, ...] = (True, False)
            if sparse:
                cands, aligns = cands[:1], (None,)
            for c, align in itertools.product(cands, aligns):
                block = ("BLOCK", c.kwargs["BLOCK"])
                fields = (tuple(fl.items()), dt, align, block, c.num_warps, c.maxnreg, *rw)
                out.append(Variant(kernel, *fields))

    # CI: per kernel, the flag set with the most operands (Note [compile audit])
    for f in _flag_sets(("HAS_MOMENTUM", "NESTEROV"), full, [(True, True)]):
        if f["NESTEROV"] and not f["HAS_MOMENTUM"]:
            continue
        add("sgd_kernel", f, (2 + f["HAS_MOMENTUM"], 1 + f["HAS_MOMENTUM"]))
    for f in _flag_sets(("AMSGRAD", "DECOUPLED"), full, [(True, True)]):
        add("adam_kernel", f, (4 + f["AMSGRAD"], 3 + f["AMSGRAD"]))
    for f in _flag_sets(("AMSGRAD", "ADAM_W"), full, [(True, False)]):
        # Note [LAMB passes]: float32/float64 state is written by pass 1 (WRITE_STATE), fp16/bf16
        # state by pass 2, which then reads g and the old state again
        ams = f["AMSGRAD"]

        def lamb_flags(dt, f=f):
            return dict(f, WRITE_STATE=dt in ("fp32", "fp64"))

        def lamb1(dt, ams=ams):
            return (4 + ams, (2 + ams) if dt in ("fp32", "fp64") else 0)

        def lamb2(dt, ams=ams):
            return (3, 1) if dt in ("fp32", "fp64") else (4 + ams, 3 + ams)

        add("lamb_pass1_kernel", lamb_flags, lamb1, reduction=True)
        add("lamb_pass2_kernel", lamb_flags, lamb2)
    for f in _flag_sets(("CENTERED", "HAS_MOMENTUM"), full, [(True, True)]):
        n = f["CENTERED"] + f["HAS_MOMENTUM"]
        add("rmsprop_kernel", f, (3 + n, 2 + n))
    for f in _flag_sets((), full, [()]):
        add("adagrad_kernel", f, (3, 2))
        add("adadelta_kernel", f, (4, 3))
    add("scale_kernel", {}, (1, 1))
    # the row-gather kernels (spec §5): gathered addresses, scalar access
    for f in _flag_sets(("HAS_MOMENTUM", "NESTEROV"), full, [(True, True)]):
        if f["NESTEROV"] and not f["HAS_MOMENTUM"]:
            continue
        add("sgd_sparse_kernel", f, (2 + f["HAS_MOMENTUM"], 1 + f["HAS_MOMENTUM"]), sparse=True)
    for f in _flag_sets(("AMSGRAD", "DECOUPLED"), full, [(True, True)]):
        add("adam_sparse_kernel", f, (4 + f["AMSGRAD"], 3 + f["AMSGRAD"]), sparse=True)
    # CI: L2, the norm-0 count (the widest finish, Note [last-program finish]) and the general
    # p-norm (the longest code)
    norms = range(6) if full else (0, 4, 5)
    # the grad norm finishes in its last program (Note [last-program finish]); CI: COEF True
    # (clip_coef: the finish also forms the coefficient, a superset of grad_norm's code)
    for norm, coef in itertools.product(norms, (False, True) if full else (True,)):
        flags = dict(NORM=norm, COEF=coef, RBLOCK=cfgs.RBLOCK)
        add("norm_partial_kernel", flags, (1, 0), reduction=True)
    rb = ("RBLOCK", cfgs.RBLOCK)
    for ct in ("fp32", "fp64"):
        for wt in (False, True) if full else (True,):
            out.append(Variant("lamb_norms_kernel", (("WRITE_TRUST", wt),), ct, None, rb, 4))
        out.append(Variant("lamb_trust_kernel", (), ct, None, rb, 4))
    if only:
        out = [v for v in out if only in v.kernel]
    return out


# ----------------------------------------------------------------------------- compile
_I64 = {"chunk_tensor", "chunk_start", "sizes", "tensor_chunk0", "tensor_nchunks", "row_len",
        "n_rows"}  # fmt: skip
_INTS = {"n_chunks", "n_tensors"}
_RE_MEM = re.compile(r"\b(?:ld|st)\.global((?:\.\w+)*)")
_RE_FMA = re.compile(r"\bfma\.r[nzmp]\b")


def _access_bits(suffix: str) -> int:
    vec, width = 1, 0
    for part in suffix.split(".")[1:]:
        if part in ("v2", "v4", "v8"):
            vec = int(part[1:])
        elif part[:1] in "bfsu" and part[1:].isdigit():
            width = int(part[1:])
    return vec * width


def compile_one(v: Variant, arch: int) -> Result:
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from flowoptim_triton import kernels as K
    from flowoptim_triton import sparse_kernels as SK

    tl_dt = {"fp32": tl.float32, "fp16": tl.float16, "bf16": tl.bfloat16, "fp64": tl.float64}
    fn = getattr(SK if "_sparse_" in v.kernel else K, v.kernel)
    cons: dict[str, object] = dict(v.flags)
    cons[v.block[0]] = v.block[1]
    if "DT" in fn.arg_names:
        cons["DT"] = tl_dt[v.dtype]
    cons["CT"] = tl_dt[v.ct]
    if v.align is not None:
        cons["ALIGN"] = v.align
    sig, attrs = {}, {}
    for i, a in enumerate(fn.arg_names):
        if a in cons:
            sig[a] = "constexpr"
        elif a == "CHUNK":
            sig[a], attrs[(i,)] = "i32", [["tt.divisibility", 16]]  # 65536
        elif a in _INTS:
            sig[a] = "i32"
        elif a == "norm_p":
            sig[a] = "fp32"
        elif a == "counter":  # the grad norm's int32 ticket (Note [last-program finish])
            sig[a], attrs[(i,)] = "*i32", [["tt.divisibility", 16]]
        elif a.endswith("_tab") or a in _I64 or (a == "grad_scale" and not cons["HAS_GRAD_SCALE"]):
            sig[a], attrs[(i,)] = "*i64", [["tt.divisibility", 16]]
        elif a == "found_inf":  # GradScaler's float32 flag (Note [AMP]); unused when off
            sig[a] = "*fp32" if cons["HAS_FOUND_INF"] else "*i64"
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:  # CT buffers: scal, grad_scale, partials, sums, lr_trust, total, coef, clip
            sig[a], attrs[(i,)] = f"*{v.ct}", [["tt.divisibility", 16]]
    options = dict(num_warps=v.num_warps, enable_fp_fusion=False)
    if v.maxnreg is not None:
        options["maxnreg"] = v.maxnreg
    r = Result(v, arch)
    t0 = time.perf_counter()
    log = io.StringIO()
    try:
        triton.knobs.nvidia.dump_ptxas_log = True  # ptxas -v, printed by triton
        with contextlib.redirect_stdout(log):
            k = triton.compile(
                ASTSource(fn, sig, cons, attrs),
                target=GPUTarget("cuda", arch, 32),
                options=options,
            )
    except Exception as e:  # any compile failure is a finding
        r.error = (
            f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        )
        r.seconds = time.perf_counter() - t0
        return r
    r.seconds = time.perf_counter() - t0
    text = log.getvalue()
    m = re.search(r"Used (\d+) registers", text)
    r.regs = int(m.group(1)) if m else -1
    r.spill = sum(int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", text))
    ptx = k.asm["ptx"]
    r.n128 = sum(1 for s in _RE_MEM.findall(ptx) if _access_bits(s) == 128)
    r.fma = len(_RE_FMA.findall(ptx))
    return r


def _worker_init(cache: str) -> None:
    os.environ["TRITON_CACHE_DIR"] = cache
    sys.path.insert(0, str(SRC))


def _run(args: tuple[Variant, int]) -> Result:
    return compile_one(*args)


# ----------------------------------------------------------------------------- checks
def resident_warps(regs: int, num_warps: int) -> int:
    """Warps per SM that the register count allows (Note [occupancy rule])."""
    per_warp = math.ceil(max(regs, 1) * 32 / 256) * 256
    blocks = min(
        REGS_PER_SM // (per_warp * num_warps), MAX_BLOCKS_PER_SM, MAX_WARPS_PER_SM // num_warps
    )
    return blocks * num_warps


def inflight(r: Result) -> int:
    """Bytes one SM has in flight at the allowed occupancy (element reads of one tile)."""
    v = r.variant
    return resident_warps(r.regs, v.num_warps) * 32 * v.per_thread * v.reads * BYTES[v.dtype]


def check(r: Result) -> None:
    v = r.variant
    f = r.failures
    if r.error:
        f.append(f"compile error: {r.error}")
        return
    if r.regs < 0:
        f.append("no register count in the ptxas log")
    if r.spill:
        f.append(f"spills {r.spill} bytes")
    if r.fma and dict(v.flags).get("NORM") != NORM_P:
        f.append(f"{r.fma} fma in the PTX with enable_fp_fusion=False")
    warps = resident_warps(r.regs, v.num_warps)
    if warps < MIN_WARPS:
        f.append(f"{r.regs} registers: {warps} warps/SM < {MIN_WARPS}")
    if v.reads and inflight(r) < MIN_INFLIGHT:
        f.append(f"{r.regs} registers: {inflight(r)} bytes in flight/SM < {MIN_INFLIGHT}")
    if v.align and v.reads:
        got = vec_bytes(r)
        if got != v.floor:
            f.append(f"128-bit accesses move {got:g} bytes/param, floor {v.floor}")


def vec_bytes(r: Result) -> float:
    """Bytes per parameter moved by 128-bit accesses (each PTX access is one per thread per
    tile; a thread holds ``per_thread`` elements of each operand per tile)."""
    return 16 * r.n128 / r.variant.per_thread


# ----------------------------------------------------------------------------- report
def _table(results: list[Result], rows: bool) -> str:
    groups: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        v = r.variant
        key = (v.kernel.removesuffix("_kernel"), v.flag_str(), v.dtype, v.align, r.arch)
        if rows:
            key += (f"{v.block[1]}/{v.num_warps}",)
        groups[key].append(r)
    head = ["kernel", "flags", "dtype", "align", "sm", *(["block/warps"] if rows else ["cfgs"])]
    head += ["regs", "spills", "warps/SM", "vec bits", "bytes/param", "floor", "fma", "ok"]
    lines = [head]
    for key, rs in groups.items():
        v = rs[0].variant
        ok = [r for r in rs if not r.error]
        regs = sorted({r.regs for r in ok})
        reg_s = "-" if not regs else (f"{regs[0]}" if len(regs) == 1 else f"{regs[0]}-{regs[-1]}")
        warps = min((resident_warps(r.regs, r.variant.num_warps) for r in ok), default=0)
        if v.align and v.reads:
            vb = sorted({vec_bytes(r) for r in ok})
            bytes_s = "/".join(f"{b:g}" for b in vb)
            vbits = "128" if vb == [v.floor] else "mixed"
        else:
            bytes_s, vbits = "-", ("scalar" if v.align is False else "-")
        row = [*key[:3], {True: "yes", False: "no", None: "-"}[key[3]], f"sm_{key[4]}"]
        row += [key[5]] if rows else [str(len(rs))]
        row += [reg_s, str(max((r.spill for r in ok), default=0)), str(warps), vbits, bytes_s]
        row += [str(v.floor) if v.reads else "-", str(max((r.fma for r in ok), default=0))]
        row += ["ok" if not any(r.failures for r in rs) else "FAIL"]
        lines.append(row)
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)) for x in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="e.g. 80 90")
    ap.add_argument("--full", action="store_true", help="also MAXIMIZE/HAS_GRAD_SCALE False")
    ap.add_argument("--only", help="kernels whose name contains this")
    ap.add_argument("--rows", action="store_true", help="one line per compiled variant")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes")
    args = ap.parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)  # the kernels must be JIT functions, not interpreted
    vs = variants(args.full, args.only)
    work = [(v, a) for a in args.arch for v in vs]
    import triton

    print(f"triton {triton.__version__}: {len(work)} compiles ({len(vs)} variants x sm_"
          f"{'/sm_'.join(map(str, args.arch))}), {args.jobs} processes", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="flowoptim-aot-") as cache,
        ProcessPoolExecutor(args.jobs, initializer=_worker_init, initargs=(cache,)) as ex,
    ):
        results = list(ex.map(_run, work, chunksize=4))
    wall = time.perf_counter() - t0
    for r in results:
        check(r)
    print(_table(results, args.rows))
    bad = [r for r in results if r.failures]
    for r in bad:
        v = r.variant
        print(f"FAIL {v.kernel} {v.flag_str()} {v.dtype} align={v.align} {v.block[0]}={v.block[1]}"
              f" num_warps={v.num_warps} sm_{r.arch}: {'; '.join(r.failures)}")  # fmt: skip
    cpu = sum(r.seconds for r in results)
    print(f"{len(results)} compiles, {len(bad)} failing; {wall:.0f} s wall, {cpu:.0f} s of compile")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
