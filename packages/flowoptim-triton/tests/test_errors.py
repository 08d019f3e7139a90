"""Bad input: a clear error naming the tensor's device or dtype, before anything is modified."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from triton_helpers import DEVICE, INTERPRET

import flowoptim as fo
from flowoptim_triton.backend import TritonBackend


def test_unsupported_dtype():
    p = torch.zeros(3, dtype=torch.complex64, device=DEVICE)
    with pytest.raises(TypeError, match=r"param 0 has dtype torch.complex64"):
        TritonBackend().check_tensors([p])


def test_two_devices_in_one_call():
    a = torch.zeros(3, device=DEVICE)
    b = torch.zeros(3, device="meta")
    with pytest.raises(ValueError, match=r"param 1 is on meta"):
        TritonBackend().check_tensors([a, b])


def test_bad_param_leaves_everything_unchanged():
    good = torch.ones(4, device=DEVICE, requires_grad=True)
    bad = torch.ones(4, device="meta", requires_grad=True)
    with pytest.raises(ValueError, match="meta"):
        fo.Adam([good, bad], lr=0.1, backend="triton")
    opt = fo.SGD([good], lr=0.1, backend="triton")
    good.grad = torch.ones(4, device=DEVICE)
    opt.step()
    assert good.detach().eq(0.9).all()


@pytest.mark.skipif(not INTERPRET, reason="checks the refusal of CPU tensors when not interpreted")
def test_cpu_tensors_without_interpreter_are_refused():
    code = textwrap.dedent(
        """
        import torch, flowoptim as fo
        from flowoptim_triton.backend import TritonBackend
        p = torch.ones(3, requires_grad=True)
        try:
            fo.Adam([p], lr=0.1, backend=TritonBackend())
        except ValueError as e:
            print("REFUSED:", e)
        print("UNCHANGED:", p.detach().tolist())
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout  # fmt: skip
    assert "REFUSED: param 0 is on cpu" in out and "TRITON_INTERPRET=1" in out
    assert "UNCHANGED: [1.0, 1.0, 1.0]" in out
