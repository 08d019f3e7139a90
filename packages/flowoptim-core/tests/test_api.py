"""The Optimizer API: closure, zero_grad, add_param_group, backend choice (spec §1, §7)."""

from __future__ import annotations

import math

import pytest
import torch
from core_helpers import ALL_OPTIMIZERS, make_params, set_grads

import flowoptim as fo
from flowoptim import backends
from flowoptim.backends.reference import ReferenceBackend


def test_public_names_subclass_torch_optimizer():
    for cls in (fo.SGD, fo.Adam, fo.AdamW, fo.LAMB, fo.RMSprop, fo.Adagrad, fo.Adadelta):
        assert issubclass(cls, fo.Optimizer)
        assert issubclass(cls, torch.optim.Optimizer)


def test_defaults_follow_the_spec():
    p = [torch.zeros(1, requires_grad=True)]
    assert fo.SGD(p).defaults["lr"] == 1e-3
    assert fo.Adam(p).defaults["betas"] == (0.9, 0.999)
    assert fo.Adam(p).defaults["do_bias_correction"] is True
    assert fo.AdamW(p).defaults["weight_decay"] == 0.0
    assert fo.LAMB(p).defaults["adam_w_mode"] is True
    assert fo.RMSprop(p).defaults["alpha"] == 0.99
    assert fo.Adagrad(p).defaults["eps"] == 1e-10
    assert fo.Adadelta(p).defaults["lr"] == 1.0
    assert fo.Adadelta(p).defaults["rho"] == 0.9
    assert fo.Adam(p, fused=True).defaults["fused"] is True  # accepted for OneFlow code


def test_closure_runs_with_grad_enabled_and_its_result_is_returned():
    w = torch.tensor([2.0], requires_grad=True)
    opt = fo.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()  # would fail under no_grad (OneFlow's behaviour)
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    assert w.item() == pytest.approx(2.0 - 0.1 * 4.0)
    assert opt.step() is None


def test_zero_grad_in_place_by_default():
    w = torch.ones(3, requires_grad=True)
    opt = fo.Adam([w])
    w.grad = torch.ones(3)
    grad = w.grad
    opt.zero_grad()
    assert w.grad is grad
    torch.testing.assert_close(w.grad, torch.zeros(3), rtol=0, atol=0)


def test_zero_grad_set_to_none():
    w = torch.ones(3, requires_grad=True)
    opt = fo.Adam([w])
    w.grad = torch.ones(3)
    opt.zero_grad(set_to_none=True)
    assert w.grad is None


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_add_param_group_then_step(name):
    first = make_params(shapes=((3,),))
    opt = ALL_OPTIMIZERS[name](first)
    set_grads(first, 0)
    opt.step()
    late = make_params(seed=5, shapes=((2, 2),))
    before = late[0].detach().clone()
    opt.add_param_group({"params": late, "lr": 0.05})
    assert opt.param_groups[1]["lr"] == 0.05
    assert opt.param_groups[1]["step"] == 1  # the optimizer-wide counter
    set_grads(first + late, 1)
    opt.step()
    assert not torch.equal(late[0].detach(), before)
    assert opt.state[late[0]]["step"].item() == 2


def test_adagrad_sum_starts_at_initial_accumulator_value():
    w = torch.zeros(2, requires_grad=True)
    opt = fo.Adagrad([w], lr=1.0, initial_accumulator_value=3.0)
    w.grad = torch.tensor([1.0, 0.0])
    opt.step()
    torch.testing.assert_close(opt.state[w]["sum"], torch.tensor([4.0, 3.0]))
    assert w[0].item() == pytest.approx(-1.0 / (2.0 + 1e-10))


def test_param_without_grad_is_untouched():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = fo.LAMB([a, b], lr=0.1, weight_decay=0.5)
    a.grad = torch.ones(2)
    opt.step()
    torch.testing.assert_close(b.detach(), torch.ones(2), rtol=0, atol=0)
    assert b not in opt.state or not opt.state[b]


def test_backend_argument_and_environment(monkeypatch):
    w = [torch.zeros(1, requires_grad=True)]
    assert fo.SGD(w, backend="reference")._backend_for(torch.device("cpu")).name == "reference"
    with pytest.raises(backends.BackendError, match="unknown flowoptim backend 'nope'") as info:
        fo.SGD(w, backend="nope")
    assert "reference" in str(info.value)  # lists the installed ones
    monkeypatch.setenv("FLOWOPTIM_BACKEND", "nope")
    with pytest.raises(backends.BackendError, match="'nope'"):
        fo.SGD(w)
    monkeypatch.setenv("FLOWOPTIM_BACKEND", "reference")
    assert fo.SGD(w)._explicit_backend.name == "reference"


def test_backend_by_module_attribute_and_instance():
    w = [torch.zeros(1, requires_grad=True)]
    opt = fo.SGD(w, backend="flowoptim.backends.reference:ReferenceBackend")
    assert isinstance(opt._explicit_backend, ReferenceBackend)
    custom = ReferenceBackend()
    assert fo.SGD(w, backend=custom)._explicit_backend is custom
    with pytest.raises(backends.BackendError, match="cannot load backend"):
        fo.SGD(w, backend="no.such.module:Thing")
    with pytest.raises(TypeError, match="backend must be"):
        fo.SGD(w, backend=42)


def test_registry_lists_reference():
    assert backends.available()["reference"] is True
    assert backends.get("reference").name == "reference"


def test_automatic_choice_is_reference_on_cpu():
    assert backends.resolve(torch.device("cpu")).name == "reference"


