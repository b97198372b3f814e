"""One benchmark identity (harness/results/identity.py) behind every reader that groups or matches runs; pairs
by seed wherever a ratio is paired; the RCP test on sets only; and readers that name what they pass over."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_run, write_run

from harness.cli import main
from harness.report.stats import pair_by_seed, paired_comparison, seeded_ratio_ci
from harness.results.identity import group, identity
from workloads.registry import WORKLOADS
from workloads.specs import canonical, spec_sha256

SEEDS = (0, 1, 2)


def _tf(r):
    return replace(r, training=replace(r.training, framework={"framework": "tensorflow", "version": "2.21.0"}))


def _wider(r):
    return replace(r, spec={**r.spec, "model": {**r.spec["model"], "d_model": 64}})


def _gpu(r):
    hw = r.environment.hardware
    return replace(r, environment=replace(r.environment, hardware=replace(
        hw, devices=(replace(hw.devices[0], kind="NVIDIA H200", platform="gpu"),))))


# Four ways to run switch-tiny that are four benchmarks-on-a-system, and what each one costs here.
VARIANTS = {"jax-cpu": (lambda r: r, 100.0), "tensorflow-cpu": (_tf, 80.0), "jax-gpu": (_gpu, 30.0),
            "wider-spec": (_wider, 400.0)}


def mixed_runs(prefix: str = "", seeds=SEEDS) -> list:
    return [make(make_run("switch-tiny", seed=s, run_id=f"{prefix}{name}-{s}", energy_j=energy + s,
                          run_s=energy / 10 + s))
            for name, (make, energy) in VARIANTS.items() for s in seeds]


def test_the_identity_tells_apart_framework_system_and_spec_and_nothing_else():
    runs = mixed_runs()
    groups = group(runs)
    assert len(groups) == 4 and all(len(g) == 3 for g in groups.values())
    base = identity(runs[0])
    diffs = {tuple(d.split()[0] for d in base.differences(i)) for i in groups if i != base}
    assert diffs == {("framework",), ("accelerator", "accelerators"), ("spec_sha256",)}
    # What is only disclosed (versions, the energy method, the region) leaves the identity as it is.
    other = replace(runs[0], carbon=None, energy=replace(runs[0].energy, method="modelled:cpu-tdp-utilization"),
                    environment=replace(runs[0].environment, software={"python": "3.12", "git_commit": "abc"}))
    assert identity(other) == base


def test_a_field_added_after_a_run_is_no_other_spec():
    spec = WORKLOADS["switch-small"].to_dict()
    old = json.loads(json.dumps(spec))
    del old["model"]["group_sequences"], old["optimizer"]["epsilon"], old["calibration"]
    assert spec_sha256(old) == spec_sha256(spec) and canonical(old) == canonical(spec)
    old["optimizer"]["learning_rate"] = 1e-2  # a recalibrated rate is another benchmark
    assert spec_sha256(old) != spec_sha256(spec)


def test_compare_matches_the_whole_identity(tmp_path):
    yours = [make_run("switch-tiny", seed=7, run_id="yours", energy_j=100.0, run_s=10.0)]
    from harness.report.compare import compare

    (entry,) = compare(yours, mixed_runs("ref-"))
    assert entry["reference_runs"] == 3 and entry["reference_on_your_system"]
    energy = next(r for r in entry["rows"] if r["metric"] == "energy to target (J)")
    assert energy["reference"] == pytest.approx(101.0)  # the JAX CPU runs' median, nothing else mixed in
    assert any("tensorflow" in x for x in entry["not_compared"])
    # No reference on your system: each other system apart, said so, never one median over two.
    gpu_only = [r for r in mixed_runs("ref-") if r.run_id.startswith("ref-jax-gpu")]
    (entry,) = compare(yours, gpu_only)
    assert not entry["reference_on_your_system"] and "H200" in entry["reference_system"]


def test_report_site_and_claim_rules_keep_them_apart(tmp_path):
    for r in mixed_runs():
        write_run(tmp_path / "runs" / r.run_id, r)
    assert main(["report", str(tmp_path / "runs"), "--output-dir", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| switch-tiny")]
    assert len(rows) == 4 and all("| 3: 3 converged |" in row for row in rows), rows

    from harness.report.site.collect import SiteRun, Source, System
    from harness.report.site.rows import rows_of

    system, source = System("acme", "one-name-two-machines"), Source(Path("."), "run", Path("."))
    site_rows = rows_of([SiteRun(r, system, source, {}) for r in mixed_runs()])
    assert len(site_rows) == 4 and sorted(len(row.runs) for row in site_rows) == [3, 3, 3, 3]
    names = sorted(row.benchmark for row in site_rows)
    assert any("spec " in n for n in names) and any("H200" in n for n in names), names

    from harness.report.claims.rules import check_rules

    by_name = {r.run_id: r for r in mixed_runs()}
    side = [by_name[f"jax-cpu-{s}"] for s in (0, 1)] + [by_name["tensorflow-cpu-2"]]
    rules = {rule.name: rule for rule in check_rules({"subject": side, "baseline": mixed_runs()[:3]}, None,
                                                      False, {})}
    assert not rules["one system a side"].passed and "tensorflow" in rules["one system a side"].detail
    wider = [by_name[f"wider-spec-{s}"] for s in SEEDS]
    rules = {rule.name: rule for rule in check_rules({"subject": wider, "baseline": mixed_runs()[:3]}, None,
                                                      False, {})}
    assert not rules["spec"].passed


# -- pairs by seed -----------------------------------------------------------------------------------------------


def _side(workload: str, energies: dict[int, float]) -> list:
    return [make_run(workload, seed=s, run_id=f"{workload}-{s}-{i}", energy_j=e, run_s=e / 10)
            for i, (s, e) in enumerate(energies.items())]


def test_paired_by_seed_not_by_position():
    """Baseline seeds 0, 1, 2 against seeds 1, 2 at a true per-seed ratio of 2.0: pairing by position gave 1.155x."""
    base = _side("dense-tiny", {0: 300.0, 1: 200.0, 2: 260.0})
    other = _side("switch-tiny", {1: 100.0, 2: 130.0})
    c = paired_comparison(base, other)
    assert c["energy_to_target"]["ratio"] == pytest.approx(2.0)
    assert c["pairs_converged"] == 2 and "baseline" not in c["pairing"] and "seed(s) 0 without a partner" in (
        c["pairing"])
    assert c["time_to_target"]["ratio"] == pytest.approx(2.0)
    reordered = paired_comparison(base[::-1], other[::-1])
    assert reordered["energy_to_target"]["ratio"] == pytest.approx(2.0)


def test_a_seed_run_twice_is_two_runs_and_nothing_is_paired():
    base = _side("dense-tiny", {0: 300.0, 1: 200.0, 2: 260.0})
    other = _side("switch-tiny", {0: 150.0, 1: 100.0, 2: 130.0}) + [make_run("switch-tiny", seed=1, run_id="again",
                                                                             energy_j=400.0)]
    c = paired_comparison(base, other)
    assert not c["paired"] and "seed(s) 1 ran more than once" in c["pairing"]
    expect = math.exp(sum(math.log(x) for x in (300, 200, 260)) / 3 - sum(math.log(x) for x in (150, 100, 130, 400))
                      / 4)
    assert c["energy_to_target"]["ratio"] == pytest.approx(expect)
    assert "Welch" in c["energy_to_target"]["verdict"]


def test_seeded_ratios_pair_only_the_same_seed():
    p = pair_by_seed([(2, "a2"), (0, "a0"), (1, "a1")], [(1, "b1"), (2, "b2"), (5, "b5")])
    assert p.pairs == (("a1", "b1"), ("a2", "b2")) and p.only_numer == (0,) and p.only_denom == (5,)
    ci = seeded_ratio_ci([(0, 9.0), (1, 4.0), (2, 6.0)], [(2, 3.0), (1, 2.0)])
    assert ci.ratio == pytest.approx(2.0) and ci.left_out == 1 and ci.n == 2


# -- the RCP test on sets only -----------------------------------------------------------------------------------


def closed(workload: str, **kwargs):
    """A run of the registered workload at its registered target: closed division."""
    r = make_run(workload, **kwargs)
    return replace(r, target=replace(r.target, target_loss=WORKLOADS[workload].target_loss()))


def test_one_run_gets_no_rcp_verdict_and_says_why(tmp_path, capsys):
    from harness.mlperf.rcp import rcp_test
    from harness.mlperf.rules import required_runs

    assert required_runs("switch-small") == 5 and required_runs("switch-tiny") == 3
    # The quick start's run: seed 0, 1,900 steps, the reference's own seed-0 steps, 60,800 samples.
    quick = closed("switch-small", seed=0, steps=1900)
    result = rcp_test([quick])
    assert not result.tested and "not enough runs for the RCP test: 1 run(s) of switch-small" in result.verdict
    assert "set of 5 runs" in result.verdict and "closed_switch-small.yaml" in result.verdict
    fast = [closed("switch-small", seed=s, run_id=f"fast-{s}", steps=1000 + s) for s in range(5)]
    result = rcp_test(fast)
    assert result.implausibly_fast and "the 3 olympic run(s) of 5" in result.verdict
    write_run(tmp_path / "quick", quick)
    assert main(["compare", str(tmp_path / "quick")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "implausibly" not in out and "not enough runs for the RCP test" in out


def test_claim_sets_need_the_benchmarks_required_runs():
    from harness.report.claims.rules import check_rules

    side = [closed("switch-small", seed=s, run_id=f"s{s}", steps=2000 + 100 * s) for s in range(3)]
    rules = {r.name: r for r in check_rules({"subject": side}, None, False, {})}
    assert not rules["runs"].passed and "a set needs 5 (subject)" in rules["runs"].detail


def test_a_record_names_our_version_never_the_index_harness(monkeypatch):
    """The index's "harness" is another project; a record's packages["harness"] is our distribution's version."""
    import importlib.metadata

    from harness import DISTRIBUTION
    from harness.results import environment

    versions = {DISTRIBUTION: "0.1.0", "harness": "9.9.9-someone-else"}

    def version(name):
        if name in versions:
            return versions[name]
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(environment.importlib.metadata, "version", version)
    assert environment.software()["packages"]["harness"] == "0.1.0"
