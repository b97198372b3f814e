"""Atomic writes: a reader (or a crash) never sees half a file. Write to a temp file, fsync, rename."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import UsageError


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write `text` to `path` so that a reader sees the old file or the new one, never half of either.
    durable=False skips the fsync: the record then survives a killed process but not a power cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file owner-only; results are for everyone who may read them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """numpy arrays by name as an uncompressed .npz, atomically (float weights barely compress)."""
    import numpy as np  # here: the record's readers and writers load no numpy otherwise

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n", durable)


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Reference folders keep a run's long text traces (steps.csv, its :::MLLOG logs) gzipped beside the record, as
# <name>.gz, so that the repository stays small (scripts/pack_traces.py). The record's hash is of the text itself:
# readers find a listed file plain or packed, and hash and read what it holds.
PACKED_SUFFIX = ".gz"


def stored(path: Path) -> Path | None:
    """Where the file a record lists at `path` lies: `path` itself, else its packed form beside it; None if neither."""
    if path.is_file():
        return path
    packed = path.with_name(path.name + PACKED_SUFFIX)
    return packed if packed.is_file() else None


def read_stored(path: Path) -> bytes:
    """The bytes of the file a record lists at `path`, unpacked if it lies packed (FileNotFoundError if neither)."""
    where = stored(path)
    if where is None:
        raise FileNotFoundError(path)
    return where.read_bytes() if where == path else gzip.decompress(where.read_bytes())


def sha256_stored(path: Path) -> str:
    """sha256_file of the file a record lists at `path`, whether it lies plain or packed."""
    return sha256_file(path) if stored(path) == path else hashlib.sha256(read_stored(path)).hexdigest()


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy and jax scalars/arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def check_writable(directory: Path, flag: str) -> None:
    """Create `directory` and write a file in it now, so that a run never trains only to lose its record."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".harness-write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {directory}: cannot write there ({e.strerror or e}); give a writable "
                         "directory") from None
