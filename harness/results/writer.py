"""Writing a record and its files: each atomically (a reader, or a crash, never sees half a file), each
hashed into the record, and none lost in silence.

A file that cannot be written (a full disk, a vanished folder) is listed in the record's `files_missing`
with the reason, so that `harness check` fails the record and every reader can say what is not there; the
command that wrote it says so in one line and exits non-zero. The record itself is written before the files
that are rendered from it (the :::MLLOG logs, the emissions.csv row), listing them as not yet written, and
rewritten after them: if that last write fails, the record on disk still says they may be missing.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.results import files
from harness.results.encoding import to_json
from harness.results.schema import Record

RESULT_JSON = "result.json"
PENDING = "not yet written when the record was last saved"


def new_folder(root: Path, name: str) -> Path:
    """A new folder `<root>/<utc time>-<name>-<random>` (a run, a --runs set, a study campaign)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(root) / f"{stamp}-{name}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


class RecordFiles:
    """The files of one record being written: name -> sha256 for those written, name -> why for those not."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hashes: dict[str, str] = {}
        self.missing: dict[str, str] = {}

    def write(self, name: str, writer: Callable[[Path], Any], hashed: bool = True) -> bool:
        """writer(path) writes the file; an OSError leaves it listed as missing, with why, instead of raising."""
        path = self.folder / name
        try:
            writer(path)
            if hashed:
                self.hashes[name] = files.sha256_file(path)
        except OSError as e:
            self.hashes.pop(name, None)
            self.missing[name] = _why(e)
            return False
        self.missing.pop(name, None)
        return True

    def adopt(self, name: str) -> bool:
        """A file another program wrote in the folder (LoadGen's logs), hashed into the record like ours."""
        return self.write(name, lambda path: None)

    def csv(self, name: str, rows: list[dict[str, Any]]) -> bool:
        return self.write(name, lambda p: files.write_csv(p, rows, union_columns(rows)))

    def text(self, name: str, render: Callable[[], str]) -> bool:
        """A file rendered from the record; a rendering bug is listed like a failed write, never raised: it
        must not cost a measured run its record."""
        try:
            content = render()
        except Exception as e:
            self.missing[name] = f"its rendering failed: {type(e).__name__}: {e}"
            return False
        return self.write(name, lambda p: files.atomic_write_text(p, content))

    def expect(self, *names: str) -> None:
        """Files still to come: listed as missing until written, so that a record saved now says so."""
        for name in names:
            self.missing.setdefault(name, PENDING)

    def record(self, record: Record, durable: bool = True) -> tuple[Record, bool]:
        """`record` with these files, written to result.json; (the record, whether the write succeeded)."""
        record = replace(record, files=dict(self.hashes), files_missing=dict(self.missing))
        try:
            write_record(self.folder, record, durable)
        except OSError as e:
            return replace(record, files_missing=dict(record.files_missing) | {RESULT_JSON: _why(e)}), False
        return record, True


def write_record(folder: Path, record: Record, durable: bool = True) -> Path:
    """result.json in `folder`, atomically (durable=False skips the fsync: for records replaced soon)."""
    path = Path(folder) / RESULT_JSON
    files.atomic_write_text(path, json.dumps(to_json(record), indent=2) + "\n", durable)
    return path


def union_columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _why(e: OSError) -> str:
    return f"{e.strerror or e}" + (f" (errno {e.errno})" if e.errno else "")
