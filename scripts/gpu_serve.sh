#!/usr/bin/env bash
# The GPU serving demonstration in one command, within DEMO_SECONDS (default 290 s: under 5 minutes on an H100/H200,
# installs and compiles included):
#   1. machine: the card, driver and software versions;
#   2. train: dense-small and switch-small to target on the card, one seed, NVML-measured, weights kept (seconds
#             there: `harness study --seeds 1`);
#   3. serve: each run under MLPerf LoadGen, Offline, at batches 1, 4, 16, 64 (SERVE_BATCHES), NVML-metered, the
#             Switch model routed dropless (`harness study --inference`);
#   4. capacity: the same with capacity routing at the spec's eval factor (the paper's setting), if time is left;
#   5. summary: J per generated token, tokens/J, dense / Switch per batch, drops and quality, per routing
#             (serve_summary.py).
# Wheels the device image (Python 3.12) lacks, carried in .whl/ (device_env.sh installs them), fetched beforehand:
#   pip download --python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64 --no-deps -d .whl \
#       mlcommons-loadgen==6.0.17 mlperf-logging
# Everything lands flat in ${OUT:-device_out}/, 4 files: serve.txt (the whole log), serve_summary.txt,
# serve_summary.json, serve_runs.tar.gz (the study: training records and traces, every inference record with
# LoadGen's logs; no weights). A stage that fails is said where it fails, listed on the summary's first line, and
# makes the command exit 1. PYTHON names the interpreter (default python3).
# Usage on the device: bash scripts/gpu_serve.sh
# Dry run on a CPU (the tiny pair, a fake NVML GPU, batch 1, half-second tests), run by .ci/run (-m dryrun):
#        DEMO_TINY=1 OUT=/tmp/serve bash scripts/gpu_serve.sh
source "$(dirname "$0")/device_env.sh"
scratch
deadline=$(( $(date +%s) + ${DEMO_SECONDS:-290} ))
pair=dense-small,switch-small; batches=${SERVE_BATCHES:-1,4,16,64}; short=()
if [ -n "${DEMO_TINY:-}" ]; then
  pair=dense-tiny,switch-tiny; batches=1; short=(--duration-ms 500 --samples 16)
  export PYTHONPATH="$PWD/tests/fake_pynvml:$PYTHONPATH"  # every energy figure of a dry run is made up
fi
serve() {  # cap in seconds, then routing flags: every run of the study served at every batch
  local cap=$1
  shift
  local campaign
  campaign=$(ls -d "$work"/campaign/*-study-*/ 2>/dev/null | head -1)
  timeout "$(box "$cap")" "$PYTHON" -m harness.cli study --inference --from "${campaign:-$work/campaign}" \
    --batches "$batches" --meter nvml "${short[@]}" "$@"
}
{
  [ -n "${DEMO_TINY:-}" ] && echo "DRY RUN: the tiny pair on a CPU, fake NVML GPU; no figure here is a measurement"
  echo "== machine"; date -u
  nvidia-smi --query-gpu=name,driver_version,power.limit,memory.total --format=csv 2>/dev/null ||
    echo "no NVIDIA GPU here (nvidia-smi not found)"
  stage machine "$PYTHON" -c 'import sys, jax, mlperf_loadgen; print("python", sys.version.split()[0], "jax",
    jax.__version__, "devices", jax.devices())'
  echo "== train ($(left) s left): $pair, one seed, weights kept"
  stage train timeout "$(box 120)" "$PYTHON" -m harness.cli study --workloads "$pair" --seeds 1 --meter nvml \
    --output-dir "$work/campaign"
  echo "== serve, Switch dropless ($(left) s left): batches $batches"
  stage "serve dropless" serve 110
  if [ "$(left)" -ge "${SERVE_CAPACITY_MIN_S:-60}" ] || [ -n "${DEMO_TINY:-}" ]; then
    echo "== serve, Switch capacity routing ($(left) s left)"
    stage "serve capacity" serve 90 --routing capacity
  else
    echo "== serve, capacity routing skipped: $(left) s left"
  fi
  echo "== summary ($(left) s left)"
  stage summary "$PYTHON" scripts/serve_summary.py "$work/campaign" "$out" "$failed_file" ${DEMO_TINY:+--dry-run}
} 2>&1 | tee "$out/serve.txt"
tar -czf "$out/serve_runs.tar.gz" -C "$work" --exclude weights.npz campaign 2>/dev/null
finish "$out/serve.txt"
