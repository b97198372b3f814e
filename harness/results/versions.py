"""Every shape of record the harness ever wrote, upgraded to the current one (harness.result/3), in one place.

- harness.result/2 (2026-11-30..12-02): runs and commands; /3 added the inference kind and a run's `weights`
  (a /2 run kept none): a /2 record reads as it is.

- harness.result/1 (runs, 2026-11-26..30): grew over that time; the oldest lack the efficiency figures, the
  energy section's completeness and cross-checks, the framework and precision, `parallelism`, evaluation
  timestamps and the spec's AdamW epsilon; hardware said `jax_backend`. Its derived figures (efficiency,
  CO2e) are dropped and worked out again from the stored ones; where it has none, its model FLOPs are counted
  from its spec, steps and evaluations as the runner counts them now (workloads/flops.py). An aborted run's
  efficiency window is cut back to its last evaluation, the last point where its device work was synchronised
  (a /1 record of a run aborted before any evaluation gets none: reference_results/nvidia-h100/base/
  failed-prefetch-thread-1.json claimed an MFU of 1.005 over steps that were dispatched but never waited for).
- harness.command/1 (`harness meter`): a command record; its status `interrupted` (a signal passed on to the
  command) is `aborted` now, as for a run, since `interrupted` means a record with no final version.

Nothing here writes files: shipped reference results stay as recorded, with their hashes, and are read
through this upgrade.
"""

from __future__ import annotations

import copy
from typing import Any

from harness.results.efficiency import devices_peak
from harness.results.schema import ABORT_MARK, COMMAND, RUN, SCHEMA, Device, Status, Work

RESULT_1 = "harness.result/1"
RESULT_2 = "harness.result/2"
COMMAND_1 = "harness.command/1"
READABLE = (SCHEMA, RESULT_2, RESULT_1, COMMAND_1)

# Which part of the machine a meter's components are, for records written before components said so.
_PART_OF_METER = {"nvml": "accelerator", "tpu-model": "accelerator", "rapl": "cpu", "cpu-model": "cpu",
                  "external": "node", "fake": "synthetic"}
ADAMW_EPSILON = 1e-8  # optax.adamw's default, what runs before the spec named epsilon used


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a readable schema, checked by the caller) in the current shape; the input is not changed."""
    schema = data["schema"]
    if schema == SCHEMA:
        return data
    if schema == RESULT_2:
        return {**data, "schema": SCHEMA}
    d = copy.deepcopy(data)
    if schema == COMMAND_1:
        return _command_1(d)
    return _result_1(d)


def _command_1(d: dict[str, Any]) -> dict[str, Any]:
    d["schema"], d["kind"] = SCHEMA, COMMAND
    if d.get("status") == "interrupted":  # /1's word for a signal passed on to the command
        d["status"] = Status.ABORTED
    _energy_1(d)
    return d


def _result_1(d: dict[str, Any]) -> dict[str, Any]:
    d["schema"], d["kind"] = SCHEMA, RUN
    spec = d.get("spec") or {}
    spec.get("optimizer", {}).setdefault("epsilon", ADAMW_EPSILON)
    data = d.get("data") or {}
    if "eval_sequences" not in data and "corpus" in spec:
        data["eval_sequences"] = spec["corpus"].get("eval_sequences")
    training = d.get("training") or {}
    training.setdefault("precision", {})
    training.setdefault("framework", {"framework": "jax"})  # the only framework before the framework seam
    hw = (d.get("environment") or {}).get("hardware") or {}
    if "jax_backend" in hw:
        hw.setdefault("backend", hw.pop("jax_backend"))
    if d.get("mllog_error"):
        d.setdefault("files_missing", {})["mllog.txt"] = f"its rendering failed: {d.pop('mllog_error')}"
    _energy_1(d)
    d["efficiency"] = _work_1(d)
    return d


def _energy_1(d: dict[str, Any]) -> None:
    e = d["energy"]
    for key, c in e.get("components", {}).items():
        meter = key.split(":", 1)[-1].split("/", 1)[0]
        c.setdefault("scope", "node" if meter == "external" else "device")
        c.setdefault("part", _PART_OF_METER.get(meter, "cpu"))
    e.setdefault("complete", True)  # records before completeness was judged passed the checks of their day
    e.setdefault("node_j", None)
    e.setdefault("device_j", e.get("total_j") if e.get("node_j") is None else None)
    e.setdefault("basis", None)
    e.setdefault("seconds", _window_seconds(d, e.get("window")))


def _efficiency_of_old(d: dict[str, Any]) -> dict[str, Any] | None:
    """For a /1 record from before efficiency figures: its model FLOPs worked out from what it recorded (the spec,
    the steps, the evaluations) as the runner counts them today, and its devices' peak from the table."""
    from workloads.flops import forward_flops_per_token  # here: the specs load numpy, new records never need it
    from workloads.specs import ModelConfig

    try:
        spec = d["spec"]
        model = ModelConfig(**spec["model"])
        seq_len = spec["corpus"]["seq_len"]
        eval_tokens = (d["data"].get("eval_sequences") or spec["corpus"]["eval_sequences"]) * seq_len
        flops = (d["training"]["train_flops_per_token"] * d["training"]["tokens"]
                 + forward_flops_per_token(model, seq_len) * eval_tokens * len(d.get("eval_trace") or ()))
        devices = [Device(kind=x["kind"], platform=x["platform"]) for x in d["environment"]["hardware"]["devices"]]
    except (KeyError, TypeError, ValueError):
        return None
    peak, row = devices_peak(devices, model.dtype)
    return {"model_flops": flops, "peak_flops_per_s": peak, "peak": row}


