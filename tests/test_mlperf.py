"""MLPerf compatibility on real tiny runs: :::MLLOG through MLCommons' checker with our rules, power logs,
olympic scoring of --runs, packages and `harness check`, and `harness compare`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import make_run, script, write_run

from harness.cli import main
from harness.mlperf import rules
from harness.mlperf.check import check_energy, check_package
from harness.mlperf.compliance import check_log, read_log
from harness.mlperf.package import build_package
from harness.mlperf.rcp import load_rcps
from harness.mlperf.scoring import olympic
from workloads.registry import WORKLOADS


@pytest.fixture(scope="module")
def run_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--workload", "switch-tiny", "--runs", "3", "--seed", "0", "--output-dir", str(out),
                 "--no-progress"]) == 0
    (set_dir,) = list(out.iterdir())
    return set_dir


def _runs(set_dir: Path) -> list[dict]:
    score = json.loads((set_dir / "score.json").read_text())
    return [json.loads((set_dir / r["dir"] / "result.json").read_text()) for r in score["runs"]]


def test_closed_rules_match_the_registered_workloads():
    for name, spec in WORKLOADS.items():
        checks = {}
        entries = yaml.safe_load(Path(rules.path(f"closed_{name}.yaml")).read_text())
        for record in entries:
            if "KEY" in record:
                key = record["KEY"]
                checks[key["NAME"]] = key.get("CHECK") or key.get("ATLEAST_ONE_CHECK")
        # The set a closed submission holds, which the RCP test, --runs and claims read (harness.mlperf.rules).
        (count,) = [e["RESULT_FILES"]["COUNT"] for e in entries if "RESULT_FILES" in e]
        assert rules.required_runs(name) == int(count) >= 3
        number = {k: float(m.group(1)) for k, c in checks.items() if (m := re.search(r"[=<]= ([0-9.e-]+) ", c))}
        assert number["global_batch_size"] == spec.batch_size
        assert number["max_sequence_length"] == spec.seq_len
        assert number["opt_base_learning_rate"] == spec.optimizer.learning_rate
        assert number["eval_samples"] == spec.corpus.eval_sequences
        assert number["eval_accuracy"] == spec.target_loss()
        if spec.model.num_experts:
            assert number["moe_aux_loss_coeff"] == spec.model.balance_coef


def test_the_shipped_rules_and_rcps_are_what_their_scripts_write(monkeypatch):
    make_rules = script("make_rules")
    for name, spec in WORKLOADS.items():
        assert Path(rules.path(f"closed_{name}.yaml")).read_text() == make_rules.rules_text(spec), name
    common = Path(rules.path("closed_common.yaml")).read_text()
    assert make_rules.closed_common_text(common) == common and repr(list(WORKLOADS)) in common
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the shipped file names its sources relative to the checkout
    assert script("make_rcps").build([Path("reference_results")]) == load_rcps()


@pytest.mark.e2e
def test_every_run_log_passes_mlcommons_checker_with_our_rules(run_set):
    score = json.loads((run_set / "score.json").read_text())
    for r in score["runs"]:
        log = run_set / r["dir"] / "mllog.txt"
        assert check_log(log) == []
        keys = {ll.key: ll for ll in read_log(log)}
        assert keys["submission_division"].value["value"] == "closed"
        assert keys["seed"].value["value"] == r["seed"]
        assert keys["moe_aux_loss_coeff"].value["value"] == WORKLOADS["switch-tiny"].model.balance_coef
        assert keys["run_stop"].value["metadata"]["status"] == "success"
        for key in ("lowest_numerical_precision_in_linear", "expert_parallelism", "micro_batch_size",
                    "config_filename", "cache_clear", "block_start", "eval_accuracy"):
            assert key in keys
        # epoch-ms timestamps that match the marks in result.json
        result = json.loads((run_set / r["dir"] / "result.json").read_text())
        assert keys["run_start"].timestamp == pytest.approx(result["timing"]["marks_unix_s"]["run_start"] * 1000)
        assert result["files"]["mllog.txt"]


@pytest.mark.e2e
def test_mlcommons_checker_command_line_with_our_config(run_set, tmp_path):
    # Exactly what a submitter would type; the config path must be absolute (the checker joins relative ones
    # onto its own folder).
    log = run_set / _runs(run_set)[0]["run_id"] / "mllog.txt"
    proc = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                           "--config", rules.common(), "--log_output", str(tmp_path / "cc.log"), str(log)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout + proc.stderr
    assert "closed_switch-tiny.yaml" in proc.stdout + proc.stderr  # our per-workload rules were applied


@pytest.mark.e2e
def test_a_doctored_non_converged_log_fails(run_set, tmp_path):
    run = _runs(run_set)[0]
    text = (run_set / run["run_id"] / "mllog.txt").read_text()
    text = re.sub(r'("key": "eval_accuracy", "value": )[0-9.e-]+', r"\g<1>9.5", text)
    text = text.replace('"status": "success"', '"status": "aborted"')
    doctored = tmp_path / "mllog.txt"
    doctored.write_text(text)
    problems = check_log(doctored)
    assert any("run_stop" in p for p in problems)
    assert any("eval_accuracy" in p and "<=" in p for p in problems)


@pytest.mark.e2e
def test_run_set_is_olympic_scored_for_time_and_energy(run_set):
    score = json.loads((run_set / "score.json").read_text())
    results = _runs(run_set)
    assert [r["seed"] for r in results] == [0, 1, 2]
    assert score["valid"] and score["complete"]
    times = [r["timing"]["run_s"] for r in results]
    energies = [r["energy"]["total_j"] for r in results]
    assert score["time_to_target_s"]["value"] == pytest.approx(sorted(times)[1])  # 3 runs: the middle one
    assert score["energy_to_target_j"]["value"] == pytest.approx(sorted(energies)[1])
    assert score["energy_method"].startswith(("modelled:", "measured:"))
    assert "verdict" in score["convergence"]


@pytest.mark.e2e
def test_package_passes_check_and_a_tampered_one_fails(run_set, tmp_path):
    root = build_package([run_set], tmp_path / "sub", "acme", "cpu-vm")
    base = root / "results" / "cpu-vm" / "switch-tiny"
    assert sorted(p.name for p in base.glob("result_*.txt")) == ["result_0.txt", "result_1.txt", "result_2.txt"]
    assert (base / "power" / "result_0" / "node_0.txt").is_file()
    assert (root / "systems" / "cpu-vm.json").is_file()
    assert check_package(tmp_path / "sub") == []
    keys = {ll.key: ll.value["value"] for ll in read_log(base / "result_0.txt")}
    assert keys["submission_org"] == "acme" and keys["submission_platform"] == "cpu-vm"
    # Tamper with a result: the manifest and the energy recomputation both catch it.
    result = base / "harness" / "result_1.json"
    data = json.loads(result.read_text())
    data["energy"]["total_j"] *= 0.5
    result.write_text(json.dumps(data))
    problems = check_package(tmp_path / "sub")
    assert any("sha256 differs" in p and "result_1.json" in p for p in problems)
    assert any("energy from the power log" in p and "result_1" in p for p in problems)
    assert main(["check", str(tmp_path / "sub")]) == 1


def _write_log(path: Path, records: list[tuple[str, float, object]]) -> None:
    lines = []
    for key, t_ms, value in records:
        value_json = json.dumps(value)
        lines.append(f':::MLLOG {{"namespace": "", "time_ms": {t_ms}, "event_type": "POINT_IN_TIME", "key": "{key}", '
                     f'"value": {value_json}, "metadata": {{"file": "x.py", "lineno": 1}}}}')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _synthetic(tmp_path: Path, readings: list[tuple[float, float]], energy_j: float,
               window=(1000.0, 11000.0), power_window=(1000.0, 11000.0)) -> Path:
    run_log = tmp_path / "result_0.txt"
    _write_log(run_log, [("run_start", window[0], None), ("run_stop", window[1], None)])
    _write_log(tmp_path / "power" / "result_0" / "node_0.txt",
               [("power_measurement_start", power_window[0], None)]
               + [("power_reading", t, w) for t, w in readings]
               + [("power_measurement_stop", power_window[1], None)])
    write_run(tmp_path / "harness", make_run("dense-tiny", run_id="synthetic", energy_j=energy_j))
    (tmp_path / "harness" / "result.json").rename(tmp_path / "harness" / "result_0.json")
    return run_log


def test_energy_checks_on_power_logs(tmp_path):
    steady = [(1000.0 + 1000 * k, 100.0) for k in range(1, 11)]  # 1 Hz, 100 W for 10 s
    assert check_energy(_synthetic(tmp_path / "ok", steady, 1000.0)) == []
    gap = [r for r in steady if not 4000 < r[0] < 8000]  # 4 s without a reading
    problems = check_energy(_synthetic(tmp_path / "gap", gap, 1000.0))
    assert any("1 gap(s) over 2 s" in p and "longest 4.0 s" in p for p in problems)
    slow = [(1000.0 + 2000 * k, 100.0) for k in range(1, 6)]  # 0.5 Hz
    assert any("below 1 Hz" in p for p in check_energy(_synthetic(tmp_path / "slow", slow, 1000.0)))
    short = _synthetic(tmp_path / "short", steady, 1000.0, power_window=(3000.0, 11000.0))
    assert any("does not cover the run window" in p for p in check_energy(short))
    assert any("differs from result_0.json" in p for p in check_energy(_synthetic(tmp_path / "e", steady, 1100.0)))


REFERENCE = Path(__file__).resolve().parents[1] / "reference_results"


@pytest.mark.e2e
def test_compare_against_reference(run_set, tmp_path, capsys):
    assert main(["compare", str(run_set), "--reference", str(REFERENCE), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["workload"] == "switch-tiny" and entry["runs"] == 3 and entry["reference_runs"] == 10
    ratios = {r["metric"]: r["ratio"] for r in entry["rows"]}
    assert ratios["samples to target"] == pytest.approx(1.0)  # tiny runs converge at the same step on every seed
    assert ratios["energy to target (J)"] > 0
    assert entry["convergence"]["implausibly_fast"] is False
    # A run is never its own reference.
    assert main(["compare", str(run_set), "--reference", str(run_set), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    # The RCP test is on your set, against the shipped reference convergence points, whatever the folder compared.
    assert entry["reference_runs"] == 0 and entry["convergence"]["implausibly_fast"] is False
    assert "the 1 olympic run(s) of 3; a set of 3" in entry["convergence"]["verdict"]
    assert main(["compare", str(run_set), "--reference", str(tmp_path / "none")]) == 2


def test_runs_must_allow_olympic_scoring(capsys):
    assert main(["run", "--workload", "switch-tiny", "--runs", "2"]) == 2
    assert "--runs must be 1, or >= 3" in capsys.readouterr().err


def test_shipped_reference_convergence_points():
    rcps = load_rcps()["workloads"]
    for name in ("switch-small", "dense-small", "switch-tiny", "dense-tiny"):
        entry = rcps[name]
        assert entry["batch_size"] == WORKLOADS[name].batch_size
        assert len(entry["samples_to_target"]) >= 3
        assert all(s % entry["batch_size"] == 0 for s in entry["samples_to_target"])
    assert olympic([3.0, 1.0, 2.0]).value == 2.0


def test_package_of_nothing_is_one_line_exit_2(tmp_path, capsys):
    assert main(["package", str(tmp_path), "--org", "acme", "--system", "x"]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert main(["package", str(tmp_path), "--org", "a b", "--system", "x"]) == 2
    assert main(["package", str(tmp_path), "--org", "acme", "--system", "x", "--status", "bogus"]) == 2
    assert "--status must be one of" in capsys.readouterr().err
    shutil.rmtree(tmp_path)
