"""`harness compare`: your runs beside reference runs of the same workload, with ratios and convergence bounds."""

from __future__ import annotations

import statistics
from typing import Any

from harness.mlperf.runset import samples_to_target
from harness.mlperf.scoring import convergence_check
from harness.results.environment import main_device

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


def _metrics(r: dict[str, Any]) -> dict[str, float | None]:
    # An incomplete energy figure is never ranked: its energy-based metrics are left out, not guessed.
    energy = r["energy"]["total_j"] if r["energy"].get("complete", True) else None
    converged = r["status"] == "converged"
    co2 = (r.get("carbon") or {}).get("co2e_gross_kg")
    eff = r.get("efficiency") or {}  # results recorded before efficiency figures existed have none
    accel = eff.get("accelerators") or {}
    return {
        "run_s": r["timing"]["run_s"] if converged else None,
        "energy_j": energy if converged else None,
        "co2e_g": co2 * 1000 if converged and co2 is not None else None,
        "samples": samples_to_target(r),
        "tokens_per_j": r["training"]["tokens"] / energy if energy else None,
        "flops_per_j": eff.get("model_flops_per_j"),
        "j_per_token": energy / r["training"]["tokens"] if energy and r["training"]["tokens"] else None,
        "accel_tokens_per_j": accel.get("tokens_per_j"),
        "accel_avg_w": accel.get("avg_w"),
        "mfu": eff.get("mfu"),
    }


def _key(r: dict[str, Any]) -> tuple[str, str]:
    data = r["data"]
    return r["workload"], data.get("corpus") or f"user:{data.get('eval_sha256', '')[:12]}"


def _median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def compare(yours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (workload, corpus) of yours: medians of each metric on both sides and yours / reference."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in yours:
        groups.setdefault(_key(r), []).append(r)
    # A run is not its own reference, and a run copied into a package is still one run.
    own = {r["run_id"] for r in yours}
    reference = list({r["run_id"]: r for r in reference if r["run_id"] not in own}.values())
    out = []
    for (workload, corpus), runs in groups.items():
        refs = [r for r in reference if _key(r) == (workload, corpus)]
        # Times and energies only compare on like hardware: prefer references from the same machine class.
        same = [r for r in refs if _hardware(r) in {_hardware(x) for x in runs}]
        refs = same or refs
        ours_m, ref_m = [_metrics(r) for r in runs], [_metrics(r) for r in refs]
        rows = []
        for label, key in METRICS:
            a, b = _median([m[key] for m in ours_m]), _median([m[key] for m in ref_m])
            rows.append({"metric": label, "yours": a, "reference": b,
                         "ratio": a / b if a is not None and b else None})
        sub = [m["samples"] for m in ours_m if m["samples"] is not None]
        # Same seed, same steps (runs are deterministic): a reference seed counted twice would shrink its spread.
        ref_by_seed = {r["seed"]: m["samples"] for r, m in zip(refs, ref_m, strict=True) if m["samples"] is not None}
        check = convergence_check(sub, list(ref_by_seed.values())) if sub and ref_by_seed else None
        out.append({"workload": workload, "corpus": corpus, "runs": len(runs), "reference_runs": len(refs),
                    "energy_incomplete": [r["run_id"] for r in runs + refs if not r["energy"].get("complete", True)],
                    "energy_methods": sorted({r["energy"]["method"] for r in runs}),
                    "reference_energy_methods": sorted({r["energy"]["method"] for r in refs}),
                    "reference_hardware": sorted({_hardware(r) for r in refs}),
                    "rows": rows, "convergence": check})
    return out


def _hardware(r: dict[str, Any]) -> str:
    hw = r["environment"]["hardware"]
    device = main_device(hw)
    return device if device != hw["cpu_model"] else f"{device} ({hw['logical_cpus']} CPUs)"
