"""One `harness run`: check every input, meter the run, train to target, price it in CO2e, write results."""

from __future__ import annotations

import itertools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import carbon, meters
from harness.errors import UsageError
from harness.mlperf.runlog import write_run_logs
from harness.mlperf.runset import reference_samples
from harness.results import record
from harness.results.emissions import EMISSIONS_CSV, append_row, row_from_result
from harness.results.files import check_writable, sha256_file
from harness.runner.assemble import build_result, eval_energy_sum, measure_process, merge_hosts, quality_rows
from harness.runner.cluster import (
    GATHER_TIMEOUT_S,
    HEARTBEAT_S,
    LOST_AFTER_S,
    RUNTIME_HEARTBEAT_TIMEOUT_S,
    Cluster,
)
from harness.runner.devices import Placement, place
from harness.runner.progress import Progress
from harness.runner.sizing import cpu_refusal, typical_steps
from harness.runner.training import LoopResult, train_to_target
from workloads.corpus import MarkovMixture, dataset_sha256, entropy_floor
from workloads.registry import CORPUS_NAMES, WorkloadSpec, get_workload
from workloads.trainers import runtime
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
    meter: str = "auto"  # comma-separated backends (harness/meters/registry.py); "fake" is for tests only
    meter_options: dict[str, Any] = field(default_factory=dict)  # by option name, e.g. {"cpu_tdp": 65.0}
    sample_hz: float = 20.0
    progress: bool = True
    allow_cpu: bool = False  # run a workload sized for an accelerator on the CPU anyway
    mesh: str | None = None  # "data=D,expert=E"; None: every device on data, as far as the batch splits
    framework: str = "jax"
    # Multi-process runs (jax.distributed); none given: a single process, or detected from SLURM / Open MPI.
    coordinator: str | None = None  # HOST:PORT of process 0
    num_processes: int | None = None
    process_id: int | None = None
    peer_timeout_s: float = LOST_AFTER_S  # a process silent this long is lost; the others stop
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
    placement: Placement


def plan(opts: RunOptions) -> Plan:
    """Validate everything a run needs before any work starts; bad input raises a one-line error."""
    spec = opts.spec or get_workload(opts.workload)
    if opts.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {opts.seed}")
    if opts.max_steps is not None and opts.max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {opts.max_steps}")
    if opts.sample_hz < 10:
        raise UsageError(f"--sample-hz must be >= 10 (power traces need 10 Hz or more), got {opts.sample_hz}")
    names = meters.parse_meter_names(opts.meter)
    meters.check_request(meters.MeterRequest(names, **opts.meter_options))
    if opts.target_loss is not None and not opts.target_loss > 0:
        raise UsageError(f"--target-loss must be a positive loss in nats/token, got {opts.target_loss}")
    # Price a zero-energy run now, so that a bad region or PUE fails before training, not after.
    carbon.footprint(0.0, opts.region, opts.pue, opts.carbon_intensity, opts.net_intensity)
    check_writable(Path(opts.output_dir), "--output-dir")

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

    _join_processes(opts)
    placement = place(spec, opts.mesh, opts.framework)
    request = meters.MeterRequest(names, host_level=placement.leads_host, host_leader=placement.leader_of_host(),
                                  **opts.meter_options)
    accelerators = placement.accelerators()
    chosen, unavailable = meters.select_meters(request, accelerators)
    if not chosen and placement.leads_host:
        reasons = "; ".join(u["reason"] for u in unavailable)
        raise UsageError(f"no energy meter is available: {reasons}")
    if spec.sized_for == "accelerator" and not accelerators and not opts.allow_cpu:
        steps = typical_steps(reference_samples(spec.name, spec.batch_size) or [], spec.batch_size)
        raise UsageError(cpu_refusal(spec, steps))
    return Plan(spec, data, info, target, opts.max_steps or spec.max_steps, chosen, unavailable, placement)


def _join_processes(opts: RunOptions) -> None:
    """Join a multi-process run before anything touches a device (or detect one from SLURM / Open MPI)."""
    given = [x is not None for x in (opts.coordinator, opts.num_processes, opts.process_id)]
    if any(given) and not all(given):
        raise UsageError("a multi-process run needs --coordinator HOST:PORT, --num-processes N and --process-id I "
                         "together (or none of them, under SLURM or Open MPI)")
    if not 2 <= opts.peer_timeout_s <= RUNTIME_HEARTBEAT_TIMEOUT_S - 10:
        raise UsageError(f"--peer-timeout must be 2..{RUNTIME_HEARTBEAT_TIMEOUT_S - 10} s, got {opts.peer_timeout_s:g}")
    if opts.num_processes is not None and not 0 <= opts.process_id < opts.num_processes:
        raise UsageError(f"--process-id must be in 0..{opts.num_processes - 1}, got {opts.process_id}")
    if opts.coordinator is not None and (":" not in opts.coordinator or
                                         not opts.coordinator.rsplit(":", 1)[1].isdigit()):
        raise UsageError(f"--coordinator must be HOST:PORT, got {opts.coordinator!r}")
    runtime(opts.framework).initialize(opts.coordinator, opts.num_processes, opts.process_id,
                                       RUNTIME_HEARTBEAT_TIMEOUT_S)


