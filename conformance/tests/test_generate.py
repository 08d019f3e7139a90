"""The vectors are deterministic, checked in, and `--check` catches any difference."""

import json

from flowoptim_conformance import generate
from flowoptim_conformance.cases import all_cases
from flowoptim_conformance.vectors_io import load_cases


def test_checked_in_vectors_are_up_to_date():
    assert generate.main(["--check"]) == 0


def test_generation_is_deterministic():
    assert generate.build_vectors() == generate.build_vectors()


def test_check_fails_on_any_difference(tmp_path, capsys):
    assert generate.main(["--dir", str(tmp_path)]) == 0
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 0
    f = tmp_path / "adam.json"
    data = json.loads(f.read_text())
    data["cases"][0]["steps"][0]["expected"]["params"][0]["data"][0] = (1.5).hex()
    f.write_text(json.dumps(data))
    (tmp_path / "stale.json").write_text("{}")
    assert generate.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "adam.json" in err and "stale.json" in err


def test_case_table_covers_the_issue():
    ids = {c["id"] for c in all_cases()}
    assert len(ids) >= 300
    for needle in ["adam-amsgrad-no-bias-correction-2groups", "sgd-nesterov", "rmsprop-centered",
                   "adagrad-lr-decay", "adagrad-initial-accumulator", "lamb-l2", "lamb-zero-param",
                   "sgd-maximize", "sgd-momentum-dampening", "-none-grads", "-lr-change",
                   "-sizes", "clip-norm-inf-", "clip-norm0-", "clip-norm0.5-", "clip-norm3-",
                   "clip-norm-inf-", "clip-no-grads", "clip-nonfinite-nan-norm2-error",
                   "-resumed", "-last-step", "sched-error-", "-error-"]:  # fmt: skip
        assert any(needle in i for i in ids), needle


def test_vectors_are_package_data_with_hex_floats():
    cases = load_cases(["adam-worked-value"])
    (case,) = cases
    got = float.fromhex(case["steps"][0]["expected"]["params"][0]["data"][0])
    assert abs(got - 0.8999993) < 1e-7
