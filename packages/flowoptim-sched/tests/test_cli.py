"""``python -m flowoptim_sched plot``: CSV without matplotlib, PNG with it."""

import csv
import io
import math
import runpy
import sys
import warnings

import pytest

from flowoptim_sched.cli import main, plot_points, schedule_values

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


def test_plot_points_draw_drops_as_vertical_edges():
    # StepLR(step_size=2, gamma=0.5): the drop at step 2 holds 1.0 up to x=2, then falls there
    xs, ys = plot_points([1.0, 1.0, 0.5, 0.5, 0.25])
    assert list(zip(xs, ys, strict=True)) == [
        (0, 1.0), (1, 1.0), (2, 1.0), (2, 0.5), (3, 0.5), (4, 0.5), (4, 0.25),
    ]  # fmt: skip


def test_plot_points_keep_smooth_schedules_and_restarts_apart():
    cosine = schedule_values("CosineDecayLR(decay_steps=50)", 1.0, 40)
    xs, ys = plot_points(cosine)
    assert (xs, ys) == (list(range(40)), cosine)  # no edge anywhere: a line through the points
    sgdr = schedule_values("CosineAnnealingWarmRestarts(T_0=10)", 1.0, 25)
    xs, _ = plot_points(sgdr)
    assert [x for x in set(xs) if xs.count(x) == 2] == [10, 20]  # the two restarts


def test_plot_draws_step_schedules_as_steps(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    drawn = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        drawn.append((list(args[0]), list(args[1])))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    out = tmp_path / "lr.png"
    args = ["plot", "StepLR(step_size=30, gamma=0.5)", "MultiStepLR([10, 25])", "--lr", "1"]
    assert main([*args, "--steps", "40", "-o", str(out)]) == 0
    (xs, ys), (xs2, _) = drawn
    i = xs.index(30)
    assert (xs[i], ys[i], xs[i + 1], ys[i + 1]) == (30, 1.0, 30, 0.5)  # vertical, no ramp
    assert [x for x in set(xs2) if xs2.count(x) == 2] == [10, 25]


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["plot", "--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text
    assert '"CosineDecayLR(decay_steps=1000, alpha=0.1)"' in text


def test_drawing_does_not_warn_about_step_order():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert schedule_values("StepLR(step_size=2)", 1.0, 4) == [1.0, 1.0, 0.1, 0.1]
