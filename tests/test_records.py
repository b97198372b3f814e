"""The one typed result record: every shape ever written loads, derived figures follow the one energy, and
the misreadings the untyped dict gave are gone (each test below failed on the dict-reading code)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_run, write_run

from harness.cli import main
from harness.mlperf.runset import score_runs
from harness.report.build import build_report
from harness.report.whatif import reprice
from harness.results.encoding import from_json, to_json
from harness.results.reader import ResultReadError, load, read_record, read_records
from harness.results.schema import SCHEMA, CommandRecord, RunRecord, Status

REFERENCE = Path(__file__).resolve().parents[1] / "reference_results"


def test_every_shipped_reference_result_loads_and_round_trips():
    from harness.results.inference import InferenceRecord

    records = read_records(REFERENCE)
    runs = [r for r in records if isinstance(r, RunRecord)]
    served = [r for r in records if isinstance(r, InferenceRecord)]
    assert len(runs) >= 90 and len(served) >= 60 and len(runs) + len(served) == len(records)
    for r in records:
        again = from_json(json.loads(json.dumps(to_json(r))))
        assert again == replace(r, status=r.recorded_status or r.status), r.source
    old = next(r for r in records if "nvidia-h200" in str(r.source))  # a /1 record from before the seam
    assert old.environment.hardware.backend == "gpu" and old.framework == "jax"
    assert old.spec["optimizer"]["epsilon"] == 1e-8


def test_an_aborted_runs_efficiency_is_over_a_synchronised_window_or_left_out():
    # On disk this record says MFU 1.005: FLOPs of 50 steps dispatched but never waited for, over 0.6 s.
    path = REFERENCE / "nvidia-h100" / "base" / "failed-prefetch-thread-1.json"
    assert json.loads(path.read_text())["efficiency"]["mfu"] > 1.0
    r = read_record(path)
    assert r.status == Status.ABORTED and r.mfu is None and r.model_flops_per_s is None
    assert "aborted before its first evaluation" in r.mfu_reason
    # An aborted run with evaluations: its figures stop at the last one, where the device work was waited for.
    run = make_run("switch-tiny", status="aborted", run_s=10.0, steps=60)
    point = replace(run.eval_trace[0], step=40, tokens=40 * 16 * 32, eval_stop_unix_s=1001.0 + 6.0, energy_j=60.0)
    upgraded = load(to_json(replace(run, eval_trace=(point,), work=None)) | {
        "schema": "harness.result/1", "efficiency": {"model_flops": 9e12, "peak_flops_per_s": None}}, path)
    assert upgraded.work.window == "run_start..eval_40" and upgraded.work.seconds == pytest.approx(6.0)
    assert upgraded.tokens_per_j == pytest.approx(40 * 16 * 32 / 60.0)  # the energy at that evaluation


def test_derived_figures_follow_the_one_energy():
    r = make_run(energy_j=100.0)
    double = replace(r, energy=replace(r.energy, total_j=200.0))
    assert double.tokens_per_j == pytest.approx(r.tokens_per_j / 2)
    assert double.model_flops_per_j == pytest.approx(r.model_flops_per_j / 2)
    assert double.co2e_gross_kg == pytest.approx(2 * r.co2e_gross_kg)
    assert double.j_per_token == pytest.approx(2 * r.j_per_token)
    written = to_json(double)
    assert written["efficiency"]["tokens_per_j"] == pytest.approx(double.tokens_per_j)
    assert written["carbon"]["co2e_gross_kg"] == pytest.approx(double.co2e_gross_kg)
    # Derived figures written to the JSON are never read back: an edited one changes nothing.
    written["efficiency"]["tokens_per_j"] = 1e9
    assert from_json(written).tokens_per_j == pytest.approx(double.tokens_per_j)


def test_an_incomplete_energy_is_never_ranked():
    r = make_run(complete=False, energy_j=None)
    assert r.converged and r.energy_to_target_j is None and r.tokens_per_j is None and r.co2e_gross_kg is None
    assert "incomplete" in r.energy.why_not_ranked() and not r.complete
    partial = make_run(complete=False, energy_j=50.0)  # a figure, but a lower bound
    assert partial.energy_to_target_j is None and partial.tokens_per_j is None and partial.co2e_to_target_kg is None
    assert partial.co2e_gross_kg is not None  # what was metered is still priced, and flagged


def test_report_of_a_converged_run_without_an_energy_figure(tmp_path):
    # `report` formatted the None as a number (TypeError) on a converged run whose energy was incomplete.
    write_run(tmp_path / "a", make_run(complete=False, energy_j=None, run_id="a"))
    write_run(tmp_path / "b", make_run(run_id="b", seed=1))
    md, _ = build_report([tmp_path], tmp_path / "report")
    text = md.read_text()
    assert "2: 2 converged" in text and "1 converged run(s) with an INCOMPLETE figure, not ranked" in text


def test_a_run_set_never_scores_an_incomplete_energy():
    # --runs 3 used to put incomplete energies into the olympic energy score and exit 0.
    runs = [make_run(seed=s, energy_j=100.0 + s, run_s=10.0 + s) for s in range(3)]
    runs[1] = replace(runs[1], energy=replace(runs[1].energy, complete=False))
    score = score_runs(runs, ["a", "b", "c"])
    assert score["energy_not_ranked"] == ["b"]
    # b counts as the slowest and is dropped with the lowest (a): the score is c alone.
    assert score["energy_to_target_j"]["value"] == pytest.approx(102.0)
    assert score["problems"] and "energy figure incomplete" in score["problems"][0]
    assert score["time_to_target_s"]["value"] == pytest.approx(11.0)


def test_whatif_keeps_the_energys_own_word(tmp_path):
    modelled = make_run(method="modelled:cpu-tdp-utilization")
    out = reprice(modelled, "europe-north1")
    assert "energy still modelled" in out["repriced"]["label"] and "measured" not in out["repriced"]["label"]
    mixed = reprice(make_run(method="measured:nvml-energy-counter+modelled:cpu-tdp-utilization"), "us-average")
    assert "partly modelled" in mixed["repriced"]["label"]
    assert reprice(make_run(), "us-average")["caveats"] == []


def test_a_metered_command_in_a_folder_of_runs_is_passed_over_in_one_line(tmp_path, capsys):
    # One `harness meter` into results/ made `harness compare results` fail on its command record.
    write_run(tmp_path / "runs" / "a", make_run(run_id="a"))
    command = CommandRecord(**{k: getattr(make_run(), k) for k in ("created_unix_s", "status", "timing", "energy",
                                                                   "carbon", "environment")},
                            run_id="cmd", workload="train.py", command=("python", "train.py"), exit_code=0)
    write_run(tmp_path / "runs" / "cmd", replace(command, status=Status.COMPLETED))
    (tmp_path / "runs" / "emissions.csv").write_text("timestamp\n")
    assert main(["compare", str(tmp_path / "runs"), "--reference", str(tmp_path / "runs")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skipped 1 record(s), each a metered command record (harness meter) (train.py): not training runs" in out
    md, _ = build_report([tmp_path / "runs"], tmp_path / "rep")
    assert "Metered commands" in md.read_text() and "train.py" in md.read_text()


def test_the_command_record_of_before_reads_as_a_command(tmp_path):
    r = make_run()
    old = {"schema": "harness.command/1", "run_id": "m", "workload": "x", "command": ["x"], "status": "interrupted",
           "exit_code": 130, "signals_forwarded": ["SIGINT"], "timing": {"run_s": 1.0, "marks_unix_s": {}},
           "energy": to_json(r)["energy"], "carbon": to_json(r)["carbon"], "environment": to_json(r)["environment"],
           "files": {}}
    c = load(old, tmp_path / "result.json")
    assert isinstance(c, CommandRecord) and c.status == Status.ABORTED and c.status.final


def test_a_newer_schema_is_refused_by_name(tmp_path):
    data = to_json(make_run()) | {"schema": "harness.result/4"}
    with pytest.raises(ResultReadError, match="harness.result/4 is not one this harness reads"):
        load(data, tmp_path / "result.json")
    assert to_json(make_run())["schema"] == SCHEMA == "harness.result/3"


def test_importing_the_schema_loads_no_framework():
    heavy = ("jax", "tensorflow", "flax", "numpy", "rich", "matplotlib")
    code = ("import sys, harness.results.schema, harness.results.reader\n"
            f"print([m for m in {heavy} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_flag_of_every_command_says_what_it_is():
    import argparse

    from harness.cli import _build_parser

    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in sub.choices.items()
              for a in p._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert silent == []


@pytest.mark.e2e
def test_a_run_with_its_traces_packed_reads_checks_reports_and_sites_as_before(tmp_path, switch_tiny_run):
    """Reference folders keep long traces gzipped (scripts/pack_traces.py): every reader finds them packed."""
    import shutil

    from conftest import script

    from harness.mlperf.check import check_run_or_set
    from harness.results.files import sha256_file

    run = tmp_path / "runs" / switch_tiny_run.name
    shutil.copytree(switch_tiny_run, run)
    r = read_record(run)
    packed = {n: d for n, d in r.files.items() if n in script("pack_traces").PACKABLE}
    assert set(packed) == {"steps.csv", "mllog.txt", "power_mllog.txt"}
    for name, digest in packed.items():
        assert script("pack_traces").pack(run, name, digest, min_bytes=0) > 0
        assert not (run / name).exists() and (run / f"{name}.gz").is_file()
    read_record(run, verify_files=True)  # every listed trace found, and hashing as recorded
    assert check_run_or_set(run) == []
    md, _ = build_report([tmp_path / "runs"], tmp_path / "report")
    assert (tmp_path / "report" / "routing.png").is_file()  # drawn from the packed steps.csv
    assert main(["site", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "site")]) == 0
    (copied,) = (tmp_path / "site").rglob("steps.csv")  # served unpacked, as the record hashed it
    assert sha256_file(copied) == packed["steps.csv"]
    (run / "steps.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(ResultReadError):
        read_record(run, verify_files=True)
