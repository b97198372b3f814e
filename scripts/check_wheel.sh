#!/usr/bin/env bash
# The distribution as a user gets it: build the sdist from the tree, the wheel from the unpacked sdist (so the
# sdist is proved complete), install the wheel (not editable) into a new virtual environment with no access to
# this tree or to the system's packages, and run harness from a folder outside the tree: `meters` (the CPU
# table), a -tiny workload to its target, the text workload for a few steps (the shipped corpus), `regions`
# (the carbon tables), the example meter plugin installed beside it (listed by `meters` as a plugin), and
# `package` + `check` (the MLPerf rules YAML). Exit 1 with the failing step named.
#
#   scripts/check_wheel.sh            # uses python3; PYTHON=... to choose another
#
# The dependencies come from the package index (or pip's cache and configured mirrors), as for any user.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { echo "== $*"; }
fail() { echo "check_wheel: FAILED at: $*" >&2; exit 1; }

step "copy the tree (tracked and unignored files) to $work/src"
mkdir -p "$work/src" "$work/dist" "$work/unpacked"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$work/src"

step "build the sdist, then the wheel from the unpacked sdist"
(cd "$work/src" && "$python" -c "from setuptools import build_meta as b; print(b.build_sdist('$work/dist'))") \
  >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; fail "building the sdist"; }
tar -xzf "$work"/dist/*.tar.gz -C "$work/unpacked"
(cd "$work"/unpacked/* && "$python" -c "from setuptools import build_meta as b; print(b.build_wheel('$work/dist'))") \
  >>"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; fail "building the wheel from the sdist"; }
wheel="$(ls "$work"/dist/*.whl)"
name="$(basename "$wheel")"
[[ "$name" == energy_bench_harness-* ]] || fail "the wheel is named $name, not energy_bench_harness-*"

step "install $name into a clean virtual environment"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" >"$work/pip.log" 2>&1 ||
  { tail -20 "$work/pip.log"; fail "pip install $name"; }
harness="$work/venv/bin/harness"
mkdir -p "$work/outside" && cd "$work/outside"
"$work/venv/bin/python" - "$work/venv" <<'EOF' || fail "the installed package is not the wheel's"
import importlib.metadata, sys
import harness, workloads
for module in (harness, workloads):
    assert module.__file__.startswith(sys.argv[1]), f"{module.__name__} imported from {module.__file__}"
assert importlib.metadata.version(harness.DISTRIBUTION)
print("imports from the venv:", harness.__file__)
EOF

step "harness meters"
"$harness" meters >meters.txt 2>&1 || fail "harness meters"
grep -q "cpu-model" meters.txt || fail "harness meters lists no cpu-model row"

step "harness run --workload dense-tiny (to its target)"
"$harness" run --workload dense-tiny --output-dir runs >run.txt 2>&1 || { cat run.txt; fail "harness run dense-tiny"; }

step "harness run --workload dense-text --max-steps 20 (reads the shipped corpus; not converged: exit 1)"
set +e
"$harness" run --workload dense-text --max-steps 20 --output-dir text >text.txt 2>&1
rc=$?
set -e
[ "$rc" = 1 ] && grep -q NOT_CONVERGED text.txt || { cat text.txt; fail "harness run dense-text (exit $rc)"; }

step "harness regions"
"$harness" regions >regions.txt 2>&1 || fail "harness regions"

step "the example meter plugin, installed beside it: harness meters lists it as a plugin"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$work/src/examples/meter-plugin" \
  >>"$work/pip.log" 2>&1 || { tail -20 "$work/pip.log"; fail "pip install examples/meter-plugin"; }
"$harness" meters --json >meters.json 2>meters.err || { cat meters.err; fail "harness meters with the plugin"; }
"$work/venv/bin/python" - meters.json <<'EOF' || fail "harness meters does not list the installed plugin"
import json, sys
rows = {row["backend"]: row for row in json.load(open(sys.argv[1]))}
origin = rows["energy-file"]["origin"]
assert origin["kind"] == "plugin" and origin["distribution"] == "harness-energy-file", origin
print("plugin listed:", origin)
EOF

step "harness package + check (the MLPerf rules)"
"$harness" package runs --org wheel-check --system cpu --output-dir pkg >package.txt 2>&1 || fail "harness package"
"$harness" check pkg/wheel-check >check.txt 2>&1 || { cat check.txt; fail "harness check"; }
echo "check_wheel: OK ($name, installed and run outside the tree)"
