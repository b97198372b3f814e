"""A record as result.json holds it (schema harness.result/3), and back.

The derived figures (efficiency, CO2e, time to target, best eval loss) are written beside the stored ones for
readers of the JSON, and never read back: `from_json` works them out again from what was measured, so an
edited or stale derived figure changes nothing. Older shapes are upgraded first (harness/results/versions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.carbon import Pricing
from harness.results.inference import (
    INFERENCE,
    INFERENCE_STATUSES,
    Accuracy,
    InferenceRecord,
    LoadGenResult,
    Serving,
    Traffic,
)
from harness.results.schema import (
    COMMAND,
    COMMAND_STATUSES,
    RUN,
    RUN_STATUSES,
    SCHEMA,
    CommandRecord,
    Component,
    Contention,
    Device,
    Energy,
    Environment,
    EvalPoint,
    Hardware,
    Record,
    RunRecord,
    Status,
    Target,
    Timing,
    Training,
    Weights,
    Work,
)


def to_json(record: Record) -> dict[str, Any]:
    """The record as result.json holds it (schema harness.result/3), derived figures written beside the
    stored ones for readers of the JSON (load() works them out again and never reads them back)."""
    out: dict[str, Any] = {"schema": SCHEMA, "kind": record.KIND, "run_id": record.run_id,
                           "created_unix_s": record.created_unix_s, "workload": record.workload,
                           "status": str(record.recorded_status or record.status), "error": record.error,
                           "process": _plain(record.process)}
    if isinstance(record, CommandRecord):
        out |= {"command": list(record.command), "exit_code": record.exit_code,
                "signals_forwarded": list(record.signals_forwarded)}
    if isinstance(record, InferenceRecord):
        out |= {"serving": _plain(record.serving), "loadgen": _plain(record.loadgen), "traffic": _plain(record.traffic),
                "accuracy": _plain(record.accuracy), "figures": record.derived()}
    if isinstance(record, RunRecord):
        out |= {"seed": record.seed, "spec": _plain(record.spec), "data": _plain(record.data),
                "target": _plain(record.target)}
    timing = _plain(record.timing)
    if isinstance(record, RunRecord):
        timing["time_to_target_s"] = record.time_to_target_s
        out["timing"] = timing
        out["training"] = _plain(record.training) | {
            "train_flops": record.training.train_flops, "flops_note": Training.FLOPS_NOTE,
            "final_eval_loss": record.final_eval_loss, "best_eval_loss": record.best_eval_loss}
    else:
        out["timing"] = timing
    out["energy"] = _energy_json(record.energy)
    if isinstance(record, RunRecord):
        out["efficiency"] = efficiency_json(record)
    fp = record.footprint
    out["carbon"] = None if record.carbon is None else (fp.to_dict() if fp else record.carbon.to_dict())
    if isinstance(record, RunRecord):
        out["eval_trace"] = [_plain(p) for p in record.eval_trace]
        out["parallelism"] = _plain(record.parallelism)
        out["weights"] = _plain(record.weights)
    out["environment"] = _plain(record.environment)
    out["files"] = dict(record.files)
    out["files_missing"] = dict(record.files_missing)
    return out


def efficiency_json(r: RunRecord) -> dict[str, Any] | None:
    """The efficiency section: what it is computed from, and the figures (derived)."""
    w = r.work
    if w is None:
        return None
    acc = r.accelerators
    return {"window": w.window, "window_reason": w.window_reason, "seconds": w.seconds, "tokens": w.tokens,
            "model_flops": w.model_flops, "model_flops_note": Work.NOTE, "model_flops_per_s": r.model_flops_per_s,
            "peak_flops_per_s": w.peak_flops_per_s, "peak": _plain(w.peak), "mfu": r.mfu, "mfu_reason": r.mfu_reason,
            "energy_basis": r.energy_basis, "tokens_per_j": r.tokens_per_j, "model_flops_per_j": r.model_flops_per_j,
            "j_per_token": r.j_per_token, "accelerators": acc.to_dict() if acc else None}


def energy_to_json(e: Energy) -> dict[str, Any]:
    """The energy section alone (processes of a multi-process run send theirs to process 0 this way)."""
    return _energy_json(e)


def energy_from_json(d: Mapping[str, Any]) -> Energy:
    return _energy(d)


def _energy_json(e: Energy) -> dict[str, Any]:
    out = _plain(e)
    if e.contention is not None:
        c = e.contention
        out["contention"] |= {"others_cpu_s": c.others_cpu_s, "others_share": c.others_share,
                              "flagged": c.flagged, "note": c.note()}
    return out


def _plain(obj: Any) -> Any:
    """Dataclasses, enums, mappings and tuples as JSON-ready values (fields in declaration order)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return str(obj) if isinstance(obj, StrEnum) else obj
    if hasattr(obj, "__dataclass_fields__"):
        if isinstance(obj, Pricing):
            return obj.to_dict()
        # Fields the reader sets (compare=False: where a record was read from, the status it was read as) are
        # not part of what was recorded, and are not written.
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.compare}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars from a framework's metrics
        return obj.tolist()
    raise TypeError(f"not part of a record: {type(obj).__name__}")


