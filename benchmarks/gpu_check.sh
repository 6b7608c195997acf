#!/usr/bin/env bash
# The GPU device check (issue 15), one script for a machine with a CUDA device, nvcc, CMake,
# ninja, pybind11, scikit-build-core, NumPy, pytest and CuPy already installed (no network needed):
#   1. builds the package with DEEPHASH_CUDA=ON (the build fails if nvcc does not work),
#   2. builds and runs the C++ tests, the CUDA ones included (ctest),
#   3. runs the Python tests marked `cuda`,
#   4. runs benchmarks/bench_gpu.py and prints its table.
# Everything it writes goes under $OUT (default /tmp/gpu_check): five logs and bench_gpu.json.
# Meant to finish in under 8 minutes on one H100/H200-class GPU: the kernels are compiled for the
# device's own architecture only (override with DEEPHASH_CUDA_ARCHITECTURES, a CMake list), and each
# step has a time limit so that one that hangs cannot take the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
SITE=${SITE:-$(mktemp -d)}  # where the package is installed; set SITE to keep it after the check
start=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }

stamp "machine"
grep -m 1 "model name" /proc/cpuinfo || true
echo "cores: $(nproc); avx512: $(grep -o -w -m 1 avx512_vpopcntdq /proc/cpuinfo || echo no)"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || true
ARCHS=${DEEPHASH_CUDA_ARCHITECTURES:-}
if [[ -z "$ARCHS" ]]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
  ARCHS=${cap:+${cap}-real;${cap}-virtual}
fi
ARCH_FLAGS=()
[[ -n "$ARCHS" ]] && ARCH_FLAGS=(-DDEEPHASH_CUDA_ARCHITECTURES="$ARCHS")
stamp "CUDA architectures: ${ARCHS:-the default list}"

stamp "building the package with CUDA required"
export CMAKE_BUILD_PARALLEL_LEVEL="$JOBS"
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SITE" \
  -C build-dir="$SITE/.build" -C cmake.define.DEEPHASH_CUDA=ON ${ARCHS:+-C "cmake.define.DEEPHASH_CUDA_ARCHITECTURES=$ARCHS"} \
  . 2>&1 | tee "$OUT/build.log"
export PYTHONPATH="$SITE"
"$PY" -c "import deephash_engine as de; i = de.build_info(); print('cuda', i['cuda'], i['cuda_archs'], 'devices', i['cuda_device_count'])"

# The steps below run even when one fails, so one run on a GPU machine yields every figure; the
# summary at the end says what passed.
declare -A result
stamp "C++ tests (ctest)"
if cmake -S . -B "$SITE/.ctest" -G Ninja -DDEEPHASH_CUDA=ON -DDEEPHASH_BUILD_CPP_TESTS=ON \
     -DCMAKE_BUILD_TYPE=Release "${ARCH_FLAGS[@]}" > "$OUT/ctest-build.log" &&
   timeout 300 cmake --build "$SITE/.ctest" -j "$JOBS" >> "$OUT/ctest-build.log" &&
   timeout 240 ctest --test-dir "$SITE/.ctest" -j "$JOBS" --timeout 200 --output-on-failure 2>&1 | tee "$OUT/ctest.log"; then
  result[ctest]=passed; else result[ctest]=FAILED; fi

stamp "Python tests marked cuda"
if timeout 240 "$PY" -m pytest -q -p no:cacheprovider -m cuda --durations=10 tests/test_gpu.py 2>&1 | tee "$OUT/pytest.log"; then
  result[pytest]=passed; else result[pytest]=FAILED; fi

stamp "benchmark"
if timeout 270 "$PY" benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench.log"; then
  result[bench]=passed; else result[bench]=FAILED; fi

stamp "summary"
printf '%-10s %s\n' build passed ctest "${result[ctest]}" "pytest -m cuda" "${result[pytest]}" bench_gpu "${result[bench]}"
grep -E "passed|failed|skipped" "$OUT/pytest.log" | tail -1 || true
tail -n 3 "$OUT/ctest.log" || true
[[ "${result[ctest]}${result[pytest]}${result[bench]}" == passedpassedpassed ]]
