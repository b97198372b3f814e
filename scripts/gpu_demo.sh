#!/usr/bin/env bash
# The GPU demonstration in one command: the base pair on one H100/H200, NVML-measured, within DEMO_SECONDS
# (default 450 s: a device command of at most 8 minutes, installs and compiles included, with room to write).
#   1. machine: the card, driver, power limit and software versions;
#   2. step:  dense-base, switch-base and its dropless twin, compiled steps at the spec's K steps a call (or
#             DEMO_K): ms/step, MFU, switch / dense step, dropless / capacity step (bench_switch_step --dropless);
#      layer: one switch-base layer against the dense FFN at 1 to 4,096 tokens a call (decode to prefill and
#             training), capacity and dropless (the grouped matmul: ragged_dot's Triton kernel on a card where JAX
#             has it) (bench_switch_layer);
#   3. edges: the metering window edges' cost around a ~10 ms step (bench_monitor, part 1);
#   4. target: dense-base then switch-base to target on the default corpus with NVML energy, dense getting
#             2/3 of the time left and switch the rest (tune_lr --no-sweep --shares 2,1); a run whose share is
#             spent is recorded `aborted` with its eval trace: a lower bound on its steps and energy to target;
#   5. control: the same pair on the control corpus, if at least DEMO_CONTROL_MIN_S (default 150 s) are left;
#   6. summary: every figure, the runner's efficiency in the runs and dense / switch energy to target, or its lower
#             bound, said as such (demo_summary.py).
# Everything lands flat in ${OUT:-device_out}/, 6 files: demo.txt (the whole log), summary.txt, summary.json,
# dense-base.json and switch-base.json (the default-corpus records), runs.tar.gz (every run directory: records,
# power traces, steps, :::MLLOG logs, emissions.csv).
# A stage that fails (a traceback, a timeout) is said where it fails, listed on the summary's first line, and makes
# the command exit 1: a wasted run says so. PYTHON names the interpreter (default python3).
# Usage on the device: bash scripts/gpu_demo.sh    (carry the wheels the image lacks in .whl/: device_env.sh)
# Dry run on a CPU, every stage at tiny width with a fake NVML GPU (tests/fake_pynvml), ~1 minute (the control
# stage with DEMO_TINY_CONTROL=1 only); a test run by .ci/run (pytest -m dryrun):
#        DEMO_TINY=1 OUT=/tmp/demo bash scripts/gpu_demo.sh
source "$(dirname "$0")/device_env.sh"
scratch
deadline=$(( $(date +%s) + ${DEMO_SECONDS:-450} ))
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}
tiny=(); blocks=2; steps=20; edge_blocks=8; cap=20000; layer=(--shapes base --tokens 1,4,16,64,512,4096 --blocks 3)
if [ -n "${DEMO_TINY:-}" ]; then
  tiny=(--tiny-width); blocks=1; steps=4; edge_blocks=2; cap=200; layer=(--shapes small --tokens 1,64 --blocks 1)
  # The control stage is the target stage on the other corpus (the same to_target): a dry run skips it unless
  # DEMO_TINY_CONTROL=1, to keep the suite's dry run short.
  [ -n "${DEMO_TINY_CONTROL:-}" ] || DEMO_CONTROL_MIN_S=100000
  export PYTHONPATH="$PWD/tests/fake_pynvml:$PYTHONPATH"  # every energy figure of a dry run is made up
fi
k=${DEMO_K:-$("$PYTHON" -c 'from workloads.registry import WORKLOADS; print(WORKLOADS["dense-base"].steps_per_dispatch)' ||
  echo 1)}
to_target() {  # corpus, output folder: the pair to target in the time left, tune_lr's own time boxes inside it
  timeout "$(( $(left) + 20 ))" "$PYTHON" scripts/tune_lr.py --pair base "${tiny[@]}" --meter nvml --corpus "$1" \
    --no-sweep --max-steps "$cap" --deadline "$deadline" --shares 2,1 --output-dir "$2"
}
{
  [ -n "${DEMO_TINY:-}" ] && echo "DRY RUN: tiny width on a CPU, fake NVML GPU; no figure here is a measurement"
  echo "== machine"; date -u; uname -m; nproc
  nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv 2>/dev/null ||
    echo "no NVIDIA GPU here (nvidia-smi not found)"
  stage machine "$PYTHON" -c 'import sys, jax, flax, optax; print("python", sys.version.split()[0], "jax",
    jax.__version__, "flax", flax.__version__, "optax", optax.__version__, "devices", jax.devices())'
  echo "== step ($(left) s left): K = $k"
  stage step timeout "$(box 110)" "$PYTHON" scripts/bench_switch_step.py --pair base "${tiny[@]}" --blocks "$blocks" \
    --steps "$steps" --steps-per-dispatch "$k" --dropless --json "$work/bench_step.json"
  echo "== layer ($(left) s left)"
  stage layer timeout "$(box 40)" "$PYTHON" scripts/bench_switch_layer.py "${layer[@]}" --json "$work/bench_layer.json"
  echo "== edges ($(left) s left)"
  stage edges timeout "$(box 30)" "$PYTHON" scripts/bench_monitor.py --blocks "$edge_blocks" --steps 25 --repeats 0 \
    --json "$work/bench_edges.json"
  echo "== target, default corpus ($(left) s left)"
  stage "target (default corpus)" to_target default "$work/runs/default"
  if [ "$(left)" -ge "${DEMO_CONTROL_MIN_S:-150}" ]; then
    echo "== control corpus ($(left) s left)"
    stage "control corpus" to_target control "$work/runs/control"
  else
    echo "== control corpus skipped: $(left) s left"
  fi
  echo "== summary ($(left) s left)"
  stage summary "$PYTHON" scripts/demo_summary.py "$work" "$out" ${DEMO_TINY:+--dry-run}
} 2>&1 | tee "$out/demo.txt"
for f in "$work"/runs/default/*/result.json; do
  [ -f "$f" ] && cp "$f" "$out/$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["workload"])' "$f" |
    sed 's/-at-tiny-width//').json"
done
tar -czf "$out/runs.tar.gz" -C "$work" runs 2>/dev/null
finish "$out/demo.txt"
