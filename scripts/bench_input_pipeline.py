"""Benchmark: the input pipeline and the runner's loop against the compiled step on a resident batch.

Variants, timed in interleaved blocks on the same compiled trainer:
- resident: the same batch, already on the device, every step (the step alone);
- prefetched: a fresh batch per step from the corpus, made on the prefetch thread and transferred one step
  ahead (what `harness run` does); goal: prefetched / resident <= 1.02;
- inline: a fresh batch made and transferred on the training thread before each step (the old loop), for
  reference;
- runner: `train_to_target` itself for the same number of steps, evaluation and metric fetches included
  (the figure of merit of shared/notes/runner-overhead.md: runner time per step / resident step).

    python scripts/bench_input_pipeline.py [--workload switch-small] [--tiny-width] [--blocks 5] [--steps 50]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchlib import NoMarks, add_timing_args, compiled, interleaved, line, ratio, seconds_per_step, spec_named

from harness.runner.loop import LoopResult, train_to_target
from harness.runner.prefetch import Prefetcher, chunk_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="switch-small")
    add_timing_args(ap, steps=50)
    args = ap.parse_args()
    spec = spec_named(args.workload, args.tiny_width)
    trainer, data, resident = compiled(spec)
    seed, batch = 0, spec.batch_size
    counter = iter(range(10**9))  # every block reads batches it has not read before

    def prefetched() -> float:
        first = next(counter) * 1000 + 1
        with Prefetcher(lambda f, n: data.train_batches(seed, f, n, batch), trainer.to_device, first,
                        first + args.steps + 10, chunk=chunk_for(batch)) as p:
            return seconds_per_step(trainer, lambda i: p.get(first + i), args.steps)

    def inline() -> float:
        first = next(counter) * 1000 + 1
        return seconds_per_step(trainer, lambda i: trainer.to_device(data.train_batch(seed, first + i, batch)),
                                args.steps)

    # The runner's loop: the whole budget with one evaluation at its end, on a target it cannot reach.
    loop_spec = replace(spec, eval_every_steps=args.steps, max_steps=args.steps)

    def runner() -> float:
        r = train_to_target(loop_spec, data, -1.0, seed, args.steps, NoMarks(), LoopResult())
        return (r.marks["run_stop"] - r.marks["run_start"]) / args.steps

    times = interleaved(args.blocks, {
        "resident": lambda: seconds_per_step(trainer, lambda i: resident, args.steps),
        "prefetched": prefetched,
        "inline": inline,
        "runner": runner,
    })
    device = trainer.describe()["devices"][0]
    print(f"workload {spec.name}, batch {batch} x {spec.seq_len}, device {device['kind']} ({device['platform']})")
    for name, t in times.items():
        print(line(name, t, f"  {ratio(t, times['resident']):.3f}x resident"))
    r = ratio(times["prefetched"], times["resident"])
    print(f"prefetched input / resident batch: {r:.3f}  goal <= 1.02: {'MET' if r <= 1.02 else 'NOT MET'}")
    print(f"runner loop / resident step: {ratio(times['runner'], times['resident']):.3f} "
          "(includes one evaluation and the metric fetch per block; the runner builds its own trainer, so its "
          "compile is outside the timing)")


if __name__ == "__main__":
    main()
