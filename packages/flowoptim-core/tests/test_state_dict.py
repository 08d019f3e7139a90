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


# ---------------------------------------------------------------- issue 10: refused loads
def assert_state_dict_equal(after, before):
    """Bitwise equality of two state dicts (tensors compared with torch.equal)."""
    assert after["param_groups"] == before["param_groups"]
    assert set(after["state"]) == set(before["state"])
    for k, v in before["state"].items():
        assert set(after["state"][k]) == set(v)
        for key, t in v.items():
            a = after["state"][k][key]
            assert a.dtype == t.dtype and a.shape == t.shape and torch.equal(a, t), (k, key)


def refused(opt, bad, match, exc=ValueError):
    """load_state_dict(bad) raises and leaves opt's state dict bitwise unchanged."""
    good = copy.deepcopy(opt.state_dict())
    with pytest.raises(exc, match=match) as info:
        opt.load_state_dict(bad)
    assert_state_dict_equal(opt.state_dict(), good)
    return str(info.value)


def test_sgd_state_dict_into_adam_is_refused():
    params = make_params()
    sgd = fo.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    run(sgd, params, 2)
    adam = fo.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.01)
    run(adam, adam.param_groups[0]["params"], 2)
    msg = refused(adam, sgd.state_dict(), "options of another algorithm")
    assert "param group 0" in msg and "momentum" in msg and "nesterov" in msg
    assert msg.startswith("Adam.load_state_dict")


def test_torch_adagrad_state_dict_into_sgd_is_refused():
    """The issue's case: lr became 0.5, Adagrad's options merged, the momentum buffer dropped."""
    params = make_params()
    tada = torch.optim.Adagrad(params, lr=0.5)
    run(tada, params, 1)
    sgd = fo.SGD([p.detach().clone().requires_grad_() for p in params], lr=0.1, momentum=0.9)
    run(sgd, sgd.param_groups[0]["params"], 2)
    msg = refused(sgd, tada.state_dict(), "options of another algorithm")
    assert "initial_accumulator_value" in msg and "lr_decay" in msg
    assert sgd.param_groups[0]["lr"] == 0.1


def test_torch_adamw_state_dict_into_adam_is_refused():
    params = make_params()
    tw = torch.optim.AdamW(params, lr=0.01)
    run(tw, params, 1)
    adam = fo.Adam([p.detach().clone().requires_grad_() for p in params], lr=0.01)
    refused(adam, tw.state_dict(), "decoupled_weight_decay=True")


def _adam_after_two_steps():
    params = make_params()
    opt = fo.Adam(params, lr=0.1)
    run(opt, params, 2)
    return opt, copy.deepcopy(opt.state_dict())


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("exp_avg", torch.zeros(()), "has shape () (expected its parameter's shape (7,)"),
        ("exp_avg", torch.zeros(7, dtype=torch.int64), "has dtype torch.int64"),
        ("exp_avg", torch.zeros(7, dtype=torch.complex64), "has dtype torch.complex64"),
        ("exp_avg", torch.zeros(7, dtype=torch.bool), "has dtype torch.bool"),
        ("exp_avg", [0.0] * 7, "is a list"),
        ("exp_avg_sq", torch.zeros(7, device="meta"), "meta tensor"),
        ("sum", torch.zeros(7), "unknown key 'sum'"),
        ("step", "three", "'step' is 'three'"),
    ],
    ids=["0-d", "int64", "complex", "bool", "list", "meta", "foreign-key", "bad-step"],
)
def test_bad_state_tensor_is_refused_naming_group_param_and_key(key, value, fragment):
    opt, good = _adam_after_two_steps()
    bad = copy.deepcopy(good)
    bad["state"][0][key] = value
    msg = refused(opt, bad, "state of param 0 of group 0")
    assert fragment in msg
    assert key in msg


def test_missing_exp_avg_sq_is_refused():
    opt, good = _adam_after_two_steps()
    bad = copy.deepcopy(good)
    del bad["state"][1]["exp_avg_sq"]
    msg = refused(opt, bad, r"state of param 1 of group 0: missing 'exp_avg_sq'")
    assert msg.startswith("Adam.load_state_dict")


