"""A training job's footprint from its inputs (chips, hours, watts), by the seed paper's formula."""

from __future__ import annotations

from typing import Any

from harness.carbon.accounting import CarbonInputError, paper_kwh, paper_tco2e, positive_number
from harness.carbon.regions import get_region

HOURS_PER_YEAR = 8766.0  # 365.25 days


def job_footprint(chips: float, hours: float, watts: float, pue: float | None = None, region: str | None = None,
                  intensity: float | None = None, net_intensity: float | None = None,
                  embodied_kg_per_chip_year: float | None = None, embodied_source: str | None = None
                  ) -> dict[str, Any]:
    """The paper's formula on a job given by its inputs: kWh = h x chips x W x PUE / 1000; t = kWh x kg/kWh / 1000."""
    chips, hours = positive_number("--chips", chips), positive_number("--hours", hours)
    watts = positive_number("--watts", watts)
    if (region is None) == (intensity is None):
        raise CarbonInputError("give exactly one of --region R or --carbon-intensity KG_PER_KWH")
    if net_intensity is not None and intensity is None:
        raise CarbonInputError("--net-carbon-intensity needs --carbon-intensity (a region brings its own net "
                               "intensity)")
    if region is not None:
        reg = get_region(region)
        pue = reg.pue if pue is None else pue
        gross, net, where = reg.gross_kg_per_kwh, reg.net_kg_per_kwh, f"region {reg.name}: {reg.source}"
    else:
        if pue is None:
            raise CarbonInputError("--carbon-intensity needs --pue (there is no region to take a PUE from)")
        gross = intensity
        net = intensity if net_intensity is None else net_intensity
        where = "user-given intensities"
    kwh = paper_kwh(hours, chips, watts, pue)
    gross_t, net_t = paper_tco2e(kwh, gross), paper_tco2e(kwh, net)
    out: dict[str, Any] = {
        "inputs": {"chips": chips, "hours": hours, "watts_per_chip": watts, "pue": pue,
                   "gross_kg_per_kwh": gross, "net_kg_per_kwh": net, "intensity_source": where},
        "kwh": kwh, "mwh": kwh / 1000.0, "gross_tco2e": gross_t, "net_tco2e": net_t,
        "formula": [f"kWh = {hours:g} h x {chips:g} chips x {watts:g} W x PUE {pue:g} / 1000 = {kwh:,.3f}",
                    f"gross tCO2e = {kwh:,.3f} kWh x {gross:g} kg/kWh / 1000 = {gross_t:,.4f}",
                    f"net tCO2e = {kwh:,.3f} kWh x {net:g} kg/kWh / 1000 = {net_t:,.4f}"],
        "method": "Patterson et al. 2021, Sec. 2.5 (operational emissions only)",
    }
    if embodied_kg_per_chip_year is not None:
        per_year = positive_number("--embodied", embodied_kg_per_chip_year)
        if not embodied_source:
            raise CarbonInputError("--embodied needs --embodied-source TEXT: an estimate is only as good as its source")
        chip_hours = chips * hours
        out["embodied"] = {"kg_co2e": per_year * chip_hours / HOURS_PER_YEAR, "kg_per_chip_year": per_year,
                           "chip_hours": chip_hours, "source": embodied_source,
                           "label": "estimate: embodied carbon amortised over chip-hours, reported apart from "
                                    "operational emissions"}
    return out
