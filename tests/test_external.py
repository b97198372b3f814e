"""Tests for the external-command node meter and the PTDaemon power-log import."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import FakeClock

from harness.meters.external import ExternalMeter, parse_watts
from harness.meters.ptdaemon import PowerLog, PowerLogError, parse_power_log, window_energy

IPMITOOL_DCMI = """
    Instantaneous power reading:                   250 Watts
    Minimum during sampling period:                  8 Watts
    Maximum during sampling period:                412 Watts
    Average power reading over sample period:      241 Watts
    IPMI timestamp:                           Thu Nov 26 21:55:23 2026
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated
"""


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------- parse_watts


def test_parse_watts_ipmitool_dcmi_takes_the_instantaneous_reading() -> None:
    assert parse_watts(IPMITOOL_DCMI) == 250.0


@pytest.mark.parametrize(
    ("text", "watts"),
    [
        ("231.5\n", 231.5),
        ("Power: 312.5W", 312.5),
        ("PSU1 input 97 watt", 97.0),
        ("total 1.2 kW\n", 1200.0),
        ("energy 5000 Wh, power 80 W", 80.0),  # Wh is energy, not the power figure
    ],
)
def test_parse_watts_accepted_forms(text: str, watts: float) -> None:
    assert parse_watts(text) == pytest.approx(watts)


@pytest.mark.parametrize("text", ["garbage", "", "12 34\n", "2026-11-26 21:55:23"])
def test_parse_watts_rejects_output_without_a_single_reading(text: str) -> None:
    with pytest.raises(ValueError, match="cannot find watts in command output"):
        parse_watts(text)


@pytest.mark.parametrize("text", ["Power: -5 W", "-3\n", "1e999 W"])
def test_parse_watts_rejects_negative_and_non_finite(text: str) -> None:
    with pytest.raises(ValueError):
        parse_watts(text)


def test_parse_watts_error_quotes_only_the_start_of_the_output() -> None:
    with pytest.raises(ValueError) as info:
        parse_watts("x" * 500)
    assert repr("x" * 80) in str(info.value) and "x" * 81 not in str(info.value)


# ---------------------------------------------------------------- ExternalMeter, driven by hand

Step = str | BaseException
Runner = Callable[[list[str], float], str]


def scripted(outputs: list[Step], clock: FakeClock | None = None, takes_s: float = 0.0) -> Runner:
    """A runner that prints (or raises) the next scripted output, optionally taking takes_s of fake time."""
    queue = list(outputs)

    def runner(argv: list[str], timeout_s: float) -> str:
        if clock is not None:
            clock.t += takes_s
        out = queue.pop(0)
        if isinstance(out, BaseException):
            raise out
        return out

    return runner


def drive(steps: list[tuple[float, Step]], hz: float = 1.0) -> tuple[ExternalMeter, FakeClock]:
    """A started meter that has sampled each step's output at that step's (instant) time."""
    clock = FakeClock()
    runner = scripted([out for _, out in steps])
    meter = ExternalMeter(
        "ipmitool dcmi power reading", hz=hz, clock=clock, wall=lambda: 1000.0 + clock.t, runner=runner
    )
    meter.start(background=False)
    for t, _ in steps[1:]:
        clock.t = t
        meter.sample_once()
    return meter, clock


def bmc_error() -> subprocess.CalledProcessError:
    return subprocess.CalledProcessError(1, ["ipmitool"], "", "Error: no response from BMC\nmore detail\n")


def test_external_trapezoid_bridges_failures_and_records_gaps() -> None:
    steps: list[tuple[float, Step]] = [
        (0.0, "100 Watts"),
        (1.0, "200 Watts"),
        (2.0, bmc_error()),
        (3.0, "300 Watts"),  # 2 s since the last good sample: bridged, but not a gap (threshold 2.5 s)
        (4.0, subprocess.TimeoutExpired(["ipmitool"], 2.0)),
        (5.0, "no reading"),
        (6.0, bmc_error()),
        (7.0, "100 Watts"),  # 4 s since the last good sample: a gap
    ]
    meter, clock = drive(steps)
    clock.t = 8.0
    # 0-1: 150 J, 1-3: 500 J, 3-7: 800 J, then 100 W held for 1 s.
    assert meter.read() == {"node": pytest.approx(1550.0)}
    assert meter.gauges() == {"node.instant": 100.0}
    p = meter.params()
    assert (p["samples"], p["failed_samples"]) == (8, 4)
    assert p["gaps"] == [{"start_unix_s": 1003.0, "stop_unix_s": 1007.0, "seconds": 4.0}]
    assert p["method"] == "measured:external-command" and p["target_hz"] == 1.0
    assert p["achieved_hz"] == pytest.approx(3 / 7)  # 4 good readings over 7 s
    assert meter.warnings() == [
        "external: 4 of 8 samples failed (last error: ipmitool exited with status 1: Error: no response from BMC)",
        "external: 1 sampling gap over 2.5 s (longest 4.0 s), energy bridged linearly",
    ]
    assert meter.cross_checks() == {}
    assert meter.scope == "node" and meter.components() == ["node"]


def test_external_clean_run_has_no_warnings_and_reports_timeouts_readably() -> None:
    meter, clock = drive([(0.0, "50 W"), (0.5, "50 W"), (1.0, "50 W")], hz=2.0)
    assert meter.warnings() == [] and meter.params()["gaps"] == []
    assert meter.read()["node"] == pytest.approx(50.0)
    assert meter.update_period_s == 0.5 and meter.timeout_s == 1.0

    meter, _ = drive([(0.0, "50 W"), (0.5, subprocess.TimeoutExpired(["ipmitool"], 1.0))], hz=2.0)
    assert meter.warnings() == ["external: 1 of 2 samples failed (last error: ipmitool timed out after 1 s)"]


def test_external_read_never_goes_backwards_when_power_drops() -> None:
    clock = FakeClock()
    meter = ExternalMeter("ipmitool", clock=clock, runner=scripted(["200 W", "0 W", "400 W"]))
    meter.start(background=False)
    clock.t = 0.9
    assert meter.read()["node"] == pytest.approx(180.0)  # 200 W held
    clock.t = 1.0
    meter.sample_once()  # the trapezoid to t=1 is only 100 J
    assert meter.read()["node"] == pytest.approx(180.0)
    clock.t = 2.0
    meter.sample_once()  # 100 + 200 J by t=2: the integral has caught up
    assert meter.read()["node"] == pytest.approx(300.0)


def test_external_stamps_a_slow_reading_at_the_commands_midpoint() -> None:
    clock = FakeClock()
    meter = ExternalMeter("ipmitool", clock=clock, runner=scripted(["100 W", "300 W"], clock, takes_s=0.4))
    meter.start(background=False)  # runs 0.0-0.4: reading stamped at 0.2
    clock.t = 1.0
    meter.sample_once()  # runs 1.0-1.4: stamped at 1.2
    assert meter.read()["node"] == pytest.approx(200.0 + 300.0 * 0.2)


def test_external_stop_freezes_energy_and_records_a_trailing_gap() -> None:
    meter, clock = drive([(0.0, "100 W"), (1.0, "100 W"), (2.0, bmc_error())])
    clock.t = 5.0
    meter.stop()
    clock.t = 50.0
    assert meter.read()["node"] == pytest.approx(500.0)
    assert meter.params()["gaps"] == [{"start_unix_s": 1001.0, "stop_unix_s": 1005.0, "seconds": 4.0}]


def test_external_start_fails_loudly_when_first_reading_fails() -> None:
    meter = ExternalMeter("ipmitool", runner=lambda argv, t: "no power here")
    with pytest.raises(RuntimeError, match="first reading from 'ipmitool' failed: cannot find watts"):
        meter.start(background=False)
    with pytest.raises(RuntimeError, match="start"):
        meter.read()


@pytest.mark.parametrize("hz", [0.0, -1.0, 51.0, math.nan])
def test_external_rejects_bad_rates(hz: float) -> None:
    with pytest.raises(ValueError, match="hz"):
        ExternalMeter("ipmitool", hz=hz)


# ---------------------------------------------------------------- probe


def test_probe_without_command() -> None:
    for command in (None, "", "  "):
        a = ExternalMeter.check(command)
        assert not a.available and "no --meter-command given" in a.reason


def test_probe_missing_executable() -> None:
    a = ExternalMeter.check("no-such-power-tool-xyz --read")
    assert not a.available and "no-such-power-tool-xyz" in a.reason


def test_probe_failing_and_working_commands(tmp_path: Path) -> None:
    bad = script(tmp_path, "bad", 'echo "BMC busy" >&2; exit 3')
    a = ExternalMeter.check(str(bad))
    assert not a.available and "exited with status 3: BMC busy" in a.reason

    noise = script(tmp_path, "noise", "echo 'hello 1 2 3'")
    a = ExternalMeter.check(str(noise))
    assert not a.available and "cannot find watts" in a.reason

    good = script(tmp_path, "good", "echo 'Instantaneous power reading:   123 Watts'")
    a = ExternalMeter.check(f"{good} dcmi power reading")
    assert a.available and a.reason == f"ok: {good} dcmi power reading printed 123 W"


def test_probe_timeout_kills_wrapper_and_its_children(tmp_path: Path) -> None:
    # sh forks sleep here; killing only sh would leave sleep holding the pipe for 5 s.
    slow = script(tmp_path, "slow", "sleep 5; echo 1 W")
    t = time.monotonic()
    a = ExternalMeter.check(str(slow), timeout_s=0.3)
    assert not a.available and "timed out after 0.3 s" in a.reason
    assert time.monotonic() - t < 2.0


# ---------------------------------------------------------------- real subprocess and thread


def test_external_real_command_in_background_thread(tmp_path: Path) -> None:
    cmd = script(tmp_path, "power", "echo 'Instantaneous power reading:   123 Watts'")
    meter = ExternalMeter(str(cmd), hz=20.0)
    t0 = time.monotonic()
    meter.start()
    time.sleep(0.3)
    joules = meter.read()["node"]
    elapsed = time.monotonic() - t0
    meter.stop()
    assert joules == pytest.approx(123.0 * elapsed, rel=0.1)
    p = meter.params()
    assert p["failed_samples"] == 0 and p["samples"] >= 3
    assert meter.gauges() == {"node.instant": 123.0}
    time.sleep(0.1)
    assert meter.params()["samples"] == p["samples"]  # the thread really stopped


# ---------------------------------------------------------------- PTDaemon log

# Local time on the PTD machine is UTC-5, so 16:55:20 local is 21:55:20 UTC.
T0 = datetime(2026, 11, 26, 21, 55, 20, tzinfo=UTC).timestamp()

PTD_LOG = """\
# PTDaemon 1.10 log
Watts,Volts,Amps,PF,Mark
Time,11-26-2026 16:55:20.000,Watts,250.000000,Volts,230.100000,Amps,1.200000,PF,0.980000,Mark,run1
Time,11-26-2026 16:55:21.000,Watts,-1.000000,Volts,-1.000000,Amps,-1.000000,PF,-1.000000,Mark,run1
Mark,run1_start

