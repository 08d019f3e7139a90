"""Note [autotuning]: tuning never applies an in-place update twice; hyperparameters are runtime."""

from __future__ import annotations

import inspect

import pytest
import torch
import triton
from triton_helpers import OPTIONS, call, clone_all, make_states, randn

from flowoptim_triton import autotune_configs as cfgs
from flowoptim_triton import kernels
from flowoptim_triton.backend import TritonBackend
from flowoptim_triton.launch import Tuner

TWO_CONFIGS = [
    triton.Config({"BLOCK": 256}, num_warps=4),
    triton.Config({"BLOCK": 1024}, num_warps=4),
]


@pytest.mark.parametrize("algo", list(OPTIONS))
def test_first_tuned_step_equals_untuned_step(algo):
    opts = OPTIONS[algo][1]
    sizes = [7, 1025, 3000]
    params = [randn(n, torch.float32, seed=i) for i, n in enumerate(sizes)]
    grads = [randn(n, torch.float32, seed=10 + i) for i, n in enumerate(sizes)]
    states = make_states(algo, opts, params)
    p2, s2 = [p.clone() for p in params], clone_all(states)
    tuned = TritonBackend(configs=TWO_CONFIGS)
    untuned = TritonBackend(configs=TWO_CONFIGS[1:])
    call(tuned, algo, opts, params, grads, states, step=1, lr=0.1)
    call(untuned, algo, opts, p2, [g.clone() for g in grads], s2, step=1, lr=0.1)
    assert tuned.engine.tuner.benchmarked >= 2  # both configs really ran (on scratch copies)
    assert untuned.engine.tuner.benchmarked == 0
    for a, e in zip(params, p2, strict=True):
        assert torch.equal(a, e)
    for sa, se in zip(states, s2, strict=True):
        if se is not None:
            for a, e in zip(sa, se, strict=True):
                assert torch.equal(a, e)
    # the choice is cached: a second step benchmarks nothing more
    n = tuned.engine.tuner.benchmarked
    call(tuned, algo, opts, params, grads, states, step=2, lr=0.05)
    assert tuned.engine.tuner.benchmarked == n


def test_tuned_scale_applies_once():
    g = randn(3000, torch.float32, seed=3)
    expected = g * 0.5
    TritonBackend(configs=TWO_CONFIGS).scale_([g], torch.tensor(0.5))
    assert torch.equal(g, expected)


HYPER = {"lr", "momentum", "one_minus_dampening", "wd", "beta1", "one_minus_beta1", "beta2",
         "one_minus_beta2", "step_size", "sqrt_bc2", "eps", "lr_wd", "bc1", "alpha",
         "one_minus_alpha", "clr", "rho", "one_minus_rho", "norm_p", "CHUNK"}  # fmt: skip


def test_hyperparameters_are_runtime_arguments():
    """Changing lr (a scheduler) never recompiles: no hyperparameter is a constexpr."""
    for name in dir(kernels):
        k = getattr(kernels, name)
        fn = getattr(k, "fn", None)
        if fn is None or not name.endswith("_kernel"):
            continue
        for pname, param in inspect.signature(fn).parameters.items():
            is_constexpr = "constexpr" in str(param.annotation)
            assert not (is_constexpr and pname in HYPER), f"{name}.{pname} is a constexpr"
            if is_constexpr:
                assert pname.isupper(), f"{name}.{pname}: constexprs are structural switches"


def test_tuning_space_rule():
    """Note [tuning space]: 8 elements per thread (4 for float64), at most 8 warps; the
    reductions keep one BLOCK for every dtype (the interpreted sums do not depend on it)."""
    for itemsize, per_thread in ((4, 8), (2, 8), (8, 4)):
        for c in cfgs.elementwise_configs(itemsize):
            assert c.kwargs["BLOCK"] == per_thread * 32 * c.num_warps
            assert c.num_warps <= 8
            assert c.maxnreg == cfgs.MAXNREG
    blocks = {cfgs.reduction_config(n).kwargs["BLOCK"] for n in (2, 4, 8)}
    assert blocks == {cfgs.REDUCTION_CONFIG.kwargs["BLOCK"]}


def test_tuner_candidates_per_element_size():
    t = Tuner(cfgs.elementwise_configs)
    assert t.candidates(8) == cfgs.ELEMENTWISE_CONFIGS_FP64
    assert t.candidates(2) == t.candidates(4) == cfgs.ELEMENTWISE_CONFIGS
    assert Tuner(TWO_CONFIGS).candidates(8) == list(TWO_CONFIGS)
