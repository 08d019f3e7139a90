"""The two torch habits that would otherwise fail silently, and WarmupLR over per-group base lrs.

1. ``lr_scheduler.step()`` before ``optimizer.step()``: torch's warning, by torch's mechanism.
2. Two closed-form schedulers stepped on one optimizer: the last one stepped wins (OneFlow's
   numbers, kept), with one warning naming the composites that combine them.
3. WarmupLR's end factor per group (layer-wise lr decay), checked against values worked by hand.
"""

import math
import warnings

import pytest
import torch

import flowoptim_sched as fs

STEP_ORDER = "Detected call of `lr_scheduler.step()` before `optimizer.step()`"


def _sgd(*lrs):
    lrs = lrs or (0.1,)
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def _caught(fn):
    """Run ``fn`` and return the messages of the warnings it gave (every one, not deduplicated)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


# ---------------------------------------------------------------- step() before optimizer.step()
def test_step_before_optimizer_step_warns_once_like_torch():
    def ours():
        opt = _sgd()
        sched = fs.StepLR(opt, step_size=2)
        for _ in range(3):
            sched.step()  # wrong order: no optimizer.step() yet
            opt.step()

    def theirs():
        opt = _sgd()
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
        for _ in range(3):
            sched.step()
            opt.step()

    got, want = _caught(ours), _caught(theirs)
    assert [m for m in got if STEP_ORDER in m] == [m for m in want if STEP_ORDER in m]
    assert len([m for m in got if STEP_ORDER in m]) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda o: fs.CosineDecayLR(o, decay_steps=5),
        lambda o: fs.WarmupLR(fs.CosineDecayLR(o, decay_steps=5), warmup_iters=2),
        lambda o: fs.SequentialLR(o, [fs.ConstantLR(o), fs.ExponentialLR(o, 0.9)], [3]),
        lambda o: fs.ChainedScheduler([fs.StepLR(o, 2), fs.ExponentialLR(o, 0.9)]),
    ],
    ids=["single", "WarmupLR", "SequentialLR", "ChainedScheduler"],
)
def test_no_warning_in_the_right_order(make):
    def loop():
        opt = _sgd(0.1, 0.05)
        sched = make(opt)  # the constructor's own step is not a call "before optimizer.step()"
        for _ in range(6):
            opt.step()
            sched.step()

    assert _caught(loop) == []


def test_flowoptim_optimizer_right_order_is_silent_wrong_order_warns():
    flowoptim = pytest.importorskip("flowoptim")

    def loop(right_order):
        p = torch.nn.Parameter(torch.ones(3))
        opt = flowoptim.SGD([p], lr=0.1)
        sched = fs.ExponentialLR(opt, gamma=0.5)
        for _ in range(3):
            p.grad = torch.ones(3)
            if right_order:
                opt.step()
                sched.step()
            else:
                sched.step()
                opt.step()
        return p.detach().clone()

    assert _caught(lambda: loop(True)) == []
    assert [m for m in _caught(lambda: loop(False)) if STEP_ORDER in m] != []
    # the wrapper changes nothing about the step itself: 1 - 0.1 * (1 + 0.5 + 0.25)
    torch.testing.assert_close(loop(True), torch.full((3,), 1 - 0.175))


def test_optimizer_step_is_wrapped_once_and_shared_with_torch_schedulers():
    opt = _sgd()
    fs.StepLR(opt, step_size=2)
    wrapped = opt.step
    assert getattr(wrapped, "_wrapped_by_lr_sched", False)
    torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)  # sees torch's own flag: no rewrap
    fs.CosineDecayLR(opt, decay_steps=3)
    assert opt.step is wrapped
    assert not getattr(opt, "_opt_called", False)
    opt.step()
    assert opt._opt_called is True


def test_replaced_optimizer_step_is_never_reported():
    # another library replaced step with something that is not the optimizer's bound method:
    # the order cannot be known, so nothing is said (no false warning)
    opt = _sgd()
    original = opt.step
    opt.step = lambda *a, **k: original(*a, **k)  # type: ignore[method-assign]
    sched = fs.StepLR(opt, step_size=2)

    def loop():
        for _ in range(3):
            sched.step()
            opt.step()

    assert _caught(loop) == []


def test_resumed_scheduler_does_not_warn():
    opt = _sgd()
    sched = fs.StepLR(opt, step_size=2)
    for _ in range(3):
        opt.step()
        sched.step()
    opt2 = _sgd()
    sched2 = fs.StepLR(opt2, step_size=2)
    sched2.load_state_dict(sched.state_dict())  # past its first step: torch does not check
    assert _caught(sched2.step) == []


# ---------------------------------------------------------------- two schedulers, one optimizer
def _two_schedulers_loop(steps=4):
    opt = _sgd()
    warmup = fs.LinearLR(opt, start_factor=0.25, total_iters=5)
    cosine = fs.CosineDecayLR(opt, decay_steps=10)
    lrs = []
    for _ in range(steps):
        opt.step()
        warmup.step()
        cosine.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_two_stepped_schedulers_warn_once_and_the_last_one_wins():
    lrs = []
    messages = _caught(lambda: lrs.extend(_two_schedulers_loop(6)))
    assert len(messages) == 1
    (message,) = messages
    for name in ("LinearLR", "CosineDecayLR", "SequentialLR", "ChainedScheduler", "WarmupLR"):
        assert name in message
    # OneFlow's numbers: each step() overwrites the lr, so CosineDecayLR's closed form is left
    want = [0.1 * (1 + math.cos(math.pi * s / 10)) / 2 for s in range(1, 7)]
    assert lrs == pytest.approx(want, rel=1e-12)
    assert [round(x, 4) for x in lrs[:4]] == [0.0976, 0.0905, 0.0794, 0.0655]


def test_the_warning_is_once_per_optimizer():
    def two_loops():
        _two_schedulers_loop()
        _two_schedulers_loop()

    assert len(_caught(two_loops)) == 2  # two optimizers, one warning each


def test_replacing_a_scheduler_does_not_warn():
    # hand-over by hand (one scheduler, then another, never back): not the composition mistake
    def loop():
        opt = _sgd()
        first = fs.ConstantLR(opt, factor=0.5, total_iters=3)
        second = fs.ExponentialLR(opt, gamma=0.9)
        for s in range(6):
            opt.step()
            (first if s < 3 else second).step()

    assert _caught(loop) == []


def test_torch_chained_scheduler_over_ours_warns():
    # torch's ChainedScheduler steps each child in turn: with closed forms the last one wins
    def loop():
        opt = _sgd()
        chain = torch.optim.lr_scheduler.ChainedScheduler(
            [fs.LinearLR(opt, 0.5, total_iters=4), fs.ExponentialLR(opt, 0.9)]
        )
        for _ in range(3):
            opt.step()
            chain.step()

    messages = _caught(loop)
    assert len(messages) == 1 and "ChainedScheduler" in messages[0]


def test_torch_sequential_lr_over_ours_is_silent():
    def loop():
        opt = _sgd()
        seq = torch.optim.lr_scheduler.SequentialLR(
            opt, [fs.ConstantLR(opt, 0.5, 2), fs.ExponentialLR(opt, 0.9)], milestones=[2]
        )
        for _ in range(5):
            opt.step()
            seq.step()

    assert _caught(loop) == []


# ---------------------------------------------------------------- WarmupLR, per-group base lrs
def test_warmup_over_multiplicative_schedule_with_layer_wise_base_lrs():
    # three groups, layer-wise decay 0.75; CosineDecayLR(5, alpha=0.1), warmup 0.5 over 2 steps.
    # By hand: c(s) = 0.9 * (1 + cos(pi s / 5)) / 2 + 0.1; ef = c(2) = 0.68905764...;
    # warmup factors 0.5, 0.5 + (ef - 0.5) / 2; then c(s).
    bases = (0.1, 0.075, 0.05625)
    opt = _sgd(*bases)
    sched = fs.WarmupLR(
        fs.CosineDecayLR(opt, decay_steps=5, alpha=0.1), warmup_factor=0.5, warmup_iters=2
    )
    factors = [0.5, 0.5945288237343631, 0.6890576474687263]
    factors += [0.41094235253127376, 0.18594235253127372]
    got = [[g["lr"] for g in opt.param_groups]]
    for _ in range(4):
        sched.step()
        got.append([g["lr"] for g in opt.param_groups])
    for row, f in zip(got, factors, strict=True):
        assert row == pytest.approx([b * f for b in bases], rel=1e-12)


def test_warmup_lands_on_each_groups_own_value_for_an_affine_schedule():
    # CosineAnnealingLR(T_max=4, eta_min=0.01) is not a multiple of b: a single end factor
    # (OneFlow's, from group 0) would make group 1 jump at the end of the warmup. Per group,
    # each lands on its own f(b, W), linearly from b * wf.
    bases = (0.1, 0.02)
    opt = _sgd(*bases)
    sched = fs.WarmupLR(
        fs.CosineAnnealingLR(opt, T_max=4, eta_min=0.01), warmup_factor=0.2, warmup_iters=2
    )

    def cosine(b, s):
        return 0.01 + (b - 0.01) * (1 + math.cos(math.pi * s / 4)) / 2

    want = [[b * 0.2 for b in bases], [(b * 0.2 + cosine(b, 2)) / 2 for b in bases]]
    want += [[cosine(b, s) for b in bases] for s in (2, 3, 4)]
    # by hand: group 1 is 0.004, then 0.0095, then f(0.02, 2) = 0.015
    assert want[1][1] == pytest.approx(0.0095) and want[2][1] == pytest.approx(0.015)
    got = [[g["lr"] for g in opt.param_groups]]
    for _ in range(4):
        sched.step()
        got.append([g["lr"] for g in opt.param_groups])
    for row, w in zip(got, want, strict=True):
        assert row == pytest.approx(w, rel=1e-12)


def test_equal_base_lrs_give_oneflows_numbers():
    # OneFlow's formula (end factor from group 0 for all groups) where it is defined
    opt = _sgd(0.1, 0.1)
    inner = fs.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    sched = fs.WarmupLR(inner, warmup_factor=0.2, warmup_iters=2)
    ef = (0.01 + 0.09 * (1 + math.cos(math.pi / 2)) / 2) / 0.1
    assert sched.get_last_lr() == pytest.approx([0.02, 0.02], rel=1e-12)
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.1 * (0.2 + (ef - 0.2) / 2)] * 2, rel=1e-12)
