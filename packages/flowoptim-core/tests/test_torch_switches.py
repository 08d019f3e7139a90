"""torch.optim's keyword arguments and named parameters (issue 11; Note [torch.optim switches])."""

from __future__ import annotations

import pytest
import torch

import flowoptim as fo

ALL = [fo.SGD, fo.Adam, fo.AdamW, fo.LAMB, fo.RMSprop, fo.Adagrad, fo.Adadelta]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def _run(opt, model, steps=2):
    torch.manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(5, 3)).square().sum().backward()
        opt.step()


@pytest.mark.parametrize("cls", ALL)
def test_foreach_and_fused_are_accepted_and_change_no_number(cls):
    a, b = _model(), _model()
    _run(cls(a.parameters()), a)
    _run(cls(b.parameters(), foreach=True, fused=False), b)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("cls", ALL)
def test_capturable_is_a_group_option(cls):
    opt = cls(_model().parameters(), capturable=True)
    assert opt.defaults["capturable"] is True
    assert opt.param_groups[0]["capturable"] is True
    assert cls(_model().parameters()).param_groups[0]["capturable"] is False


@pytest.mark.parametrize("cls", ALL)
def test_differentiable_true_is_not_implemented(cls):
    with pytest.raises(NotImplementedError, match=rf"^{cls.__name__}\(differentiable=True\)"):
        cls(_model().parameters(), differentiable=True)
    cls(_model().parameters(), differentiable=False)  # torch's default is accepted


@pytest.mark.parametrize("key", ["foreach", "fused", "capturable", "differentiable"])
def test_switch_values_are_checked(key):
    with pytest.raises(TypeError, match=rf"^Adagrad: invalid {key} value 'yes'"):
        fo.Adagrad(_model().parameters(), **{key: "yes"})


def test_timm_style_factory_call():
    # what timm's create_optimizer_v2(model, opt, foreach=True) passes to an optimizer class:
    # param groups, weight_decay=0. and foreach (momentum for optimizers that take it)
    model = _model()
    groups = [
        {"params": [model[0].weight, model[1].weight], "weight_decay": 0.01},
        {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0},
    ]
    opt = fo.AdamW(groups, weight_decay=0.0, lr=1e-3, foreach=True)
    _run(opt, model, 1)
    sgd = fo.SGD(_model().parameters(), weight_decay=0.0, lr=0.1, momentum=0.9, foreach=True)
    assert sgd.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("cls", [fo.AdamW, fo.SGD])
def test_named_parameters_as_torch(cls):
    model = _model()
    opt = cls(model.named_parameters(), lr=0.01)
    names = [n for n, _ in model.named_parameters()]
    assert opt.param_groups[0]["param_names"] == names
    assert opt.param_groups[0]["params"] == list(model.parameters())
    _run(opt, model, 1)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["param_names"] == names
    # the same layout as torch.optim's (torch >= 2.5 keeps the names in the groups)
    twin = _model()
    ref = getattr(torch.optim, cls.__name__)(twin.named_parameters(), lr=0.01)
    assert ref.state_dict()["param_groups"][0]["param_names"] == names
    # a round trip keeps the names
    again = cls(_model().named_parameters(), lr=0.01)
    again.load_state_dict(sd)
    assert again.param_groups[0]["param_names"] == names


def test_named_parameters_in_groups():
    model = _model()
    opt = fo.Adam(
        [
            {"params": list(model[0].named_parameters()), "lr": 0.1},
            {"params": list(model[1].named_parameters())},
        ]
    )
    assert [g["param_names"] for g in opt.param_groups] == [["weight", "bias"]] * 2
    _run(opt, model, 1)


def test_named_and_unnamed_cannot_mix():
    model = _model()
    with pytest.raises(ValueError, match="mixes named parameters"):
        fo.Adam([("w", model[0].weight), model[0].bias])
    opt = fo.Adam(list(model[0].named_parameters()))
    with pytest.raises(ValueError, match="should be with/without names"):
        opt.add_param_group({"params": list(model[1].parameters())})
    with pytest.raises(TypeError, match="expected a \\(name, tensor\\) pair"):
        fo.Adam([("w", model[1].weight, 3)])
