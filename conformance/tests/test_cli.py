"""The command: table, reproducers, the final line, exit codes, xfail files."""

import subprocess
import sys

import pytest

from flowoptim_conformance.__main__ import main


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


def test_torch_adapter_is_information_only(capsys):
    rc = main(["--backend", "reference", "--torch-adapter", "--family", "Adam",
               "--dtype", "float32"])  # fmt: skip
    out, last = last_line(capsys)
    assert rc == 0 and last.endswith(" 0 failed")
    assert "torch.optim float32 (info)" in out and "depart" in out


def test_torch_adapter_reports_lamb_as_not_applicable(capsys):
    # torch.optim has no LAMB: every LAMB case, error cases included, is n/a, never "depart"
    assert main(["--backend", "reference", "--torch-adapter", "--family", "LAMB",
                 "--dtype", "float32"]) == 0  # fmt: skip
    out, _ = last_line(capsys)
    row = next(line for line in out.splitlines() if line.startswith("LAMB"))
    passed, failed, _xfailed, agree, depart, na = (int(x) for x in row.split()[1:7])
    assert (failed, agree, depart) == (0, 0, 0) and na == passed > 0


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