def _window_seconds(d: dict[str, Any], window: str | None) -> float | None:
    marks = (d.get("timing") or {}).get("marks_unix_s") or {}
    if not window or "run_start" not in marks:
        return None
    stop = window.split("..", 1)[-1]
    if stop in ("run_stop", ABORT_MARK):
        return d["timing"].get("run_s")
    point = next((p for p in d.get("eval_trace") or () if f"eval_{p.get('step')}" == stop), None)
    if point and point.get("eval_stop_unix_s") is not None:
        return point["eval_stop_unix_s"] - marks["run_start"]
    return None


def _work_1(d: dict[str, Any]) -> dict[str, Any] | None:
    """The efficiency inputs of a /1 record, over its synchronised window."""
    eff = d.get("efficiency") or _efficiency_of_old(d)
    if not eff:
        return None
    training, timing = d["training"], d["timing"]
    work = {"window": d["energy"].get("window"), "seconds": _window_seconds(d, d["energy"].get("window")),
            "tokens": training["tokens"], "model_flops": eff["model_flops"],
            "peak_flops_per_s": eff.get("peak_flops_per_s"), "peak": eff.get("peak"), "window_reason": None}
    if d["status"] != Status.ABORTED:
        if work["window"] in (None, "run_start..run_stop"):
            work["window"], work["seconds"] = "run_start..run_stop", timing.get("run_s")
        if work["seconds"] is None:
            return work | {"window": None, "window_reason": Work.NO_EVALUATION_YET}
        return work
    trace = [p for p in d.get("eval_trace") or () if p.get("eval_stop_unix_s") is not None]
    if not trace:
        return work | {"window": None, "seconds": None, "window_reason": Work.ABORTED_UNSYNCED}
    last, evals = trace[-1], len(d.get("eval_trace") or ())
    per_token = training["train_flops_per_token"]
    eval_flops_each = (eff["model_flops"] - per_token * training["tokens"]) / evals
    tokens = last["tokens"]
    return work | {"window": f"run_start..eval_{last['step']}",
                   "seconds": last["eval_stop_unix_s"] - timing["marks_unix_s"]["run_start"], "tokens": tokens,
                   "model_flops": per_token * tokens + eval_flops_each * len(trace)}

