"""One `harness run`: check every input, meter the run, train to target, price it in CO2e, write results."""

from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness import carbon, meters
from harness.errors import UsageError
from harness.meters.window import GAP_S, measure_window
from harness.mlperf.runlog import write_run_logs
from harness.mlperf.runset import reference_samples
from harness.results import environment, record
from harness.results.efficiency import efficiency
from harness.results.files import sha256_file
from harness.runner.devices import training_accelerators
from harness.runner.progress import Progress
from harness.runner.sizing import cpu_refusal, typical_steps
from harness.runner.training import LoopResult, train_to_target
from workloads.corpus import MarkovMixture, dataset_sha256, entropy_floor
from workloads.registry import CORPUS_NAMES, WorkloadSpec, get_workload
from workloads.spec import precision_of
from workloads.user_data import TokenFile


@dataclass
class RunOptions:
    workload: str
    seed: int = 0
    corpus: str = "default"
    data: str | None = None
    target_loss: float | None = None
    max_steps: int | None = None
    output_dir: str = "results"
    region: str = carbon.DEFAULT_REGION
    pue: float | None = None
    carbon_intensity: float | None = None
    net_intensity: float | None = None
    cpu_tdp: float | None = None
    meter: str = "auto"  # comma-separated backends (see harness.meters.select); "fake" is for tests only
    meter_command: str | None = None  # for --meter external: a command that prints watts
    meter_hz: float = 1.0  # how often the external command runs
    tpu_watts: float | None = None  # override the published TPU average power per chip
    sample_hz: float = 20.0
    progress: bool = True
    allow_cpu: bool = False  # run a workload sized for an accelerator on the CPU anyway
    spec: WorkloadSpec | None = None  # a variant not in the registry (e.g. a study's expert sweep)


class RunAborted(Exception):
    """Raised in the main thread on SIGTERM so that the run is recorded as aborted, like Ctrl-C."""


@dataclass
class Plan:
    spec: WorkloadSpec
    data: Any
    data_info: dict[str, Any]
    target_loss: float
    max_steps: int
    meters: list
    unavailable: list[dict[str, str]]


def plan(opts: RunOptions) -> Plan:
    """Validate everything a run needs before any work starts; bad input raises a one-line error."""
    spec = opts.spec or get_workload(opts.workload)
    if opts.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {opts.seed}")
    if opts.max_steps is not None and opts.max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {opts.max_steps}")
    if opts.sample_hz < 10:
        raise UsageError(f"--sample-hz must be >= 10 (power traces need 10 Hz or more), got {opts.sample_hz}")
    if opts.cpu_tdp is not None and not opts.cpu_tdp > 0:
        raise UsageError(f"--cpu-tdp must be a positive number of watts, got {opts.cpu_tdp}")
    names = meters.parse_meter_names(opts.meter)
    if opts.meter_command and "external" not in names:
        raise UsageError("--meter-command is only used with --meter external (e.g. --meter auto,external)")
    if not 0 < opts.meter_hz <= 50:
        raise UsageError(f"--meter-hz must be in (0, 50] samples per second, got {opts.meter_hz}")
    if opts.target_loss is not None and not opts.target_loss > 0:
        raise UsageError(f"--target-loss must be a positive loss in nats/token, got {opts.target_loss}")
    # Price a zero-energy run now, so that a bad region or PUE fails before training, not after.
    carbon.footprint(0.0, opts.region, opts.pue, opts.carbon_intensity, opts.net_intensity)

    if opts.data is not None:
        if opts.target_loss is None:
            raise UsageError("--data needs --target-loss (a user corpus has no known entropy floor)")
        data = TokenFile(opts.data, spec.seq_len)
        if data.vocab_size > spec.model.vocab_size:
            spec = _with_vocab(spec, data.vocab_size)
        info = {"kind": "user-file", "path": str(Path(opts.data).resolve()), "vocab_size": data.vocab_size,
                "entropy_floor": None}
        target = opts.target_loss
    else:
        if opts.corpus not in CORPUS_NAMES:
            raise UsageError(f"--corpus must be one of {', '.join(CORPUS_NAMES)}, got {opts.corpus!r}")
        cfg = spec.corpus_named(opts.corpus)
        data = MarkovMixture(cfg)
        floor = entropy_floor(cfg)
        info = {"kind": "procedural", "corpus": opts.corpus, "config": asdict(cfg), "entropy_floor": floor,
                "contexts_to_memorise": cfg.num_contexts}
        target = opts.target_loss if opts.target_loss is not None else floor + spec.target_margin
    eval_set = data.eval_set()
    info["eval_sha256"] = dataset_sha256(eval_set)
    info["eval_sequences"] = int(eval_set.shape[0])

    request = meters.MeterRequest(names, cpu_tdp=opts.cpu_tdp, tpu_watts=opts.tpu_watts,
                                  external_command=opts.meter_command, external_hz=opts.meter_hz)
    accelerators = training_accelerators()
    chosen, unavailable = meters.select_meters(request, accelerators)
    if not chosen:
        reasons = "; ".join(u["reason"] for u in unavailable)
        raise UsageError(f"no energy meter is available: {reasons}")
    if spec.sized_for == "accelerator" and not accelerators and not opts.allow_cpu:
        steps = typical_steps(reference_samples(spec.name, spec.batch_size) or [], spec.batch_size)
        raise UsageError(cpu_refusal(spec, steps))
    return Plan(spec, data, info, target, opts.max_steps or spec.max_steps, chosen, unavailable)


