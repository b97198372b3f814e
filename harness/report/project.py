"""`harness project RESULT_OR_SET`: the seed paper's training runs, scaled on paper onto this system.

From a result's measured model FLOPs per joule (the whole node's energy, and the accelerator boards' apart) and
its FLOP/s per device, each of Patterson et al.'s Table 4 runs (its total computation, harness/carbon/
paper_runs.csv) becomes: the energy it would take at this system's efficiency, the device-days at this system's
throughput, and the CO2e in a region, each beside the paper's published energy and CO2e. Every projected figure
says so, with its assumptions: the efficiency of this run's scale and MFU carried over to a run 10^5-10^6 times
bigger; no interconnect, host or idle energy unless a node meter measured them. A modelled energy is refused as a
basis unless asked for (`allow_modelled`), and then every line is stamped.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from harness import carbon
from harness.carbon.paper import PaperRun, load_runs
from harness.errors import UsageError
from harness.results.identity import Identity, group
from harness.results.schema import RunRecord

ALIASES = {"gpt3": "gpt-3", "switch": "switch-transformer", "gshard": "gshard-600b", "t5": "t5", "meena": "meena"}
SECONDS_PER_DAY = 86400.0
J_PER_MWH = 3.6e9


@dataclass(frozen=True)
class Basis:
    """One energy a projection stands on: model FLOPs per joule over the runs, and how it was measured."""

    name: str  # "node" or "accelerators"
    flops_per_j: float  # median over the runs
    method: str
    modelled: bool
    runs: int

    def label(self) -> str:
        stamp = "MODELLED ENERGY, " if self.modelled else ""
        return f"{stamp}{self.name}: {self.flops_per_j:.4g} model FLOPs/J ({self.method}; median of {self.runs} run(s))"


def project(records: list[RunRecord], to: str = "all", region: str | None = None, pue: float | None = None,
            allow_modelled: bool = False) -> dict[str, Any]:
    """Every published run chosen by `to` ("all" or a comma-separated list of gpt3, switch, gshard, t5, meena),
    projected from `records` on each energy basis they measured: one projection a benchmark and system
    (harness/results/identity.py), never an efficiency averaged over two. Runs with no figure to project from are
    left out, each named with why."""
    left_out = [f"{r.run_id}: {why}" for r in records if (why := _why_not(r))]
    runs = [r for r in records if _why_not(r) is None]
    if not runs:
        raise UsageError("no run with model FLOPs per joule over a synchronised window and a complete energy "
                         "figure among the results given: nothing to project from"
                         + (f" ({'; '.join(left_out[:3])}{'; ...' if len(left_out) > 3 else ''})" if left_out else ""))
    published = _chosen(to)
    projections, refused = [], []
    groups = group(runs)
    for ident, members in groups.items():
        name = ident.label(groups)
        bases, not_used = _bases(members, allow_modelled)
        refused += [f"{name} on {ident.system_text}: {why}" for why in not_used]
        if bases:
            projections.append(_projection(name, ident, members, bases, published, region, pue))
    if not projections:
        raise UsageError(f"{'; '.join(refused)}; projections from modelled energy are refused (give "
                         "--allow-modelled to make them anyway, every line stamped)")
    return {"label": "PROJECTED, not measured", "projections": projections, "refused": refused,
            "left_out": left_out, "rows": [row for p in projections for row in p["rows"]]}


def _why_not(r: RunRecord) -> str | None:
    if r.model_flops_per_s is None:
        return f"no synchronised efficiency window ({r.mfu_reason or 'no work recorded'})"
    if r.model_flops_per_j is None:
        return r.energy.why_not_ranked() or "no energy over its efficiency window"
    return None


def _projection(name: str, ident: Identity, runs: list[RunRecord], bases: list[Basis], published: list[PaperRun],
                region: str | None, pue: float | None) -> dict[str, Any]:
    first = runs[0]
    own = first.carbon
    if region is None and own is not None:  # the run's own pricing, overrides and all, unless another is asked
        pricing = carbon.pricing(own.region, pue if pue is not None else own.overrides.get("pue"),
                                 own.overrides.get("carbon_intensity"), own.overrides.get("net_intensity"))
    else:
        pricing = carbon.pricing(region or carbon.DEFAULT_REGION, pue)
    devices = [len(r.environment.hardware.devices) or 1 for r in runs]
    per_device = statistics.median(r.model_flops_per_s / n for r, n in zip(runs, devices, strict=True))
    mfu = [r.mfu for r in runs if r.mfu is not None]
    system = f"{first.environment.hardware.platform_name}, {name}, {len(runs)} run(s)"
    assumptions = [
        f"efficiency carried over from this system's measured runs ({system}) at their scale and MFU "
        f"({'median ' + format(statistics.median(mfu), '.1%') if mfu else 'no MFU: no published peak'}), to a run "
        "of the published run's total computation",
        "no interconnect, host or idle energy beyond what the basis's meters measured (the accelerator basis is the "
        "boards alone)",
        f"PUE {pricing.pue:g} and {pricing.gross_kg_per_kwh:g} kg CO2e/kWh gross, region {pricing.region} "
        f"({'overridden: ' + ', '.join(pricing.overrides) if pricing.overrides else 'its sources: harness regions'})",
    ]
    rows = [_row(paper, basis, per_device, pricing) | {"benchmark": name, "system": ident.system_text}
            for paper in published for basis in bases]
    return {"benchmark": name, "system": ident.system_text, "assumptions": assumptions,
            "flops_per_s_per_device": per_device, "rows": rows}


def _chosen(to: str) -> list[PaperRun]:
    runs = load_runs()
    if to == "all":
        names = list(ALIASES.values())
    else:
        asked = [t.strip() for t in to.split(",") if t.strip()]
        bad = [t for t in asked if t not in ALIASES]
        if bad or not asked:
            raise UsageError(f"--to must be all or among {', '.join(ALIASES)}, got {to!r}")
        names = [ALIASES[t] for t in asked]
    return [runs[n] for n in names]


def _bases(runs: list[RunRecord], allow_modelled: bool) -> tuple[list[Basis], list[str]]:
    bases, refused = [], []
    node = Basis("node", statistics.median(r.model_flops_per_j for r in runs),
                 " + ".join(sorted({r.energy.method for r in runs})), any(r.energy.modelled_methods for r in runs),
                 len(runs))
    measured = [r for r in runs if r.accelerators and r.accelerators.model_flops_per_j is not None]
    candidates = [node]
    if measured:
        acc = [r.accelerators for r in measured]
        candidates.append(Basis("accelerators", statistics.median(a.model_flops_per_j for a in acc),
                                " + ".join(sorted({a.method for a in acc})),
                                any("modelled:" in a.method for a in acc), len(measured)))
    for basis in candidates:
        if basis.modelled and not allow_modelled:
            refused.append(f"{basis.name} basis refused: its energy is (partly) modelled ({basis.method})")
        else:
            bases.append(basis)
    return bases, refused


def _row(paper: PaperRun, basis: Basis, per_device: float, pricing: carbon.Pricing) -> dict[str, Any]:
    energy_j = paper.total_flops / basis.flops_per_j
    fp = pricing.price(energy_j)
    published_j = paper.published_mwh * J_PER_MWH if paper.published_mwh is not None else None
    published_kg = paper.published_gross_t * 1000 if paper.published_gross_t is not None else None
    return {
        "run": paper.run, "total_flops": paper.total_flops,
        "basis": {"energy": basis.name, "model_flops_per_j": basis.flops_per_j, "method": basis.method,
                  "modelled": basis.modelled, "runs": basis.runs, "text": basis.label()},
        "projected_energy_j": energy_j, "projected_device_days": paper.total_flops / per_device / SECONDS_PER_DAY,
        "projected_facility_kwh": fp.facility_kwh, "projected_co2e_gross_kg": fp.co2e_gross_kg,
        "published_energy_j": published_j, "published_co2e_gross_kg": published_kg,
        "published_device_days": paper.chips * paper.days, "published_processor": paper.processor,
        "energy_ratio": energy_j * pricing.pue / published_j if published_j else None,
        "co2e_ratio": fp.co2e_gross_kg / published_kg if published_kg else None,
        "label": f"projected{' from MODELLED energy' if basis.modelled else ''}",
    }


def lines(out: dict[str, Any]) -> list[str]:
    said = [f"{out['label']}: the seed paper's training runs at this system's measured efficiency"]
    said += [f"  left out: {why}" for why in out["left_out"]]
    said += [f"  {r}" for r in out["refused"]]
    for p in out["projections"]:
        if len(out["projections"]) > 1:
            said.append(f"from {p['benchmark']} on {p['system']}:")
        said += [f"  assumption: {a}" for a in p["assumptions"]]
        for r in p["rows"]:
            pub = r["published_energy_j"]
            said.append(f"{r['run']} ({r['total_flops']:.3g} FLOPs), {r['label']}, basis {r['basis']['text']}:")
            said.append(f"  energy {r['projected_energy_j'] / J_PER_MWH:,.4g} MWh at the basis, "
                        f"{r['projected_facility_kwh'] / 1000:,.4g} MWh at the facility vs published "
                        + (f"{pub / J_PER_MWH:,.4g} MWh ({r['energy_ratio']:.3g}x)" if pub else "—"))
            said.append(f"  {r['projected_device_days']:,.4g} device-days vs published "
                        f"{r['published_device_days']:,.4g} chip-days of {r['published_processor']}; CO2e gross "
                        f"{r['projected_co2e_gross_kg'] / 1000:,.4g} t"
                        + (f" vs published {r['published_co2e_gross_kg'] / 1000:,.4g} t ({r['co2e_ratio']:.3g}x)"
                           if r["published_co2e_gross_kg"] else ""))
    return said
