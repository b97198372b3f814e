"""Attach a node power measurement made outside the run to its record (`harness import-power`): a power log recorded
by an external analyser (PTDaemon or alike), or a whole MLPerf Power session (power-dev's client and director,
harness/meters/power_session.py).

The power is integrated over the record's window (a run's run_start..run_stop, an inference record's
first_query..last_response) and the record is made anew through the schema with the node figure as its energy:
every figure derived from the energy (CO2e, tokens and FLOPs per joule, J per token) follows it, and a run's MLPerf
power log is rendered again from the imported readings. The component meters' figures stay in the record beside it,
with the disagreement between the two. What was imported is copied into the record's folder and hashed.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.errors import InputError, UsageError
from harness.meters.power_session import LOADGEN_LOGS, METHOD, Session, SessionError, read_session, session_checks
from harness.meters.ptdaemon import parse_power_log, window_energy
from harness.meters.window import node_vs_components
from harness.mlperf.runlog import render_power_log, run_log_names
from harness.results.inference import InferenceRecord
from harness.results.reader import read_record
from harness.results.schema import Record
from harness.results.writer import RecordFiles

LOG_COPY = "power_node_log.txt"
SESSION_COPY = "power_session"  # the session folder's copy in the record's folder
STAMP_S = 0.002  # LoadGen stamps its power window to the millisecond (cut): two readings of one window agree so far


def import_power(run_dir: Path, source: Path, utc_offset_h: float = 0.0) -> Record:
    """A power log (a file) or a power-dev session (a folder) attached to the record in run_dir."""
    if Path(source).is_dir():
        if utc_offset_h:
            raise UsageError("--utc-offset does not apply to a power-dev session: its director runs PTDaemon in UTC")
        return import_session(run_dir, Path(source))
    return import_power_log(run_dir, Path(source), utc_offset_h)


def _read(run_dir: Path) -> Record:
    run_dir = Path(run_dir)
    if not (run_dir / "result.json").is_file():
        raise UsageError(f"{run_dir}: no result.json (give a run directory written by harness run or harness infer)")
    record = read_record(run_dir, verify_files=True)
    if record.energy.node_j is not None:
        raise UsageError(f"{run_dir}: this run already has node-level energy ({record.energy.method}); "
                         "a second node figure is not imported")
    return record


def window(record: Record) -> tuple[float, float]:
    """The record's energy window in unix s: an inference record's first_query..last_response, else run_start..
    run_stop; a one-line error if it has none."""
    marks = record.timing.marks_unix_s
    labels = ("first_query", "last_response") if isinstance(record, InferenceRecord) else ("run_start", "run_stop")
    if not set(labels) <= marks.keys():
        raise UsageError(f"{record.directory or record.run_id}: the record has no {labels[0]}..{labels[1]} window to "
                         "align the power with")
    return marks[labels[0]], marks[labels[1]]


def power_window(record: Record) -> tuple[float, float]:
    """The window the workload gave power_client as LoadGen's power_begin..power_end: LoadGen's own for an inference
    record, the timed window for a run (harness/mlperf/loadgen_logs.py)."""
    if isinstance(record, InferenceRecord):
        lg = record.loadgen
        if lg is None or lg.power_begin_unix_s is None or lg.power_end_unix_s is None:
            raise UsageError(f"{record.directory or record.run_id}: the record has no LoadGen power window (LoadGen "
                             "did not finish)")
        return lg.power_begin_unix_s, lg.power_end_unix_s
    return window(record)


def import_power_log(run_dir: Path, log_path: Path, utc_offset_h: float = 0.0) -> Record:
    """Integrate the log over the record's window and make it the record's energy; returns the new record."""
    record = _read(run_dir)
    log = parse_power_log(log_path, utc_offset_h)
    node = window_energy(log, *window(record))

    def copy(files: RecordFiles) -> None:
        if not files.write(LOG_COPY, lambda p: shutil.copyfile(log_path, p)):
            raise OSError(f"{files.folder / LOG_COPY}: cannot copy the log there ({files.missing[LOG_COPY]})")

    flags = ()
    if node["gaps"]:
        flags = (f"imported log has {len(node['gaps'])} gap(s) over 2 s inside the run window; bridged linearly",)
    return _attach(Path(run_dir), record, node | {"source": str(Path(log_path).resolve()), "copied_to": LOG_COPY,
                                                  "utc_offset_h": utc_offset_h},
                   copy, flags, (), "imported node power log")


def matching_run(record: Record, s: Session) -> None:
    """The session's testing run must be the record's: the same LoadGen power window; else a one-line error that
    says which run the record is, if it is the session's ranging run."""
    begin, end = power_window(record)
    if abs(s.testing.power_begin - begin) <= STAMP_S and abs(s.testing.power_end - end) <= STAMP_S:
        return
    where = record.directory or record.run_id
    if abs(s.ranging.power_begin - begin) <= STAMP_S and abs(s.ranging.power_end - end) <= STAMP_S:
        raise SessionError(f"{where}: this record is session {s.name}'s ranging run (ranging/), which is never scored: "
                           "attach the session to its testing run's record (run_1/), the one that ran second")
    raise SessionError(f"{where}: the record's power window {begin:.3f}..{end:.3f} is not session {s.name}'s testing "
                       f"run's ({s.testing.power_begin:.3f}..{s.testing.power_end:.3f}, run_1/mlperf_log_detail.txt): "
                       "another run's session")


