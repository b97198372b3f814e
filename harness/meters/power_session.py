"""A power-dev session folder: what MLCommons' MLPerf Power client (`power_client`, from mlcommons/power-dev) leaves
after running a workload twice under its director's analyzer, a ranging run then a testing run:

    <session>/power/    client.json, client.log, server.json, server.log, ptd_logs.txt
    <session>/ranging/  spl.txt, mlperf_log_detail.txt, mlperf_log_summary.txt
    <session>/run_1/    the same three for the testing run, and ptd_out.txt

It is read here (`read_session`), held to what MLPerf's power checker (power-dev's compliance/check.py) holds that
these files show (`session_checks`), and its runs' wall power averaged and integrated over a window. The director
starts PTDaemon with TZ=UTC, so spl.txt and ptd_logs.txt are stamped in UTC, as LoadGen's power_begin/power_end are.
Not checked here: the client's and director's source hashes against power-dev's official list, and PTDaemon's
command replies; power-dev's own checker makes those.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.meters.integrate import trapezoid
from harness.meters.ptdaemon import PowerLog, PowerLogError, parse_power_log, window_points
from workloads.errors import InputError

METHOD = "measured:ptdaemon-ac-wall"  # the system's AC power at the wall, from the director's analyzer
FOLDERS = {"ranging": "ranging", "testing": "run_1"}  # the client's mode -> its folder
LOADGEN_LOGS = ("mlperf_log_detail.txt", "mlperf_log_summary.txt")  # what the client copies from its -L folder
REQUIRED = ("power/client.json", "power/client.log", "power/ptd_logs.txt", "power/server.json", "power/server.log",
            *(f"{folder}/{name}" for folder in FOLDERS.values() for name in (*LOADGEN_LOGS, "spl.txt")))
# MLPerf's checker's limits (power-dev compliance/check.py at c4b3ad8):
PHASE_TOLERANCE_S = 0.8  # a phase stamped by the client and the director: at most 800 ms apart
LOAD_MARGIN_S = 0.8  # a PTDaemon warning this close to the load's edges is not the load's
MAX_DROP_PCT = 5.0  # the testing run's mean power at most 5 % below the ranging run's
PTD_VERSIONS = ("1.11.1",)
ANALYZERS = ("YokogawaWT210", "YokogawaWT500", "YokogawaWT500_multichannel", "YokogawaWT310", "YokogawaWT310E",
             "YokogawaWT330", "YokogawaWT330E", "YokogawaWT330_multichannel", "YokogawaWT210_DC", "YokogawaWT310_DC",
             "YokogawaWT330_DC")
# Ours: the analyzer samples at 1 Hz (the director's Go,1000); a longer gap means readings lost.
MAX_GAP_S = 2.0
MIN_HZ = 0.9

_STAMP = re.compile(r"^(\d\d-\d\d-\d\d\d\d \d\d:\d\d:\d\d\.\d\d\d)(.*)$")
_UNCERTAIN = re.compile(r"Uncertainty \d+\.\d+%, which is above 1\.00% limit")
_ACTIVATED = re.compile(r"Uncertainty checking for Yokogawa\S+ is activated")
ACCEPTED_ERRORS = ("USB.",)  # an ERROR MLPerf's checker accepts outside ranging (a warning there)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class SessionError(InputError):
    """A session folder that cannot be read, or fails a check; the message is one line naming the problem."""


@dataclass(frozen=True)
class SessionRun:
    """One of the client's two runs: LoadGen's power window (UTC) and the analyzer's samples (spl.txt)."""

    folder: str  # "ranging" or "run_1"
    power_begin: float  # unix s
    power_end: float
    log: PowerLog
    marks: frozenset[str]  # the Mark fields of spl.txt (the director marks each sample <session>_<mode>)

    def mlperf_mean_w(self) -> float | None:
        """Mean of the positive readings strictly inside the power window: how MLPerf's checker averages."""
        watts = [w for t, w in zip(self.log.times_unix_s, self.log.watts, strict=True)
                 if self.power_begin < t < self.power_end and w > 0]
        return sum(watts) / len(watts) if watts else None

    def figure(self) -> dict[str, Any]:
        """The run over its own power window: MLPerf's mean watts, and the trapezoid's joules."""
        points = window_points(self.log, self.power_begin, self.power_end)
        return {"folder": self.folder, "power_begin_unix_s": self.power_begin, "power_end_unix_s": self.power_end,
                "seconds": self.power_end - self.power_begin, "mean_w": self.mlperf_mean_w(),
                "joules": trapezoid([t for t, _ in points], [w for _, w in points])}