class SchemaError(ValueError):
    """A record of the current shape with a field missing or of the wrong type (the reader names the file)."""


def from_json(d: Mapping[str, Any]) -> Record:
    """A record from result.json content of the current shape (harness/results/versions.py upgrades older ones
    first). A status the record's kind never has (a run `completed`, a command `converged`) is damage."""
    kind = d.get("kind", RUN)
    statuses = {RUN: RUN_STATUSES, COMMAND: COMMAND_STATUSES, INFERENCE: INFERENCE_STATUSES}
    if kind not in statuses:
        raise SchemaError(f"kind {kind!r} is not one of {', '.join(statuses)}")
    if d.get("status") not in statuses[kind]:
        valid = ", ".join(statuses[kind])
        raise SchemaError(f"status {d.get('status')!r} is not one a {kind} record has ({valid})")
    try:
        common = dict(run_id=str(d["run_id"]), created_unix_s=float(d.get("created_unix_s") or 0.0),
                      workload=str(d["workload"]), status=Status(d["status"]), timing=_timing(d["timing"]),
                      energy=_energy(d["energy"]), carbon=_pricing(d.get("carbon")),
                      environment=_environment(d["environment"]), error=d.get("error"), process=d.get("process"),
                      files=dict(d.get("files") or {}), files_missing=dict(d.get("files_missing") or {}))
        if kind == INFERENCE:
            lg = d.get("loadgen")
            return InferenceRecord(
                **common, serving=_pick(Serving, d["serving"]),
                loadgen=_pick(LoadGenResult, lg, failed=tuple) if lg else None, traffic=_pick(Traffic, d["traffic"]),
                accuracy=_pick(Accuracy, d["accuracy"]) if d.get("accuracy") else None)
        if kind == COMMAND:
            return CommandRecord(**common, command=tuple(d.get("command") or ()), exit_code=d.get("exit_code"),
                                 signals_forwarded=tuple(d.get("signals_forwarded") or ()))
        training = d["training"]
        return RunRecord(
            **common, seed=int(d["seed"]), spec=d["spec"], data=d["data"],
            target=Target(metric=d["target"].get("metric", "eval_loss_nats_per_token"),
                          target_loss=float(d["target"]["target_loss"]), entropy_floor=d["target"].get("entropy_floor"),
                          max_steps=int(d["target"]["max_steps"])),
            training=Training(steps=int(training["steps"]), tokens=int(training["tokens"]),
                              train_flops_per_token=float(training["train_flops_per_token"]),
                              params_total=training.get("params_total"),
                              params_activated=training.get("params_activated"),
                              dropped_fraction_mean=training.get("dropped_fraction_mean"),
                              executed_flops_per_token=training.get("executed_flops_per_token"),
                              precision=training.get("precision") or {}, framework=training.get("framework") or {}),
            work=_work(d.get("efficiency")), eval_trace=tuple(_point(p) for p in d.get("eval_trace") or ()),
            parallelism=d.get("parallelism"), weights=_pick(Weights, d["weights"]) if d.get("weights") else None)
    except KeyError as e:
        raise SchemaError(f"missing {e.args[0]}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise SchemaError(str(e)) from None


def _pick(cls: type, d: Mapping[str, Any], **convert: Any) -> Any:
    """cls from the keys of `d` that are its fields (derived keys written beside them are left out)."""
    names = {f.name for f in fields(cls) if f.init}
    return cls(**{k: convert[k](v) if k in convert and v is not None else v for k, v in d.items() if k in names})


def _timing(d: Mapping[str, Any]) -> Timing:
    return _pick(Timing, d, marks_unix_s=dict)


def _energy(d: Mapping[str, Any]) -> Energy:
    return _pick(Energy, d, components=lambda cs: {k: _pick(Component, c) for k, c in cs.items()},
                 incomplete_reasons=tuple, cross_checks=tuple, flags=tuple, warnings=tuple, meters=tuple,
                 unavailable=tuple, hosts=tuple, contention=lambda c: _pick(Contention, c))


def _pricing(d: Mapping[str, Any] | None) -> Pricing | None:
    if not d:
        return None
    return Pricing(region=d["region"], pue=float(d["pue"]), gross_kg_per_kwh=float(d["gross_kg_per_kwh"]),
                   net_kg_per_kwh=float(d["net_kg_per_kwh"]), overrides=dict(d.get("overrides") or {}),
                   sources=dict(d.get("sources") or {}))


def _environment(d: Mapping[str, Any]) -> Environment:
    hw = d["hardware"]
    return Environment(hardware=_pick(Hardware, hw, devices=lambda ds: tuple(_pick(Device, x) for x in ds)),
                       software=d.get("software") or {})


def _work(d: Mapping[str, Any] | None) -> Work | None:
    return _pick(Work, d) if d else None


def _point(d: Mapping[str, Any]) -> EvalPoint:
    return _pick(EvalPoint, d)
