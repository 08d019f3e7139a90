"""torch.compile of flowoptim optimizers on the Triton backend (issue 11), under the interpreter.

Note [step under torch.compile] (``flowoptim._ops``): dynamo sees each update as one custom op,
whose implementation runs the backend eagerly (pointer tables from ``data_ptr()`` included), so
the compiled step launches the same kernels with the same scalars as the eager one.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters
from triton_helpers import DEVICE

import flowoptim as fo

CASES = {
    "SGD": (fo.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "Adam": (fo.Adam, dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    "AdamW": (fo.AdamW, dict(lr=0.01, weight_decay=0.01)),
    "LAMB": (fo.LAMB, dict(lr=0.01, weight_decay=0.01)),
    "RMSprop": (fo.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
    "Adagrad": (fo.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    "Adadelta": (fo.Adadelta, dict(lr=1.0, weight_decay=0.01)),
}

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


def _twins(name: str):
    """Two identical (model, optimizer) pairs on the Triton backend, two groups with their own
    clip_grad_max_norm. Bias-free linear layers: a compiled forward/backward of matrix
    products gives the eager gradients' bits (see flowoptim-core's test_compile.py)."""
    cls, kw = CASES[name]
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8, bias=False), torch.nn.Linear(8, 2, bias=False)
    ).to(DEVICE)
    pairs = []
    for m in (model, copy.deepcopy(model)):
        groups = [
            {"params": list(m[0].parameters()), "clip_grad_max_norm": 0.05},
            {
                "params": list(m[1].parameters()),
                "clip_grad_max_norm": 0.02,
                "clip_grad_norm_type": "inf",
            },
        ]
        pairs.append((m, cls(groups, backend="triton", **kw)))
    return pairs


def _train_step(model, opt, x, fused: bool):
    model(x).sum().backward()
    opt.clip_grad(fused=fused)
    opt.step()
    opt.zero_grad()


def _assert_same(a, b) -> None:
    (ma, oa), (mb, ob) = a, b
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb), (pa - pb).abs().max()
    sa, sb = oa.state_dict(), ob.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k, st in sa["state"].items():
        for key, v in st.items():
            assert torch.equal(v, sb["state"][k][key]), (k, key)


@pytest.mark.parametrize("fused", [False, True], ids=["clip_in_place", "clip_fused"])
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_training_step_gives_the_eager_bits(name, fused):
    eager, compiled = _twins(name)
    train = torch.compile(_train_step)
    graphs = None
    for i in range(3):
        x = torch.randn(3, 4, device=DEVICE)
        for _, opt in (eager, compiled):
            for g in opt.param_groups:  # a scheduler's new lr at every step
                g["lr"] = CASES[name][1]["lr"] * 0.9**i
        _train_step(*eager, x, fused)
        train(*compiled, x, fused)
        _assert_same(eager, compiled)
        if i == 0:
            graphs = counters["stats"]["unique_graphs"]
    assert counters["stats"]["unique_graphs"] == graphs  # nothing recompiled


# ------------------------------------------------------------------ capturable (Note [capturable])
_HOST_READS = ("item", "tolist", "cpu", "__bool__", "__float__", "__int__")


class NoHostRead:
    """Make ``Tensor.item``, ``tolist``, ``cpu``, ``__bool__``, ``__float__`` and ``__int__``
    raise when flowoptim's own code calls them (the caller's frame is in ``flowoptim`` or
    ``flowoptim_triton``): on CUDA each would be a host sync, which a captured CUDA graph
    cannot contain. Calls from torch or from Triton's interpreter (which reads tensors through
    numpy on the host) pass: they are not the step's."""

    def __init__(self):
        import os

        import flowoptim_triton

        self.dirs = (
            os.path.dirname(fo.__file__) + os.sep,
            os.path.dirname(flowoptim_triton.__file__) + os.sep,
        )
        self.saved = {}
        self.calls = []

    def __enter__(self):
        import sys

        for name in _HOST_READS:
            orig = getattr(torch.Tensor, name)
            self.saved[name] = orig

            def guard(t, *a, _orig=orig, _name=name, **k):
                caller = sys._getframe(1).f_code.co_filename
                if caller.startswith(self.dirs):
                    self.calls.append((_name, caller))
                    raise AssertionError(f"host read Tensor.{_name} from {caller}")
                return _orig(t, *a, **k)

            setattr(torch.Tensor, name, guard)
        return self

    def __exit__(self, *exc):
        for name, orig in self.saved.items():
            setattr(torch.Tensor, name, orig)
        return False


def _capturable_twins(name, lr_tensor):
    cls, kw = CASES[name]
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3).to(DEVICE)
    out = []
    for capturable in (False, True):
        m = copy.deepcopy(model)
        lr = torch.tensor(kw["lr"], device=DEVICE) if capturable and lr_tensor else kw["lr"]
        groups = [
            {"params": [m.weight], "clip_grad_max_norm": 0.05},
            {"params": [m.bias], "clip_grad_max_norm": 0.02, "clip_grad_norm_type": "inf"},
        ]
        opt = cls(groups, backend="triton", capturable=capturable, **{**kw, "lr": lr})
        out.append((m, opt))
    return out


