"""Meta-tests: deliberately broken backends must fail; zero cases is never success."""

import pytest

import flowoptim_conformance as fc
from flowoptim_conformance.mutants import MUTANTS
from flowoptim_conformance.runner import FlowoptimSubject, run_subject

# the families each mutant must be caught in (fast: only those rows run)
WHERE = {
    "adagrad-eps-inside-sqrt": ["Adagrad"],
    "lamb-decay-inside-norm": ["LAMB"],
    "per-parameter-step": ["Adam", "Adagrad", "LAMB"],
    "clip-per-tensor-norm": ["clip_grad"],
    "sparse-densified": ["AdamW"],
}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    report = fc.run(MUTANTS[name](), "cpu", "float32", families=WHERE[name])
    assert report.failed > 0, f"mutant {name} passed the suite"
    assert not report.ok
    caught = {r.family for r in report.failures()}
    assert caught, name
    # caught by a numerical difference, not by crashing
    assert any("expected" in r.message for r in report.failures())


def test_per_parameter_step_caught_in_each_family():
    report = fc.run(MUTANTS["per-parameter-step"](), "cpu", "float32",
                    families=WHERE["per-parameter-step"])  # fmt: skip
    assert {r.family for r in report.failures()} >= {"Adam", "Adagrad", "LAMB"}


def test_zero_cases_is_not_success():
    report = run_subject(FlowoptimSubject("reference"), cases=[])
    assert report.passed == 0 and report.failed == 0
    assert not report.ok


def test_reference_passes_a_sample_in_every_dtype():
    for dtype in ("float32", "float64", "float16", "bfloat16"):
        report = fc.run("reference", "cpu", dtype, cases=["adam-*-2groups", "lamb-zero-*",
                                                          "clip-norm2-*"])  # fmt: skip
        assert report.ok, [r.message for r in report.failures()]
