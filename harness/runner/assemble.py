"""A run's record from what was measured: each process's energy windows, every host merged, the result dict.

One process measures its own meters (`measure_process`). In a multi-process run process 0 merges every
process's measurement (`merge_hosts`): components are named `p<k>:<meter>/<component>`, each host keeps its
own total by its own rule (node meter if it has one, else its device meters), and the run's energy is the
sum over hosts. Then `build_result` puts the training, energy, efficiency and carbon sections together.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import asdict
from typing import Any

from harness import carbon
from harness.meters.window import GAP_S, measure_window
from harness.results import environment
from harness.results.efficiency import efficiency
from harness.runner.devices import Placement
from harness.runner.training import LoopResult
from workloads.spec import precision_of

COMPONENT_FIELDS = ("scope", "part", "avg_watts", "peak_watts", "peak_source", "power_limit_w", "coverage", "errors")


def _window(sampler, meters: list, start: str, stop: str) -> dict[str, Any] | None:
    if start in sampler.marks and stop in sampler.marks:
        return measure_window(sampler, meters, start, stop)
    return None


def measure_process(sampler, meters: list, unavailable: list[dict[str, str]], loop: LoopResult,
                    sample_hz: float, stop_label: str | None = None) -> dict[str, Any]:
    """This process's energy section, and the energy since run_start at each evaluation. The window ends at
    `stop_label` (a record written during the run: its latest evaluation), else at run_stop or the abort."""
    stop_label = stop_label or ("run_stop" if "run_stop" in sampler.marks else "aborted")
    run_w = _window(sampler, meters, "run_start", stop_label) if stop_label != "run_start" else None
    init_w = _window(sampler, meters, "init_start", "init_stop")
    methods = {f"{m.name}/{c}": m.method for m in meters for c in m.components()}
    run_c, init_c = (run_w or {}).get("components", {}), (init_w or {}).get("components", {})
    total_j = run_w["total_j"] if run_w else None
    energy = {
        "window": f"run_start..{stop_label}",
        "total_j": total_j if total_j is not None and math.isfinite(total_j) else None,
        "method": run_w["method"] if run_w else "+".join(sorted(set(methods.values()))),
        "basis": run_w["basis"] if run_w else None,
        "device_j": run_w["device_j"] if run_w else None,
        "node_j": run_w["node_j"] if run_w else None,
        "components": {
            k: {"joules": run_c.get(k, {}).get("joules"), "init_joules": init_c.get(k, {}).get("joules"),
                "method": methods[k]} | {f: run_c.get(k, {}).get(f) for f in COMPONENT_FIELDS}
            for k in methods
        },
        "init_j": init_w["total_j"] if init_w else None,
        # Complete: every component read at both edges, >= 95 % of the window backed by real readings, and no
        # failed readings. An incomplete figure is reported, flagged, and never ranked.
        "complete": bool(run_w and run_w["complete"]),
        "coverage": run_w["coverage"] if run_w else None,
        "incomplete_reasons": (run_w or {}).get("incomplete_reasons", ["no run window measured"]),
        "cross_checks": run_w["cross_checks"] if run_w else [],
        "flags": (run_w or {}).get("flags", []) + (init_w or {}).get("flags", []),
        "warnings": [w for m in meters for w in m.warnings()],
        "meters": [m.params() for m in meters],
        "unavailable": unavailable,
        "sampler": {"target_hz": sample_hz, "achieved_hz": sampler.achieved_hz(),
                    "samples": len(sampler.times), "errors": [asdict(e) for e in sampler.errors],
                    "gaps_over_2s": sampler.gaps(GAP_S)},
    }
    eval_energy = {}
    if "run_start" in sampler.marks:
        for point in loop.eval_trace:
            if point["mark"] in sampler.marks:
                eval_energy[point["mark"]] = measure_window(sampler, meters, "run_start", point["mark"])["total_j"]
    return {"energy": energy, "eval_energy": eval_energy}


def merge_hosts(measured: dict[int, dict[str, Any]], hosts: list[dict[str, Any]], lost: list[int],
                last_status: dict[int, dict[str, Any] | None]) -> dict[str, Any]:
    """One run's energy from every process's measurement: per-host sections, the total their sum.

    measured: process -> {"energy", "eval_energy"} for the processes that reported; hosts: HostInfo dicts of
    every process; lost: processes that went silent; last_status: their last heartbeat (energy so far).
    """
    energy: dict[str, Any] = {"window": None, "components": {}, "cross_checks": [], "flags": [], "warnings": [],
                              "meters": [], "unavailable": [], "sampler": {}, "hosts": []}
    totals, inits, devices, nodes, methods = [], [], [], [], set()
    for h in hosts:
        k = h["process"]
        entry = dict(h) | {"lost": k in lost, "power_csv": f"host_{k}/power.csv"}
        if k in measured and not measured[k]["energy"]["components"]:
            measured[k]["energy"]["complete"] = True  # nothing to measure is not a missing measurement
            # Nothing to meter here: no accelerator of its own, and its host's meters read by another process.
            entry |= {"total_j": 0.0, "init_j": 0.0, "method": None, "basis": "no meters in this process"}
            totals.append(0.0)
            inits.append(0.0)
        elif k in measured:
            e = measured[k]["energy"]
            energy["window"] = energy["window"] or e["window"]
            for key, comp in e["components"].items():
                energy["components"][f"p{k}:{key}"] = comp | {"process": k, "host": h["host"]}
            energy["cross_checks"] += [c | {"process": k} for c in e["cross_checks"]]
            energy["flags"] += [f"process {k}: {f}" for f in e["flags"]]
            energy["warnings"] += [f"process {k}: {w}" for w in e["warnings"]]
            energy["meters"] += [m | {"process": k} for m in e["meters"]]
            energy["unavailable"] += [u | {"process": k} for u in e["unavailable"]]
            energy["sampler"][str(k)] = e["sampler"]
            entry |= {"total_j": e["total_j"], "init_j": e["init_j"], "method": e["method"], "basis": e["basis"],
                      "complete": e.get("complete", True)}
            energy["incomplete_reasons"] = energy.get("incomplete_reasons", []) + [
                f"process {k}: {why}" for why in e.get("incomplete_reasons", []) if not e.get("complete", True)]
            totals.append(e["total_j"])
            inits.append(e["init_j"])
            devices.append(e["device_j"])
            nodes.append(e["node_j"])
            if e["components"]:
                methods.add(e["method"])
        else:
            so_far = (last_status.get(k) or {}).get("joules_since_run_start")
            entry |= {"total_j": so_far, "method": None,
                      "basis": "energy up to the process's last heartbeat; it was lost, so its final figure is missing"}
            totals.append(so_far)
            energy["flags"].append(f"process {k} on {h['host']} was lost: its energy after its last heartbeat is "
                                   "not counted, so the run's energy is a lower bound")
        energy["hosts"].append(entry)
    known = [t for t in totals if t is not None]
    complete = (len(known) == len(totals) and not lost
                and all(h.get("complete", True) for h in energy["hosts"] if not h["lost"]))
    energy["total_j"] = sum(known) if known and (complete or lost) else None
    energy["complete"] = complete
    energy.setdefault("incomplete_reasons", [])
    energy["incomplete_reasons"] += [f"process {k} lost" for k in lost]
    energy["init_j"] = sum(inits) if inits and all(i is not None for i in inits) else None
    energy["device_j"] = sum(d for d in devices if d is not None) if any(d is not None for d in devices) else None
    energy["node_j"] = sum(n for n in nodes if n is not None) if any(n is not None for n in nodes) else None
    energy["method"] = "+".join(sorted(m for ms in methods for m in ms.split("+")))
    energy["basis"] = ("sum over hosts of each host's own energy (its node meter where it has one, else its "
                       "metered components); each physical host's node and CPU meters read by one process only")
    return energy


def eval_energy_sum(measured: dict[int, dict[str, Any]]) -> dict[str, float | None]:
    """Energy since run_start at each evaluation, summed over the processes that reported."""
    marks: dict[str, float | None] = {}
    for m in measured.values():
        for mark, joules in m["eval_energy"].items():
            marks[mark] = None if joules is None or marks.get(mark, 0.0) is None else marks.get(mark, 0.0) + joules
    return marks


def quality_rows(trace: list[dict], eval_energy: dict[str, float | None]) -> list[dict]:
    """quality.csv rows: every eval point, with the energy spent since run_start (loss-vs-energy plots)."""
    return [{k: v for k, v in point.items() if k != "mark"} | {"energy_j": eval_energy.get(point["mark"])}
            for point in trace]


def build_result(opts: Any, p: Any, loop: LoopResult, energy: dict[str, Any], quality: list[dict],
                 run_id: str) -> dict[str, Any]:
    """result.json's content (without the files section), from the loop and the (merged) energy."""
    marks = loop.marks
    run_s = marks["run_stop"] - marks["run_start"] if {"run_start", "run_stop"} <= marks.keys() else None
    init_s = marks["init_stop"] - marks["init_start"] if {"init_start", "init_stop"} <= marks.keys() else None
    total_j = energy["total_j"]
    tokens = loop.steps * p.spec.batch_size * p.spec.seq_len
    evals = [e["eval_loss"] for e in loop.eval_trace if e["eval_loss"] is not None]
    dropped = [r["dropped_fraction"] for r in loop.step_metrics if "dropped_fraction" in r]
    devices = loop.framework.get("devices") or _devices(p.placement)
    return {
        "run_id": run_id,
        "created_unix_s": time.time(),
        "workload": p.spec.name,
        "status": loop.status,
        "error": loop.error,
        "process": {"pid": os.getpid(), "host": platform.node()},  # a `running` record's reader asks if it lives
        "seed": opts.seed,
        "spec": p.spec.to_dict(),
        "data": p.data_info,
        "target": {"metric": "eval_loss_nats_per_token", "target_loss": p.target_loss,
                   "entropy_floor": p.data_info.get("entropy_floor"), "max_steps": p.max_steps},
        "timing": {
            "rules": "MLPerf: init untimed; timed window run_start..run_stop includes evaluation",
            "init_s": init_s,
            "run_s": run_s,
            "time_to_target_s": run_s if loop.status == "converged" else None,
            "marks_unix_s": marks,
        },
        "training": {
            "steps": loop.steps,
            "tokens": tokens,
            "train_flops_per_token": loop.train_flops_per_token,
            "train_flops": loop.train_flops_per_token * tokens,
            "flops_note": "model matmul FLOPs, forward + backward (3x forward), activated experts only",
            "params_total": loop.params.get("total"),
            "params_activated": loop.params.get("activated"),
            "final_eval_loss": evals[-1] if evals else None,
            "best_eval_loss": min(evals) if evals else None,
            "dropped_fraction_mean": sum(dropped) / len(dropped) if dropped else None,
            "precision": precision_of(p.spec.model),
            "framework": loop.framework,
        },
        "energy": energy,
        "efficiency": efficiency(model_flops=loop.train_flops_per_token * tokens + loop.eval_flops, tokens=tokens,
                                 seconds=run_s, devices=devices, dtype=p.spec.model.dtype, total_j=total_j,
                                 energy_method=energy["method"], components=energy["components"]),
        "carbon": (carbon.footprint(total_j, opts.region, opts.pue, opts.carbon_intensity, opts.net_intensity)
                   .to_dict() if total_j is not None else None),
        "eval_trace": quality,
        "parallelism": parallelism(p.placement),
        "environment": {"hardware": environment.hardware(devices), "software": environment.software()},
    }


def _devices(placement: Placement) -> list[dict[str, Any]]:
    return [{"kind": d.kind, "platform": d.platform, "id": d.id, "process": d.process} for d in placement.devices]


def parallelism(placement: Placement) -> dict[str, Any]:
    """The mesh, for the record and the MLPerf disclosure keys; a run without a mesh is data=1, expert=1."""
    mesh = placement.mesh
    return {"data": mesh.data if mesh else 1, "expert": mesh.expert if mesh else 1,
            "devices": len(placement.devices), "device_kinds": sorted({d.kind for d in placement.devices}),
            "processes": placement.processes, "mesh_path": mesh is not None, "notes": list(placement.notes)}
