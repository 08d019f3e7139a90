"""flowoptim-core's warm-versus-cold step cases (``test_step_fast_path.py``) on the Triton
backend, whose plan and ``scal`` caches (Note [plan cache] in ``flowoptim_triton.launch``) are
warm in one optimizer and empty in its twin: after each mutation between two steps both must
raise the same error or give the same bits. CPU tensors: interpreted runs only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from triton_helpers import INTERPRET

from flowoptim_triton import TritonBackend

_PATH = Path(__file__).parents[2] / "flowoptim-core" / "tests" / "test_step_fast_path.py"
_spec = importlib.util.spec_from_file_location("core_step_fast_path", _PATH)
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)
core.BACKENDS["triton"] = lambda: TritonBackend()

pytestmark = pytest.mark.skipif(not INTERPRET, reason="the cases use CPU tensors")


@pytest.mark.parametrize("kind", ["adam", "lamb", "sgd"])
@pytest.mark.parametrize("name", list(core.MUTATIONS))
def test_mutation_between_steps(kind, name):
    core._check(kind, "triton", core._mutation(name, kind))


@pytest.mark.parametrize("clip", ["inplace", "fused"])
@pytest.mark.parametrize(
    "name", ["nothing", "grad wrong dtype", "grad None", "param .data same shape", "lr edited"]
)
def test_mutation_between_clipped_steps(clip, name):
    core._check("adam", "triton", core._mutation(name, "adam"), clip=clip)


def test_amsgrad_switched_on():
    assert core._check("adam", "triton", core._edit_group("amsgrad", True)) == ("ok",)


@pytest.mark.parametrize("kind", ["adam", "lamb"])
def test_many_warm_steps_bit_identical(kind):
    core.test_many_warm_steps_bit_identical("triton", kind)
