"""`harness check DIR`: every check we can make on a submission package, one line per problem.

MLCommons' tools first (the compliance checker with our rules on every run log, the system-description
checker), then the energy checks they do not make: power sampled at >= 1 Hz with no gap over 2 s, the power
window covering run_start..run_stop, energy recomputed from the power log matching result.json, and every
file matching the manifest's hash.
"""

from __future__ import annotations

from pathlib import Path

from harness.infer.loadgen import LOG_FILES
from harness.mlperf.compliance import check_log, read_log
from harness.mlperf.package import MANIFEST, has_session, session_file
from harness.mlperf.rcp import rcp_test
from harness.mlperf.system_desc import check_system_desc
from harness.results.files import sha256_file
from harness.results.identity import group
from harness.results.inference import InferenceRecord
from harness.results.reader import load, read_json, read_record, tampered_files
from harness.results.schema import CommandRecord, Record, RunRecord
from harness.runner.power_import import SESSION_COPY, attached_session_problems

MAX_GAP_S = 2.0
MIN_HZ = 1.0
ENERGY_TOLERANCE = 0.01  # rounding of time_ms to 1 us and of watts: far below 1 %
EDGE_TOLERANCE_MS = 1.0


def check_package(root: Path, notes: list[str] | None = None) -> list[str]:
    """Problems found under root (a package's <org> directory, or a folder holding one or more); what could not
    be tested, and why, goes to `notes` (a set too small for the reference-convergence test)."""
    orgs = [p.parent for p in sorted(root.rglob(MANIFEST))]
    if not orgs:
        return [f"{root}: no {MANIFEST} or result.json found (not a package, a run or a --runs set; a run folder "
                "whose result.json is missing has no record to check)"]
    problems: list[str] = []
    for org in orgs:
        problems += check_manifest(org)
        for desc in sorted((org / "systems").glob("*.json")):
            problems += [f"{desc}: {p}" for p in check_system_desc(desc)]
        logs = sorted((org / "results").glob("*/*/result_*.txt"))
        served = sorted((org / "inference" / "results").glob("*/*/*/harness/result_*.json"))
        if not logs and not served:
            problems.append(f"{org}: no results/<system>/<workload>/result_<i>.txt and no inference results")
        for path in served:
            problems += check_packaged_inference(path, notes)
        for log in logs:
            problems += check_log(log)
            problems += check_energy(log)
        for workload_dir in sorted({log.parent for log in logs}):
            problems += check_convergence(workload_dir, notes)
    return problems


def check_convergence(workload_dir: Path, notes: list[str] | None = None) -> list[str]:
    """A workload's set of runs must not converge implausibly fast against the shipped reference convergence
    points (MLPerf's RCP test, on a set of the benchmark's required size; a smaller one is noted, not failed)."""
    results = [r for p in sorted((workload_dir / "harness").glob("result_*.json"))
               if isinstance(r := load(read_json(p), p), RunRecord)]
    problems = []
    for runs in group(results).values():  # a folder may hold one workload on two corpora or frameworks
        rcp = rcp_test(runs)
        if notes is not None and not rcp.tested:
            notes.append(f"{workload_dir}: convergence (RCP) not tested: {rcp.verdict}")
        if rcp.implausibly_fast:
            problems.append(f"{workload_dir}: {rcp.verdict}")
    return problems


def check_manifest(org: Path) -> list[str]:
    manifest = read_json(org / MANIFEST, MANIFEST).get("sha256", {})
    problems = []
    for rel, digest in manifest.items():
        path = org / rel
        if not path.is_file():
            problems.append(f"{path}: listed in {MANIFEST} but missing")
        elif sha256_file(path) != digest:
            problems.append(f"{path}: sha256 differs from {MANIFEST} (file changed after packaging)")
    for path in sorted(org.rglob("*")):
        if path.is_file() and path.name != MANIFEST and str(path.relative_to(org)) not in manifest:
            problems.append(f"{path}: not in {MANIFEST} (added after packaging)")
    return problems


def _times(log: Path, *keys: str) -> dict[str, float]:
    return {ll.key: ll.timestamp for ll in read_log(log) if ll.key in keys}


def check_energy(run_log: Path) -> list[str]:
    """The power logs of one run (node_<k>.txt, one per metered host) against its run log and result.json."""
    i = run_log.stem.split("_")[-1]
    power_logs = sorted((run_log.parent / "power" / f"result_{i}").glob("node_*.txt"))
    result_json = run_log.parent / "harness" / f"result_{i}.json"
    if not result_json.is_file():
        return [f"{result_json}: missing"]
    if not power_logs:
        return [f"{run_log.parent / 'power' / f'result_{i}'}/node_0.txt: missing"]
    result = load(read_json(result_json), result_json)
    problems = check_record(result, result_json)
    traces = {"power.csv": run_log.parent / "harness" / f"power_{i}.csv"}
    traces |= {f"host_{p.stem.split('_')[-1]}/power.csv": run_log.parent / "harness" /
               f"power_{i}_host_{p.stem.split('_')[-1]}.csv" for p in power_logs if result.energy.hosts}
    for name, trace in traces.items():
        recorded = result.files.get(name)
        if recorded is not None and (not trace.is_file() or sha256_file(trace) != recorded):
            problems.append(f"{trace}: sha256 differs from the one recorded in {result_json.name}")
    return problems + _energy_matches(result, result_json, power_logs, _times(run_log, "run_start", "run_stop"))


