"""Sparse gradients on the triton backend: the row-gather kernels (spec §5; Note [row-gather
addressing] in flowoptim_triton.sparse_kernels). Interpreted on the CPU without CUDA."""

from __future__ import annotations

import pytest
import torch
from triton_helpers import DEVICE, assert_close

import flowoptim as fo
from flowoptim_triton import TritonBackend

OPTIMIZERS = {
    "sgd": lambda ps, b: fo.SGD(ps, lr=0.1, weight_decay=0.01, backend=b),
    "sgd-momentum": lambda ps, b: fo.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, backend=b),
    "sgd-nesterov-max": lambda ps, b: fo.SGD(
        ps, lr=0.1, momentum=0.9, nesterov=True, maximize=True, weight_decay=0.1, backend=b
    ),
    "adam": lambda ps, b: fo.Adam(ps, lr=0.01, weight_decay=0.1, backend=b),
    "adam-amsgrad-nobc": lambda ps, b: fo.Adam(
        ps, lr=0.01, amsgrad=True, do_bias_correction=False, maximize=True, backend=b
    ),
    "adamw-amsgrad": lambda ps, b: fo.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True, backend=b),
}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def rand(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).to(DEVICE)


def coo(rows, values, shape):
    idx = torch.tensor([rows], dtype=torch.int64, device=values.device)
    return torch.sparse_coo_tensor(idx, values, shape, check_invariants=True)


