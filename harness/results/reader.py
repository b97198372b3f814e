"""The one reader of recorded results: result.json, run directories, --runs sets, studies, campaigns and packages.

Every record goes through `load()`, which reads every shape the harness ever wrote (harness/results/versions.py
upgrades the old ones) into the typed record of harness/results/schema.py, and says in one line what is wrong
with a damaged one: missing, truncated (not valid JSON), the wrong shape, a schema version this harness does
not know (a newer one is refused by name), or a trace whose hash differs from the one recorded. It also says
what a record means: one still `running` whose process is gone is `interrupted` (no final record), never a
finished run.
"""

from __future__ import annotations

import json
import os
import platform
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.results import versions
from harness.results.encoding import SchemaError, from_json
from harness.results.files import sha256_stored, stored
from harness.results.schema import INTERRUPTED_NOTE, SCHEMA, SCHEMA_FAMILY, Record, RunRecord, Status
from workloads.errors import InputError

__all__ = ["ResultReadError", "load", "read_json", "read_record", "read_records", "read_study", "record_in_file",
           "runs_only", "tampered_files"]


_SCHEMA_MARK = f'"schema": "{SCHEMA_FAMILY}'


class ResultReadError(InputError):
    """A record that cannot be read as what it claims to be; the message is one line naming the file."""