def test_missing_lazily_created_state_is_accepted():
    """max_exp_avg_sq is what step() creates (zeros) when amsgrad is switched on later: a dict
    without it is usable, and loads (a missing exp_avg_sq is not: see above)."""
    opt, good = _adam_after_two_steps()
    sd = copy.deepcopy(good)
    sd["param_groups"][0]["amsgrad"] = True
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["amsgrad"] is True


def test_second_group_is_named():
    a, b, c = make_params(shapes=((2,), (3,), (4,)))
    opt = fo.RMSprop([{"params": [a]}, {"params": [b, c], "centered": True}], lr=0.01)
    run(opt, [a, b, c], 1)
    bad = copy.deepcopy(opt.state_dict())
    del bad["state"][2]["square_avg"]
    refused(opt, bad, r"state of param 1 of group 1: missing 'square_avg'")


def test_zero_d_momentum_buffer_for_a_shaped_sgd_param_is_refused():
    """Before: loaded, and the next step gave p = [0.755, 1.8, -21626862.0] (torch's fused
    kernel wrote past the 1-element buffer)."""
    p = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = fo.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.tensor([1.0, 1.0, 1.0])
    opt.step()
    bad = copy.deepcopy(opt.state_dict())
    bad["state"][0]["momentum_buffer"] = torch.tensor(0.5)
    refused(opt, bad, r"'momentum_buffer' has shape \(\) \(expected its parameter's shape \(3,\)")
    opt.step()  # the optimizer still works, with its own buffer
    torch.testing.assert_close(p.detach(), torch.tensor([0.71, 1.71, 2.71]))


def test_state_dict_without_state_is_refused():
    opt, good = _adam_after_two_steps()
    bad = {"param_groups": copy.deepcopy(good["param_groups"])}
    msg = refused(opt, bad, "has no 'state'")
    assert "'state' and 'param_groups'" in msg


def test_torch_sgd_none_momentum_buffer_means_no_buffer_yet():
    p = torch.ones(3, requires_grad=True)
    opt = fo.SGD([p], lr=0.1, momentum=0.9)
    sd = {
        "state": {0: {"momentum_buffer": None}},
        "param_groups": [{**torch.optim.SGD([p], lr=0.1, momentum=0.9).defaults, "params": [0]}],
    }
    opt.load_state_dict(sd)
    assert not opt.state[p]
    p.grad = torch.ones(3)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.9))


def test_unknown_user_keys_and_foreign_keys_already_in_the_group_are_kept():
    """Only another algorithm's options are refused; a key the group already had is not."""
    params = make_params()
    opt = fo.Adam([{"params": params, "name": "encoder", "momentum": 0.5}], lr=0.1)
    run(opt, params, 1)
    sd = copy.deepcopy(opt.state_dict())
    sd["param_groups"][0]["name"] = "decoder"
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["name"] == "decoder"


def test_torch_switches_of_the_same_algorithm_are_accepted_and_dropped():
    params = make_params()
    tadam = torch.optim.Adam(params, lr=0.01, foreach=False, maximize=True)
    run(tadam, params, 1)
    opt = fo.Adam([p.detach().clone().requires_grad_() for p in params])
    opt.load_state_dict(tadam.state_dict())
    group = opt.param_groups[0]
    assert group["maximize"] is True and group["lr"] == 0.01
    assert not {"foreach", "differentiable", "decoupled_weight_decay"} & set(group)
    # capturable is an option of every flowoptim optimizer (Note [torch.optim switches])
    assert group["capturable"] is False


# ---------------------------------------------------------------- issue 10: step() phases
def test_step_with_a_corrupt_state_in_the_second_group_changes_nothing():
    a, b = make_params(shapes=((3,), (4,)))
    opt = fo.Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
    run(opt, [a, b], 2)
    opt.state[b]["exp_avg"] = torch.zeros((), dtype=torch.int64)
    before_sd = copy.deepcopy(opt.state_dict())
    before_params = [a.detach().clone(), b.detach().clone()]
    set_grads([a, b], 5)
    with pytest.raises(ValueError, match=r"state 'exp_avg' of param 0 of group 1") as info:
        opt.step()
    assert "nothing was updated" in str(info.value)
    assert torch.equal(a.detach(), before_params[0]) and torch.equal(b.detach(), before_params[1])
    assert opt.global_step == 2
    assert_state_dict_equal(opt.state_dict(), before_sd)


