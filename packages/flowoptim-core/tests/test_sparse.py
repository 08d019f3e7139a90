"""Sparse gradients: lazy updates of the rows present (spec §5), reference backend."""

from __future__ import annotations

import pytest
import torch

import flowoptim as fo

OPTIMIZERS = {
    "sgd": lambda ps: fo.SGD(ps, lr=0.1),
    "sgd-momentum": lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd-nesterov-max": lambda ps: fo.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, maximize=True),
    "adam": lambda ps: fo.Adam(ps, lr=0.01, weight_decay=0.1),
    "adam-amsgrad-nobc": lambda ps: fo.Adam(ps, lr=0.01, amsgrad=True, do_bias_correction=False),
    "adamw": lambda ps: fo.AdamW(ps, lr=0.01, weight_decay=0.1, maximize=True),
    "adamw-amsgrad": lambda ps: fo.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def coo(rows, values, shape):
    """A COO gradient with sparse dim 0 (uncoalesced: rows may repeat)."""
    return torch.sparse_coo_tensor(
        torch.tensor([rows], dtype=torch.int64), values, shape, check_invariants=True
    )


def rand(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)


def state_of(opt, p):
    return {k: v.clone() for k, v in opt.state[p].items() if k != "step"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_all_rows_present_equals_dense_bit_for_bit(name, dtype):
    shape = (6, 2, 3)
    a = rand(shape, dtype, 0).requires_grad_()
    b = a.detach().clone().requires_grad_()
    oa, ob = OPTIMIZERS[name]([a]), OPTIMIZERS[name]([b])
    for step in range(3):
        g = rand(shape, dtype, 10 + step)
        a.grad = g
        # every row, in shuffled order and uncoalesced: coalescing sorts them
        order = [3, 0, 5, 1, 4, 2]
        b.grad = coo(order, g[order], shape)
        oa.step()
        ob.step()
    assert torch.equal(a, b)
    sa, sb = state_of(oa, a), state_of(ob, b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_rows_absent_keep_param_and_state_exactly(name, dtype):
    shape = (8, 4)
    p = rand(shape, dtype, 1).requires_grad_()
    ref = p.detach().clone().requires_grad_()  # dense twin: updated on the same rows only
    opt, opt_ref = OPTIMIZERS[name]([p]), OPTIMIZERS[name]([ref])
    # step 1: every row present (== dense bit for bit), so both start step 2 from the same state
    p.grad = coo(list(range(8)), rand(shape, dtype, 2), shape)
    ref.grad = p.grad.to_dense()
    opt.step()
    opt_ref.step()
    before_p, before_s = p.detach().clone(), state_of(opt, p)
    vals = rand((3, 4), dtype, 3)
    p.grad = coo([5, 1, 5], vals, shape)  # rows {1, 5}; row 5 twice
    opt.step()
    assert opt.state[p]["step"].item() == 2.0
    untouched = [0, 2, 3, 4, 6, 7]
    assert torch.equal(p.detach()[untouched], before_p[untouched])
    for k, v in state_of(opt, p).items():
        assert torch.equal(v[untouched], before_s[k][untouched]), k
    # the rows present: the dense update of those rows (rows 1 and 5 of a dense twin, whose
    # other rows got a zero gradient), with the duplicate rows summed first
    dense = torch.zeros(shape, dtype=dtype)
    dense[1] = vals[1]
    dense[5] = vals[0] + vals[2]
    ref.grad = dense
    opt_ref.step()
    assert torch.equal(p.detach()[[1, 5]], ref.detach()[[1, 5]])
    for k, v in state_of(opt, p).items():
        assert torch.equal(v[[1, 5]], opt_ref.state[ref][k][[1, 5]]), k


def test_adamw_decays_only_rows_present_and_uses_the_optimizer_step():
    p = torch.ones(4, 2, requires_grad=True)
    opt = fo.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = coo([0], torch.ones(1, 2), (4, 2))
    opt.step()
    p.grad = coo([1], torch.ones(1, 2), (4, 2))
    opt.step()  # row 1's first update, at optimizer step 2: bias corrections of t = 2
    assert torch.equal(p.detach()[2:], torch.ones(2, 2))  # never present: not decayed
    # row 1 at t = 2: m = 0.1, v = 0.001 with the bias corrections of t = 2
    bc1, bc2 = fo.backends.bias_corrections(0.9, 0.999, 2, True)
    m, v = fo.backends.f32(1 - fo.backends.f32(0.9)), fo.backends.f32(1 - fo.backends.f32(0.999))
    expected = 1.0 - 0.1 * 0.5 - (0.1 / bc1) * m / ((v**0.5) / (bc2**0.5) + 1e-8)
    torch.testing.assert_close(p.detach()[1], torch.full((2,), expected), rtol=2e-6, atol=0)


def test_lazy_adam_matches_torch_sparse_adam():
    shape = (50, 3)
    p = rand(shape, torch.float64, 4).requires_grad_()
    q = p.detach().clone().requires_grad_()
    ours = fo.Adam([p], lr=0.01)
    theirs = torch.optim.SparseAdam([q], lr=0.01)
    gen = torch.Generator().manual_seed(5)
    for step in range(4):
        rows = torch.randint(0, 50, (20,), generator=gen).tolist()
        g = coo(rows, rand((20, 3), torch.float64, 100 + step), shape)
        p.grad, q.grad = g, g.clone()
        ours.step()
        theirs.step()
    # torch counts steps per parameter; here every step has a gradient, so t agrees; the betas
    # act as float32 in flowoptim (Note [float32 hyperparameters]): 1 - f32(0.999) is 1.3e-5
    # relative off 0.001, which is the largest relative difference (of exp_avg_sq)
    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(ours.state[p][k], theirs.state[q][k], rtol=2e-5, atol=0)


@pytest.mark.parametrize("name", ["sgd-momentum", "adam", "adamw-amsgrad"])
def test_empty_sparse_gradient_changes_nothing(name):
    p = rand((5, 2), torch.float32, 6).requires_grad_()
    opt = OPTIMIZERS[name]([p])
    p.grad = rand((5, 2), torch.float32, 7)
    opt.step()
    before_p, before_s = p.detach().clone(), state_of(opt, p)
    p.grad = torch.sparse_coo_tensor(
        torch.zeros(1, 0, dtype=torch.int64), torch.zeros(0, 2), (5, 2), check_invariants=True
    )
    opt.step()
    assert torch.equal(p.detach(), before_p)
    for k, v in state_of(opt, p).items():
        assert torch.equal(v, before_s[k]), k
    assert opt.global_step == 2 and opt.state[p]["step"].item() == 2.0


@pytest.mark.parametrize("name", ["sgd-momentum", "adamw"])
def test_dense_and_sparse_mix_in_a_group_and_across_steps(name):
    shapes = [(6, 2), (4,), (3, 3)]
    ps = [rand(s, torch.float32, i).requires_grad_() for i, s in enumerate(shapes)]
    twins = [p.detach().clone().requires_grad_() for p in ps]
    opt, opt_twin = OPTIMIZERS[name](ps), OPTIMIZERS[name](twins)
    for step in range(4):
        for i, (p, t) in enumerate(zip(ps, twins)):
            g = rand(p.shape, torch.float32, 20 + 10 * step + i)
            t.grad = g
            # alternate: sparse with every row (== dense bit for bit) or dense, per param
            p.grad = g.to_sparse(1) if (step + i) % 2 else g.clone()
        opt.step()
        opt_twin.step()
    for p, t in zip(ps, twins):
        assert torch.equal(p, t)


def test_one_dimensional_parameter():
    p = torch.zeros(5, requires_grad=True)
    opt = fo.SGD([p], lr=1.0)
    p.grad = coo([4, 1, 4], torch.tensor([1.0, 2.0, 3.0]), (5,))
    opt.step()
    assert torch.equal(p.detach(), torch.tensor([0.0, -2.0, 0.0, 0.0, -4.0]))


def test_user_gradient_is_not_modified_by_step():
    p = torch.zeros(4, 2, requires_grad=True)
    g = coo([3, 3], torch.ones(2, 2), (4, 2))
    p.grad = g
    fo.Adam([p], lr=0.1).step()
    assert p.grad is g and not g.is_coalesced() and g._nnz() == 2


# ---------------------------------------------------------------- errors (phase 1)
def _assert_untouched(opt, p, before):
    assert torch.equal(p.detach(), before)
    assert not opt.state[p] and opt.global_step == 0


@pytest.mark.parametrize(
    ("grad", "match"),
    [
        (lambda: torch.ones(4, 2).to_sparse(2), "sparse_dim 2"),
        (
            lambda: torch.sparse_coo_tensor(
                torch.tensor([[1, 4]]), torch.ones(2, 2), (4, 2), check_invariants=False
            ),
            "row index 4, out of range",
        ),
        (
            lambda: torch.sparse_coo_tensor(
                torch.tensor([[-1, 2]]), torch.ones(2, 2), (4, 2), check_invariants=False
            ),
            "row index -1, out of range",
        ),
    ],
)
def test_bad_sparse_gradient_is_an_error_before_anything_changes(grad, match):
    p = torch.ones(4, 2, requires_grad=True)
    q = torch.ones(3, requires_grad=True)
    opt = fo.Adam([q, p], lr=0.1)
    q.grad = torch.ones(3)
    p.grad = grad()
    with pytest.raises(ValueError, match=match):
        opt.step()
    _assert_untouched(opt, p, torch.ones(4, 2))
    assert torch.equal(q.detach(), torch.ones(3)) and not opt.state[q]


@pytest.mark.parametrize("cls", [fo.LAMB, fo.RMSprop, fo.Adagrad, fo.Adadelta])
def test_sparse_gradient_refused_where_unsupported(cls):
    p = torch.ones(4, 2, requires_grad=True)
    opt = cls([p])
    p.grad = coo([1], torch.ones(1, 2), (4, 2))
    with pytest.raises(RuntimeError, match=f"{cls.__name__} does not support sparse gradients"):
        opt.step()
    _assert_untouched(opt, p, torch.ones(4, 2))


# ---------------------------------------------------------------- clip_grad
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), 0.0])
def test_clip_of_sparse_grads_equals_clip_of_the_dense_equivalent(norm_type):
    def clip(sparse):
        a = torch.zeros(6, 2, requires_grad=True)
        b = torch.zeros(3, requires_grad=True)
        group = {"params": [a, b], "clip_grad_max_norm": 1.0, "clip_grad_norm_type": norm_type}
        opt = fo.SGD([group])
        ga = coo([4, 1, 4], torch.tensor([[1.0, -2.0], [0.5, 0.0], [2.0, 1.0]]), (6, 2))
        a.grad = ga if sparse else ga.to_dense()
        b.grad = torch.tensor([0.25, -3.0, 0.0])
        (total,) = opt.clip_grad()
        return total, a.grad, b.grad

    t_sparse, a_sparse, b_sparse = clip(True)
    t_dense, a_dense, b_dense = clip(False)
    # the same elements (values vs zeros and values), summed perhaps in another order
    torch.testing.assert_close(t_sparse, t_dense, rtol=1e-6, atol=0)
    # in place: p.grad is now the coalesced gradient, its values scaled
    assert a_sparse.is_sparse and a_sparse.is_coalesced()
    torch.testing.assert_close(a_sparse.to_dense(), a_dense, rtol=1e-6, atol=0)
    torch.testing.assert_close(b_sparse, b_dense, rtol=1e-6, atol=0)


