"""The one reader of recorded results: result.json, run directories, --runs sets, studies and packages.

It owns the schema (`harness.result/1`) and says in one line what is wrong with a damaged record: missing,
truncated (not valid JSON), the wrong shape, a schema version this harness does not know (a newer one is
refused by name), or a trace whose hash differs from the one recorded. It also says what a record means:
a result still `running` whose process is gone is `interrupted` (no final record), never a finished run.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from harness.results.files import sha256_file
from workloads.errors import InputError

SCHEMA = "harness.result/1"
SCHEMA_FAMILY = "harness.result/"
REQUIRED = ("run_id", "workload", "status", "energy")  # what every reader relies on
INTERRUPTED = "interrupted"
INTERRUPTED_NOTE = "no final record: the run's process is gone (killed?); figures are up to its last evaluation"


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


def check_result(data: Any, path: Path) -> dict[str, Any]:
    """`data` (read from `path`) as a harness result, or one line saying why it is not one."""
    if not isinstance(data, dict):
        raise ResultReadError(f"{path}: not a harness result (a JSON {type(data).__name__}, not an object)")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_FAMILY):
        raise ResultReadError(f"{path}: not a harness result (schema {schema!r}; expected {SCHEMA})")
    if schema != SCHEMA:
        raise ResultReadError(f"{path}: schema {schema} is not one this harness reads ({SCHEMA}); "
                              "a newer harness wrote it: upgrade harness to read it")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ResultReadError(f"{path}: damaged harness result: missing {', '.join(missing)}")
    return _with_effective_status(data)


def read_result(path: Path, verify_files: bool = False) -> dict[str, Any]:
    """A result.json (or the run directory holding one), checked; with verify_files, every trace it lists must
    still hash as recorded."""
    path = Path(path)
    file = path / "result.json" if path.is_dir() else path
    result = check_result(read_json(file, "result.json"), file)
    if verify_files:
        for problem in tampered_files(result, file.parent):
            raise ResultReadError(problem)
    return result


def tampered_files(result: dict[str, Any], run_dir: Path) -> list[str]:
    """The traces listed in result.json that are missing or no longer hash as recorded."""
    problems = []
    for name, digest in (result.get("files") or {}).items():
        f = run_dir / name
        if not f.is_file():
            problems.append(f"{f}: missing, but result.json lists it")
        elif sha256_file(f) != digest:
            problems.append(f"{f}: sha256 differs from the one recorded in result.json (changed after the run)")
    return problems


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every result under `path`: a result.json, a run directory, a --runs set, a study, a package, or any
    folder of them (reference folders also hold results copied out of their run directories). Each carries
    "_source", the file it was read from."""
    path = Path(path)
    if path.is_file():
        return [read_result(path) | {"_source": str(path)}]
    if not path.is_dir():
        raise ResultReadError(f"{path}: missing (not a result.json or a directory)")
    if (path / "result.json").is_file():
        return [read_result(path) | {"_source": str(path / "result.json")}]
    results = []
    for f in sorted(path.rglob("*.json")):
        if f.name == "result.json":
            results.append(read_result(f) | {"_source": str(f)})
            continue
        try:
            data = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue  # another kind of file (a damaged result.json is an error, above)
        if isinstance(data, dict) and str(data.get("schema", "")).startswith(SCHEMA_FAMILY):
            results.append(check_result(data, f) | {"_source": str(f)})
    if not results:
        raise ResultReadError(f"{path}: no harness results (result.json) found")
    return results


def read_study(study_dir: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """study.json, and each entry's results (each with "_dir", its run directory)."""
    study = read_json(Path(study_dir) / "study.json", "study.json")
    if not isinstance(study, dict) or not str(study.get("schema", "")).startswith("harness.study/"):
        raise ResultReadError(f"{study_dir / 'study.json'}: not a harness study")
    results = {label: [read_result(Path(study_dir) / d) | {"_dir": str(Path(study_dir) / d)} for d in dirs]
               for label, dirs in study["runs"].items()}
    return study, results


def status_text(result: dict[str, Any]) -> str:
    """The status as people should read it."""
    note = result.get("status_note")
    return f"{result['status']} ({note})" if note else result["status"]


def _with_effective_status(result: dict[str, Any]) -> dict[str, Any]:
    """A record still `running` is `interrupted` once its process is gone; one written on another host stays
    `running` (its process cannot be asked), and is not final either way."""
    if result["status"] != "running":
        return result
    process = result.get("process") or {}
    if process.get("host") not in (None, platform.node()):
        return result | {"status_note": f"on host {process['host']}: running, or interrupted with no final record"}
    if _alive(process):
        return result | {"status_note": f"still running (pid {process['pid']})"}
    return result | {"status": INTERRUPTED, "recorded_status": "running", "status_note": INTERRUPTED_NOTE}


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
