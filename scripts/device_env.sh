# Sourced by the device scripts: output folder, unbuffered Python, the interpreter ($PYTHON, default python3: the
# suite passes its own), the checkout on PYTHONPATH, the wheels the device image lacks (mlperf-logging,
# mlcommons-loadgen), carried in .whl/ as the device tool's README says, and `stage`: a stage that fails is said
# and remembered. Neither demonstration needs scipy (whose ~37 MB wheel would not fit beside the tree in the
# device's 64 MiB): the one interval they would take from it, the metering edges', is left out without it.
set -uo pipefail
out=${OUT:-device_out}
mkdir -p "$out"
export PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c 'import mlperf_logging, mlperf_loadgen' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# scratch: a scratch folder for the run ($work), and the file the failed stages are listed in ($failed_file).
scratch() {
  work=$(mktemp -d)
  failed_file="$work/failed_stages"
  : > "$failed_file"
}
# stage NAME CMD...: run CMD; if it fails, say so and add "NAME (exit N)" to $failed_file, which the summary's
# first line and the script's exit status (finish) report.
stage() {
  local name=$1 rc
  shift
  "$@"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "!! stage $name FAILED (exit $rc)"
    echo "$name (exit $rc)" >> "$failed_file"
  fi
  return 0
}
# Seconds left before $deadline (unix seconds, set by the sourcing script), and a stage's cap within them.
left() { echo $(( deadline - $(date +%s) )); }
box() { local l; l=$(left); echo $(( $1 < l ? $1 : (l > 1 ? l : 1) )); }
# finish LOG: the failed stages, if any, at the end of LOG; the scratch folder removed; exit 1 if a stage failed.
finish() {
  local status=0
  if [ -s "$failed_file" ]; then
    echo "FAILED stages: $(paste -sd ';' "$failed_file")" | tee -a "$1"
    status=1
  fi
  rm -rf "$work"
  exit "$status"
}
