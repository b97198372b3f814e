"""Benchmark: metered / unmetered train-step time (goal <= 1.01).

The same compiled train step runs in interleaved blocks with and without the background power sampler
(the meters `harness run` would use here, at the default 20 Hz), so machine drift falls on both.

    python scripts/bench_meter_overhead.py [--workload switch-small] [--blocks 6] [--steps 30] [--hz 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from harness.meters import MeterRequest, Sampler, select_meters
from harness.runner.devices import place
from workloads.corpus import MarkovMixture
from workloads.jax_impl.steps import make_steps
from workloads.registry import get_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="switch-small")
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hz", type=float, default=20.0)
    args = ap.parse_args()

    spec = get_workload(args.workload)
    data = MarkovMixture(spec.corpus)
    steps = make_steps(spec.model, spec.optimizer, spec.max_steps)
    first = jnp.asarray(data.train_batch(0, 0, spec.batch_size))
    state = jax.jit(steps.init)(jax.random.PRNGKey(0), first)
    train = jax.jit(steps.train, donate_argnums=0).lower(state, first).compile()
    batches = [jnp.asarray(data.train_batch(0, i, spec.batch_size)) for i in range(args.steps)]

    def block(state):
        for b in batches[:3]:
            state, _ = train(state, b)
        jax.block_until_ready(state)
        t = time.perf_counter()
        for b in batches:
            state, _ = train(state, b)
        jax.block_until_ready(state)
        return state, (time.perf_counter() - t) / len(batches)

    plain, metered, rates = [], [], []
    for _ in range(args.blocks):
        state, dt = block(state)
        plain.append(dt)
        # Fresh meters each block: a sampler's stop() releases them (NVML is shut down).
        meters, _ = select_meters(MeterRequest(), place(spec, None).accelerators())
        sampler = Sampler(meters, hz=args.hz)
        sampler.start()
        state, dt = block(state)
        sampler.stop()
        metered.append(dt)
        rates.append(sampler.achieved_hz())
    ratio = statistics.median(metered) / statistics.median(plain)
    print(f"workload {spec.name}, meters {[m.method for m in meters]}, sampler {statistics.mean(rates):.1f} Hz")
    print(f"unmetered step: median {1000 * statistics.median(plain):.2f} ms  "
          f"(blocks: {', '.join(f'{1000 * t:.1f}' for t in plain)})")
    print(f"  metered step: median {1000 * statistics.median(metered):.2f} ms  "
          f"(blocks: {', '.join(f'{1000 * t:.1f}' for t in metered)})")
    print(f"metered / unmetered: {ratio:.4f}  goal <= 1.01: {'MET' if ratio <= 1.01 else 'NOT MET'}")


if __name__ == "__main__":
    main()
