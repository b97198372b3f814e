"""`harness compare`: your runs beside reference runs of the same workload, with ratios and convergence bounds."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from harness.mlperf.scoring import convergence_check
from harness.results.schema import RunRecord

METRICS = (
    ("time to target (s)", "run_s"),
    ("energy to target (J)", "energy_j"),
    ("CO2e gross (g)", "co2e_g"),
    ("samples to target", "samples"),
    ("tokens per joule", "tokens_per_j"),
    ("model FLOPs per joule", "flops_per_j"),
    ("energy per token (J)", "j_per_token"),
    ("accelerator tokens per joule", "accel_tokens_per_j"),
    ("accelerator avg power (W)", "accel_avg_w"),
    ("MFU", "mfu"),
)


def default_reference() -> Path | None:
    """The reference_results/ of the checkout harness is installed from (an editable install), or of the
    current folder; None where neither has one."""
    for folder in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (folder / "reference_results").is_dir():
            return folder / "reference_results"
    return None


def _metrics(r: RunRecord) -> dict[str, float | None]:
    """A run's figures: to-target ones only where it converged, energy-based ones only where its energy may be
    ranked (an incomplete figure is left out, never guessed)."""
    co2 = r.co2e_to_target_kg
    acc = r.accelerators
    return {
        "run_s": r.time_to_target_s,
        "energy_j": r.energy_to_target_j,
        "co2e_g": co2 * 1000 if co2 is not None else None,
        "samples": r.samples_to_target,
        "tokens_per_j": r.tokens_per_j,
        "flops_per_j": r.model_flops_per_j,
        "j_per_token": r.j_per_token,
        "accel_tokens_per_j": acc.tokens_per_j if acc else None,
        "accel_avg_w": acc.avg_w if acc else None,
        "mfu": r.mfu,
    }


def _median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def compare(yours: list[RunRecord], reference: list[RunRecord]) -> list[dict[str, Any]]:
    """One entry per (workload, corpus) of yours: medians of each metric on both sides and yours / reference."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in yours:
        groups.setdefault((r.workload, r.corpus), []).append(r)
    # A run is not its own reference, and a run copied into a package is still one run.
    own = {r.run_id for r in yours}
    reference = list({r.run_id: r for r in reference if r.run_id not in own}.values())
    out = []
    for (workload, corpus), runs in groups.items():
        refs = [r for r in reference if (r.workload, r.corpus) == (workload, corpus)]
        # Times and energies only compare on like hardware: prefer references from the same machine class.
        classes = {r.environment.hardware.machine_class for r in runs}
        refs = [r for r in refs if r.environment.hardware.machine_class in classes] or refs
        ours_m, ref_m = [_metrics(r) for r in runs], [_metrics(r) for r in refs]
        rows = []
        for label, key in METRICS:
            a, b = _median([m[key] for m in ours_m]), _median([m[key] for m in ref_m])
            rows.append({"metric": label, "yours": a, "reference": b,
                         "ratio": a / b if a is not None and b else None})
        sub = [m["samples"] for m in ours_m if m["samples"] is not None]
        # Same seed, same steps (runs are deterministic): a reference seed counted twice would shrink its spread.
        ref_by_seed = {r.seed: m["samples"] for r, m in zip(refs, ref_m, strict=True) if m["samples"] is not None}
        check = convergence_check(sub, list(ref_by_seed.values())) if sub and ref_by_seed else None
        out.append({"workload": workload, "corpus": corpus, "runs": len(runs), "reference_runs": len(refs),
                    "energy_incomplete": [r.run_id for r in runs + refs if not r.energy.complete],
                    "unfinished": [f"{r.run_id}: {r.status_text}" for r in runs if not r.status.final],
                    "energy_methods": sorted({r.energy.method for r in runs}),
                    "reference_energy_methods": sorted({r.energy.method for r in refs}),
                    "reference_hardware": sorted({r.environment.hardware.machine_class for r in refs}),
                    "rows": rows, "convergence": check})
    return out