def _with_vocab(spec: WorkloadSpec, vocab: int) -> WorkloadSpec:
    return replace(spec, model=replace(spec.model, vocab_size=vocab))


def execute(opts: RunOptions, p: Plan) -> tuple[Path, dict[str, Any]]:
    """Run the plan. Whatever happens, result.json is written; an interrupted run is marked `aborted`."""
    run_dir = record.new_run_dir(Path(opts.output_dir), p.spec.name)
    sampler = meters.Sampler(p.meters, hz=opts.sample_hz)
    loop = LoopResult()
    methods = {f"{m.name}/{c}": m.method for m in p.meters for c in m.components()}
    energy_label = "+".join(sorted(set(methods.values())))
    previous = signal.signal(signal.SIGTERM, _raise_aborted)
    sampler.start()
    try:
        with Progress(p.spec.name, p.target_loss, p.max_steps, energy_label, sampler, opts.progress) as prog:
            train_to_target(p.spec, p.data, p.target_loss, opts.seed, p.max_steps, sampler, loop, prog.update)
    except BaseException as e:
        # Ctrl-C, SIGTERM or a crash: close the window now so that what ran is still accounted for.
        loop.status = "aborted"
        loop.error = None if isinstance(e, KeyboardInterrupt | RunAborted) else repr(e)
        if "run_stop" not in loop.marks:
            loop.marks["run_stop"] = sampler.mark("aborted")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        sampler.stop()
        result = _assemble(opts, p, loop, sampler, methods, run_dir)
    return run_dir, result


def _raise_aborted(signum, frame) -> None:
    raise RunAborted(f"signal {signum}")


def _window(sampler, p: Plan, start: str, stop: str) -> dict[str, Any] | None:
    if start in sampler.marks and stop in sampler.marks:
        return measure_window(sampler, p.meters, start, stop)
    return None


