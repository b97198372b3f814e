"""Attach a node power log recorded by an external analyser (PTDaemon or alike) to a finished run.

The log is aligned on wall-clock time with the run's timed window (run_start..run_stop) and integrated, and
the run's record is made anew through the schema with the node figure as its energy: every figure derived
from the energy (CO2e, tokens and FLOPs per joule) follows it, and the run's MLPerf power log is rendered
again from the imported readings. The component meters' figures stay in the record beside it, with the
disagreement between the two.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from harness.errors import UsageError
from harness.meters.ptdaemon import parse_power_log, window_energy
from harness.meters.window import node_vs_components
from harness.mlperf.runlog import render_power_log, run_log_names
from harness.results.reader import read_record
from harness.results.schema import Record
from harness.results.writer import RecordFiles

LOG_COPY = "power_node_log.txt"


def import_power_log(run_dir: Path, log_path: Path, utc_offset_h: float = 0.0) -> Record:
    """Integrate the log over the run window and make it the run's energy; returns the new record."""
    run_dir = Path(run_dir)
    if not (run_dir / "result.json").is_file():
        raise UsageError(f"{run_dir}: no result.json (give a run directory written by harness run)")
    record = read_record(run_dir, verify_files=True)
    energy = record.energy
    if energy.node_j is not None:
        raise UsageError(f"{run_dir}: this run already has node-level energy ({energy.method}); "
                         "a second node figure is not imported")
    marks = record.timing.marks_unix_s
    if "run_start" not in marks or "run_stop" not in marks:
        raise UsageError(f"{run_dir}: the run has no run_start..run_stop window to align the log with")
    log = parse_power_log(log_path, utc_offset_h)
    node = window_energy(log, marks["run_start"], marks["run_stop"])

    files = RecordFiles(run_dir)
    files.hashes, files.missing = dict(record.files), dict(record.files_missing)
    if not files.write(LOG_COPY, lambda p: shutil.copyfile(log_path, p)):
        raise OSError(f"{run_dir / LOG_COPY}: cannot copy the log there ({files.missing[LOG_COPY]})")
    device_j = energy.device_j if energy.device_j is not None else energy.total_j
    checks = energy.cross_checks
    if device_j is not None:
        checks = (*checks, node_vs_components("imported node power log", node["joules"], device_j))
    flags = energy.flags
    if node["gaps"]:
        flags = (*flags, f"imported log has {len(node['gaps'])} gap(s) over 2 s inside the run window; "
                         "bridged linearly")
    imported = replace(energy, total_j=node["joules"], node_j=node["joules"], device_j=device_j,
                       method=node["method"], cross_checks=checks, flags=flags,
                       basis="node-level energy from the imported power log (contains every component of the node)",
                       external_import=node | {"source": str(Path(log_path).resolve()), "copied_to": LOG_COPY,
                                               "utc_offset_h": utc_offset_h})
    record = replace(record, energy=imported)
    for name, (node_name, host) in run_log_names(record).items():
        if name != "mllog.txt":  # the power log now holds the imported readings
            files.text(name, lambda node_name=node_name, host=host: render_power_log(record, run_dir, node_name,
                                                                                    host))
    record, ok = files.record(record)
    if not ok:
        raise OSError(f"{run_dir / 'result.json'}: cannot write the new record ({record.files_missing['result.json']})")
    return record
