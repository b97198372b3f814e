"""`harness run --runs N`: N runs on distinct seeds, scored as MLPerf scores a benchmark.

Olympic scoring for time-to-target *and* energy-to-target (drop the best and the worst run; one run that did
not converge may count as the worst, more make the set invalid), and the reference-convergence test: a set
whose samples-to-target are significantly fewer than the reference runs' (one-sided t-test, p < 0.05) is
flagged as implausibly fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.mlperf.rcp import rcp_test
from harness.mlperf.scoring import olympic
from harness.results.files import write_json
from harness.results.schema import RunRecord
from harness.results.writer import new_folder

SCHEMA = "harness.runset/1"


def score_runs(results: list[RunRecord], run_dirs: list[str], rcps: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """The set's scores from its runs' records (in seed order). A run with an incomplete energy figure has a
    time to target but no energy to target: in the energy score it counts as a run that did not converge."""
    time_score = olympic([r.time_to_target_s for r in results])
    energy_score = olympic([r.energy_to_target_j for r in results])
    unranked = [d for d, r in zip(run_dirs, results, strict=True) if r.converged and r.energy_to_target_j is None]
    first = results[0]
    return {
        "schema": SCHEMA,
        "workload": first.workload,
        "runs": [{"dir": d, "seed": r.seed, "status": str(r.status), "run_s": r.timing.run_s,
                  "energy_j": r.energy.total_j, "energy_method": r.energy.label,
                  "energy_ranked": r.energy.rankable, "co2e_gross_kg": r.co2e_gross_kg,
                  "samples_to_target": r.samples_to_target}
                 for d, r in zip(run_dirs, results, strict=True)],
        "time_to_target_s": _score(time_score),
        "energy_to_target_j": _score(energy_score),
        "energy_method": "+".join(sorted({m for r in results for m in r.energy.methods})),
        "energy_not_ranked": unranked,
        "valid": time_score.valid and energy_score.valid,
        # What `harness check` would fail the set for: a set passes only when every record of it may count.
        "problems": [f"{d}: {why}" for d, r in zip(run_dirs, results, strict=True) for why in r.problems()],
        "convergence": rcp_test(results, rcps).to_dict(),
        "scoring": "MLPerf olympic: drop the fastest and the slowest run (a non-converged run counts as the "
                   "slowest; more than one makes the set invalid), mean of the rest; the same for energy, where a "
                   "run whose energy figure is incomplete counts as not converged",
    }


def _score(s) -> dict[str, Any]:
    return {"value": s.value, "valid": s.valid, "reason": s.reason, "kept": list(s.kept), "dropped": list(s.dropped)}


def run_set(n: int, first_seed: int, out_root: Path, workload: str,
            run_one: Callable[[int, Path], tuple[Path, RunRecord]]) -> tuple[Path, dict[str, Any]]:
    """run_one(seed, output_dir) runs one seed; an interrupt stops the set after writing what it has."""
    set_dir = new_folder(out_root, f"{workload}-runs{n}")
    dirs: list[str] = []
    results: list[RunRecord] = []
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