def import_session(run_dir: Path, session_path: Path) -> Record:
    """A power-dev session whose testing run is the record's: checked as MLPerf checks it (any problem: a one-line
    error), its testing run's wall power integrated over the record's window, the ranging run's kept apart."""
    record = _read(run_dir)
    s = read_session(session_path)
    matching_run(record, s)
    for name in LOADGEN_LOGS:  # the client copied them from the record's (--loadgen-log-dir): a package has one copy
        log, recorded = s.path / "run_1" / name, record.files.get(name)
        if recorded is not None and hashlib.sha256(log.read_bytes()).hexdigest() != recorded:
            raise SessionError(f"{log}: not the record's LoadGen log (the same power window, other bytes)")
    problems, warnings = session_checks(s)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise SessionError(problems[0] + more)
    node = window_energy(s.testing.log, *window(record), max_gap_s=2.0)
    testing, ranging = s.testing.figure(), s.ranging.figure()
    sources = sorted(p for p in s.path.rglob("*") if p.is_file())

    def copy(files: RecordFiles) -> None:
        for src in sources:
            name = f"{SESSION_COPY}/{src.relative_to(s.path).as_posix()}"
            if not files.write(name, lambda p, src=src: _copy(src, p)):
                raise OSError(f"{files.folder / name}: cannot copy the session there ({files.missing[name]})")

    details = {"method": METHOD, "source": str(s.path.resolve()), "copied_to": f"{SESSION_COPY}/run_1/spl.txt",
               "utc_offset_h": 0.0, "session": s.facts(), "testing": testing, "ranging": ranging,
               "ranging_note": "the ranging run sets the analyzer's ranges: its figure is kept apart, never scored",
               "testing_vs_ranging_pct": _pct(testing["mean_w"], ranging["mean_w"]),
               "checks": "MLPerf's power checks that the session's files show, all passed at import: phases within "
                         "800 ms, LoadGen's windows inside their phases, ~1 Hz samples without gaps, testing power "
                         "not more than 5 % below ranging, a supported analyzer, no uncertainty above 1 % during the "
                         "load, the files as hashed"}
    return _attach(Path(run_dir), record, node | details, copy, (), tuple(warnings), "MLPerf Power session (AC wall)")


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def _pct(a: float | None, b: float | None) -> float | None:
    return 100.0 * (a / b - 1.0) if a and b else None


def _attach(run_dir: Path, record: Record, node: dict[str, Any], copy, flags: tuple[str, ...],
            warnings: tuple[str, ...], what: str) -> Record:
    """The record with `node` as its energy, the component figure beside it, and what was imported copied in."""
    files = RecordFiles(run_dir)
    files.hashes, files.missing = dict(record.files), dict(record.files_missing)
    copy(files)
    energy = record.energy
    device_j = energy.device_j if energy.device_j is not None else energy.total_j
    checks = energy.cross_checks
    if device_j is not None:
        checks = (*checks, node_vs_components(what, node["joules"], device_j))
    imported = replace(energy, total_j=node["joules"], node_j=node["joules"], device_j=device_j,
                       method=node["method"], cross_checks=checks, flags=(*energy.flags, *flags),
                       warnings=(*energy.warnings, *warnings),
                       basis=f"node-level energy from the {what} (contains every component of the node)",
                       external_import=node)
    record = replace(record, energy=imported)
    for name, (node_name, host) in run_log_names(record).items():
        if name != "mllog.txt":  # the power log now holds the imported readings
            files.text(name, lambda node_name=node_name, host=host: render_power_log(record, run_dir, node_name,
                                                                                    host))
    record, ok = files.record(record)
    if not ok:
        raise OSError(f"{run_dir / 'result.json'}: cannot write the new record ({record.files_missing['result.json']})")
    return record


def attached_session_problems(record: Record, session_dir: Path) -> tuple[list[str], list[str]]:
    """`harness check` on a record with an attached session (in its folder, or as packaged): (problems, notes). The
    session is read and checked again where it lies, its testing run must be the record's, and its power over the
    record's window must give the record's energy (within 1 %)."""
    try:
        s = read_session(session_dir)
        matching_run(record, s)
        problems, warnings = session_checks(s)
        node = window_energy(s.testing.log, *window(record), max_gap_s=2.0)
    except InputError as e:  # the session, or its samples over the record's window, no longer readable
        return [str(e)], []
    recorded = record.energy.total_j
    if recorded is None or abs(node["joules"] - recorded) > 0.01 * max(abs(recorded), 1e-9):
        problems.append(f"{s.path / 'run_1' / 'spl.txt'}: {node['joules']:.3f} J over the record's window, not the "
                        f"record's {recorded} J")
    t, r = s.testing.mlperf_mean_w(), s.ranging.mlperf_mean_w()
    model, version = s.analyzer()
    notes = [f"{s.path}: MLPerf Power session {s.name}: testing {t:.2f} W, ranging {r:.2f} W ({_pct(t, r):+.1f} %), "
             f"analyzer {model} on PTDaemon {version}; not checked here: power-dev's source hashes (its "
             "compliance/check.py)" if t and r else f"{s.path}: MLPerf Power session {s.name}"]
    return problems, notes + warnings
