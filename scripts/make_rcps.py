"""Build harness/mlperf/rcps.json (reference convergence points) from reference runs' result.json files.

For each workload: the samples-to-target of every converged closed-division run on the default corpus, one
per seed (runs are deterministic per seed and device, so a seed run twice adds no information), and where
each came from.

    python scripts/make_rcps.py reference_results [more folders...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.mlperf.runlog import division
from harness.results.files import write_json
from harness.results.reader import read_records, runs_only

OUT = Path(__file__).resolve().parents[1] / "harness" / "mlperf" / "rcps.json"


def build(folders: list[Path]) -> dict:
    """rcps.json's content from the runs under `folders` (paths as given: the shipped file names them relative
    to the checkout)."""
    entries: dict[str, dict] = {}
    for folder in folders:
        for r in runs_only(read_records(folder)):
            if division(r) != "closed" or r.samples_to_target is None:
                continue
            device = r.environment.hardware.main_device
            e = entries.setdefault(r.workload, {"batch_size": r.batch_size, "runs": {}})
            e["runs"].setdefault(f"{device}/seed{r.seed}", {"seed": r.seed, "device": device,
                                                             "samples_to_target": r.samples_to_target,
                                                             "source": str(r.source)})
    workloads = {}
    for name, e in sorted(entries.items()):
        runs = sorted(e["runs"].values(), key=lambda x: (x["device"], x["seed"]))
        workloads[name] = {"batch_size": e["batch_size"], "samples_to_target": [x["samples_to_target"] for x in runs],
                           "runs": runs}
    return {"note": "converged closed-division runs on the default corpus, one per seed and device; built by "
                    "scripts/make_rcps.py", "workloads": workloads}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    rcps = build(args.folders)
    for name, w in rcps["workloads"].items():
        print(f"{name}: {len(w['runs'])} runs, samples to target {w['samples_to_target']}")
    write_json(OUT, rcps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
