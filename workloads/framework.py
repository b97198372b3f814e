"""The one interface between the runner and a framework's implementation of a workload.

The runner never imports JAX or TensorFlow: it asks `workloads.trainers.build_trainer` for a Trainer and
drives it with numpy batches, device handles it does not look inside, and host-side numbers. Timing,
metering and the MLPerf rules stay in the runner; models, optimisers, devices and compilation stay behind
this seam. Each implementation imports this module; this module imports none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from workloads.errors import InputError


class FrameworkUnavailableError(InputError):
    """The framework asked for is unknown, not installed, or cannot do what was asked (a one-line usage error)."""


@dataclass(frozen=True)
class Device:
    """One accelerator or CPU device as a framework lists it."""

    kind: str  # e.g. "NVIDIA H100 80GB HBM3", "TPU v4", "cpu"
    platform: str  # "gpu", "tpu", "cpu"
    id: int  # global id
    process: int  # index of the process that drives it
    local_index: int  # the process-local ordinal (what CUDA_VISIBLE_DEVICES maps), for the meters


class Runtime(Protocol):
    """A framework's process-level services: devices, and the multi-process runtime when there is one."""

    name: str

    def initialize(self, coordinator: str | None, num_processes: int | None, process_id: int | None,
                   heartbeat_timeout_s: int) -> None:
        """Join a multi-process run (before any device is touched); with no arguments, detect one from the
        environment (SLURM, Open MPI) or stay a single process."""

    def version(self) -> str:
        """The framework's version."""

    def process_index(self) -> int: ...

    def process_count(self) -> int: ...

    def devices(self) -> list[Device]:
        """Every device of the run, all processes, in the framework's global order."""

    def kv_set(self, key: str, value: bytes) -> None:
        """Publish a value to every process (overwrites)."""

    def kv_get(self, key: str, timeout_s: float) -> bytes:
        """Wait up to timeout_s for a published value; TimeoutError if none comes."""

    def kv_try_get(self, key: str) -> bytes | None:
        """A published value if there is one now, else None; raises if the runtime itself is gone."""

    def barrier(self, name: str, timeout_s: float) -> None:
        """Wait until every process reaches the barrier of this name."""

    def sync(self, arrays: Any = None) -> None:
        """Wait for device work: until `arrays` (any tree of them) are computed, or, with none, until every
        local device has finished all the work queued on it."""


@dataclass(frozen=True)
class EvalResult:
    """Mean eval loss over the whole eval set, and its standard error over sequences (nats/token)."""

    loss: float
    stderr: float | None
    sequences: int
    tokens: int

    @classmethod
    def from_sums(cls, nll_sum: float, tokens: float, sequences: float, seq_mean_sum: float,
                  seq_mean_sq_sum: float) -> EvalResult:
        n = int(round(sequences))
        stderr = None
        if n > 1:
            mean = seq_mean_sum / n
            variance = max(0.0, (seq_mean_sq_sum - n * mean * mean) / (n - 1))
            stderr = math.sqrt(variance / n)
        return cls(loss=nll_sum / tokens, stderr=stderr, sequences=n, tokens=int(round(tokens)))


class Trainer(Protocol):
    """A model, its optimiser state and its compiled steps on this process's devices."""

    def to_device(self, batch: np.ndarray) -> Any:
        """Start putting a [batch, seq_len + 1] int32 batch, or a [K, batch, seq_len + 1] block of K steps' batches,
        where the step reads it, without waiting for the copy. Called on the training thread only (see
        harness/runner/prefetch.py for why)."""

    def step(self, batch: Any) -> Any:
        """Dispatch one call: one training step on a batch from to_device, or K steps on a block when built with
        steps_per_dispatch K; returns a handle on its metrics (no sync)."""

    def latest_loss(self, handle: Any) -> float:
        """The training loss of a call's last step (waits for that call)."""

    def host_metrics(self, handles: list[Any]) -> list[dict[str, Any]]:
        """Per-step metrics (K a handle for a block) as host numbers and numpy arrays, fetched in one transfer:
        `loss`, `aux_loss`, and for Switch models `dropped_fraction` and `expert_load` [switch layers, experts]."""

    def evaluate(self) -> EvalResult:
        """Loss over the whole held-out set, in fixed-size batches; waits for all queued work."""

    def sync(self) -> None:
        """Wait until every dispatched step has finished on the devices."""

    def weights(self) -> dict[str, np.ndarray]:
        """The current parameters as float32 host arrays by Flax parameter path ("block_1/attn/qkv/kernel"), the
        naming of workloads/jax_impl/weights.py in every framework: one file format serves them all."""

    def describe(self) -> dict[str, Any]:
        """Framework, version, devices and the implementation choices made (attention kernel, precision)."""

    @property
    def param_counts(self) -> dict[str, int]:
        """{"total", "activated", "expert"} counted on the built model."""


def eval_batches(eval_set: np.ndarray, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The eval set as fixed-size (tokens, weights) batches; the last is padded with weight-0 rows, so that
    every call has one shape and compiles once."""
    batch = batch or len(eval_set)
    out = []
    for start in range(0, len(eval_set), batch):
        rows = eval_set[start:start + batch]
        weights = np.ones(batch, np.float32)
        if len(rows) < batch:
            weights[len(rows):] = 0.0
            rows = np.concatenate([rows, np.zeros((batch - len(rows), rows.shape[1]), rows.dtype)])
        out.append((rows, weights))
    return out


class Decoder(Protocol):
    """A trained model served: cached autoregressive decoding of `batch` prompts of `prompt_len` tokens into
    `gen_len` tokens each, compiled for that bucket when built (workloads/jax_impl/decode.py)."""

    batch: int
    prompt_len: int
    gen_len: int

    def prefill(self, prompts: np.ndarray) -> tuple[Any, Any]:
        """The prompts [batch, prompt_len] in one forward: (the first generated token of each [batch], a state)."""

    def generate_rest(self, state: Any) -> Any:
        """The other gen_len - 1 tokens [batch, gen_len - 1], one dispatch."""

    def generate(self, prompts: np.ndarray) -> np.ndarray:
        """prefill and generate_rest: [batch, gen_len] on the host."""

    routing: dict[str, Any]  # Switch: {"switch_routing", "ragged_dot_triton", "grouped_matmul"}; {} for dense

    @property
    def dropped(self) -> Any:
        """Token-slots the Switch layers dropped in the last prefill and generate_rest (`.total`)."""

    @property
    def executed_flops(self) -> dict[str, float]:
        """Matmul FLOPs one prefill and one generate_rest call execute (workloads/flops.py), every row of the batch
        counted: {"prefill", "generate_rest"}."""

    def teacher_forced(self, sequences: np.ndarray) -> Any:
        """The continuations of [batch, prompt_len + gen_len] scored as served (prefill, then one token a step
        through the cache): `.loss` (nats/token) and `.accuracy` (greedy) of the continuation tokens,
        `.log_probs` [batch, gen_len]."""

    def full_recompute_generate(self, prompts: np.ndarray) -> np.ndarray:
        """Greedy [batch, gen_len] with no cache (the full forward each step): a benchmark's baseline."""
