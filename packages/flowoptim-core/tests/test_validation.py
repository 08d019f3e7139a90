"""Bad input (spec §1.3, §1.7): every rule raises, names the value, and changes nothing."""

from __future__ import annotations

import math

import pytest
import torch

import flowoptim as fo


def p():
    return torch.zeros(2, requires_grad=True)


# (optimizer, kwargs, exception, fragment the message must contain)
BAD_HYPERPARAMETERS = [
    (fo.SGD, {"lr": -0.1}, ValueError, "lr value: -0.1"),
    (fo.Adam, {"lr": -1e-3}, ValueError, "lr value: -0.001"),
    (fo.Adam, {"lr": math.nan}, ValueError, "lr value: nan"),
    (fo.Adam, {"eps": -1e-8}, ValueError, "eps value: -1e-08"),
    (fo.Adam, {"betas": (1.5, 0.999)}, ValueError, "beta parameter at index 0: 1.5"),
    (fo.AdamW, {"betas": (0.9, 1.0)}, ValueError, "beta parameter at index 1: 1.0"),
    (fo.LAMB, {"betas": (-0.1, 0.999)}, ValueError, "beta parameter at index 0: -0.1"),
    (fo.Adam, {"betas": (0.9,)}, ValueError, "betas"),
    (fo.Adam, {"weight_decay": -0.1}, ValueError, "weight_decay value: -0.1"),
    (fo.LAMB, {"weight_decay": -1}, ValueError, "weight_decay value: -1"),
    (fo.SGD, {"momentum": -0.5}, ValueError, "momentum value: -0.5"),
    (fo.RMSprop, {"momentum": -0.5}, ValueError, "momentum value: -0.5"),
    (fo.RMSprop, {"alpha": -0.1}, ValueError, "alpha value: -0.1"),
    (fo.RMSprop, {"eps": -1.0}, ValueError, "eps value: -1.0"),
    (fo.Adagrad, {"initial_accumulator_value": -1.0}, ValueError, "initial_accumulator_value"),
    (fo.Adagrad, {"lr_decay": -0.1}, ValueError, "lr_decay value: -0.1"),
    (fo.Adadelta, {"rho": 1.5}, ValueError, "rho value: 1.5"),
    (fo.Adadelta, {"rho": -0.1}, ValueError, "rho value: -0.1"),
    (fo.SGD, {"dampening": 1.5}, ValueError, "dampening value: 1.5"),
    (fo.SGD, {"dampening": -0.1}, ValueError, "dampening value: -0.1"),
    (fo.SGD, {"nesterov": True}, ValueError, "momentum=0.0"),
    (fo.SGD, {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError, "dampening=0.1"),
    (fo.SGD, {"lr": "0.1"}, TypeError, "'0.1'"),
    (fo.Adam, {"amsgrad": "yes"}, TypeError, "'yes'"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "exc", "fragment"),
    BAD_HYPERPARAMETERS,
    ids=[f"{c.__name__}-{'-'.join(k)}-{i}" for i, (c, k, _, _) in enumerate(BAD_HYPERPARAMETERS)],
)
def test_bad_hyperparameter(cls, kwargs, exc, fragment):
    with pytest.raises(exc, match=r"Invalid|requires") as info:
        cls([p()], **kwargs)
    assert fragment in str(info.value)


def test_error_message_format():
    with pytest.raises(ValueError) as info:
        fo.Adam([p()], betas=(1.5, 0.999))
    assert str(info.value) == "Invalid beta parameter at index 0: 1.5 (expected 0 <= beta < 1)"


def test_boundaries_are_accepted():
    fo.Adadelta([p()], rho=1.0)
    fo.Adadelta([p()], rho=0.0)
    fo.SGD([p()], dampening=1.0, momentum=0.5)
    fo.SGD([p()], lr=0.0)
    fo.Adam([p()], betas=(0.0, 0.0), eps=0.0)


def test_bad_option_in_a_group_names_it():
    with pytest.raises(ValueError, match="lr value: -2"):
        fo.Adam([{"params": [p()], "lr": -2}])


@pytest.mark.parametrize(
    ("params", "exc", "fragment"),
    [
        (torch.zeros(2, requires_grad=True), TypeError, "single tensor"),
        ({torch.zeros(2, requires_grad=True)}, TypeError, "set"),
        ([], ValueError, "empty parameter list"),
        ([1.0], TypeError, "float"),
        ([torch.zeros(2, dtype=torch.int64)], TypeError, "torch.int64"),
        (42, TypeError, "int"),
    ],
    ids=["bare-tensor", "set", "empty", "not-a-tensor", "integer-tensor", "not-iterable"],
)
def test_bad_params_argument(params, exc, fragment):
    with pytest.raises(exc) as info:
        fo.SGD(params)
    assert fragment in str(info.value)


def test_duplicate_parameter_in_one_group():
    x = p()
    with pytest.raises(ValueError, match="more than once"):
        fo.SGD([x, x])


def test_duplicate_parameter_across_groups():
    x = p()
    with pytest.raises(ValueError, match="another param group"):
        fo.SGD([{"params": [x]}, {"params": [x]}])


def test_add_param_group_failure_changes_nothing():
    x = p()
    opt = fo.Adam([x])
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        opt.add_param_group({"params": [p()], "betas": (0.9, 2.0)})
    with pytest.raises(ValueError, match="another param group"):
        opt.add_param_group({"params": [x]})
    assert len(opt.param_groups) == 1


def test_clip_options_are_validated():
    with pytest.raises(ValueError, match="clip_grad_max_norm value: -1"):
        fo.SGD([{"params": [p()], "clip_grad_max_norm": -1.0}])
    with pytest.raises(ValueError, match="clip_grad_norm_type value: -2"):
        fo.SGD([{"params": [p()], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": -2.0}])


def test_sparse_gradient_refused_where_unsupported_and_param_untouched():
    x = torch.ones(4, requires_grad=True)
    opt = fo.RMSprop([x], lr=0.1)
    x.grad = torch.sparse_coo_tensor([[1]], [1.0], (4,), check_invariants=True)
    with pytest.raises(RuntimeError, match="RMSprop does not support sparse gradients"):
        opt.step()
    torch.testing.assert_close(x.detach(), torch.ones(4), rtol=0, atol=0)
    assert not opt.state[x]
    assert opt.global_step == 0


@pytest.mark.parametrize("cls", [fo.SGD, fo.Adam, fo.AdamW])
def test_sparse_gradient_equals_dense_where_supported(cls):
    assert cls.support_sparse
    dense_p, sparse_p = torch.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)
    o1, o2 = cls([dense_p], lr=0.1), cls([sparse_p], lr=0.1)
    for _ in range(2):
        dense_p.grad = torch.tensor([0.0, 2.0, 0.0, -1.0])
        sparse_p.grad = torch.sparse_coo_tensor([[1, 3]], [2.0, -1.0], (4,), check_invariants=True)
        o1.step()
        o2.step()
    torch.testing.assert_close(sparse_p, dense_p, rtol=0, atol=0)


@pytest.mark.parametrize("cls", [fo.LAMB, fo.RMSprop, fo.Adagrad, fo.Adadelta])
def test_support_sparse_flags(cls):
    assert cls.support_sparse is False


def test_two_dtypes_in_one_group_each_update_in_their_dtype():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = fo.SGD([a, b], lr=0.5)
    a.grad, b.grad = torch.ones(2), torch.ones(2, dtype=torch.float64)
    opt.step()
    assert a.dtype == torch.float32 and b.dtype == torch.float64
    torch.testing.assert_close(a.detach(), torch.full((2,), 0.5), rtol=0, atol=0)
    torch.testing.assert_close(b.detach(), torch.full((2,), 0.5, dtype=torch.float64))
