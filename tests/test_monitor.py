"""Meter your own code: the Python API's windows, `harness meter -- COMMAND`, and emissions.csv."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import harness

from harness.meters import FakeMeter
from harness.monitor import EnergyMonitor, WindowError
from harness.results.emissions import CODECARBON_COLUMNS

FAKE_W = 50.0  # the fake meter's constant power


def test_nested_and_overlapping_windows_match_the_known_power(tmp_path):
    with EnergyMonitor("fake", output_dir=tmp_path) as monitor:
        monitor.begin_window("outer")
        with monitor.window("a"):
            time.sleep(0.2)
        monitor.begin_window("b")  # b overlaps the end of outer
        time.sleep(0.15)
        monitor.end_window("outer")
        time.sleep(0.1)
        monitor.end_window("b")
    got = {m.name: m for m in monitor.measurements}
    assert set(got) == {"a", "outer", "b"}
    for m in got.values():
        assert m.energy_j == pytest.approx(FAKE_W * m.seconds, rel=0.02)
        assert m.method == "fake:synthetic" and m.complete and m.co2e_gross_kg > 0
    # a and the first part of b tile outer, up to the instants between two marks.
    assert got["outer"].energy_j == pytest.approx(got["a"].energy_j + FAKE_W * (got["outer"].stop_unix_s
                                                                              - got["b"].start_unix_s), rel=0.02)
    assert got["b"].seconds > got["outer"].stop_unix_s - got["b"].start_unix_s
    trace = list(csv.DictReader(open(tmp_path / "power.csv")))
    # The median row: under load, a sliver interval (a mark just after a periodic sample) reads noisily.
    watts = sorted(float(row["fake/cpu_w"]) for row in trace)
    assert len(trace) >= 5 and watts[len(watts) // 2] == pytest.approx(FAKE_W, rel=0.05)
    saved = json.loads((tmp_path / "windows.json").read_text())
    assert [w["name"] for w in saved["windows"]] == ["a", "outer", "b"]


def test_windows_around_a_jax_loop_wait_for_the_device_work():
    import jax
    import jax.numpy as jnp

    step = jax.jit(lambda x: jnp.tanh(x @ x))
    x = jnp.ones((256, 256))
    synced: list = []

    def sync(arrays):
        synced.append(arrays)
        jax.block_until_ready(arrays)

    with EnergyMonitor("fake", sync=sync) as monitor:
        for i in range(3):
            monitor.begin_window(f"step {i}", sync_with=x)
            x = step(x)
            m = monitor.end_window(f"step {i}", sync_with=x)
            assert m.energy_j == pytest.approx(FAKE_W * m.seconds, rel=0.05)
    assert len(synced) == 6 and synced[-1] is x
    with EnergyMonitor("fake", sync="jax") as monitor:  # the framework's own wait, every local device
        with monitor.window("all devices"):
            step(x)
    assert monitor.measurements[0].energy_j > 0


def test_a_window_closed_twice_or_never_opened_is_a_clear_error():
    with EnergyMonitor("fake") as monitor:
        with pytest.raises(WindowError, match="'nope' is not open"):
            monitor.end_window("nope")
        monitor.begin_window("w")
        with pytest.raises(WindowError, match="'w' is already open"):
            monitor.begin_window("w")
        monitor.end_window("w")
        with pytest.raises(WindowError, match="'w' is not open"):
            monitor.end_window("w")
    with pytest.raises(WindowError, match="closed"):
        monitor.begin_window("late")


class _SlowCounter(FakeMeter):
    """The fake's power, read through a counter that moves only every 100 ms (as NVML's does)."""

    update_period_s = 0.1


def test_a_window_shorter_than_the_counter_period_is_flagged_not_zero(monkeypatch):
    import harness.monitor as monitor_mod

    monkeypatch.setattr(monitor_mod.meters, "select_meters", lambda req, accels: ([_SlowCounter()], []))
    with EnergyMonitor("fake") as monitor:
        with monitor.window("blink"):
            pass
    (m,) = monitor.measurements
    assert m.energy_j is None and not m.complete
    assert any("not measurable, not 0 J" in f for f in m.flags)


@pytest.mark.e2e
@pytest.mark.parametrize("code", [0, 3])
def test_harness_meter_passes_the_exit_code_through_and_writes_the_record(tmp_path, code):
    proc = harness("meter", "--meter", "fake", "--output-dir", str(tmp_path), "--",
                   sys.executable, "-c", f"import time; time.sleep(0.3); raise SystemExit({code})")
    assert proc.returncode == code, proc.stderr
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    r = json.loads((run_dir / "result.json").read_text())
    assert r["schema"] == "harness.result/3" and r["kind"] == "command" and r["exit_code"] == code
    assert r["status"] == ("completed" if code == 0 else "failed")
    assert r["energy"]["total_j"] == pytest.approx(FAKE_W * r["timing"]["run_s"], rel=0.05)
    assert r["carbon"]["co2e_gross_kg"] > 0 and (run_dir / "power.csv").is_file()
    assert '"key": "power_reading"' in (run_dir / "power_mllog.txt").read_text()


@pytest.mark.e2e
def test_harness_meter_on_a_command_killed_by_a_signal(tmp_path):
    proc = harness("meter", "--meter", "fake", "--output-dir", str(tmp_path), "--", "sh", "-c", "kill -9 $$")
    assert proc.returncode == 128 + signal.SIGKILL
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    assert json.loads((run_dir / "result.json").read_text())["status"] == "killed"


@pytest.mark.e2e
def test_harness_meter_forwards_ctrl_c_to_the_command(tmp_path):
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "meter", "--meter", "fake", "--output-dir",
                             str(tmp_path), "--", sys.executable, "-c", child], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)  # to the harness only, as a scheduler would
    proc.communicate(timeout=30)
    assert proc.returncode == 42
    (run_dir,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    r = json.loads((run_dir / "result.json").read_text())
    # Stopped by a signal passed on from the harness: `aborted`, as a run is (a record with no final version is
    # what readers call interrupted).
    assert r["status"] == "aborted" and r["signals_forwarded"] == ["SIGINT"]


@pytest.mark.e2e
def test_emissions_csv_has_codecarbons_columns_and_is_appended_to(tmp_path):
    for _ in range(2):
        assert harness("meter", "--meter", "fake", "--output-dir", str(tmp_path), "--", "true").returncode == 0
    rows = list(csv.reader(open(tmp_path / "emissions.csv")))
    header, data = rows[0], rows[1:]
    assert tuple(header[:len(CODECARBON_COLUMNS)]) == CODECARBON_COLUMNS
    assert header[len(CODECARBON_COLUMNS):] == ["energy_method", "harness_record"]
    assert len(data) == 2 and data[0][2] != data[1][2]  # two rows, two run ids: appended, never rewritten
    row = dict(zip(header, data[0], strict=True))
    r = json.loads(Path(row["harness_record"]).read_text())
    assert float(row["energy_consumed"]) == pytest.approx(r["energy"]["total_j"] / 3.6e6)  # kWh
    assert float(row["emissions"]) == pytest.approx(r["carbon"]["co2e_gross_kg"])  # kg
    assert row["energy_method"] == "fake:synthetic"


@pytest.mark.e2e
def test_cpu_time_of_the_run_beside_the_machines_and_contention_flagged(tmp_path):
    """A CPU meter charges the whole machine to the run: the record says how much others used."""
    spin = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"
    # The command's own CPU work is counted as the run's (children it waited for).
    quiet = harness("meter", "--meter", "fake", "--output-dir", str(tmp_path / "own"), "--",
                    sys.executable, "-c", spin.format(s=1.5))
    assert quiet.returncode == 0, quiet.stderr
    (run_dir,) = [d for d in (tmp_path / "own").iterdir() if d.is_dir()]
    c = json.loads((run_dir / "result.json").read_text())["energy"]["contention"]
    assert c["own_cpu_s"] >= 0.5 and c["own_cpu_s"] <= c["machine_busy_cpu_s"] + 0.1  # the harness alone: ~0.05 s
    # Another process spinning beside it: its CPU time is someone else's, and the window is flagged.
    other = subprocess.Popen([sys.executable, "-c", spin.format(s=30)])
    try:
        time.sleep(0.3)
        busy = harness("meter", "--meter", "fake", "--output-dir", str(tmp_path / "busy"), "--", "sleep", "1.5")
    finally:
        other.kill()
        other.wait()
    (run_dir,) = [d for d in (tmp_path / "busy").iterdir() if d.is_dir()]
    r = json.loads((run_dir / "result.json").read_text())
    c = r["energy"]["contention"]
    assert c["flagged"] and c["others_cpu_s"] >= 1.0 and c["others_share"] > c["threshold"]
    assert any(f.startswith("contention: other processes used") for f in r["energy"]["flags"])
    assert "contention:" in busy.stderr
