"""The timed training loop under MLPerf's rules.

init (data set-up, model init, jit compilation of the train and eval steps) is untimed and metered apart.
The timed window runs from run_start to run_stop and includes evaluation. run_stop is the first eval that
meets the target (`converged`) or the end of the step budget (`not_converged`). Device work is synchronised
(`block_until_ready`) at every window edge so that no queued work leaks across a boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from workloads.models import count_params, train_flops_per_token
from workloads.registry import WorkloadSpec
from workloads.train import make_steps

# The live display reads the loss at most this often: each read waits for that step to finish.
PROGRESS_PERIOD_S = 0.5


class DataSource(Protocol):
    def train_batch(self, run_seed: int, step: int, batch: int) -> np.ndarray: ...
    def eval_set(self) -> np.ndarray: ...


class Marks(Protocol):
    """Where the loop records window edges; the meters' sampler in practice."""

    def mark(self, label: str) -> float: ...


@dataclass
class LoopResult:
    status: str = "aborted"
    error: str | None = None
    steps: int = 0
    eval_trace: list[dict[str, float]] = field(default_factory=list)
    step_metrics: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, int] = field(default_factory=dict)
    train_flops_per_token: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)


def _host_metrics(step: int, metrics: dict) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step}
    for key, value in jax.device_get(metrics).items():
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
) -> LoopResult:
    """Fill `result` as the run goes, so that an interrupted run still leaves what it did."""
    batch = spec.batch_size
    result.marks["init_start"] = marks.mark("init_start")

    eval_tokens = jnp.asarray(data.eval_set())
    first = jnp.asarray(data.train_batch(seed, 0, batch))
    steps = make_steps(spec.model, spec.optimizer, max_steps)
    state = jax.jit(steps.init)(jax.random.PRNGKey(seed), first)
    train_step = jax.jit(steps.train, donate_argnums=0).lower(state, first).compile()
    eval_step = jax.jit(steps.eval).lower(state.params, eval_tokens).compile()
    result.params = count_params(state.params)
    result.train_flops_per_token = train_flops_per_token(spec.model, spec.seq_len)
    jax.block_until_ready(state)
    result.marks["init_stop"] = marks.mark("init_stop")

    result.marks["run_start"] = marks.mark("run_start")
    t0 = time.perf_counter()
    pending: list[tuple[int, dict]] = []
    tokens_per_step = batch * spec.seq_len
    result.status = "running"
    last_update = t0
    for step in range(1, max_steps + 1):
        state, metrics = train_step(state, jnp.asarray(data.train_batch(seed, step, batch)))
        pending.append((step, metrics))
        result.steps = step
        now = time.perf_counter()
        if on_progress and now - last_update >= PROGRESS_PERIOD_S:
            last_update = now
            on_progress({"step": step, "elapsed_s": now - t0, "train_loss": float(metrics["loss"])})
        if step % spec.eval_every_steps == 0 or step == max_steps:
            # Wall-clock time, for the :::MLLOG eval_start record; the step work before it may still be queued.
            eval_start = time.time()
            # Pulling the eval loss to the host synchronises all queued device work.
            total, count = eval_step(state.params, eval_tokens)
            eval_loss = float(total) / float(count)
            result.step_metrics.extend(_host_metrics(s, m) for s, m in pending)
            pending.clear()
            label = f"eval_{step}"
            eval_stop = marks.mark(label)
            point = {"step": step, "elapsed_s": time.perf_counter() - t0, "tokens": step * tokens_per_step,
                     "eval_loss": eval_loss, "train_loss": result.step_metrics[-1]["loss"], "mark": label,
                     "eval_start_unix_s": eval_start, "eval_stop_unix_s": eval_stop}
            result.eval_trace.append(point)
            if on_progress:
                on_progress(point)
            if eval_loss <= target_loss:
                result.status = "converged"
                break
    else:
        result.status = "not_converged"
    jax.block_until_ready(state)
    result.marks["run_stop"] = marks.mark("run_stop")
    return result
