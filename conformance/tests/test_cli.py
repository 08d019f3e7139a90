"""The command: table, reproducers, the final line, exit codes, xfail files."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from flowoptim_conformance.__main__ import main
from flowoptim_conformance.report import format_table
from flowoptim_conformance.runner import CaseResult, Report
from flowoptim_conformance.vectors_io import load_cases


def last_line(capsys):
    out = capsys.readouterr().out
    return out, out.rstrip("\n").splitlines()[-1]


def test_reference_full_run_passes(capsys):
    assert main(["--backend", "reference", "--dtype", "float32"]) == 0
    out, last = last_line(capsys)
    n = int(last.split()[0])
    assert last == f"{n} passed, 0 failed"
    assert n >= 300
    for row in ("SGD", "LAMB", "clip_grad", "WarmupLR", "ReduceLROnPlateau"):
        assert f"\n{row} " in out


def test_failure_prints_reproducer_and_exits_1(capsys):
    rc = main(["--backend", "flowoptim_conformance.mutants:AdagradEpsInsideSqrt",
               "--family", "Adagrad", "--dtype", "float32"])  # fmt: skip
    out, last = last_line(capsys)
    assert rc == 1
    n, m = int(last.split()[0]), int(last.split()[2])
    assert last == f"{n} passed, {m} failed" and m > 0
    assert "FAILED adagrad-" in out and "Adagrad(**" in out and "step " in out
    assert "expected" in out and "got" in out


def test_zero_cases_refused(capsys):
    assert main(["--backend", "reference", "--case", "no-such-case-*"]) == 1
    captured = capsys.readouterr()
    assert captured.out.rstrip().splitlines()[-1] == "0 passed, 0 failed"
    assert "refusing to report success on zero cases" in captured.err


def test_unknown_backend_is_an_error(capsys):
    assert main(["--backend", "no-such-backend"]) == 2
    assert "no-such-backend" in capsys.readouterr().err


def test_xfail_file(tmp_path, capsys):
    xf = tmp_path / "xfail.txt"
    xf.write_text("# known\nadagrad-eps*: eps inside the sqrt, on purpose\n")
    args = ["--backend", "flowoptim_conformance.mutants:AdagradEpsInsideSqrt", "--family",
            "Adagrad", "--dtype", "float32", "--xfail", str(xf)]  # fmt: skip
    rc = main(args)
    out, last = last_line(capsys)
    assert "xfailed" in out
    # the other Adagrad failures (small eps with small grads...) are still failures
    assert rc == (0 if last.endswith(" 0 failed") else 1)


def test_xpass_is_a_failure(tmp_path, capsys):
    xf = tmp_path / "xfail.txt"
    xf.write_text("adam-plain: not really broken\n")
    assert main(["--backend", "reference", "--case", "adam-plain", "--dtype", "float32",
                 "--xfail", str(xf)]) == 1  # fmt: skip
    out, last = last_line(capsys)
    assert last == "0 passed, 1 failed" and "remove it from the xfail file" in out


@pytest.mark.parametrize("content", ["adam-plain\n", "adam-plain:   \n", "no-such-case: why\n"])
def test_bad_xfail_files_are_errors(tmp_path, capsys, content):
    xf = tmp_path / "xfail.txt"
    xf.write_text(content)
    assert main(["--backend", "reference", "--case", "adam-plain", "--xfail", str(xf)]) == 2


def _row(out, family, section="optimizers"):
    """The cells of ``family``'s row in ``section`` (split on runs of two or more spaces)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(section))
    row = next(line for line in lines[start:] if line.startswith(family + " "))
    return re.split(r"\s{2,}", row.strip())[1:]


def _header(out, section):
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(section))
    return lines[i - 1]


def test_torch_adapter_is_information_only(capsys):
    rc = main(["--backend", "reference", "--torch-adapter", "--family", "Adam",
               "--dtype", "float32"])  # fmt: skip
    out, last = last_line(capsys)
    assert rc == 0 and last.endswith(" 0 failed")
    assert "torch.optim (info)" in _header(out, "optimizers")
    assert "agree/depart" in out


def test_torch_adapter_reports_lamb_as_not_applicable(capsys):
    # torch.optim has no LAMB: every LAMB case, error cases included, is n/a, never "depart"
    assert main(["--backend", "reference", "--torch-adapter", "--family", "LAMB",
                 "--dtype", "float32"]) == 0  # fmt: skip
    out, _ = last_line(capsys)
    ours, torch_cell = _row(out, "LAMB")
    passed, failed = (int(x) for x in ours.split("/"))
    assert failed == 0 and passed > 0 and torch_cell == "n/a"


def test_schedulers_run_once_not_per_backend(capsys):
    second = "flowoptim_conformance.mutants:AdagradEpsInsideSqrt"  # a second backend
    args = ["--backend", "reference", "--backend", second, "--case", "sched-steplr*",
            "--case", "sgd-error-*"]  # fmt: skip
    assert main(args) == 0
    out, last = last_line(capsys)
    n_sched = sum(1 for c in load_cases(["sched-steplr*"]))
    n_sgd = sum(1 for c in load_cases(["sgd-error-*"]))
    assert n_sched > 0 and n_sgd > 0
    assert last == f"{n_sched + 2 * n_sgd} passed, 0 failed"  # schedulers once, SGD per backend
    assert _row(out, "StepLR", "schedulers") == [f"{n_sched}/0"]
    header = _header(out, "schedulers")
    assert "flowoptim_sched" in header and "reference" not in header
    assert "StepLR" not in out.split("\nschedulers")[0]  # no scheduler row under the backends
    assert "reference (cpu)" in _header(out, "optimizers")


