"""Benchmark: Switch / dense train-step time at matched activated FLOPs (goal <= 1.10).

Both models of a pair have the same shapes, so a token activates the same FLOPs (the router's d x E aside).
Steps are timed in interleaved blocks (dense, switch, dense, ...) so drift on a shared machine hits both.

    python scripts/bench_switch_step.py [--pair small|tiny] [--blocks 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from workloads.corpus import MarkovMixture
from workloads.models import train_flops_per_token
from workloads.registry import get_workload
from workloads.train import make_steps


def compiled_step(name: str):
    spec = get_workload(name)
    data = MarkovMixture(spec.corpus)
    batch = jnp.asarray(data.train_batch(0, 0, spec.batch_size))
    steps = make_steps(spec.model, spec.optimizer, spec.max_steps)
    state = jax.jit(steps.init)(jax.random.PRNGKey(0), batch)
    train = jax.jit(steps.train, donate_argnums=0).lower(state, batch).compile()
    return spec, train, state, batch


def time_block(train, state, batch, steps: int):
    for _ in range(3):  # warm caches after the other model ran
        state, _ = train(state, batch)
    jax.block_until_ready(state)
    t = time.perf_counter()
    for _ in range(steps):
        state, _ = train(state, batch)
    jax.block_until_ready(state)
    return state, (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small", choices=["small", "tiny"])
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    names = (f"dense-{args.pair}", f"switch-{args.pair}")
    runs = {n: compiled_step(n) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.blocks):
        for n in names:
            spec, train, state, batch = runs[n]
            state, dt = time_block(train, state, batch, args.steps)
            runs[n] = (spec, train, state, batch)
            times[n].append(dt)
    print(f"device: {jax.devices()[0].device_kind}  backend: {jax.default_backend()}")
    for n in names:
        spec = runs[n][0]
        flops = train_flops_per_token(spec.model, spec.seq_len)
        print(f"{n:>14}: median step {1000 * statistics.median(times[n]):7.2f} ms  "
              f"(blocks: {', '.join(f'{1000 * t:.1f}' for t in times[n])})  train FLOPs/token {flops:,.0f}")
    ratios = [s / d for d, s in zip(times[names[0]], times[names[1]], strict=True)]
    ratio = statistics.median(times[names[1]]) / statistics.median(times[names[0]])
    print(f"switch / dense step time: {ratio:.3f}  (per block: {', '.join(f'{r:.3f}' for r in ratios)})  "
          f"goal <= 1.10: {'MET' if ratio <= 1.10 else 'NOT MET'}")


if __name__ == "__main__":
    main()
