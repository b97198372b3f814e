"""Finishing a run: its windows measured, its record built (harness/results/build.py) and written with every
file rendered from it, none lost in silence (a file that cannot be written is listed in the record).

Process 0 writes the one record of a multi-process run from every process's measurement; the others send
theirs. The record is written once, from the main thread at the end, or from the watchdog when the main
thread is stuck in a collective with a dead peer. While the run goes, a record with status `running` is
written at run_start and after evaluations (at most every CHECKPOINT_MIN_S), so that a run killed outright
still leaves one: readers then call it interrupted.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness.meters.contention import cpu_between
from harness.meters.window import measure_window, session_facts
from harness.mlperf.runlog import render_power_log, render_run_log, run_log_names
from harness.results.build import energy_from_windows, eval_energy_sum, eval_points, merge_hosts, run_record
from harness.results.emissions import ROW as EMISSIONS_ROW
from harness.results.emissions import append_record
from harness.results.encoding import energy_from_json, energy_to_json
from harness.results.files import atomic_write_npz
from harness.results.schema import ABORT_MARK, WEIGHTS_FILE, Device, Energy, EvalPoint, RunRecord, Status, Weights
from harness.results.writer import RecordFiles
from harness.runner.cluster import GATHER_TIMEOUT_S, Cluster
from harness.runner.loop import LoopResult
from harness.runner.plan import RunOptions, RunPlan
from workloads.specs import precision_of, spec_sha256

CHECKPOINT_MIN_S = 1.0


def measure_process(sampler, meters: list, unavailable: list[dict[str, str]], loop: LoopResult,
                    stop_label: str | None = None) -> tuple[Energy, dict[str, float | None]]:
    """This process's energy over run_start..stop_label (a record written during the run: its latest
    evaluation; else run_stop or the abort), and the energy since run_start at each evaluation."""
    stop_label = stop_label or ("run_stop" if "run_stop" in sampler.marks else ABORT_MARK)

    def window(start: str, stop: str) -> dict[str, Any] | None:
        ok = start in sampler.marks and stop in sampler.marks and start != stop
        return measure_window(sampler, meters, start, stop) if ok else None

    cpu = cpu_between(sampler.accounts.get("run_start"), sampler.accounts.get(stop_label))
    energy = energy_from_windows(window("run_start", stop_label), window("init_start", "init_stop"),
                                 stop_label=stop_label, facts=session_facts(sampler, meters), unavailable=unavailable,
                                 cpu=cpu)
    eval_energy = {}
    if "run_start" in sampler.marks:
        for point in loop.eval_trace:
            if point["mark"] in sampler.marks:
                eval_energy[point["mark"]] = measure_window(sampler, meters, "run_start", point["mark"])["total_j"]
    return energy, eval_energy


class Finisher:
    """Writes a run's record: `checkpoint()` while it goes, `write()` once at the end."""

    def __init__(self, opts: RunOptions, p: RunPlan, loop: LoopResult, sampler, run_dir: Path,
                 cluster: Cluster | None) -> None:
        self.opts, self.p, self.loop, self.sampler = opts, p, loop, sampler
        self.run_dir, self.cluster = run_dir, cluster
        self.main_handling = False  # the main thread is handling a failure and will write the record
        self._last_checkpoint = -math.inf
        self._checkpoint_failed = False
        self._lock = threading.Lock()
        self._record: RunRecord | None = None

    def checkpoint(self) -> None:
        """The record so far (status `running`), without fsync (it is replaced soon). Process 0 writes it,
        with its own energy only. A failed write (a full disk) is said once and does not stop the run."""
        now = time.monotonic()
        if (self.cluster is not None and self.cluster.process != 0) or now - self._last_checkpoint < CHECKPOINT_MIN_S:
            return
        self._last_checkpoint = now
        loop = self.loop
        latest = loop.eval_trace[-1]["mark"] if loop.eval_trace else "run_start"
        energy, eval_energy = measure_process(self.sampler, self.p.meters, self.p.unavailable, loop, latest)
        if self.cluster is not None:
            energy = replace(energy, flags=(*energy.flags, "partial record: process 0's energy only; every host's "
                                                           "comes at the end of the run"))
        record = self._build(energy, eval_points(loop.eval_trace, eval_energy))
        with self._lock:
            if self._record is not None:  # never over the final record
                return
            _, ok = RecordFiles(self.run_dir).record(record, durable=False)
        if not ok and not self._checkpoint_failed:
            self._checkpoint_failed = True
            print(f"harness: warning: could not write the running record in {self.run_dir}; the run goes on",
                  file=sys.stderr)

    def on_lost(self, lost: list[int], leave) -> None:
        """The watchdog's call. If the main thread is handling a failure it will write the record; otherwise
        it is stuck in a collective that will never complete: write the record from here and `leave`."""
        if self.main_handling:
            return
        self.loop.status = Status.ABORTED
        self.loop.error = (f"process(es) {', '.join(map(str, lost))} lost (no heartbeat for "
                           f"{self.cluster.lost_after_s:g} s)")
        if "run_stop" not in self.loop.marks:
            self.loop.marks["run_stop"] = self.sampler.mark(ABORT_MARK)
        self.write(emergency=True)
        leave()

    def write(self, emergency: bool = False) -> RunRecord | dict[str, Any]:
        """The final record, written once (a process other than 0 returns what it sent to process 0)."""
        with self._lock:
            if self._record is None:
                self._record = self._write(emergency)
            return self._record

    def _write(self, emergency: bool) -> RunRecord | dict[str, Any]:
        loop, sampler, cluster = self.loop, self.sampler, self.cluster
        energy, eval_energy = measure_process(sampler, self.p.meters, self.p.unavailable, loop)
        rows = sampler.power_rows()
        files = RecordFiles(self.run_dir)
        if cluster is None:
            return self._finish(files, energy, eval_energy, rows)
        k = cluster.process
        files.csv(f"host_{k}/power.csv", rows)
        if k != 0:
            try:
                cluster.put("final", {"energy": energy_to_json(energy), "eval_energy": eval_energy,
                                      "power_rows": rows})
            except Exception:  # process 0 (and its store) is gone: nobody can take the figures
                pass
            return {"status": loop.status, "process": k, "run_id": self.run_dir.name, "written_by": 0}
        # Process 0: every process's figures, or what their last heartbeats said (a lost or stuck process).
        finals = {0: {"energy": energy, "eval_energy": eval_energy}}
        if not emergency:
            for j, final in cluster.gather("final", GATHER_TIMEOUT_S).items():
                files.csv(f"host_{j}/power.csv", final["power_rows"])
                finals[j] = {"energy": energy_from_json(final["energy"]), "eval_energy": final["eval_energy"]}
        missing = [j for j in range(cluster.processes) if j not in finals]
        lost = sorted(set(cluster.lost) | set(missing))
        merged = merge_hosts({j: f["energy"] for j, f in finals.items()}, [asdict(h) for h in self.p.placement.hosts],
                             lost, {j: cluster.last_status(j) for j in missing})
        return self._finish(files, merged, eval_energy_sum([f["eval_energy"] for f in finals.values()]), rows)

    def _finish(self, files: RecordFiles, energy: Energy, eval_energy: dict[str, float | None],
                rows: list[dict[str, float]]) -> RunRecord:
        """Traces, then the record (listing what is still to come), then what is rendered from it, then the
        record again: whatever fails, the record on disk says what is missing."""
        points = eval_points(self.loop.eval_trace, eval_energy)
        if self.loop.weights is not None:
            files.write(WEIGHTS_FILE, lambda path: atomic_write_npz(path, self.loop.weights))
        files.csv("power.csv", rows)
        files.csv("quality.csv", [asdict(p) for p in points])
        files.csv("steps.csv", self.loop.step_metrics)
        record = replace(self._build(energy, points), weights=self._weights(files))
        logs = run_log_names(record)
        files.expect(*logs, EMISSIONS_ROW)
        record, _ = files.record(record)  # first: nothing below may cost the run its record
        files.text("mllog.txt", lambda: render_run_log(record))
        for name, (node, host) in logs.items():
            if name != "mllog.txt":
                files.text(name, lambda node=node, host=host: render_power_log(record, self.run_dir, node, host))
        note = append_record(files, Path(self.opts.output_dir), record)
        if note:
            print(f"harness: {note}", file=sys.stderr)
        record, _ = files.record(record)
        return record

    def _build(self, energy: Energy, points: list[EvalPoint]) -> RunRecord:
        p, opts, spec = self.p, self.opts, self.p.spec
        record = run_record(
            self.loop, run_id=self.run_dir.name, seed=opts.seed, spec=spec.to_dict(), data=p.data_info,
            target_loss=p.target_loss, max_steps=p.max_steps, batch_size=spec.batch_size, seq_len=spec.seq_len,
            dtype=spec.model.dtype, precision=precision_of(spec.model), energy=energy, eval_trace=points,
            pricing=p.pricing, devices=self._devices(), parallelism=self._parallelism())
        return replace(record, source=self.run_dir / "result.json")

    def _weights(self, files: RecordFiles) -> Weights | None:
        """What the record says of the kept weights (None: not kept, or their file could not be written)."""
        arrays = self.loop.weights
        if arrays is None or WEIGHTS_FILE not in files.hashes:
            return None
        return Weights(file=WEIGHTS_FILE, sha256=files.hashes[WEIGHTS_FILE],
                       bytes=(self.run_dir / WEIGHTS_FILE).stat().st_size,
                       parameters=sum(int(a.size) for a in arrays.values()),
                       spec_sha256=spec_sha256(self.p.spec.to_dict()), step=self.loop.steps)

    def _devices(self) -> list[Device]:
        listed = self.loop.framework.get("devices")
        if listed:
            return [Device(kind=d["kind"], platform=d["platform"], id=d.get("id", 0), process=d.get("process", 0))
                    for d in listed]
        return [Device(kind=d.kind, platform=d.platform, id=d.id, process=d.process) for d in self.p.placement.devices]

    def _parallelism(self) -> dict[str, Any]:
        """The mesh, for the record and the MLPerf disclosure keys; a run without a mesh is data=1, expert=1."""
        placement = self.p.placement
        mesh = placement.mesh
        return {"data": mesh.data if mesh else 1, "expert": mesh.expert if mesh else 1,
                "devices": len(placement.devices), "device_kinds": sorted({d.kind for d in placement.devices}),
                "processes": placement.processes, "mesh_path": mesh is not None, "notes": list(placement.notes)}
