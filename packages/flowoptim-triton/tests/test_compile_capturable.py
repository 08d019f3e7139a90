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