def test_clip_neg_inf_norm_of_sparse_grad_is_min_over_values_present():
    a = torch.zeros(6, 2, requires_grad=True)
    opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 0.1, "clip_grad_norm_type": -float("inf")}])
    a.grad = coo([4, 1], torch.tensor([[1.0, -2.0], [0.5, 3.0]]), (6, 2))
    (total,) = opt.clip_grad()
    assert total.item() == 0.5


@pytest.mark.parametrize("name", ["sgd-momentum", "adamw-amsgrad"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_fused_clip_equals_in_place_clip_for_sparse_grads(name, dtype):
    def run(fused):
        p = rand((5, 3), dtype, 8).requires_grad_()
        d = rand((4,), dtype, 9).requires_grad_()
        opt = OPTIMIZERS[name]([{"params": [p, d], "clip_grad_max_norm": 0.3}])
        for step in range(2):
            p.grad = coo([3, 0, 3], rand((3, 3), dtype, 30 + step), (5, 3))
            d.grad = rand((4,), dtype, 40 + step)
            opt.clip_grad(fused=fused)
            opt.step()
        return p.detach(), d.detach(), state_of(opt, p)

    (p1, d1, s1), (p2, d2, s2) = run(False), run(True)
    assert torch.equal(p1, p2) and torch.equal(d1, d2)
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k


def test_transposed_parameter_and_momentum_switched_on_later():
    # a non-contiguous parameter (its state preserves the layout): the rows are gathered and
    # scattered through index ops, whatever the strides
    base = rand((3, 6), torch.float64, 11)
    p = base.t().requires_grad_()  # (6, 3), not contiguous
    q = p.detach().contiguous().requires_grad_()
    opt_p, opt_q = fo.SGD([p], lr=0.1), fo.SGD([q], lr=0.1)
    for step, rows in enumerate([[4, 0], [1, 4, 4]]):
        if step == 1:  # momentum switched on after the first step: buffers created as zeros
            for o in (opt_p, opt_q):
                o.param_groups[0]["momentum"] = 0.9
        g = coo(rows, rand((len(rows), 3), torch.float64, 70 + step), (6, 3))
        p.grad, q.grad = g, g.clone()
        opt_p.step()
        opt_q.step()
    torch.testing.assert_close(p, q, rtol=1e-15, atol=0)
    buf = opt_p.state[p]["momentum_buffer"]
    assert torch.equal(buf[[2, 3, 5]], torch.zeros(3, 3, dtype=torch.float64))
    torch.testing.assert_close(buf, opt_q.state[q]["momentum_buffer"], rtol=1e-15, atol=0)


# ------------------------------------------------------------------ with torch.compile, capturable
def _embedding_run(make, compiled: bool, steps: int = 3):
    """An embedding (sparse gradients) and a linear layer (dense) in one group."""
    torch.manual_seed(0)
    emb = torch.nn.Embedding(12, 3, sparse=True)
    lin = torch.nn.Linear(3, 2)
    opt = make(list(emb.parameters()) + list(lin.parameters()))
    step = torch.compile(opt.step, backend="eager") if compiled else opt.step
    for i in range(steps):
        opt.zero_grad()
        lin(emb(torch.tensor([1, 5, 5, (7 + i) % 12]))).square().sum().backward()
        step()
    return emb, lin, opt


@pytest.mark.parametrize("name", ["sgd-momentum", "adamw-amsgrad"])
def test_compiled_step_with_sparse_gradients_gives_the_eager_bits(name):
    # Note [step under torch.compile]: lazy sparse updates run eagerly in the recorded step
    torch._dynamo.reset()
    eager = _embedding_run(OPTIMIZERS[name], compiled=False)
    comp = _embedding_run(OPTIMIZERS[name], compiled=True)
    for a, b in zip(eager[:2], comp[:2]):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.equal(pa, pb)
    untouched = [r for r in range(12) if r not in (1, 5, 7, 8, 9)]  # 7 rows
    key = "exp_avg" if "adam" in name else "momentum_buffer"
    assert torch.equal(eager[2].state[eager[0].weight][key][untouched], torch.zeros(7, 3))


@pytest.mark.parametrize("cls", [fo.SGD, fo.Adam, fo.AdamW])
def test_capturable_step_with_sparse_gradients(cls):
    # capturable: device step and scalars (Note [capturable]); the lazy rows still update as
    # the plain step's, to float32 rounding of the device-computed scalars
    kw = dict(lr=0.05, momentum=0.9) if cls is fo.SGD else dict(lr=0.05, weight_decay=0.1)
    plain = _embedding_run(lambda ps: cls(ps, **kw), compiled=False)
    capt = _embedding_run(lambda ps: cls(ps, capturable=True, **kw), compiled=False)
    for a, b in zip(plain[:2], capt[:2]):
        for pa, pb in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)
    untouched = [r for r in range(12) if r not in (1, 5, 7, 8, 9)]
    assert torch.equal(capt[0].weight[untouched], plain[0].weight[untouched])
