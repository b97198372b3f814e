"""The learning-rate sweep behind the specs: the same sweep, seed and budget for dense and Switch.

For each model of a pair and each learning rate in the spec's `lr_sweep`, trains once (seed 0) and prints
steps, time and energy to target. The spec records the sweep and the value chosen (best time-to-target).

    python scripts/tune_lr.py [--pair small] [--corpus default] [--max-steps N]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

from harness.runner.run import RunOptions, execute, plan
from workloads import registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small")
    ap.add_argument("--corpus", default="default")
    ap.add_argument("--max-steps", type=int, default=None)
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="tune-lr-")
    for name in (f"dense-{args.pair}", f"switch-{args.pair}"):
        base = registry.WORKLOADS[name]
        for lr in base.optimizer.lr_sweep:
            # The registry is plain data: swap in the candidate learning rate for this one run.
            registry.WORKLOADS[name] = dataclasses.replace(
                base, optimizer=dataclasses.replace(base.optimizer, learning_rate=lr))
            opts = RunOptions(workload=name, corpus=args.corpus, max_steps=args.max_steps, output_dir=out,
                              progress=False)
            _, r = execute(opts, plan(opts))
            print(f"{name:>14} lr {lr:<8g} {r['status']:>13}  {r['training']['steps']:>6} steps  "
                  f"{r['timing']['run_s']:7.1f} s  {r['energy']['total_j']:8.1f} J  "
                  f"best eval {r['training']['best_eval_loss']:.4f} (target {r['target']['target_loss']:.4f})",
                  flush=True)
        registry.WORKLOADS[name] = base


if __name__ == "__main__":
    main()
