"""Bad input: ValueError/KeyError/TypeError naming the bad value."""

import pytest
import torch

import flowoptim_sched as fs


def _sgd(*lrs):
    lrs = lrs or (0.1,)
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": x} for x in lrs])


# (call(opt), message regex): each must raise ValueError naming the value
VALUE_ERRORS = [
    (lambda o: fs.StepLR(o, step_size=0), r"step_size: 0 \(expected a positive integer\)"),
    (lambda o: fs.StepLR(o, step_size=-2), r"step_size: -2"),
    (lambda o: fs.StepLR(o, step_size=2.5), r"step_size: 2.5"),
    (lambda o: fs.CosineAnnealingLR(o, T_max=0), r"T_max: 0"),
    (lambda o: fs.CosineDecayLR(o, decay_steps=-1), r"decay_steps: -1"),
    (lambda o: fs.CosineDecayLR(o, decay_steps=5, alpha=1.5), r"alpha: 1.5"),
    (lambda o: fs.PolynomialLR(o, decay_batch=0), r"decay_batch: 0"),
    (lambda o: fs.ConstantLR(o, total_iters=0), r"total_iters: 0"),
    (lambda o: fs.LinearLR(o, total_iters=-3), r"total_iters: -3"),
    (lambda o: fs.CosineAnnealingWarmRestarts(o, T_0=0), r"T_0: 0"),
    (lambda o: fs.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), r"T_mult: 0"),
    (lambda o: fs.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=1.5), r"T_mult: 1.5"),
    (lambda o: fs.CosineAnnealingWarmRestarts(o, 2, restart_limit=-1), r"restart_limit: -1"),
    (lambda o: fs.ExponentialLR(o, gamma=0.0), r"gamma: 0.0"),
    (lambda o: fs.ExponentialLR(o, gamma=-0.5), r"gamma: -0.5"),
    (lambda o: fs.MultiStepLR(o, milestones=[3, 2]), r"milestones: \[3, 2\]"),
    (lambda o: fs.MultiStepLR(o, milestones=[2, 2]), r"milestones: \[2, 2\]"),
    (lambda o: fs.MultiStepLR(o, milestones=[1.5]), r"milestones: \[1.5\]"),
    (lambda o: fs.ConstantLR(o, factor=1.5), r"factor: 1.5"),
    (lambda o: fs.ConstantLR(o, factor=-0.1), r"factor: -0.1"),
    (lambda o: fs.LinearLR(o, start_factor=1.1), r"start_factor: 1.1"),
    (lambda o: fs.LinearLR(o, end_factor=-1), r"end_factor: -1"),
    (lambda o: fs.WarmupLR(o, warmup_factor=2.0), r"warmup_factor: 2.0"),
    (lambda o: fs.WarmupLR(o, warmup_method="cosine"), r"warmup_method: 'cosine'"),
    (lambda o: fs.WarmupLR(o, warmup_iters=0), r"warmup_iters: 0"),
    (lambda o: fs.WarmupLR(o, warmup_iters=-1), r"warmup_iters: -1"),
    (lambda o: fs.ReduceLROnPlateau(o, factor=1.0), r"factor: 1.0"),
    (lambda o: fs.ReduceLROnPlateau(o, factor=-0.5), r"factor: -0.5"),
    (lambda o: fs.ReduceLROnPlateau(o, mode="middle"), r"mode: 'middle'"),
    (lambda o: fs.ReduceLROnPlateau(o, threshold_mode="log"), r"threshold_mode: 'log'"),
    (lambda o: fs.ReduceLROnPlateau(o, patience=-1), r"patience: -1"),
    (lambda o: fs.StepLR(o, 2, last_step=-2), r"last_step: -2"),
    (
        lambda o: fs.SequentialLR(o, [fs.StepLR(o, 2), fs.StepLR(o, 3)], milestones=[]),
        r"milestones: \[\] \(0 milestones for 2 schedulers",
    ),
    (
        lambda o: fs.SequentialLR(o, [fs.StepLR(o, 2), fs.StepLR(o, 3), fs.StepLR(o, 4)], [4, 2]),
        r"milestones: \[4, 2\]",
    ),
    (
        lambda o: fs.SequentialLR(o, [fs.StepLR(o, 2), fs.StepLR(o, 3)], [2], [True, False]),
        r"interval_rescaling: \[True, False\]",
    ),
    (lambda o: fs.SequentialLR(o, [], []), r"schedulers: \[\]"),
    (lambda o: fs.ChainedScheduler([]), r"schedulers: \[\]"),
    (lambda o: fs.SequentialLR(o, [fs.StepLR(_sgd(), 2)], []), r"different optimizer"),
    (lambda o: fs.ChainedScheduler([fs.StepLR(o, 2), fs.StepLR(_sgd(), 2)]), r"schedulers\[1\]"),
    (lambda o: fs.ChainedScheduler([fs.ReduceLROnPlateau(o)]), r"ReduceLROnPlateau"),
    (lambda o: fs.WarmupLR(fs.ReduceLROnPlateau(o)), r"ReduceLROnPlateau"),
]


@pytest.mark.parametrize(("call", "message"), VALUE_ERRORS, ids=[m for _, m in VALUE_ERRORS])
def test_value_errors_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call(_sgd())


def test_lambda_list_length_must_match_groups():
    with pytest.raises(ValueError, match=r"lr_lambda: a list of 3 functions .*param group: 2"):
        fs.LambdaLR(_sgd(0.1, 0.05), [lambda s: 1.0] * 3)


def test_min_lr_list_length_must_match_groups():
    with pytest.raises(ValueError, match=r"min_lr: a list of 3 values .*param group: 2"):
        fs.ReduceLROnPlateau(_sgd(0.1, 0.05), min_lr=[0.1, 0.2, 0.3])


NOT_AN_OPTIMIZER = [
    lambda: fs.StepLR([torch.zeros(1)], step_size=2),
    lambda: fs.CosineDecayLR("sgd", decay_steps=2),
    lambda: fs.LambdaLR(None, lambda s: 1.0),
    lambda: fs.ReduceLROnPlateau(object()),
    lambda: fs.WarmupLR(42),
    lambda: fs.SequentialLR({"lr": 0.1}, [], []),
    lambda: fs.ChainedScheduler("not a list"),
]


@pytest.mark.parametrize("call", NOT_AN_OPTIMIZER)
def test_non_optimizer_is_a_type_error(call):
    with pytest.raises(
        TypeError, match=r"expected a torch.optim.Optimizer|expected a flowoptim|expected a list"
    ):
        call()


def test_torch_scheduler_inside_a_composite_is_a_type_error():
    opt = _sgd()
    torch_step = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    with pytest.raises(TypeError, match=r"schedulers\[0\]: StepLR object"):
        fs.ChainedScheduler([torch_step])
    with pytest.raises(TypeError, match="scheduler_or_optimizer"):
        fs.WarmupLR(torch_step)