def test_torch_runs_its_own_schedulers_beside_ours(capsys):
    args = ["--backend", "reference", "--torch-adapter", "--case", "sched-steplr",
            "--case", "sched-steplr-lr-set-by-hand", "--case", "sched-cosinedecaylr",
            "--case", "sched-polynomiallr-cycle",
            "--case", "sched-reducelronplateau-min"]  # fmt: skip
    assert main(args) == 0
    out, last = last_line(capsys)
    assert last == "5 passed, 0 failed"  # torch's verdicts are never counted
    assert "torch.optim.lr_scheduler (info)" in _header(out, "schedulers")
    # torch's StepLR gives OneFlow's values, but keeps an lr set by hand (recursive form)
    assert _row(out, "StepLR", "schedulers") == ["2/0", "1/1"]
    assert _row(out, "CosineDecayLR", "schedulers") == ["1/0", "n/a"]  # torch has none
    assert _row(out, "PolynomialLR", "schedulers") == ["1/0", "n/a"]  # cycle=True: none
    assert _row(out, "ReduceLROnPlateau", "schedulers") == ["1/0", "1/0"]


def test_verbose_uses_the_tables_words(capsys):
    args = ["--backend", "reference", "--torch-adapter", "--case", "sched-steplr*",
            "--case", "sgd-error-*", "-v"]  # fmt: skip
    assert main(args) == 0
    out, _ = last_line(capsys)
    # verbose lines: WORD SUBJECT DTYPE CASE-ID
    fields = [line.split() for line in out.splitlines()]
    verdicts = [f[:2] for f in fields if len(f) == 4 and f[3].startswith(("sched-", "sgd-"))]
    assert verdicts
    for word, subject in verdicts:
        if subject.startswith("torch"):
            assert word in ("agree", "depart", "n/a"), (word, subject)
        else:
            assert word in ("passed", "failed", "xfailed", "skipped", "n/a"), (word, subject)
    assert ["depart", "torch.optim.lr_scheduler"] in verdicts  # the lr-set-by-hand case


def _report(subjects, families, dtypes, n=1234):
    results = []
    for subject, info in subjects:
        for fam in families:
            for d in dtypes:
                for status, k in (("passed", n), ("failed", 7), ("xfailed", 3), ("skipped", 12)):
                    if info and status in ("xfailed", "skipped"):
                        status = "n/a"
                    results += [CaseResult("x", fam, subject, d, status)] * k
    return Report(results, {s for s, info in subjects if info})


@pytest.mark.parametrize("dtypes", [["float32", "float64"],
                                    ["float32", "float64", "float16", "bfloat16"]])  # fmt: skip
def test_table_fits_100_columns_even_with_big_counts(dtypes):
    subjects = [("reference", False), ("triton", False), ("torch.optim", True)]
    report = _report(subjects, ["SGD", "CosineAnnealingWarmRestarts"], dtypes)
    report.extend(_report([("flowoptim_sched", False), ("torch.optim.lr_scheduler", True)],
                          ["CosineAnnealingWarmRestarts"], [None]))  # fmt: skip
    table = format_table(report, {"reference": "reference (cpu)", "triton": "triton (interp)"})
    assert max(len(line) for line in table.splitlines()) <= 100, table
    assert "triton (interp)" in table and "1234/7 x3 s12" in table and "1234/7 na15" in table


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_default_job_table_fits_100_columns_and_says_how_triton_ran(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run(
        [sys.executable, "-m", "flowoptim_conformance", "--backend", "reference",
         "--backend", "triton", "--torch-adapter", "--case", "adam-plain", "--case", "sgd-error-*",
         "--case", "clip-norm2-*", "--case", "sched-*"],
        cwd=tmp_path, capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    out = proc.stdout
    assert "triton (interp)" in out and "reference (cpu)" in out, out + proc.stderr
    assert "Triton's interpreter on the CPU" in out
    table = out.split("\nFAILED")[0]
    assert max(len(line) for line in table.splitlines()) <= 100, table


def test_module_entry_point_runs_from_outside_the_checkout(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flowoptim_conformance", "--backend", "reference",
         "--case", "adam-worked-value*", "--dtype", "float32"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "2 passed, 0 failed"


def test_pytest_plugin_runs_cases_only_when_enabled(tmp_path):
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    (tmp_path / "test_nothing.py").write_text("def test_x():\n    pass\n")
    inert = subprocess.run(base, capture_output=True, text=True, check=False, cwd=tmp_path)
    assert "1 passed" in inert.stdout, inert.stdout
    enabled = subprocess.run(
        [*base, "--conformance-backend", "reference", "--conformance-dtype", "float32",
         "-k", "worked"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    assert "passed" in enabled.stdout and "1 passed" not in enabled.stdout


def test_column_titles_say_how_each_backend_ran(monkeypatch):
    from flowoptim_conformance.__main__ import how_it_ran

    launch = pytest.importorskip("flowoptim_triton.launch")

    class FakeTriton:
        pass

    FakeTriton.__module__ = "flowoptim_triton.backend"
    monkeypatch.setattr(launch, "interpreted", lambda: True)
    assert how_it_ran(FakeTriton(), "cpu") == "interp"
    monkeypatch.setattr(launch, "interpreted", lambda: False)
    assert how_it_ran(FakeTriton(), "cuda") == "cuda"  # compiled kernels, natively
    assert how_it_ran(object(), "cpu") == "cpu"  # any other backend: where its tensors are
