"""End-to-end `harness run` on the tiny workloads, and bad input: one line, exit code 2, no traceback."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import harness, only_result, only_run_dir

from harness.cli import main
from harness.results.files import sha256_file

REFERENCE = Path(__file__).resolve().parents[1] / "reference_results"


@pytest.mark.e2e
@pytest.mark.parametrize("workload", ["dense-tiny", "switch-tiny"])
def test_run_tiny_end_to_end(tmp_path, capsys, workload):
    # In-process: `python -m harness.cli run` in a fresh process is test_step_budget_gives_not_converged's.
    code = main(["run", "--workload", workload, "--output-dir", str(tmp_path), "--no-progress"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    r = only_result(tmp_path)
    run_dir = only_run_dir(tmp_path)
    assert r["schema"] == "harness.result/3" and r["kind"] == "run" and r["files_missing"] == {}
    assert r["status"] == "converged"
    assert r["training"]["best_eval_loss"] <= r["target"]["target_loss"]
    assert r["target"]["target_loss"] == pytest.approx(r["target"]["entropy_floor"] + r["spec"]["target_margin"])
    # The timed window excludes init, and the last eval point lies inside it.
    marks = r["timing"]["marks_unix_s"]
    assert marks["init_start"] < marks["init_stop"] <= marks["run_start"] < marks["run_stop"]
    assert r["eval_trace"][-1]["elapsed_s"] <= r["timing"]["run_s"]
    # Energy: modelled here (no RAPL on CI), said so on every component, positive, apart from init.
    en = r["energy"]
    assert en["total_j"] > 0 and en["init_j"] > 0
    for comp in en["components"].values():
        assert comp["method"] in ("measured:rapl", "modelled:cpu-tdp-utilization")
    if en["method"].startswith("modelled"):
        assert any(u["name"] == "rapl" for u in en["unavailable"])
    for u in en["unavailable"]:  # each meter not used is said once, beside the energy it would have measured
        assert stdout.count(f"not used: {u['name']}") == 1, stdout
    # CO2e follows from the energy: default region us-average, PUE 1.58, 0.429 kg/kWh.
    co = r["carbon"]
    assert co["facility_kwh"] == pytest.approx(en["total_j"] / 3.6e6 * 1.58)
    assert co["co2e_gross_kg"] == pytest.approx(co["facility_kwh"] * 0.429)
    # Traces exist, hash as recorded, and power was sampled at >= 10 Hz.
    for name, digest in r["files"].items():
        assert sha256_file(run_dir / name) == digest
    with open(run_dir / "power.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 5 and en["sampler"]["achieved_hz"] >= 10
    assert len(r["data"]["eval_sha256"]) == 64
    assert r["training"]["params_total"] >= r["training"]["params_activated"]
    if workload.startswith("switch"):
        assert r["training"]["params_total"] > r["training"]["params_activated"]
        assert 0 <= r["training"]["dropped_fraction_mean"] < 1
        with open(run_dir / "steps.csv") as f:
            step_row = next(csv.DictReader(f))
        assert "load_l0_e0" in step_row and "dropped_fraction" in step_row
    assert r["environment"]["software"]["packages"]["jax"]


@pytest.mark.e2e
def test_step_budget_gives_not_converged(tmp_path):
    proc = harness("run", "--workload", "dense-tiny", "--max-steps", "3", "--output-dir", str(tmp_path),
                   "--no-progress", "--meter", "fake")
    assert proc.returncode == 1
    r = only_result(tmp_path)
    assert r["status"] == "not_converged"
    assert r["timing"]["time_to_target_s"] is None
    assert r["energy"]["method"] == "fake:synthetic"
    assert "NOT reached" in proc.stdout


@pytest.mark.e2e
def test_user_data_text_file(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400, encoding="utf-8")
    assert main(["run", "--workload", "dense-tiny", "--data", str(text), "--target-loss", "3.0", "--output-dir",
                 str(tmp_path / "out"), "--no-progress", "--meter", "fake"]) == 0
    r = only_result(tmp_path / "out")
    assert r["data"]["kind"] == "user-file" and r["data"]["vocab_size"] == 256
    assert r["target"]["target_loss"] == 3.0 and r["status"] == "converged"


@pytest.mark.e2e
def test_user_data_npy(tmp_path):
    ids = np.tile(np.arange(20, dtype=np.int64), 300)
    np.save(tmp_path / "ids.npy", ids)
    assert main(["run", "--workload", "dense-tiny", "--data", str(tmp_path / "ids.npy"), "--target-loss", "1.5",
                 "--output-dir", str(tmp_path / "out"), "--no-progress", "--meter", "fake"]) == 0
    assert only_result(tmp_path / "out")["data"]["vocab_size"] == 20


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--workload", "nope"], "valid: dense-small"),
        (["run", "--workload", "dense-tiny", "--seed", "-1"], "--seed"),
        (["run", "--workload", "dense-tiny", "--max-steps", "-5"], "--max-steps"),
        (["run", "--workload", "dense-tiny", "--pue", "0.5"], "pue"),
        (["run", "--workload", "dense-tiny", "--region", "mars"], "valid"),
        (["run", "--workload", "dense-tiny", "--carbon-intensity", "-1"], "intensity"),
        (["run", "--workload", "dense-tiny", "--cpu-tdp", "-3"], "--cpu-tdp"),
        (["run", "--workload", "dense-tiny", "--data", "/no/such/file.txt", "--target-loss", "2"], "no such file"),
        (["run", "--workload", "dense-tiny", "--data", "/no/such/file.txt"], "--target-loss"),
        (["run", "--workload", "switch-small", "--data", "{tmp}/bad.npy", "--target-loss", "1"], "not a .npy file"),
        (["run", "--workload", "dense-tiny", "--corpus", "other"], "default, control"),
        (["run", "--workload", "switch-text", "--corpus", "control"], "switch-text has no control corpus"),
        (["study", "--workloads", "dense-text,switch-text", "--corpus", "control"], "has no control corpus"),
        (["run", "--workload", "dense-tiny", "--seed", "abc"], "invalid int"),
        (["run"], "--workload"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, capsys, args, needle):
    # In-process: argparse and validation errors must surface before any training or jax compilation.
    (tmp_path / "bad.npy").write_bytes(b"0123456789")  # ten garbage bytes named .npy
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] in ("run", "study") and len(args) > 1:
        args = [*args, "--output-dir", str(tmp_path)]
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error:") and needle in lines[0]
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*/result.json"))  # nothing half-done left behind


@pytest.mark.e2e
def test_list_shows_every_workload():
    proc = harness("list")
    assert proc.returncode == 0
    for name in ("dense-small", "switch-small", "dense-tiny", "switch-tiny"):
        assert name in proc.stdout


# `python -m harness.cli` with Ctrl-C's default handler put back first: a shell starts background jobs (`cmd &`,
# some CI runners) with SIGINT ignored, Python keeps an inherited SIG_IGN, and a SIGINT sent to the run would do
# nothing. Set in the child, before the harness arms its own handlers; the parent's handlers are left alone.
CLI_WITH_CTRL_C = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                   "runpy.run_module('harness.cli', run_name='__main__', alter_sys=True)")


@pytest.mark.e2e
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_interrupted_run_leaves_valid_aborted_result(tmp_path, sig):
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_WITH_CTRL_C, "run", "--workload", "dense-tiny", "--max-steps", "100000",
         "--target-loss", "0.01", "--output-dir", str(tmp_path), "--meter", "fake"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    # The plain progress line of the first eval means the timed window is open.
    for line in proc.stderr:
        if line.startswith("step"):
            break
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    r = only_result(tmp_path)
    assert r["status"] == "aborted"
    assert r["energy"]["window"] == "run_start..aborted" and r["energy"]["total_j"] > 0
    assert r["training"]["steps"] > 0 and r["eval_trace"]
    # The :::MLLOG file is written too, and says the run did not succeed.
    mllog = only_run_dir(tmp_path) / "mllog.txt"
    assert '"key": "run_stop"' in mllog.read_text() and '"status": "aborted"' in mllog.read_text()
    assert r["files"]["mllog.txt"]


@pytest.mark.e2e
def test_a_run_priced_with_its_own_region_pue_and_intensities(tmp_path, capsys):
    assert main(["run", "--workload", "switch-tiny", "--meter", "fake", "--no-progress", "--output-dir", str(tmp_path),
                 "--region", "europe-north1", "--pue", "1.2", "--carbon-intensity", "0.2",
                 "--net-carbon-intensity", "0.05"]) == 0
    r = only_result(tmp_path)
    co, joules = r["carbon"], r["energy"]["total_j"]
    assert co["region"] == "europe-north1" and co["pue"] == 1.2
    assert co["gross_kg_per_kwh"] == 0.2 and co["net_kg_per_kwh"] == 0.05
    assert co["overrides"] == {"pue": 1.2, "carbon_intensity": 0.2, "net_intensity": 0.05}
    assert co["co2e_gross_kg"] == pytest.approx(joules / 3.6e6 * 1.2 * 0.2)
    assert co["co2e_net_kg"] == pytest.approx(joules / 3.6e6 * 1.2 * 0.05)
    assert "region europe-north1 (PUE 1.2, 0.2 kgCO2e/kWh)" in capsys.readouterr().out
    with open(tmp_path / "emissions.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["pue"]) == 1.2 and row["region"] == "europe-north1"
    # The region alone: its own PUE and intensities, with its source.
    assert main(["run", "--workload", "dense-tiny", "--meter", "fake", "--no-progress", "--output-dir",
                 str(tmp_path / "region"), "--region", "europe-north1"]) == 0
    co = only_result(tmp_path / "region")["carbon"]
    assert co["pue"] == 1.09 and co["overrides"] == {} and co["sources"]["pue"].startswith("region europe-north1:")


@pytest.mark.e2e
def test_compare_outside_a_checkout_uses_the_installed_references(tmp_path, monkeypatch, capsys, switch_tiny_run):
    # Outside a checkout it said "--reference reference_results: not a directory".
    shutil.copytree(switch_tiny_run.parent, tmp_path / "results")  # a switch-tiny run's output folder
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["compare", "results"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"reference: {REFERENCE}" and "reference run(s)" in out


@pytest.mark.e2e
def test_package_takes_a_shell_glob_of_a_results_folder(tmp_path, capsys, switch_tiny_run):
    # `results/*` also matches emissions.csv, which every run appends to: it is passed over, and said.
    shutil.copytree(switch_tiny_run.parent, tmp_path / "results")  # seed 0's output folder; seed 1 joins it
    assert main(["run", "--workload", "switch-tiny", "--meter", "fake", "--no-progress", "--seed", "1",
                 "--output-dir", str(tmp_path / "results")]) == 0
    assert main(["meter", "--meter", "fake", "--output-dir", str(tmp_path / "results"), "--", "true"]) == 0
    paths = sorted(str(p) for p in (tmp_path / "results").iterdir())
    capsys.readouterr()
    assert main(["package", *paths, "--org", "acme", "--system", "vm", "--output-dir", str(tmp_path / "pkg")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped 1 file(s) that are not run directories: emissions.csv" in out
    assert "skipped 1 record(s), each a metered command record (harness meter) (true): not MLPerf training runs" in out
    assert len(list((tmp_path / "pkg" / "acme" / "results" / "vm" / "switch-tiny").glob("result_*.txt"))) == 2


def test_list_json_prints_every_spec_for_scripts(capsys):
    from workloads.registry import WORKLOADS
    from workloads.specs import spec_sha256

    assert main(["list", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(listed) == set(WORKLOADS)
    for name, spec in WORKLOADS.items():
        d = listed[name]
        assert d["spec_sha256"] == spec_sha256(spec.to_dict()) and d["model"]["d_model"] == spec.model.d_model
        assert d["target"]["default"] == pytest.approx(spec.target_loss()) and d["sized_for"] == spec.sized_for
        assert d["params"]["total"] > d["params"]["activated"] or not spec.model.num_experts
        if "text" in name:  # real text: its source and licence named, no floor, no control corpus
            source = d["corpora"]["default"]["source"]
            assert "King James" in source and "SOURCES.md" in source
            assert d["corpora"]["default"]["entropy_floor_nats"] is None and set(d["corpora"]) == {"default"}
            assert d["target"]["margin_nats"] is None and d["model"]["vocab_size"] == 256
        else:
            assert "procedural" in d["corpora"]["default"]["source"] and set(d["corpora"]) == {"default", "control"}
