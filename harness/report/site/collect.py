"""What a results site is built from: every run under the given folders (packages, --runs sets, study campaigns,
run folders; read through the one reader), the system each belongs to, what `harness check` says of each
folder, the claims and study reports found beside them.

Folders come from other organisations: nothing outside a given folder is read or copied (`inside`), and no
symbolic link is followed out of it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.mlperf.package import MANIFEST
from harness.results.files import stored
from harness.results.inference import InferenceRecord
from harness.results.reader import ResultReadError, record_in_file
from harness.results.schema import RunRecord

UNPACKAGED = "unpackaged"


@dataclass
class Source:
    """A unit `harness check` can judge, found under a folder given to `harness site`: a package (its <org>
    folder), a --runs set, a run's folder, or a record shipped without its folder."""

    root: Path  # the unit's folder (or the record file)
    kind: str  # "package", "set", "run", "record"
    given: Path  # the folder it was found under: nothing outside it is read
    check: list[str] | None = None  # what `harness check` found (None: not checkable, a record alone)


@dataclass(frozen=True)
class System:
    org: str
    name: str
    description: dict[str, Any] | None = None  # the package's systems/<name>.json, where there is one

    @property
    def key(self) -> str:
        return f"{self.org}/{self.name}"

    @property
    def slug(self) -> str:
        return slug(self.key)

    @property
    def title(self) -> str:
        """How pages name it: 'org / system' for a packaged run, the machine for any other."""
        return f"{self.name} (not packaged)" if self.org == UNPACKAGED else f"{self.org} / {self.name}"


@dataclass(frozen=True)
class SiteRun:
    record: RunRecord
    system: System
    source: Source
    files: dict[str, Path]  # name in the site -> the file it is copied from (checked to lie inside the source)


@dataclass
class Collected:
    sources: list[Source]
    runs: list[SiteRun]
    claims: list[tuple[Path, dict[str, Any]]]
    reports: list[Path]  # folders holding a study's report.html
    skipped: list[str]
    inference: list[tuple[InferenceRecord, Source]] = field(default_factory=list)  # harness infer records


def slug(text: str) -> str:
    """A file or anchor name for any text (a system, a run id): safe characters, and a hash so that two texts
    never share one, whatever characters they hold."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:40] or "x"
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def inside(root: Path, path: Path) -> bool:
    """Whether `path` is a regular file within `root`, reached without a symbolic link leaving it."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved.is_file() and resolved.is_relative_to(root.resolve())


def collect(paths: list[Path], check: bool = True) -> Collected:
    runs: dict[str, SiteRun] = {}
    sources: list[Source] = []
    skipped: list[str] = []
    claims, reports = [], []
    inference: dict[str, tuple[InferenceRecord, Source]] = {}
    for given in map(Path, paths):
        files = [f for f in sorted(given.rglob("*.json")) if _readable(given, f, skipped)]
        units = _units(given, files)
        sources += units
        for f in files:
            if f.name == "claim.json":
                data = _json(f)
                if isinstance(data, dict) and str(data.get("schema", "")).startswith("harness.claim/"):
                    claims.append((f, data))
                continue
            record = _record(f, skipped)
            if record is None:
                continue
            unit = next((u for u in units if u.kind != "record" and f.is_relative_to(u.root)), None)
            if unit is None:
                unit = Source(f, "record", given)
                sources.append(unit)
            if isinstance(record, InferenceRecord):
                inference.setdefault(record.run_id, (record, unit))  # a record copied twice: one row
                continue
            run = SiteRun(record, _system(unit, f, record), unit, _files(given, f, record))
            kept = runs.get(record.run_id)
            if kept is None or _rank(run) > _rank(kept):  # a run copied twice (a set and its package): one row
                runs[record.run_id] = run
        reports += sorted(r.parent for r in given.rglob("report.html") if inside(given, r))
    used = {id(r.source) for r in runs.values()} | {id(u) for _, u in inference.values()}
    sources = [s for s in sources if id(s) in used]
    if check:
        for source, found in zip(sources, _check_all(sources), strict=True):
            source.check = found
    return Collected(sources, list(runs.values()), claims, reports, skipped, list(inference.values()))


def _rank(run: SiteRun) -> tuple[bool, int]:
    """Which copy of a run the site shows: the packaged one (it names its submitter and system), then the one
    with the most of its files."""
    return run.source.kind == "package", len(run.files)


