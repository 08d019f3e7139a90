"""The reference backend's functionals against the spec's formulas (docs/semantics.md §1.6, §1.9,
§1.10, §2, §3), computed here independently in float64 NumPy (or float32 NumPy where the spec
fixes float32 arithmetic): maximize, float64 derived quantities to 1e-12, the degenerate
hyperparameters and edge values found by differential fuzzing, and the fused clip mode's bits.

The functionals are called directly (lists of tensors), not through the optimizer classes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowoptim.backends import reference
from flowoptim.backends.reference import ReferenceBackend

INF, NAN = math.inf, math.nan


# ------------------------------------------------------------------------- the spec in NumPy
def f32(x: float) -> float:
    return float(np.float32(x))


def bias_corr(beta1, beta2, t, on):
    if not on:
        return 1.0, 1.0
    return f32(1.0 - beta1**t), f32(1.0 - beta2**t)


def _g(g, p, wd, maximize):
    g = -g if maximize else g
    return g if wd == 0 else g + wd * p


def np_sgd(p, g, s, t, *, lr, momentum, dampening, weight_decay, nesterov, maximize):
    lr, mom, wd = f32(lr), f32(momentum), f32(weight_decay)
    gp = _g(g, p, wd, maximize)
    if "momentum_buffer" not in s:
        return p - lr * gp
    buf = mom * s["momentum_buffer"] + (1.0 - f32(dampening)) * gp
    s["momentum_buffer"] = buf
    return p - lr * (gp + mom * buf if nesterov else buf)


def _np_moments(gp, s, t, beta1, beta2, on):
    b1, b2 = f32(beta1), f32(beta2)
    bc1, bc2 = bias_corr(beta1, beta2, t, on)
    s["exp_avg"] = b1 * s["exp_avg"] + (1.0 - b1) * gp
    s["exp_avg_sq"] = b2 * s["exp_avg_sq"] + (1.0 - b2) * gp * gp
    v = s["exp_avg_sq"]
    if "max_exp_avg_sq" in s:
        v = s["max_exp_avg_sq"] = np.maximum(s["max_exp_avg_sq"], v)
    return s["exp_avg"], v, bc1, bc2


def np_adam(p, g, s, t, *, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay,
            amsgrad, do_bias_correction, maximize):  # fmt: skip
    lr, wd, eps = f32(lr), f32(weight_decay), f32(eps)
    gp = _g(g, p, 0.0 if decoupled_weight_decay else wd, maximize)
    m, v, bc1, bc2 = _np_moments(gp, s, t, beta1, beta2, do_bias_correction)
    new = p - (lr / bc1) * m / (np.sqrt(v) / math.sqrt(bc2) + eps)
    if decoupled_weight_decay and wd != 0:
        new = new - lr * wd * p
    return new


def np_lamb(p, g, s, t, *, lr, beta1, beta2, eps, weight_decay, adam_w_mode, amsgrad,
            do_bias_correction, maximize):  # fmt: skip
    lr, wd, eps = f32(lr), f32(weight_decay), f32(eps)
    gp = _g(g, p, 0.0 if adam_w_mode else wd, maximize)
    m, v, bc1, bc2 = _np_moments(gp, s, t, beta1, beta2, do_bias_correction)
    u = (m / bc1) / (np.sqrt(v) / math.sqrt(bc2) + eps)
    w_norm = math.sqrt(math.fsum((p * p).ravel().tolist()))
    u_norm = math.sqrt(math.fsum((u * u).ravel().tolist()))
    trust = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    return p - (lr * trust) * (u + wd * p if adam_w_mode and wd != 0 else u)


def np_rmsprop(p, g, s, t, *, lr, alpha, eps, weight_decay, momentum, centered, maximize):
    lr, a, eps, wd, mom = f32(lr), f32(alpha), f32(eps), f32(weight_decay), f32(momentum)
    gp = _g(g, p, wd, maximize)
    s["square_avg"] = a * s["square_avg"] + (1.0 - a) * gp * gp
    den = s["square_avg"]
    if centered:
        s["grad_avg"] = a * s["grad_avg"] + (1.0 - a) * gp
        den = den - s["grad_avg"] * s["grad_avg"]
    step = lr * gp / np.sqrt(den + eps)
    if "momentum_buffer" in s:
        s["momentum_buffer"] = mom * s["momentum_buffer"] + step
        return p - s["momentum_buffer"]
    return p - step


def np_adagrad(p, g, s, t, *, lr, lr_decay, weight_decay, eps, maximize):
    lr, decay, wd, eps = f32(lr), f32(lr_decay), f32(weight_decay), f32(eps)
    clr = lr / (1.0 + (t - 1) * decay)
    gp = _g(g, p, wd, maximize)
    s["sum"] = s["sum"] + gp * gp
    return p - clr * gp / (np.sqrt(s["sum"]) + eps)


def np_adadelta(p, g, s, t, *, lr, rho, eps, weight_decay, maximize):
    lr, r, eps, wd = f32(lr), f32(rho), f32(eps), f32(weight_decay)
    gp = _g(g, p, wd, maximize)
    s["square_avg"] = r * s["square_avg"] + (1.0 - r) * gp * gp
    d = np.sqrt(s["acc_delta"] + eps) / np.sqrt(s["square_avg"] + eps) * gp
    s["acc_delta"] = r * s["acc_delta"] + (1.0 - r) * d * d
    return p - lr * d


SPEC = {
    "sgd": np_sgd,
    "adam": np_adam,
    "lamb": np_lamb,
    "rmsprop": np_rmsprop,
    "adagrad": np_adagrad,
    "adadelta": np_adadelta,
}


def state_keys(algo, hp, momentum_buffer=None):
    if algo == "sgd":
        return ["momentum_buffer"] if hp["momentum"] != 0 else []
    if algo in ("adam", "lamb"):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if hp["amsgrad"] else [])
    if algo == "rmsprop":
        keys = ["square_avg"] + (["grad_avg"] if hp["centered"] else [])
        return keys + (["momentum_buffer"] if hp["momentum"] != 0 else [])
    if algo == "adagrad":
        return ["sum"]
    return ["square_avg", "acc_delta"]


# ------------------------------------------------------------------------- calling the backend
def call(backend, algo, params, grads, states, t, hp, grad_scale=None):
    """One functional call; ``states``: one dict of tensor lists per key."""
    if algo == "sgd":
        backend.sgd(params, grads, states.get("momentum_buffer"), grad_scale=grad_scale, **hp)
    elif algo in ("adam", "lamb"):
        fn = backend.adam if algo == "adam" else backend.lamb
        fn(
            params,
            grads,
            states["exp_avg"],
            states["exp_avg_sq"],
            states.get("max_exp_avg_sq"),
            step=t,
            grad_scale=grad_scale,
            **hp,
        )
    elif algo == "rmsprop":
        backend.rmsprop(
            params,
            grads,
            states["square_avg"],
            states.get("grad_avg"),
            states.get("momentum_buffer"),
            grad_scale=grad_scale,
            **hp,
        )
    elif algo == "adagrad":
        backend.adagrad(params, grads, states["sum"], step=t, grad_scale=grad_scale, **hp)
    else:
        backend.adadelta(
            params, grads, states["square_avg"], states["acc_delta"], grad_scale=grad_scale, **hp
        )


def init_states(algo, hp, params, fill=0.0):
    return {
        k: [torch.full_like(p, fill if k == "sum" else 0.0) for p in params]
        for k in state_keys(algo, hp)
    }


def run_both(algo, hp, p0, grads_seq, dtype=torch.float64, fill=0.0, layout="contiguous"):
    """Run the backend (on ``dtype`` tensors) and the NumPy spec (float64) from the same start;
    return ``(got params, got states, expected params, expected states)`` as float64 arrays."""
    params = [make(p, dtype, layout) for p in p0]
    states = init_states(algo, hp, params, fill)
    exp_p = [np.asarray(p, dtype=np.float64) for p in p0]
    exp_s = [{k: np.full(p.shape, fill if k == "sum" else 0.0) for k in states} for p in exp_p]
    backend = ReferenceBackend()
    for t, gs in enumerate(grads_seq, start=1):
        grads = [make(g, dtype, layout) for g in gs]
        keep = [g.clone() for g in grads]
        call(backend, algo, params, grads, states, t, hp)
        for g, k in zip(grads, keep):
            assert torch.equal(g, k), "the user's gradient was modified"
        exp_p = [SPEC[algo](p, np.asarray(g, np.float64), s, t, **hp) for p, g, s in
                 zip(exp_p, gs, exp_s)]  # fmt: skip
    got_p = [p.double().numpy() for p in params]
    got_s = [{k: states[k][i].double().numpy() for k in states} for i in range(len(params))]
    return got_p, got_s, exp_p, exp_s


def make(a, dtype, layout="contiguous"):
    t = torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype)
    if layout == "transposed" and t.dim() == 2:
        return t.t().contiguous().t()  # same values, strides (1, rows)
    return t


def rel_err(got, exp):
    """Worst ``|got - exp| / (|exp| + max|exp|)`` over the finite elements of each tensor: the
    conformance suite's criterion with rtol == atol (an element that cancels to nearly 0 is
    judged against the tensor's magnitude)."""
    worst = 0.0
    for a, b in zip(got, exp):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        fin = np.isfinite(b)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
        assert np.array_equal(a[~fin & ~np.isnan(b)], b[~fin & ~np.isnan(b)]), (a, b)
        if fin.any():
            scale = np.abs(b[fin]).max()
            den = np.abs(b[fin]) + scale + 1e-300
            worst = max(worst, float((np.abs(a[fin] - b[fin]) / den).max()))
    return worst


