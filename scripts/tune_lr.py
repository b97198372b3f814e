"""The learning-rate sweep behind the specs: the same sweep, seed and budget for both models of a pair.

For each model and each learning rate in the spec's calibration sweep, trains once (seed 0) and prints
steps, time and energy to target. Two selections:
- to target (the small pair): every candidate trains to the target or the step cap; the fewest steps wins;
- `--sweep-steps N` (the base pair, where a full sweep does not fit a GPU session): every candidate trains
  N steps; the lowest eval loss at step N wins (N must lie past any plateau the models share: on an H100 the
  base pair sat at its unigram entropy through step 200 at every rate). With `--full`, each model then trains
  to the target at the learning rate it won, which gives the steps, time, energy and MFU to put in the spec and
  reference results.
  `--deadline T` (unix seconds) splits the time left after the sweep between those runs: a run whose share
  is spent is stopped as Ctrl-C would stop it (recorded `aborted`, with its eval trace), so that a GPU session
  of fixed length still brings back how far each model got.
Candidates are spec variants passed to the runner; the registry itself is never modified.

    python scripts/tune_lr.py [--pair small] [--corpus default] [--max-steps N]
    python scripts/tune_lr.py --workloads switch-small-dropless   (named workloads instead of a pair)
    python scripts/tune_lr.py --pair base --sweep-steps 300 --full [--max-steps 12000] [--deadline T] [--output-dir DIR]
    python scripts/tune_lr.py --pair base --no-sweep [--deadline T [--shares 2,1]]  (each to target at the spec's rate)
    python scripts/tune_lr.py --pair base --tiny-width --sweep-steps 20 --full     (a CPU dry run)
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.results.reader import read_record  # noqa: E402
from harness.results.schema import RunRecord  # noqa: E402
from harness.runner.execute import RunAborted, execute  # noqa: E402
from harness.runner.plan import RunOptions, plan  # noqa: E402
from workloads.registry import at_tiny_width, get_workload  # noqa: E402
from workloads.specs import WorkloadSpec  # noqa: E402


def train(spec: WorkloadSpec, lr: float, args: argparse.Namespace, out: str, max_steps: int | None,
          seconds: float | None = None) -> RunRecord:
    """One run of `spec` at `lr`; with `seconds`, stopped (recorded `aborted`) once they are spent."""
    variant = replace(spec, optimizer=replace(spec.optimizer, learning_rate=lr))
    opts = RunOptions(workload=spec.name, spec=variant, corpus=args.corpus, max_steps=max_steps, output_dir=out,
                      progress=False, allow_cpu=args.tiny_width, meter=args.meter,
                      keep_weights=False)  # a sweep's runs are not served, and switch-base's weights are 218 MiB
    before = _run_dirs(out)
    if seconds is not None:
        signal.signal(signal.SIGALRM, _time_box_spent)
        signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        _, r = execute(opts, plan(opts))
    except RunAborted:  # the time box: the runner wrote the record before re-raising
        (run_dir,) = _run_dirs(out) - before
        r = read_record(run_dir / "result.json")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    print(f"{spec.name:>24} lr {lr:<8g} {r.status:>13}  {_f(r.training.steps, '>6')} steps  "
          f"{_f(r.timing.run_s, '7.1f')} s  {_f(r.energy.total_j, '10.1f')} J  "
          f"MFU {_f(r.mfu and 100 * r.mfu, '5.1f')} %  last eval {_f(r.final_eval_loss, '.4f')}  "
          f"best {_f(r.best_eval_loss, '.4f')} (target {r.target.target_loss:.4f})", flush=True)
    return r


def _f(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _run_dirs(out: str) -> set[Path]:
    return {d for d in Path(out).glob("*") if d.is_dir()}


def _time_box_spent(signum, frame) -> None:
    raise RunAborted("time box spent")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small")
    ap.add_argument("--workloads", default=None, help="comma-separated workloads to sweep instead of --pair's two")
    ap.add_argument("--corpus", default="default")
    ap.add_argument("--max-steps", type=int, default=None, help="step cap of the runs to target")
    ap.add_argument("--sweep-steps", type=int, default=None, help="truncated sweep: compare eval loss at N steps")
    ap.add_argument("--full", action="store_true", help="after a truncated sweep, train each model to target")
    ap.add_argument("--no-sweep", action="store_true", help="only the runs to target, at the spec's learning rate")
    ap.add_argument("--tiny-width", action="store_true", help="the pair at tiny width (CPU dry run)")
    ap.add_argument("--meter", default="auto")
    ap.add_argument("--deadline", type=float, default=None,
                    help="unix time by which the runs to target must end; they share the time left")
    ap.add_argument("--shares", default=None,
                    help="with --deadline: the runs to target's weights, in order (dense, switch), e.g. 2,1; "
                         "default equal. A run's share is its weight's part of the time left when it starts")
    ap.add_argument("--output-dir", default=None)
    args = ap.parse_args()
    out = args.output_dir or tempfile.mkdtemp(prefix="tune-lr-")
    chosen = {}
    names = args.workloads.split(",") if args.workloads else (f"dense-{args.pair}", f"switch-{args.pair}")
    for name in names:
        spec = get_workload(name)
        spec = at_tiny_width(spec) if args.tiny_width else spec
        if args.no_sweep:
            chosen[name] = (spec, spec.optimizer.learning_rate)
            continue
        sweep = spec.calibration.lr_sweep or (spec.optimizer.learning_rate,)
        results = {lr: train(spec, lr, args, out, args.sweep_steps or args.max_steps) for lr in sweep}
        if args.sweep_steps:
            best = min(results, key=lambda lr: results[lr].final_eval_loss or float("inf"))
            rule = f"lowest eval loss at step {args.sweep_steps}"
        else:
            converged = {lr: r.training.steps for lr, r in results.items() if r.converged}
            best = min(converged, key=converged.get) if converged else None
            rule = "fewest steps to target"
        chosen[name] = (spec, best)
        print(f"{name}: chosen lr {best} ({rule}; sweep {', '.join(f'{x:g}' for x in sweep)})", flush=True)
    if args.no_sweep or (args.full and args.sweep_steps):
        weights = [float(w) for w in args.shares.split(",")] if args.shares else [1.0] * len(chosen)
        if len(weights) != len(chosen):
            ap.error(f"--shares needs {len(chosen)} weights, got {args.shares!r}")
        for i, (name, (spec, lr)) in enumerate(chosen.items()):
            share = ((args.deadline - time.time()) * weights[i] / sum(weights[i:])) if args.deadline else None
            print(f"== {name} to target at lr {lr:g}"
                  + (f", stopped after {share:.0f} s if not there" if share is not None else ""), flush=True)
            if share is not None and share < 10:
                print("   skipped: the deadline leaves no time for it", flush=True)
                continue
            train(spec, lr, args, out, args.max_steps, share)
    print(f"results kept in {out}")


if __name__ == "__main__":
    main()
