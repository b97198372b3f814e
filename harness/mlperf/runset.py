"""`harness run --runs N`: N runs on distinct seeds, scored as MLPerf scores a benchmark.

Olympic scoring for time-to-target *and* energy-to-target (drop the best and the worst run; one run that did
not converge may count as the worst, more make the set invalid), and the reference-convergence test: a set
whose samples-to-target are significantly fewer than the reference runs' (one-sided t-test, p < 0.05) is
flagged as implausibly fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from harness.mlperf.scoring import convergence_check, olympic
from harness.results.files import write_json
from harness.results.record import new_run_dir

SCHEMA = "harness.runset/1"
RCP_FILE = "rcps.json"


def load_rcps() -> dict[str, Any]:
    """Reference convergence points shipped with harness (scripts/make_rcps.py builds them)."""
    return json.loads(resources.files("harness.mlperf").joinpath(RCP_FILE).read_text())


def reference_samples(workload: str, batch_size: int, rcps: dict[str, Any] | None = None) -> list[int] | None:
    entry = (rcps if rcps is not None else load_rcps()).get("workloads", {}).get(workload)
    if not entry or entry["batch_size"] != batch_size:
        return None
    return entry["samples_to_target"]


def samples_to_target(result: dict[str, Any]) -> int | None:
    if result["status"] != "converged":
        return None
    return result["training"]["steps"] * result["spec"]["batch_size"]


def new_set_dir(root: Path, workload: str, n: int) -> Path:
    return new_run_dir(root, f"{workload}-runs{n}")


def score_runs(results: list[dict[str, Any]], run_dirs: list[str], rcps: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """The set's scores from its runs' result.json contents (in seed order)."""
    converged = [r["status"] == "converged" for r in results]
    times = [r["timing"]["run_s"] if ok else None for r, ok in zip(results, converged, strict=True)]
    energies = [r["energy"]["total_j"] if ok else None for r, ok in zip(results, converged, strict=True)]
    time_score, energy_score = olympic(times), olympic(energies)
    spec = results[0]["spec"]
    samples = [s for s in map(samples_to_target, results) if s is not None]
    ref = reference_samples(results[0]["workload"], spec["batch_size"], rcps)
    if ref is None:
        convergence = {"verdict": f"no reference convergence points for {results[0]['workload']} at batch "
                                  f"{spec['batch_size']}", "implausibly_fast": None}
    elif len(samples) < 1:
        convergence = {"verdict": "no run converged: nothing to compare", "implausibly_fast": None}
    else:
        convergence = convergence_check(samples, ref)
    return {
        "schema": SCHEMA,
        "workload": results[0]["workload"],
        "runs": [{"dir": d, "seed": r["seed"], "status": r["status"], "run_s": r["timing"]["run_s"],
                  "energy_j": r["energy"]["total_j"], "energy_method": r["energy"]["method"],
                  "co2e_gross_kg": (r["carbon"] or {}).get("co2e_gross_kg"), "samples_to_target": samples_to_target(r)}
                 for d, r in zip(run_dirs, results, strict=True)],
        "time_to_target_s": _score(time_score),
        "energy_to_target_j": _score(energy_score),
        "energy_method": "+".join(sorted({r["energy"]["method"] for r in results})),
        "valid": time_score.valid and energy_score.valid,
        "convergence": convergence,
        "scoring": "MLPerf olympic: drop the fastest and the slowest run (a non-converged run counts as the "
                   "slowest; more than one makes the set invalid), mean of the rest; the same for energy",
    }


def _score(s) -> dict[str, Any]:
    return {"value": s.value, "valid": s.valid, "reason": s.reason, "kept": list(s.kept), "dropped": list(s.dropped)}


def run_set(n: int, first_seed: int, out_root: Path, workload: str,
            run_one: Callable[[int, Path], tuple[Path, dict[str, Any]]]) -> tuple[Path, dict[str, Any]]:
    """run_one(seed, output_dir) runs one seed; an interrupt stops the set after writing what it has."""
    set_dir = new_set_dir(out_root, workload, n)
    dirs: list[str] = []
    results: list[dict[str, Any]] = []
    try:
        for seed in range(first_seed, first_seed + n):
            run_dir, result = run_one(seed, set_dir)
            dirs.append(run_dir.name)
            results.append(result)
    finally:
        if results:
            summary = score_runs(results, dirs)
            summary["complete"] = len(results) == n
            write_json(set_dir / "score.json", summary)
    return set_dir, summary
