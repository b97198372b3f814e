"""Benchmark: the runner's efficiency at K steps per dispatch, against the compiled step on a resident batch.

Variants, timed in interleaved blocks in one process:
- resident: one compiled step (K = 1) on the same batch, already on the device, every step: the step alone;
- runner K: `train_to_target` itself at `steps_per_dispatch` K over the same number of steps (its prefetched
  input, one evaluation at the end and the per-step metric fetch included; its compile is outside the timing).

Runner efficiency = resident step / runner time per step (goal >= 0.95 at the chosen K). Steps must be a
multiple of every K (each call runs K steps and the evaluation ends a call).

    python scripts/bench_dispatch.py [--workloads switch-tiny,switch-small] [--ks 1,4,16] [--blocks 3] [--steps 160]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchlib import NoMarks, add_timing_args, compiled, interleaved, line, ratio, seconds_per_step, spec_named

from harness.runner.loop import LoopResult, train_to_target

GOAL = 0.95


def bench(name: str, ks: list[int], blocks: int, steps: int, tiny_width: bool) -> None:
    spec = spec_named(name, tiny_width)
    trainer, data, resident = compiled(spec)
    # The whole budget with one evaluation at its end, on a target it cannot reach.
    loop_spec = replace(spec, eval_every_steps=steps, max_steps=steps)

    def runner(k: int):
        def run() -> float:
            r = train_to_target(loop_spec, data, -1.0, 0, steps, NoMarks(), LoopResult(), steps_per_dispatch=k)
            return (r.marks["run_stop"] - r.marks["run_start"]) / steps
        return run

    times = interleaved(blocks, {"resident": lambda: seconds_per_step(trainer, lambda i: resident, steps),
                                 **{f"runner K={k}": runner(k) for k in ks}})
    device = trainer.describe()["devices"][0]
    print(f"workload {spec.name}, batch {spec.batch_size} x {spec.seq_len}, {steps} steps a block, device "
          f"{device['kind']} ({device['platform']})")
    for variant, t in times.items():
        print(line(variant, t, f"  efficiency {ratio(times['resident'], t):.3f}"))
    best = max(ks, key=lambda k: ratio(times["resident"], times[f"runner K={k}"]))
    eff = ratio(times["resident"], times[f"runner K={best}"])
    print(f"best K {best}: runner efficiency {eff:.3f}  goal >= {GOAL}: {'MET' if eff >= GOAL else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="switch-tiny,switch-small")
    ap.add_argument("--ks", default="1,4,16")
    add_timing_args(ap, steps=160, blocks=3)
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    if any(args.steps % k for k in ks):
        raise SystemExit(f"--steps {args.steps} must be a multiple of every K ({args.ks})")
    for name in args.workloads.split(","):
        bench(name, ks, args.blocks, args.steps, args.tiny_width)


if __name__ == "__main__":
    main()