def _energy_matches(record: Record, path: Path, power_logs: list[Path], window: dict[str, float]) -> list[str]:
    """The energy in the power log(s) against the record's, within ENERGY_TOLERANCE."""
    joules, problems = 0.0, []
    for power_log in power_logs:
        found, more = _power_log_energy(power_log, window)
        problems += more
        joules += found or 0.0
    recorded = record.energy.total_j
    if recorded is None:
        problems.append(f"{path}: no energy recorded")
    elif abs(joules - recorded) > ENERGY_TOLERANCE * max(abs(recorded), 1e-9):
        logs = ", ".join(p.name for p in power_logs)
        problems.append(f"{power_logs[0].parent}: energy from the power log(s) ({logs}) {joules:.3f} J differs from "
                        f"{path.name}'s {recorded:.3f} J by more than {ENERGY_TOLERANCE:.0%}")
    return problems


def check_record(record: Record, path: Path) -> list[str]:
    """A record must be final, its energy complete and every file of it written, to count."""
    return [f"{path}: {why}" for why in record.problems()]


def check_run_or_set(path: Path, notes: list[str] | None = None) -> list[str]:
    """`harness check` on a run directory or a --runs set (packaged in a temporary folder, then checked), or
    on a metered command's folder (checked where it is: it is no MLPerf run, so there is nothing to package)."""
    import tempfile

    from harness.mlperf.package import build_package

    session: list[str] = []
    if (path / "result.json").is_file():
        record = read_record(path)
        if isinstance(record, CommandRecord):
            return check_command(record, path)
        if isinstance(record, InferenceRecord):
            return check_inference(record, path, notes)
        if (record.energy.external_import or {}).get("session"):  # a run's session, checked in its folder (its
            session = _session(record, path / SESSION_COPY, notes)  # copy's hashes: as the run's other files)
    with tempfile.TemporaryDirectory(prefix="harness-check-") as tmp:
        root = build_package([path], Path(tmp), "check", "this-system")
        found: list[str] = []
        problems = check_package(root, found)
        if notes is not None:  # the notes name the run or set, not the temporary package's insides
            notes += [f"{path}: {n.split(': ', 1)[-1]}" for n in found]
        return session + [p.replace(str(root), f"{path} (as packaged)") for p in problems]


def check_command(record: CommandRecord, folder: Path) -> list[str]:
    """A metered command's record: final and complete, every file as recorded, its power log's energy its own."""
    result_json = folder / "result.json"
    problems = check_record(record, result_json) + tampered_files(record, folder)
    power_log = folder / "power_mllog.txt"
    if power_log.is_file():
        marks = record.timing.marks_unix_s
        window = {k: marks[k] * 1000.0 for k in ("run_start", "run_stop") if k in marks}
        problems += _energy_matches(record, result_json, [power_log], window)
    return problems


# LoadGen stamps power_begin / power_end to the millisecond (cut, not rounded): the SUT's marks may sit that far out.
LOADGEN_STAMP_S = 0.002


def check_inference(record: InferenceRecord, folder: Path, notes: list[str] | None = None,
                    result_json: Path | None = None) -> list[str]:
    """An inference record: final and complete, every file as recorded (LoadGen's logs too: in `folder`, a run
    folder; None for a packaged record, whose files are checked by their packaged names), LoadGen's verdict VALID,
    the quality holding, and the energy window inside LoadGen's power window; a duration below MLPerf's 600 s is
    a note (a measurement, not a submission)."""
    result_json = result_json or folder / "result.json"
    problems = check_record(record, result_json) + (tampered_files(record, folder) if folder else [])
    lg = record.loadgen
    if lg is None:
        return problems + [f"{result_json}: LoadGen did not finish (status {record.status_text})"]
    if not lg.valid:
        problems.append(f"{result_json}: LoadGen says {lg.validity}"
                        + (f" ({', '.join(lg.failed)} not met)" if lg.failed else ""))
    if record.accuracy is None:
        problems.append(f"{result_json}: no accuracy pass (--no-accuracy): the served model's quality is unknown")
    elif not record.accuracy.meets_target:
        problems.append(f"{result_json}: the served model's quality misses the training target "
                        f"(loss {record.accuracy.teacher_forced_loss:.4f} nats/token)")
    marks = record.timing.marks_unix_s
    start, stop = marks.get("first_query"), marks.get("last_response")
    begin, end = lg.power_begin_unix_s, lg.power_end_unix_s
    if None in (start, stop, begin, end):
        problems.append(f"{result_json}: the energy window or LoadGen's power window is missing")
    elif not (begin - LOADGEN_STAMP_S <= start < stop <= end + LOADGEN_STAMP_S):
        problems.append(f"{result_json}: the energy window {start:.3f}..{stop:.3f} is not inside LoadGen's power "
                        f"window {begin:.3f}..{end:.3f}")
    if folder is not None and has_session(record):  # in a run folder: its copy; a package checks its own layout
        problems += _session(record, folder / SESSION_COPY, notes)
    if lg.below_mlperf_duration and notes is not None:
        seconds = (lg.effective_min_duration_ms or 0) / 1e3
        notes.append(f"{folder or result_json}: minimum duration {seconds:g} s, below MLPerf Inference's 600 s: a "
                     "measurement, not a submission")
    return problems


