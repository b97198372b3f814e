"""`harness package`: lay finished runs out as an MLPerf training submission, plus our own evidence.

    <org>/systems/<system>.json                                  system description, auto-filled
    <org>/results/<system>/<workload>/result_<i>.txt             :::MLLOG run log
    <org>/results/<system>/<workload>/power/result_<i>/node_<k>.txt :::MLLOG power log of each metered host
    <org>/results/<system>/<workload>/harness/result_<i>.json    our result.json, untouched
    <org>/results/<system>/<workload>/harness/power_<i>.csv      the power trace it was computed from
    <org>/inference/results/<system>/<workload>/<Scenario>/performance/run_<i>/  LoadGen's logs of a harness infer
    <org>/inference/results/<system>/<workload>/<Scenario>/accuracy/run_<i>/     its AccuracyOnly pass
    <org>/inference/results/<system>/<workload>/<Scenario>/performance/power/, ranging/, run_1/spl.txt
                                            an attached MLPerf Power session (harness import-power), as MLPerf lays it
    <org>/inference/results/<system>/<workload>/<Scenario>/harness/result_<i>.json, power_<i>.csv
    <org>/harness_manifest.json                                  sha256 of every file above

Inference records take MLPerf Inference's layout (results/<system>/<benchmark>/<scenario>/performance/run_1/)
under inference/, apart from the training submission: MLPerf submits the two separately.

The logs are re-rendered from each run's recorded timestamps under the submitter's org and system names.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import UsageError
from harness.infer.loadgen import LOADGEN_NAME, LOG_FILES
from harness.mlperf.runlog import metered_hosts, render_power_log, render_run_log
from harness.mlperf.system_desc import STATUS_ALIASES, STATUS_VALUES, describe_system
from harness.results.files import atomic_write_text, read_stored, sha256_file, stored, write_json
from harness.results.inference import InferenceRecord
from harness.results.reader import read_record, runs_only
from harness.results.schema import RunRecord
from harness.runner.power_import import SESSION_COPY

MANIFEST = "harness_manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def find_runs(paths: list[Path], say: Callable[[str], None] | None = None) -> list[Path]:
    """Run directories (holding result.json) given directly or anywhere below the given directories. Other
    files among the paths (a shell glob's emissions.csv) are passed over, and `say` is told so."""
    runs: list[Path] = []
    skipped: list[str] = []
    for p in paths:
        if (p / "result.json").is_file():
            runs.append(p)
        elif p.is_dir():
            runs.extend(sorted(r.parent for r in p.rglob("result.json")))
        elif p.exists():
            skipped.append(p.name)
        else:
            raise UsageError(f"{p}: no such file or directory (give run directories or folders holding them)")
    if skipped and say is not None:
        say(f"skipped {len(skipped)} file(s) that are not run directories: {', '.join(sorted(set(skipped)))}")
    if not runs:
        raise UsageError(f"no run directories (with result.json) under {', '.join(map(str, paths))}")
    return list(dict.fromkeys(runs))


def build_package(paths: list[Path], out: Path, org: str, system: str, status: str = "available",
                  say: Callable[[str], None] | None = None) -> Path:
    """Write the package under out/<org>; returns that directory. Metered commands found among the runs are
    no MLPerf runs: they are passed over and `say` is told so."""
    for label, name in (("--org", org), ("--system", system)):
        if not _NAME.match(name):
            raise UsageError(f"{label} must be letters, digits, '.', '_' or '-', got {name!r}")
    if status.strip().lower() not in STATUS_ALIASES and status not in STATUS_VALUES:
        raise UsageError(f"--status must be one of {', '.join(STATUS_ALIASES)}, got {status!r}")
    records = {d: read_record(d, verify_files=True) for d in find_runs(paths, say)}
    served = [(d, r) for d, r in records.items() if isinstance(r, InferenceRecord)]
    others = [r for r in records.values() if not isinstance(r, InferenceRecord)]
    kept = {r.source: r for r in runs_only(others, say, why="not MLPerf training runs")}
    runs = [(d, r) for d, r in records.items() if r.source in kept]
    if not runs and not served:
        raise UsageError(f"no training runs or inference records to package under {', '.join(map(str, paths))}")
    for run_dir, r in runs + served:
        if say is not None and r.problems():
            say(f"{run_dir.name} does not count (harness check fails it): {'; '.join(r.problems())}")
    root = out / org
    if root.exists():
        raise UsageError(f"{root} already exists; choose another --output-dir or remove it")
    by_workload: dict[str, list[tuple[Path, RunRecord]]] = {}
    for run_dir, result in runs:
        by_workload.setdefault(result.workload, []).append((run_dir, result))
    divisions = set()
    for workload, members in by_workload.items():
        base = root / "results" / system / workload
        for i, (run_dir, result) in enumerate(sorted(members, key=lambda m: m[1].seed)):
            atomic_write_text(base / f"result_{i}.txt", render_run_log(result, org=org, platform=system))
            for host in metered_hosts(result):  # one power log per metered host, as MLPerf's node_<k>
                k = host or 0
                atomic_write_text(base / "power" / f"result_{i}" / f"node_{k}.txt",
                                  render_power_log(result, run_dir, f"node_{k}", host))
            (base / "harness").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / "result.json", base / "harness" / f"result_{i}.json")
            if (run_dir / "power.csv").is_file():  # a run killed outright has its record but no traces
                shutil.copyfile(run_dir / "power.csv", base / "harness" / f"power_{i}.csv")
            for host in (h for h in metered_hosts(result) if h is not None):
                shutil.copyfile(run_dir / f"host_{host}" / "power.csv", base / "harness" / f"power_{i}_host_{host}.csv")
            divisions.add(_division_of(base / f"result_{i}.txt"))
    _package_inference(served, root / "inference" / "results" / system)
    first = (runs or served)[0][1]
    division = "closed" if divisions == {"closed"} else "open"
    nodes = len({h["host_id"] for h in first.energy.hosts}) or 1
    framework = first.training.framework if isinstance(first, RunRecord) else first.serving.decoder
    write_json(root / "systems" / f"{system}.json",
               describe_system(org, system, division, first.environment.hardware, first.environment.software,
                               status=status, nodes=nodes, framework=framework))
    write_manifest(root)
    return root


