# Sourced by the device scripts: output folder, unbuffered Python, the checkout on PYTHONPATH, and the wheels
# the device image lacks (mlperf-logging, scipy), carried in .whl/ as the device tool's README says.
set -uo pipefail
out=${OUT:-device_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c 'import mlperf_logging, scipy' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
# Seconds left before $deadline (unix seconds, set by the sourcing script), and a stage's cap within them.
left() { echo $(( deadline - $(date +%s) )); }
box() { local l; l=$(left); echo $(( $1 < l ? $1 : (l > 1 ? l : 1) )); }