def states(opt, p):
    return {k: v for k, v in opt.state[p].items() if k != "step"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_all_rows_present_equals_the_dense_kernel_bit_for_bit(name, dtype):
    # two params in one partition; the first has 2400 values: more than one interpreted chunk
    shapes = [(300, 8), (5,)]
    ps = [rand(s, dtype, i).requires_grad_() for i, s in enumerate(shapes)]
    twins = [p.detach().clone().requires_grad_() for p in ps]
    opt, opt_dense = OPTIMIZERS[name](ps, "triton"), OPTIMIZERS[name](twins, "triton")
    group = opt.param_groups[0]
    group["clip_grad_max_norm"] = opt_dense.param_groups[0]["clip_grad_max_norm"] = 5.0
    for step in range(2):
        for i, (p, t) in enumerate(zip(ps, twins)):
            g = rand(p.shape, dtype, 10 + 10 * step + i)
            t.grad = g
            rows = torch.randperm(p.shape[0], generator=torch.Generator().manual_seed(step))
            p.grad = coo(rows.tolist(), g[rows.to(DEVICE)], p.shape)
        # fused clip: grad_scale applied to the values inside the row-gather kernel
        opt.clip_grad(fused=True)
        opt_dense.clip_grad(fused=True)
        opt.step()
        opt_dense.step()
    for p, t in zip(ps, twins):
        assert torch.equal(p, t)
        for k, v in states(opt, p).items():
            assert torch.equal(v, states(opt_dense, t)[k]), k


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd-nesterov-max", "adam", "adamw-amsgrad"])
def test_partial_rows_match_the_reference_backend_and_leave_other_rows(name, dtype):
    shape = (40, 3)
    a = rand(shape, dtype, 1).requires_grad_()
    b = a.detach().clone().requires_grad_()
    opt_t, opt_r = OPTIMIZERS[name]([a], "triton"), OPTIMIZERS[name]([b], "reference")
    for step, rows in enumerate([[5, 1, 5, 39], [0, 1, 2], [39]]):
        before = a.detach().clone()
        g = coo(rows, rand((len(rows), 3), dtype, 50 + step), shape)
        a.grad, b.grad = g, g.clone()
        opt_t.step()
        opt_r.step()
        absent = [r for r in range(40) if r not in rows]
        assert torch.equal(a.detach()[absent], before[absent])
        assert_close(a, b, dtype)
        for k, v in states(opt_t, a).items():
            assert_close(v, states(opt_r, b)[k], dtype, msg=k)


def test_empty_gradient_and_odd_layouts():
    # nnz 0: nothing is launched; a transposed (non-contiguous) param: gather/scatter fallback
    base = rand((3, 6), torch.float32, 2)
    p = base.t().requires_grad_()  # (6, 3), strides (1, 6)
    q = p.detach().contiguous().requires_grad_()
    opt_t, opt_r = fo.Adam([p], lr=0.1, backend="triton"), fo.Adam([q], lr=0.1, backend="reference")
    for rows in ([], [4, 0], [2]):
        vals = rand((len(rows), 3), torch.float32, 60 + len(rows))
        g = coo(rows, vals, (6, 3)) if rows else None
        if g is None:
            idx = torch.zeros(1, 0, dtype=torch.int64, device=DEVICE)
            g = torch.sparse_coo_tensor(idx, vals, (6, 3), check_invariants=True)
        p.grad, q.grad = g, g.clone()
        opt_t.step()
        opt_r.step()
    assert_close(p, q, torch.float32)


def test_out_of_range_rows_are_masked_in_the_kernel():
    # the optimizer checks the range on the CPU; the kernel never writes outside the parameter
    # (on CUDA the range is not checked: Note [row-gather addressing])
    backend = TritonBackend()
    p = torch.zeros(4, 2, device=DEVICE)
    m, v = torch.zeros_like(p), torch.zeros_like(p)
    idx = torch.tensor([1, 7, -3], device=DEVICE)
    vals = torch.ones(3, 2, device=DEVICE)
    backend.adam_sparse(
        [p], [idx], [vals], [m], [v], None, step=1, lr=0.5, beta1=0.9, beta2=0.999, eps=1e-8,
        weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False, do_bias_correction=True,
        maximize=False, grad_scale=None,
    )  # fmt: skip
    expected = torch.zeros(4, 2, device=DEVICE)
    expected[1] = -0.5
    assert_close(p, expected, torch.float32)
    assert torch.equal(m[[0, 2, 3]], torch.zeros(3, 2, device=DEVICE))


# ------------------------------------------------------------------ GradScaler, capturable
def _sparse_amp_runs(cls, kw):
    """Twin embedding + linear models: GradScaler's sync-free path (Note [AMP]) and its
    ordinary path (unscale_, found_inf read on the host)."""
    plain_cls = type(f"Plain{cls.__name__}", (cls,), {"_step_supports_amp_scaling": False})
    runs = []
    for c in (cls, plain_cls):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(10, 4, sparse=True).to(DEVICE)
        lin = torch.nn.Linear(4, 2).to(DEVICE)
        opt = c(list(emb.parameters()) + list(lin.parameters()), backend="triton", **kw)
        scaler = torch.amp.GradScaler(DEVICE, init_scale=2.0**8, growth_interval=2)
        runs.append((emb, lin, opt, scaler))
    return runs


@pytest.mark.parametrize(
    "cls,kw",
    [(fo.SGD, dict(lr=0.1, momentum=0.9)), (fo.AdamW, dict(lr=0.01, weight_decay=0.1))],
    ids=["sgd-momentum", "adamw"],
)
def test_grad_scaler_with_sparse_gradients_skips_the_rows_on_inf(cls, kw):
    # the row-gather kernels take GradScaler's found_inf and store nothing when it is set
    # (Note [AMP] in flowoptim.optimizer): the same numbers as GradScaler's ordinary path
    runs = _sparse_amp_runs(cls, kw)
    assert runs[0][2]._step_supports_amp_scaling and not runs[1][2]._step_supports_amp_scaling
    for i in range(4):
        rows = torch.tensor([1, 4, 4, 2 + i], device=DEVICE)
        for emb, lin, opt, scaler in runs:
            opt.zero_grad()
            scaler.scale(lin(emb(rows)).square().sum()).backward()
            if i == 1:  # an overflow in the sparse values: the step changes nothing
                emb.weight.grad = emb.weight.grad.coalesce()
                emb.weight.grad._values()[0, 0] = float("inf")
            scaler.step(opt)
            scaler.update()
        (e0, l0, o0, s0), (e1, l1, o1, s1) = runs
        assert s0.get_scale() == s1.get_scale()
        for a, b in zip([*e0.parameters(), *l0.parameters()], [*e1.parameters(), *l1.parameters()]):
            assert torch.equal(a, b), (i, (a - b).abs().max())
        for p0, p1 in zip(o0.param_groups[0]["params"], o1.param_groups[0]["params"]):
            for key, v in o1.state[p1].items():
                if key != "step":
                    assert torch.equal(o0.state[p0][key], v), (i, key)
    assert o0.global_step == o1.global_step == 3


@pytest.mark.parametrize("cls", [fo.SGD, fo.Adam])
def test_capturable_sparse_step_matches_the_plain_step(cls):
    # capturable: the step- and lr-dependent kernel scalars are built on the device (Note
    # [device scalars]); the row-gather kernels read them as the dense kernels do
    outs = []
    for capturable in (False, True):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(10, 4, sparse=True).to(DEVICE)
        opt = cls(emb.parameters(), lr=0.05, backend="triton", capturable=capturable)
        for i in range(3):
            opt.zero_grad()
            emb(torch.tensor([1, 4, 4, 2 + i], device=DEVICE)).square().sum().backward()
            opt.step()
        outs.append(emb.weight.detach().clone())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-6, atol=1e-7)
    assert torch.equal(outs[1][[0, 5, 6, 7, 8, 9]], outs[0][[0, 5, 6, 7, 8, 9]])