def _package_inference(served: list[tuple[Path, InferenceRecord]], base: Path) -> None:
    """Each inference record's LoadGen logs in MLPerf Inference's places, our record and power trace beside them;
    several records of one benchmark and scenario (a batch sweep) are run_1, run_2, ... in the order they ran. A
    record with an MLPerf Power session is run_1, whatever its time (MLPerf reads power from run_1, with power/ and
    ranging/ beside it); one scenario holds one such record."""
    groups: dict[tuple[str, str], list[tuple[Path, InferenceRecord]]] = {}
    for d, r in served:
        groups.setdefault((r.workload, LOADGEN_NAME[r.serving.scenario]), []).append((d, r))
    for (workload, scenario), members in groups.items():
        where = base / workload / scenario
        powered = [d.name for d, r in members if has_session(r)]
        if len(powered) > 1:
            raise UsageError(f"{workload} {scenario}: {len(powered)} records with an MLPerf Power session "
                             f"({', '.join(powered)}); MLPerf Inference has one power run a scenario: package one")
        ordered = sorted(members, key=lambda m: (not has_session(m[1]), m[1].created_unix_s))
        for i, (d, r) in enumerate(ordered, 1):
            if has_session(r):
                _package_session(d, where / "performance")
            copies = ((d, where / "performance" / f"run_{i}"), (d / "accuracy", where / "accuracy" / f"run_{i}"))
            for src, dest in copies:
                for name in LOG_FILES:
                    if stored(src / name) is not None:  # plain, or packed in a reference folder: laid out plain
                        dest.mkdir(parents=True, exist_ok=True)
                        (dest / name).write_bytes(read_stored(src / name))
            (where / "harness").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(d / "result.json", where / "harness" / f"result_{i}.json")
            if (d / "power.csv").is_file():
                shutil.copyfile(d / "power.csv", where / "harness" / f"power_{i}.csv")


def has_session(r: InferenceRecord) -> bool:
    """Whether an MLPerf Power session is attached to the record (harness import-power with a session folder)."""
    return bool((r.energy.external_import or {}).get("session"))


def session_file(name: str, performance: Path, run: str = "run_1") -> Path | None:
    """Where a record's copy of its session file (power_session/...) lies in a package: power/ and ranging/ under
    performance/, the testing run's spl.txt and ptd_out.txt in its run folder; None for the testing run's LoadGen
    logs, which are the record's own (laid out from the record)."""
    parts = name.split("/")
    if parts[0] != SESSION_COPY or len(parts) < 3:
        return None
    if parts[1] == "run_1":
        return None if parts[-1] in LOG_FILES else performance.joinpath(run, *parts[2:])
    return performance.joinpath(*parts[1:])


def _package_session(d: Path, performance: Path) -> None:
    for src in sorted(p for p in (d / SESSION_COPY).rglob("*") if p.is_file()):
        dest = session_file(src.relative_to(d).as_posix(), performance)
        if dest is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


def _division_of(log: Path) -> str:
    for line in log.read_text().splitlines():
        if '"key": "submission_division"' in line:
            return json.loads(line.split(":::MLLOG", 1)[1])["value"]
    return "open"


def write_manifest(root: Path) -> None:
    files = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    write_json(root / MANIFEST, {"created_unix_s": time.time(), "sha256": files})
