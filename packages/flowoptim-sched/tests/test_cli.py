"""``python -m flowoptim_sched plot``: CSV without matplotlib, PNG with it."""

import csv
import io
import math
import runpy
import sys

import pytest

from flowoptim_sched.cli import main, schedule_values

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_csv_rows(capsys):
    assert (
        main(["plot", "StepLR(step_size=2, gamma=0.5)", "--lr", "1", "--steps", "5", "--csv"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "step,lr"
    rows = [line.split(",") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    assert [float(r[1]) for r in rows] == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_csv_several_specs_and_nested_specs(capsys):
    specs = [
        "CosineDecayLR(decay_steps=4, alpha=0.1)",
        "WarmupLR(CosineDecayLR(4, alpha=0.1), warmup_iters=2, warmup_prefix=True)",
        "SequentialLR(schedulers=[ConstantLR(0.5, 2), ExponentialLR(gamma=0.5)], milestones=[2])",
        "ChainedScheduler([StepLR(2), LambdaLR(lambda s: math.exp(-s))])",
        "WarmupLR(warmup_iters=3)",
    ]
    assert main(["plot", *specs, "--lr", "1", "--steps", "6", "--csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 7
    assert rows[0] == ["step", *specs]  # one column per spec, quoted where needed
    last = rows[-1]
    assert float(last[-1]) == 1.0  # the warmup alone ends at the base lr
    assert math.isclose(float(last[3]), 0.5**5)  # global step 5 (OneFlow's default)
    assert math.isclose(float(last[4]), 0.1**2 * math.exp(-5))


def test_schedule_values_matches_the_class():
    values = schedule_values("PolynomialLR(decay_batch=5, end_learning_rate=0.1, cycle=True)", 1, 3)
    assert values[0] == pytest.approx(0.82)  # OneFlow's step-0 value


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Nope(1)", "unknown scheduler 'Nope'"),
        ("StepLR(step_size=0)", "step_size: 0"),
        ("ReduceLROnPlateau()", "cannot plot"),
        ("StepLR(step_size=os.sep)", "not a literal"),
        ("StepLR(", "cannot parse"),
        ("3 + 4", "expected a call"),
    ],
)
def test_bad_specs_exit_2_with_a_message(capsys, spec, message):
    assert main(["plot", spec, "--csv"]) == 2
    assert message in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lr.png"
    args = ["plot", "CosineDecayLR(decay_steps=1000, alpha=0.1)", "StepLR(step_size=300)"]
    assert main([*args, "--lr", "0.1", "--steps", "1200", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    import matplotlib.image

    height, width = matplotlib.image.imread(str(out)).shape[:2]
    assert (width, height) == (960, 540)  # 8 x 4.5 inches at 120 dpi


def test_module_entry_point(monkeypatch, capsys):
    # ``python -m flowoptim_sched`` without paying for a second interpreter's torch import
    argv = ["flowoptim_sched", "plot", "ExponentialLR(gamma=0.5)", "--steps", "3", "--lr", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--csv"])
    monkeypatch.delitem(sys.modules, "flowoptim_sched.__main__", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("flowoptim_sched", run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.splitlines() == ["step,lr", "0,1.0", "1,0.5", "2,0.25"]
