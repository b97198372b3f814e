#!/usr/bin/env bash
# One prepared check for a lent GPU machine (or this CPU, where it says there is no GPU):
#   versions and `harness meters`; the meter tests on that JAX; NVML counter vs integrated instant power
#   under a steady matmul load (goal within 2%); the meter-overhead benchmark; `harness run` of
#   switch-small and dense-small on the GPU, packaged and checked as an MLPerf submission, and compared
#   with reference_results/. Everything lands flat in ${OUT:-device_out}/ (at most 8 files).
# Usage: bash scripts/device_check.sh     (about 3-4 minutes on an H100/H200; no network needed)
#        CHECK_WORKLOADS="switch-tiny dense-tiny" bash scripts/device_check.sh   (a quick try on a CPU)
source "$(dirname "$0")/device_env.sh"
h() { python3 -m harness.cli "$@"; }
{
  echo "== machine"; date -u; uname -m; nproc
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,power.limit,power.draw,memory.total --format=csv
  else
    echo "no NVIDIA GPU here (nvidia-smi not found): the GPU parts below will say so and skip"
  fi
  python3 -c 'import sys, jax, flax, optax, pynvml; print("python", sys.version.split()[0], "jax", jax.__version__,
    "flax", flax.__version__, "optax", optax.__version__, "devices", jax.devices())'
  echo "== harness meters"; h meters
  echo "== meter tests"
  python3 -m pytest -q -p no:cacheprovider tests/test_nvml.py tests/test_meters.py tests/test_external.py \
    tests/test_switch.py 2>&1 | tail -4
} 2>&1 | tee "$out/check.txt"
h meters --json > "$out/meters.json"

{
  echo "== bench_nvml_agreement"; timeout 120 python3 scripts/bench_nvml_agreement.py --seconds 20 --idle 5
  echo "== bench_meter_overhead"; timeout 120 python3 scripts/bench_meter_overhead.py --blocks 6 --steps 200
} 2>&1 | tee "$out/bench.txt"

for w in ${CHECK_WORKLOADS:-switch-small dense-small}; do
  echo "== harness run --workload $w"
  timeout 240 python3 -m harness.cli run --workload "$w" --no-progress --output-dir "$out/results" 2>&1
done | tee "$out/runs.txt"
{
  echo "== harness package + check (MLCommons checkers with our rules, energy checks)"
  system=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -c 'A-Za-z0-9.\n-' '_')
  h package "$out/results" --org harness-ref --system "${system:-cpu}" --output "$out/package" && h check "$out/package"
  echo "== harness compare (against reference_results/)"
  h compare "$out/results" --reference reference_results
} 2>&1 | tee -a "$out/runs.txt"
# Flatten results one folder up so that they come back from a device run (the tool returns 2 levels).
for f in "$out"/results/*/result.json; do
  [ -e "$f" ] && cp "$f" "$out/$(basename "$(dirname "$f")").json"
done
p=$(ls "$out"/results/*switch-*/power.csv 2>/dev/null | head -1)
[ -n "$p" ] && cp "$p" "$out/switch-power.csv"
rm -rf "$out/results" "$out/package"
