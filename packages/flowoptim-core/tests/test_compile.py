"""torch.compile of ``step()`` and ``clip_grad()`` on the reference backend (issue 11).

Note [step under torch.compile] in ``flowoptim._ops``: the bookkeeping runs eagerly, each backend
call is one custom op, and every number that changes between steps (lr, the step) is a tensor,
so a compiled step gives the eager step's bits and never recompiles after the first step.
Tiny models and a few steps: compiling costs about a second per case on two cores.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

import flowoptim as fo

# every optimizer, with options that create every state tensor it can have
CASES = {
    "SGD": (fo.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "Adam": (fo.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    "AdamW": (fo.AdamW, dict(lr=0.01, weight_decay=0.01)),
    "LAMB": (fo.LAMB, dict(lr=0.01, weight_decay=0.01)),
    "RMSprop": (fo.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    "Adagrad": (fo.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    "Adadelta": (fo.Adadelta, dict(lr=1.0, weight_decay=0.01)),
}
NAMES = list(CASES)

# importing inductor (torch 2.13) imports torch.utils.mkldnn, whose class body calls the
# deprecated torch.jit.script_method: torch's own warning, not ours
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def _graphs() -> int:
    """Graphs dynamo has compiled so far (a recompile adds one)."""
    return counters["stats"]["unique_graphs"]


def _twins(name: str, clip: bool):
    """Two identical (model, optimizer) pairs; with ``clip``, two groups with their own
    clip_grad_max_norm (2-norm and inf-norm), small enough to clip.

    The model is two bias-free linear layers: compiled, its forward and backward are matrix
    products that inductor leaves to the same aten kernels as eager, so the gradients of a
    compiled training step have the eager bits and every difference would be the optimizer's
    (a bias's gradient is a reduction that inductor may sum in another order)."""
    cls, kw = CASES[name]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8, bias=False), torch.nn.Linear(8, 2, bias=False)
    )
    pairs = []
    for m in (model, copy.deepcopy(model)):
        if clip:
            groups = [
                {"params": list(m[0].parameters()), "clip_grad_max_norm": 0.05},
                {
                    "params": list(m[1].parameters()),
                    "clip_grad_max_norm": 0.02,
                    "clip_grad_norm_type": "inf",
                },
            ]
        else:
            groups = list(m.parameters())
        pairs.append((m, cls(groups, **kw)))
    return pairs


def _assert_same(a, b) -> None:
    (ma, oa), (mb, ob) = a, b
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb), (pa - pb).abs().max()
    sa, sb = oa.state_dict(), ob.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k, st in sa["state"].items():
        assert st.keys() == sb["state"][k].keys()
        for key, v in st.items():
            assert torch.equal(v, sb["state"][k][key]), (k, key)


def _lr(opt, i: int) -> None:
    """A scheduler's write: a new Python float lr in every group at every step."""
    for g in opt.param_groups:
        g["lr"] = g.setdefault("initial_lr", g["lr"]) * (0.9**i)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_step_gives_the_eager_bits_and_compiles_once(name):
    eager, compiled = _twins(name, clip=False)
    step = torch.compile(compiled[1].step)
    graphs_after_first = None
    for i in range(4):
        x = torch.randn(3, 4)
        for m, opt in (eager, compiled):
            _lr(opt, i)
            opt.zero_grad()
            m(x).square().sum().backward()
        eager[1].step()
        step()
        _assert_same(eager, compiled)
        if i == 0:
            graphs_after_first = _graphs()
    assert graphs_after_first >= 1
    assert _graphs() == graphs_after_first  # a new lr and step recompile nothing
    assert eager[1].global_step == compiled[1].global_step == 4


def _train_step(model, opt, x, fused: bool):
    model(x).sum().backward()
    opt.clip_grad(fused=fused)
    opt.step()
    opt.zero_grad()


@pytest.mark.parametrize("fused", [False, True], ids=["clip_in_place", "clip_fused"])
@pytest.mark.parametrize("name", NAMES)
def test_compiled_training_step_with_clip_gives_the_eager_bits(name, fused):
    eager, compiled = _twins(name, clip=True)
    train = torch.compile(_train_step)
    graphs_after_first = None
    for i in range(4):
        x = torch.randn(3, 4)
        for _, opt in (eager, compiled):
            _lr(opt, i)
        _train_step(*eager, x, fused)
        train(*compiled, x, fused)
        _assert_same(eager, compiled)
        if i == 0:
            graphs_after_first = _graphs()
    assert _graphs() == graphs_after_first


