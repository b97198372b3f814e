"""Study statistics on known answers, interleaving, and a tiny study end-to-end with its report."""

import json
import math
import shutil
import statistics
import struct

import pytest
from conftest import only_run_dir

from harness.cli import main
from harness.errors import UsageError
from harness.report.stats import paired_ratio_ci
from harness.study.run import interleaved_order, parse_sweep, resolve_specs


def test_ratio_two_with_zero_noise_has_interval_two_two():
    ci = paired_ratio_ci([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    assert (ci.ratio, ci.lo, ci.hi) == (2.0, 2.0, 2.0)
    assert ci.significant


def test_noisy_ratio_around_one_is_not_significant():
    ci = paired_ratio_ci([1.2, 0.8, 1.1, 0.9], [1.0, 1.0, 1.0, 1.0])
    assert ci.lo < 1.0 < ci.hi and not ci.significant
    assert "NOT significant" in ci.verdict("energy")


def test_clear_ratio_with_noise_brackets_the_truth():
    ci = paired_ratio_ci([5.3, 6.2, 9.8, 6.0, 7.1], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert ci.lo > 1.0 and ci.lo <= ci.ratio <= ci.hi
    assert ci.ratio == pytest.approx(6.7214, rel=1e-4)  # the geometric mean of the per-seed ratios


def test_small_n_uses_a_t_interval_that_matches_scipy_and_large_n_a_bootstrap():
    from scipy import stats

    a, b = [10.0, 12.0, 11.0], [5.0, 5.5, 5.0]
    ci = paired_ratio_ci(a, b)
    logs = [math.log(x / y) for x, y in zip(a, b, strict=True)]
    lo, hi = stats.t.interval(0.95, 2, loc=statistics.mean(logs), scale=statistics.stdev(logs) / math.sqrt(3))
    assert (ci.lo, ci.hi) == (pytest.approx(math.exp(lo)), pytest.approx(math.exp(hi)))
    assert "t, paired, n=3 seeds" in ci.verdict("energy") and ci.method.startswith("Student t")
    # With 3 seeds a t interval is wider than a 3-seed bootstrap's would be: that is the point.
    assert ci.hi - ci.lo > 0.2
    big = paired_ratio_ci([2.0 + 0.01 * i for i in range(12)], [1.0] * 12)
    assert big.method.startswith("percentile bootstrap") and big.lo < big.ratio < big.hi


def test_single_pair_gives_point_without_interval():
    ci = paired_ratio_ci([3.0], [1.0])
    assert ci.n == 1 and "no interval" in ci.verdict("x")


def test_interleaving_order():
    assert interleaved_order(["a", "b"], 3) == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_sweep_parsing_and_variants():
    assert parse_sweep("experts=2,4,8") == ("experts", [2, 4, 8])
    for bad in ("experts=", "layers=2", "experts=a,b"):
        with pytest.raises(UsageError):
            parse_sweep(bad)
    specs, sweep = resolve_specs(["dense-tiny", "switch-tiny"], "experts=2,8")
    assert [s.name for s in specs] == ["dense-tiny", "switch-tiny-e2", "switch-tiny-e8"]
    assert [s.model.num_experts for s in specs] == [0, 2, 8]
    assert sweep["base"] == "switch-tiny"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.e2e
def test_tiny_study_end_to_end_writes_every_file(tmp_path):
    code = main(["study", "--workloads", "dense-tiny,switch-tiny", "--seeds", "2", "--output-dir", str(tmp_path),
                 "--meter", "fake"])
    assert code == 0
    # Both corpora by default: the control is always part of the report.
    studies = sorted(tmp_path.glob("*-study-*/*/study.json"))
    assert {json.loads(p.read_text())["corpus"] for p in studies} == {"default", "control"}
    (study_dir,) = tmp_path.glob("*-study-*")  # the campaign: one folder, the report at its top
    for path in studies:
        study = json.loads(path.read_text())
        assert study["status"] == "complete"
        assert study["order"] == ["dense-tiny/seed0", "switch-tiny/seed0", "dense-tiny/seed1", "switch-tiny/seed1"]
    for name in ("report.md", "report.html", "comparisons.json", "loss_vs_energy.png", "loss_vs_time.png",
                 "power.png", "routing.png"):
        assert (study_dir / name).is_file(), name
    for png in study_dir.glob("*.png"):
        width, height = _png_size(png)
        assert width >= 400 and height >= 300 and png.stat().st_size > 10_000
    html = (study_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # self-contained
    md = (study_dir / "report.md").read_text()
    assert "fake:synthetic" in md and "dense-tiny ÷ switch-tiny" in md and "95% CI" in md
    comparisons = json.loads((study_dir / "comparisons.json").read_text())
    assert {c["corpus"] for c in comparisons} == {"default", "control"}
    assert comparisons[0]["pairs_total"] == 2 and "energy_to_target" in comparisons[0]
    # The campaign folder the study printed is what `harness report` takes to build the report again.
    assert main(["report", str(study_dir), "--output-dir", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "report.md").read_text()
    assert again.count("÷") == md.count("÷") and "| dense-tiny (control corpus) |" in again


@pytest.mark.e2e
def test_an_expert_sweep_of_one_switch_workload_runs(tmp_path):
    # Its first entry is a variant no registry holds (switch-tiny-e2): the campaign's checks take the spec itself.
    assert main(["study", "--workloads", "switch-tiny", "--sweep", "experts=2,4", "--seeds", "1", "--corpus",
                 "default", "--meter", "fake", "--no-weights", "--output-dir", str(tmp_path)]) == 0
    (campaign,) = tmp_path.glob("*-study-*")
    study = json.loads((campaign / "default" / "study.json").read_text())
    assert study["workloads"] == ["switch-tiny-e2", "switch-tiny-e4"] and study["sweep"]["values"] == [2, 4]
    assert all(len(runs) == 1 for runs in study["runs"].values())


@pytest.mark.e2e
def test_a_study_on_the_users_own_text_priced_as_asked(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400, encoding="utf-8")
    code = main(["study", "--workloads", "dense-tiny,switch-tiny", "--seeds", "1", "--data", str(text),
                 "--target-loss", "3.0", "--pue", "1.1", "--carbon-intensity", "0.3", "--sample-hz", "25",
                 "--meter", "fake", "--no-weights", "--output-dir", str(tmp_path / "out")])
    assert code == 0
    (campaign,) = (tmp_path / "out").glob("*-study-*")
    options = json.loads((campaign / "campaign.json").read_text())["options"]
    assert options["pue"] == 1.1 and options["carbon_intensity"] == 0.3 and options["sample_hz"] == 25
    assert options["data"] == str(text.resolve()) and options["target_loss"] == 3.0
    assert options["keep_weights"] is False and not list(campaign.rglob("weights.npz"))
    study = json.loads((campaign / "user-data" / "study.json").read_text())
    for run in study["runs"].values():
        r = json.loads((campaign / "user-data" / run[0] / "result.json").read_text())
        assert r["data"]["kind"] == "user-file" and r["target"]["target_loss"] == 3.0
        assert r["carbon"]["pue"] == 1.1 and r["carbon"]["gross_kg_per_kwh"] == 0.3
        assert r["energy"]["sampler"]["target_hz"] == 25
    assert main(["study", "--data", str(text), "--target-loss", "3", "--corpus", "control"]) == 2


@pytest.mark.e2e
def test_report_from_run_dirs_and_bad_paths(tmp_path, capsys, switch_tiny_run):
    shutil.copytree(switch_tiny_run.parent, tmp_path / "runs")  # a run's output folder, as `harness run` left it
    run_dir = only_run_dir(tmp_path / "runs")
    assert main(["report", str(run_dir), "--output-dir", str(run_dir)]) == 0
    assert (run_dir / "report.html").is_file() and (run_dir / "routing.png").is_file()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nope")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2  # no run, study or campaign under it
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("harness: error:") for line in err)
    assert main(["report", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "rep")]) == 0  # one report of them


@pytest.mark.e2e
def test_report_says_which_part_of_the_energy_is_modelled(tmp_path, switch_tiny_run):
    shutil.copytree(switch_tiny_run.parent, tmp_path / "runs")
    run_dir = only_run_dir(tmp_path / "runs")
    result = json.loads((run_dir / "result.json").read_text())
    for method, says in [("measured:nvml-energy-counter", None),
                         ("modelled:cpu-tdp-utilization", "This is a model of power"),
                         ("measured:nvml-energy-counter+modelled:cpu-tdp-utilization",
                          "Part of it is modelled, not measured: modelled:cpu-tdp-utilization")]:
        result["energy"]["method"] = method
        (run_dir / "result.json").write_text(json.dumps(result))
        assert main(["report", str(run_dir), "--output-dir", str(run_dir)]) == 0
        text = (run_dir / "report.md").read_text()
        assert (says in text) if says else ("modelled" not in text.split("## Runs")[0])
        if "+" in method:
            assert "This is a model of power" not in text  # a measured GPU figure is not called a model


@pytest.mark.e2e
def test_a_study_across_frameworks_compares_them(tmp_path):
    code = main(["study", "--workloads", "switch-tiny", "--frameworks", "jax,tensorflow", "--seeds", "1",
                 "--corpus", "control", "--output-dir", str(tmp_path), "--meter", "fake"])
    assert code == 0
    (path,) = tmp_path.glob("*-study-*/control/study.json")
    study = json.loads(path.read_text())
    assert study["workloads"] == ["switch-tiny@jax", "switch-tiny@tensorflow"]
    assert study["frameworks"] == ["jax", "tensorflow"]
    results = [json.loads((path.parent / d[0] / "result.json").read_text()) for d in study["runs"].values()]
    assert [r["training"]["framework"]["framework"] for r in results] == ["jax", "tensorflow"]
    (comparison,) = json.loads((path.parent.parent / "comparisons.json").read_text())
    assert (comparison["baseline"], comparison["other"]) == ("switch-tiny@jax", "switch-tiny@tensorflow")


def test_a_study_needs_two_things_and_known_frameworks(tmp_path):
    with pytest.raises(UsageError, match="at least two"):
        from harness.runner.plan import RunOptions
        from harness.study.campaign import study_and_report

        study_and_report({"workloads": ["switch-tiny"], "seeds": 1}, tmp_path, RunOptions(workload=""))
    assert main(["study", "--workloads", "switch-tiny", "--frameworks", "jax,mxnet", "--output-dir",
                 str(tmp_path)]) == 2
