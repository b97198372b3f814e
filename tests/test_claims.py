"""`harness claim`: verdicts with their numbers, every rule, and a bad claim file in one line."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import make_run, write_run
from scipy import stats

from harness.cli import main
from harness.report.claims.assess import assess
from harness.report.claims.claim_file import read_claim
from harness.results.schema import Component, Status


def node_run(energy_j: float, seed: int, **kwargs):
    """A converged switch-tiny run whose energy a node meter measured (the only energy a node claim may use)."""
    r = make_run("switch-tiny", seed=seed, run_id=f"{kwargs.pop('prefix', 'r')}-{seed}", energy_j=energy_j, **kwargs)
    node = {"external/node": Component(joules=energy_j, init_joules=1.0, method="measured:external-command",
                                       scope="node", part="node")}
    return replace(r, energy=replace(r.energy, components=node, node_j=energy_j, method="measured:external-command"))


def write_side(folder: Path, energies: list[float], **kwargs) -> Path:
    for seed, e in enumerate(energies):
        write_run(folder / f"run{seed}", node_run(e, seed, prefix=folder.name, **kwargs))
    return folder


def claim_file(tmp_path: Path, **keys) -> Path:
    keys = {"text": "A needs less energy than B", "metric": "energy_to_target", "workload": "switch-tiny",
            "subject": "a", "baseline": "b", "relation": "<=", "value": 0.8} | keys
    keys = {k: v for k, v in keys.items() if v is not None}  # None: the key left out
    lines = [f"{k} = {json.dumps(v)}" if not isinstance(v, dict) else
             f"{k} = {{ {', '.join(f'{a} = {json.dumps(b)}' for a, b in v.items())} }}" for k, v in keys.items()]
    path = tmp_path / "claim.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def judge(tmp_path: Path, **keys) -> dict:
    return assess(read_claim(claim_file(tmp_path, **keys)), checker=lambda path: [])


A, B = [100.0, 104.0, 98.0], [150.0, 153.0, 149.0]  # paired by seed: ratios 0.667, 0.680, 0.658


def _t_interval(ratios: list[float]) -> tuple[float, float, float]:
    logs = np.log(ratios)
    half = stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    return math.exp(logs.mean()), math.exp(logs.mean() - half), math.exp(logs.mean() + half)


@pytest.mark.parametrize("relation, value, verdict", [("<=", 0.70, "SUPPORTED"), ("<=", 0.60, "NOT SUPPORTED"),
                                                      ("<=", 0.665, "INCONCLUSIVE"), (">=", 0.60, "SUPPORTED"),
                                                      (">=", 0.70, "NOT SUPPORTED")])
def test_the_verdict_follows_the_interval(tmp_path, relation, value, verdict):
    write_side(tmp_path / "a", A), write_side(tmp_path / "b", B)
    result = judge(tmp_path, relation=relation, value=value)
    assert result["verdict"] == verdict, result["reasons"]
    geo, lo, hi = _t_interval([a / b for a, b in zip(A, B, strict=True)])
    ci = result["interval"]
    assert (ci["estimate"], ci["lo"], ci["hi"]) == pytest.approx((geo, lo, hi))
    assert ci["pairing"] == "paired by seed: 3 pairs"
    assert result["estimate"]["value"] == pytest.approx(100.0 / 150.0)  # olympic: the middle run of each side
    assert all(r["passed"] for r in result["rules"]) and result["reasons"] == []
    assert (result["more_runs_per_side"] is not None) == (verdict == "INCONCLUSIVE")


def test_unmatched_seeds_fall_back_to_welch(tmp_path):
    write_side(tmp_path / "a", A)
    for seed, e in zip((5, 6, 7), B, strict=True):
        write_run(tmp_path / "b" / f"run{seed}", node_run(e, seed, prefix="b"))
    ci = judge(tmp_path, value=0.7)["interval"]
    assert "Welch" in ci["method"] and ci["pairing"].startswith("unpaired")
    la, lb = np.log(A), np.log(B)
    va, vb = la.var(ddof=1) / 3, lb.var(ddof=1) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (ci["lo"], ci["hi"]) == pytest.approx((math.exp(la.mean() - lb.mean() - half),
                                                  math.exp(la.mean() - lb.mean() + half)))


def test_a_seed_run_twice_is_two_runs(tmp_path):
    """Runs keyed by seed would keep one of the two and drop the other: every run counts, unpaired."""
    write_side(tmp_path / "a", A), write_side(tmp_path / "b", B)
    write_run(tmp_path / "a" / "again", node_run(400.0, 0, prefix="again"))  # seed 0 once more, far off
    ci = judge(tmp_path, value=0.7)["interval"]
    assert ci["pairing"].startswith("unpaired") and ci["n"] == 3
    assert ci["estimate"] == pytest.approx(math.exp(np.log([*A, 400.0]).mean() - np.log(B).mean()))


def test_an_absolute_bound_and_a_higher_is_better_metric(tmp_path):
    write_side(tmp_path / "a", A)
    result = judge(tmp_path, metric="tokens_per_j", baseline=None, relation=">=", value=1.0)
    tokens = make_run("switch-tiny").work.tokens
    geo = math.exp(np.mean(np.log([tokens / e for e in A])))
    assert result["verdict"] == "SUPPORTED" and result["interval"]["estimate"] == pytest.approx(geo)
    assert result["estimate"]["value"] == pytest.approx(tokens / 100.0)  # 1 / olympic mean of J per token
    assert result["metric"]["derived"].startswith("derived:")


@pytest.mark.parametrize("what, reason", [
    ("modelled", "node energy modelled (modelled:cpu-tdp-utilization)"),
    ("device only", "no node meter"),
    ("other spec", "spec:"),
    ("two failed", "converged: subject 1 of 3 converged"),
    ("other target", "target:"),
])
def test_what_cannot_be_assessed_says_why(tmp_path, what, reason):
    write_side(tmp_path / "b", B)
    if what == "modelled":
        write_side(tmp_path / "a", A)
        for f in (tmp_path / "a").glob("*/result.json"):
            f.write_text(f.read_text().replace("measured:external-command", "modelled:cpu-tdp-utilization"))
    elif what == "device only":  # the sum of the metered parts is no node figure
        for seed, e in enumerate(A):
            write_run(tmp_path / "a" / f"run{seed}", make_run("switch-tiny", seed=seed, run_id=f"a{seed}", energy_j=e))
    elif what == "other spec":
        spec = make_run("switch-tiny").spec | {"batch_size": 32}
        write_side(tmp_path / "a", A, spec=spec)
    elif what == "two failed":
        write_side(tmp_path / "a", A)
        for seed in (0, 1):
            f = tmp_path / "a" / f"run{seed}" / "result.json"
            f.write_text(f.read_text().replace('"status": "converged"', '"status": "not_converged"'))
    elif what == "other target":
        write_side(tmp_path / "a", A, target=replace(make_run().target, target_loss=2.5))
    result = judge(tmp_path)
    assert result["verdict"] == "CANNOT BE ASSESSED"
    assert any(reason in why for why in result["reasons"]), result["reasons"]


def test_a_bad_claim_file_is_one_line_exit_2(tmp_path, capsys):
    write_side(tmp_path / "a", A), write_side(tmp_path / "b", B)
    for keys, needle in [({"metric": "joules"}, "metric must be one of energy_to_target"),
                         ({"relation": "<"}, "relation must be <= or >="),
                         ({"value": -1}, "value must be a positive number"),
                         ({"baseline": "nowhere"}, "baseline 'nowhere': no such file"),
                         ({"colour": "red"}, "unknown key(s) colour"),
                         ({"metric": "dense_over_sparse_energy"}, "needs workload = { dense"),
                         ({"metric": "mfu", "scope": "node"}, "takes no `scope`")]:
        path = claim_file(tmp_path, **keys)
        assert main(["claim", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (keys, err)
    (tmp_path / "claim.toml").write_text("text = [unclosed\n")
    assert main(["claim", str(tmp_path / "claim.toml")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_dense_over_sparse_within_one_system(tmp_path):
    for seed, (d, s) in enumerate(zip([400.0, 420.0, 390.0], A, strict=True)):
        r = node_run(d, seed, prefix="dense")
        write_run(tmp_path / "sys" / f"d{seed}", replace(r, workload="dense-tiny", spec=make_run("dense-tiny").spec))
        write_run(tmp_path / "sys" / f"s{seed}", node_run(s, seed, prefix="sparse"))
    result = judge(tmp_path, metric="dense_over_sparse_energy", workload={"dense": "dense-tiny",
                                                                          "sparse": "switch-tiny"},
                   subject="sys", baseline=None, relation=">=", value=3.5)
    assert result["verdict"] == "SUPPORTED", result["reasons"]
    assert result["estimate"]["value"] == pytest.approx(400.0 / 100.0)
    assert result["interval"]["pairing"] == "paired by seed: 3 pairs"


# -- on real runs: a node meter printing 100 W against one printing 150 W ------------------------------------


@pytest.fixture(scope="module")
def two_systems(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("systems")
    for name, watts in (("a", 100), ("b", 150)):
        assert main(["run", "--workload", "switch-tiny", "--runs", "3", "--meter", "external", "--meter-command",
                     f"echo {watts} W", "--meter-hz", "10", "--no-progress", "--output-dir", str(root / name)]) == 0
    return root


@pytest.mark.e2e
def test_a_claim_on_measured_runs(two_systems, tmp_path, capsys):
    (a,), (b,) = (two_systems / "a").iterdir(), (two_systems / "b").iterdir()
    energies = {s: {json.loads(f.read_text())["seed"]: json.loads(f.read_text())["energy"]["total_j"]
                    for f in (two_systems / s).glob("*/*/result.json")} for s in "ab"}
    # The same steps on both (same seeds); each run's energy is its meter's watts times its own time.
    ratios = [energies["a"][s] / energies["b"][s] for s in range(3)]
    geo, lo, hi = _t_interval(ratios)
    outcomes = {}
    for relation, value in (("<=", hi * 1.05), ("<=", lo * 0.95), ("<=", geo)):
        path = claim_file(tmp_path, subject=str(a), baseline=str(b), relation=relation, value=value)
        code = main(["claim", str(path), "--output-dir", str(tmp_path / "out")])
        result = json.loads((tmp_path / "out" / "claim.json").read_text())
        assert (result["interval"]["lo"], result["interval"]["hi"]) == pytest.approx((lo, hi))
        outcomes[result["verdict"]] = code
    assert outcomes == {"SUPPORTED": 0, "NOT SUPPORTED": 1, "INCONCLUSIVE": 1}
    out = " ".join(capsys.readouterr().out.split())
    assert "PASS energy: measured at the node and complete on every run (measured:external-command)" in out
    assert "PASS harness check: 2 folder(s), all checks passed" in out
    md = (tmp_path / "out" / "claim.md").read_text()
    assert md.startswith("# INCONCLUSIVE") and "record sha256" in md
    # A tampered record: harness check fails the side, so the claim cannot be assessed.
    shutil.copytree(a, tmp_path / "tampered")
    trace = next((tmp_path / "tampered").glob("*/power.csv"))
    trace.write_text(trace.read_text() + "9999999999,1e9\n")
    path = claim_file(tmp_path, subject="tampered", baseline=str(b), value=hi * 1.05)
    assert main(["claim", str(path), "--output-dir", str(tmp_path / "out")]) == 1
    result = json.loads((tmp_path / "out" / "claim.json").read_text())
    assert result["verdict"] == "CANNOT BE ASSESSED"
    assert any(why.startswith("harness check:") and "sha256 differs" in why for why in result["reasons"])


def test_the_statuses_a_claim_reads(tmp_path):
    # A run still `running` (its process gone: interrupted) counts as one that did not converge.
    write_side(tmp_path / "a", A), write_side(tmp_path / "b", B)
    f = tmp_path / "a" / "run2" / "result.json"
    data = json.loads(f.read_text()) | {"status": "running", "process": {"pid": 2**22 + 7, "host": None}}
    f.write_text(json.dumps(data))
    result = judge(tmp_path, value=0.7)
    assert result["runs"]["subject"][2]["status"] == Status.INTERRUPTED
    assert result["verdict"] in ("SUPPORTED", "INCONCLUSIVE")  # one failed run a side is allowed (olympic)


# -- harness project -------------------------------------------------------------------------------------------


def test_project_gpt3_by_hand(tmp_path, capsys):
    # One H100 run: 1e15 model FLOPs in 10 s over 2,000 J at the boards (all measured), 2,500 J at the node.
    r = make_run("switch-base", device="NVIDIA H100 80GB HBM3", energy_j=2500.0, accelerator_j=2000.0, run_s=10.0,
                 method="measured:nvml-energy-counter")
    r = replace(r, work=replace(r.work, model_flops=1e15, seconds=10.0))
    write_run(tmp_path / "h100", r)
    assert main(["project", str(tmp_path / "h100"), "--to", "gpt3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(x["run"], x["basis"]["energy"]) for x in rows] == [("gpt-3", "node"), ("gpt-3", "accelerators")]
    node, boards = rows
    assert node["total_flops"] == 3.14e23
    assert node["basis"]["model_flops_per_j"] == pytest.approx(1e15 / 2500.0)
    assert node["projected_energy_j"] == pytest.approx(3.14e23 / (1e15 / 2500.0))  # 7.85e11 J = 218 MWh
    assert boards["projected_energy_j"] == pytest.approx(3.14e23 / (1e15 / 2000.0))
    assert node["projected_device_days"] == pytest.approx(3.14e23 / 1e14 / 86400)  # 1e14 FLOP/s on one device
    assert node["published_energy_j"] == pytest.approx(1287 * 3.6e9)
    # Priced as the run was (us-average, PUE 1.58, 0.429 kg/kWh), beside the paper's 552.1 t.
    assert node["projected_co2e_gross_kg"] == pytest.approx(7.85e11 / 3.6e6 * 1.58 * 0.429)
    assert node["co2e_ratio"] == pytest.approx(node["projected_co2e_gross_kg"] / 552_100)
    assert node["energy_ratio"] == pytest.approx(7.85e11 * 1.58 / (1287 * 3.6e9))
    assert main(["project", str(tmp_path / "h100"), "--to", "gpt3,t5", "--region", "europe-north1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PROJECTED, not measured") and "t5 (4.05e+22 FLOPs), projected" in out
    assert "region europe-north1" in out


def test_project_refuses_modelled_energy_unless_asked_and_then_stamps_it(tmp_path, capsys):
    write_run(tmp_path / "cpu", make_run("switch-tiny", method="modelled:cpu-tdp-utilization"))
    assert main(["project", str(tmp_path / "cpu")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "modelled" in err[0] and "--allow-modelled" in err[0]
    assert main(["project", str(tmp_path / "cpu"), "--to", "meena", "--allow-modelled"]) == 0
    out = capsys.readouterr().out
    assert "projected from MODELLED energy, basis MODELLED ENERGY, node" in out
    assert main(["project", str(tmp_path / "cpu"), "--to", "bert"]) == 2
    assert "--to must be all or among gpt3" in capsys.readouterr().err
