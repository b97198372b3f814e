"""What a workload sized for an accelerator would cost on this CPU, measured, so that `harness run` can refuse
to start a multi-hour job silently.

The estimate times a few steps of a probe (the workload's width, precision and sequence length, but one
sequence a batch and at most two layers, so it compiles and runs in seconds) and scales its step time by
the ratio of model FLOPs. It is an estimate and says so; it errs low, since a full batch also spills caches.
Its tokens are uniform random ones of the workload's vocabulary: a step's time does not depend on their
values, and building an accelerator-sized corpus would cost more than the probe (~6 s on 2 cores).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from workloads.flops import train_flops_per_token
from workloads.specs import WorkloadSpec
from workloads.trainers import build_trainer

PROBE_STEPS = 3


def probe_spec(spec: WorkloadSpec) -> WorkloadSpec:
    """The workload at one sequence a batch and two layers (one dense, one Switch when it has experts)."""
    model = replace(spec.model, num_layers=min(2, spec.model.num_layers), group_sequences=0)
    return replace(spec, model=model, batch_size=1, eval_batch_size=1)


def seconds_per_step_here(spec: WorkloadSpec, framework: str = "jax") -> float:
    """Estimated seconds per training step of `spec` on this machine's default device."""
    probe = probe_spec(spec)
    rng = np.random.default_rng(0)

    def sequence() -> np.ndarray:
        return rng.integers(0, probe.model.vocab_size, (1, probe.seq_len + 1), dtype=np.int32)

    trainer = build_trainer(framework, probe, 0, 10, sequence(), sequence())
    batches = [trainer.to_device(sequence()) for _ in range(PROBE_STEPS + 1)]
    trainer.step(batches[0])
    trainer.sync()
    t = time.perf_counter()
    for b in batches[1:]:
        trainer.step(b)
    trainer.sync()
    per_probe_step = (time.perf_counter() - t) / PROBE_STEPS
    scale = (train_flops_per_token(spec.model, spec.seq_len) * spec.batch_size) / (
        train_flops_per_token(probe.model, probe.seq_len) * probe.batch_size)
    return per_probe_step * scale


def cpu_refusal(spec: WorkloadSpec, typical_steps: int | None, framework: str = "jax") -> str:
    """The one-line message `harness run` gives instead of starting `spec` on a CPU."""
    step_s = seconds_per_step_here(spec, framework)
    steps = typical_steps or spec.max_steps
    what = (f"its reference {steps:,} steps to target" if typical_steps
            else f"its {steps:,}-step budget (no reference steps to target yet)")
    return (f"{spec.name} is sized for an accelerator and none is visible: a step here takes about "
            f"{_duration(step_s)} (measured on a 1-sequence probe, scaled by FLOPs), so {what} would take about "
            f"{_duration(step_s * steps)}; pass --allow-cpu to run it anyway, or use {_smaller(spec.name)}")


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _smaller(name: str) -> str:
    family = name.rsplit("-", 1)[0]
    return f"{family}-small (sized for a CPU)"


def typical_steps(samples_to_target: list[int], batch: int) -> int | None:
    """Median reference steps to target from reference convergence points, if any."""
    return int(np.median(samples_to_target)) // batch if samples_to_target else None
