"""`harness meters`, the TPU model, a live external node meter in a run, and importing a PTDaemon log."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import stat
from pathlib import Path

import pytest
from conftest import harness, only_result, only_run_dir

from harness.cli import main
from harness.meters.tpu_model import TpuModelMeter, load_power_table, match_power
from harness.mlperf.compliance import read_log
from harness.results.files import sha256_file


def test_meters_json_on_this_machine_shows_only_the_modelled_cpu(capsys):
    assert main(["meters", "--json"]) == 0
    rows = {r["backend"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"nvml", "amdsmi", "rapl", "tpu-model", "cpu-model", "external", "fake"}
    assert rows["cpu-model"]["available"] and rows["cpu-model"]["used_by_auto"]
    assert rows["cpu-model"]["basis"] == "modelled"
    assert not rows["nvml"]["available"] and rows["nvml"]["reason"].startswith("NVML: ")
    assert not rows["amdsmi"]["available"] and rows["amdsmi"]["reason"].startswith("AMD SMI: no AMD GPU")
    assert not rows["tpu-model"]["available"] and "no TPU" in rows["tpu-model"]["reason"]
    assert not rows["external"]["available"] and "--meter-command" in rows["external"]["reason"]
    assert not rows["fake"]["used_by_auto"]
    if not Path("/sys/class/powercap").exists():
        assert not rows["rapl"]["available"] and "absent" in rows["rapl"]["reason"]
        assert [n for n, r in rows.items() if r["used_by_auto"]] == ["cpu-model"]


def test_meters_table_names_every_backend(capsys):
    assert main(["meters"]) == 0
    out = capsys.readouterr().out
    for name in ("nvml", "amdsmi", "rapl", "tpu-model", "cpu-model", "external", "fake"):
        assert name in out


def test_tpu_power_table_and_model():
    table = load_power_table()
    assert match_power("TPU v3", table).watts == 283.0
    assert match_power("TPU v2", table).watts == 221.0
    assert match_power("TPU v20", table) is None  # prefix match on whole words only
    assert all("Patterson et al. 2021" in r.source for r in table)
    t = [0.0]
    m = TpuModelMeter(["TPU v3"] * 4, clock=lambda: t[0])
    assert m.method.startswith("modelled:") and m.components() == ["tpu-0", "tpu-1", "tpu-2", "tpu-3"]
    m.start()
    t[0] = 10.0
    assert m.read() == {f"tpu-{i}": pytest.approx(2830.0) for i in range(4)}
    unknown = TpuModelMeter.check(["TPU v5 lite"])
    assert not unknown.available and "--tpu-watts" in unknown.reason
    assert TpuModelMeter.check(["TPU v5 lite"], watts_per_chip=200.0).available
    assert "mixed" in TpuModelMeter.check(["TPU v3", "TPU v4"]).reason


def _watts_script(tmp_path: Path, watts: float) -> Path:
    script = tmp_path / "bmc_power"
    script.write_text(f"#!/bin/sh\necho 'Instantaneous power reading:   {watts:g} Watts'\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.e2e
def test_run_with_a_live_external_node_meter(tmp_path, capsys):
    cmd = str(_watts_script(tmp_path, 100.0))
    code = main(["run", "--workload", "switch-tiny", "--max-steps", "60", "--output-dir", str(tmp_path / "out"),
                 "--no-progress", "--meter", "cpu-model,external", "--meter-command", cmd, "--meter-hz", "10",
                 "--cpu-tdp", "10"])
    assert code in (0, 1), capsys.readouterr().err
    r = only_result(tmp_path / "out")
    e = r["energy"]
    # The node figure is the run's energy, and CO2e is priced from it.
    assert e["method"] == "measured:external-command"
    assert e["total_j"] == e["node_j"] == pytest.approx(100.0 * r["timing"]["run_s"], rel=0.1)
    assert e["components"]["external/node"]["scope"] == "node"
    assert r["carbon"]["facility_kwh"] == pytest.approx(e["node_j"] / 3.6e6 * 1.58)
    (check,) = [c for c in e["cross_checks"] if c["what"] == "node vs components"]
    assert check["b"]["joules"] == pytest.approx(e["device_j"]) and check["disagreement_pct"] < -80
    # The run's MLPerf power log is the node figure, and sums back to it.
    run_dir = only_run_dir(tmp_path / "out")
    lines = read_log(run_dir / "power_mllog.txt")
    start = next(ll.timestamp for ll in lines if ll.key == "power_measurement_start")
    readings = [(ll.timestamp, ll.value["value"]) for ll in lines if ll.key == "power_reading"]
    joules = sum(w * (t - t0) / 1000 for (t0, _), (t, w) in zip([(start, 0.0), *readings], readings, strict=False))
    assert joules == pytest.approx(e["node_j"], rel=0.01)


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "--workload", "switch-tiny", "--max-steps", "30", "--meter", "fake", "--output-dir",
                 str(out), "--no-progress", "--loadgen-log-dir", str(out.parent / f"{out.name}-L")]) in (0, 1)
    return only_run_dir(out)


@pytest.mark.e2e
def test_a_run_leaves_its_timed_window_where_mlperf_powers_client_looks(fake_run):
    from harness.infer.loadgen import loadgen_time, read_detail

    logs = fake_run.parent.parent / f"{fake_run.parent.name}-L"
    detail = read_detail(logs / "mlperf_log_detail.txt")
    marks = json.loads((fake_run / "result.json").read_text())["timing"]["marks_unix_s"]
    begin, end = loadgen_time(detail["power_begin"]), loadgen_time(detail["power_end"])
    assert 0 <= marks["run_start"] - begin < 1e-3 and 0 <= end - marks["run_stop"] < 1e-3
    assert (logs / "mlperf_log_summary.txt").is_file()


def _ptd_log(path: Path, start: float, stop: float, watts: float, utc_offset_h: float = 0.0) -> Path:
    lines = ["# PTDaemon log", "Watts,Volts,Amps"]
    t = start
    while t <= stop:
        local = dt.datetime.fromtimestamp(t, dt.UTC) + dt.timedelta(hours=utc_offset_h)
        stamp = local.strftime("%m-%d-%Y %H:%M:%S.") + f"{local.microsecond // 1000:03d}"
        lines.append(f"Time,{stamp},Watts,{watts:.6f},Volts,230.0,Amps,{watts / 230:.6f},PF,0.99,Mark,run")
        t += 0.1
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.e2e
def test_import_power_log_makes_node_energy_the_run_energy(fake_run, tmp_path, capsys):
    run = shutil.copytree(fake_run, tmp_path / "run")
    before = json.loads((run / "result.json").read_text())
    marks = before["timing"]["marks_unix_s"]
    log = _ptd_log(tmp_path / "ptd.txt", marks["run_start"] - 3, marks["run_stop"] + 3, 150.0, utc_offset_h=2.0)
    assert main(["import-power", str(run), str(log), "--utc-offset", "2"]) == 0
    r = json.loads((run / "result.json").read_text())
    e, run_s = r["energy"], marks["run_stop"] - marks["run_start"]
    assert e["method"] == "measured:ptdaemon-log"
    assert e["total_j"] == e["node_j"] == pytest.approx(150.0 * run_s, rel=1e-6)
    assert e["device_j"] == pytest.approx(before["energy"]["total_j"])  # the component figure is kept
    assert r["carbon"]["co2e_gross_kg"] == pytest.approx(e["node_j"] / 3.6e6 * 1.58 * 0.429)
    assert r["files"]["power_node_log.txt"] == sha256_file(run / "power_node_log.txt")
    (check,) = [c for c in e["cross_checks"] if c["what"] == "node vs components"]
    assert check["disagreement_pct"] == pytest.approx(100 * (before["energy"]["total_j"] - e["node_j"]) / e["node_j"])
    # Every figure per joule follows the imported energy (it kept the old energy's FLOPs/J before).
    eff = r["efficiency"]
    assert eff["tokens_per_j"] == pytest.approx(r["training"]["tokens"] / e["node_j"])
    assert eff["model_flops_per_j"] == pytest.approx(eff["model_flops"] / e["node_j"])
    assert eff["energy_basis"].endswith("(measured:ptdaemon-log)")
    # The run's MLPerf power log now holds the imported readings, and sums back to the imported figure.
    lines = read_log(run / "power_mllog.txt")
    start = next(ll.timestamp for ll in lines if ll.key == "power_measurement_start")
    readings = [(ll.timestamp, ll.value["value"]) for ll in lines if ll.key == "power_reading"]
    assert readings and all(w == pytest.approx(150.0) for _, w in readings)
    joules = sum(w * (t - t0) / 1000 for (t0, _), (t, w) in zip([(start, 0.0), *readings], readings, strict=False))
    assert joules == pytest.approx(e["node_j"], rel=1e-3)
    capsys.readouterr()
    main(["check", str(run)])  # this fixture's run stopped at its step budget: check fails it for that alone
    assert "energy from the power log" not in capsys.readouterr().out
    # A second node figure is refused, one line, exit 2.
    proc = harness("import-power", str(run), str(log), "--utc-offset", "2")
    assert proc.returncode == 2 and "already has node-level energy" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_import_power_log_that_misses_the_window_is_one_line_exit_2(fake_run, tmp_path):
    run = shutil.copytree(fake_run, tmp_path / "run")
    marks = json.loads((run / "result.json").read_text())["timing"]["marks_unix_s"]
    log = _ptd_log(tmp_path / "ptd.txt", marks["run_start"] - 3, marks["run_stop"] + 3, 150.0, utc_offset_h=2.0)
    proc = harness("import-power", str(run), str(log))  # offset forgotten: the log is 2 h off
    assert proc.returncode == 2 and "--utc-offset" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = harness("import-power", str(tmp_path), str(log))
    assert proc.returncode == 2 and "no result.json" in proc.stderr
