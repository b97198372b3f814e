"""The timed training loop under MLPerf's rules.

init (data set-up, model init, jit compilation of the train and eval steps) is untimed and metered apart.
The timed window runs from run_start to run_stop and includes evaluation. run_stop is the first eval that
meets the target (`converged`) or the end of the step budget (`not_converged`). Device work is synchronised
(`block_until_ready`) at every window edge so that no queued work leaks across a boundary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from harness.results.schema import Status
from harness.runner.prefetch import Prefetcher, chunk_for
from workloads.flops import executed_train_flops_per_token, forward_flops_per_token, train_flops_per_token
from workloads.mesh import MeshShape
from workloads.specs import WorkloadSpec
from workloads.trainers import build_trainer

# The live display reads the loss at most this often: each read waits for that step to finish.
PROGRESS_PERIOD_S = 0.5


class DataSource(Protocol):
    def train_batch(self, run_seed: int, step: int, batch: int) -> np.ndarray: ...
    def train_batches(self, run_seed: int, first_step: int, count: int, batch: int) -> np.ndarray: ...
    def eval_set(self) -> np.ndarray: ...


class Marks(Protocol):
    """Where the loop records window edges; the meters' sampler in practice."""

    def mark(self, label: str) -> float: ...


@dataclass
class LoopResult:
    """What the loop did so far (harness/results/build.py's LoopFacts): filled as it goes, so that an
    interrupted run still leaves a record."""

    status: str = Status.ABORTED
    error: str | None = None
    steps: int = 0
    eval_trace: list[dict[str, float]] = field(default_factory=list)
    step_metrics: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, int] = field(default_factory=dict)
    train_flops_per_token: float = 0.0
    executed_flops_per_token: float | None = None  # what the compiled step computes (workloads/flops.py)
    eval_flops_each: float = 0.0  # forward FLOPs of one pass over the eval set
    framework: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    # Records the metrics of the steps dispatched since the last evaluation (waiting for them): what a run that is
    # stopped between evaluations calls, so that steps.csv reaches `steps`. None before training starts.
    record_pending: Callable[[], list[dict[str, Any]]] | None = None
    # The trained parameters by Flax path (Trainer.weights), fetched after run_stop, outside the timed window;
    # None when not kept (--no-weights, an aborted run, a multi-process run).
    weights: dict[str, np.ndarray] | None = None


def _finite(x: float | None) -> float | None:
    """JSON has no NaN or inf: a non-finite figure is recorded as null (the status says why)."""
    return x if x is not None and math.isfinite(x) else None


