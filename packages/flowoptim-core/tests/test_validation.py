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
    (fo.RMSprop, {"alpha": 1.5}, ValueError, "alpha value: 1.5 (expected 0 <= alpha <= 1)"),
    (fo.Adam, {"maximize": 1}, TypeError, "maximize value: 1 (expected True or False)"),
    (fo.Adadelta, {"maximize": "no"}, TypeError, "maximize value: 'no'"),
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
    x, y = p(), torch.zeros(3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError) as info:
        fo.SGD([x, y, y])
    msg = str(info.value)
    assert "some parameters appear in more than one parameter group" in msg
    assert "param 2 of group 0" in msg and "twice in the same group" in msg
    assert "shape (3,), dtype torch.float64" in msg


def test_duplicate_parameter_across_groups():
    x, y = p(), p()
    with pytest.raises(ValueError) as info:
        fo.Adam([{"params": [x]}, {"params": [y, x]}])
    msg = str(info.value)
    assert "some parameters appear in more than one parameter group" in msg  # spec §1.8
    assert "param 1 of group 1 (tensor of shape (2,), dtype torch.float32" in msg
    assert "already in group 0" in msg


def test_add_param_group_failure_changes_nothing():
    x = p()
    opt = fo.Adam([x])
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        opt.add_param_group({"params": [p()], "betas": (0.9, 2.0)})
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [x]})
    with pytest.raises(ValueError, match="param group 1 has no parameters"):
        opt.add_param_group({"params": []})
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
def test_sparse_gradient_accepted_where_supported(cls):
    # without weight decay or momentum the rows absent do not move under the dense update
    # either, so the lazy update equals it here (lazy semantics: tests/test_sparse.py)
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


# ---------------------------------------------------------------- issue 10 (optimizer side)
@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("2", 2.0),
        (" 1.5 ", 1.5),
        (3, 3.0),
        (torch.tensor(0.5), 0.5),
        ("0", 0.0),
    ],
)
def test_clip_norm_type_accepts_what_float_accepts_and_stores_a_float(value, stored):
    """Spec §1.7: OneFlow and torch call float() on the norm type."""
    a = torch.zeros(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": value}])
    got = opt.param_groups[0]["clip_grad_norm_type"]
    assert type(got) is float and got == stored
    b = torch.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [b], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": value})
    assert type(opt.param_groups[1]["clip_grad_norm_type"]) is float
    a.grad, b.grad = torch.tensor([3.0, -4.0]), torch.tensor([3.0, -4.0])
    twin = torch.zeros(2, requires_grad=True)
    twin.grad = torch.tensor([3.0, -4.0])
    total = opt.clip_grad()[0]
    expected = torch.nn.utils.clip_grad_norm_([twin], 1.0, norm_type=stored)
    torch.testing.assert_close(total, expected)


def test_clip_norm_type_string_in_a_loaded_state_dict_is_stored_as_float():
    a = torch.zeros(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0}])
    sd = opt.state_dict()
    sd["param_groups"][0]["clip_grad_norm_type"] = "inf"
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["clip_grad_norm_type"] == math.inf


