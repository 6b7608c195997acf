#!/usr/bin/env bash
# The GPU device check (issue 15), one script for a machine with a CUDA device, nvcc, CMake,
# ninja, pybind11, scikit-build-core, NumPy, pytest and CuPy already installed (no network needed):
#   1. builds the package with DEEPHASH_CUDA=ON (the build fails if nvcc does not work),
#   2. builds and runs the C++ tests, the CUDA ones included (ctest),
#   3. runs the Python tests marked `cuda`,
#   4. runs benchmarks/bench_gpu.py and prints its table.
# Everything it writes goes under $OUT (default /tmp/gpu_check): logs and bench_gpu.json.
# Meant to finish in under 8 minutes on one H100/H200-class GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
SITE=$(mktemp -d)
start=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }

stamp "nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

stamp "building the package with CUDA required"
export CMAKE_BUILD_PARALLEL_LEVEL="$JOBS"
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SITE" \
  -C build-dir="$SITE/.build" -C cmake.define.DEEPHASH_CUDA=ON . 2>&1 | tee "$OUT/build.log"
export PYTHONPATH="$SITE"
"$PY" -c "import deephash_engine as de; i = de.build_info(); print('cuda', i['cuda'], i['cuda_archs'], 'devices', i['cuda_device_count'])"

# The steps below run even when one fails, so one run on a GPU machine yields every figure; the
# summary at the end says what passed.
declare -A result
stamp "C++ tests (ctest)"
if cmake -S . -B "$SITE/.ctest" -G Ninja -DDEEPHASH_CUDA=ON -DDEEPHASH_BUILD_CPP_TESTS=ON \
     -DCMAKE_BUILD_TYPE=Release > "$OUT/ctest-configure.log" &&
   cmake --build "$SITE/.ctest" -j "$JOBS" > "$OUT/ctest-build.log" &&
   ctest --test-dir "$SITE/.ctest" --output-on-failure 2>&1 | tee "$OUT/ctest.log"; then
  result[ctest]=passed; else result[ctest]=FAILED; fi

stamp "Python tests marked cuda"
if "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_gpu.py 2>&1 | tee "$OUT/pytest.log"; then
  result[pytest]=passed; else result[pytest]=FAILED; fi

stamp "benchmark"
if "$PY" benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench.log"; then
  result[bench]=passed; else result[bench]=FAILED; fi

stamp "summary"
printf '%-10s %s\n' build passed ctest "${result[ctest]}" "pytest -m cuda" "${result[pytest]}" bench_gpu "${result[bench]}"
grep -E "passed|failed|skipped" "$OUT/pytest.log" | tail -1 || true
tail -n 3 "$OUT/ctest.log" || true
[[ "${result[ctest]}${result[pytest]}${result[bench]}" == passedpassedpassed ]]
