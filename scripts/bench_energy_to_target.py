"""Benchmark: dense / switch energy-to-target, on the default corpus (goal >= 2) and the control (expect ~1).

Runs `harness run` in-process for each seed, interleaved (dense, switch, dense, switch, ...) so that drift
on a shared machine falls on both, and prints every run and the ratios side by side. A dense run that does
not converge makes its ratio a lower bound, printed as such.

    python scripts/bench_energy_to_target.py [--pair small] [--seeds 3] [--corpora default,control]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile

from harness.results.schema import RunRecord
from harness.runner.execute import execute
from harness.runner.plan import RunOptions, plan


def run_one(workload: str, seed: int, corpus: str, out: str) -> RunRecord:
    opts = RunOptions(workload=workload, seed=seed, corpus=corpus, output_dir=out, progress=False)
    _, result = execute(opts, plan(opts))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--corpora", default="default,control")
    ap.add_argument("--output-dir", default=None, help="keep the results here (default: a temp dir)")
    args = ap.parse_args()
    out = args.output_dir or tempfile.mkdtemp(prefix="bench-ett-")
    names = (f"dense-{args.pair}", f"switch-{args.pair}")
    for corpus in args.corpora.split(","):
        rows: dict[str, list[RunRecord]] = {n: [] for n in names}
        for seed in range(args.seeds):
            for n in names:
                r = run_one(n, seed, corpus, out)
                rows[n].append(r)
                print(f"[{corpus}] {n} seed {seed}: {r.status}, {r.timing.run_s:.1f} s, {r.training.steps} steps, "
                      f"{_f(r.energy.total_j)} J ({r.energy.label}), best eval {_f(r.best_eval_loss, '.4f')} / "
                      f"target {r.target.target_loss:.4f}", flush=True)
        print(f"\n== corpus {corpus}: dense / switch, per seed ==")
        ratios = {"energy": [], "time": [], "steps": []}
        bound = False
        for d, s in zip(rows[names[0]], rows[names[1]], strict=True):
            if s.energy_to_target_j is None or d.energy.ranked_j is None:
                print(f"  seed {d.seed}: switch did not converge, or an energy figure may not be ranked; no ratio")
                continue
            bound |= not d.converged
            e = d.energy.ranked_j / s.energy_to_target_j
            t = d.timing.run_s / s.timing.run_s
            st = d.training.steps / s.training.steps
            ratios["energy"].append(e)
            ratios["time"].append(t)
            ratios["steps"].append(st)
            mark = ">=" if not d.converged else "  "
            print(f"  seed {d.seed}: energy {mark}{e:.2f}x  time {mark}{t:.2f}x  steps {mark}{st:.2f}x")
        for key, vals in ratios.items():
            if vals:
                geo = math.exp(statistics.mean(math.log(v) for v in vals))
                print(f"  {key}-to-target ratio: geometric mean {'>=' if bound else ''}{geo:.2f}x "
                      f"(min {min(vals):.2f}, max {max(vals):.2f}, n={len(vals)})")
        print(f"  energy method: {rows[names[0]][0].energy.method}\n", flush=True)
    print(f"results kept in {out}")


def _f(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


if __name__ == "__main__":
    main()
