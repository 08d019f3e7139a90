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
                   "-resumed", "-last-step", "sched-error-", "-error-",
                   # issue 10: maximize on all seven, OneFlow's nesterov forms, string norm types
                   "adam-maximize", "adamw-maximize", "lamb-maximize", "rmsprop-maximize",
                   "adagrad-maximize", "adadelta-maximize", "sgd-nesterov-no-momentum",
                   "sgd-nesterov-dampening", "clip-norm-stringinf-", "clip-norm-string-inf-",
                   "clip-norm-string2-", "rmsprop-centered-alpha-zero",
                   "-error-params-exhausted-generator-group", "rmsprop-error-alpha-above-one",
                   "-clip-norm-type-bad-string"]:  # fmt: skip
        assert any(needle in i for i in ids), needle


def test_vectors_are_package_data_with_hex_floats():
    cases = load_cases(["adam-worked-value"])
    (case,) = cases
    got = float.fromhex(case["steps"][0]["expected"]["params"][0]["data"][0])
    assert abs(got - 0.8999993) < 1e-7


def _generate_in_subprocess(out_dir, env_extra):
    import os
    import subprocess
    import sys

    env = {**os.environ, **env_extra}
    code = (
        "import sys, numpy._core._multiarray_umath as m\n"
        "from flowoptim_conformance import generate\n"
        "print(sorted(k for k, v in m.__cpu_features__.items() if v))\n"
        "sys.exit(generate.main(['--dir', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out_dir)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[0]


def test_vectors_do_not_depend_on_numpy_simd_dispatch(tmp_path):
    """Note [machine-independent formulas]: the same bits with numpy's CPU dispatch narrowed to
    the x86-64 baseline (no AVX2, no AVX-512) as with everything this CPU has."""
    import platform

    import pytest

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("numpy's x86-64 dispatch levels only")
    wide, narrow = tmp_path / "default", tmp_path / "narrow"
    _generate_in_subprocess(wide, {"NPY_DISABLE_CPU_FEATURES": ""})
    features = _generate_in_subprocess(narrow, {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4"})
    assert "X86_V3" not in features and "X86_V4" not in features, features
    names = sorted(f.name for f in wide.iterdir())
    assert names == sorted(f.name for f in narrow.iterdir()) and len(names) == 9
    for name in names:
        assert (wide / name).read_bytes() == (narrow / name).read_bytes(), name


def test_norms_are_exactly_rounded_and_order_free():
    """Sums are math.fsum (exact, order-free): permuting a gradient's elements or the tensors
    of a group cannot move a bit of the total (np.sum's pairwise, SIMD-blocked sum can)."""
    import numpy as np

    from flowoptim_conformance import formulas

    rng = np.random.default_rng(7)
    g = rng.standard_normal(4099) * np.exp2(rng.integers(-30, 30, 4099))
    h = rng.standard_normal(37)
    perm = rng.permutation(g.size)
    for nt in (1.0, 2.0, 3.0, 0.5, 7.5):
        a = formulas.grad_norm([g, h], nt)
        assert formulas.grad_norm([g[perm], h], nt) == a
        assert formulas.grad_norm([h, g[::-1]], nt) == a
    # the 2-norm is sqrt of the exactly rounded sum of the (rounded) squares
    from fractions import Fraction

    exact = sum(Fraction(float(x) * float(x)) for x in g)
    assert formulas.grad_norm([g], 2.0) == float(np.sqrt(float(exact)))
    # an overflowing norm is inf, not an exception
    assert formulas.grad_norm([np.array([1e300, 1e300])], 3.0) == float("inf")
