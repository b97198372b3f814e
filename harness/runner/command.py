"""`harness meter -- COMMAND ARGS...`: any command (a PyTorch script, a shell pipeline) under the meters.

The command runs in its own process group; Ctrl-C, SIGTERM and SIGHUP sent to the harness are passed on to
that group, and its exit status is passed back (128 + N for a command killed by signal N, as shells do).
Whether it succeeds, fails or is interrupted, its record is written: result.json (a command record of the
harness.result schema, with the energy and carbon sections of a run's), power.csv, the MLPerf-format power
log, and a row of emissions.csv; a file that cannot be written is listed in the record and said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import carbon
from harness.errors import UsageError
from harness.results.files import check_writable
from harness.results.schema import Status
from harness.results.writer import new_folder
from harness.session import DEFAULT_SAMPLE_HZ, Metering, accelerators

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
    sample_hz: float = DEFAULT_SAMPLE_HZ
    output_dir: str = "results"
    name: str | None = None

    def metering(self) -> Metering:
        return Metering(meter=self.meter, meter_options=self.meter_options, sample_hz=self.sample_hz,
                        region=self.region, pue=self.pue, carbon_intensity=self.carbon_intensity,
                        net_intensity=self.net_intensity)


def meter_command(opts: CommandOptions):
    """Run the command under the meters; returns the record's folder, the record and the exit code to pass on."""
    from harness import meters
    from harness.meters.contention import cpu_snapshot

    if not opts.argv:
        raise UsageError("harness meter needs a command after --, e.g. harness meter -- python train.py")
    metering = opts.metering()
    pricing = metering.check()
    check_writable(Path(opts.output_dir), "--output-dir")
    accels = accelerators(None)
    chosen, unavailable = metering.choose(accels)
    name = opts.name or Path(opts.argv[0]).name
    run_dir = new_folder(Path(opts.output_dir), f"meter-{_safe(name)}")
    sampler = meters.Sampler(chosen, hz=opts.sample_hz, accounting=cpu_snapshot)
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
    record = _record(opts, name, run_dir, sampler, chosen, unavailable, accels, marks, status, returncode,
                     forwarded, software, pricing)
    return run_dir, record, exit_code


def _outcome(returncode: int, forwarded: list[int]) -> tuple[Status, int]:
    """The record's status and the exit code to pass on (128 + N for a command killed by signal N)."""
    exit_code = 128 - returncode if returncode < 0 else returncode
    if forwarded:
        return Status.ABORTED, exit_code
    if returncode < 0:
        return Status.KILLED, exit_code
    return (Status.COMPLETED if returncode == 0 else Status.FAILED), exit_code


def _prepare_the_record() -> dict[str, Any]:
    """What the record needs that does not depend on the command: the modules that write it (the MLPerf log
    pulls in numpy) and the software versions (a git call). Tens of milliseconds, spent while it runs."""
    import harness.mlperf.runlog  # noqa: F401
    import harness.results.build  # noqa: F401
    import harness.results.emissions  # noqa: F401
    from harness.results import environment

    return environment.software()


def _record(opts: CommandOptions, name: str, run_dir: Path, sampler, chosen: list, unavailable: list,
            accels: list, marks: dict[str, float], status: Status, returncode: int, forwarded: list[int],
            software: dict[str, Any], pricing):
    from dataclasses import replace

    from harness.meters.contention import cpu_between
    from harness.meters.window import measure_window, session_facts
    from harness.mlperf.runlog import render_power_log
    from harness.results.build import command_record, energy_from_windows
    from harness.results.emissions import ROW, append_record
    from harness.results.schema import Device
    from harness.results.writer import RecordFiles

    energy = energy_from_windows(
        measure_window(sampler, chosen, "run_start", "run_stop"), None, stop_label="run_stop",
        facts=session_facts(sampler, chosen), unavailable=unavailable,
        cpu=cpu_between(sampler.accounts.get("run_start"), sampler.accounts.get("run_stop")))
    record = command_record(
        run_id=run_dir.name, name=name, argv=opts.argv, status=status, exit_code=returncode,
        signals=[signal.Signals(s).name for s in forwarded], marks=marks, energy=energy, pricing=pricing,
        devices=[Device(kind=a.kind, platform=a.platform, id=a.index) for a in accels], software=software)
    record = replace(record, source=run_dir / "result.json")
    files = RecordFiles(run_dir)
    files.csv("power.csv", sampler.power_rows())
    files.expect("power_mllog.txt", ROW)
    record, _ = files.record(record)
    files.text("power_mllog.txt", lambda: render_power_log(record, run_dir))
    note = append_record(files, Path(opts.output_dir), record)
    if note:
        print(f"harness meter: {note}", file=sys.stderr)
    record, _ = files.record(record)
    return record


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40] or "command"
