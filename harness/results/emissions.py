"""emissions.csv rows in CodeCarbon's format, so that notebooks and dashboards built on CodeCarbon read our
figures: its documented columns, in its units (durations in s, power in W, energy in kWh, emissions in
kg CO2e, RAM in GB), and two of ours at the end. `energy_method` carries the method labels, so that nothing
modelled passes as measured; `harness_record` names the result.json a row came from.

Every `harness run` and `harness meter` appends one row to <output-dir>/emissions.csv; rows are appended,
never rewritten, under an exclusive lock so that concurrent runs into one folder do not interleave.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import io
import os
import platform
from pathlib import Path
from typing import Any

# CodeCarbon's emissions.csv header (codecarbon 2.x), in its order.
CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "duration", "emissions", "emissions_rate", "cpu_power", "gpu_power",
    "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version", "cpu_count",
    "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude", "ram_total_size", "tracking_mode", "on_cloud",
    "pue",
)
COLUMNS = (*CODECARBON_COLUMNS, "energy_method", "harness_record")
J_PER_KWH = 3.6e6
EMISSIONS_CSV = "emissions.csv"


def row_from_result(result: dict[str, Any], project: str, record_path: Path) -> dict[str, Any]:
    """One row from a result (a training run's or a metered command's): energy split by part as CodeCarbon
    splits it (CPU, GPU, RAM), the total as energy_consumed, CO2e from our region table."""
    energy, carbon = result["energy"], result.get("carbon") or {}
    seconds = result["timing"].get("run_s") or 0.0
    parts = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for key, comp in energy["components"].items():
        joules = comp.get("joules") or 0.0
        if comp.get("part") == "accelerator":
            parts["gpu"] += joules
        elif comp.get("part") == "cpu":
            parts["ram" if "dram" in key else "cpu"] += joules
    hw = result.get("environment", {}).get("hardware", {})
    accel = [d["kind"] for d in hw.get("devices", []) if d.get("platform") != "cpu"]
    gross = carbon.get("co2e_gross_kg")
    total = energy.get("total_j")
    return {
        "timestamp": dt.datetime.fromtimestamp(result.get("created_unix_s", 0), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": project,
        "run_id": result["run_id"],
        "duration": seconds,
        "emissions": gross,
        "emissions_rate": gross / seconds if gross is not None and seconds else None,
        **{f"{p}_power": (j / seconds if seconds else None) for p, j in parts.items()},
        **{f"{p}_energy": j / J_PER_KWH for p, j in parts.items()},
        "energy_consumed": total / J_PER_KWH if total is not None else None,
        "region": carbon.get("region"),
        "os": hw.get("platform") or platform.platform(),
        "python_version": platform.python_version(),
        "cpu_count": hw.get("logical_cpus") or os.cpu_count(),
        "cpu_model": hw.get("cpu_model"),
        "gpu_count": len(accel) or None,
        "gpu_model": f"{len(accel)} x {accel[0]}" if accel else None,
        "ram_total_size": hw.get("memory_gib"),
        "tracking_mode": "machine",
        "pue": carbon.get("pue"),
        "energy_method": (energy.get("method") or "") + ("" if energy.get("complete", True) else " (INCOMPLETE)"),
        "harness_record": str(record_path),
    }


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append `row` to the CSV at `path` (header first when the file is new), under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = io.StringIO()
    csv.DictWriter(line, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n").writerow(
        {k: ("" if v is None else v) for k, v in row.items()})
    with open(path, "a", encoding="utf-8", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)  # another process may have written since we opened
            if f.tell() == 0:
                f.write(",".join(COLUMNS) + "\n")
            f.write(line.getvalue())
            f.flush()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