@dataclass(frozen=True)
class Session:
    path: Path
    name: str
    client: dict[str, Any]  # power/client.json
    server: dict[str, Any]  # power/server.json
    ranging: SessionRun
    testing: SessionRun
    ptd_log: tuple[str, ...]  # power/ptd_logs.txt's lines

    def identify(self) -> str:
        """PTDaemon's reply to Identify, as the director recorded it ('' if none)."""
        return next((str(m.get("reply") or "") for m in self.server.get("ptd_messages") or ()
                     if isinstance(m, dict) and m.get("cmd") == "Identify"), "")

    def analyzer(self) -> tuple[str, str]:
        """(analyzer model, PTDaemon version) from the Identify reply, as MLPerf's checker reads it."""
        reply = self.identify()
        version = re.search(r"(?<=version=)(.+?)-", reply)
        return reply.split(",")[0], version.group(1) if version else ""

    def facts(self) -> dict[str, Any]:
        model, version = self.analyzer()
        uuid = self.client.get("uuid") or {}
        return {"name": self.name, "client_uuid": uuid.get("client"), "server_uuid": uuid.get("server"),
                "analyzer": model, "ptdaemon_version": version, "director_timezone_s": self.server.get("timezone")}


def find_session(path: Path) -> Path:
    """The session folder: `path` itself, or the one session inside the folder the client's -o named."""
    path = Path(path)
    if (path / "power" / "client.json").is_file():
        return path
    inside = sorted(p.parent.parent for p in path.glob("*/power/client.json")) if path.is_dir() else []
    if len(inside) == 1:
        return inside[0]
    if inside:
        raise SessionError(f"{path}: holds {len(inside)} power-dev sessions ({', '.join(p.name for p in inside)}); "
                           "give one")
    raise SessionError(f"{path}: not a power-dev session folder (no power/client.json): give the session folder "
                       "power_client wrote under its -o folder")


def read_session(path: Path) -> Session:
    """The session's files read; a missing or unreadable one is a SessionError naming it."""
    path = find_session(path)
    for rel in REQUIRED:
        if not (path / rel).is_file():
            raise SessionError(f"{path / rel}: missing: not a complete power-dev session (power_client leaves it "
                               "after the ranging and the testing run)")
    client, server = (_json(path / "power" / n) for n in ("client.json", "server.json"))
    name = str(client.get("session_name") or "")
    runs = {mode: _run(path, folder) for mode, folder in FOLDERS.items()}
    try:
        ptd = tuple((path / "power" / "ptd_logs.txt").read_text(errors="replace").splitlines())
    except OSError as e:
        raise SessionError(f"{path / 'power' / 'ptd_logs.txt'}: cannot read it ({e.strerror or e})") from None
    for who, data in (("client", client), ("server", server)):
        phases = data.get("phases")
        if not (isinstance(phases, dict) and all(_phases_ok(phases.get(m)) for m in FOLDERS)):
            raise SessionError(f"{path / 'power' / f'{who}.json'}: no phases for ranging and testing (4 stamps each)")
    return Session(path, name, client, server, runs["ranging"], runs["testing"], ptd)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SessionError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(data, dict):
        raise SessionError(f"{path}: not a JSON object")
    return data


def _phases_ok(stamps: Any) -> bool:
    return (isinstance(stamps, list) and len(stamps) == 4
            and all(isinstance(s, list) and s and isinstance(s[0], int | float) for s in stamps))


