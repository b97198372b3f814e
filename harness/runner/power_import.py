"""Attach a node power log recorded by an external analyser (PTDaemon or alike) to a finished run.

The log is aligned on wall-clock time with the run's timed window (run_start..run_stop), integrated, and
from then on the node figure is the run's energy: facility energy and CO2e are recomputed from it. The
component meters' figures stay in the result beside it, with the disagreement between the two.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from harness import carbon
from harness.errors import UsageError
from harness.meters.ptdaemon import parse_power_log, window_energy
from harness.meters.window import node_vs_components
from harness.results.files import sha256_file
from harness.results.reader import read_result
from harness.results.record import write_result

LOG_COPY = "power_node_log.txt"


def import_power_log(run_dir: Path, log_path: Path, utc_offset_h: float = 0.0) -> dict[str, Any]:
    """Integrate the log over the run window, make it the run's energy, re-price CO2e; returns the result."""
    run_dir = Path(run_dir)
    if not (run_dir / "result.json").is_file():
        raise UsageError(f"{run_dir}: no result.json (give a run directory written by harness run)")
    result = read_result(run_dir, verify_files=True)
    energy = result["energy"]
    if energy.get("node_j") is not None:
        raise UsageError(f"{run_dir}: this run already has node-level energy ({energy['method']}); "
                         "a second node figure is not imported")
    marks = result["timing"]["marks_unix_s"]
    stop = "run_stop" if "run_stop" in marks else None
    if "run_start" not in marks or stop is None:
        raise UsageError(f"{run_dir}: the run has no run_start..run_stop window to align the log with")
    log = parse_power_log(log_path, utc_offset_h)
    node = window_energy(log, marks["run_start"], marks[stop])

    shutil.copyfile(log_path, run_dir / LOG_COPY)
    result["files"][LOG_COPY] = sha256_file(run_dir / LOG_COPY)
    device_j = energy.get("device_j", energy.get("total_j"))
    energy["external_import"] = node | {"source": str(Path(log_path).resolve()), "copied_to": LOG_COPY,
                                        "utc_offset_h": utc_offset_h}
    energy["node_j"] = node["joules"]
    energy["device_j"] = device_j
    energy["total_j"] = node["joules"]
    energy["method"] = node["method"]
    energy["basis"] = "node-level energy from the imported power log (contains every component of the node)"
    if device_j is not None:
        energy.setdefault("cross_checks", []).append(
            node_vs_components("imported node power log", node["joules"], device_j))
    if node["gaps"]:
        energy.setdefault("flags", []).append(
            f"imported log has {len(node['gaps'])} gap(s) over 2 s inside the run window; bridged linearly")
    old = result.get("carbon") or {}
    region = old.get("region", carbon.DEFAULT_REGION)
    overrides = old.get("overrides", {})
    result["carbon"] = carbon.footprint(node["joules"], region, overrides.get("pue"),
                                        overrides.get("carbon_intensity"), overrides.get("net_intensity")).to_dict()
    write_result(run_dir, {k: v for k, v in result.items() if k != "schema"})
    return result
