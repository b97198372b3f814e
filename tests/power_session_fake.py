"""A power-dev session folder, as MLPerf Power's client and director leave it (harness/meters/power_session.py), written
from a known power trace: no PTDaemon, no analyzer. Each fault a test needs is a keyword."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

CLIENT_FILES = ("power/client.log", "ranging/mlperf_log_detail.txt", "ranging/mlperf_log_summary.txt",
                "run_1/mlperf_log_detail.txt", "run_1/mlperf_log_summary.txt")  # hashed by the client


def stamp(t: float) -> str:
    """UTC, as PTDaemon (TZ=UTC under the director) and LoadGen stamp: MM-DD-YYYY HH:MM:SS.mmm."""
    ms = round(t * 1e3)
    return dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).strftime("%m-%d-%Y %H:%M:%S") + f".{ms % 1000:03d}"


def loadgen_detail(begin: float, end: float) -> bytes:
    lines = [{"key": "power_begin", "value": stamp(begin)}, {"key": "power_end", "value": stamp(end)},
             {"key": "result_validity", "value": "VALID"}]
    return "".join(f":::MLLOG {json.dumps(x | {'time_ms': 0.0, 'namespace': 'mlperf::logging'})}\n"
                   for x in lines).encode()


def write_session(out: Path, testing: tuple[float, float], ranging: tuple[float, float],
                  watts: Callable[[float], float] = lambda t: 150.0, *, name: str = "sut_2026",
                  testing_detail: bytes | None = None, ranging_detail: bytes | None = None,
                  testing_summary: bytes | None = None,
                  ranging_watts: Callable[[float], float] | None = None, gap: tuple[float, float] | None = None,
                  phase_skew_s: float = 0.0, analyzer: str = "YokogawaWT310E", version: str = "1.11.1",
                  ptd_lines: tuple[tuple[float, str], ...] = (), missing: tuple[str, ...] = (),
                  phases: dict[str, list[float]] | None = None) -> Path:
    """`out/<name>/` with power/, ranging/ and run_1/: each run's LoadGen logs (a detail log of its own window, or
    the bytes given), its spl.txt at 1 Hz from `watts` (ranging_watts for ranging), the phases around each window (the
    director's stamped phase_skew_s later), ptd_logs.txt with `ptd_lines` added, the files hashed as the client and
    director hash them. Faults: samples removed inside `gap`; files in `missing` deleted after hashing."""
    session = out / name
    for sub in ("power", "ranging", "run_1"):
        (session / sub).mkdir(parents=True, exist_ok=True)
    phase_stamps: dict[str, list[float]] = {}
    ptd = ["Analyzer 1"]
    for mode, folder, (begin, end), detail, summary, trace in (
            ("ranging", "ranging", ranging, ranging_detail, None, ranging_watts or watts),
            ("testing", "run_1", testing, testing_detail, testing_summary, watts)):
        # The client's four stamps: start asked, the workload starts, it ends, stop answered (10 s analyzer waits).
        stamps = (phases or {}).get(mode) or [begin - 12.0, begin - 1.5, end + 1.5, end + 12.0]
        phase_stamps[mode] = stamps
        (session / folder / "mlperf_log_detail.txt").write_bytes(detail or loadgen_detail(begin, end))
        (session / folder / "mlperf_log_summary.txt").write_bytes(summary or f"{mode}\nResult is : VALID\n".encode())
        go, stop = stamps[0] + 10.0, stamps[3] - 0.5  # the analyzer samples from Go to Stop
        lines, t = [], go + 0.313
        while t < stop:
            if not (gap and gap[0] < t < gap[1]):
                w = trace(round(t, 3))  # the power at the stamped millisecond: the trace's integral stays exact
                lines.append(f"Time,{stamp(t)},Watts,{w:.6f},Volts,230.000000,Amps,{w / 230 / 0.95:.6f},"
                             f"PF,0.950000,Mark,{name}_{mode}")
            t += 1.0
        (session / folder / "spl.txt").write_text("\n".join(lines) + "\n")
        if mode == "ranging":
            ptd.append(f"{stamp(go - 30)}: Uncertainty checking for {analyzer} is activated")
        ptd += [f"{stamp(go)}: Go with mark '{name}_{mode}'", f"{stamp(stop)}: Completed test"]
    ptd += [f"{stamp(t)}: {msg}" for t, msg in ptd_lines]
    ptd.sort(key=lambda line: dt.datetime.strptime(line[:23], "%m-%d-%Y %H:%M:%S.%f") if line[0].isdigit()
             else dt.datetime.min)
    (session / "power" / "ptd_logs.txt").write_text("\n".join(ptd) + "\n")
    (session / "run_1" / "ptd_out.txt").write_text("Analyzer 1:\nPower: 150.0 \nUncertainty: 0.2\n")
    (session / "power" / "client.log").write_text("client log\n")
    (session / "power" / "server.log").write_text("server log\n")
    hashes = {p.relative_to(session).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
              for p in sorted(session.rglob("*")) if p.is_file()}
    uuid = {"client": "0d2f8c3e-6a41-4d53-9a0c-1f4b5e2a7c11", "server": "7b9e1a2c-3d4f-4e5a-8b6c-9d0e1f2a3b4c"}
    common = {"version": "1.0", "timezone": 0, "modules": {}, "sources": {}, "messages": [], "uuid": uuid,
              "session_name": name}
    client = common | {"results": {k: v for k, v in hashes.items() if k in CLIENT_FILES},
                       "phases": {m: [[s, 1000.0 + i] for i, s in enumerate(st)] for m, st in phase_stamps.items()}}
    server = common | {"results": {k: v for k, v in hashes.items() if k not in CLIENT_FILES},
                       "phases": {m: [[s + phase_skew_s, 2000.0 + i] for i, s in enumerate(st)]
                                  for m, st in phase_stamps.items()},
                       "ptd_messages": [{"cmd": "Hello", "reply": "Hello, PTDaemon here!"},
                                        {"cmd": "Identify", "reply": f"{analyzer},version={version}-5fa1e2b;"}]}
    (session / "power" / "client.json").write_text(json.dumps(client, indent=4))
    (session / "power" / "server.json").write_text(json.dumps(server, indent=4))
    for rel in missing:
        (session / rel).unlink()
    return session