@pytest.mark.parametrize(
    ("corrupt", "fragment"),
    [
        (lambda s: s.pop("exp_avg_sq"), "'exp_avg_sq' of param 0 of group 1 is missing"),
        (lambda s: s.update(exp_avg=torch.zeros(4, dtype=torch.float64)), "dtype torch.float64"),
        (lambda s: s.update(exp_avg=torch.zeros(2, 2)), "shape (2, 2)"),
        (lambda s: s.update(exp_avg=[0.0] * 4), "is a list"),
    ],
    ids=["missing", "dtype", "shape", "list"],
)
def test_step_checks_state_before_updating(corrupt, fragment):
    a, b = make_params(shapes=((3,), (4,)))
    opt = fo.LAMB([{"params": [a]}, {"params": [b]}], lr=0.1)
    run(opt, [a, b], 1)
    corrupt(opt.state[b])
    before = a.detach().clone()
    set_grads([a, b], 3)
    with pytest.raises(ValueError) as info:
        opt.step()
    assert fragment in str(info.value)
    assert torch.equal(a.detach(), before) and opt.global_step == 1


def test_amsgrad_switched_on_after_steps_still_creates_its_state():
    params = make_params()
    opt = fo.Adam(params, lr=0.1)
    run(opt, params, 1)
    opt.param_groups[0]["amsgrad"] = True
    run(opt, params, 1, seed0=1)
    assert all("max_exp_avg_sq" in opt.state[p] for p in params)


# ---------------------------------------------------------------- issue 10: hooks
def test_load_state_dict_hooks_fire_as_in_torch():
    params = make_params()
    opt = fo.Adam(params, lr=0.1)
    run(opt, params, 1)
    sd = opt.state_dict()
    calls = []

    def pre(optimizer, state_dict):
        calls.append(("pre", optimizer is opt, state_dict is not sd))
        new = copy.deepcopy(state_dict)
        new["param_groups"][0]["lr"] = 0.25
        return new

    def post(optimizer):
        calls.append(("post", optimizer.param_groups[0]["lr"]))

    h1 = opt.register_load_state_dict_pre_hook(pre)
    h2 = opt.register_load_state_dict_post_hook(post)
    opt.load_state_dict(sd)
    assert calls == [("pre", True, True), ("post", 0.25)]
    assert sd["param_groups"][0]["lr"] == 0.1  # the caller's dict is not modified
    h1.remove()
    h2.remove()
    opt.load_state_dict(sd)
    assert len(calls) == 2 and opt.param_groups[0]["lr"] == 0.1


def test_load_post_hook_does_not_fire_on_a_refused_load():
    opt, good = _adam_after_two_steps()
    fired = []
    opt.register_load_state_dict_post_hook(lambda o: fired.append(o))
    bad = copy.deepcopy(good)
    bad["state"][0]["exp_avg"] = torch.zeros(())
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    assert fired == []


def test_state_dict_hooks_fire_as_in_torch():
    params = make_params()
    opt = fo.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, 1)
    calls = []
    opt.register_state_dict_pre_hook(lambda o: calls.append("pre"))

    def post(o, sd):
        calls.append("post")
        sd["extra"] = 1
        return sd

    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert calls == ["pre", "post"] and sd["extra"] == 1
    assert isinstance(sd["state"][0]["step"], torch.Tensor)
    assert sd["state"][0]["step"] is not opt.state[params[0]]["step"]


