"""A warm optimizer (several steps taken: every per-step cache filled) must behave exactly as a
cold one (nothing cached: the full path) after any change between two steps.

Each case takes ``WARM`` steps on an optimizer, builds a *cold twin* (a new optimizer on clones
of the same params, grads and state, same step count, its own backend instance), applies the
same mutation to both, steps both, and compares: the same exception type and message, or the
same params and state bit for bit (Note [step phases]: a bad input raises before
anything changes, so an error must also leave the warm optimizer's params and state as they
were). What this guards: the per-step checks (Note [state check cache], Note [vectorized step
checks] in ``flowoptim.optimizer``) and, with the Triton backend, the plan and ``scal`` caches
(Note [plan cache] in ``flowoptim_triton.launch``), and any whole-step fast path added later.
``BACKENDS`` is extended by the Triton tests, which import this module.
"""

from __future__ import annotations

import copy

import pytest
import torch

import flowoptim as fo

#: steps taken before the mutation (the caches are filled after the first)
WARM = 3
#: backend factories the cases run on (the Triton tests add theirs)
BACKENDS = {"reference": lambda: "reference"}


def _make(kind: str, backend, params, **extra):
    if kind == "adam":
        return fo.Adam(params, lr=1e-2, weight_decay=0.1, backend=backend, **extra)
    if kind == "lamb":
        return fo.LAMB(params, lr=1e-2, weight_decay=0.1, backend=backend, **extra)
    if kind == "sgd":
        return fo.SGD(params, lr=1e-1, momentum=0.9, backend=backend, **extra)
    raise AssertionError(kind)


def _params(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7,), (3, 4), (4, 4), (1,), (5, 3)]
    ps = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    return ps


def _grads(ps, seed: int) -> None:
    gen = torch.Generator().manual_seed(100 + seed)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=gen)


def _twin(opt, kind: str, backend_factory, **extra):
    """A new optimizer on clones of ``opt``'s params, grads and state: nothing cached."""
    mapping = {}
    groups = []
    for g in opt.param_groups:
        ps = []
        for p in g["params"]:
            q = p.detach().clone().requires_grad_(p.requires_grad)
            q.grad = None if p.grad is None else p.grad.clone()
            mapping[p] = q
            ps.append(q)
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ps})
    twin = _make(kind, backend_factory(), groups[0]["params"], **extra)
    twin.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
    for g in groups[1:]:
        twin.add_param_group(g)
    for g, tg in zip(opt.param_groups, twin.param_groups):
        tg["step"] = g["step"]
    for p, q in mapping.items():
        if p in opt.state:
            twin.state[q] = {
                k: v.clone() if isinstance(v, torch.Tensor) else copy.copy(v)
                for k, v in opt.state[p].items()
            }
    return twin


def _snapshot(opt):
    out = []
    for g in opt.param_groups:
        for p in g["params"]:
            st = opt.state.get(p, {})
            out.append(
                (
                    p.detach().clone(),
                    {k: v.clone() for k, v in st.items() if isinstance(v, torch.Tensor)},
                )
            )
    return out


def _bits(t: torch.Tensor):
    """Shape, dtype, strides and exact bits (so NaNs and signed zeros compare too)."""
    if t.is_meta:  # no values
        return (t.shape, t.dtype, "meta")
    ints = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return (t.shape, t.dtype, t.stride(), t.contiguous().view(ints).flatten().tolist())


def _outcome(opt, clip: str | None):
    try:
        if clip is not None:
            opt.clip_grad(fused=clip == "fused")
        opt.step()
    except Exception as e:  # the outcome compared is the exception itself
        return ("raised", type(e), str(e))
    return ("ok",)


def _assert_same(warm, cold):
    a, b = _snapshot(warm), _snapshot(cold)
    assert len(a) == len(b)
    for (pa, sa), (pb, sb) in zip(a, b):
        assert _bits(pa) == _bits(pb)
        assert sa.keys() == sb.keys()
        for k in sa:
            assert _bits(sa[k]) == _bits(sb[k]), k
    assert warm.global_step == cold.global_step


