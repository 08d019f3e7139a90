"""ReduceLROnPlateau: torch's algorithm (reduce when bad steps exceed patience)."""

import io

import pytest
import torch

import flowoptim_sched as fs


def _sgd(*lrs):
    return torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": x} for x in lrs])


def _trace(sched, metrics):
    out = []
    for m in metrics:
        sched.step(m)
        out.append([g["lr"] for g in sched.optimizer.param_groups])
    return out


def test_patience_worked_by_hand():
    # min mode, patience 2: the third bad step in a row reduces (bad count 3 > 2).
    sched = fs.ReduceLROnPlateau(_sgd(0.1, 0.05), patience=2)
    lrs = _trace(sched, [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9, 0.9])
    first = [0.1, 0.05]
    reduced = [pytest.approx(0.01), pytest.approx(0.005)]  # factor 0.1; approx: 0.1*0.1 rounding
    assert lrs[:4] == [first] * 4
    assert lrs[4] == reduced  # bad steps at 0.95, 0.95, 0.95
    assert lrs[5:8] == [reduced] * 3  # 0.8 improves, then two bad
    assert lrs[8] == [pytest.approx(0.001), pytest.approx(0.0005)]
    assert sched.last_step == sched.last_epoch == 10


CONFIGS = {
    "min": (dict(mode="min", patience=2), [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9, 0.9]),
    "max": (dict(mode="max", patience=1, factor=0.5), [0.1, 0.2, 0.2, 0.15, 0.3, 0.3, 0.3, 0.3]),
    "abs": (
        dict(threshold_mode="abs", threshold=0.1, patience=1, factor=0.5),
        [1.0, 0.95, 0.85, 0.8, 0.79, 0.5, 0.45],
    ),
    "cooldown": (dict(patience=0, cooldown=2, factor=0.5), [1.0] * 7),
    "min_lr-list": (dict(patience=0, factor=0.1, min_lr=[0.001, 0.004]), [1, 2, 3, 4, 5]),
    "eps": (dict(patience=0, factor=0.5, eps=0.02), [1.0, 2.0, 3.0, 4.0, 5.0]),
    "defaults": (dict(), [1.0] * 13),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_lrs_as_torch(name):
    kwargs, metrics = CONFIGS[name]
    ours = _trace(fs.ReduceLROnPlateau(_sgd(0.1, 0.05), **kwargs), metrics)
    theirs = _trace(torch.optim.lr_scheduler.ReduceLROnPlateau(_sgd(0.1, 0.05), **kwargs), metrics)
    assert ours == theirs  # same algorithm, same float operations: exact


def test_reduces_an_lr_set_by_hand_and_tensor_metrics():
    opt = _sgd(0.1)
    sched = fs.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched.step(torch.tensor(1.0))
    opt.param_groups[0]["lr"] = 0.8
    sched.step(torch.tensor(2.0))
    assert opt.param_groups[0]["lr"] == 0.4
    assert sched.get_last_lr() == [0.4]


def test_state_dict_round_trip():
    opt = _sgd(0.1, 0.05)
    sched = fs.ReduceLROnPlateau(opt, patience=1, cooldown=1, factor=0.5)
    _trace(sched, [1.0, 2.0, 2.0])
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    tail = _trace(sched, [3.0, 3.0, 0.5, 3.0, 3.0])
    opt2 = _sgd(0.1, 0.05)
    for g, lr in zip(opt2.param_groups, [0.05, 0.025], strict=True):
        g["lr"] = lr  # what the optimizer's own state would restore
    again = fs.ReduceLROnPlateau(opt2)
    buffer.seek(0)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    assert _trace(again, [3.0, 3.0, 0.5, 3.0, 3.0]) == tail


def test_verbose(capsys):
    sched = fs.ReduceLROnPlateau(_sgd(0.1, 0.05), patience=0, factor=0.5, verbose=True)
    sched.step(1.0)
    sched.step(2.0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # one per group per step
    assert "keeping learning rate of param_groups[0] at 1.000000e-01" in lines[0]
    assert "reducing learning rate of param_groups[1] at 2.500000e-02" in lines[3]


def test_oneflow_names():
    sched = fs.ReduceLROnPlateau(_sgd(0.1), patience=5)
    sched.step(1.0)
    sched.step(2.0)
    assert sched.num_bad_steps == sched.num_bad_epochs == 1
    assert sched.is_better(0.5, 1.0) and not sched.is_better(1.0, 1.0)
