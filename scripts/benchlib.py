"""What the benchmarks share: a compiled trainer of a registered workload (the runner's own, through the
framework seam), step timing in interleaved blocks, and a line of figures per variant.

Interleaving (A, B, A, B, ...) puts a shared machine's drift on every variant alike; each benchmark prints
its figures measured side by side in one run, never against a number from another day.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from workloads.corpus import MarkovMixture  # noqa: E402
from workloads.framework import Trainer
from workloads.registry import at_tiny_width, get_workload  # noqa: E402
from workloads.specs import WorkloadSpec  # noqa: E402
from workloads.trainers import build_trainer  # noqa: E402

WARMUP_STEPS = 3


class NoMarks:
    """Marks for the runner's loop run outside a metered run (benchmarks, proxies): the time, and nothing kept."""

    def mark(self, label: str) -> float:
        return time.time()


def spec_named(name: str, tiny_width: bool = False) -> WorkloadSpec:
    spec = get_workload(name)
    return at_tiny_width(spec) if tiny_width else spec


def compiled(spec: WorkloadSpec, framework: str = "jax", seed: int = 0, steps_per_dispatch: int = 1
             ) -> tuple[Trainer, MarkovMixture, Any]:
    """A trainer of `spec` at K steps a call, its corpus, and one call's input already on the device (a resident
    batch; at K > 1 a resident [K, batch, ...] block)."""
    data, k, b = MarkovMixture(spec.corpus), steps_per_dispatch, spec.batch_size
    trainer = build_trainer(framework, spec, seed, spec.max_steps, data.train_batch(seed, 0, b), data.eval_set(),
                            None, k)
    resident = data.train_batch(seed, 1, b) if k == 1 else data.train_batches(seed, 1, k, b)
    return trainer, data, trainer.to_device(resident)


def add_timing_args(ap: argparse.ArgumentParser, steps: int, blocks: int = 5) -> None:
    """The flags every step-timing benchmark takes: blocks of interleaved timing, steps a block, and a dry run
    of the same code path at tiny width on a CPU."""
    ap.add_argument("--tiny-width", action="store_true", help="the workloads at tiny width (a CPU dry run)")
    ap.add_argument("--blocks", type=int, default=blocks)
    ap.add_argument("--steps", type=int, default=steps)


def seconds_per_step(trainer: Trainer, batches: Callable[[int], Any], steps: int, steps_per_call: int = 1
                     ) -> float:
    """Mean seconds per training step over `steps` calls after a short warm-up; batches(i) gives call i's input,
    and each call runs `steps_per_call` steps."""
    for i in range(WARMUP_STEPS):
        trainer.step(batches(i))
    trainer.sync()
    t = time.perf_counter()
    for i in range(steps):
        trainer.step(batches(WARMUP_STEPS + i))
    trainer.sync()
    return (time.perf_counter() - t) / (steps * steps_per_call)


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    """A benchmark's figures as one JSON file (`--json PATH`), for scripts that gather them (gpu_demo.sh)."""
    if path:
        Path(path).write_text(json.dumps(figures, indent=1) + "\n")


def interleaved(blocks: int, variants: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each variant's seconds-per-step, one value per block, the variants taking turns within a block. Every
    other block runs them in reverse order, so neither always runs first (after the other's caches and clocks)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants.items())
    for block in range(blocks):
        for name, run in order if block % 2 == 0 else order[::-1]:
            times[name].append(run())
        # As each block ends, so that a benchmark stopped by a time limit (a device session) still says something.
        done = ", ".join(f"{n} {1000 * t[-1]:.2f} ms/step" for n, t in times.items())
        print(f"  block {block + 1}/{blocks}: {done}", file=sys.stderr, flush=True)
    return times


def line(name: str, times: list[float], extra: str = "") -> str:
    return (f"{name:>22}: median {1000 * statistics.median(times):8.3f} ms/step  "
            f"(blocks: {', '.join(f'{1000 * t:.2f}' for t in times)}){extra}")


def ratio(a: list[float], b: list[float]) -> float:
    """median(a) / median(b)."""
    return statistics.median(a) / statistics.median(b)