def step_row(step: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """One steps.csv row from a step's host metrics."""
    row: dict[str, Any] = {"step": step}
    for key, value in metrics.items():
        if key == "expert_load":
            load = np.asarray(value)
            row["expert_load_max"] = float(load.max(axis=-1).mean())  # 1/E when perfectly balanced
            for layer, per_expert in enumerate(load):
                row.update({f"load_l{layer}_e{e}": float(x) for e, x in enumerate(per_expert)})
        else:
            row[key] = float(value)
    return row


def train_to_target(
    spec: WorkloadSpec,
    data: DataSource,
    target_loss: float,
    seed: int,
    max_steps: int,
    marks: Marks,
    result: LoopResult,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    framework: str = "jax",
    mesh: MeshShape | None = None,
    checkpoint: Callable[[], None] | None = None,
    steps_per_dispatch: int = 1,
    keep_weights: bool = False,
) -> LoopResult:
    """Fill `result` as the run goes, so that an interrupted run still leaves what it did; `checkpoint` is
    called at run_start and after every evaluation (the runner writes the record so far). `steps_per_dispatch`
    K must divide `eval_every_steps` and `max_steps` (harness/runner/plan.py `dispatch_steps` chooses it): the loop then
    dispatches K steps a call, and evaluates, reads the loss and records per-step metrics at the same steps.
    `keep_weights`: fetch the trained parameters into `result.weights` once the timed window is closed."""
    batch, k = spec.batch_size, steps_per_dispatch
    if spec.eval_every_steps % k or max_steps % k:
        raise ValueError(f"steps_per_dispatch {k} must divide eval_every_steps {spec.eval_every_steps} and "
                         f"max_steps {max_steps}")
    result.marks["init_start"] = marks.mark("init_start")
    eval_set = data.eval_set()
    trainer = build_trainer(framework, spec, seed, max_steps, data.train_batch(seed, 0, batch), eval_set, mesh, k)
    result.params = trainer.param_counts
    result.framework = trainer.describe()
    result.train_flops_per_token = train_flops_per_token(spec.model, spec.seq_len)
    result.executed_flops_per_token = executed_train_flops_per_token(
        spec.model, batch, spec.seq_len, devices=mesh.devices if mesh else 1,
        backend=str(result.framework.get("backend", "cpu")), ragged=bool(result.framework.get("ragged_dot_triton")))
    result.eval_flops_each = forward_flops_per_token(spec.model, spec.seq_len) * int(eval_set.shape[0]) * spec.seq_len
    result.marks["init_stop"] = marks.mark("init_stop")

    result.marks["run_start"] = marks.mark("run_start")
    result.status = Status.RUNNING
    if checkpoint:
        checkpoint()
    t0 = time.perf_counter()
    pending: list[tuple[int, Any]] = []  # (a call's last step, its handle) since the last evaluation

    def record_pending() -> list[dict[str, Any]]:
        fetched = trainer.host_metrics([h for _, h in pending])  # K a call
        steps = [s for last, _ in pending for s in range(last - k + 1, last + 1)]
        rows = [step_row(s, m) for s, m in zip(steps, fetched, strict=True)]
        result.step_metrics.extend(rows)
        if pending:  # a stop can land between a call's dispatch and the count: the count follows what ran
            result.steps = max(result.steps, pending[-1][0])
        pending.clear()
        return rows

    result.record_pending = record_pending
    tokens_per_step = batch * spec.seq_len
    last_update = t0

    def make(first_call: int, count: int) -> np.ndarray:
        """The batches of calls first_call.. first_call + count - 1: [count, batch, ...], or [count, K, batch, ...]."""
        made = data.train_batches(seed, (first_call - 1) * k + 1, count * k, batch)
        return made if k == 1 else made.reshape(count, k, *made.shape[1:])

    with Prefetcher(make, trainer.to_device, 1, max_steps // k, chunk=max(1, chunk_for(batch) // k)) as calls:
        for call in range(1, max_steps // k + 1):
            step = call * k  # the call's last step
            handle = trainer.step(calls.get(call))
            pending.append((step, handle))
            result.steps = step
            now = time.perf_counter()
            diverging = False
            if on_progress and now - last_update >= PROGRESS_PERIOD_S:
                last_update = now
                loss = trainer.latest_loss(handle)  # a host sync: a non-finite loss stops the run here
                diverging = not math.isfinite(loss)
                on_progress({"step": step, "elapsed_s": now - t0, "train_loss": loss})
            if step % spec.eval_every_steps == 0 or step == max_steps or diverging:
                # Wall-clock time, for the :::MLLOG eval_start record; the step work before it may still be queued.
                eval_start = time.time()
                ev = trainer.evaluate()  # waits for every queued step, then for the eval itself
                fetched = record_pending()
                label = f"eval_{step}"
                eval_stop = marks.mark(label)
                point = {"step": step, "elapsed_s": time.perf_counter() - t0, "tokens": step * tokens_per_step,
                         "eval_loss": _finite(ev.loss), "eval_loss_stderr": _finite(ev.stderr),
                         "train_loss": _finite(result.step_metrics[-1]["loss"]), "mark": label,
                         "eval_start_unix_s": eval_start, "eval_stop_unix_s": eval_stop}
                result.eval_trace.append(point)
                if on_progress:
                    on_progress(point)
                bad = next((r["step"] for r in fetched if not math.isfinite(r["loss"])), None)
                if bad is not None or not math.isfinite(ev.loss):
                    # Diverged: nothing after a NaN or inf is training; stop with what was spent up to here.
                    result.status = Status.DIVERGED
                    result.error = (f"training loss non-finite at step {bad}" if bad is not None
                                    else f"eval loss non-finite at step {step}")
                    if checkpoint:
                        checkpoint()
                    break
                if checkpoint:
                    checkpoint()
                if ev.loss <= target_loss:
                    result.status = Status.CONVERGED
                    break
        else:
            result.status = Status.NOT_CONVERGED
    result.record_pending = None
    trainer.sync()
    result.marks["run_stop"] = marks.mark("run_stop")
    if keep_weights:
        result.weights = trainer.weights()  # after run_stop: keeping them is not part of the timed work
    return result
