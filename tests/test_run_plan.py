"""Run planning: what is validated before any work, and what the result will admit it could not meter."""

import pytest

from harness.errors import UsageError
from harness.runner import run
from workloads.corpus import entropy_floor
from workloads.registry import WORKLOADS


def test_plan_targets_floor_plus_margin_for_both_corpora():
    for corpus in ("default", "control"):
        p = run.plan(run.RunOptions(workload="switch-tiny", corpus=corpus, meter="fake"))
        spec = WORKLOADS["switch-tiny"]
        assert p.target_loss == pytest.approx(entropy_floor(spec.corpus_named(corpus)) + spec.target_margin)
        assert p.data_info["entropy_floor"] == pytest.approx(entropy_floor(spec.corpus_named(corpus)))
        assert len(p.data_info["eval_sha256"]) == 64


def test_accelerator_without_meter_is_declared_unmetered(monkeypatch):
    monkeypatch.setattr(run.jax, "default_backend", lambda: "gpu")
    p = run.plan(run.RunOptions(workload="dense-tiny", meter="fake"))
    reasons = {u["name"]: u["reason"] for u in p.unavailable}
    assert "NOT metered" in reasons["gpu-energy"]


def test_no_meter_at_all_is_an_error_not_a_silent_zero(monkeypatch):
    monkeypatch.setattr(run.meters, "select_meters", lambda **kw: ([], [{"name": "rapl", "reason": "absent"}]))
    with pytest.raises(UsageError, match="no energy meter is available: absent"):
        run.plan(run.RunOptions(workload="dense-tiny"))
