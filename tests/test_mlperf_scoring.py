"""Tests for harness.mlperf.scoring (olympic mean, RCP-style t-test) and harness.mlperf.system_desc
(system descriptions checked by mlperf_logging's own training checker)."""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics

import pytest

from harness.machine import read_host_facts
from harness.mlperf.scoring import OlympicScore, convergence_check, olympic, one_sided_p_faster
from harness.mlperf.system_desc import FIELDS, RULESET, UNKNOWN, check_system_desc, describe_system
from harness.results.schema import Device, Hardware

# ---- olympic -----------------------------------------------------------------------------------------------


def test_olympic_five_runs_hand_computed() -> None:
    score = olympic([310.0, 295.5, 330.25, 301.0, 288.0])
    # drop 288.0 (run 4) and 330.25 (run 2): (310 + 295.5 + 301) / 3
    assert score == OlympicScore(906.5 / 3, True, score.reason, (0, 1, 3), (4, 2))
    assert score.value == pytest.approx(302.1666666666667)
    assert score.reason == "olympic mean of 3 of 5 runs (dropped lowest run 4 and highest run 2)"


def test_olympic_one_non_converged_run_counts_as_slowest() -> None:
    score = olympic([10.0, None, 12.0, 8.0, 11.0])
    assert score.valid
    assert score.dropped == (3, 1)
    assert score.kept == (0, 2, 4)
    assert score.value == pytest.approx(11.0)
    assert "did not converge" in score.reason


def test_olympic_two_non_converged_runs_invalid() -> None:
    score = olympic([10.0, None, 12.0, None, 11.0])
    assert not score.valid and score.value is None
    assert score.kept == () and score.dropped == ()
    assert "2 of 5 runs did not converge" in score.reason and "runs 1, 3" in score.reason


@pytest.mark.parametrize("values", [[], [1.0], [1.0, 2.0], [None, 2.0]])
def test_olympic_fewer_than_three_runs_invalid(values: list[float | None]) -> None:
    score = olympic(values)
    assert not score.valid and score.value is None
    assert f"got {len(values)}" in score.reason


def test_olympic_ties_break_by_index() -> None:
    all_equal = olympic([5.0, 5.0, 5.0, 5.0, 5.0])
    assert all_equal.dropped == (0, 4) and all_equal.kept == (1, 2, 3) and all_equal.value == 5.0
    tied_ends = olympic([3.0, 1.0, 3.0, 1.0, 2.0])
    # earliest of the tied lows (run 1), latest of the tied highs (run 2)
    assert tied_ends.dropped == (1, 2)
    assert tied_ends.kept == (0, 3, 4)
    assert tied_ends.value == pytest.approx(2.0)


def test_olympic_three_runs_keeps_the_middle() -> None:
    score = olympic([7.0, None, 2.0])
    assert score.valid and score.kept == (0,) and score.value == 7.0


def test_olympic_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        olympic([1.0, float("nan"), 2.0])


# ---- one-sided t-test ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub", "ref"),
    [
        ([2.9e6, 3.1e6, 3.0e6], [3.3e6, 3.5e6, 3.2e6, 3.6e6, 3.4e6]),  # clearly faster: small p
        ([10.0, 11.0, 12.5], [10.5, 11.5, 12.0, 11.0]),  # about the same
        ([14.0, 15.0, 16.0], [10.0, 11.0, 12.0]),  # slower: p near 1
        ([3.0], [3.5, 4.5]),  # smallest allowed sizes
    ],
)
def test_one_sided_p_matches_scipy(sub: list[float], ref: list[float]) -> None:
    stats = pytest.importorskip("scipy.stats")
    expected = stats.ttest_ind(sub, ref, equal_var=True, alternative="less").pvalue
    assert one_sided_p_faster(sub, ref) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_one_sided_p_slower_is_near_one() -> None:
    assert one_sided_p_faster([14.0, 15.0, 16.0], [10.0, 11.0, 12.0]) > 0.99