def _check(kind, backend_name, mutate, clip=None, **extra):
    factory = BACKENDS[backend_name]
    ps = _params()
    groups = ps if clip is None else [{"params": ps, "clip_grad_max_norm": 1.0}]
    opt = _make(kind, factory(), groups, **extra)
    for s in range(WARM):
        _grads(ps, s)
        if clip is not None:
            opt.clip_grad(fused=clip == "fused")
        opt.step()
    _grads(ps, WARM)
    cold = _twin(opt, kind, factory, **extra)
    # the same mutation, on each optimizer's own objects
    mutate(opt)
    mutate(cold)
    before = _snapshot(opt)
    out_warm = _outcome(opt, clip)
    out_cold = _outcome(cold, clip)
    assert out_warm == out_cold
    if out_warm[0] == "raised":
        # nothing changed on the warm optimizer (Note [step phases])
        after = _snapshot(opt)
        for (p0, s0), (p1, s1) in zip(before, after):
            assert _bits(p0) == _bits(p1)
            assert s0.keys() == s1.keys() and all(_bits(s0[k]) == _bits(s1[k]) for k in s0)
    else:
        _assert_same(opt, cold)
    return out_warm


def _p(opt, i):
    return opt.param_groups[0]["params"][i]


def _st(opt, i):
    return opt.state[_p(opt, i)]


def _set_grad(i, make):
    def mutate(opt):
        p = _p(opt, i)
        g = make(p)
        if g is not None and g.dtype != p.dtype:
            p.grad_dtype = None  # torch refuses a grad of another dtype otherwise
        p.grad = g

    return mutate


def _replace_state(i, key, make):
    def mutate(opt):
        st = _st(opt, i)
        st[key] = make(st[key])

    return mutate


def _inplace_state(i, key, fn):
    def mutate(opt):
        with torch.no_grad():
            fn(_st(opt, i)[key])

    return mutate


def _resize_param(opt):
    p = _p(opt, 2)
    p.requires_grad_(False)
    with torch.no_grad():
        p.resize_(2, 8)
    p.requires_grad_(True)


def _data_assign(shape):
    def mutate(opt):
        p = _p(opt, 1)
        p.data = torch.full(shape, 0.5)

    return mutate


def _add_group(opt):
    q = torch.full((6,), 0.25, requires_grad=True)
    q.grad = torch.full((6,), 0.125)
    opt.add_param_group({"params": [q], "lr": 3e-3})


def _append_param(opt):
    q = torch.full((2, 2), 0.25, requires_grad=True)
    q.grad = torch.full((2, 2), -0.125)
    opt.param_groups[0]["params"].append(q)


def _drop_param(opt):
    del opt.param_groups[0]["params"][1]


def _swap_params(opt):
    ps = opt.param_groups[0]["params"]
    ps[0], ps[3] = ps[3], ps[0]


def _edit_group(key, value):
    def mutate(opt):
        opt.param_groups[0][key] = value

    return mutate


def _reload_state(opt):
    sd = opt.state_dict()
    for st in sd["state"].values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                st[k] = v * 0.5
    opt.load_state_dict(sd)


def _clear_state(i):
    def mutate(opt):
        opt.state[_p(opt, i)].clear()

    return mutate


def _requires_grad_off(opt):
    _p(opt, 0).requires_grad_(False)


def _sparse_grad(opt):
    p = _p(opt, 4)
    idx = torch.tensor([[0, 3, 3]])
    vals = torch.ones(3, 3)
    p.grad = torch.sparse_coo_tensor(idx, vals, p.shape, check_invariants=True)


def _nothing(opt):
    pass


