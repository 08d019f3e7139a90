"""The GPU benchmark's CPU smoke run (kernels/bench/gpu_step.py --smoke) works end to end.

The benchmark is meant for a GPU; ``--smoke`` runs every optimizer, workload, dtype and provider
at tiny sizes on the CPU (Triton's interpreter, torch's CPU kernels), so CI sees a broken script
before a GPU session does. Only the CSV's shape is checked: smoke timings mean nothing. Skipped
when the package is tested outside the repository (no kernels/ folder).
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "kernels" / "bench" / "gpu_step.py"
COLUMNS = [
    "optimizer",
    "workload",
    "n_params",
    "n_tensors",
    "dtype",
    "provider",
    "median_ms",
    "gbps",
]
OPTIMIZERS = ["adam", "adamw", "lamb", "sgd", "clip+adam", "clip+adam-fused"]


@pytest.mark.skipif(
    not SCRIPT.exists(), reason="kernels/ is not here (package tested outside the repo)"
)
def test_gpu_step_smoke(tmp_path):
    out = tmp_path / "smoke.csv"
    env = dict(os.environ, TRITON_INTERPRET="1")
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], env=env,
                   capture_output=True, text=True, timeout=600, check=True)  # fmt: skip
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    body = [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]
    seen = {(r["optimizer"], r["workload"], r["dtype"], r["provider"]) for r in body}
    assert len(seen) == len(body)  # one row per combination
    for opt in OPTIMIZERS:
        for wl in ("single", "gpt2"):
            for dt in ("float32", "bfloat16"):
                provs = {p for o, w, d, p in seen if (o, w, d) == (opt, wl, dt)}
                expected = {"flowoptim-triton", "copy"}
                if opt != "lamb":  # torch.optim has no LAMB
                    expected |= {"torch-fused", "torch-foreach"}
                assert provs == expected, (opt, wl, dt, provs)
    tensors = {r["workload"]: int(r["n_tensors"]) for r in body}
    assert tensors["single"] == 1 and tensors["gpt2"] > 1
    for r in body:
        assert int(r["n_params"]) > 0
        assert float(r["median_ms"]) > 0 and math.isfinite(float(r["median_ms"]))
        assert float(r["gbps"]) >= 0