def _with_vocab(spec: WorkloadSpec, vocab: int) -> WorkloadSpec:
    return replace(spec, model=replace(spec.model, vocab_size=vocab))


def execute(opts: RunOptions, p: Plan) -> tuple[Path, dict[str, Any]]:
    """Run the plan. Whatever happens, result.json is written; an interrupted run is marked `aborted`.

    In a multi-process run every process trains and meters; process 0 writes the one result.json. A lost
    process makes the others stop (PeerLost) after process 0 has written an `aborted` result naming it.
    """
    cluster = (Cluster(runtime(opts.framework), f"harness/run{next(_RUN_NUMBERS)}", opts.peer_timeout_s)
               if p.placement.processes > 1 else None)
    run_dir = _run_dir(opts, p, cluster)
    sampler = meters.Sampler(p.meters, hz=opts.sample_hz)
    loop = LoopResult()
    finish = _Finisher(opts, p, loop, sampler, run_dir, cluster)
    methods = {m.method for m in p.meters}
    previous = signal.signal(signal.SIGTERM, _raise_aborted)
    sampler.start()
    if cluster is not None:
        cluster.start_watch(finish.on_lost, lambda: {
            "step": loop.steps, "status": loop.status,
            "joules_since_run_start": sampler.joules_since("run_start") if "run_start" in sampler.marks else None})
    lost: list[int] = []
    try:
        show = opts.progress and p.placement.process == 0
        with Progress(p.spec.name, p.target_loss, p.max_steps, "+".join(sorted(methods)), sampler, show) as prog:
            train_to_target(p.spec, p.data, p.target_loss, opts.seed, p.max_steps,
                            sampler if cluster is None else _AlignedMarks(sampler, cluster), loop, prog.update,
                            framework=opts.framework, mesh=p.placement.mesh, checkpoint=finish.checkpoint)
    except BaseException as e:
        # Ctrl-C, SIGTERM, a crash or a lost peer: close the window now so that what ran is accounted for.
        loop.status = "aborted"
        loop.error = None if isinstance(e, KeyboardInterrupt | RunAborted) else _short(e)
        if cluster is not None:
            finish.main_handling = True
            lost = cluster.wait_for_lost(cluster.lost_after_s + 2 * HEARTBEAT_S)
            if lost:
                loop.error = f"process(es) {', '.join(map(str, lost))} lost; {loop.error}"
        if "run_stop" not in loop.marks:
            loop.marks["run_stop"] = sampler.mark("aborted")
        if lost:
            raise PeerLost(lost) from e
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if cluster is not None:
            cluster.stop_watch()
        sampler.stop()
        result = finish.write()
    return run_dir, result


_RUN_NUMBERS = itertools.count()


class PeerLost(Exception):
    """Another process of a multi-process run died or went silent; the result says which."""

    def __init__(self, lost: list[int]) -> None:
        super().__init__(f"process(es) {', '.join(map(str, lost))} lost")
        self.lost = lost


def _short(e: BaseException, limit: int = 300) -> str:
    """An error for the record: its type and the start of its message (runtime errors can repeat a prefix
    hundreds of times)."""
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _raise_aborted(signum, frame) -> None:
    raise RunAborted(f"signal {signum}")


class _AlignedMarks:
    """Marks that every process takes together: run_start and run_stop wait for all processes first, so
    that every host's window covers the same stretch of training."""

    def __init__(self, sampler, cluster: Cluster) -> None:
        self.sampler, self.cluster = sampler, cluster

    def mark(self, label: str) -> float:
        if label in ("run_start", "run_stop"):
            self.cluster.rt.barrier(f"{self.cluster.key}/{label}", BARRIER_TIMEOUT_S)
        return self.sampler.mark(label)