def _run(session: Path, folder: str) -> SessionRun:
    from harness.infer.loadgen import loadgen_time, read_detail  # LoadGen's own format, read in one place

    detail = session / folder / "mlperf_log_detail.txt"
    values = read_detail(detail)
    begin, end = loadgen_time(values.get("power_begin")), loadgen_time(values.get("power_end"))
    if begin is None or end is None or end <= begin:
        raise SessionError(f"{detail}: no LoadGen power_begin..power_end window")
    spl = session / folder / "spl.txt"
    try:
        log = parse_power_log(spl)
    except PowerLogError as e:
        raise SessionError(str(e)) from None
    marks = set()
    for line in spl.read_text(errors="replace").splitlines():
        fields = [f.strip() for f in line.split(",")]
        if fields[0] == "Time":  # the first Mark (a merged multi-analyzer line repeats each analyzer's after it)
            marks.update(v for k, v in list(zip(fields[2::2], fields[3::2], strict=False))[:6] if k == "Mark")
    return SessionRun(folder, begin, end, log, frozenset(marks))


def session_checks(s: Session) -> tuple[list[str], list[str]]:
    """(problems, warnings): what MLPerf's power checker fails that the files show, each one line naming its file;
    and what it accepts but flags (a PTDaemon warning during the load, an error while ranging)."""
    p = s.path
    problems: list[str] = []
    cu, su = s.client.get("uuid") or {}, s.server.get("uuid") or {}
    if not cu or cu != su:
        problems.append(f"{p / 'power'}: client.json and server.json name other uuids: not one session")
    if s.name != s.server.get("session_name"):
        problems.append(f"{p / 'power'}: client.json's session {s.name!r} is not server.json's "
                        f"{s.server.get('session_name')!r}")
    if s.server.get("debug"):
        problems.append(f"{p / 'power' / 'server.json'}: the director ran in debug mode (MLPerf refuses it)")
    problems += _phase_problems(s)
    problems += _sampling_problems(s)
    for mode, run in (("ranging", s.ranging), ("testing", s.testing)):
        other = run.marks - {f"{s.name}_{mode}"}
        if other:
            problems.append(f"{p / run.folder / 'spl.txt'}: samples marked {', '.join(sorted(other))}, not "
                            f"{s.name}_{mode}: not this session's {mode} run")
    ranging, testing = s.ranging.mlperf_mean_w(), s.testing.mlperf_mean_w()
    if ranging and testing and 100 * (testing / ranging - 1) <= -MAX_DROP_PCT:
        problems.append(f"{p / 'run_1' / 'spl.txt'}: the testing run's mean power {testing:.2f} W is "
                        f"{100 * (1 - testing / ranging):.1f} % below the ranging run's {ranging:.2f} W (MLPerf "
                        f"allows {MAX_DROP_PCT:g} %): the two runs did not do the same work")
    model, version = s.analyzer()
    if not s.identify():
        problems.append(f"{p / 'power' / 'server.json'}: no reply to PTDaemon's Identify: the analyzer is unknown")
    elif model not in ANALYZERS or version not in PTD_VERSIONS:
        problems.append(f"{p / 'power' / 'server.json'}: analyzer {model!r} on PTDaemon {version or '?'} is not one "
                        f"MLPerf accepts (PTDaemon {', '.join(PTD_VERSIONS)} with a Yokogawa WT210/WT310/WT330/WT500)")
    log_problems, warnings = _ptd_log_checks(s)
    problems += log_problems + _hash_problems(s)
    return problems, warnings


def _phase_problems(s: Session) -> list[str]:
    out = []
    where = s.path / "power"
    for mode, run in (("ranging", s.ranging), ("testing", s.testing)):
        client, server = s.client["phases"][mode], s.server["phases"][mode]
        for i, (c, d) in enumerate(zip(client, server, strict=True)):
            if abs(c[0] - d[0]) > PHASE_TOLERANCE_S:
                out.append(f"{where}: the {mode} run's phase {i + 1} is stamped {1e3 * abs(c[0] - d[0]):.0f} ms apart "
                           f"by the client and the director (MLPerf allows {1e3 * PHASE_TOLERANCE_S:.0f} ms): their "
                           "clocks disagree")
                break
        start, stop = client[1][0], client[2][0]
        if not (start < run.power_begin < run.power_end < stop):
            out.append(f"{s.path / run.folder / 'mlperf_log_detail.txt'}: LoadGen's power window "
                       f"{_iso(run.power_begin)}..{_iso(run.power_end)} UTC is not inside the {mode} phase "
                       f"{_iso(start)}..{_iso(stop)} UTC: the workload's logs are not this run's")
    return out