def check_packaged_inference(path: Path, notes: list[str] | None = None) -> list[str]:
    """A packaged inference record: what check_inference holds it to, with LoadGen's logs as packaged (run_<i>
    beside harness/result_<i>.json) hashing as the record says."""
    record = load(read_json(path), path)
    if not isinstance(record, InferenceRecord):
        return [f"{path}: {record.WHAT}, not an inference record"]
    i = path.stem.removeprefix("result_")
    scenario = path.parent.parent
    problems = check_inference(record, None, notes, result_json=path)
    for sub, prefix in (("performance", ""), ("accuracy", "accuracy/")):
        for name in LOG_FILES:
            recorded = record.files.get(prefix + name)
            packaged = scenario / sub / f"run_{i}" / name
            if recorded is not None:
                problems += _as_recorded(packaged, recorded)
    if has_session(record):  # its session's files where MLPerf Inference puts them, checked again there
        performance = scenario / "performance"
        if i != "1":
            return problems + [f"{path}: a record with an MLPerf Power session packaged as run_{i}, not run_1"]
        for name, recorded in record.files.items():
            packaged = session_file(name, performance)
            if packaged is not None:
                problems += _as_recorded(packaged, recorded)
        problems += _session(record, performance, notes)
    return problems


def _as_recorded(packaged: Path, recorded_sha256: str) -> list[str]:
    """A packaged copy of a file the record hashed: present, and the same bytes."""
    if not packaged.is_file():
        return [f"{packaged}: missing (the record lists it)"]
    if sha256_file(packaged) != recorded_sha256:
        return [f"{packaged}: sha256 differs from the record's"]
    return []


def _session(record: Record, session_dir: Path, notes: list[str] | None) -> list[str]:
    """An attached MLPerf Power session checked again where it lies (harness/runner/power_import.py)."""
    problems, said = attached_session_problems(record, session_dir)
    if notes is not None:
        notes += said
    return problems


def _power_log_energy(power_log: Path, window: dict[str, float]) -> tuple[float | None, list[str]]:
    """Joules in one power log, and its problems: coverage of the run window, sampling rate, gaps."""
    lines = read_log(power_log)
    edges = {ll.key: ll.timestamp for ll in lines if ll.key in ("power_measurement_start", "power_measurement_stop")}
    readings = sorted((ll.timestamp, ll.value["value"]) for ll in lines if ll.key == "power_reading")
    if len(window) < 2 or len(edges) < 2 or len(readings) < 2:
        return None, [f"{power_log}: needs run_start/run_stop in the run log, power_measurement_start/stop "
                      "and at least 2 power_reading lines"]
    problems = []
    start, stop = edges["power_measurement_start"], edges["power_measurement_stop"]
    if start > window["run_start"] + EDGE_TOLERANCE_MS or stop < window["run_stop"] - EDGE_TOLERANCE_MS:
        problems.append(f"{power_log}: power window {start:.0f}..{stop:.0f} ms does not cover the run window "
                        f"{window['run_start']:.0f}..{window['run_stop']:.0f} ms")
    times = [start] + [t for t, _ in readings]
    if readings[-1][0] < stop - EDGE_TOLERANCE_MS:
        times.append(stop)
    gaps = [(a, b) for a, b in zip(times, times[1:], strict=False) if (b - a) / 1000.0 > MAX_GAP_S]
    if gaps:
        a, b = max(gaps, key=lambda g: g[1] - g[0])
        problems.append(f"{power_log}: {len(gaps)} gap(s) over {MAX_GAP_S:g} s between power readings "
                        f"(longest {(b - a) / 1000:.1f} s, from {a:.0f} ms)")
    hz = (len(readings) - 1) / ((readings[-1][0] - readings[0][0]) / 1000.0) if readings[-1][0] > readings[0][0] else 0
    if hz < MIN_HZ:
        problems.append(f"{power_log}: power sampled at {hz:.2f} Hz, below {MIN_HZ:g} Hz")
    # Each reading is the average over the interval that ends at it (how runlog writes them), so the rectangle
    # sum from power_measurement_start is the energy; MLCommons' summarizer integrates the same way.
    joules, previous = 0.0, start
    for t, watts in readings:
        joules += watts * (t - previous) / 1000.0
        previous = t
    return joules, problems