def read_json(path: Path, what: str = "file") -> Any:
    """A JSON file's content, or one line saying why not (missing, unreadable, truncated)."""
    if not path.is_file():
        raise ResultReadError(f"{path}: missing (no such {what})")
    try:
        text = path.read_text()
    except OSError as e:
        raise ResultReadError(f"{path}: unreadable ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        hint = ", truncated?" if e.pos >= len(text.rstrip()) - 1 else ""
        raise ResultReadError(f"{path}: damaged: not valid JSON ({e.msg} at line {e.lineno}{hint})") from None


def is_record(data: Any) -> bool:
    """Whether JSON content claims to be a harness record (of any version, readable or not)."""
    schema = data.get("schema") if isinstance(data, dict) else None
    return isinstance(schema, str) and (schema.startswith(SCHEMA_FAMILY) or schema == versions.COMMAND_1)


def load(data: Any, path: Path) -> Record:
    """`data` (read from `path`) as a typed record of the current schema, or one line saying why it is not one."""
    if not isinstance(data, dict):
        raise ResultReadError(f"{path}: not a harness result (a JSON {type(data).__name__}, not an object)")
    schema = data.get("schema")
    if not is_record(data):
        raise ResultReadError(f"{path}: not a harness result (schema {schema!r}; expected {SCHEMA})")
    if schema not in versions.READABLE:
        raise ResultReadError(f"{path}: schema {schema} is not one this harness reads "
                              f"({', '.join(versions.READABLE)}); a newer harness wrote it: upgrade harness to read it")
    try:
        record = from_json(versions.upgrade(data))
    except (SchemaError, KeyError, TypeError, AttributeError) as e:
        what = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise ResultReadError(f"{path}: damaged harness result: {what}") from None
    return _as_read(replace(record, source=Path(path), read_schema=schema))


def read_record(path: Path, verify_files: bool = False) -> Record:
    """A result.json (or the run directory holding one), checked; with verify_files, every trace it lists must
    still hash as recorded."""
    path = Path(path)
    file = path / "result.json" if path.is_dir() else path
    record = load(read_json(file, "result.json"), file)
    if verify_files:
        for problem in tampered_files(record, file.parent):
            raise ResultReadError(problem)
    return record


def tampered_files(record: Record, run_dir: Path) -> list[str]:
    """The traces listed in result.json that are missing or no longer hash as recorded."""
    problems = []
    for name, digest in record.files.items():
        f = run_dir / name
        where = stored(f)
        if where is None:
            problems.append(f"{f}: missing, but result.json lists it")
            continue
        try:
            digest_now = sha256_stored(f)
        except (OSError, EOFError, zlib.error) as e:  # a packed copy that does not unpack
            problems.append(f"{where}: cannot be unpacked ({e})")
            continue
        if digest_now != digest:
            problems.append(f"{f}: sha256 differs from the one recorded in result.json (changed after the run)")
    return problems


def read_records(path: Path, skipped: Callable[[str], None] | None = None) -> list[Record]:
    """Every record under `path`: a result.json, a run directory, a --runs set, a study, a package, or any
    folder of them (reference folders also hold results copied out of their run directories, under other
    names). Files that are not records (emissions.csv, study.json, ...) are passed over. A damaged record (a
    result.json, or another JSON file that names a harness schema, that cannot be read) is an error, unless
    `skipped` is given: then a folder's damaged records are passed over and each is told to it in one line. A
    record given by name (the file or its run directory) is always read or refused."""
    path = Path(path)
    if path.is_file():
        return [read_record(path)]
    if not path.is_dir():
        raise ResultReadError(f"{path}: missing (not a result.json or a directory)")
    if (path / "result.json").is_file():
        return [read_record(path)]
    records = []
    for f in sorted(path.rglob("*.json")):
        try:
            record = record_in_file(f)
        except ResultReadError as e:
            if skipped is None:
                raise
            skipped(f"{e}: not read")
            continue
        if record is not None:
            records.append(record)
    if not records:
        raise ResultReadError(f"{path}: no harness results (result.json) found")
    return records


def record_in_file(f: Path) -> Record | None:
    """The record in a JSON file found in a folder, None for a file that is no record, or one line why a record
    cannot be read."""
    if f.name == "result.json":
        return read_record(f)
    try:
        text = f.read_text()
    except (OSError, UnicodeDecodeError):
        return None  # not a text file: no record
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        if _SCHEMA_MARK in text[:4096]:  # a record that no longer parses (cut short, edited by hand)
            read_json(f)  # raises the one-line reason
        return None  # another kind of file
    return load(data, f) if is_record(data) else None


def runs_only(records: list[Record], say: Callable[[str], None] | None = None,
              why: str = "not training runs") -> list[RunRecord]:
    """The training runs among `records`; every other kind (metered commands, inference records) is passed over,
    and `say` is told so in one line per kind."""
    runs = [r for r in records if isinstance(r, RunRecord)]
    others: dict[str, list[Record]] = {}
    for r in records:
        if not isinstance(r, RunRecord):
            others.setdefault(r.WHAT, []).append(r)
    if say is not None:
        for what, passed in others.items():
            names = ", ".join(sorted({r.workload for r in passed}))
            say(f"skipped {len(passed)} record(s), each {what} ({names}): {why}")
    return runs


def read_study(study_dir: Path) -> tuple[dict[str, Any], dict[str, list[RunRecord]]]:
    """study.json, and each entry's runs."""
    study = read_json(Path(study_dir) / "study.json", "study.json")
    if not isinstance(study, dict) or not str(study.get("schema", "")).startswith("harness.study/"):
        raise ResultReadError(f"{study_dir / 'study.json'}: not a harness study")
    results: dict[str, list[RunRecord]] = {}
    for label, dirs in study["runs"].items():
        results[label] = []
        for d in dirs:
            r = read_record(Path(study_dir) / d)
            if not isinstance(r, RunRecord):
                raise ResultReadError(f"{r.source}: {r.WHAT}, not a run of the study")
            results[label].append(r)
    return study, results


def _as_read(record: Record) -> Record:
    """A record still `running` is `interrupted` once its process is gone; one written on another host stays
    `running` (its process cannot be asked), and is not final either way."""
    if record.status != Status.RUNNING:
        return record
    process = record.process or {}
    if process.get("host") not in (None, platform.node()):
        return replace(record, status_note=f"on host {process['host']}: running, or interrupted with no final "
                                           "record")
    if _alive(process):
        return replace(record, status_note=f"still running (pid {process['pid']})")
    return replace(record, status=Status.INTERRUPTED, recorded_status=Status.RUNNING, status_note=INTERRUPTED_NOTE)


def _alive(process: dict[str, Any]) -> bool:
    pid = process.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
