#!/usr/bin/env bash
# Runs the libFuzzer harnesses of a fuzz build: first every committed regression input (each must
# pass), then each harness for SECONDS seconds on its corpus (seeded from cpp/fuzz/corpus/), and
# prints the executions and coverage each reached. Crashes land in BUILD/artifacts/.
#   cpp/fuzz/run.sh BUILD SECONDS
set -euo pipefail
build=$1
seconds=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$build/artifacts"
for input in "$root"/tests/fixtures/fuzz/*.bin; do
  harness=$(basename "$input" | cut -d- -f1)
  "$build/cpp/fuzz/fuzz_$harness" -artifact_prefix="$build/artifacts/" "$input" >/dev/null 2>&1 ||
    { echo "regression input $input fails again"; "$build/cpp/fuzz/fuzz_$harness" "$input"; exit 1; }
done
echo "fuzz: regression inputs pass"
for harness in load ops kernels; do
  corpus="$build/corpus-$harness"
  mkdir -p "$corpus"
  if [ -d "$root/cpp/fuzz/corpus/$harness" ]; then cp -n "$root/cpp/fuzz/corpus/$harness"/* "$corpus"/; fi
  dict=()
  if [ "$harness" = load ]; then dict=(-dict="$root/cpp/fuzz/index.dict"); fi
  log="$build/fuzz_$harness.log"
  "$build/cpp/fuzz/fuzz_$harness" -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$build/artifacts/" "$corpus" >"$log" 2>&1 ||
    { tail -40 "$log"; echo "fuzz_$harness found a crash: see $build/artifacts/"; exit 1; }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz_$harness: $runs executions in ${seconds}s, $cov, corpus $(ls "$corpus" | wc -l) inputs"
done
