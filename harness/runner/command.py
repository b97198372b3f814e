"""`harness meter -- COMMAND ARGS...`: any command (a PyTorch script, a shell pipeline) under the meters.

The command runs in its own process group; Ctrl-C, SIGTERM and SIGHUP sent to the harness are passed on to
that group, and its exit status is passed back (128 + N for a command killed by signal N, as shells do).
Whether it succeeds, fails or is interrupted, the record is written: result.json (schema
harness.command/1, with the energy and carbon sections of a run's), power.csv, the MLPerf-format power log,
and a row of emissions.csv.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import carbon, meters
from harness.errors import UsageError
from harness.monitor import accelerators
from harness.results import record
from harness.results.files import atomic_write_text, check_writable, sha256_file, write_csv, write_json

SCHEMA = "harness.command/1"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class CommandOptions:
    argv: list[str]
    meter: str = "auto"
    meter_options: dict[str, Any] = field(default_factory=dict)
    region: str = carbon.DEFAULT_REGION
    pue: float | None = None
    carbon_intensity: float | None = None
    net_intensity: float | None = None
    sample_hz: float = 20.0
    output_dir: str = "results"
    name: str | None = None


def meter_command(opts: CommandOptions) -> tuple[Path, dict[str, Any], int]:
    """Run the command under the meters; returns the record's folder, the record and the exit code to pass on."""
    if not opts.argv:
        raise UsageError("harness meter needs a command after --, e.g. harness meter -- python train.py")
    if opts.sample_hz < 10:
        raise UsageError(f"--sample-hz must be >= 10 (power traces need 10 Hz or more), got {opts.sample_hz}")
    carbon.footprint(0.0, opts.region, opts.pue, opts.carbon_intensity, opts.net_intensity)
    check_writable(Path(opts.output_dir), "--output-dir")
    request = meters.MeterRequest(meters.parse_meter_names(opts.meter), **opts.meter_options)
    meters.check_request(request)
    accels = accelerators(None)
    chosen, unavailable = meters.select_meters(request, accels)
    if not chosen:
        raise UsageError("no energy meter is available: " + "; ".join(u["reason"] for u in unavailable))
    name = opts.name or Path(opts.argv[0]).name
    run_dir = record.new_run_dir(Path(opts.output_dir), f"meter-{_safe(name)}")
    sampler = meters.Sampler(chosen, hz=opts.sample_hz)
    sampler.start()
    marks = {"run_start": sampler.mark("run_start")}
    forwarded: list[int] = []
    try:
        proc = subprocess.Popen(opts.argv, process_group=0)
    except OSError as e:
        sampler.stop()
        raise UsageError(f"cannot start {opts.argv[0]!r}: {e.strerror or e}") from None

    def forward(signum, frame) -> None:
        forwarded.append(signum)
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        software = _prepare_the_record()  # while the command runs, not after it: the harness adds less time
        returncode = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        marks["run_stop"] = sampler.mark("run_stop")
        sampler.stop()
    status, exit_code = _outcome(returncode, forwarded)
    result = _record(opts, name, run_dir, sampler, chosen, unavailable, accels, marks, status, returncode, forwarded,
                     software)
    return run_dir, result, exit_code


def _outcome(returncode: int, forwarded: list[int]) -> tuple[str, int]:
    exit_code = 128 - returncode if returncode < 0 else returncode
    if forwarded:
        return "interrupted", exit_code
    if returncode < 0:
        return "killed", exit_code
    return ("completed" if returncode == 0 else "failed"), exit_code


def _prepare_the_record() -> dict[str, Any]:
    """What the record needs that does not depend on the command: the modules that write it (the MLPerf log
    pulls in numpy) and the software versions (a git call). Tens of milliseconds, spent while it runs."""
    import harness.mlperf.runlog  # noqa: F401
    import harness.results.emissions  # noqa: F401
    import harness.runner.assemble  # noqa: F401
    from harness.results import environment

    return environment.software()


def _record(opts: CommandOptions, name: str, run_dir: Path, sampler, chosen: list, unavailable: list,
            accels: list, marks: dict[str, float], status: str, returncode: int,
            forwarded: list[int], software: dict[str, Any]) -> dict[str, Any]:
    from harness.mlperf.runlog import render_power_log
    from harness.results import environment
    from harness.results.emissions import EMISSIONS_CSV, append_row, row_from_result
    from harness.runner.assemble import measure_process
    from harness.runner.training import LoopResult

    energy = measure_process(sampler, chosen, unavailable, LoopResult(), opts.sample_hz)["energy"]
    total = energy["total_j"]
    rows = sampler.power_rows()
    write_csv(run_dir / "power.csv", rows, list(rows[0]) if rows else None)
    devices = [{"kind": a.kind, "platform": a.platform, "id": a.index} for a in accels]
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": run_dir.name,
        "created_unix_s": time.time(),
        "workload": name,
        "command": opts.argv,
        "status": status,
        "exit_code": returncode,
        "signals_forwarded": [signal.Signals(s).name for s in forwarded],
        "timing": {"run_s": marks["run_stop"] - marks["run_start"], "marks_unix_s": marks},
        "energy": energy,
        "carbon": (carbon.footprint(total, opts.region, opts.pue, opts.carbon_intensity, opts.net_intensity)
                   .to_dict() if total is not None else None),
        "environment": {"hardware": environment.hardware(devices), "software": software},
        "files": {"power.csv": sha256_file(run_dir / "power.csv")},
    }
    atomic_write_text(run_dir / "power_mllog.txt", render_power_log(result, run_dir))
    result["files"]["power_mllog.txt"] = sha256_file(run_dir / "power_mllog.txt")
    write_json(run_dir / "result.json", result)
    append_row(Path(opts.output_dir) / EMISSIONS_CSV, row_from_result(result, name, run_dir / "result.json"))
    return result


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or "command"
