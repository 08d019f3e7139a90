#!/usr/bin/env bash
# Build the four distributions as wheels into .wheels/ (git-ignored) for the GPU machine, which
# has no package registry: the device tool carries the folder (`carry: [".wheels"]`) and
# kernels/device/gpu_checks.sh installs them there with --no-deps (its python3 already has torch
# and triton). Run from anywhere on this machine; needs pip and network access for setuptools.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
rm -rf .wheels
python3 -m pip wheel -q --no-deps -w .wheels \
    ./packages/flowoptim-core ./packages/flowoptim-triton ./packages/flowoptim-sched ./conformance
ls -l .wheels
