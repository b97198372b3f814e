"""The GPU demonstration's one command (scripts/gpu_demo.sh), dry-run at tiny width on the CPU with a fake NVML
GPU: every stage runs, every file lands flat in $OUT (at most 8: what a device command brings back), and the
summary parses, so that the script cannot rot while no GPU is lent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import dry_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
@pytest.mark.dryrun
def test_the_gpu_demo_dry_run_runs_every_stage_and_writes_every_file(tmp_path):
    out = tmp_path / "out"
    proc = dry_run("gpu_demo.sh", out, 400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "summary.txt").read_text().startswith("every stage ran\n")
    files = sorted(p.name for p in out.iterdir())
    assert files == ["demo.txt", "dense-base.json", "runs.tar.gz", "summary.json", "summary.txt", "switch-base.json"]
    log = (out / "demo.txt").read_text()
    assert log.startswith("DRY RUN")
    for stage in ("== machine", "== step", "== layer", "== edges", "== target, default corpus",
                  "== control corpus skipped", "== summary"):  # (the control stage: the target stage's code)
        assert stage in log, stage
    assert "Traceback" not in log
    assert "no interval: scipy is not installed" in log  # without scipy, as on the GPU machine: said, not failed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] and not summary["records_skipped"] and summary["failed_stages"] == []
    assert set(summary["bench"]["step"]["models"]) == {"dense-base-at-tiny-width", "switch-base-at-tiny-width",
                                                       "switch-base-dropless-at-tiny-width"}
    assert summary["bench"]["step"]["dropless_over_capacity_step"] > 0
    layer = summary["bench"]["layer"]["shapes"]["small"]  # the grouped matmul against capacity, decode to prefill
    assert set(layer) == {"1", "64"} and all(row["dropless"]["over_dense"] > 0 for row in layer.values())
    assert summary["bench"]["edges"]["pair_alone_us"] > 0
    runs = {(r["workload"], r["corpus"]): r for r in summary["runs"]}
    assert set(runs) == {(f"{m}-base-at-tiny-width", "default") for m in ("dense", "switch")}
    for r in runs.values():  # the NVML meter's path, on the fake GPU
        assert r["reached_target"] and r["energy_method"] == "measured:nvml-energy-counter"
        assert r["accelerator_j"] > 0 and r["eval_trace"] and r["runner_efficiency"] > 0
    for corpus in ("default",):
        energy = summary["pairs"][corpus]["dense_over_switch_energy"]
        assert energy["kind"] == "measured" and energy["ratio"] > 0
    record = json.loads((out / "dense-base.json").read_text())
    assert record["energy"]["meters"][0]["gpus"][0]["name"].startswith("FAKE GPU")  # it says what it is
    assert "dense / switch energy to target [default]" in (out / "summary.txt").read_text()


def test_a_demo_whose_stages_fail_says_so_and_exits_1(tmp_path):
    """An interpreter without jax (an unactivated virtualenv): every stage tracebacks; the command must not pass."""
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")  # no site-packages: no jax, no numpy
    fake.chmod(0o755)
    out = tmp_path / "out"
    proc = dry_run("gpu_demo.sh", out, 120, PYTHON=str(fake), DEMO_SECONDS="60")
    assert proc.returncode == 1, proc.stdout[-2000:]
    log = (out / "demo.txt").read_text()
    assert "!! stage machine FAILED" in log and "!! stage step FAILED" in log
    assert log.rstrip().splitlines()[-1].startswith("FAILED stages: machine (exit 1);")


def _ratio(dense: dict, switch: dict) -> dict:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from demo_summary import energy_ratio

    return energy_ratio(dense, switch)


def _run(reached: bool, joules: float, status: str = "converged") -> dict:
    return {"reached_target": reached, "status": status, "energy_complete": True, "energy_j": joules, "steps": 10}


def test_the_energy_ratio_is_a_measurement_a_lower_bound_or_none_and_says_which():
    assert _ratio(_run(True, 800.0), _run(True, 100.0)) == pytest.approx(
        {"ratio": 8.0, "kind": "measured", "why": "both reached the target"})
    # Dense stopped by its deadline share: what it spent is less than its energy to target.
    bound = _ratio(_run(False, 500.0, "aborted"), _run(True, 100.0))
    assert bound["kind"] == "lower bound" and bound["ratio"] == 5.0 and "aborted" in bound["why"]
    none = _ratio(_run(True, 800.0), _run(False, 50.0, "aborted"))
    assert none["ratio"] is None and "switch-base did not reach the target" in none["why"]
    incomplete = _ratio(_run(True, 800.0), {**_run(True, 100.0), "energy_complete": False})
    assert incomplete["ratio"] is None


def test_the_runner_efficiency_counts_every_second_of_the_timed_window(tiny_run):
    """10 s timed over 1,000 steps is 10 ms a step; a compiled step of 8 ms is 0.8 of it. The evaluations stay in
    (their windows hold queued training steps: taking them out would count those steps as free, past 1)."""
    import sys
    from dataclasses import replace

    from harness.results.reader import read_record

    sys.path.insert(0, str(ROOT / "scripts"))
    from demo_summary import run_figures

    r = read_record(tiny_run("switch-tiny"))
    assert r.eval_trace and sum(p.eval_stop_unix_s - p.eval_start_unix_s for p in r.eval_trace) > 0
    r = replace(r, timing=replace(r.timing, run_s=10.0), training=replace(r.training, steps=1000))
    figures = run_figures(r, 8.0)
    assert figures["ms_per_step_in_run"] == pytest.approx(10.0)
    assert figures["runner_efficiency"] == pytest.approx(0.8)