def _assemble(opts: RunOptions, p: Plan, loop: LoopResult, sampler, methods: dict[str, str],
              run_dir: Path) -> dict[str, Any]:
    stop_label = "run_stop" if "run_stop" in sampler.marks else "aborted"
    run_w = _window(sampler, p, "run_start", stop_label)
    init_w = _window(sampler, p, "init_start", "init_stop")
    marks = loop.marks
    run_s = marks["run_stop"] - marks["run_start"] if {"run_start", "run_stop"} <= marks.keys() else None
    init_s = marks["init_stop"] - marks["init_start"] if {"init_start", "init_stop"} <= marks.keys() else None
    total_j = run_w["total_j"] if run_w else None
    energy_ok = total_j is not None and math.isfinite(total_j)

    tokens = loop.steps * p.spec.batch_size * p.spec.seq_len
    model_flops = loop.train_flops_per_token * tokens + loop.eval_flops
    evals = [e["eval_loss"] for e in loop.eval_trace]
    dropped = [r["dropped_fraction"] for r in loop.step_metrics if "dropped_fraction" in r]
    quality = _with_energy(loop.eval_trace, sampler)
    hashes = record.write_traces(run_dir, sampler.power_rows(), quality, loop.step_metrics)
    energy = _energy_section(opts, p, sampler, methods, run_w, init_w, stop_label, total_j, energy_ok)
    footprint = (carbon.footprint(total_j, opts.region, opts.pue, opts.carbon_intensity, opts.net_intensity)
                 .to_dict() if energy_ok else None)
    result = {
        "run_id": run_dir.name,
        "created_unix_s": time.time(),
        "workload": p.spec.name,
        "status": loop.status,
        "error": loop.error,
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
        "efficiency": efficiency(model_flops=model_flops, tokens=tokens, seconds=run_s,
                                 devices=loop.framework.get("devices", []), dtype=p.spec.model.dtype,
                                 total_j=total_j if energy_ok else None, energy_method=energy["method"],
                                 components=energy["components"]),
        "carbon": footprint,
        "eval_trace": quality,
        "environment": {"hardware": environment.hardware(), "software": environment.software()},
        "files": hashes,
    }
    record.write_result(run_dir, result)  # first: nothing below may cost the run its result
    try:
        for name in write_run_logs(result, run_dir):
            result["files"][name] = sha256_file(run_dir / name)
    except Exception as e:  # a log-rendering bug must not lose a measured run; it is recorded instead
        result["mllog_error"] = repr(e)
    record.write_result(run_dir, result)
    return result


def _energy_section(opts: RunOptions, p: Plan, sampler, methods: dict[str, str], run_w: dict | None,
                    init_w: dict | None, stop_label: str, total_j: float | None, energy_ok: bool) -> dict[str, Any]:
    run_c, init_c = (run_w or {}).get("components", {}), (init_w or {}).get("components", {})
    return {
        "window": f"run_start..{stop_label}",
        "total_j": total_j if energy_ok else None,
        "method": run_w["method"] if run_w else "+".join(sorted(set(methods.values()))),
        "basis": run_w["basis"] if run_w else None,
        "device_j": run_w["device_j"] if run_w else None,
        "node_j": run_w["node_j"] if run_w else None,
        "components": {
            k: {"joules": run_c.get(k, {}).get("joules"), "init_joules": init_c.get(k, {}).get("joules"),
                "method": methods[k]} | {f: run_c.get(k, {}).get(f) for f in _COMPONENT_FIELDS}
            for k in methods
        },
        "init_j": init_w["total_j"] if init_w else None,
        "cross_checks": run_w["cross_checks"] if run_w else [],
        "flags": (run_w or {}).get("flags", []) + (init_w or {}).get("flags", []),
        "warnings": [w for m in p.meters for w in m.warnings()],
        "meters": [m.params() for m in p.meters],
        "unavailable": p.unavailable,
        "sampler": {"target_hz": opts.sample_hz, "achieved_hz": sampler.achieved_hz(),
                    "samples": len(sampler.times), "errors": [asdict(e) for e in sampler.errors],
                    "gaps_over_2s": sampler.gaps(GAP_S)},
    }


_COMPONENT_FIELDS = ("scope", "part", "avg_watts", "peak_watts", "peak_source", "power_limit_w")


def _with_energy(trace: list[dict], sampler) -> list[dict]:
    """quality.csv rows gain the energy spent since run_start at each eval (for loss-vs-energy plots)."""
    rows = []
    for point in trace:
        joules = measure_window(sampler, sampler.meters, "run_start", point["mark"])["total_j"]
        rows.append({k: v for k, v in point.items() if k != "mark"} | {"energy_j": joules})
    return rows
