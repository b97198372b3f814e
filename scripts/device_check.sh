#!/usr/bin/env bash
# One prepared check for a lent accelerator machine (or this CPU): versions, the Switch unit tests on that
# JAX, and `harness run` of switch-small and dense-small. Results land in ${OUT:-device_out}/.
# Usage: bash scripts/device_check.sh        (finishes in a few minutes; no network needed)
set -uo pipefail
out=${OUT:-device_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
  echo "== machine"; date -u; uname -m; nproc
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv
  else
    echo "no NVIDIA GPU here (nvidia-smi not found): this check runs on the CPU"
  fi
  python3 -c 'import sys, jax, flax, optax; print("python", sys.version.split()[0], "jax", jax.__version__,
    "flax", flax.__version__, "optax", optax.__version__, "devices", jax.devices())'
} 2>&1 | tee "$out/versions.txt"

python3 -m pytest -q -x tests/test_switch.py tests/test_models.py tests/test_corpus.py 2>&1 | tail -5 | tee "$out/tests.txt"

for w in switch-small dense-small; do
  python3 -m harness.cli run --workload "$w" --no-progress --output-dir "$out/results" 2>&1 | tee "$out/run-$w.txt"
done
# Flatten the result files one folder up so that they come back from a device run.
for f in "$out"/results/*/result.json; do
  cp "$f" "$out/$(basename "$(dirname "$f")").json"
done
