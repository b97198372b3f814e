"""`harness compare`: your runs beside reference runs of the same workload, with ratios and convergence bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.mlperf.rcp import rcp_test
from harness.report.stats import median
from harness.results.identity import Identity, group, identity
from harness.results.inference import InferenceRecord, ServingKey
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


def compare(yours: list[RunRecord], reference: list[RunRecord]) -> list[dict[str, Any]]:
    """One entry per identity of yours (harness/results/identity.py): the medians of each metric on both sides
    and yours / reference, against reference runs of the same benchmark set up the same way (framework,
    precision, mesh) on the same system; where the reference has none on your system, against each system it
    has, one at a time and said so (times and energies then compare unlike hardware). The RCP test is on your
    runs as a set (harness/mlperf/rcp.py)."""
    # A run is not its own reference, and a run copied into a package is still one run.
    own = {r.run_id for r in yours}
    reference = list({r.run_id: r for r in reference if r.run_id not in own}.values())
    ref_groups = group(reference)
    out = []
    for ident, runs in group(yours).items():
        like = {i: refs for i, refs in ref_groups.items() if i.same_run_as(ident)}
        same_system = [refs for i, refs in like.items() if i.system == ident.system]
        if same_system:
            choices = [(True, same_system[0])]
        else:  # each other system apart, or nothing to compare with
            choices = [(False, refs) for refs in like.values()] or [(False, [])]
        rcp = rcp_test(runs).to_dict()
        for on_yours, refs in choices:
            out.append(_entry(ident, runs, refs, on_yours, rcp, others=[i for i in ref_groups
                                                                        if i.benchmark == ident.benchmark
                                                                        and not i.same_run_as(ident)]))
    return out


def _entry(ident: Identity, runs: list[RunRecord], refs: list[RunRecord], on_yours: bool, rcp: dict[str, Any],
           others: list[Identity]) -> dict[str, Any]:
    ours_m, ref_m = [_metrics(r) for r in runs], [_metrics(r) for r in refs]
    rows = []
    for label, key in METRICS:
        a, b = median([m[key] for m in ours_m]), median([m[key] for m in ref_m])
        rows.append({"metric": label, "yours": a, "reference": b, "ratio": a / b if a is not None and b else None})
    ref_system = identity(refs[0]).system_text if refs else None
    return {"workload": ident.workload, "corpus": ident.data, "benchmark": ident.label(),
            "framework": ident.framework, "precision": ident.precision, "mesh": ident.mesh,
            "spec_sha256": ident.spec_sha256, "system": ident.system_text, "runs": len(runs),
            "reference_runs": len(refs), "reference_system": ref_system, "reference_on_your_system": on_yours,
            "energy_incomplete": [r.run_id for r in runs + refs if not r.energy.complete],
            "unfinished": [f"{r.run_id}: {r.status_text}" for r in runs if not r.status.final],
            "energy_methods": sorted({r.energy.method for r in runs}),
            "reference_energy_methods": sorted({r.energy.method for r in refs}),
            # Reference runs of the same benchmark set up otherwise: never in the medians, said so.
            "not_compared": sorted({f"{i.framework}, {i.precision}, mesh {i.mesh} on {i.system_text}"
                                    for i in others}),
            "rows": rows, "convergence": rcp}


INFERENCE_METRICS = (
    ("energy per generated token (J)", lambda r: r.j_per_token),
    ("generated tokens per joule", lambda r: r.tokens_per_j),
    ("samples per joule", lambda r: r.samples_per_j),
    ("generated tokens/s", lambda r: r.tokens_per_s),
    ("p99 time per output token (ms)", lambda r: (r.traffic.latency_ms.get("tpot") or {}).get("p99")),
    ("p99 time to first token (ms)", lambda r: (r.traffic.latency_ms.get("ttft") or {}).get("p99")),
)


def compare_inference(yours: list[InferenceRecord], reference: list[InferenceRecord]) -> list[dict[str, Any]]:
    """One entry per serving of yours (results/inference.py `ServingKey`): medians on both sides and yours /
    reference, against reference records served the same way on the same machine only (J/token on other hardware,
    another corpus, routing or setting is another measurement)."""
    own = {r.run_id for r in yours}
    refs: dict[ServingKey, list[InferenceRecord]] = {}
    for r in reference:
        if r.run_id not in own:
            refs.setdefault(ServingKey.of(r), []).append(r)
    groups: dict[ServingKey, list[InferenceRecord]] = {}
    for r in yours:
        groups.setdefault(ServingKey.of(r), []).append(r)
    out = []
    for key, runs in groups.items():
        matched = refs.get(key, [])
        rows = []
        for label, value in INFERENCE_METRICS:
            a, b = median([value(r) for r in runs]), median([value(r) for r in matched])
            rows.append({"metric": label, "yours": a, "reference": b, "ratio": a / b if a is not None and b else None})
        out.append({"workload": key.workload, "model": key.model, "serving": key.traffic,
                    "trained_corpus": key.trained_corpus, "scenario": key.scenario, "batch": key.batch,
                    "prompt_len": key.prompt_len, "gen_len": key.gen_len, "sampling": key.sampling,
                    "system": key.system, "records": len(runs),
                    "reference_records": len(matched),
                    "energy_methods": sorted({r.energy.label for r in runs}),
                    "reference_energy_methods": sorted({r.energy.label for r in matched}),
                    "not_valid": [f"{r.run_id}: {r.verdict()}" for r in runs if not r.valid], "rows": rows})
    return out
