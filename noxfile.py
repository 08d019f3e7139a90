"""Every check of the flowoptim monorepo, as nox sessions for the CPU/GPU matrix.

    nox -s conformance   # the main job: the conformance suite against every usable backend
    nox -s tests         # every package's tests + the conformance suite on CPU backends (CI)
    nox -s lint          # ruff
    nox -s aot_audit     # AOT compile audit of the Triton kernels for sm_80/sm_90 (CI)
    nox -l               # everything else (vectors, GPU sessions, benchmarks)

Sessions install the packages from their folders, as a user would, with torch (and the other
tools) pinned by constraints.txt. GPU sessions (tag ``gpu``) skip on a machine without CUDA unless
``FLOWOPTIM_REQUIRE_GPU=1``, in which case they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
CORE = ROOT / "packages" / "flowoptim-core"
SCHED = ROOT / "packages" / "flowoptim-sched"
TRITON = ROOT / "packages" / "flowoptim-triton"
CONFORMANCE = ROOT / "conformance"

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _present(path: Path) -> bool:
    return (path / "pyproject.toml").exists()


def _install(session: nox.Session, *paths: Path, extra: tuple[str, ...] = ()) -> None:
    """Install the given package folders (those that exist) plus tools, under the pins."""
    targets = [str(p) for p in paths if _present(p)]
    session.install(*CONSTRAINTS, "torch", "pytest", *extra, *targets)


def _interpreted_env() -> dict[str, str]:
    """Triton kernels run on the CPU through Triton's interpreter."""
    return {"TRITON_INTERPRET": "1"}


def _has_cuda(session: nox.Session) -> bool:
    out = session.run("python", "-c", "import torch; print(torch.cuda.is_available())", silent=True)
    return bool(out) and out.strip().endswith("True")


def _require_gpu(session: nox.Session) -> None:
    if not _has_cuda(session):
        if os.environ.get("FLOWOPTIM_REQUIRE_GPU") == "1":
            session.error("FLOWOPTIM_REQUIRE_GPU=1 but torch sees no CUDA device")
        session.skip("no CUDA device (set FLOWOPTIM_REQUIRE_GPU=1 to make this an error)")


def _conformance_backends() -> list[str]:
    """The backends to run the suite against: reference, and triton when its folder exists (on
    the CPU it runs through the interpreter, on CUDA natively)."""
    return ["reference", "triton"] if _present(TRITON) else ["reference"]


@nox.session(tags=["cpu"])
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["cpu"])
def tests(session: nox.Session) -> None:
    """Every package's tests, then the conformance suite against every CPU backend."""
    _install(session, CORE, SCHED, CONFORMANCE, TRITON, extra=("numpy", "matplotlib", "triton"))
    session.run("pytest", str(CORE / "tests"), *session.posargs)
    if _present(SCHED):
        session.run("pytest", str(SCHED / "tests"), *session.posargs)
    if _present(CONFORMANCE):
        session.run("pytest", str(CONFORMANCE / "tests"), *session.posargs)
    if _present(TRITON):
        session.run("pytest", str(TRITON / "tests"), *session.posargs, env=_interpreted_env())
    if _present(CONFORMANCE):
        _run_conformance(session, device="cpu", torch_adapter=False)


def _run_conformance(session: nox.Session, device: str, torch_adapter: bool) -> None:
    args = ["python", "-m", "flowoptim_conformance", "--device", device]
    for name in _conformance_backends():
        args += ["--backend", name]
    if torch_adapter:
        args.append("--torch-adapter")
    env = _interpreted_env() if device == "cpu" else {}
    session.run(*args, env=env)


@nox.session(tags=["cpu"])
def conformance(session: nox.Session) -> None:
    """The main job: the conformance suite against every backend usable here, in one table.

    On a CPU-only machine: reference, and triton through TRITON_INTERPRET=1. With a GPU, the
    CUDA backends run natively too. The torch.optim adapter is shown for information.
    """
    _install(session, CORE, SCHED, CONFORMANCE, TRITON, extra=("numpy", "triton"))
    _run_conformance(session, device="cpu", torch_adapter=True)
    if _has_cuda(session):
        _run_conformance(session, device="cuda", torch_adapter=True)


@nox.session(tags=["cpu"])
def vectors(session: nox.Session) -> None:
    """Regenerate the conformance vectors from the formulas; fail on any difference."""
    session.install(*CONSTRAINTS, "numpy", str(CONFORMANCE))
    session.run("python", "-m", "flowoptim_conformance.generate", "--check")


#: triton versions the compile audit runs under: the pinned one (constraints.txt) and 3.6.0, the
#: version on this workplace's GPU machine (issue 14).
AOT_TRITONS = ["pinned", "3.6.0"]


@nox.session(tags=["cpu"])
@nox.parametrize("triton_version", AOT_TRITONS)
def aot_audit(session: nox.Session, triton_version: str) -> None:
    """Compile every kernel specialization for sm_80 and sm_90 ahead of time (no GPU needed) and
    fail on compile errors, non-128-bit access on aligned variants, spills, register counts
    below the occupancy rule, or fused multiply-adds (kernels/aot/audit.py). Installs triton
    alone (no torch): the audit imports the kernels from this checkout."""
    if triton_version == "pinned":
        session.install(*CONSTRAINTS, "triton")
    else:
        session.install(f"triton=={triton_version}")
    session.run("python", str(ROOT / "kernels" / "aot" / "audit.py"), *session.posargs)


@nox.session(tags=["gpu"])
def tests_gpu(session: nox.Session) -> None:
    """The Triton backend's tests and the conformance suite natively on CUDA."""
    _install(session, CORE, CONFORMANCE, TRITON, extra=("numpy", "triton"))
    _require_gpu(session)
    if _present(TRITON):
        session.run("pytest", str(TRITON / "tests"), *session.posargs)
    if _present(CONFORMANCE):
        _run_conformance(session, device="cuda", torch_adapter=False)


@nox.session(tags=["bench"])
def bench_cpu(session: nox.Session) -> None:
    """CPU step times of flowoptim vs torch.optim (prints a table; not a test)."""
    _install(session, CORE)
    session.run("python", str(ROOT / "kernels" / "bench" / "cpu_step.py"), *session.posargs)


@nox.session(tags=["bench"])
def bench_host(session: nox.Session) -> None:
    """Host cost of the triton backend's step, kernel launches made no-ops (prints a table)."""
    _install(session, CORE, TRITON, extra=("numpy", "triton"))
    script = ROOT / "kernels" / "bench" / "host_step.py"
    session.run("python", str(script), *session.posargs, env=_interpreted_env())


@nox.session(tags=["gpu", "bench"])
def bench_gpu(session: nox.Session) -> None:
    """GPU step times against torch and the copy floor (needs CUDA)."""
    script = ROOT / "kernels" / "bench" / "gpu_step.py"
    if not script.exists():
        session.error(f"{script.relative_to(ROOT)} is not written yet (the GPU performance issue)")
    _install(session, CORE, TRITON, extra=("triton",))
    _require_gpu(session)
    session.run("python", str(script), *session.posargs)