@pytest.mark.parametrize("name", NAMES)
def test_eager_backend_training_step(name):
    # backend="eager" recursed inside dynamo for AdamW and LAMB before issue 11
    eager, compiled = _twins(name, clip=True)
    train = torch.compile(_train_step, backend="eager")
    for i in range(3):
        x = torch.randn(3, 4)
        for _, opt in (eager, compiled):
            _lr(opt, i)
        _train_step(*eager, x, False)
        train(*compiled, x, False)
        _assert_same(eager, compiled)


def test_no_recompile_over_ten_steps_with_a_changing_lr():
    (model, opt), _ = _twins("AdamW", clip=True)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train = torch.compile(_train_step)
    frames = []
    for _ in range(10):
        train(model, opt, torch.randn(3, 4), True)
        sched.step()
        frames.append((_graphs(), counters["frames"]["ok"]))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**10, rel=1e-12)
    assert opt.global_step == 10
    # every frame and graph was compiled during the first step; later steps reuse them
    assert frames[1:] == [frames[0]] * 9, frames
    assert counters["stats"]["unique_graphs"] == frames[0][0]


def test_switching_an_option_recompiles_and_stays_correct():
    eager, compiled = _twins("Adam", clip=False)
    step = torch.compile(compiled[1].step)
    for i in range(3):
        x = torch.randn(3, 4)
        for m, opt in (eager, compiled):
            opt.param_groups[0]["maximize"] = i == 2  # a boolean is a constant of the graph
            opt.zero_grad()
            m(x).sum().backward()
        eager[1].step()
        step()
        _assert_same(eager, compiled)


def test_compiled_in_place_clip_drops_a_pending_fused_coefficient():
    # as eager clip_grad (tests/test_clip.py): clipped once, in place
    def clip_twice_and_step(opt):
        opt.clip_grad(fused=True)
        opt.clip_grad()
        opt.step()

    results = []
    for compiled in (False, True):
        a = torch.ones(2, requires_grad=True)
        opt = fo.SGD([{"params": [a], "clip_grad_max_norm": 1.0}], lr=1.0)
        a.grad = torch.tensor([3.0, 4.0])
        fn = torch.compile(clip_twice_and_step, backend="eager") if compiled else None
        (fn or clip_twice_and_step)(opt)
        assert not opt._pending_clip
        results.append(a.detach().clone())
    coef = torch.tensor(1.0) / (torch.tensor(5.0) + 1e-6)
    torch.testing.assert_close(results[0], 1.0 - torch.tensor([3.0, 4.0]) * coef, rtol=0, atol=0)
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)


def test_custom_ops_have_fake_kernels():
    # torch.library.opcheck: schema, fake kernel and mutation declarations agree
    p = [torch.randn(5), torch.randn(2, 3)]
    g = [torch.randn_like(t) for t in p]
    m = [torch.zeros_like(t) for t in p]
    v = [torch.zeros_like(t) for t in p]
    from flowoptim import _ops
    from flowoptim.backends import get

    h = _ops.handle(get("reference"))
    spec, values, tensors = _ops._encode(
        dict(
            step=1,
            lr=0.1,
            beta1=0.9,
            beta2=0.99,
            eps=1e-8,
            weight_decay=0.0,
            decoupled_weight_decay=True,
            amsgrad=False,
            do_bias_correction=True,
            maximize=False,
        ),
        devices=False,
    )
    hyper = torch.tensor(values, dtype=torch.float64)
    torch.library.opcheck(
        _ops.UPDATE_OPS["adam"],
        (h, p, g, m, v, [], None, hyper, tensors, spec),
        test_utils=("test_schema", "test_faketensor"),
    )
    torch.library.opcheck(torch.ops.flowoptim.grad_norm.default, (h, g, 2.0))
    torch.library.opcheck(torch.ops.flowoptim.scale_.default, (h, g, torch.tensor(0.5)))


