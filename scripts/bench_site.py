"""`harness site` over 200 runs: the whole command, timed (goal: under 10 s on the 2-core CPU; index under 1 MB).

The 200 runs are the shipped CPU reference runs (reference_results/cpu-2core/runs: dense-small and switch-small
at 10 Hz power sampling, each with its power, step and quality logs) written again in turn, ten to each of 20
made-up host CPUs: 40 system-workload rows, 20 system pages, 200 run sections with their charts and copied files,
and `harness check` on each run. The copies go through the typed record's reader and writer; only the run id and
the host CPU change. They are made once into --output-dir and reused when there.

    python scripts/bench_site.py [--runs 200] [--repeats 3] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness.results.reader import read_record
from harness.results.writer import write_record

REFERENCE_RUNS = Path(__file__).resolve().parents[1] / "reference_results" / "cpu-2core" / "runs"


def make_runs(root: Path, runs: int, per_system: int) -> None:
    """`runs` copies of the reference runs under root/runs, `per_system` to each made-up host CPU."""
    sources = sorted(d for d in REFERENCE_RUNS.iterdir() if (d / "result.json").is_file())
    records = [read_record(d / "result.json") for d in sources]
    for i in range(runs):
        source, record = sources[i % len(sources)], records[i % len(sources)]
        hw = replace(record.environment.hardware, cpu_model=f"Bench CPU {i // per_system:02d}")
        copy = replace(record, run_id=f"{record.run_id}-{i:03d}", environment=replace(record.environment, hardware=hw))
        folder = root / "runs" / copy.run_id
        folder.mkdir(parents=True)
        for name in copy.files:
            shutil.copyfile(source / name, folder / name)
        write_record(folder, copy, durable=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--per-system", type=int, default=10, help="runs given to each made-up host CPU")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--output-dir", default=None, help="where the runs and the site are written (default: a temp dir)")
    args = ap.parse_args()
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="bench-site-"))
    if not (root / "in").is_dir():
        make_runs(root / "in", args.runs, args.per_system)
    times = []
    for _ in range(args.repeats):
        shutil.rmtree(root / "site", ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.cli", "site", str(root / "in"), "--output-dir",
                        str(root / "site")], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    index = (root / "site" / "index.html").stat().st_size
    total = sum(f.stat().st_size for f in (root / "site").rglob("*") if f.is_file())
    print(f"harness site, {args.runs} runs ({-(-args.runs // args.per_system)} host CPUs, dense-small and "
          f"switch-small runs of each): median "
          f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={len(times)}; goal < 10 s)")
    print(f"  index.html {index / 1e3:.0f} kB (goal < 1 MB); whole site {total / 1e6:.1f} MB; at {root / 'site'}")


if __name__ == "__main__":
    main()
