"""`harness claim` on two 10-run sets: the whole command, timed (goal: under 2 s on the CPU; it trains nothing).

The two sets are switch-tiny --runs 10 metered by an external node meter printing a fixed wattage (100 W and
150 W), made once into --output-dir (about a minute) and reused when they are there.

    python scripts/bench_claim.py [--output-dir DIR] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_set(root: Path, name: str, watts: int, runs: int) -> Path:
    folder = root / name
    if not folder.is_dir():
        subprocess.run([sys.executable, "-m", "harness.cli", "run", "--workload", "switch-tiny", "--runs", str(runs),
                        "--meter", "external", "--meter-command", f"echo {watts} W", "--meter-hz", "10",
                        "--no-progress", "--output-dir", str(folder)], check=True, capture_output=True)
    (set_dir,) = [d for d in folder.iterdir() if d.is_dir()]
    return set_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", default=None, help="where the two sets are (made there if absent)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="bench-claim-"))
    a, b = make_set(root, "a", 100, args.runs), make_set(root, "b", 150, args.runs)
    claim = root / "claim.toml"
    claim.write_text(f'text = "A needs at most 80 % of the energy B needs"\nmetric = "energy_to_target"\n'
                     f'workload = "switch-tiny"\nsubject = "{a}"\nbaseline = "{b}"\nrelation = "<="\nvalue = 0.8\n')
    times, verdict = [], ""
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "claim", str(claim), "--output-dir",
                               str(root / "out")], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        verdict = proc.stdout.splitlines()[0] if proc.stdout else proc.stderr.strip()
    print(f"harness claim, two {args.runs}-run sets: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)}; goal < 2 s)")
    print(f"  {verdict}")
    print(f"  sets: {a} and {b}")


if __name__ == "__main__":
    main()
