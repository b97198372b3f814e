#!/usr/bin/env bash
# Calibrate the base pair on one GPU, in one command that ends by a deadline (CALIBRATE_SECONDS, default 560 s,
# for a device command of at most 10 minutes). Stages, run in the order given (CALIBRATE_STAGES, comma-separated):
#   bench   switch-base / dense-base step time and MFU (bench_switch_step), fused vs plain attention
#           (bench_attention), the mesh code path on one GPU vs the single-device path (bench_mesh --one-device);
#   input   prefetched input vs a resident batch, and the runner's loop (bench_input_pipeline);
#   target  each model to its target at the spec's learning rate: the learning curves, steps, time, NVML energy
#           and MFU to target (tune_lr --no-sweep);
#   sweep   the learning-rate sweep (CALIBRATE_SWEEP_STEPS steps each, lowest eval loss wins), then each model
#           to target at the rate it won (tune_lr --full).
# The default, "input,target", is what the H100 session of 2026-11-27 left to do (reference_results/nvidia-h100/
# base/README.md): "bench" was measured there, and a 200-step sweep could not choose a rate, because every rate
# sits on the same plateau (the in-domain unigram entropy) until well after warm-up. The runs to target share the
# time the deadline leaves; one that runs out of it is recorded `aborted` with its eval trace, which says how far
# it got and how fast it was going.
# Then put the chosen rates in workloads/registry.py (and the rules YAML), copy the files into
# reference_results/<card>/base/, and run `python scripts/make_rcps.py reference_results`.
# Everything lands flat in ${OUT:-device_out}/: calibrate.txt, the last two runs' result.json, and every run
# directory in runs.tar.gz (at most 8 files come back from a device run).
# Usage: bash scripts/calibrate_base.sh
#        CALIBRATE_STAGES=bench,input,sweep CALIBRATE_SWEEP_STEPS=2000 bash scripts/calibrate_base.sh
#        CALIBRATE_TINY=1 CALIBRATE_STAGES=bench,input,target,sweep bash scripts/calibrate_base.sh
#                                       (a dry run of every stage on a CPU at tiny width, ~1 minute)
#        CALIBRATE_CORPUS=control bash scripts/calibrate_base.sh   (the same on the control corpus)
source "$(dirname "$0")/device_env.sh"
deadline=$(( $(date +%s) + ${CALIBRATE_SECONDS:-560} ))
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}  # the base steps need ~50 GB of temporaries
tiny=(); meter=(); sweep=${CALIBRATE_SWEEP_STEPS:-2000}; cap=12000; blocks=3
if [ -n "${CALIBRATE_TINY:-}" ]; then tiny=(--tiny-width); meter=(--meter fake); sweep=20; cap=200; blocks=2; fi
corpus=${CALIBRATE_CORPUS:-default}
{
  echo "== machine"; date -u; uname -m; nproc
  nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv 2>/dev/null ||
    echo "no NVIDIA GPU here (nvidia-smi not found)"
  python3 -c 'import sys, jax, flax, optax; print("python", sys.version.split()[0], "jax", jax.__version__,
    "flax", flax.__version__, "optax", optax.__version__, "devices", jax.devices())'
  IFS=, read -ra stages <<< "${CALIBRATE_STAGES:-input,target}"
  for stage in "${stages[@]}"; do
    echo "== $stage ($(left) s left)"
    case $stage in
      bench)
        timeout "$(box 100)" python3 scripts/bench_switch_step.py --pair base "${tiny[@]}" --blocks "$blocks" --steps 20
        timeout "$(box 80)" python3 scripts/bench_attention.py --workload dense-base "${tiny[@]}" --blocks "$blocks" \
          --steps 20
        timeout "$(box 70)" python3 scripts/bench_mesh.py --one-device --pair base "${tiny[@]}" --blocks 2 --steps 10
        ;;
      input)  # ~80 s on an H100: two compiles of dense-base (the bench's trainer and the runner's own)
        timeout "$(box 150)" python3 scripts/bench_input_pipeline.py --workload dense-base "${tiny[@]}" \
          --blocks "$blocks" --steps 50
        ;;
      target)
        timeout "$(( $(left) + 15 ))" python3 scripts/tune_lr.py --pair base "${tiny[@]}" "${meter[@]}" \
          --corpus "$corpus" --no-sweep --max-steps "$cap" --deadline "$deadline" --output-dir "$out/runs"
        ;;
      sweep)
        timeout "$(( $(left) + 15 ))" python3 scripts/tune_lr.py --pair base "${tiny[@]}" "${meter[@]}" \
          --corpus "$corpus" --sweep-steps "$sweep" --full --max-steps "$cap" --deadline "$deadline" \
          --output-dir "$out/runs"
        ;;
      *) echo "unknown stage '$stage': valid are bench, input, target, sweep" ;;
    esac
  done
} 2>&1 | tee "$out/calibrate.txt"
# The runs to target are the last two; flatten their result.json so that they come back from a device run.
for f in $(ls -d "$out"/runs/*/ 2>/dev/null | tail -2); do
  cp "$f/result.json" "$out/$(basename "$f").json"
done
tar -czf "$out/runs.tar.gz" -C "$out" runs 2>/dev/null && rm -rf "$out/runs"