def test_one_sided_p_zero_variance() -> None:
    assert one_sided_p_faster([4.0, 4.0], [5.0, 5.0, 5.0]) == 0.0
    assert one_sided_p_faster([5.0, 5.0], [5.0, 5.0]) == 1.0
    assert one_sided_p_faster([6.0], [5.0, 5.0]) == 1.0


@pytest.mark.parametrize(("sub", "ref"), [([], [1.0, 2.0]), ([1.0, 2.0], [1.0]), ([1.0], [])])
def test_one_sided_p_needs_enough_values(sub: list[float], ref: list[float]) -> None:
    with pytest.raises(ValueError):
        one_sided_p_faster(sub, ref)


# ---- convergence_check ----------------------------------------------------------------------------------


def test_convergence_check_flags_implausibly_fast() -> None:
    ref = [3.3e6, 3.5e6, 3.2e6, 3.6e6, 3.4e6]
    out = convergence_check([2.9e6, 3.1e6, 3.0e6], ref)
    assert out["implausibly_fast"] is True
    assert out["p_value"] < 0.05
    assert out["within_reference_range"] is False
    assert out["verdict"].startswith("implausibly fast")
    assert out["ref_mean"] == pytest.approx(3.4e6)
    assert out["ref_std"] == pytest.approx(statistics.stdev(ref))
    assert (out["ref_min"], out["ref_max"], out["n_sub"], out["n_ref"]) == (3.2e6, 3.6e6, 3, 5)
    assert "RCP" in out["method"]


def test_convergence_check_consistent() -> None:
    out = convergence_check([10.0, 11.0, 12.5], [10.5, 11.5, 12.0, 11.0], alpha=0.05)
    assert out["implausibly_fast"] is False
    assert out["within_reference_range"] is True
    assert out["verdict"].startswith("consistent with reference convergence")
    assert out["alpha"] == 0.05


@pytest.mark.parametrize("ref", [[], [11.0]])
def test_convergence_check_too_few_reference_runs(ref: list[float]) -> None:
    out = convergence_check([10.0, 11.0], ref)
    assert out["p_value"] is None and out["implausibly_fast"] is None
    assert "too few reference runs" in out["verdict"]
    assert out["n_ref"] == len(ref)


# ---- system description ----------------------------------------------------------------------------------

SOFTWARE = {
    "python": "3.11.7",
    "packages": {"harness": "0.1.0", "jax": "0.10.2", "jaxlib": "0.10.2", "flax": "0.12.8", "optax": "0.2.8",
                 "numpy": "2.1.0", "nvidia-ml-py": "12.560.30", "rich": "13.9.4"},
    "git_commit": "0123abcd",
    "xla_flags": "",
}


def _hardware(devices: list[Device], cpu_model: str = "AMD EPYC 7B13", **changes) -> Hardware:
    return Hardware(platform="Linux-5.15.0-1057-gcp-x86_64-with-glibc2.35", machine="x86_64", cpu_model=cpu_model,
                    logical_cpus=2, memory_gib=23.4, backend=devices[0].platform, devices=tuple(devices)) \
        if not changes else dataclasses.replace(_hardware(devices, cpu_model), **changes)


CPU_HW = _hardware([Device(kind="cpu", platform="cpu")])
GPU_HW = _hardware([Device(kind="NVIDIA H200", platform="gpu", id=i) for i in range(8)])


def _write(tmp_path, name: str, desc: dict):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(desc, indent=2))
    return path


