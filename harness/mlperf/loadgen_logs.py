"""What MLPerf Power's client (power-dev's `power_client`) needs from the workload it runs: LoadGen's
mlperf_log_detail.txt (its UTC power_begin/power_end) and mlperf_log_summary.txt in the folder its -L names,
written after the run (`--loadgen-log-dir` of `harness infer` and `harness run`).

The client looks there after each of its two runs (ranging, testing) for a detail log whose power window lies inside
the run it just timed, and copies both files into its session folder; a second run overwrites the first's, as the
client expects. Each file is written atomically (the client never reads half of one), the detail log last.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

from harness.results.files import atomic_write_text, read_stored
from harness.results.schema import Record

DETAIL, SUMMARY = "mlperf_log_detail.txt", "mlperf_log_summary.txt"


def export_loadgen_logs(run_folder: Path, dest: Path) -> None:
    """A `harness infer` record's performance-run logs (LoadGen's own, byte for byte) into `dest`. The accuracy
    pass's stay out: the client takes the first detail log whose window fits, and that one's would too."""
    for name in (SUMMARY, DETAIL):
        atomic_write_text(dest / name, read_stored(run_folder / name).decode("utf-8"))


def _stamp(t: float) -> str:
    """Unix s as LoadGen stamps power_begin/power_end: UTC, "MM-DD-YYYY HH:MM:SS.mmm"."""
    ms = round(t * 1e3)  # whole milliseconds already: from an integer, so that float rounding cuts none off
    return dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).strftime("%m-%d-%Y %H:%M:%S") + f".{ms % 1000:03d}"


def _line(key: str, value: object) -> str:
    entry = {"key": key, "value": value, "time_ms": 0, "namespace": "harness", "event_type": "POINT_IN_TIME",
             "metadata": {"is_error": False, "is_warning": False, "file": "harness/mlperf/loadgen_logs.py"}}
    return ":::MLLOG " + json.dumps(entry)


def write_window_logs(record: Record, dest: Path) -> bool:
    """A training run has no LoadGen: its timed window run_start..run_stop goes into `dest` as power_begin..power_end
    in LoadGen's log format (widened to whole milliseconds, so that it holds the run's window), with a summary that
    says so. False when the run has no such window (it never started its timed window)."""
    marks = record.timing.marks_unix_s
    if "run_start" not in marks or "run_stop" not in marks:
        return False
    begin, end = math.floor(marks["run_start"] * 1e3) / 1e3, math.ceil(marks["run_stop"] * 1e3) / 1e3
    # The note names neither key: the client and MLPerf's checker read the first line that contains one.
    note = (f"harness run {record.run_id} ({record.workload}, status {record.status}): a training run, not LoadGen; "
            "its timed window run_start..run_stop as LoadGen's power window, for MLPerf Power's client")
    atomic_write_text(dest / SUMMARY, f"{note}\n")
    atomic_write_text(dest / DETAIL, "\n".join([_line("harness_note", note), _line("power_begin", _stamp(begin)),
                                                _line("power_end", _stamp(end))]) + "\n")
    return True
