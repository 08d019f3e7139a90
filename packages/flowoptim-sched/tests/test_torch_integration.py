"""With torch.optim optimizers and torch's own scheduler tooling (no warnings: pytest errors)."""

import math

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

import flowoptim_sched as fs


def test_schedulers_drive_torch_sgd():
    # p starts at 0 with gradient 1 each step, so after n steps p = -sum of the lrs used.
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = fs.CosineDecayLR(opt, decay_steps=4, alpha=0.1)
    used = []
    for _ in range(6):
        used.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        p.sum().backward()
        opt.step()
        sched.step()
    expected = [0.1 * (0.9 * (1 + math.cos(math.pi * s / 4)) / 2 + 0.1) if s < 4 else 0.01
                for s in range(6)]  # fmt: skip
    assert used == pytest.approx(expected, rel=1e-12)  # float64 closed forms, ulp-level only
    assert p.item() == pytest.approx(-sum(expected), rel=1e-12)


def test_two_groups_each_with_its_own_base_lr():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([{"params": [a], "lr": 0.2}, {"params": [b]}], lr=0.01, momentum=0.9)
    sched = fs.StepLR(opt, step_size=2, gamma=0.5)
    assert sched.base_lrs == [0.2, 0.01]
    for _ in range(4):
        sched.step()
    assert sched.get_last_lr() == [0.2 * 0.25, 0.01 * 0.25]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.2, 0.01]


@pytest.mark.parametrize(
    "sched",
    [
        lambda o: fs.StepLR(o, 2),
        lambda o: fs.WarmupLR(o),
        lambda o: fs.ChainedScheduler([fs.StepLR(o, 2)]),
        lambda o: fs.ReduceLROnPlateau(o),
    ],
)
def test_isinstance_torch_base_classes(sched):
    s = sched(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    assert isinstance(s, LRScheduler)
    assert isinstance(s, torch.optim.lr_scheduler.LRScheduler)
    if isinstance(s, fs.ReduceLROnPlateau):
        assert isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_torch_sequential_lr_accepts_them():
    # torch's SequentialLR restarts the next scheduler at its step 0 at each milestone, i.e.
    # OneFlow's interval_rescaling=True.
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first = fs.LinearLR(opt, start_factor=0.5, total_iters=2)
    second = fs.CosineDecayLR(opt, decay_steps=3, alpha=0.1)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [first, second], milestones=[2])
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(6):
        opt.step()
        seq.step()
        lrs.append(opt.param_groups[0]["lr"])

    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ours = fs.SequentialLR(
        ours_opt,
        [fs.LinearLR(ours_opt, 0.5, total_iters=2), fs.CosineDecayLR(ours_opt, 3, 0.1)],
        milestones=[2],
        interval_rescaling=True,
    )
    expected = [ours_opt.param_groups[0]["lr"]]
    for _ in range(6):
        ours.step()
        expected.append(ours_opt.param_groups[0]["lr"])
    assert lrs == pytest.approx(expected, rel=1e-12)  # same closed forms
    assert lrs[2] == 1.0 and lrs[-1] == pytest.approx(0.1)


def test_verbose_prints_one_line_per_group_per_step(capsys):
    opt = torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in (0.1, 0.05)]
    )
    sched = fs.ExponentialLR(opt, gamma=0.5, verbose=True)
    sched.step()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4  # construction step + one step, two groups each
    assert lines[2] == (
        "ExponentialLR: step 1, adjusting learning rate of param_groups[0] to 5.000000e-02"
    )
    quiet = fs.ExponentialLR(opt, gamma=0.5)
    quiet.step()
    assert capsys.readouterr().out == ""


def test_tensor_lr_is_updated_in_place():
    p = torch.nn.Parameter(torch.zeros(1))
    lr = torch.tensor(0.1, dtype=torch.float64)
    try:
        opt = torch.optim.SGD([p], lr=lr)
    except (TypeError, ValueError):  # pragma: no cover - a torch without tensor lrs for SGD
        pytest.skip("this torch's SGD does not take a tensor lr")
    sched = fs.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    sched.step()
    assert opt.param_groups[0]["lr"] is lr
    assert lr.item() == pytest.approx(0.025, rel=1e-12)  # float64 tensor: ulp-level only
    assert opt.param_groups[0]["initial_lr"].item() == 0.1
    assert sched.get_last_lr() == [pytest.approx(0.025, rel=1e-12)]


def test_group_added_later_starts_from_its_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = fs.ExponentialLR(opt, gamma=0.5)
    sched.step()
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0})
    sched.step()
    assert sched.get_last_lr() == [0.025, 0.25]


def test_other_torch_optimizers():
    p = torch.nn.Parameter(torch.zeros(1))
    for opt in (torch.optim.Adam([p], lr=0.1), torch.optim.AdamW([p], lr=0.1)):
        sched = fs.WarmupLR(opt, warmup_factor=0.5, warmup_iters=2)
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(0.075)