def test_cpu_only_description_passes_mlperf_checker(tmp_path) -> None:
    desc = describe_system("Acme", "acme_cpu_vm", "closed", CPU_HW, SOFTWARE)
    assert check_system_desc(_write(tmp_path, "acme_cpu_vm", desc)) == []
    assert list(desc)[: len(FIELDS)] == list(FIELDS)
    assert desc["status"] == "Available on-premise"
    assert desc["number_of_nodes"] == "1"
    assert desc["host_processor_model_name"] == "AMD EPYC 7B13"
    assert desc["host_processor_vcpu_count"] == "2"
    assert desc["host_memory_capacity"] == "23.4 GiB"
    assert desc["accelerators_per_node"] == "0"
    assert desc["accelerator_model_name"].startswith("N/A")
    assert desc["framework"] == "JAX 0.10.2, Flax 0.12.8, Optax 0.2.8"
    assert desc["operating_system"] == "Linux 5.15.0-1057-gcp (glibc2.35)"
    assert "Python 3.11.7" in desc["other_software_stack"] and "jaxlib 0.10.2" in desc["other_software_stack"]
    assert "0123abcd" in desc["sw_notes"]
    assert all(isinstance(desc[f], str) for f in FIELDS)


def test_gpu_description_passes_mlperf_checker(tmp_path) -> None:
    desc = describe_system("Acme", "acme_8xh200", "open", GPU_HW, SOFTWARE, status="cloud")
    assert check_system_desc(_write(tmp_path, "acme_8xh200", desc)) == []
    assert desc["accelerators_per_node"] == "8"
    assert desc["accelerator_model_name"] == "NVIDIA H200"
    assert desc["accelerator_memory_capacity"] == UNKNOWN
    assert desc["status"] == "Available cloud"
    assert desc["division"] == "open"
    two_nodes = describe_system("Acme", "acme_2x4xh200", "closed", GPU_HW, SOFTWARE, nodes=2)
    assert two_nodes["accelerators_per_node"] == "4" and two_nodes["number_of_nodes"] == "2"
    assert check_system_desc(_write(tmp_path, "acme_2x4xh200", two_nodes)) == []


def test_autofilled_accounts_for_every_field() -> None:
    # A record without host facts (written before runs recorded them): host topology stays unknown, whatever
    # machine writes the description.
    desc = describe_system("Acme", "acme", "closed", GPU_HW, SOFTWARE)
    auto = desc["harness_autofilled"]
    groups = [auto["from_arguments"], auto["from_result"], auto["from_run_host"], auto["unknown"]]
    assert sorted(f for g in groups for f in g) == sorted(FIELDS)
    assert auto["from_run_host"] == []
    for field in ("cooling", "host_processor_core_count", "host_processors_per_node", "host_processor_caches",
                  "host_storage_type", "accelerator_frequency"):
        assert field in auto["unknown"] and desc[field] == UNKNOWN
    assert "accelerator_model_name" in auto["from_result"]


def test_host_facts_recorded_during_the_run_fill_the_topology(tmp_path) -> None:
    # What the run read of its host (harness/machine.py, recorded in the result), not the packaging machine.
    n = 8
    cpuinfo = "\n\n".join(
        f"processor\t: {i}\nmodel name\t: Test CPU @ 2.20GHz\nphysical id\t: 0\ncore id\t\t: {i % 4}\n"
        "flags\t\t: fpu sse hypervisor"
        for i in range(n)
    )
    (tmp_path / "cpuinfo").write_text(cpuinfo + "\n")
    cache = tmp_path / "sys" / "cpu0" / "cache"
    for idx, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K")]):
        (cache / f"index{idx}").mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (cache / f"index{idx}" / name).write_text(f"{value}\n")
    (tmp_path / "os-release").write_text('NAME="X"\nPRETTY_NAME="Test Linux 1"\n')
    facts = read_host_facts(tmp_path / "cpuinfo", tmp_path / "sys", tmp_path / "os-release")
    assert facts["sockets"] == 1 and facts["cores_per_socket"] == 4 and facts["virtual_machine"] is True
    hw = _hardware([Device(kind="cpu", platform="cpu")], cpu_model="Test CPU @ 2.20GHz", logical_cpus=n, cpu=facts)

    desc = describe_system("Acme", "acme", "closed", hw, SOFTWARE)
    assert desc["host_processors_per_node"] == "1"
    assert desc["host_processor_core_count"] == "4"
    assert desc["host_processor_caches"].startswith("L1d 48 KiB, L1i 32 KiB, L2 2 MiB")
    assert desc["host_processor_frequency"] == "2.20 GHz (nominal, from the model name)"
    assert desc["operating_system"].startswith("Test Linux 1; ")
    assert "virtual machine" in desc["hw_notes"]
    assert {"host_processor_core_count", "host_processor_caches"} <= set(desc["harness_autofilled"]["from_run_host"])
    assert check_system_desc(_write(tmp_path, "acme", desc)) == []


