"""Run planning: what is validated before any work, and what the result will admit it could not meter."""

from functools import partial

import pytest
from nvml_fake import FakeNvml

from harness import session
from harness.errors import UsageError
from harness.meters import MeterRequest, MeterSelectionError
from harness.runner import plan as run
from harness.runner.devices import Placement
from workloads.corpus import entropy_floor
from workloads.framework import Device
from workloads.registry import WORKLOADS


def test_plan_targets_floor_plus_margin_for_both_corpora():
    for corpus in ("default", "control"):
        p = run.plan(run.RunOptions(workload="switch-tiny", corpus=corpus, meter="fake"))
        spec = WORKLOADS["switch-tiny"]
        assert p.target_loss == pytest.approx(entropy_floor(spec.corpus_named(corpus)) + spec.target_margin)
        assert p.data_info["entropy_floor"] == pytest.approx(entropy_floor(spec.corpus_named(corpus)))
        assert len(p.data_info["eval_sha256"]) == 64


def test_accelerator_without_meter_is_declared_unmetered(monkeypatch):
    # A GPU that NVML cannot see (here: no driver at all): the run goes on, metered by the CPU meter, and
    # the result says in so many words that the GPU's energy is not in it.
    gpu = Device("NVIDIA H100", "gpu", 0, 0, 0)
    monkeypatch.setattr(run, "place", lambda spec, mesh, framework: Placement(None, [gpu], 0, 1))
    monkeypatch.setattr(session.meters, "MeterRequest", partial(MeterRequest, nvml=FakeNvml([], init_error=9)))
    p = run.plan(run.RunOptions(workload="dense-tiny", meter_options={"cpu_tdp": 10.0}))
    reasons = {u["name"]: u["reason"] for u in p.unavailable}
    assert "GPU energy NOT metered" in reasons["gpu-energy"]
    assert [m.name for m in p.meters] == ["cpu-model"]


def test_meter_options_are_checked_before_any_work():
    with pytest.raises(MeterSelectionError, match="--meter must be"):
        run.plan(run.RunOptions(workload="dense-tiny", meter="gpu"))
    with pytest.raises(MeterSelectionError, match="--meter-command is only used with --meter external"):
        run.plan(run.RunOptions(workload="dense-tiny", meter_options={"external_command": "echo 5 W"}))
    with pytest.raises(MeterSelectionError, match="--meter-hz"):
        run.plan(run.RunOptions(workload="dense-tiny", meter="external",
                                meter_options={"external_command": "echo 5 W", "external_hz": 0}))
    with pytest.raises(MeterSelectionError, match="--meter nvml: NVML: no GPU"):
        run.plan(run.RunOptions(workload="dense-tiny", meter="nvml"))


def test_no_meter_at_all_is_an_error_not_a_silent_zero(monkeypatch):
    monkeypatch.setattr(session.meters, "select_meters", lambda *a, **kw: ([], [{"name": "rapl", "reason": "absent"}]))
    with pytest.raises(UsageError, match="no energy meter is available: absent"):
        run.plan(run.RunOptions(workload="dense-tiny"))
