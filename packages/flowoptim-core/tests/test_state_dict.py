"""State dicts (spec §4): torch's layout, round trips, torch.optim and OneFlow layouts."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from core_helpers import ALL_OPTIMIZERS, make_params, set_grads

import flowoptim as fo


def run(opt, params, steps, seed0=0):
    for s in range(steps):
        set_grads(params, seed0 + s)
        opt.step()


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_round_trip_continues_bit_identically(name):
    make = ALL_OPTIMIZERS[name]
    params = make_params()
    opt = make(params)
    run(opt, params, 3)
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    run(opt, params, 3, seed0=3)  # the original continues

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    params2 = [t.clone().requires_grad_() for t in saved["params"]]
    opt2 = make(params2)
    opt2.load_state_dict(saved["opt"])
    assert opt2.global_step == 3
    run(opt2, params2, 3, seed0=3)
    for a, b in zip(params, params2):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_state_dict_layout_matches_torch():
    params = make_params()
    opt = fo.Adam(params, lr=0.1, amsgrad=True)
    run(opt, params, 2)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    assert sd["param_groups"][0]["step"] == 2
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    step = sd["state"][0]["step"]
    assert isinstance(step, torch.Tensor) and step.dtype == torch.float32 and step.item() == 2


def test_loaded_state_is_not_aliased_with_the_state_dict():
    params = make_params()
    opt = fo.Adam(params, lr=0.1)
    run(opt, params, 1)
    sd = opt.state_dict()
    opt2 = fo.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.1)
    opt2.load_state_dict(sd)
    before = sd["state"][0]["exp_avg"].clone()
    run(opt2, opt2.param_groups[0]["params"], 1)
    torch.testing.assert_close(sd["state"][0]["exp_avg"], before, rtol=0, atol=0)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda sd: sd["param_groups"].append(copy.deepcopy(sd["param_groups"][0])),
        lambda sd: sd["param_groups"][0]["params"].pop(),
        lambda sd: sd["param_groups"][0].update(betas=(0.9, 1.5)),
        lambda sd: sd["state"].update({17: {"exp_avg": torch.zeros(1)}}),
        lambda sd: sd["state"][0].update(exp_avg=torch.zeros(99)),
        lambda sd: sd.pop("param_groups"),
    ],
    ids=["group-count", "group-size", "bad-hyperparameter", "unknown-id", "bad-shape", "no-groups"],
)
def test_failed_load_leaves_optimizer_unchanged(mutate):
    params = make_params()
    opt = fo.Adam(params, lr=0.1)
    run(opt, params, 2)
    good = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(good)
    mutate(bad)
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    after = opt.state_dict()
    assert after["param_groups"] == good["param_groups"]
    for k, v in good["state"].items():
        for key, t in v.items():
            torch.testing.assert_close(after["state"][k][key], t, rtol=0, atol=0)


TORCH_PAIRS = {
    "adam": (
        lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
        lambda ps: fo.Adam(ps, lr=0.01, weight_decay=0.1),
    ),
    "adam-amsgrad": (
        lambda ps: torch.optim.Adam(ps, lr=0.01, amsgrad=True),
        lambda ps: fo.Adam(ps, lr=0.01, amsgrad=True),
    ),
    "adamw": (
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
        lambda ps: fo.AdamW(ps, lr=0.01, weight_decay=0.1),
    ),
    "sgd": (
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    ),
    "adagrad": (
        lambda ps: torch.optim.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
        lambda ps: fo.Adagrad(ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
    ),
}
# torch.optim and flowoptim agree on these algorithms when every parameter gets a gradient at
# every step; they differ only in float32 hyperparameter rounding (~1 ulp per step), so the
# trajectories agree to a few float32 ulps after several steps.
EXCHANGE_TOL = {"rtol": 2e-6, "atol": 2e-6}


@pytest.mark.parametrize("name", sorted(TORCH_PAIRS))
@pytest.mark.parametrize("direction", ["torch->flowoptim", "flowoptim->torch"])
def test_state_exchange_with_torch_optim(name, direction):
    make_torch, make_fo = TORCH_PAIRS[name]
    first, second = (
        (make_torch, make_fo) if direction == "torch->flowoptim" else (make_fo, make_torch)
    )
    params = make_params()
    opt = first(params)
    run(opt, params, 3)
    sd = copy.deepcopy(opt.state_dict())
    snapshot = [p.detach().clone() for p in params]
    run(opt, params, 3, seed0=3)  # continue with the first implementation

    params2 = [t.clone().requires_grad_() for t in snapshot]
    opt2 = second(params2)
    opt2.load_state_dict(sd)
    run(opt2, params2, 3, seed0=3)
    for a, b in zip(params, params2):
        torch.testing.assert_close(b, a, **EXCHANGE_TOL)
    if isinstance(opt2, fo.Optimizer) and name != "sgd":
        # torch.optim.SGD records no step; the others' per-parameter steps give it back
        assert opt2.global_step == 6


def test_torch_state_gives_global_step_from_per_parameter_steps():
    params = make_params()
    topt = torch.optim.Adam(params, lr=0.1)
    run(topt, params, 4)
    opt = fo.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.1)
    opt.load_state_dict(topt.state_dict())
    assert opt.global_step == 4
    assert opt.param_groups[0]["do_bias_correction"] is True  # kept: torch's dict lacks it


def test_oneflow_layout_is_accepted():
    params = make_params(shapes=((3,),))
    ours = fo.SGD(params, lr=0.1, momentum=0.9)
    run(ours, params, 2)
    buf = ours.state[params[0]]["momentum_buffer"].clone()
    oneflow_sd = {
        "state": {"step": 2, 0: {"momentum_buf": buf.clone()}},
        "param_groups": [
            {
                "_options": {
                    "lr": 0.1,
                    "momentum": 0.9,
                    "dampening": 0.0,
                    "weight_decay": 0.0,
                    "nesterov": False,
                    "maximize": False,
                },
                "params": [0],
            }
        ],
    }
    params2 = [params[0].detach().clone().requires_grad_()]
    opt = fo.SGD(params2, lr=0.5)
    opt.load_state_dict(oneflow_sd)
    assert opt.global_step == 2
    assert opt.param_groups[0]["lr"] == 0.1
    torch.testing.assert_close(opt.state[params2[0]]["momentum_buffer"], buf, rtol=0, atol=0)
    assert opt.state[params2[0]]["step"].item() == 2
    run(ours, params, 1, seed0=7)
    run(opt, params2, 1, seed0=7)
    torch.testing.assert_close(params2[0], params[0], rtol=0, atol=0)


def test_state_is_cast_to_the_parameter_dtype():
    p32 = make_params(shapes=((4,),))
    opt = fo.Adam(p32, lr=0.1)
    run(opt, p32, 1)
    sd = opt.state_dict()
    p64 = [p32[0].detach().double().requires_grad_()]
    opt64 = fo.Adam(p64, lr=0.1)
    opt64.load_state_dict(sd)
    assert opt64.state[p64[0]]["exp_avg"].dtype == torch.float64
    assert opt64.state[p64[0]]["step"].dtype == torch.float32
