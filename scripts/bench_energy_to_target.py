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

from harness.runner.run import RunOptions, execute, plan


def run_one(workload: str, seed: int, corpus: str, out: str) -> dict:
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
        rows: dict[str, list[dict]] = {n: [] for n in names}
        for seed in range(args.seeds):
            for n in names:
                r = run_one(n, seed, corpus, out)
                rows[n].append(r)
                print(f"[{corpus}] {n} seed {seed}: {r['status']}, {r['timing']['run_s']:.1f} s, "
                      f"{r['training']['steps']} steps, {r['energy']['total_j']:.1f} J ({r['energy']['method']}), "
                      f"best eval {r['training']['best_eval_loss']:.4f} / target {r['target']['target_loss']:.4f}",
                      flush=True)
        print(f"\n== corpus {corpus}: dense / switch, per seed ==")
        ratios = {"energy": [], "time": [], "steps": []}
        bound = False
        for d, s in zip(rows[names[0]], rows[names[1]], strict=True):
            if s["status"] != "converged":
                print(f"  seed {d['seed']}: switch did not converge; no ratio")
                continue
            bound |= d["status"] != "converged"
            e = d["energy"]["total_j"] / s["energy"]["total_j"]
            t = d["timing"]["run_s"] / s["timing"]["run_s"]
            st = d["training"]["steps"] / s["training"]["steps"]
            ratios["energy"].append(e)
            ratios["time"].append(t)
            ratios["steps"].append(st)
            mark = ">=" if d["status"] != "converged" else "  "
            print(f"  seed {d['seed']}: energy {mark}{e:.2f}x  time {mark}{t:.2f}x  steps {mark}{st:.2f}x")
        for key, vals in ratios.items():
            if vals:
                geo = math.exp(statistics.mean(math.log(v) for v in vals))
                print(f"  {key}-to-target ratio: geometric mean {'>=' if bound else ''}{geo:.2f}x "
                      f"(min {min(vals):.2f}, max {max(vals):.2f}, n={len(vals)})")
        print(f"  energy method: {rows[names[0]][0]['energy']['method']}\n", flush=True)
    print(f"results kept in {out}")


if __name__ == "__main__":
    main()
