"""The learning-rate sweep behind the specs: the same sweep, seed and budget for both models of a pair.

For each model and each learning rate in the spec's calibration sweep, trains once (seed 0) and prints
steps, time and energy to target. Two selections:
- to target (the small pair): every candidate trains to the target or the step cap; the fewest steps wins;
- `--sweep-steps N` (the base pair, where a full sweep does not fit a GPU session): every candidate trains
  N steps; the lowest eval loss at step N wins. With `--full`, each model then trains to the target at the
  learning rate it won, which gives the steps, time, energy and MFU to put in the spec and reference results.
Candidates are spec variants passed to the runner; the registry itself is never modified.

    python scripts/tune_lr.py [--pair small] [--corpus default] [--max-steps N]
    python scripts/tune_lr.py --pair base --sweep-steps 300 --full [--max-steps 12000] [--output-dir DIR]
    python scripts/tune_lr.py --pair base --tiny-width --sweep-steps 20 --full     (a CPU dry run)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.runner.run import RunOptions, execute, plan  # noqa: E402
from workloads.registry import at_tiny_width, get_workload  # noqa: E402
from workloads.spec import WorkloadSpec  # noqa: E402


def train(spec: WorkloadSpec, lr: float, args: argparse.Namespace, out: str, max_steps: int | None) -> dict:
    variant = replace(spec, optimizer=replace(spec.optimizer, learning_rate=lr))
    opts = RunOptions(workload=spec.name, spec=variant, corpus=args.corpus, max_steps=max_steps, output_dir=out,
                      progress=False, allow_cpu=args.tiny_width, meter=args.meter)
    _, r = execute(opts, plan(opts))
    eff = r.get("efficiency") or {}
    mfu = f"{100 * eff['mfu']:.1f} %" if eff.get("mfu") is not None else "n/a"
    print(f"{spec.name:>24} lr {lr:<8g} {r['status']:>13}  {r['training']['steps']:>6} steps  "
          f"{r['timing']['run_s']:7.1f} s  {r['energy']['total_j']:10.1f} J  MFU {mfu:>7}  "
          f"last eval {r['training']['final_eval_loss']:.4f}  best {r['training']['best_eval_loss']:.4f} "
          f"(target {r['target']['target_loss']:.4f})", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small")
    ap.add_argument("--corpus", default="default")
    ap.add_argument("--max-steps", type=int, default=None, help="step cap of the runs to target")
    ap.add_argument("--sweep-steps", type=int, default=None, help="truncated sweep: compare eval loss at N steps")
    ap.add_argument("--full", action="store_true", help="after a truncated sweep, train each model to target")
    ap.add_argument("--tiny-width", action="store_true", help="the pair at tiny width (CPU dry run)")
    ap.add_argument("--meter", default="auto")
    ap.add_argument("--output-dir", default=None)
    args = ap.parse_args()
    out = args.output_dir or tempfile.mkdtemp(prefix="tune-lr-")
    chosen = {}
    for name in (f"dense-{args.pair}", f"switch-{args.pair}"):
        spec = get_workload(name)
        spec = at_tiny_width(spec) if args.tiny_width else spec
        sweep = spec.calibration.lr_sweep or (spec.optimizer.learning_rate,)
        results = {lr: train(spec, lr, args, out, args.sweep_steps or args.max_steps) for lr in sweep}
        if args.sweep_steps:
            best = min(results, key=lambda lr: results[lr]["training"]["final_eval_loss"])
            rule = f"lowest eval loss at step {args.sweep_steps}"
        else:
            converged = {lr: r["training"]["steps"] for lr, r in results.items() if r["status"] == "converged"}
            best = min(converged, key=converged.get) if converged else None
            rule = "fewest steps to target"
        chosen[name] = (spec, best)
        print(f"{name}: chosen lr {best} ({rule}; sweep {', '.join(f'{x:g}' for x in sweep)})", flush=True)
    if args.full and args.sweep_steps:
        for name, (spec, lr) in chosen.items():
            print(f"== {name} to target at lr {lr:g}", flush=True)
            train(spec, lr, args, out, args.max_steps)
    print(f"results kept in {out}")


if __name__ == "__main__":
    main()
