"""Executing a run's plan: the sampler started, signals caught, the loop driven to its target, the cluster
watched; whatever happens, the record is written (harness/runner/finish.py) and an interrupted run is
marked `aborted`.

In a multi-process run every process trains and meters; process 0 writes the one record. A lost process
makes the others stop (PeerLost) after process 0 has written an `aborted` record naming it.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path
from typing import Any

from harness import meters
from harness.meters.contention import cpu_snapshot
from harness.mlperf.loadgen_logs import write_window_logs
from harness.results.schema import ABORT_MARK, RunRecord, Status
from harness.results.writer import new_folder
from harness.runner.cluster import HEARTBEAT_S, Cluster
from harness.runner.finish import Finisher
from harness.runner.loop import LoopResult, train_to_target
from harness.runner.plan import RunOptions, RunPlan
from harness.runner.progress import Progress
from workloads.trainers import runtime

BARRIER_TIMEOUT_S = 3600.0  # a peer that dies while others wait here is caught by the watchdog, not this
EXIT_PEER_LOST = 1
_RUN_NUMBERS = itertools.count()


class RunAborted(Exception):
    """Raised in the main thread on SIGTERM so that the run is recorded as aborted, like Ctrl-C."""


class PeerLost(Exception):
    """Another process of a multi-process run died or went silent; the record says which."""

    def __init__(self, lost: list[int]) -> None:
        super().__init__(f"process(es) {', '.join(map(str, lost))} lost")
        self.lost = lost


def execute(opts: RunOptions, p: RunPlan) -> tuple[Path, RunRecord | dict[str, Any]]:
    """Run the plan; returns the run's folder and its record (a process other than 0: what it sent)."""
    cluster = (Cluster(runtime(opts.framework), f"harness/run{next(_RUN_NUMBERS)}", opts.peer_timeout_s)
               if p.placement.processes > 1 else None)
    run_dir = _run_dir(opts, p.spec.name, cluster)
    sampler = meters.Sampler(p.meters, hz=opts.sample_hz, accounting=cpu_snapshot)
    loop = LoopResult()
    finish = Finisher(opts, p, loop, sampler, run_dir, cluster)
    methods = {m.method for m in p.meters}
    previous = signal.signal(signal.SIGTERM, _raise_aborted)
    sampler.start()
    if cluster is not None:
        cluster.start_watch(lambda lost: finish.on_lost(lost, lambda: leave_now(EXIT_PEER_LOST)), lambda: {
            "step": loop.steps, "status": loop.status,
            "joules_since_run_start": sampler.joules_since("run_start") if "run_start" in sampler.marks else None})
    lost: list[int] = []
    try:
        show = opts.progress and p.placement.process == 0
        with Progress(p.spec.name, p.target_loss, p.max_steps, "+".join(sorted(methods)), sampler, show) as prog:
            train_to_target(p.spec, p.data, p.target_loss, opts.seed, p.max_steps,
                            sampler if cluster is None else _AlignedMarks(sampler, cluster), loop, prog.update,
                            framework=opts.framework, mesh=p.placement.mesh, checkpoint=finish.checkpoint,
                            steps_per_dispatch=p.steps_per_dispatch,
                            keep_weights=opts.keep_weights and cluster is None)
    except BaseException as e:
        # Ctrl-C, SIGTERM, a crash or a lost peer: close the window now so that what ran is accounted for.
        loop.status = Status.ABORTED
        loop.error = None if isinstance(e, KeyboardInterrupt | RunAborted) else _short(e)
        if cluster is None and loop.error is None and loop.record_pending is not None:
            # Stopped by Ctrl-C or SIGTERM between evaluations: the steps already dispatched run to their end
            # anyway (inside a K-step call, to the call's end); record their metrics, so that steps.csv holds
            # every step the record counts. Not with peers: a step with a lost peer in it never ends.
            loop.record_pending()
        if cluster is not None:
            finish.main_handling = True
            lost = cluster.wait_for_lost(cluster.lost_after_s + 2 * HEARTBEAT_S)
            if lost:
                loop.error = f"process(es) {', '.join(map(str, lost))} lost; {loop.error}"
        if "run_stop" not in loop.marks:
            loop.marks["run_stop"] = sampler.mark(ABORT_MARK)
        if lost:
            raise PeerLost(lost) from e
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if cluster is not None:
            cluster.stop_watch()
        sampler.stop()
        record = finish.write()
    if opts.loadgen_log_dir is not None and p.placement.process == 0:
        write_window_logs(record, Path(opts.loadgen_log_dir))
    return run_dir, record


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


def _run_dir(opts: RunOptions, name: str, cluster: Cluster | None) -> Path:
    """Process 0 names the run; the others take its name (they write their own host's trace under it)."""
    if cluster is None or cluster.process == 0:
        run_dir = new_folder(Path(opts.output_dir), name)
        if cluster is not None:
            cluster.put("run_dir", run_dir.name)
        return run_dir
    run_dir = Path(opts.output_dir) / cluster.get("run_dir", 0, BARRIER_TIMEOUT_S)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def leave_now(code: int) -> None:
    """Exit now, from any thread, without the framework's shutdown (its barrier would wait for the dead)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
