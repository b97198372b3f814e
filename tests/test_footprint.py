"""The seed paper's carbon arithmetic: footprint from inputs, its tables recomputed, what-ifs and the 4M split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_run, write_run

from harness.carbon.jobs import job_footprint
from harness.carbon.paper import recompute, running_example
from harness.cli import main
from harness.report.whatif import four_m_results, reprice
from harness.results.reader import read_record


def _json(capsys, argv: list[str]):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_footprint_formula_on_a_hand_computed_job(capsys):
    out = _json(capsys, ["footprint", "--chips", "8", "--days", "1", "--watts", "300", "--pue", "1.1",
                         "--intensity", "0.5", "--net-intensity", "0.1", "--json"])
    assert out["kwh"] == pytest.approx(24 * 8 * 300 * 1.1 / 1000)  # 63.36 kWh
    assert out["gross_tco2e"] == pytest.approx(63.36 * 0.5 / 1000)
    assert out["net_tco2e"] == pytest.approx(63.36 * 0.1 / 1000)
    assert "63.360" in out["formula"][0]
    region = job_footprint(4, 10, 250, region="us-average")
    assert region["kwh"] == pytest.approx(10 * 4 * 250 * 1.58 / 1000)
    assert region["gross_tco2e"] == pytest.approx(region["kwh"] * 0.429 / 1000)


def test_embodied_carbon_is_apart_and_needs_a_source(capsys):
    out = job_footprint(8, 876.6, 300, pue=1.1, intensity=0.4, embodied_kg_per_chip_year=1000,
                        embodied_source="vendor LCA")
    assert out["embodied"]["kg_co2e"] == pytest.approx(1000 * 8 * 876.6 / 8766)  # a tenth of a year on 8 chips
    assert "estimate" in out["embodied"]["label"]
    assert out["gross_tco2e"] == pytest.approx(out["kwh"] * 0.4 / 1000)  # operational figure unchanged
    assert main(["footprint", "--chips", "8", "--hours", "1", "--watts", "300", "--pue", "1.1", "--intensity", "0.4",
                 "--embodied", "1000"]) == 2
    assert "--embodied-source" in capsys.readouterr().err


def test_paper_table_4_recomputed_within_published_precision():
    rows = {r["run"]: r for r in recompute()}
    table4 = [r for r in rows.values() if r["table"] == "4"]
    assert {r["run"] for r in table4} == {"t5", "meena", "gshard-600b", "switch-transformer", "gpt-3",
                                          "evolved-transformer-nas"}
    for r in table4:
        assert abs(r["diff_pct"]["mwh"]) < 1.0, r["run"]
        assert all(r["agrees"].values()), r["run"]
    # Computed from the inputs, not copied: GPT-3 is 14.8 d x 24 h x 10,000 V100 x 330 W x PUE 1.1.
    assert rows["gpt-3"]["computed"]["mwh"] == pytest.approx(14.8 * 24 * 10_000 * 330 * 1.1 / 1e6)


def test_running_example_reproduces_the_papers_57x():
    f = running_example()
    assert round(f.product) == 57
    assert f.product == pytest.approx(f.total)  # the four factors multiply back to the direct ratio
    assert f.mechanization == pytest.approx(1.59 / 1.11) and f.map == pytest.approx(0.429 / 0.080)


def test_footprint_paper_command(capsys):
    out = _json(capsys, ["footprint", "--paper", "--json"])
    assert len(out["runs"]) == 10 and round(out["running_example_4m"]["product"]) == 57
    assert main(["footprint", "--paper"]) == 0
    text = capsys.readouterr().out
    assert "gshard-600b" in text and "56.54x" in text


def _result(tmp_path: Path, name: str, workload: str, energy_j: float, region: str = "us-average",
            device: str = "cpu") -> Path:
    return write_run(tmp_path / name, make_run(workload, run_id=name, energy_j=energy_j, region=region,
                                               device=device))



def test_whatif_reprices_measured_energy_and_labels_a_processor_swap(tmp_path, capsys):
    path = _result(tmp_path, "r1", "switch-small", 3.6e6, device="Tesla P100-PCIE-16GB")  # 1 kWh at the node
    (out,) = _json(capsys, ["whatif", str(path), "--region", "europe-north1", "--json"])
    assert out["measured"]["energy_j"] == 3.6e6
    assert out["repriced"]["co2e_gross_kg"] == pytest.approx(1.09 * 0.03932)
    assert "energy still measured" in out["repriced"]["label"]
    swap = reprice(read_record(path), "us-average", processor="TPU v2")
    assert swap["processor"]["from"] == "P100"  # detected from the device name
    assert swap["processor"]["energy_j"] == pytest.approx(3.6e6 * 0.1623)
    assert swap["processor"]["label"].startswith("modelled:")
    assert main(["whatif", str(path), "--region", "us-average", "--processor", "V100"]) == 2
    assert "no published energy-per-work figure for V100" in capsys.readouterr().err
    assert main(["whatif", str(path), "--region", "us-average", "--processor", "Z80"]) == 2


def test_four_m_from_measured_results_multiplies_back(tmp_path, capsys):
    dense = _result(tmp_path, "d", "dense-small", 8.0e6, region="us-average")
    sparse = _result(tmp_path, "s", "switch-small", 1.0e6, region="europe-north1")
    out = _json(capsys, ["whatif", "--4m", str(dense), str(sparse), "--machine-factor", "2",
                         "--machine-source", "test ratio", "--json"])
    assert out["model"] == pytest.approx(8.0)
    assert out["machine"] == 2.0
    assert out["mechanization"] == pytest.approx(1.58 / 1.09)
    assert out["map"] == pytest.approx(0.429 / 0.03932)
    assert out["product"] == pytest.approx(out["total"])
    assert out["before_kg"] == pytest.approx(8.0e6 / 3.6e6 * 1.58 * 0.429)
    assert "measured" in out["labels"]["model"] and "test ratio" in out["labels"]["machine"]
    f = four_m_results([read_record(dense)], [read_record(sparse)], from_processor="P100",
                       to_processor="TPU v2")
    assert f.machine == pytest.approx(1 / 0.1623) and f.product == pytest.approx(f.total)
    assert main(["whatif", "--4m", str(dense), str(sparse), "--machine-factor", "2"]) == 2


@pytest.mark.parametrize("argv, needle", [
    (["footprint", "--chips", "8", "--hours", "-1", "--watts", "300", "--region", "us-average"], "--hours"),
    (["footprint", "--chips", "8", "--hours", "1", "--watts", "300", "--region", "atlantis"], "unknown region"),
    (["footprint", "--chips", "8", "--hours", "1", "--watts", "300", "--pue", "0.9", "--intensity", "0.4"], "pue"),
    (["footprint", "--chips", "8", "--hours", "1", "--watts", "300"], "exactly one of --region"),
    (["footprint", "--chips", "8", "--hours", "1", "--days", "1", "--watts", "300", "--region", "us-average"],
     "not both"),
    (["whatif", "x"], "--region"),
])
def test_bad_carbon_input_is_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_regions_lists_processors_with_sources(capsys):
    assert main(["regions"]) == 0
    out = capsys.readouterr().out
    assert "TPU v2" in out and "0.1623" in out and "Patterson et al. 2021" in out


def test_schedule_command_on_the_shipped_example(capsys):
    from harness.carbon.schedule import example_profile_path

    out = _json(capsys, ["schedule", "--hours", "6", "--profile", str(example_profile_path()), "--watts", "10000",
                         "--json"])
    assert out["best"]["region"] == "europe-north1"
    assert out["baseline"]["region"] == "us-central1" and out["saving_kg"] > 0
    assert out["best"]["energy_kwh"] == pytest.approx(60.0)
    assert main(["schedule", "--hours", "-2", "--profile", str(example_profile_path()), "--watts", "10"]) == 2
    assert main(["schedule", "--hours", "2", "--profile", "/nonexistent.csv", "--watts", "10"]) == 2


def test_table_4_total_computation_is_chips_times_days_times_measured_rate():
    from harness.carbon.paper import load_runs

    runs = [r for r in load_runs().values() if r.total_flops is not None]
    assert [r.run for r in runs] == ["t5", "meena", "gshard-600b", "switch-transformer", "gpt-3"]
    for r in runs:
        assert r.chips * r.days * 86400 * r.tflops_per_chip * 1e12 == pytest.approx(r.total_flops, rel=0.02), r.run