def assert_spec(got_p, got_s, exp_p, exp_s, tol):
    """Every param and state element within ``tol`` relative plus ``tol`` times the tensor's
    largest magnitude (:func:`rel_err`); NaN/inf exactly."""
    worst = rel_err(got_p, exp_p)
    for gs, es in zip(got_s, exp_s):
        worst = max(worst, rel_err([gs[k] for k in es], [es[k] for k in es]))
    assert worst <= tol, f"worst relative error {worst:.3g} > {tol:g}"
    return worst


# ------------------------------------------------------------------------- the cases
SGD = dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)
ADAM = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
            decoupled_weight_decay=False, amsgrad=False, do_bias_correction=True,
            maximize=False)  # fmt: skip
LAMB = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, adam_w_mode=True,
            amsgrad=False, do_bias_correction=True, maximize=False)  # fmt: skip
RMS = dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
           maximize=False)  # fmt: skip
ADAGRAD = dict(lr=0.1, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
ADADELTA = dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False)
BASE = {"sgd": SGD, "adam": ADAM, "lamb": LAMB, "rmsprop": RMS, "adagrad": ADAGRAD,
        "adadelta": ADADELTA}  # fmt: skip

# hyperparameters whose derived quantities (1 - beta, lr/bc1, lr*wd, 1 - dampening, the decayed
# lr ...) are not float32 values, so that a float32 rounding of them shows at 1e-12
CASES = {
    "sgd": dict(lr=0.1),
    "sgd-wd-maximize": dict(lr=0.1, weight_decay=0.07, maximize=True),
    "sgd-momentum-dampening-wd": dict(momentum=0.9, dampening=0.3, weight_decay=0.07),
    "sgd-nesterov-maximize": dict(momentum=0.7, nesterov=True, maximize=True, weight_decay=0.1),
    "adam": dict(beta1=0.3, beta2=0.77),
    "adam-wd-amsgrad-maximize": dict(weight_decay=0.07, amsgrad=True, maximize=True),
    "adam-no-bias-correction": dict(do_bias_correction=False, beta1=0.3),
    "adamw": dict(weight_decay=0.3, decoupled_weight_decay=True, beta1=0.3),
    "adamw-amsgrad-no-bc-maximize": dict(weight_decay=0.3, decoupled_weight_decay=True,
                                         amsgrad=True, do_bias_correction=False, maximize=True),
    "lamb": dict(weight_decay=0.1, beta1=0.3),
    "lamb-maximize": dict(weight_decay=0.1, maximize=True),
    "lamb-l2-maximize": dict(weight_decay=0.1, adam_w_mode=False, maximize=True),
    "lamb-l2-amsgrad-no-bc": dict(weight_decay=0.1, adam_w_mode=False, amsgrad=True,
                                  do_bias_correction=False, beta2=0.77),
    "rmsprop": dict(alpha=0.3),
    "rmsprop-centered-momentum-maximize": dict(centered=True, momentum=0.5, maximize=True,
                                               weight_decay=0.1, alpha=0.3),
    "rmsprop-alpha-1-centered": dict(alpha=1.0, centered=True),
    "rmsprop-alpha-0-centered": dict(alpha=0.0, centered=True, eps=1e-3),
    "adagrad": dict(lr_decay=0.1, weight_decay=0.1),
    "adagrad-maximize": dict(lr_decay=0.3, maximize=True),
    "adadelta": dict(rho=0.3, weight_decay=0.1),
    "adadelta-maximize-rho-1": dict(rho=1.0, maximize=True),
}  # fmt: skip


