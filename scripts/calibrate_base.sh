#!/usr/bin/env bash
# Calibrate the base pair on one GPU, in one command of at most 9 minutes (an H100/H200, by design):
#   1. machine and versions;
#   2. switch-base / dense-base step time at matched activated FLOPs, and each model's MFU (bench_switch_step);
#   3. fused vs plain attention in dense-base's step (bench_attention);
#   4. prefetched input vs a resident batch, and the runner's loop (bench_input_pipeline); the mesh code path
#      on one GPU vs the single-device path (bench_mesh --one-device);
#   5. the learning-rate sweep for both models (300 steps each, lowest eval loss wins), then each model to its
#      target at the rate it won: steps, time, NVML energy and MFU to target (tune_lr --full).
# Then put the chosen rates in workloads/registry.py (and the rules YAML), copy the files into
# reference_results/<card>/base/, and run `python scripts/make_rcps.py reference_results`.
# Everything lands flat in ${OUT:-device_out}/: calibrate.txt, the two to-target result.json files, and every
# run directory in runs.tar.gz (at most 8 files come back from a device run).
# Usage: bash scripts/calibrate_base.sh
#        CALIBRATE_TINY=1 bash scripts/calibrate_base.sh      (a dry run on a CPU at tiny width, ~2 minutes)
#        CALIBRATE_CORPUS=control bash scripts/calibrate_base.sh   (the same on the control corpus)
source "$(dirname "$0")/device_env.sh"
tiny=(); sweep=300; cap=12000; blocks=3
if [ -n "${CALIBRATE_TINY:-}" ]; then tiny=(--tiny-width); sweep=20; cap=200; blocks=2; fi
corpus=${CALIBRATE_CORPUS:-default}
{
  echo "== machine"; date -u; uname -m; nproc
  nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv 2>/dev/null ||
    echo "no NVIDIA GPU here (nvidia-smi not found)"
  python3 -c 'import sys, jax, flax, optax; print("python", sys.version.split()[0], "jax", jax.__version__,
    "flax", flax.__version__, "optax", optax.__version__, "devices", jax.devices())'
  echo "== bench_switch_step --pair base"
  timeout 150 python3 scripts/bench_switch_step.py --pair base "${tiny[@]}" --blocks "$blocks" --steps 20
  echo "== bench_attention (dense-base)"
  timeout 120 python3 scripts/bench_attention.py --workload dense-base "${tiny[@]}" --blocks "$blocks" --steps 20
  echo "== bench_input_pipeline (dense-base)"
  timeout 150 python3 scripts/bench_input_pipeline.py --workload dense-base "${tiny[@]}" --blocks "$blocks" \
    --steps 50
  echo "== bench_mesh --one-device (switch-base): the mesh code path on one GPU vs the single-device path"
  timeout 90 python3 scripts/bench_mesh.py --one-device --pair base "${tiny[@]}" --blocks 2 --steps 10
  echo "== tune_lr --pair base (corpus $corpus): sweep of $sweep steps, then each model to target"
  meter=(); [ -n "${CALIBRATE_TINY:-}" ] && meter=(--meter fake)
  timeout 420 python3 scripts/tune_lr.py --pair base "${tiny[@]}" "${meter[@]}" --corpus "$corpus" \
    --sweep-steps "$sweep" --full --max-steps "$cap" --output-dir "$out/runs"
} 2>&1 | tee "$out/calibrate.txt"
# The to-target runs are the last two; flatten their result.json so that they come back from a device run.
for f in $(ls -d "$out"/runs/*/ 2>/dev/null | tail -2); do
  cp "$f/result.json" "$out/$(basename "$f").json"
done
tar -czf "$out/runs.tar.gz" -C "$out" runs 2>/dev/null && rm -rf "$out/runs"
