"""Every scheduler's lr sequence over its boundaries, against the formulas of docs/semantics.md §6.

Expected values are computed here, independently, with ``math``. Tolerance: rel 1e-12 — both
sides are the same float64 closed form, written differently, so only a few ulp of rounding may
separate them.
"""

import math

import pytest
import torch

import flowoptim_sched as fs

REL = 1e-12
BASES = (0.1, 0.05)  # two groups, each with its own base lr


def close(a, b):
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-15)


def sgdr(b, s, T_0, T_mult=1, eta_min=0.0, decay_rate=1.0, restart_limit=0):
    """SGDR by walking the cycles one by one (independent of the package's search)."""
    start, length, i = 0, T_0, 0
    while s >= start + length:
        start, length, i = start + length, length * T_mult, i + 1
    if restart_limit and i >= restart_limit:
        return eta_min
    peak = b * decay_rate**i
    return eta_min + (peak - eta_min) * (1 + math.cos(math.pi * (s - start) / length)) / 2


# (id, constructor(opt), expected(b, s), steps to run: well past the last boundary)
CASES = [
    (
        "StepLR",
        lambda o: fs.StepLR(o, step_size=3, gamma=0.5),
        lambda b, s: b * 0.5 ** (s // 3),
        10,
    ),
    ("StepLR-default-gamma", lambda o: fs.StepLR(o, 2), lambda b, s: b * 0.1 ** (s // 2), 6),
    (
        "MultiStepLR",
        lambda o: fs.MultiStepLR(o, milestones=[2, 5, 6], gamma=0.5),
        lambda b, s: b * 0.5 ** sum(s >= m for m in (2, 5, 6)),
        10,
    ),
    ("ExponentialLR", lambda o: fs.ExponentialLR(o, gamma=0.9), lambda b, s: b * 0.9**s, 8),
    (
        "CosineAnnealingLR",
        lambda o: fs.CosineAnnealingLR(o, T_max=5, eta_min=0.001),
        lambda b, s: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * s / 5)) / 2,
        14,
    ),
    (
        "CosineDecayLR",
        lambda o: fs.CosineDecayLR(o, decay_steps=5, alpha=0.1),
        lambda b, s: b * (0.9 * (1 + math.cos(math.pi * s / 5)) / 2 + 0.1) if s < 5 else b * 0.1,
        9,
    ),
    (
        "PolynomialLR",
        lambda o: fs.PolynomialLR(o, decay_batch=5, end_learning_rate=0.01),
        lambda b, s: (b - 0.01) * (1 - min(s, 5) / 5) + 0.01,
        8,
    ),
    (
        "PolynomialLR-power2-cycle",
        lambda o: fs.PolynomialLR(o, decay_batch=3, end_learning_rate=0.001, power=2, cycle=True),
        lambda b, s: (b - 0.001) * (1 - max(s, 1) / (3 * math.ceil(max(s, 1) / 3))) ** 2 + 0.001,
        10,
    ),
    ("LambdaLR", lambda o: fs.LambdaLR(o, lambda s: 0.95**s), lambda b, s: b * 0.95**s, 6),
    (
        "ConstantLR",
        lambda o: fs.ConstantLR(o, factor=0.5, total_iters=3),
        lambda b, s: b * 0.5 if s < 3 else b,
        6,
    ),
    ("ConstantLR-defaults", fs.ConstantLR, lambda b, s: b / 3 if s < 5 else b, 7),
    (
        "LinearLR",
        lambda o: fs.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=4),
        lambda b, s: b * (0.25 + 0.5 * s / 4) if s < 4 else b * 0.75,
        7,
    ),
    (
        "LinearLR-defaults",
        fs.LinearLR,
        lambda b, s: b * (1 / 3 + (2 / 3) * s / 5 if s < 5 else 1),
        7,
    ),
    (
        "CosineAnnealingWarmRestarts",
        lambda o: fs.CosineAnnealingWarmRestarts(o, T_0=3),
        lambda b, s: sgdr(b, s, 3),
        10,
    ),
    (
        "CosineAnnealingWarmRestarts-Tmult",
        lambda o: fs.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001),
        lambda b, s: sgdr(b, s, 2, 2, 0.001),
        16,
    ),
    (
        "CosineAnnealingWarmRestarts-decay-limit",
        lambda o: fs.CosineAnnealingWarmRestarts(
            o, T_0=2, T_mult=3, eta_min=0.002, decay_rate=0.5, restart_limit=2
        ),
        lambda b, s: sgdr(b, s, 2, 3, 0.002, 0.5, 2),
        12,
    ),
    (
        "SequentialLR",
        lambda o: fs.SequentialLR(
            o, [fs.ConstantLR(o, factor=0.1, total_iters=2), fs.ExponentialLR(o, 0.9)], [2]
        ),
        # OneFlow: without interval_rescaling the next scheduler sees the global step
        lambda b, s: b * 0.1 if s < 2 else b * 0.9**s,
        6,
    ),
    (
        "SequentialLR-rescaled",
        lambda o: fs.SequentialLR(
            o,
            [
                fs.LinearLR(o, start_factor=0.5, total_iters=3),
                fs.StepLR(o, step_size=2, gamma=0.5),
                fs.CosineDecayLR(o, decay_steps=4, alpha=0.1),
            ],
            milestones=[3, 6],
            interval_rescaling=[True, False],
        ),
        lambda b, s: (
            b * (0.5 + 0.5 * s / 3)
            if s < 3
            else b * 0.5 ** ((s - 3) // 2)
            if s < 6
            else (b * (0.9 * (1 + math.cos(math.pi * s / 4)) / 2 + 0.1) if s < 4 else b * 0.1)
        ),
        12,
    ),
    (
        "ChainedScheduler",
        lambda o: fs.ChainedScheduler(
            [fs.ConstantLR(o, factor=0.1, total_iters=2), fs.ExponentialLR(o, gamma=0.9)]
        ),
        lambda b, s: b * (0.1 if s < 2 else 1.0) * 0.9**s,
        6,
    ),
    (
        "WarmupLR-optimizer-linear",
        lambda o: fs.WarmupLR(o, warmup_factor=0.5, warmup_iters=4),
        lambda b, s: b * (0.5 + 0.5 * s / 4) if s < 4 else b,
        7,
    ),
    (
        "WarmUpLR-optimizer-constant",
        lambda o: fs.WarmUpLR(o, warmup_factor=0.2, warmup_iters=3, warmup_method="constant"),
        lambda b, s: b * 0.2 if s < 3 else b,
        6,
    ),
    (
        "WarmupLR-steplr-constant",
        lambda o: fs.WarmupLR(
            fs.StepLR(o, step_size=2, gamma=0.5), 0.1, 3, warmup_method="constant"
        ),
        lambda b, s: b * 0.1 if s < 3 else b * 0.5 ** (s // 2),
        8,
    ),
    (
        "WarmupLR-multistep-prefix",
        lambda o: fs.WarmupLR(
            fs.MultiStepLR(o, [2, 4], gamma=0.5),
            warmup_factor=0.1,
            warmup_iters=3,
            warmup_method="constant",
            warmup_prefix=True,
        ),
        lambda b, s: b * 0.1 if s < 3 else b * 0.5 ** sum(s - 3 >= m for m in (2, 4)),
        9,
    ),
    (
        "WarmupLR-cosinedecay-linear-prefix",
        lambda o: fs.WarmupLR(
            fs.CosineDecayLR(o, decay_steps=5, alpha=0.1), 0.5, 2, warmup_prefix=True
        ),
        lambda b, s: (
            b * (0.5 + 0.5 * s / 2)
            if s < 2
            else b * (0.9 * (1 + math.cos(math.pi * (s - 2) / 5)) / 2 + 0.1)
            if s - 2 < 5
            else b * 0.1
        ),
        9,
    ),
]


@pytest.mark.parametrize(
    ("ctor", "expected", "steps"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_sequence_over_boundaries(make_sgd, run_lrs, ctor, expected, steps):
    sched = ctor(make_sgd(*BASES))
    got = run_lrs(sched, steps)
    for s, row in enumerate(got):
        for b, lr in zip(BASES, row, strict=True):
            assert close(lr, expected(b, s)), (s, b, lr, expected(b, s))
    assert sched.last_step == steps
    assert sched.get_last_lr() == got[-1]


def test_warmup_linear_lands_on_wrapped_schedule():
    # Linear warmup over CosineDecayLR (no prefix): from b*wf to f(b, W), then f on the global
    # step. OneFlow's LinearLR(end_factor=f(b, W)/b) formulation.
    b, W = 0.001, 2
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=b)
    sched = fs.WarmupLR(fs.CosineDecayLR(opt, decay_steps=5, alpha=0.1), 0.5, W)

    def decay(s):
        return b * (0.9 * (1 + math.cos(math.pi * s / 5)) / 2 + 0.1) if s < 5 else b * 0.1

    ef = decay(W) / b
    expected = [b * (0.5 + (ef - 0.5) * s / W) if s < W else decay(s) for s in range(9)]
    got = [opt.param_groups[0]["lr"]]
    for _ in range(8):
        sched.step()
        got.append(opt.param_groups[0]["lr"])
    assert all(close(g, e) for g, e in zip(got, expected, strict=True)), (got, expected)
    assert math.isclose(got[2], 0.000689, rel_tol=1e-3)  # OneFlow's documented value at step 2


def test_polynomial_cycle_at_step_zero(make_sgd):
    # OneFlow's quirk kept by the contract: step 0 counts as step 1 of the first cycle.
    sched = fs.PolynomialLR(make_sgd(1.0), decay_batch=5, end_learning_rate=0.1, cycle=True)
    assert close(sched.get_last_lr()[0], 0.82)
    for _ in range(5):
        sched.step()
    assert close(sched.get_last_lr()[0], 0.1)  # end of the first cycle
    sched.step()  # step 6: second cycle, D' = 10
    assert close(sched.get_last_lr()[0], 0.9 * (1 - 6 / 10) + 0.1)


def test_cosine_annealing_is_periodic_past_t_max(make_sgd):
    sched = fs.CosineAnnealingLR(make_sgd(0.1), T_max=4, eta_min=0.01)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(8):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert close(lrs[4], 0.01)  # the floor at T_max
    assert close(lrs[6], 0.01 + 0.09 * (1 + math.cos(math.pi * 6 / 4)) / 2)  # climbing again
    assert close(lrs[8], 0.1)  # back to the base at 2*T_max


def test_cosine_decay_stays_at_base_times_alpha(make_sgd):
    sched = fs.CosineDecayLR(make_sgd(0.1), decay_steps=10, alpha=0.2)
    for _ in range(10):
        sched.step()
    for _ in range(50):
        assert close(sched.get_last_lr()[0], 0.1 * 0.2)
        sched.step()


def test_warm_restart_exactly_at_a_restart_step(make_sgd):
    # T_0=1, T_mult=3: cycle 5 starts at step 1+3+9+27+81 = 121. A floating-point log (OneFlow,
    # torch's closed form) puts step 121 at the end of cycle 4; SGDR restarts there.
    sched = fs.CosineAnnealingWarmRestarts(make_sgd(0.1), T_0=1, T_mult=3, decay_rate=0.5)
    assert close(sched.get_lr(0.1, 120), 0.1 * 0.5**4 * (1 + math.cos(math.pi * 80 / 81)) / 2)
    assert close(sched.get_lr(0.1, 121), 0.1 * 0.5**5)


@pytest.mark.parametrize(
    "ctor",
    [
        lambda o: fs.StepLR(o, step_size=3),
        lambda o: fs.ExponentialLR(o, gamma=0.9),
        lambda o: fs.CosineDecayLR(o, decay_steps=5, alpha=0.1),
        lambda o: fs.PolynomialLR(o, decay_batch=5, end_learning_rate=0.01, cycle=True),
        lambda o: fs.SequentialLR(o, [fs.ConstantLR(o, 0.1, 2), fs.ExponentialLR(o, 0.9)], [2]),
        lambda o: fs.ChainedScheduler([fs.ConstantLR(o, 0.1, 2), fs.ExponentialLR(o, 0.9)]),
    ],
    ids=["StepLR", "ExponentialLR", "CosineDecayLR", "PolynomialLR", "SequentialLR", "Chained"],
)
def test_lr_set_by_hand_is_overwritten_at_next_step(make_sgd, ctor):
    opt = make_sgd(*BASES)
    reference = ctor(make_sgd(*BASES))
    sched = ctor(opt)
    for _ in range(2):
        sched.step()
        reference.step()
    opt.param_groups[0]["lr"] = 0.7
    opt.param_groups[1]["lr"] = 0.3
    sched.step()
    reference.step()
    assert sched.get_last_lr() == reference.get_last_lr()
    assert [g["lr"] for g in opt.param_groups] == reference.get_last_lr()


def test_get_lr_both_signatures(make_sgd):
    sched = fs.StepLR(make_sgd(*BASES), step_size=2, gamma=0.5)
    assert close(sched.get_lr(1.0, 5), 0.25)  # OneFlow: get_lr(base_lr, step)
    sched.step()
    sched.step()
    assert sched.get_lr() == [0.05, 0.025]  # torch: the groups' lrs at last_step, no side effect
    assert sched.last_step == 2
    with pytest.raises(TypeError, match="both base_lr and step"):
        sched.get_lr(1.0)


def test_lambda_per_group(make_sgd):
    opt = make_sgd(*BASES)
    sched = fs.LambdaLR(opt, [lambda s: 1 / (s + 1), lambda s: min(1.0, (s + 1) / 3)])
    for s in range(6):
        assert close(opt.param_groups[0]["lr"], 0.1 / (s + 1))
        assert close(opt.param_groups[1]["lr"], 0.05 * min(1.0, (s + 1) / 3))
        sched.step()