def _sampling_problems(s: Session) -> list[str]:
    """The testing run's samples over LoadGen's power window: no gap over MAX_GAP_S, about 1 Hz."""
    run = s.testing
    spl = s.path / run.folder / "spl.txt"
    inside = [t for t in run.log.times_unix_s if run.power_begin <= t <= run.power_end]
    edges = [run.power_begin, *inside, run.power_end]
    gaps = [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b - a > MAX_GAP_S]
    if gaps:
        a, b = max(gaps, key=lambda g: g[1] - g[0])
        return [f"{spl}: a {b - a:.1f} s gap without samples ({_iso(a)}..{_iso(b)} UTC) inside LoadGen's power window "
                f"(the analyzer samples at 1 Hz; at most {MAX_GAP_S:g} s allowed)"]
    if len(inside) < 2:
        return [f"{spl}: {len(inside)} sample(s) inside LoadGen's power window; need at least 2"]
    hz = (len(inside) - 1) / (inside[-1] - inside[0])
    if hz < MIN_HZ:
        return [f"{spl}: {hz:.2f} samples/s inside LoadGen's power window, below {MIN_HZ:g} (the analyzer samples "
                "at 1 Hz)"]
    return []


def _stamped(lines: tuple[str, ...]) -> list[tuple[float, str, str]]:
    """(unix s, message, line) of ptd_logs.txt's time-stamped lines (UTC: the director runs PTDaemon with TZ=UTC)."""
    out = []
    for line in lines:
        m = _STAMP.match(line.strip())
        if m:
            t = datetime.strptime(m.group(1), "%m-%d-%Y %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
            out.append((t, m.group(2).strip().lstrip(":").strip(), line.strip()))
    return out


def _ptd_log_checks(s: Session) -> tuple[list[str], list[str]]:
    where = s.path / "power" / "ptd_logs.txt"
    lines = _stamped(s.ptd_log)
    go = next((t for t, msg, _ in lines if msg == f"Go with mark '{s.name}_ranging'"), None)
    done = next((t for t, msg, _ in lines if go is not None and t >= go and msg == "Completed test"), None)
    problems, warnings = [], []
    if go is None or done is None:
        problems.append(f"{where}: no \"Go with mark '{s.name}_ranging'\" .. 'Completed test': the ranging run is not "
                        "in PTDaemon's log")
    activated = next((t for t, msg, _ in lines if _ACTIVATED.search(msg)), None)
    if activated is None or (go is not None and activated > go):
        problems.append(f"{where}: PTDaemon's uncertainty checking was not activated before ranging ('Uncertainty "
                        "checking for Yokogawa... is activated'): MLPerf requires it")
    load = (s.testing.power_begin + LOAD_MARGIN_S, s.testing.power_end - LOAD_MARGIN_S)
    for t, msg, line in lines:
        if msg.startswith("WARNING:") and load[0] < t < load[1]:
            if _UNCERTAIN.search(msg):
                problems.append(f"{where}: {line!r} during the testing run's load: an uncertainty above 1 % (MLPerf "
                                "fails it)")
            else:
                warnings.append(f"PTDaemon during the testing run's load: {line}")
        elif msg.startswith("ERROR:"):
            text = msg.removeprefix("ERROR:").strip()
            if go is not None and done is not None and go < t < done:
                warnings.append(f"PTDaemon while ranging: {line}")
            elif text in ACCEPTED_ERRORS:
                warnings.append(f"PTDaemon (MLPerf accepts it): {line}")
            else:
                problems.append(f"{where}: {line!r} outside the ranging run (MLPerf fails it)")
    return problems, warnings


def _hash_problems(s: Session) -> list[str]:
    """The files MLPerf requires, as the client and the director hashed them (SHA-1, by relative path)."""
    recorded = {**(s.client.get("results") or {}), **(s.server.get("results") or {})}
    out = []
    for rel in REQUIRED:
        if rel in ("power/client.json", "power/server.json"):  # written after the hashing
            continue
        digest = hashlib.sha1((s.path / rel).read_bytes()).hexdigest()
        if rel not in recorded:
            out.append(f"{s.path / rel}: not among the files the client and the director hashed")
        elif recorded[rel] != digest:
            out.append(f"{s.path / rel}: SHA-1 differs from the one the client or the director recorded (changed "
                       "after the session)")
    return out