@pytest.mark.parametrize("addressable", [True, False], ids=["row-gather", "gather-scatter"])
@pytest.mark.parametrize("name", ["sgd_sparse", "adam_sparse"])
def test_sparse_functionals_store_nothing_when_found_inf_is_set(name, addressable):
    # Note [AMP]: found_inf != 0 leaves params and every state row exactly as they were;
    # found_inf == 0 gives the bits of a call without found_inf. A transposed state tensor
    # takes the gather / dense kernel / scatter fallback (Note [sparse functionals]).
    be = TritonBackend()
    rows = torch.tensor([1, 4, 7], device=DEVICE)
    vals = rand((3, 6), torch.float32, 1)
    vals[0, 0] = float("inf")

    def run(found_inf):
        p = rand((9, 6), torch.float32, 2)
        st = [rand((9, 6), torch.float32, 3 + k).abs() for k in range(2)]
        if not addressable:
            st[0] = st[0].t().contiguous().t()
        kw = dict(found_inf=found_inf) if found_inf is not None else {}
        if name == "sgd_sparse":
            be.sgd_sparse([p], [rows], [vals], [st[0]], lr=0.1, momentum=0.9, dampening=0.0,
                          weight_decay=0.1, nesterov=True, maximize=False, grad_scale=None,
                          **kw)  # fmt: skip
        else:
            be.adam_sparse([p], [rows], [vals], [st[0]], [st[1]], None, step=3, lr=0.01,
                           beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
                           decoupled_weight_decay=True, amsgrad=False, do_bias_correction=True,
                           maximize=False, grad_scale=None, **kw)  # fmt: skip
        return [p, *st]

    before = run(torch.ones((), device=DEVICE))
    untouched = [rand((9, 6), torch.float32, 2)] + [
        rand((9, 6), torch.float32, 3 + k).abs() for k in range(2)
    ]
    for got, want in zip(before, untouched):
        assert torch.equal(got, want)
    plain, zero = run(None), run(torch.zeros((), device=DEVICE))
    assert not torch.equal(plain[0], untouched[0])  # the update ran
    for a, b in zip(plain, zero):  # bits: the inf value makes NaNs in its row
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))