#: name -> mutation applied to both optimizers between two steps
MUTATIONS = {
    "nothing": _nothing,
    "grad wrong dtype": _set_grad(1, lambda p: torch.zeros(p.shape, dtype=torch.float64)),
    "grad transposed view": _set_grad(2, lambda p: torch.arange(16.0).reshape(4, 4).t() / 8),
    "grad None": _set_grad(3, lambda p: None),
    "grad replaced, same metadata": _set_grad(0, lambda p: torch.full(p.shape, 0.75)),
    "grad resized in place": lambda opt: _p(opt, 1).grad.resize_(4, 3),
    "grad unsqueezed in place": lambda opt: _p(opt, 0).grad.unsqueeze_(0),
    "grad .data reassigned": lambda opt: setattr(
        _p(opt, 1).grad, "data", torch.zeros(3, 4, dtype=torch.float64)
    ),
    "sparse grad": _sparse_grad,
    "state replaced wrong shape": _replace_state(1, None, None),  # filled per kind below
    "state replaced int dtype": None,
    "state replaced meta": None,
    "state replaced float64": None,
    "state resized in place": None,
    "state transposed in place": None,
    "state .data wrong dtype": None,
    "state cleared": _clear_state(1),
    "param resized in place": _resize_param,
    "param .data same shape": _data_assign((3, 4)),
    "param .data other shape": _data_assign((4, 3)),
    "param transposed in place": lambda opt: (
        _p(opt, 2).requires_grad_(False),
        _p(opt, 2).t_(),
        _p(opt, 2).requires_grad_(True),
    ),
    "lr edited": _edit_group("lr", 5e-2),
    "weight_decay edited": _edit_group("weight_decay", 0.0),
    "add_param_group": _add_group,
    "param appended to group list": _append_param,
    "param removed from group list": _drop_param,
    "params reordered": _swap_params,
    "groups list emptied": lambda opt: opt.param_groups.clear(),
    "state dict loaded": _reload_state,
    "requires_grad off": _requires_grad_off,
}

#: the first state key of each kind (the mutated one)
STATE_KEY = {"adam": "exp_avg", "lamb": "exp_avg", "sgd": "momentum_buffer"}


def _mutation(name: str, kind: str):
    key = STATE_KEY[kind]
    if name == "state replaced wrong shape":
        return _replace_state(1, key, lambda v: torch.zeros(v.numel()))
    if name == "state replaced int dtype":
        return _replace_state(1, key, lambda v: torch.zeros(v.shape, dtype=torch.int32))
    if name == "state replaced meta":
        return _replace_state(1, key, lambda v: torch.empty(v.shape, device="meta"))
    if name == "state replaced float64":
        return _replace_state(4, key, lambda v: v.double())
    if name == "state resized in place":
        return _inplace_state(1, key, lambda v: v.resize_(4, 3))
    if name == "state transposed in place":
        return _inplace_state(2, key, lambda v: v.t_())
    if name == "state .data wrong dtype":
        return _inplace_state(1, key, lambda v: setattr(v, "data", v.double()))
    return MUTATIONS[name]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("kind", ["adam", "lamb", "sgd"])
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_between_steps(backend, kind, name):
    # (LAMB refuses a sparse gradient: the error must be the same too)
    _check(kind, backend, _mutation(name, kind))


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("clip", ["inplace", "fused"])
@pytest.mark.parametrize(
    "name", ["nothing", "grad wrong dtype", "grad None", "param .data same shape", "lr edited"]
)
def test_mutation_between_clipped_steps(backend, clip, name):
    _check("adam", backend, _mutation(name, "adam"), clip=clip)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_amsgrad_switched_on(backend):
    out = _check("adam", backend, _edit_group("amsgrad", True))
    assert out == ("ok",)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("kind", ["adam", "lamb"])
def test_many_warm_steps_bit_identical(backend, kind):
    """N steps of one optimizer (caches warm after the first) equal N single steps, each by a
    new optimizer loaded with the previous one's state (always the full path)."""
    factory = BACKENDS[backend]
    ps = _params()
    warm = _make(kind, factory(), ps)
    qs = [p.detach().clone().requires_grad_() for p in ps]
    cold = _make(kind, factory(), qs)
    for s in range(6):
        _grads(ps, s)
        _grads(qs, s)
        warm.step()
        cold.step()
        cold = _twin(cold, kind, factory)
        qs = cold.param_groups[0]["params"]
        for p, q in zip(ps, qs):
            assert torch.equal(p, q)
            for k, v in warm.state[p].items():
                assert torch.equal(v, cold.state[q][k]), k