def test_bad_status_and_division_rejected() -> None:
    with pytest.raises(ValueError, match="status"):
        describe_system("Acme", "acme", "closed", CPU_HW, SOFTWARE, status="sold out")
    with pytest.raises(ValueError, match="division"):
        describe_system("Acme", "acme", "premier", CPU_HW, SOFTWARE)


@pytest.mark.parametrize("field", ["cooling", "accelerator_model_name", "host_processor_frequency"])
def test_missing_required_field_is_named(tmp_path, field: str) -> None:
    desc = describe_system("Acme", "acme", "closed", CPU_HW, SOFTWARE)
    del desc[field]
    problems = check_system_desc(_write(tmp_path, "acme", desc))
    assert len(problems) == 1
    assert field in problems[0] and "Missing field" in problems[0]


def test_invalid_status_does_not_hide_missing_fields(tmp_path) -> None:
    desc = describe_system("Acme", "acme", "closed", CPU_HW, SOFTWARE)
    desc["status"] = "available"  # not one of the ruleset's status strings
    del desc["cooling"]
    problems = check_system_desc(_write(tmp_path, "acme", desc))
    assert any("status" in p for p in problems)
    assert any("Missing field cooling" in p for p in problems)


def test_missing_file_gives_one_problem(tmp_path) -> None:
    problems = check_system_desc(tmp_path / "nope.json")
    assert len(problems) == 1 and "cannot read" in problems[0]


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_malformed_file_gives_one_problem(tmp_path, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert len(check_system_desc(path)) == 1


def test_checker_crash_is_reported_not_raised(tmp_path) -> None:
    desc = describe_system("Acme", "acme", "closed", CPU_HW, SOFTWARE)
    desc["accelerators_per_node"] = 0  # the checker's summary-table code joins this as text and crashes
    problems = check_system_desc(_write(tmp_path, "acme", desc))
    assert len(problems) == 1 and "accelerators_per_node" in problems[0]


def test_check_leaves_root_logger_as_found(tmp_path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    check_system_desc(_write(tmp_path, "x", {"submitter": "Acme"}))
    assert root.handlers == handlers and root.level == level
    assert RULESET == "6.0.0"


def test_reference_convergence_points_judge_closed_division_runs_only():
    """The RCPs were made on the registered corpus: a control-corpus set converges in a fraction of the samples by
    design, and must not be called implausibly fast against them."""
    from conftest import make_run

    from harness.mlperf.runset import score_runs
    from workloads.registry import WORKLOADS

    target = WORKLOADS["switch-tiny"].target_loss()

    def fast(corpus: str) -> list:
        runs = [make_run("switch-tiny", seed=s, steps=10, corpus=corpus, run_id=f"{corpus}-{s}") for s in range(3)]
        return [dataclasses.replace(r, target=dataclasses.replace(r.target, target_loss=target)) for r in runs]

    closed = score_runs(fast("default"), ["a", "b", "c"])["convergence"]
    assert closed["implausibly_fast"] is True  # 160 samples against the reference's 960
    control = score_runs(fast("control"), ["a", "b", "c"])["convergence"]
    assert control["implausibly_fast"] is None and "open-division" in control["verdict"]
