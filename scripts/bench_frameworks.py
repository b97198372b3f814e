"""Benchmark: TensorFlow / JAX train-step time for the same workload, and Switch / dense inside each framework.

The same spec, weights and batch in both frameworks, each step compiled with XLA (jax.jit;
tf.function(jit_compile=True)); compiled steps on a resident batch, timed in interleaved blocks
(jax dense, tf dense, jax switch, tf switch, ...). Goal: Switch / dense <= 1.10 in each framework.

    python scripts/bench_frameworks.py [--pair small] [--blocks 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchlib import compiled, interleaved, line, ratio, seconds_per_step, spec_named  # noqa: E402

FRAMEWORKS = ("jax", "tensorflow")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    names = (f"dense-{args.pair}", f"switch-{args.pair}")
    runs = {(n, f): compiled(spec_named(n), f) for n in names for f in FRAMEWORKS}
    times = interleaved(args.blocks, {f"{n} {f}": (lambda t=t, b=b: seconds_per_step(t, lambda i: b, args.steps))
                                      for (n, f), (t, _, b) in runs.items()})
    for name, t in times.items():
        print(line(name, t))
    for n in names:
        print(f"{n}: tensorflow / jax step time {ratio(times[f'{n} tensorflow'], times[f'{n} jax']):.3f}")
    for f in FRAMEWORKS:
        r = ratio(times[f"{names[1]} {f}"], times[f"{names[0]} {f}"])
        print(f"{f}: switch / dense step time {r:.3f}  goal <= 1.10: {'MET' if r <= 1.10 else 'NOT MET'}")


if __name__ == "__main__":
    main()
