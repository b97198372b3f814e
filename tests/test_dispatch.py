"""K steps per dispatch (one compiled call runs K training steps, lax.scan over a [K, batch, ...] block): the same
losses, evaluations and steps to target as one step a call, a divergence inside a block named at its own step,
and the K a run gets."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import only_run_dir

from harness.cli import main
from harness.runner.execute import execute
from harness.runner.plan import RunOptions, dispatch_steps, plan
from workloads.registry import WORKLOADS


def _steps(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "steps.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.e2e
@pytest.mark.parametrize("workload", ["dense-tiny", "switch-tiny", "switch-tiny-dropless"])
def test_four_steps_a_call_train_what_one_step_a_call_trains(tiny_run, tmp_path, workload):
    one = tiny_run(workload, "jax")  # the session's run to target at the spec's K = 1
    # 40 steps at K = 4 (a budget short of the target: exit 1, not_converged), against that run's first 40.
    assert main(["run", "--workload", workload, "--steps-per-dispatch", "4", "--max-steps", "40", "--meter", "fake",
                 "--no-progress", "--output-dir", str(tmp_path)]) == 1
    four = only_run_dir(tmp_path)
    a, b = (json.loads((d / "result.json").read_text()) for d in (one, four))
    assert a["training"]["framework"]["steps_per_dispatch"] == 1
    assert b["training"]["framework"]["steps_per_dispatch"] == 4 and b["training"]["steps"] == 40
    assert a["spec"]["steps_per_dispatch"] == b["spec"]["steps_per_dispatch"] == 1  # the flag, not the spec
    # Every step's metrics recorded, at the same steps, equal to float32 rounding; the same evaluations.
    rows_a, rows_b = _steps(one)[:40], _steps(four)
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a] == [str(s) for s in range(1, 41)]
    for key in ("loss", "aux_loss", *(["dropped_fraction"] if workload.startswith("switch") else [])):
        np.testing.assert_allclose([float(r[key]) for r in rows_b], [float(r[key]) for r in rows_a], rtol=1e-5,
                                   atol=1e-7, err_msg=key)
    evals_a = [p for p in a["eval_trace"] if p["step"] <= 40]
    assert [p["step"] for p in b["eval_trace"]] == [p["step"] for p in evals_a] == [20, 40]
    np.testing.assert_allclose([p["eval_loss"] for p in b["eval_trace"]], [p["eval_loss"] for p in evals_a],
                               rtol=1e-5)


@pytest.mark.e2e
def test_a_divergence_inside_a_block_is_recorded_at_its_own_step(tmp_path):
    spec = WORKLOADS["dense-tiny"]
    wild = replace(spec, optimizer=replace(spec.optimizer, learning_rate=1e6, warmup_steps=1, grad_clip_norm=1e30))
    errors = {}
    for k in (1, 5):  # the loss first turns non-finite at step 4: inside the first call of five
        opts = RunOptions(workload="dense-tiny", spec=wild, meter="fake", progress=False, steps_per_dispatch=k,
                          output_dir=str(tmp_path / f"k{k}"))
        _, r = execute(opts, plan(opts))
        assert r.status == "diverged" and r.training.framework["steps_per_dispatch"] == k
        errors[k] = r.error
    assert errors[1] == "training loss non-finite at step 4"
    assert errors[5] == errors[1]  # named at its own step, not at the end of its call


@pytest.mark.e2e
def test_a_stop_inside_a_block_is_recorded_at_the_end_of_the_calls_that_ran(tmp_path, monkeypatch):
    from workloads.jax_impl.trainer import JaxTrainer

    step = JaxTrainer.step
    records = {}
    for k in (1, 4):  # Ctrl-C as the 29th step is asked for: inside the 8th call of four steps
        calls = []

        def stopping(self, batch, k=k, calls=calls):
            calls.append(1)
            if len(calls) * k >= 29:
                raise KeyboardInterrupt
            return step(self, batch)

        monkeypatch.setattr(JaxTrainer, "step", stopping)
        opts = RunOptions(workload="dense-tiny", meter="fake", progress=False, steps_per_dispatch=k,
                          output_dir=str(tmp_path / f"k{k}"))
        with pytest.raises(KeyboardInterrupt):
            execute(opts, plan(opts))
        run_dir = only_run_dir(tmp_path / f"k{k}")
        records[k] = json.loads((run_dir / "result.json").read_text()), _steps(run_dir)
    for k, (r, rows) in records.items():
        assert r["status"] == "aborted" and r["training"]["steps"] == 28, k  # the seven calls that ran
        assert [p["step"] for p in r["eval_trace"]] == [20]
        # The steps after the last evaluation are recorded too: steps.csv holds every step the record counts.
        assert [row["step"] for row in rows] == [str(s) for s in range(1, 29)]
        assert r["energy"]["window"] == "run_start..aborted"
    np.testing.assert_allclose([float(row["loss"]) for row in records[4][1]],
                               [float(row["loss"]) for row in records[1][1]], rtol=1e-5)


def test_the_k_a_run_gets_divides_the_eval_period_and_the_budget():
    assert dispatch_steps(4, 100, 30000) == 4
    assert dispatch_steps(16, 100, 30000) == 4  # 16 does not divide 100: every eval must end a call
    assert dispatch_steps(4, 100, 30001) == 1  # nor may a call run past the budget
    assert dispatch_steps(1, 100, 30000) == 1


@pytest.mark.parametrize("args, message", [
    (["--steps-per-dispatch", "0"], "--steps-per-dispatch must be >= 1, got 0"),
    (["--steps-per-dispatch", "4", "--framework", "tensorflow"], "--steps-per-dispatch must be 1 with --framework"),
])
def test_a_bad_k_is_one_line_exit_2(tmp_path, capsys, args, message):
    assert main(["run", "--workload", "switch-tiny", "--meter", "fake", "--output-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_the_spec_default_is_not_part_of_the_benchmark():
    from workloads.specs import spec_sha256

    spec = WORKLOADS["switch-small"]
    assert spec_sha256(replace(spec, steps_per_dispatch=8).to_dict()) == spec_sha256(spec.to_dict())