class _Unavailable(ReferenceBackend):
    name = "unavailable"

    def is_available(self):
        return False


def test_unavailable_backend_named_explicitly_is_an_error():
    backends.register(_Unavailable)
    with pytest.raises(backends.BackendError, match="not available") as info:
        fo.SGD([torch.zeros(1, requires_grad=True)], backend="unavailable")
    assert "reference" in str(info.value)


class _CountingBackend(ReferenceBackend):
    name = "counting"

    def __init__(self):
        self.calls = []

    def adam(self, params, grads, *states, **kw):
        self.calls.append((len(params), params[0].dtype, kw["step"]))
        return super().adam(params, grads, *states, **kw)


def test_backend_is_called_once_per_device_dtype_partition():
    backend = _CountingBackend()
    a32, b32 = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
    c64 = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = fo.Adam([a32, c64, b32], backend=backend)
    for p in (a32, b32, c64):
        p.grad = torch.ones_like(p)
    opt.step()
    assert sorted(backend.calls, key=str) == sorted(
        [(2, torch.float32, 1), (1, torch.float64, 1)], key=str
    )


# ---------------------------------------------------------------- issue 10: maximize
MAXIMIZE_MAKERS = {
    "sgd": lambda ps, **kw: fo.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, **kw),
    "adam": lambda ps, **kw: fo.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True, **kw),
    "adamw": lambda ps, **kw: fo.AdamW(ps, lr=0.01, weight_decay=0.1, **kw),
    "lamb": lambda ps, **kw: fo.LAMB(ps, lr=0.01, weight_decay=0.1, adam_w_mode=False, **kw),
    "rmsprop": lambda ps, **kw: fo.RMSprop(ps, lr=0.01, momentum=0.5, centered=True, **kw),
    "adagrad": lambda ps, **kw: fo.Adagrad(ps, lr=0.1, weight_decay=0.1, **kw),
    "adadelta": lambda ps, **kw: fo.Adadelta(ps, lr=1.0, weight_decay=0.1, **kw),
}


@pytest.mark.parametrize("name", sorted(MAXIMIZE_MAKERS))
def test_maximize_equals_minimizing_the_negated_gradient(name):
    """Spec §1.9: g is negated before anything else (weight decay after)."""
    make = MAXIMIZE_MAKERS[name]
    up, down = make_params(), make_params()
    o_up, o_down = make(up, maximize=True), make(down)
    assert o_up.defaults["maximize"] is True and o_up.param_groups[0]["maximize"] is True
    assert o_down.param_groups[0]["maximize"] is False
    for s in range(3):
        set_grads(up, s)
        set_grads(down, s)
        for p in down:
            p.grad = -p.grad
        raw = [p.grad.clone() for p in up]
        o_up.step()
        o_down.step()
        for p, g in zip(up, raw):
            assert torch.equal(p.grad, g)  # the gradient itself is never modified
        for a, b in zip(up, down):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_adadelta_takes_maximize_positionally_as_oneflow():
    opt = fo.Adadelta([torch.zeros(1, requires_grad=True)], 1.0, 0.9, 1e-6, 0.0, True)
    assert opt.defaults["maximize"] is True


class _MaximizeSpy(ReferenceBackend):
    name = "maximize-spy"

    def __init__(self):
        super().__init__()
        self.seen = []

    def __getattribute__(self, attr):
        value = super().__getattribute__(attr)
        if attr in ("sgd", "adam", "lamb", "rmsprop", "adagrad", "adadelta"):
            seen = super().__getattribute__("seen")

            def spy(*args, **kw):
                seen.append((attr, kw["maximize"]))
                return value(*args, **kw)

            return spy
        return value


@pytest.mark.parametrize("name", sorted(MAXIMIZE_MAKERS))
def test_maximize_of_each_group_reaches_the_backend(name):
    spy = _MaximizeSpy()
    a, b = make_params(shapes=((3,), (2,)))
    opt = MAXIMIZE_MAKERS[name]([{"params": [a]}, {"params": [b], "maximize": True}], backend=spy)
    set_grads([a, b], 0)
    opt.step()
    assert [m for _, m in spy.seen] == [False, True]


# ---------------------------------------------------------------- issue 10: weight_decay == 0
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta"])
def test_zero_weight_decay_adds_nothing_for_non_finite_params(name):
    """Spec §1.6: 0 * inf is NaN; with weight_decay == 0 the term is skipped."""
    make = {
        "sgd": lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9),
        "adam": lambda ps: fo.Adam(ps, lr=0.1),
        "adamw": lambda ps: fo.AdamW(ps, lr=0.1),
        "rmsprop": lambda ps: fo.RMSprop(ps, lr=0.1),
        "adagrad": lambda ps: fo.Adagrad(ps, lr=0.1),
        "adadelta": lambda ps: fo.Adadelta(ps),
    }[name]
    odd = torch.tensor([math.inf, -math.inf, 1.0], requires_grad=True)
    plain = torch.tensor([1.0], requires_grad=True)
    o1, o2 = make([odd]), make([plain])
    for g in (0.5, -0.25):
        odd.grad = torch.full((3,), g)
        plain.grad = torch.full((1,), g)
        o1.step()
        o2.step()
    assert odd[0].item() == math.inf and odd[1].item() == -math.inf
    assert torch.equal(odd.detach()[2:], plain.detach())
    for key, t in o1.state[odd].items():
        if key != "step":
            assert not t.isnan().any(), key
