"""What-ifs on measured results: another region, PUE or processor, and the 4M split of a reduction.

A measured energy stays measured: re-pricing it under another facility and grid changes only the factors
applied to it, and says so. Swapping the processor changes the energy itself through a published ratio, so
that figure is labelled modelled. (This reads result records and prices them with harness.carbon.)
"""

from __future__ import annotations

import statistics
from typing import Any

from harness.carbon.accounting import CarbonInputError, footprint, positive_number
from harness.carbon.paper import FourM, four_m
from harness.carbon.processors import Processor, energy_ratio, get_processor, match_processor
from harness.carbon.regions import DEFAULT_REGION, get_region
from harness.results.schema import Record, RunRecord


def result_processor(record: Record) -> Processor | None:
    return match_processor(record.environment.hardware.main_device)


def reprice(record: Record, region: str, pue: float | None = None, processor: str | None = None,
            from_processor: str | None = None) -> dict[str, Any]:
    """The record's energy under another facility and grid, and optionally on another processor. The energy
    keeps its own word: measured, modelled or partly modelled, and incomplete or unfinished where it is."""
    energy = record.energy
    energy_j = energy.total_j
    if energy_j is None:
        raise CarbonInputError(f"result {record.run_id} has no energy figure to re-price")
    was = record.footprint
    caveats = []
    if not record.status.final:
        caveats.append(f"{record.status_text}: the energy is only what was spent up to its last record")
    if not energy.complete:
        caveats.append("energy figure INCOMPLETE: " + "; ".join(energy.incomplete_reasons))
    out: dict[str, Any] = {
        "run_id": record.run_id, "workload": record.workload, "status": str(record.status), "caveats": caveats,
        "measured": {"energy_j": energy_j, "method": energy.method, "method_word": energy.method_word,
                     "carbon": was.to_dict() if was else None},
    }
    repriced_j = energy_j
    if processor is not None:
        source = get_processor(from_processor) if from_processor else result_processor(record)
        if source is None:
            raise CarbonInputError("the result's processor is not in processors.csv; give --from-processor NAME")
        target = get_processor(processor)
        ratio = energy_ratio(source, target)
        repriced_j = energy_j * ratio
        out["processor"] = {"from": source.name, "to": target.name, "energy_ratio": ratio, "energy_j": repriced_j,
                            "label": f"modelled: energy x {ratio:.4g} ({target.name} / {source.name} energy per work, "
                                     "processors.csv); the ratio was published for another model",
                            "sources": [source.source, target.source]}
    fp = footprint(repriced_j, region, pue).to_dict()
    kept = (" (energy modelled for another processor)" if processor else
            f" (energy still {energy.method_word}: {energy.method})")
    out["repriced"] = fp | {"label": f"what-if: same energy under region {fp['region']} and PUE {fp['pue']:g}{kept}"}
    return out


def energy_to_target(results: list[Record]) -> tuple[float, str, int]:
    """Median energy to target of the converged runs with a ranked figure, their method, and how many."""
    ranked = [r for r in results if isinstance(r, RunRecord) and r.energy_to_target_j is not None]
    if not ranked:
        raise CarbonInputError("no converged run with a complete energy figure among the results given")
    methods = sorted({r.energy.method for r in ranked})
    return statistics.median(r.energy_to_target_j for r in ranked), "+".join(methods), len(ranked)


def four_m_results(dense: list[Record], sparse: list[Record], from_region: str | None = None,
                   to_region: str | None = None, from_pue: float | None = None, to_pue: float | None = None,
                   machine_factor: float | None = None, machine_source: str | None = None, net: bool = False,
                   from_processor: str | None = None, to_processor: str | None = None) -> FourM:
    """Decompose dense -> sparse (and old -> new facility, grid, machine) into the paper's four factors.

    Model is measured (dense / sparse energy to target, same hardware); machine comes from the user or the
    processor table; mechanization and map from the regions (default: each side's own result settings).
    """
    dense_j, dense_method, nd = energy_to_target(dense)
    sparse_j, sparse_method, ns = energy_to_target(sparse)
    if (from_processor is None) != (to_processor is None):
        raise CarbonInputError("give both --from-processor and --to-processor, or neither")
    if from_processor is not None and machine_factor is not None:
        raise CarbonInputError("give --machine-factor or the processor pair, not both")
    if from_processor is not None:
        old_p, new_p = get_processor(from_processor), get_processor(to_processor or "")
        machine_factor = 1.0 / energy_ratio(old_p, new_p)
        machine_source = f"processors.csv: {old_p.source}; {new_p.source}"
    if machine_factor is None:
        machine_factor, machine_label = 1.0, "1 (same machine)"
    else:
        machine_factor = positive_number("--machine-factor", machine_factor)
        if not machine_source:
            raise CarbonInputError("--machine-factor needs --machine-source TEXT naming where the ratio comes from")
        machine_label = f"{machine_factor:g}, modelled: {machine_source}"
    before = get_region(from_region or _region(dense))
    after = get_region(to_region or _region(sparse))
    pue_b = before.pue if from_pue is None else from_pue
    pue_a = after.pue if to_pue is None else to_pue
    kind = "net" if net else "gross"
    kg_b = before.net_kg_per_kwh if net else before.gross_kg_per_kwh
    kg_a = after.net_kg_per_kwh if net else after.gross_kg_per_kwh
    for name, value in (("pue", pue_b), ("pue", pue_a)):
        if value < 1.0:
            raise CarbonInputError(f"{name} must be >= 1.0 (facility energy / IT energy), got {value}")
    if kg_a <= 0:
        raise CarbonInputError(f"the target grid's {kind} intensity is 0: the reduction is unbounded")
    labels = {
        "model": f"measured: {workload(dense)} / {workload(sparse)} energy to target, median of {nd} and {ns} "
                 f"converged runs ({dense_method} / {sparse_method})",
        "machine": machine_label,
        "mechanization": f"PUE {pue_b:g} ({before.name}) / {pue_a:g} ({after.name})",
        "map": f"{kind} {kg_b:g} ({before.name}) / {kg_a:g} ({after.name}) kg CO2e/kWh",
    }
    return four_m(dense_j / 3.6e6, sparse_j / 3.6e6, machine_factor, pue_b, pue_a, kg_b, kg_a, labels)


def workload(results: list[Record]) -> str:
    return "+".join(sorted({r.workload for r in results}))


def _region(results: list[Record]) -> str:
    return next((r.carbon.region for r in results if r.carbon is not None), DEFAULT_REGION)