# ------------------------------------------------------------------ capturable (Note [capturable])
class NoHostRead:
    """``Tensor.item``/``tolist``/``cpu``/``__bool__``/``__float__``/``__int__`` raise when
    flowoptim's own code calls them (each is a host sync on CUDA, impossible in a captured
    CUDA graph); calls from torch itself pass."""

    NAMES = ("item", "tolist", "cpu", "__bool__", "__float__", "__int__")

    def __enter__(self):
        import os
        import sys

        root = os.path.dirname(fo.__file__) + os.sep
        self.saved = {n: getattr(torch.Tensor, n) for n in self.NAMES}
        for name, orig in self.saved.items():

            def guard(t, *a, _orig=orig, _name=name, **k):
                caller = sys._getframe(1).f_code.co_filename
                if caller.startswith(root):
                    raise AssertionError(f"host read Tensor.{_name} from {caller}")
                return _orig(t, *a, **k)

            setattr(torch.Tensor, name, guard)
        return self

    def __exit__(self, *exc):
        for name, orig in self.saved.items():
            setattr(torch.Tensor, name, orig)
        return False


def test_no_host_read_guard_catches_a_host_read():
    # the guard works: a plain (not capturable) Adam with a tensor lr... reads nothing either,
    # so provoke one directly through flowoptim code
    from flowoptim.optimizer import _as_step

    with NoHostRead(), pytest.raises(AssertionError, match=r"host read Tensor\.item"):
        _as_step(torch.tensor(3.0), "step")


# float32 parameters: a capturable group runs the foreach path with tensor scalars, a plain one
# torch's fused CPU kernels (Note [capturable in the reference backend]): rounding differences
# of a few float32 ulps after a few steps
CAPTURABLE_RTOL, CAPTURABLE_ATOL = 1e-5, 1e-7


@pytest.mark.parametrize("fused", [False, True], ids=["clip_in_place", "clip_fused"])
@pytest.mark.parametrize("name", NAMES)
def test_capturable_reference_step_reads_nothing_on_the_host(name, fused):
    cls, kw = CASES[name]
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 3)
    runs = []
    for capturable in (False, True):
        m = copy.deepcopy(base)
        lr = torch.tensor(kw["lr"]) if capturable else kw["lr"]
        groups = [
            {"params": [m.weight], "clip_grad_max_norm": 0.05},
            {"params": [m.bias], "clip_grad_max_norm": 0.02, "clip_grad_norm_type": "inf"},
        ]
        runs.append((m, cls(groups, capturable=capturable, **{**kw, "lr": lr})))
    torch.manual_seed(1)
    for i in range(3):
        x = torch.randn(4, 6)
        for m, opt in runs:
            for g in opt.param_groups:
                if isinstance(g["lr"], torch.Tensor):
                    g["lr"].fill_(kw["lr"] * 0.5**i)  # a tensor lr changes in place
                else:
                    g["lr"] = kw["lr"] * 0.5**i
            opt.zero_grad()
            m(x).square().sum().backward()
        (m0, plain), (m1, cap) = runs
        plain.clip_grad(fused=fused)
        plain.step()
        with NoHostRead():
            cap.clip_grad(fused=fused)
            cap.step()
        for a, b in zip(m0.parameters(), m1.parameters()):
            torch.testing.assert_close(b, a, rtol=CAPTURABLE_RTOL, atol=CAPTURABLE_ATOL)
    for p in m1.parameters():
        st = cap.state[p]["step"]
        assert st.dtype == torch.float32 and st.dim() == 0 and float(st) == 3.0


@pytest.mark.parametrize("name", ["AdamW", "Adagrad"])
def test_compiled_capturable_step_gives_the_eager_capturable_bits(name):
    cls, kw = CASES[name]
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 3)
    runs = [(m, cls(m.parameters(), capturable=True, **kw)) for m in (base, copy.deepcopy(base))]
    step = torch.compile(runs[1][1].step)
    graphs = None
    for i in range(3):
        x = torch.randn(4, 6)
        for m, opt in runs:
            _lr(opt, i)
            opt.zero_grad()
            m(x).sum().backward()
        runs[0][1].step()
        step()
        _assert_same(*runs)
        graphs = graphs if i else _graphs()
    assert _graphs() == graphs


def test_grad_scaler_takes_its_ordinary_path_on_the_reference_backend():
    # Note [AMP]: the reference backend does not say amp_scaling (its device-scalar path would
    # round differently from its fused CPU kernels), so GradScaler unscales and reads found_inf
    torch.manual_seed(0)
    m = torch.nn.Linear(3, 2)
    opt = fo.AdamW(m.parameters(), lr=0.01)
    assert opt._step_supports_amp_scaling is False
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    for i in range(3):
        opt.zero_grad()
        scaler.scale(m(torch.randn(4, 3)).sum()).backward()
        if i == 1:
            m.weight.grad[0, 0] = float("inf")
        scaler.step(opt)
        scaler.update()
    assert opt.global_step == 2  # the step with an inf was skipped