def _copied(opt, how: str):
    """``copy.deepcopy(opt)``, or a pickle round trip through torch.save/torch.load."""
    if how == "deepcopy":
        return copy.deepcopy(opt)
    buf = io.BytesIO()
    torch.save(opt, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# ---------------------------------------------------------------- issue 10: deepcopy, pickle
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize(
    "backend",
    ["reference", "flowoptim.backends.reference:ReferenceBackend", "instance"],
)
def test_explicit_backend_survives_copies(how, backend):
    from flowoptim.backends.reference import ReferenceBackend

    class Unpicklable(ReferenceBackend):
        name = "reference"  # a local class: pickle cannot find it; re-resolved by name

    chosen = Unpicklable() if backend == "instance" else backend
    params = make_params()
    opt = fo.Adam(params, lr=0.1, backend=chosen)
    run(opt, params, 1)
    twin = _copied(opt, how)
    assert twin._explicit_backend is not None
    assert twin._explicit_backend.name == "reference"
    assert twin._backend_for(torch.device("cpu")) is twin._explicit_backend
    assert twin.global_step == 1
    twin_params = twin.param_groups[0]["params"]
    run(opt, params, 1, seed0=1)
    run(twin, twin_params, 1, seed0=1)
    for a, b in zip(params, twin_params):
        assert torch.equal(a.detach(), b.detach())


def test_registered_backend_instance_survives_deepcopy_as_itself(monkeypatch):
    from flowoptim import backends
    from flowoptim.backends.reference import ReferenceBackend

    class Named(ReferenceBackend):
        name = "issue10-named"

    inst = backends.register(Named)
    opt = fo.SGD(make_params(), backend=inst)
    assert copy.deepcopy(opt)._explicit_backend is inst


def test_environment_backend_survives_pickle(monkeypatch):
    monkeypatch.setenv("FLOWOPTIM_BACKEND", "reference")
    opt = fo.SGD(make_params())
    monkeypatch.delenv("FLOWOPTIM_BACKEND")
    twin = _copied(opt, "pickle")
    assert twin._explicit_backend is not None and twin._explicit_backend.name == "reference"


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_between_fused_clip_and_step_keeps_the_pending_clip(how):
    params = make_params()
    opt = fo.SGD([{"params": params, "clip_grad_max_norm": 0.3}], lr=0.1, momentum=0.9)
    set_grads(params, 0)
    opt.clip_grad(fused=True)
    twin = _copied(opt, how)
    twin_params = twin.param_groups[0]["params"]
    for a, b in zip(params, twin_params):
        if how == "pickle":  # pickling a tensor drops its .grad
            b.grad = a.grad.clone()
        assert torch.equal(a.grad, b.grad)
    unclipped = [p.detach() - 0.1 * p.grad for p in params]
    opt.step()
    twin.step()  # clip_grad() ran before the copy: no warning, and the coefficient applies
    for a, b, u in zip(params, twin_params, unclipped):
        assert torch.equal(a.detach(), b.detach())
        assert not torch.equal(b.detach(), u)  # the pending coefficient was applied


def test_old_pickles_get_maximize_false():
    opt = fo.Adam(make_params())
    state = opt.__getstate__()
    state.pop("_backend_ref")
    del state["defaults"]["maximize"]
    for g in state["param_groups"]:
        del g["maximize"]
    old = fo.Adam.__new__(fo.Adam)
    old.__setstate__(state)
    assert old.defaults["maximize"] is False and old.param_groups[0]["maximize"] is False
    assert old._explicit_backend is None


def test_step_rechecks_state_when_the_param_or_its_state_changes():
    """The state check cache (Note [state check cache]) never hides a change."""
    a = torch.ones(4, requires_grad=True)
    opt = fo.Adam([a], lr=0.1)
    for _ in range(2):
        a.grad = torch.ones(4)
        opt.step()
    # offloading state by replacing it with an equal tensor is fine
    opt.state[a]["exp_avg"] = opt.state[a]["exp_avg"].clone()
    opt.step()
    with torch.no_grad():
        a.data = torch.ones(6)  # the parameter changed shape under the optimizer
    a.grad = torch.ones(6)
    before = a.detach().clone()
    with pytest.raises(ValueError, match=r"'exp_avg' of param 0 of group 0 has shape \(4,\)"):
        opt.step()
    assert torch.equal(a.detach(), before) and opt.global_step == 3


def test_own_state_dict_saved_after_switching_amsgrad_on_loads():
    """max_exp_avg_sq is created by the first step after amsgrad is switched on; a state dict
    saved in between lacks it and must still load (and step like the original)."""
    import flowoptim

    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = flowoptim.Adam([p], lr=0.1)
    p.grad = torch.tensor([0.5, 0.25])
    opt.step()
    opt.param_groups[0]["amsgrad"] = True
    sd = opt.state_dict()
    assert "max_exp_avg_sq" not in sd["state"][0]
    q = torch.nn.Parameter(p.detach().clone())
    other = flowoptim.Adam([q], lr=0.1)
    other.load_state_dict(sd)
    p.grad = torch.tensor([-0.5, 1.0])
    q.grad = p.grad.clone()
    opt.step()
    other.step()
    assert torch.equal(p, q)
    assert torch.equal(opt.state[p]["max_exp_avg_sq"], other.state[q]["max_exp_avg_sq"])