@pytest.mark.parametrize(
    ("value", "exc", "fragment"),
    [
        ("two", ValueError, "clip_grad_norm_type value: 'two' (expected a number, 'inf' or"),
        ("nan", ValueError, "clip_grad_norm_type value: 'nan' (expected p >= 0, inf or -inf)"),
        ("-2", ValueError, "clip_grad_norm_type value: '-2'"),
        (True, TypeError, "clip_grad_norm_type value: True (expected a real number)"),
        (None, TypeError, "clip_grad_norm_type value: None"),
    ],
)
def test_bad_clip_norm_type_names_the_value(value, exc, fragment):
    with pytest.raises(exc) as info:
        fo.SGD([{"params": [p()], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": value}])
    assert fragment in str(info.value)


def test_rmsprop_alpha_boundaries():
    fo.RMSprop([p()], alpha=1.0)
    fo.RMSprop([p()], alpha=0.0)
    with pytest.raises(ValueError, match=r"Invalid alpha value: 1.01 \(expected 0 <= alpha <= 1\)"):
        fo.RMSprop([{"params": [p()], "alpha": 1.01}])
    opt = fo.RMSprop([p()])
    with pytest.raises(ValueError, match="alpha value: 2"):
        opt.add_param_group({"params": [p()], "alpha": 2})
    assert len(opt.param_groups) == 1


def test_no_other_optimizer_has_an_alpha_option():
    """alpha <= 1 is RMSprop's rule only (spec §1.7); no other optimizer here takes alpha."""
    x = [p()]
    for cls in (fo.SGD, fo.Adam, fo.AdamW, fo.LAMB, fo.Adagrad, fo.Adadelta):
        assert "alpha" not in cls(x).defaults


@pytest.mark.parametrize(
    ("momentum", "dampening"), [(0.0, 0.0), (0.9, 0.5), (0.0, 0.3)], ids=["no-mom", "damp", "both"]
)
def test_nesterov_accepted_as_oneflow_with_one_warning(momentum, dampening):
    """Spec §1.7/§9: accepted, §2's formula, one warning per optimizer."""
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="torch.optim.SGD refuses it") as record:
        opt = fo.SGD(
            [{"params": [x]}, {"params": [p()]}],
            lr=0.1,
            momentum=momentum,
            dampening=dampening,
            nesterov=True,
        )
        opt.add_param_group({"params": [p()]})  # no second warning (the group is the same kind)
    assert len(record) == 1
    assert "SGD(nesterov=True)" in str(record[0].message)
    buf = torch.zeros(2)
    ref = x.detach().clone()
    for g in ([0.5, 1.0], [-1.0, 2.0]):
        x.grad = torch.tensor(g)
        opt.step()
        gt = torch.tensor(g)
        if momentum == 0:
            ref -= 0.1 * gt
        else:
            buf = momentum * buf + (1 - dampening) * gt
            ref -= 0.1 * (gt + momentum * buf)
    torch.testing.assert_close(x.detach(), ref)
    if momentum == 0:
        assert "momentum_buffer" not in opt.state[x]  # plain SGD: no buffer


def test_empty_param_group_names_the_group():
    a, b = p(), p()
    groups = [{"params": (t for t in [a])}, {"params": (t for t in [b]), "lr": 0.5}]
    fo.SGD(groups)  # consumes the generators
    with pytest.raises(ValueError, match=r"param group 0 has no parameters") as info:
        fo.Adam(groups)
    assert "exhausted generator" in str(info.value)
    with pytest.raises(ValueError, match="param group 1 has no parameters"):
        fo.Adam([{"params": [a]}, {"params": []}])


@pytest.mark.parametrize("cls", [fo.Adam, fo.AdamW, fo.SGD, fo.LAMB, fo.RMSprop, fo.Adagrad])
def test_unexpected_keyword_names_the_public_class(cls):
    with pytest.raises(TypeError) as info:
        cls([p()], no_such_option=True)
    assert f"{cls.__name__}.__init__()" in str(info.value)
    assert "_AdamBase" not in str(info.value)


def test_adam_unexpected_keyword_error_names_adam():
    # foreach is accepted since issue 11 (Note [torch.optim switches]); a misspelling is not
    with pytest.raises(TypeError, match=r"^Adam\.__init__\(\) got an unexpected keyword"):
        fo.Adam([p()], for_each=True)
    with pytest.raises(TypeError, match=r"^AdamW\.__init__\(\) got an unexpected keyword"):
        fo.AdamW([p()], for_each=True)


def test_warnings_point_at_the_callers_line():
    with pytest.warns(UserWarning, match="SGD\\(nesterov=True\\)") as record:
        fo.SGD([p()], nesterov=True)
    assert record[0].filename == __file__
    a = torch.zeros(2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0}])
    a.grad = torch.ones(2)
    with pytest.warns(UserWarning, match="clip_grad\\(\\) was not called") as record:
        opt.step()
    assert record[0].filename == __file__
