#!/usr/bin/env bash
# Every GPU check of issue 14 in one device run (one 10-minute command, 15 minutes of device time
# per session): run from the repository root on the GPU machine, after kernels/device/build_wheels.sh
# here, with the device tool:
#
#   run(command="bash kernels/device/gpu_checks.sh", carry=[".wheels"], timeout_s=600)
#
# Phases, each under its own time limit so that one slow phase cannot starve the others, each
# writing its log to $OUT as it goes (what is under $OUT comes back even after a timeout):
#   1. env.txt        GPU, driver, torch and triton versions
#   2. conformance    the formula-derived vectors against the triton backend on CUDA
#                     (fp32/fp64/fp16/bf16), compiled natively: the correctness gate
#   3. <gpu>.csv      kernels/bench/gpu_step.py (flowoptim vs torch fused/foreach vs a copy);
#                     commit it as kernels/results/<gpu>.csv
#   4. tests_gpu      packages/flowoptim-triton/tests natively (nox -s tests_gpu without nox),
#                     8 pytest workers so the kernels compile in parallel
# Budgets (seconds) can be overridden: T_CONF, T_BENCH, T_TESTS. Exit status: the first failing
# phase's (124: it ran out of time), 0 if all passed.
set -u -o pipefail
OUT=${OUT:-/tmp/flowoptim-gpu-out}
mkdir -p "$OUT"
T_CONF=${T_CONF:-120} T_BENCH=${T_BENCH:-210} T_TESTS=${T_TESTS:-210}
export PYTHONUNBUFFERED=1 TRITON_CACHE_DIR=/tmp/triton-cache FLOWOPTIM_REQUIRE_GPU=1
unset TRITON_INTERPRET
PY=${PY:-python3}
if ls .wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/flowoptim-site .wheels/*.whl || exit 2
    export PYTHONPATH=/tmp/flowoptim-site${PYTHONPATH:+:$PYTHONPATH}
fi
status=0
phase() {  # phase NAME SECONDS CMD...: run CMD under a time limit, log to $OUT/NAME.log
    local name=$1 secs=$2 rc
    shift 2
    local t0=$SECONDS
    timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "$name: rc=$rc in $((SECONDS - t0)) s (limit $secs s)" | tee -a "$OUT/env.txt"
    [ "$status" -eq 0 ] && [ "$rc" -ne 0 ] && status=$rc
    return 0
}
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
    "$PY" -c "import flowoptim, flowoptim_triton; print(flowoptim.__file__); print(flowoptim_triton.__file__)"
} >"$OUT/env.txt" 2>&1
gpu=$("$PY" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '_', torch.cuda.get_device_name().lower()).strip('_'))" 2>/dev/null || echo unknown)
phase conformance "$T_CONF" "$PY" -m flowoptim_conformance --backend triton --device cuda --max-failures 20
phase bench "$T_BENCH" "$PY" kernels/bench/gpu_step.py --out "$OUT/$gpu.csv"
workers=()
"$PY" -c "import xdist" 2>/dev/null && workers=(-n 8)  # pytest-xdist: parallel native compiles
phase tests_gpu "$T_TESTS" "$PY" -m pytest packages/flowoptim-triton/tests -q -rfE -p no:cacheprovider \
    "${workers[@]}" --junitxml="$OUT/tests_gpu.xml"
exit "$status"
