"""Turn a finished (or interrupted) run into result.json, power.csv, quality.csv and steps.csv."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Any

from harness.results.files import sha256_file, write_csv, write_json
from harness.results.reader import SCHEMA  # the reader owns the schema


def new_run_dir(root: Path, workload: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(root) / f"{stamp}-{workload}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def write_traces(run_dir: Path, power_rows: list[dict], eval_trace: list[dict], step_rows: list[dict]) -> dict:
    """Write the CSV traces and return {file name: sha256} for result.json."""
    files = {
        "power.csv": power_rows,
        "quality.csv": eval_trace,
        "steps.csv": step_rows,
    }
    hashes = {}
    for name, rows in files.items():
        columns = _union_columns(rows)
        write_csv(run_dir / name, rows, columns)
        hashes[name] = sha256_file(run_dir / name)
    return hashes


def write_host_trace(run_dir: Path, process: int, power_rows: list[dict]) -> Path:
    """host_<k>/power.csv: one process's own power trace in a multi-process run."""
    path = run_dir / f"host_{process}" / "power.csv"
    write_csv(path, power_rows, _union_columns(power_rows))
    return path


def write_result(run_dir: Path, result: dict[str, Any], durable: bool = True) -> Path:
    path = run_dir / "result.json"
    write_json(path, {"schema": SCHEMA, **result}, durable)
    return path


def _union_columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)
