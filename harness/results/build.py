"""Records built from what was measured: the one place a run's or a metered command's record is made.

The runner hands over what its loop did (`LoopFacts`) and the meters' windows; this module turns them into
the typed record of harness/results/schema.py. In a multi-process run every process measures its own meters
and process 0 merges them (`merge_hosts`): components are named `p<k>:<meter>/<component>`, each host keeps
its own total by its own rule (node meter if it has one, else its device meters), and the run's energy is the
sum over hosts.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from harness.carbon import Pricing
from harness.results import environment
from harness.results.efficiency import devices_peak
from harness.results.schema import (
    CommandRecord,
    Component,
    Contention,
    Device,
    Energy,
    Environment,
    EvalPoint,
    RunRecord,
    Status,
    Target,
    Timing,
    Training,
    Work,
)

# Other processes using more than this share of the machine's CPU over a window are flagged: at that level a
# CPU meter's figure, which covers the whole package, holds a visible part of somebody else's work.
CONTENTION_THRESHOLD = 0.10
_SYNCHRONISED_AT_STOP = (Status.CONVERGED, Status.NOT_CONVERGED, Status.DIVERGED)


class LoopFacts(Protocol):
    """What the training loop reports (harness/runner/loop.py's LoopResult)."""

    status: str
    error: str | None
    steps: int
    eval_trace: list[dict[str, Any]]  # each with its sampler "mark"
    step_metrics: list[dict[str, Any]]
    params: dict[str, int]
    train_flops_per_token: float
    executed_flops_per_token: float | None
    eval_flops_each: float  # forward FLOPs of one pass over the eval set
    framework: dict[str, Any]
    marks: dict[str, float]


# -- energy -----------------------------------------------------------------------------------------------


def energy_from_windows(run_w: Mapping[str, Any] | None, init_w: Mapping[str, Any] | None, *, stop_label: str,
                        facts: Mapping[str, Any], unavailable: Sequence[Mapping[str, str]],
                        cpu: Mapping[str, float] | None = None, start_label: str = "run_start") -> Energy:
    """One process's energy section from the meters' figures (harness/meters/window.py): `run_w` over
    start_label..stop_label (a run's run_start; an inference test's first query), `init_w` over init, `facts`
    their session_facts, `cpu` the CPU times over the window
    (harness/meters/contention.py)."""
    methods = facts["methods"]
    run_c, init_c = (run_w or {}).get("components", {}), (init_w or {}).get("components", {})
    components = {}
    for key, method in methods.items():
        c = run_c.get(key, {})
        components[key] = Component(
            joules=c.get("joules"), init_joules=init_c.get(key, {}).get("joules"), method=method,
            scope=c.get("scope", "device"), part=c.get("part", "cpu"), avg_watts=c.get("avg_watts"),
            peak_watts=c.get("peak_watts"), peak_source=c.get("peak_source"), power_limit_w=c.get("power_limit_w"),
            coverage=c.get("coverage"), errors=c.get("errors"))
    total = run_w["total_j"] if run_w else None
    contention = contention_of(cpu)
    flags = list((run_w or {}).get("flags", [])) + list((init_w or {}).get("flags", []))
    if contention is not None and contention.flagged:
        flags.append(f"contention: {contention.note()}")
    return Energy(
        window=f"{start_label}..{stop_label}", seconds=run_w["seconds"] if run_w else None,
        total_j=total if total is not None and math.isfinite(total) else None,
        method=run_w["method"] if run_w else "+".join(sorted(set(methods.values()))),
        basis=run_w["basis"] if run_w else None, device_j=run_w["device_j"] if run_w else None,
        node_j=run_w["node_j"] if run_w else None, init_j=init_w["total_j"] if init_w else None,
        components=components,
        # Complete: every component read at both edges, >= 95 % of the window backed by real readings, and no
        # failed readings. An incomplete figure is reported, flagged, and never ranked.
        complete=bool(run_w and run_w["complete"]), coverage=run_w["coverage"] if run_w else None,
        incomplete_reasons=tuple((run_w or {}).get("incomplete_reasons", ["no run window measured"])),
        cross_checks=tuple(run_w["cross_checks"]) if run_w else (), flags=tuple(flags),
        warnings=tuple(facts["warnings"]), meters=tuple(facts["meters"]), unavailable=tuple(unavailable),
        sampler=dict(facts["sampler"]), contention=contention)


def contention_of(cpu: Mapping[str, float] | None) -> Contention | None:
    """The contention section from CPU times over a window (harness/meters/contention.py), if read."""
    if not cpu or cpu["seconds"] <= 0:
        return None
    return Contention(seconds=cpu["seconds"], cpus=int(cpu["cpus"]), own_cpu_s=cpu["own_cpu_s"],
                      machine_busy_cpu_s=cpu["machine_busy_cpu_s"], threshold=CONTENTION_THRESHOLD)


def merge_hosts(measured: dict[int, Energy], hosts: list[dict[str, Any]], lost: list[int],
                last_status: dict[int, dict[str, Any] | None]) -> Energy:
    """One run's energy from every process's: per-host sections, the total their sum.

    measured: process -> its energy, for the processes that reported; hosts: HostInfo dicts of every process;
    lost: processes that went silent; last_status: their last heartbeat (energy so far).
    """
    components: dict[str, Component] = {}
    cross_checks, flags, warnings, meters, unavailable, entries = [], [], [], [], [], []
    sampler: dict[str, Any] = {}
    totals, inits, devices, nodes, methods, reasons = [], [], [], [], set(), []
    window, contention = None, None
    for h in hosts:
        k = h["process"]
        entry = dict(h) | {"lost": k in lost, "power_csv": f"host_{k}/power.csv"}
        e = measured.get(k)
        if e is not None and not e.components:
            # Nothing to meter here: no accelerator of its own, and its host's meters read by another process.
            entry |= {"total_j": 0.0, "init_j": 0.0, "method": None, "basis": "no meters in this process",
                      "complete": True}
            totals.append(0.0)
            inits.append(0.0)
        elif e is not None:
            window = window or e.window
            components |= {f"p{k}:{key}": replace(c, process=k, host=h["host"]) for key, c in e.components.items()}
            cross_checks += [dict(c) | {"process": k} for c in e.cross_checks]
            flags += [f"process {k}: {f}" for f in e.flags]
            warnings += [f"process {k}: {w}" for w in e.warnings]
            meters += [dict(m) | {"process": k} for m in e.meters]
            unavailable += [dict(u) | {"process": k} for u in e.unavailable]
            sampler[str(k)] = e.sampler
            entry |= {"total_j": e.total_j, "init_j": e.init_j, "method": e.method, "basis": e.basis,
                      "complete": e.complete}
            if e.contention is not None:
                entry["contention_others_share"] = e.contention.others_share
                if contention is None or (e.contention.others_share or 0) > (contention.others_share or 0):
                    contention = e.contention
            if not e.complete:
                reasons += [f"process {k}: {why}" for why in e.incomplete_reasons]
            totals.append(e.total_j)
            inits.append(e.init_j)
            devices.append(e.device_j)
            nodes.append(e.node_j)
            methods.add(e.method)
        else:
            so_far = (last_status.get(k) or {}).get("joules_since_run_start")
            entry |= {"total_j": so_far, "method": None,
                      "basis": "energy up to the process's last heartbeat; it was lost, so its final figure is missing"}
            totals.append(so_far)
            flags.append(f"process {k} on {h['host']} was lost: its energy after its last heartbeat is not counted, "
                         "so the run's energy is a lower bound")
        entries.append(entry)
    known = [t for t in totals if t is not None]
    complete = (len(known) == len(totals) and not lost
                and all(x.get("complete", True) for x in entries if not x["lost"]))
    seconds = next((e.seconds for e in measured.values() if e.seconds is not None), None)
    return Energy(
        window=window, seconds=seconds, total_j=sum(known) if known and (complete or lost) else None,
        method="+".join(sorted({m for ms in methods for m in ms.split("+") if m})),
        basis=("sum over hosts of each host's own energy (its node meter where it has one, else its metered "
               "components); each physical host's node and CPU meters read by one process only"),
        device_j=_sum_known(devices), node_j=_sum_known(nodes),
        init_j=sum(inits) if inits and all(i is not None for i in inits) else None, components=components,
        complete=complete, coverage=min((c.coverage for c in components.values() if c.coverage is not None),
                                        default=None),
        incomplete_reasons=tuple(reasons + [f"process {k} lost" for k in lost]), cross_checks=tuple(cross_checks),
        flags=tuple(flags), warnings=tuple(warnings), meters=tuple(meters), unavailable=tuple(unavailable),
        sampler=sampler, hosts=tuple(entries), contention=contention)


def _sum_known(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def eval_energy_sum(measured: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Energy since run_start at each evaluation mark, summed over the processes that reported."""
    marks: dict[str, float | None] = {}
    for per_mark in measured:
        for mark, joules in per_mark.items():
            marks[mark] = None if joules is None or marks.get(mark, 0.0) is None else marks.get(mark, 0.0) + joules
    return marks


def eval_points(trace: list[dict[str, Any]], eval_energy: Mapping[str, float | None]) -> list[EvalPoint]:
    """Every evaluation, with the energy spent since run_start at its mark (quality.csv's rows)."""
    names = set(EvalPoint.__dataclass_fields__)
    return [EvalPoint(**{k: v for k, v in p.items() if k in names}, energy_j=eval_energy.get(p["mark"]))
            for p in trace]


# -- the run ----------------------------------------------------------------------------------------------


def run_record(loop: LoopFacts, *, run_id: str, seed: int, spec: Mapping[str, Any], data: Mapping[str, Any],
               target_loss: float, max_steps: int, batch_size: int, seq_len: int, dtype: str,
               precision: Mapping[str, str], energy: Energy, eval_trace: list[EvalPoint], pricing: Pricing,
               devices: list[Device], parallelism: Mapping[str, Any]) -> RunRecord:
    """The record of a run (final, or RUNNING while it goes): result.json's content, files aside."""
    marks = loop.marks
    status = Status(loop.status)
    run_s = marks["run_stop"] - marks["run_start"] if {"run_start", "run_stop"} <= marks.keys() else None
    init_s = marks["init_stop"] - marks["init_start"] if {"init_start", "init_stop"} <= marks.keys() else None
    dropped = [r["dropped_fraction"] for r in loop.step_metrics if "dropped_fraction" in r]
    return RunRecord(
        run_id=run_id, created_unix_s=time.time(), workload=str(spec["name"]), status=status, error=loop.error,
        process={"pid": os.getpid(), "host": platform.node()}, seed=seed, spec=spec, data=data,
        target=Target(target_loss=target_loss, entropy_floor=data.get("entropy_floor"), max_steps=max_steps),
        timing=Timing(init_s=init_s, run_s=run_s, marks_unix_s=dict(marks)),
        training=Training(steps=loop.steps, tokens=loop.steps * batch_size * seq_len,
                          train_flops_per_token=loop.train_flops_per_token,
                          executed_flops_per_token=loop.executed_flops_per_token,
                          params_total=loop.params.get("total"), params_activated=loop.params.get("activated"),
                          dropped_fraction_mean=sum(dropped) / len(dropped) if dropped else None,
                          precision=dict(precision), framework=dict(loop.framework)),
        energy=energy, work=work_window(loop, status, batch_size * seq_len, run_s, devices, dtype),
        carbon=pricing, eval_trace=tuple(eval_trace), parallelism=dict(parallelism),
        environment=Environment(hardware=environment.hardware(devices), software=environment.software()))


def work_window(loop: LoopFacts, status: Status, tokens_per_step: int, run_s: float | None,
                devices: list[Device], dtype: str) -> Work:
    """The efficiency window: the whole timed window where its device work was synchronised at run_stop,
    else up to the last evaluation (an evaluation waits for every queued step)."""
    peak_total, peak = devices_peak(devices, dtype)
    per_token = loop.train_flops_per_token
    if status in _SYNCHRONISED_AT_STOP and run_s is not None:
        tokens = loop.steps * tokens_per_step
        return Work(window="run_start..run_stop", seconds=run_s, tokens=tokens, peak_flops_per_s=peak_total,
                    peak=peak, model_flops=per_token * tokens + loop.eval_flops_each * len(loop.eval_trace))
    if not loop.eval_trace:
        why = Work.ABORTED_UNSYNCED if status == Status.ABORTED else Work.NO_EVALUATION_YET
        return Work(window=None, seconds=None, tokens=0, model_flops=0.0, peak_flops_per_s=peak_total, peak=peak,
                    window_reason=why)
    last = loop.eval_trace[-1]
    tokens = last["step"] * tokens_per_step
    return Work(window=f"run_start..{last['mark']}", seconds=last["eval_stop_unix_s"] - loop.marks["run_start"],
                tokens=tokens, model_flops=per_token * tokens + loop.eval_flops_each * len(loop.eval_trace),
                peak_flops_per_s=peak_total, peak=peak)


# -- a metered command ------------------------------------------------------------------------------------


def command_record(*, run_id: str, name: str, argv: Sequence[str], status: Status, exit_code: int | None,
                   signals: Sequence[str], marks: Mapping[str, float], energy: Energy, pricing: Pricing,
                   devices: list[Device], software: Mapping[str, Any]) -> CommandRecord:
    return CommandRecord(
        run_id=run_id, created_unix_s=time.time(), workload=name, command=tuple(argv), status=status,
        exit_code=exit_code, signals_forwarded=tuple(signals), process={"pid": os.getpid(), "host": platform.node()},
        timing=Timing(rules="the command's wall time, from its start to its exit (nothing untimed)",
                      run_s=marks["run_stop"] - marks["run_start"], marks_unix_s=dict(marks)), energy=energy,
        carbon=pricing, environment=Environment(hardware=environment.hardware(devices), software=software))
