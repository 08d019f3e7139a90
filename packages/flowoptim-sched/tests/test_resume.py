"""Resuming mid-schedule: via state_dict, and via last_step (or torch's last_epoch) + initial_lr."""

import io
import math

import pytest
import torch

import flowoptim_sched as fs

BASES = (0.1, 0.05)


class Halving:
    """A callable object: LambdaLR saves its __dict__ (plain functions are not saved)."""

    def __init__(self, every):
        self.every = every

    def __call__(self, s):
        return 0.5 ** (s // self.every)


CTORS = {
    "StepLR": lambda o: fs.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda o: fs.MultiStepLR(o, [2, 5], gamma=0.5),
    "ExponentialLR": lambda o: fs.ExponentialLR(o, 0.9),
    "CosineAnnealingLR": lambda o: fs.CosineAnnealingLR(o, T_max=5, eta_min=0.001),
    "CosineDecayLR": lambda o: fs.CosineDecayLR(o, 5, alpha=0.1),
    "PolynomialLR": lambda o: fs.PolynomialLR(o, 5, end_learning_rate=0.01, cycle=True),
    "LambdaLR": lambda o: fs.LambdaLR(o, Halving(2)),
    "ConstantLR": lambda o: fs.ConstantLR(o, 0.5, 3),
    "LinearLR": lambda o: fs.LinearLR(o, 0.25, 0.75, 4),
    "CosineAnnealingWarmRestarts": lambda o: fs.CosineAnnealingWarmRestarts(o, 2, 2, 0.001),
    "SequentialLR": lambda o: fs.SequentialLR(
        o, [fs.LinearLR(o, 0.5, total_iters=3), fs.StepLR(o, 2, 0.5)], [3], True
    ),
    "ChainedScheduler": lambda o: fs.ChainedScheduler(
        [fs.StepLR(o, 2, 0.5), fs.LinearLR(o, 0.5, total_iters=3)]
    ),
    "WarmupLR": lambda o: fs.WarmupLR(fs.CosineDecayLR(o, 6, 0.1), 0.2, 3, warmup_prefix=True),
}


def _sgd():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in BASES]
    return torch.optim.SGD(groups)


def _lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def _continue(opt, sched, n):
    out = []
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(_lrs(opt))
    return out


@pytest.mark.parametrize("name", sorted(CTORS))
def test_resume_from_state_dict(name):
    opt = _sgd()
    sched = CTORS[name](opt)
    _continue(opt, sched, 4)
    buffer = io.BytesIO()  # through torch.save/torch.load, weights_only: plain data only
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
    tail = _continue(opt, sched, 8)

    opt2 = _sgd()
    sched2 = CTORS[name](opt2)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert sched2.last_step == 4 and sched2.last_epoch == 4
    assert _continue(opt2, sched2, 8) == tail


def test_lambda_state_saves_callable_objects_only():
    opt = _sgd()
    sched = fs.LambdaLR(opt, [Halving(2), lambda s: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"every": 2}, None]
    other = fs.LambdaLR(_sgd(), [Halving(5), lambda s: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].every == 2


@pytest.mark.parametrize("name", sorted(CTORS))
def test_resume_with_last_step_and_initial_lr(name):
    k = 3
    opt = _sgd()
    sched = CTORS[name](opt)
    at_k = _continue(opt, sched, k)[-1]
    tail = _continue(opt, sched, 6)

    # A fresh optimizer whose groups carry initial_lr (as a loaded optimizer state does), at a
    # different current lr; the scheduler constructed with last_step=k steps to k+1.
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0, "initial_lr": b} for b in BASES
    ]
    opt2 = torch.optim.SGD(groups)
    if name in ("SequentialLR", "ChainedScheduler", "WarmupLR"):
        # the wrapped schedulers are built fresh; the composite resumes
        make = {
            "SequentialLR": lambda o: fs.SequentialLR(
                o,
                [fs.LinearLR(o, 0.5, total_iters=3), fs.StepLR(o, 2, 0.5)],
                [3],
                True,
                last_step=k - 1,
            ),
            "ChainedScheduler": lambda o: fs.ChainedScheduler(
                [fs.StepLR(o, 2, 0.5), fs.LinearLR(o, 0.5, total_iters=3)], last_step=k - 1
            ),
            "WarmupLR": lambda o: fs.WarmupLR(
                fs.CosineDecayLR(o, 6, 0.1), 0.2, 3, warmup_prefix=True, last_step=k - 1
            ),
        }[name]
        sched2 = make(opt2)
    else:
        sched2 = type(sched)(opt2, **_hyper(sched), last_step=k - 1)
    assert sched2.last_step == k
    assert _lrs(opt2) == at_k  # the constructor's step set f(b, k), from initial_lr
    assert _continue(opt2, sched2, 6) == tail


def _hyper(sched):
    keys = {
        "StepLR": ("step_size", "gamma"),
        "MultiStepLR": ("milestones", "gamma"),
        "ExponentialLR": ("gamma",),
        "CosineAnnealingLR": ("T_max", "eta_min"),
        "CosineDecayLR": ("decay_steps", "alpha"),
        "PolynomialLR": ("decay_batch", "end_learning_rate", "power", "cycle"),
        "ConstantLR": ("factor", "total_iters"),
        "LinearLR": ("start_factor", "end_factor", "total_iters"),
        "CosineAnnealingWarmRestarts": ("T_0", "T_mult", "eta_min", "decay_rate", "restart_limit"),
    }
    if isinstance(sched, fs.LambdaLR):
        return {"lr_lambda": sched.lr_lambdas[0]}
    return {key: getattr(sched, key) for key in keys[type(sched).__name__]}


def test_torch_last_epoch_keyword_and_attribute():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 9.0, "initial_lr": 0.1}]
    opt = torch.optim.SGD(groups)
    sched = fs.ExponentialLR(opt, gamma=0.5, last_epoch=2)
    assert sched.last_epoch == sched.last_step == 3
    assert math.isclose(opt.param_groups[0]["lr"], 0.1 * 0.5**3)
    sched.last_epoch = 0
    assert sched.last_step == 0
    sched.step()
    assert math.isclose(opt.param_groups[0]["lr"], 0.1 * 0.5)
    with pytest.raises(ValueError, match="last_epoch"):
        fs.ExponentialLR(opt, gamma=0.5, last_step=1, last_epoch=2)


@pytest.mark.parametrize("ctor", [fs.StepLR, fs.CosineAnnealingLR])
def test_resume_without_initial_lr_names_the_group(ctor):
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1, "initial_lr": 0.1},
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.05},
    ]
    with pytest.raises(KeyError, match=r"param_groups\[1\]"):
        ctor(torch.optim.SGD(groups), 3, last_step=3)


def test_load_state_dict_with_torch_key_only():
    opt = _sgd()
    sched = fs.StepLR(opt, step_size=2)
    state = {k: v for k, v in sched.state_dict().items() if k != "last_step"}
    state["last_epoch"] = 5
    sched.load_state_dict(state)
    assert sched.last_step == 5 and "last_epoch" not in sched.__dict__
