"""emissions.csv rows in CodeCarbon's format, so that notebooks and dashboards built on CodeCarbon read our
figures: its columns in its order and its units (durations in s, power in W, energy in kWh, emissions in
kg CO2e, RAM in GB), then two of ours. `energy_method` carries the method labels, so that nothing modelled
passes as measured; `harness_record` names the result.json a row came from.

Every `harness run` and `harness meter` appends one row to <output-dir>/emissions.csv, under an exclusive
lock so that concurrent runs into one folder do not interleave. A file that is already there keeps its own
header: our row is written under *its* columns (blank where we have no figure), so a file CodeCarbon started
(2.x or 3.x) stays aligned for pandas. Where that header lacks `energy_method`, the method goes into
`project_name`. A header we cannot write under is moved aside to emissions.csv.bak (then .csv_0.bak, ...,
as CodeCarbon's own `backup` does) and the file starts anew; the caller is told.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
import os
import platform
from pathlib import Path

from harness.results.schema import Record
from harness.results.writer import RecordFiles

# CodeCarbon 3.3.0's emissions.csv header (codecarbon/output_methods/emissions_data.py, EmissionsData), in order.
CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate", "cpu_power",
    "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "water_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)
OURS = ("energy_method", "harness_record")
COLUMNS = (*CODECARBON_COLUMNS, *OURS)
# A header we may write under holds only columns we know (CodeCarbon 2.x's 31 are all among 3.x's) and
# at least these, without which a row says nothing.
REQUIRED = ("timestamp", "run_id", "duration", "emissions", "energy_consumed")
J_PER_KWH = 3.6e6
EMISSIONS_CSV = "emissions.csv"
ROW = f"../{EMISSIONS_CSV}"  # as a record names it among its files: its folder's parent holds the file


def append_record(files: RecordFiles, output_dir: Path, record: Record) -> str | None:
    """The record's row in <output_dir>/emissions.csv, written through `files`, so that a failed append is
    listed in the record; returns what the user must be told (a file moved aside), if anything."""
    said: list[str | None] = []
    files.write(ROW, lambda _: said.append(append_row(Path(output_dir) / EMISSIONS_CSV,
                                                      row_from_record(record, files.folder / "result.json"))),
                hashed=False)
    return said[0] if said else None


def row_from_record(record: Record, record_path: Path) -> dict[str, object]:
    """One row from a record (a run's or a metered command's): energy split by part as CodeCarbon splits it
    (CPU, GPU, RAM), the total as energy_consumed, CO2e from our region table."""
    energy = record.energy
    seconds = record.timing.run_s or 0.0
    parts = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for key, comp in energy.components.items():
        joules = comp.joules or 0.0
        if comp.part == "accelerator":
            parts["gpu"] += joules
        elif comp.part == "cpu":
            parts["ram" if "dram" in key else "cpu"] += joules
    hw = record.environment.hardware
    accel = hw.accelerators
    gross = record.co2e_gross_kg
    busy = energy.contention
    return {
        "timestamp": dt.datetime.fromtimestamp(record.created_unix_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": record.workload,
        "run_id": record.run_id,
        "duration": seconds,
        "emissions": gross,
        "emissions_rate": gross / seconds if gross is not None and seconds else None,
        **{f"{p}_power": (j / seconds if seconds else None) for p, j in parts.items()},
        **{f"{p}_energy": j / J_PER_KWH for p, j in parts.items()},
        "energy_consumed": energy.total_j / J_PER_KWH if energy.total_j is not None else None,
        "region": record.carbon.region if record.carbon else None,
        "os": hw.platform or platform.platform(),
        "python_version": platform.python_version(),
        "cpu_count": hw.logical_cpus or os.cpu_count(),
        "cpu_model": hw.cpu_model,
        "gpu_count": len(accel) or None,
        "gpu_model": f"{len(accel)} x {accel[0].kind}" if accel else None,
        "ram_total_size": hw.memory_gib,
        "tracking_mode": "machine",
        "cpu_utilization_percent": (100 * busy.machine_busy_cpu_s / (busy.seconds * busy.cpus)
                                    if busy and busy.seconds > 0 else None),
        "pue": record.carbon.pue if record.carbon else None,
        "energy_method": energy.label,
        "harness_record": str(record_path),
    }


def append_row(path: Path, row: dict[str, object]) -> str | None:
    """Append `row` to the CSV at `path` under an exclusive lock; returns a sentence for the user when an
    existing file had to be moved aside, else None. A failed write leaves the file as it was and raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    try:
        with open(path, "a+", encoding="utf-8", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                f.seek(0)
                header = next(csv.reader(io.StringIO(f.readline())), None)
                if header and not writable_under(header):
                    return _append_new(path, row, _move_aside(path))
                f.seek(0, os.SEEK_END)
                _append(f, header or list(COLUMNS), row, write_header=not header)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        if not existed and path.is_file() and path.stat().st_size == 0:
            path.unlink(missing_ok=True)  # a file this call created and could not fill: as it was, absent
        raise
    return None


def writable_under(header: list[str]) -> bool:
    return set(header) <= set(COLUMNS) and set(REQUIRED) <= set(header)


def _append(f, columns: list[str], row: dict[str, object], write_header: bool) -> None:
    if "energy_method" not in columns and row.get("energy_method"):
        row = row | {"project_name": f"{row['project_name']} (energy {row['energy_method']})"}
    line = io.StringIO()
    writer = csv.DictWriter(line, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    if write_header:
        writer.writeheader()
    writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    start = f.tell()
    try:
        f.write(line.getvalue())
        f.flush()
        os.fsync(f.fileno())
    except OSError:
        f.truncate(start)  # no half row: the file stays as it was
        raise


def _append_new(path: Path, row: dict[str, object], moved: Path) -> str:
    with open(path, "a", encoding="utf-8", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            _append(f, list(COLUMNS), row, write_header=f.tell() == 0)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return (f"{path} had a header harness cannot write under (not CodeCarbon's): moved it to {moved.name} and "
            "started a new one")


def _move_aside(path: Path) -> Path:
    """emissions.csv -> emissions.csv.bak, or emissions.csv_0.bak, ... (CodeCarbon's naming, never overwriting)."""
    target, i = path.with_name(f"{path.name}.bak"), 0
    while target.exists():
        target = path.with_name(f"{path.name}_{i}.bak")
        i += 1
    path.rename(target)
    return target