def _readable(given: Path, f: Path, skipped: list[str]) -> bool:
    if inside(given, f):
        return True
    skipped.append(f"{f}: leaves {given} (a symbolic link?): not read")
    return False


def _units(given: Path, files: list[Path]) -> list[Source]:
    """Packages (<org> folders with a manifest), --runs sets, and the run folders outside both, most specific
    last so that a run inside a set belongs to the set."""
    packages = sorted({f.parent for f in files if f.name == MANIFEST})
    sets = sorted({f.parent for f in files if f.name == "score.json"} - set(packages))
    held = [*packages, *sets]
    runs = sorted({f.parent for f in files if f.name == "result.json"
                   and not any(f.is_relative_to(h) for h in held)})
    return ([Source(p, "package", given) for p in packages] + [Source(s, "set", given) for s in sets]
            + [Source(r, "run", given) for r in runs])


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _record(f: Path, skipped: list[str]) -> RunRecord | InferenceRecord | None:
    try:
        record = record_in_file(f)
    except ResultReadError as e:
        skipped.append(f"{e}: not in the site")
        return None
    if record is not None and not isinstance(record, RunRecord | InferenceRecord):
        skipped.append(f"{f}: {record.WHAT}, neither a training run nor an inference record: not in the site")
        return None
    return record


def _system(source: Source, f: Path, record: RunRecord) -> System:
    """A packaged run's org and system (<org>/results/<system>/<workload>/harness/result_<i>.json); any other's
    machine, as `harness compare` matches machines."""
    parts = f.relative_to(source.root).parts
    if source.kind == "package" and len(parts) > 2 and parts[0] == "results":
        name = parts[1]
        desc_file = source.root / "systems" / f"{name}.json"
        desc = _json(desc_file) if inside(source.given, desc_file) else None
        return System(source.root.name, name, desc if isinstance(desc, dict) else None)
    return System(UNPACKAGED, record.environment.hardware.machine_class)


def _files(root: Path, f: Path, record: RunRecord) -> dict[str, Path]:
    """The run's files to copy into the site: the record, its :::MLLOG logs and its power trace, each only when
    it lies inside the folder it came from."""
    wanted: dict[str, Path] = {"result.json": f}
    if f.name == "result.json":  # a run's own folder
        for name in record.files:
            wanted[name] = stored(f.parent / name) or f.parent / name  # plain or packed (results/files.py)
    elif f.parent.name == "harness" and f.name.startswith("result_"):  # a package: <workload>/harness/result_<i>.json
        i = f.stem.removeprefix("result_")
        base = f.parent.parent
        wanted["mllog.txt"] = base / f"result_{i}.txt"
        wanted["power.csv"] = f.parent / f"power_{i}.csv"
        for log in sorted((base / "power" / f"result_{i}").glob("node_*.txt")):
            wanted[f"power_mllog_{log.stem}.txt"] = log
    return {name: path for name, path in wanted.items() if _safe_name(name) and inside(root, path)}


def _safe_name(name: str) -> bool:
    """A file name a record may give: relative, no way out of its folder."""
    p = Path(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts


def _check_all(sources: list[Source]) -> list[list[str] | None]:
    """`harness check` on each source, in a process a core: checking renders and re-reads every run's logs,
    which is most of the time a site takes (~30 ms a run), and the sources are independent."""
    workers = min(len(sources), os.cpu_count() or 1)
    if workers < 2:
        return [_check(s) for s in sources]
    # fork is quickest (~1.5 s less over 200 runs than fresh interpreters), but safe only in a process with one
    # thread: one that has started a framework (its threads are native, unseen by `threading`) spawns instead.
    fork = (threading.active_count() == 1 and not {"jax", "tensorflow"} & set(sys.modules)
            and "fork" in multiprocessing.get_all_start_methods())
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork" if fork else "spawn")) as pool:
        return list(pool.map(_check, sources, chunksize=max(1, len(sources) // (4 * workers))))


def _check(source: Source) -> list[str] | None:
    from harness.mlperf.check import check_package, check_run_or_set

    if source.kind == "record":
        return None  # a record shipped without its traces and logs: nothing for check to recompute
    try:
        return check_package(source.root) if source.kind == "package" else check_run_or_set(source.root)
    except ResultReadError as e:
        return [str(e)]