@pytest.mark.parametrize("fused", [False, True], ids=["clip_in_place", "clip_fused"])
@pytest.mark.parametrize("name", list(CASES))
def test_capturable_step_reads_nothing_on_the_host_and_gives_the_same_bits(name, fused):
    (m0, plain), (m1, cap) = _capturable_twins(name, lr_tensor=True)
    for i in range(3):
        x = torch.randn(4, 6, device=DEVICE)
        lr = CASES[name][1]["lr"] * 0.5**i
        for m, opt in ((m0, plain), (m1, cap)):
            for g in opt.param_groups:  # a scheduler's write; a tensor lr is written in place
                if isinstance(g["lr"], torch.Tensor):
                    g["lr"].fill_(lr)
                else:
                    g["lr"] = lr
            opt.zero_grad()
            m(x).square().sum().backward()
        plain.clip_grad(fused=fused)
        plain.step()
        with NoHostRead():
            cap.clip_grad(fused=fused)
            cap.step()
        for a, b in zip(m0.parameters(), m1.parameters()):
            assert torch.equal(a, b), (a - b).abs().max()
    # torch's capturable layout: every step is a float32 0-d tensor on the param's device
    for p in m1.parameters():
        st = cap.state[p]["step"]
        assert st.dtype == torch.float32 and st.dim() == 0 and st.device == p.device
        assert st.item() == 3.0
    sd = cap.state_dict()
    assert all(s["step"].device == m1.weight.device for s in sd["state"].values())
    assert cap.global_step == 3


def test_capturable_step_counter_lives_on_the_device():
    (_, _), (m, opt) = _capturable_twins("AdamW", lr_tensor=False)
    for _ in range(2):
        m(torch.randn(2, 6, device=DEVICE)).sum().backward()
        opt.clip_grad()
        opt.step()
    (counter,) = opt._device_steps.values()
    assert counter.device == m.weight.device and counter.dtype == torch.float32
    assert counter.item() == 2.0
    # load_state_dict: the counter is rebuilt from the groups' step; steps go to the device
    opt.load_state_dict(opt.state_dict())
    assert opt._device_steps == {}
    assert opt.state[m.weight]["step"].device == m.weight.device


# ------------------------------------------------------------------ AMP (Note [AMP])
def _plain_path(cls):
    """``cls`` with GradScaler's ordinary path (unscale_, found_inf read on the host)."""
    return type(f"Plain{cls.__name__}", (cls,), {"_step_supports_amp_scaling": False})


def _masked_restore_backend():
    """The Triton backend without kernel-level found_inf: the optimizer's masked restore."""
    from flowoptim_triton import TritonBackend

    class NoKernelSkip(TritonBackend):
        amp_found_inf = False

    return NoKernelSkip()


@pytest.mark.parametrize("unscale_and_clip", [False, True], ids=["scaled", "unscale_clip"])
@pytest.mark.parametrize("name", list(CASES))
def test_grad_scaler_without_host_sync_gives_the_eager_unscale_bits(name, unscale_and_clip):
    _check_grad_scaler(name, unscale_and_clip, lambda: "triton")  # kernels skip on found_inf


@pytest.mark.parametrize("name", ["Adam", "LAMB"])
def test_grad_scaler_masked_restore_gives_the_eager_unscale_bits(name):
    # a backend without amp_found_inf: the optimizer restores params and state itself
    _check_grad_scaler(name, True, _masked_restore_backend)


def _check_grad_scaler(name, unscale_and_clip, make_backend):
    cls, kw = CASES[name]
    torch.manual_seed(0)
    base = torch.nn.Linear(6, 3).to(DEVICE)
    runs = []
    for c in (cls, _plain_path(cls)):
        m = copy.deepcopy(base)
        clip = 0.5 if unscale_and_clip else None
        groups = [{"params": [m.weight], "clip_grad_max_norm": clip}, {"params": [m.bias]}]
        backend = make_backend()
        opt = c(groups, backend=backend, **kw)
        runs.append((m, opt, torch.amp.GradScaler(DEVICE, init_scale=2.0**8, growth_interval=2)))
    assert runs[0][1]._step_supports_amp_scaling and not runs[1][1]._step_supports_amp_scaling
    for i in range(5):
        x = torch.randn(4, 6, device=DEVICE)
        for m, opt, scaler in runs:
            opt.zero_grad()
            scaler.scale(m(x).square().sum()).backward()
            if i in (1, 3):  # an overflow: the step must change nothing
                m.weight.grad[0, 0] = float("inf") if i == 1 else float("nan")
            if unscale_and_clip:
                scaler.unscale_(opt)
                opt.clip_grad()
            if opt._step_supports_amp_scaling:
                with NoHostRead():
                    scaler.step(opt)
            else:
                scaler.step(opt)
            scaler.update()
        (m0, fused, s0), (m1, plain, s1) = runs
        assert s0.get_scale() == s1.get_scale()
        for a, b in zip(m0.parameters(), m1.parameters()):
            assert torch.equal(a, b), (i, (a - b).abs().max())
        sa, sb = fused.state_dict(), plain.state_dict()
        for k, st in sb["state"].items():
            for key, v in st.items():
                assert torch.equal(sa["state"][k][key].cpu(), v.cpu()), (i, k, key)
    # two skipped steps: the optimizer-wide step counts the three taken
    assert fused.global_step == plain.global_step == 3
    assert [g["step"] for g in fused.state_dict()["param_groups"]] == [3, 3]