Time,11-26-2026 16:55:22.000,Watts,250.000000,Volts,230.0,Amps,1.2,PF,0.98,Mark,run1
Time,11-26-2026 16:55:23.500,Volts,230.0,Amps,1.2
Time,11-26-2026 16:55:24.000,Watts,250.000000,Volts,230.0,Amps,1.2,PF,0.98,Mark,run1
Time,11-26-2026 16:55:25.000,Watts,250.000000,Volts,230.0,Amps,1.2,PF,0.98,Mark,run1
Error: analyzer did not respond
"""


def write_log(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ptd.log"
    path.write_text(text)
    return path


def epoch_log(tmp_path: Path, samples: list[tuple[float, float]]) -> PowerLog:
    lines = [f"Time,{T0 + t:.3f},Watts,{w:.6f},Volts,230.0,Amps,1.0,PF,0.99,Mark,x" for t, w in samples]
    return parse_power_log(write_log(tmp_path, "\n".join(lines) + "\n"), utc_offset_h=7.0)  # offset ignored


def test_ptd_parse_date_form_with_utc_offset(tmp_path: Path) -> None:
    log = parse_power_log(write_log(tmp_path, PTD_LOG), utc_offset_h=-5.0)
    assert log.times_unix_s == (T0, T0 + 2, T0 + 4, T0 + 5)
    assert log.watts == (250.0,) * 4
    # comment, header, -1 error, Mark-only, blank, Time line without Watts, error line
    assert log.skipped_lines == 7


def test_ptd_constant_window_energy_is_exact(tmp_path: Path) -> None:
    log = parse_power_log(write_log(tmp_path, PTD_LOG), utc_offset_h=-5.0)
    r = window_energy(log, T0 + 0.5, T0 + 4.75)
    assert r["joules"] == pytest.approx(250.0 * 4.25)
    assert r["mean_w"] == pytest.approx(250.0) and r["seconds"] == pytest.approx(4.25)
    assert r["samples_in_window"] == 2 and r["gaps"] == []
    assert r["method"] == "measured:ptdaemon-log"
    assert (r["log_first_unix_s"], r["log_last_unix_s"]) == (T0, T0 + 5)


def test_ptd_ramp_matches_the_analytic_integral(tmp_path: Path) -> None:
    log = epoch_log(tmp_path, [(k, 100.0 + 10.0 * k) for k in range(11)])
    assert log.times_unix_s[0] == pytest.approx(T0)
    r = window_energy(log, T0 + 1.5, T0 + 4.5)
    # integral of 100 + 10 t over [1.5, 4.5] = 300 + 5 * (4.5^2 - 1.5^2) = 390
    assert r["joules"] == pytest.approx(390.0)
    assert r["samples_in_window"] == 3 and r["achieved_hz"] == pytest.approx(1.0)


def test_ptd_window_edges_are_interpolated(tmp_path: Path) -> None:
    log = epoch_log(tmp_path, [(0, 100.0), (1, 300.0), (2, 100.0)])
    # w(0.5) = 200, w(1) = 300, w(1.5) = 200
    assert window_energy(log, T0 + 0.5, T0 + 1.5)["joules"] == pytest.approx(250.0)
    # entirely between two samples: w(0.25) = 150, w(0.75) = 250
    assert window_energy(log, T0 + 0.25, T0 + 0.75)["joules"] == pytest.approx(100.0)


def test_ptd_small_uncovered_edges_hold_the_nearest_sample(tmp_path: Path) -> None:
    log = epoch_log(tmp_path, [(0, 100.0), (1, 100.0), (2, 200.0)])
    r = window_energy(log, T0 - 0.5, T0 + 2.5)
    assert r["joules"] == pytest.approx(0.5 * 100 + 100 + 150 + 0.5 * 200)


def test_ptd_log_not_covering_the_window(tmp_path: Path) -> None:
    log = epoch_log(tmp_path, [(0, 100.0), (1, 100.0), (2, 100.0)])
    with pytest.raises(PowerLogError, match=r"log covers 2026-11-26 21:55:20.000\.\..*check --utc-offset"):
        window_energy(log, T0 + 3600, T0 + 3601)
    with pytest.raises(PowerLogError, match="check --utc-offset"):
        window_energy(log, T0 + 1, T0 + 3.5)
    with pytest.raises(PowerLogError, match="empty"):
        window_energy(log, T0 + 1, T0 + 1)


def test_ptd_gap_reported(tmp_path: Path) -> None:
    log = epoch_log(tmp_path, [(0, 100.0), (1, 100.0), (2, 100.0), (6, 100.0), (7, 100.0)])
    r = window_energy(log, T0 + 0.5, T0 + 6.5)
    assert r["gaps"] == [{"start_unix_s": T0 + 2, "stop_unix_s": T0 + 6, "seconds": 4.0}]
    assert r["joules"] == pytest.approx(600.0)
    assert window_energy(log, T0 + 0.5, T0 + 1.5)["gaps"] == []  # the gap lies outside this window


def test_ptd_out_of_order_timestamps_rejected(tmp_path: Path) -> None:
    lines = [f"Time,{T0 + t},Watts,100.0" for t in (0, 2, 1)]
    with pytest.raises(PowerLogError, match="line 3: .*out of order"):
        parse_power_log(write_log(tmp_path, "\n".join(lines)))


def test_ptd_missing_file_and_too_few_samples(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    with pytest.raises(PowerLogError, match=f"{missing}: cannot read power log"):
        parse_power_log(missing)
    path = write_log(tmp_path, f"Time,{T0},Watts,100.0\nTime,{T0 + 1},Watts,-1\n")
    with pytest.raises(PowerLogError, match=r"1 valid .* first skipped line 2: invalid watts"):
        parse_power_log(path)