def case(name):
    algo = name.split("-")[0].replace("adamw", "adam")
    return algo, {**BASE[algo], **CASES[name]}


def data(seed, shapes=((7,), (3, 4), (1,)), steps=3):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]
    return p0, grads


@pytest.fixture(params=["fused", "foreach"])
def path(request, monkeypatch):
    """Run with torch's fused CPU kernels (where the backend takes them) or without."""
    if request.param == "foreach":
        monkeypatch.setattr(reference, "_HAS_FUSED", False)
        monkeypatch.setattr(reference, "_HAS_FUSED_ADAGRAD", False)
    return request.param


# the bound the conformance suite applies to float64 (spec §1.10)
F64_TOL = 1e-12


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_matches_spec_to_1e12(name, path, layout):
    algo, hp = case(name)
    p0, grads = data(7)
    fill = 0.1 if algo == "adagrad" else 0.0
    got = run_both(algo, hp, p0, grads, fill=fill, layout=layout)
    assert_spec(*got, F64_TOL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_matches_spec(name, path):
    algo, hp = case(name)
    p0, grads = data(8)
    fill = 0.1 if algo == "adagrad" else 0.0
    got = run_both(algo, hp, p0, grads, dtype=torch.float32, fill=fill)
    # float32 arithmetic (and a cancelling r - a*a for centered alpha 0.3 after 3 steps)
    assert_spec(*got, 2e-5)


@pytest.mark.parametrize("algo", sorted(BASE))
def test_maximize_is_minimizing_the_negated_gradient(algo, path):
    # maximize with g equals minimize with -g, for params and state, bit for bit
    hp = {**BASE[algo], "weight_decay": 0.1}
    if algo == "sgd":
        hp["momentum"] = 0.9
    p0, grads = data(3, steps=2)
    fill = 0.1 if algo == "adagrad" else 0.0
    results = []
    for maximize in (False, True):
        params = [make(p, torch.float32) for p in p0]
        states = init_states(algo, hp, params, fill)
        for t, gs in enumerate(grads, start=1):
            g = [make(-x if maximize else x, torch.float32) for x in gs]
            keep = [x.clone() for x in g]
            call(ReferenceBackend(), algo, params, g, states, t, {**hp, "maximize": maximize})
            assert all(torch.equal(a, b) for a, b in zip(g, keep))
        results.append((params, states))
    (p1, s1), (p2, s2) = results
    for a, b in zip(p1, p2):
        assert torch.equal(a, b)
    for k in s1:
        for a, b in zip(s1[k], s2[k]):
            # m has the sign of g: maximizing -g builds the same m as minimizing g
            assert torch.equal(a, b), k


# ------------------------------------------------------------------------- degenerate betas
@pytest.mark.parametrize("do_bias_correction", [True, False])
@pytest.mark.parametrize("variant", ["adam", "adamw", "lamb", "lamb-l2"])
@pytest.mark.parametrize("betas", [(0.9, 0.99999999), (0.99999999, 0.9)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_betas_that_round_to_one(betas, variant, do_bias_correction, dtype, path):
    # fuzz reproducer: Adam([p], lr=0.1, betas=(0.9, 0.99999999)) raised ZeroDivisionError
    # (also without bias correction); betas=(0.99999999, 0.9) gave NaN where m = 0
    assert f32(max(betas)) == 1.0
    algo = "lamb" if variant.startswith("lamb") else "adam"
    hp = {**BASE[algo], "beta1": betas[0], "beta2": betas[1], "lr": 0.1,
          "do_bias_correction": do_bias_correction}  # fmt: skip
    if variant == "adamw":
        hp.update(decoupled_weight_decay=True, weight_decay=0.2)
    elif variant == "lamb":
        hp.update(weight_decay=0.2)
    elif variant == "lamb-l2":
        hp.update(weight_decay=0.2, adam_w_mode=False)
    p0 = [np.array([1.0, -2.0, 3.0])]
    grads = [[np.array([0.5, -1.0, 2.0])], [np.array([0.25, 1.0, -1.5])]]
    got_p, got_s, exp_p, exp_s = run_both(algo, hp, p0, grads, dtype=dtype)
    assert all(np.isfinite(p).all() for p in got_p)
    if betas[0] > 0.9 and variant in ("adam", "adamw"):
        # m stays 0: Adam leaves p alone, AdamW only decays (spec, Note [degenerate ...])
        decay = (1.0 - f32(0.1) * f32(0.2)) ** 2 if variant == "adamw" else 1.0
        np.testing.assert_allclose(got_p[0], np.array([1.0, -2.0, 3.0]) * decay, rtol=1e-6)
    assert_spec(got_p, got_s, exp_p, exp_s, 1e-12 if dtype == torch.float64 else 2e-6)


# ------------------------------------------------------------------------- degenerate momentum
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sgd_momentum_that_rounds_to_zero(nesterov, dtype, path):
    # fuzz reproducer: SGD(momentum=1e-46) got a buffer list (momentum != 0 in Python) and
    # torch's fused SGD raised "Expected momentum_buffer_list.empty()"
    hp = {**SGD, "momentum": 1e-46, "dampening": 0.25, "nesterov": nesterov,
          "weight_decay": 0.1}  # fmt: skip
    assert f32(hp["momentum"]) == 0.0
    p0, grads = data(5, steps=2)
    got_p, got_s, exp_p, exp_s = run_both("sgd", hp, p0, grads, dtype=dtype)
    # buf = 0*buf + (1 - dampening)*g' after every step, p -= lr*buf (nesterov: g' + 0*buf)
    assert_spec(got_p, got_s, exp_p, exp_s, 1e-12 if dtype == torch.float64 else 2e-6)


# ------------------------------------------------------------------------- overflow
def _f32_adam_no_bc(lr, grads, decoupled=False, wd=0.0):
    """Adam without bias correction in float32 NumPy arithmetic, left to right."""
    one = np.float32
    p = np.zeros(3, np.float32)
    m = np.zeros(3, np.float32)
    v = np.zeros(3, np.float32)
    b1, b2, lr, eps, wd = one(0.9), one(0.999), one(lr), one(1e-8), one(wd)
    with np.errstate(over="ignore", invalid="ignore"):
        for g in grads:
            g = np.asarray(g, np.float32)
            m = b1 * m + (one(1) - b1) * g
            v = b2 * v + (one(1) - b2) * g * g
            upd = (lr / one(1)) * m / (np.sqrt(v) / one(1) + eps)
            p = p - upd - (lr * wd * p if decoupled else one(0))
    return p


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_without_bias_correction_does_not_overflow_to_nan(decoupled, path):
    # fuzz reproducer: lr 1.9, grads [1e38, .5, -.5] then [.5, .5, .5], no bias correction:
    # the kernel's lr rescaling overflowed (lr/sqrt(1 - beta2)) * m to inf, and inf/inf = NaN
    hp = {**ADAM, "lr": 1.9, "do_bias_correction": False, "decoupled_weight_decay": decoupled}
    grads = [[1e38, 0.5, -0.5], [0.5, 0.5, 0.5]]
    p = [torch.zeros(3)]
    states = init_states("adam", hp, p)
    for t, g in enumerate(grads, start=1):
        call(ReferenceBackend(), "adam", p, [torch.tensor(g)], states, t, hp)
    expected = _f32_adam_no_bc(1.9, grads, decoupled)
    assert torch.isfinite(p[0]).all(), p[0]
    assert p[0][0].item() == 0.0  # v overflowed to inf: (lr*m)/inf = 0, as in torch.optim.Adam
    np.testing.assert_allclose(p[0].numpy(), expected, rtol=1e-6)
    ref = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([ref], lr=1.9)  # bias correction cannot be turned off: step 1 only
    ref.grad = torch.tensor(grads[0])
    opt.step()
    assert torch.isfinite(ref).all()


# ------------------------------------------------------------------------- centered RMSprop
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_centered_rmsprop_alpha_zero_gives_zero_variance(dtype, path):
    # fuzz reproducer: RMSprop([zeros(3)], lr=0.1, alpha=0, eps=1e-8, centered=True): the
    # reference gave [-128.99, 128.75, -460.48] (addcmul(r, a, a, -1) kept the unrounded a*a)
    hp = {**RMS, "lr": 0.1, "alpha": 0.0, "eps": 1e-8, "centered": True}
    g = [0.1257302, -0.1321049, 0.6404226]
    p = [torch.zeros(3, dtype=dtype)]
    states = init_states("rmsprop", hp, p)
    call(ReferenceBackend(), "rmsprop", p, [torch.tensor(g, dtype=dtype)], states, 1, hp)
    # r = g*g and a = g, so r - a*a = 0 exactly (a*a rounded): p = -lr*g/sqrt(eps)
    if dtype == torch.float32:
        gg = np.asarray(g, np.float32)
        expected = -(np.float32(0.1) * gg) / np.sqrt(np.float32(1e-8))
    else:
        gg = np.asarray(g, np.float64)
        expected = -(f32(0.1) * gg) / math.sqrt(f32(1e-8))
    np.testing.assert_allclose(p[0].numpy(), expected, rtol=1e-6 if dtype == torch.float32 else 0)
    np.testing.assert_allclose(p[0].numpy(), [-125.7302, 132.1049, -640.4226], rtol=1e-5)


def test_rmsprop_alpha_one_keeps_the_averages():
    hp = {**RMS, "lr": 0.1, "alpha": 1.0, "centered": True, "momentum": 0.5}
    p = [torch.zeros(3, dtype=torch.float64)]
    states = init_states("rmsprop", hp, p)
    states["square_avg"][0].fill_(4.0)
    states["grad_avg"][0].fill_(1.0)
    g = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    call(ReferenceBackend(), "rmsprop", p, [g], states, 1, hp)
    assert states["square_avg"][0].tolist() == [4.0, 4.0, 4.0]
    assert states["grad_avg"][0].tolist() == [1.0, 1.0, 1.0]
    expected = -(f32(0.1) * g.numpy()) / math.sqrt(3.0 + f32(1e-8))
    np.testing.assert_allclose(p[0].numpy(), expected, rtol=1e-15)


# ------------------------------------------------------------------------- weight_decay == 0
@pytest.mark.parametrize(
    "variant",
    ["sgd", "sgd-momentum", "adam", "adamw", "lamb", "lamb-l2", "rmsprop", "adagrad",
     "adadelta"],
)  # fmt: skip
@pytest.mark.parametrize("bad", [INF, -INF, NAN])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_zero_weight_decay_adds_nothing_to_nonfinite_params(variant, bad, dtype, path):
    # spec §1.6: wd == 0 adds nothing, even where p is inf or NaN (0 * inf would be NaN)
    algo = variant.split("-")[0].replace("adamw", "adam")
    hp = {**BASE[algo], "weight_decay": 0.0}
    if variant == "sgd-momentum":
        hp["momentum"] = 0.9
    elif variant == "adamw":
        hp["decoupled_weight_decay"] = True
    elif variant == "lamb-l2":
        hp["adam_w_mode"] = False
    p = [torch.tensor([bad, 1.0, -2.0], dtype=dtype)]
    states = init_states(algo, hp, p, 0.1 if algo == "adagrad" else 0.0)
    g = torch.tensor([0.5, -0.25, 1.0], dtype=dtype)
    call(ReferenceBackend(), algo, p, [g], states, 1, hp)
    for k, (s,) in states.items():
        assert torch.isfinite(s).all(), (k, s)  # the state never saw wd*p
    if algo != "lamb":  # LAMB: ||p|| is inf/NaN, so is every trust-ratio step (the spec's)
        assert torch.isfinite(p[0][1:]).all()
        if math.isnan(bad):
            assert p[0][0].isnan()
        else:
            assert p[0][0].item() == bad


# ------------------------------------------------------------------------- fused clip bits
def _grads(kind):
    """One partition's gradients of a layout/dtype kind (several 0-d tensors, so that a wrong
    rounding of any of them shows in the fp16 params and state)."""
    gen = torch.Generator().manual_seed(11)
    if kind in ("0d-fp32", "0d-fp16"):
        dtype = torch.float32 if kind == "0d-fp32" else torch.float16
        return list(torch.randn(16, generator=gen).to(dtype).unbind(0))  # 0-d views
    if kind == "fp16":
        return [torch.randn(300, generator=gen).half()]
    if kind == "bf16":
        return [torch.randn(300, generator=gen).bfloat16()]
    if kind == "sliced-fp32":
        return [torch.randn(40, 30, generator=gen)[::2, 1:25]]  # non-contiguous, non-dense
    if kind == "transposed-fp32":
        return [torch.randn(30, 20, generator=gen).t()]
    if kind == "fp64":
        return [torch.randn(300, generator=gen, dtype=torch.float64)]
    raise AssertionError(kind)


def _copy_layout(g):
    """A copy of ``g`` with its strides (a clone of its base, viewed the same way)."""
    if g.is_contiguous():
        return g.clone()
    base = torch.empty(g.untyped_storage().nbytes() // g.element_size(), dtype=g.dtype)
    out = base.as_strided(g.shape, g.stride(), g.storage_offset())
    out.copy_(g)
    return out


KINDS = ["0d-fp32", "0d-fp16", "fp16", "bf16", "sliced-fp32", "transposed-fp32", "fp64"]


def _coef(g):
    dt = torch.float64 if g.dtype == torch.float64 else torch.float32
    return torch.tensor(0.3183099, dtype=dt)  # 1/pi: every product rounds


@pytest.mark.parametrize("kind", KINDS)
def test_scale_in_place_equals_scaled_copy(kind):
    gs = _grads(kind)
    c = _coef(gs[0])
    inplace = [_copy_layout(g) for g in gs]
    ReferenceBackend().scale_(inplace, c)
    out = reference._scaled(gs, c)
    compute = torch.float64 if gs[0].dtype == torch.float64 else torch.float32
    for g, a, b in zip(gs, inplace, out):
        assert a.dtype == b.dtype == g.dtype
        assert a.shape == b.shape == g.shape
        assert a.stride() == g.stride()
        assert torch.equal(a, b)
        # both are the upcast product, rounded to the grad's dtype
        assert torch.equal(b, (g.to(compute) * c).to(g.dtype))


def test_scale_in_place_on_a_mixed_list():
    # one call over tensors of several dtypes and layouts: each gets its own compute dtype
    gs = [g for kind in KINDS for g in _grads(kind)]
    c = torch.tensor(0.3183099)
    inplace = [_copy_layout(g) for g in gs]
    ReferenceBackend().scale_(inplace, c)
    for g, a in zip(gs, inplace):
        (b,) = reference._scaled([g], c.to(torch.float64 if g.dtype == torch.float64 else c.dtype))
        assert a.dtype == g.dtype
        assert torch.equal(a, b)


CLIP_CASES = {
    "sgd": {**SGD, "momentum": 0.9, "weight_decay": 0.1, "maximize": True},
    "adam": {**ADAM, "weight_decay": 0.1},
    "adamw": {**ADAM, "weight_decay": 0.1, "decoupled_weight_decay": True},
    "lamb": {**LAMB, "weight_decay": 0.1},
    "rmsprop": {**RMS, "centered": True, "momentum": 0.5},
    "adagrad": {**ADAGRAD, "lr_decay": 0.1},
    "adadelta": {**ADADELTA, "weight_decay": 0.1},
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(CLIP_CASES))
def test_grad_scale_gives_the_bits_of_an_in_place_clip(name, kind):
    # spec §3, Note [grad_scale]: functional(grad_scale=c) == scale_(copy of grads, c) then
    # functional(grad_scale=None), bit for bit, for params and state
    algo = "adam" if name == "adamw" else name
    hp = CLIP_CASES[name]
    g0 = _grads(kind)
    c = _coef(g0[0])
    runs = []
    for fused_clip in (True, False):
        gen = torch.Generator().manual_seed(5)
        p = [torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g.dtype) for g in g0]
        states = init_states(algo, hp, p, 0.1 if algo == "adagrad" else 0.0)
        backend = ReferenceBackend()
        for t in (1, 2):
            g = [_copy_layout(x * t) for x in g0]
            keep = [x.clone() for x in g]
            if fused_clip:
                call(backend, algo, p, g, states, t, hp, grad_scale=c)
                assert all(map(torch.equal, g, keep))  # the grads are left unscaled
            else:
                backend.scale_(g, c)
                call(backend, algo, p, g, states, t, hp)
        runs.append((p, states))
    (p1, s1), (p2, s2) = runs
    for a, b in zip(p1, p2):
        assert a.dtype == g0[0].dtype
        assert torch.equal(a, b), (a - b).abs().max()
    for k in s1:
        for a, b in zip(s1[k], s2[k]):
            assert torch.equal(a, b), k


# ------------------------------------------------------------------------- the fast path stays
def _count(monkeypatch, name):
    calls = []
    real = getattr(torch, name)

    def counting(*args, **kw):
        calls.append(kw)
        return real(*args, **kw)

    monkeypatch.setattr(torch, name, counting)
    return calls


@pytest.mark.parametrize(
    ("algo", "hp", "kernel", "expect"),
    [
        ("adam", ADAM, "_fused_adam_", True),
        ("adam", {**ADAM, "do_bias_correction": False}, "_fused_adam_", True),
        ("adam", {**ADAM, "maximize": True, "weight_decay": 0.1}, "_fused_adam_", True),
        ("adam", {**ADAM, "decoupled_weight_decay": True, "weight_decay": 0.1},
         "_fused_adamw_", True),
        ("adam", {**ADAM, "beta2": 0.99999999}, "_fused_adam_", False),
        ("adam", {**ADAM, "beta1": 0.99999999}, "_fused_adam_", False),
        ("lamb", {**LAMB, "maximize": True}, "_fused_adam_", True),
        ("lamb", {**LAMB, "beta2": 0.99999999}, "_fused_adam_", False),
        ("sgd", {**SGD, "momentum": 0.9, "maximize": True}, "_fused_sgd_", True),
        ("sgd", {**SGD, "momentum": 1e-46}, "_fused_sgd_", False),
        ("adagrad", {**ADAGRAD, "lr_decay": 0.1, "maximize": True}, "_fused_adagrad_", True),
    ],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_kernels_stay_the_fast_path(algo, hp, kernel, expect, dtype, monkeypatch):
    calls = _count(monkeypatch, kernel)
    p = [torch.randn(5, dtype=dtype)]
    states = init_states(algo, hp, p)
    call(ReferenceBackend(), algo, p, [torch.randn(5, dtype=dtype)], states, 3, hp)
    assert bool(calls) == expect
    if expect and algo != "lamb":
        assert calls[0]["maximize"] == hp["maximize"]  # the kernel negates, no extra pass