def _run_dir(opts: RunOptions, p: Plan, cluster: Cluster | None) -> Path:
    """Process 0 names the run; the others take its name (they write their own host's trace under it)."""
    if cluster is None or cluster.process == 0:
        run_dir = record.new_run_dir(Path(opts.output_dir), p.spec.name)
        if cluster is not None:
            cluster.put("run_dir", run_dir.name)
        return run_dir
    name = cluster.get("run_dir", 0, BARRIER_TIMEOUT_S)
    run_dir = Path(opts.output_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


class _Finisher:
    """Writes the run's record once, from the main thread at the end or from the watchdog when the main
    thread is stuck in a collective with a dead peer."""

    def __init__(self, opts: RunOptions, p: Plan, loop: LoopResult, sampler, run_dir: Path,
                 cluster: Cluster | None) -> None:
        self.opts, self.p, self.loop, self.sampler = opts, p, loop, sampler
        self.run_dir, self.cluster = run_dir, cluster
        self.main_handling = False
        self._last_checkpoint = -math.inf
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None

    def checkpoint(self) -> None:
        """The record so far (status `running`), written at run_start and after evaluations, so that a run
        killed outright still leaves it: readers then call it interrupted. Process 0 writes it, with its
        own energy only; at most every CHECKPOINT_MIN_S, and without fsync (it is replaced soon)."""
        now = time.monotonic()
        if (self.cluster is not None and self.cluster.process != 0) or now - self._last_checkpoint < CHECKPOINT_MIN_S:
            return
        self._last_checkpoint = now
        loop = self.loop
        latest = loop.eval_trace[-1]["mark"] if loop.eval_trace else "run_start"
        local = measure_process(self.sampler, self.p.meters, self.p.unavailable, loop, self.opts.sample_hz, latest)
        energy = local["energy"]
        if self.cluster is not None:
            energy["flags"] = energy["flags"] + ["partial record: process 0's energy only; every host's comes at "
                                                 "the end of the run"]
        result = build_result(self.opts, self.p, loop, energy, quality_rows(loop.eval_trace, local["eval_energy"]),
                              self.run_dir.name) | {"files": {}}
        with self._lock:
            if self._result is None:  # never over the final record
                record.write_result(self.run_dir, result, durable=False)

    def on_lost(self, lost: list[int]) -> None:
        """The watchdog's call. If the main thread is handling a failure it will write the record; otherwise
        it is stuck in a collective that will never complete: write the record from here and leave."""
        if self.main_handling:
            return
        self.loop.status = "aborted"
        self.loop.error = (f"process(es) {', '.join(map(str, lost))} lost (no heartbeat for "
                           f"{self.cluster.lost_after_s:g} s)")
        if "run_stop" not in self.loop.marks:
            self.loop.marks["run_stop"] = self.sampler.mark("aborted")
        self.write(emergency=True)
        leave_now(EXIT_PEER_LOST)

    def write(self, emergency: bool = False) -> dict[str, Any]:
        with self._lock:
            if self._result is None:
                self._result = self._write(emergency)
            return self._result

    def _write(self, emergency: bool) -> dict[str, Any]:
        loop, sampler, run_dir, cluster = self.loop, self.sampler, self.run_dir, self.cluster
        local = measure_process(sampler, self.p.meters, self.p.unavailable, loop, self.opts.sample_hz)
        rows = sampler.power_rows()
        if cluster is None:
            energy, eval_energy = local["energy"], local["eval_energy"]
            hashes = record.write_traces(run_dir, rows, quality_rows(loop.eval_trace, eval_energy), loop.step_metrics)
            return self._record(energy, quality_rows(loop.eval_trace, eval_energy), hashes)
        k = cluster.process
        record.write_host_trace(run_dir, k, rows)
        if k != 0:
            try:
                cluster.put("final", {"measured": local, "power_rows": rows})
            except Exception:  # process 0 (and its store) is gone: nobody can take the figures
                pass
            return {"status": loop.status, "process": k, "run_id": run_dir.name, "written_by": 0}
        # Process 0: every process's figures, or what their last heartbeats said (a lost or stuck process).
        finals = {0: {"measured": local, "power_rows": rows}}
        if not emergency:
            finals |= cluster.gather("final", GATHER_TIMEOUT_S)
        host_files = {}
        for j, final in finals.items():
            if j != 0:
                record.write_host_trace(run_dir, j, final["power_rows"])
        for j in finals:
            host_files[f"host_{j}/power.csv"] = sha256_file(run_dir / f"host_{j}" / "power.csv")
        missing = [j for j in range(cluster.processes) if j not in finals]
        measured = {j: f["measured"] for j, f in finals.items()}
        lost = sorted(set(cluster.lost) | set(missing))
        energy = merge_hosts(measured, [asdict(h) for h in self.p.placement.hosts], lost,
                             {j: cluster.last_status(j) for j in missing})
        quality = quality_rows(loop.eval_trace, eval_energy_sum(measured))
        hashes = record.write_traces(run_dir, rows, quality, loop.step_metrics) | host_files
        return self._record(energy, quality, hashes)

    def _record(self, energy: dict[str, Any], quality: list[dict], hashes: dict[str, str]) -> dict[str, Any]:
        result = build_result(self.opts, self.p, self.loop, energy, quality, self.run_dir.name) | {"files": hashes}
        record.write_result(self.run_dir, result)  # first: nothing below may cost the run its result
        try:
            for name in write_run_logs(result, self.run_dir):
                result["files"][name] = sha256_file(self.run_dir / name)
        except Exception as e:  # a log-rendering bug must not lose a measured run; it is recorded instead
            result["mllog_error"] = repr(e)
        path = record.write_result(self.run_dir, result)
        append_row(Path(self.opts.output_dir) / EMISSIONS_CSV, row_from_result(result, result["workload"], path))
        return result


CHECKPOINT_MIN_S = 1.0
BARRIER_TIMEOUT_S = 3600.0  # a peer that dies while others wait here is caught by the watchdog, not this
EXIT_PEER_LOST = 1


def leave_now(code: int) -> None:
    """Exit now, from any thread, without the framework's shutdown (its barrier would wait for the dead)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
