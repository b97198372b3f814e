"""Energy -> CO2e accounting, following Patterson et al. 2021 ("Carbon Emissions and Large Neural
Network Training", Sec. 2.5).

The paper's formulas start from hours x processors x average watts; the harness instead measures
node energy in joules directly, so `footprint` starts one step later and applies the same PUE and
intensity factors. `paper_kwh` / `paper_tco2e` are kept verbatim so results can be checked against
the paper's tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from harness.carbon.regions import DEFAULT_REGION, get_region
from workloads.errors import InputError

J_PER_KWH = 3.6e6


class CarbonInputError(InputError):
    """Raised for an out-of-range energy, PUE or intensity (the CLI maps it to exit code 2)."""


def _finite(name: str, value: float, valid: str) -> float:
    # float() accepts numpy scalars from the meters; NaN/inf would silently poison every total.
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise CarbonInputError(f"{name} must be {valid}, got {value!r}")
    return number


def _check_non_negative(name: str, value: float, unit: str) -> float:
    valid = f"a finite number >= 0 {unit}".rstrip()
    number = _finite(name, value, valid)
    if number < 0:
        raise CarbonInputError(f"{name} must be {valid}, got {value!r}")
    return number


def _check_pue(value: float) -> float:
    # PUE = facility energy / IT energy, so below 1.0 would mean the facility makes energy.
    valid = "a finite number >= 1.0 (facility energy / IT energy)"
    number = _finite("pue", value, valid)
    if number < 1.0:
        raise CarbonInputError(f"pue must be {valid}, got {value!r}")
    return number


def paper_kwh(hours: float, processors: float, avg_watts: float, pue: float) -> float:
    """Patterson et al. 2021: KWh = hours x processors x average W per processor x PUE / 1000."""
    hours = _check_non_negative("hours", hours, "h")
    processors = _check_non_negative("processors", processors, "")
    avg_watts = _check_non_negative("avg_watts", avg_watts, "W")
    return hours * processors * avg_watts * _check_pue(pue) / 1000.0


def paper_tco2e(kwh: float, kg_per_kwh: float) -> float:
    """Patterson et al. 2021: tCO2e = KWh x kg CO2e per KWh / 1000 (metric tons)."""
    kwh = _check_non_negative("kwh", kwh, "kWh")
    return kwh * _check_non_negative("kg_per_kwh", kg_per_kwh, "kg CO2e/kWh") / 1000.0


@dataclass(frozen=True)
class Pricing:
    """How a facility and its grid price energy: PUE and kg CO2e per kWh (gross, and net of carbon-free
    energy), for a region, with the user's overrides and the source of every factor. A result stores its
    pricing and derives its CO2e from its one energy figure, so the two can never disagree."""

    region: str
    pue: float
    gross_kg_per_kwh: float
    net_kg_per_kwh: float
    overrides: dict  # user-supplied values only: {"pue": ..., "carbon_intensity": ..., "net_intensity": ...}
    sources: dict  # provenance text for "pue", "gross_kg_per_kwh", "net_kg_per_kwh"

    def price(self, node_joules: float) -> Footprint:
        """Node energy (J) -> facility kWh (x PUE) -> gross and net kg CO2e (x intensities)."""
        node_kwh = _check_non_negative("node_joules", node_joules, "J") / J_PER_KWH
        facility_kwh = node_kwh * self.pue
        return Footprint(**{f.name: getattr(self, f.name) for f in fields(Pricing)}, node_kwh=node_kwh,
                         facility_kwh=facility_kwh, co2e_gross_kg=facility_kwh * self.gross_kg_per_kwh,
                         co2e_net_kg=facility_kwh * self.net_kg_per_kwh)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; nested dicts are copies so callers cannot mutate this record. (Written out
        rather than dataclasses.asdict, whose deep copy costs 85 us: a price at every window edge adds up.)"""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out | {"overrides": dict(self.overrides), "sources": dict(self.sources)}


@dataclass(frozen=True)
class Footprint(Pricing):
    """Energy priced: the pricing, and node kWh, facility kWh (x PUE) and CO2e gross and net (x intensities)."""

    node_kwh: float
    facility_kwh: float
    co2e_gross_kg: float
    co2e_net_kg: float


def pricing(
    region: str = DEFAULT_REGION,
    pue: float | None = None,
    carbon_intensity: float | None = None,
    net_intensity: float | None = None,
) -> Pricing:
    """The factors that price energy in `region`; any of pue / carbon_intensity / net_intensity overrides
    the region's. A bad region or value raises CarbonInputError (one line, exit 2) before any work.

    A gross override without a net override makes net = gross: the region's carbon-free energy share
    belongs to the region's grid, so it says nothing about a user-supplied grid figure.
    """
    reg = get_region(region)
    where = f"region {reg.name}: {reg.source}"
    overrides: dict[str, float] = {}
    sources: dict[str, str] = {}

    if pue is None:
        pue_value, sources["pue"] = reg.pue, where
    else:
        pue_value = overrides["pue"] = _check_pue(pue)
        sources["pue"] = "user override"

    if carbon_intensity is None:
        gross, sources["gross_kg_per_kwh"] = reg.gross_kg_per_kwh, where
    else:
        gross = overrides["carbon_intensity"] = _check_non_negative(
            "carbon_intensity", carbon_intensity, "kg CO2e/kWh"
        )
        sources["gross_kg_per_kwh"] = "user override"

    if net_intensity is not None:
        net = overrides["net_intensity"] = _check_non_negative("net_intensity", net_intensity, "kg CO2e/kWh")
        sources["net_kg_per_kwh"] = "user override"
    elif carbon_intensity is not None:
        net = gross
        sources["net_kg_per_kwh"] = "= carbon_intensity override: no carbon-free energy assumed"
    else:
        net, sources["net_kg_per_kwh"] = reg.net_kg_per_kwh, where
    return Pricing(region=reg.name, pue=pue_value, gross_kg_per_kwh=gross, net_kg_per_kwh=net,
                   overrides=overrides, sources=sources)


def footprint(
    node_joules: float,
    region: str = DEFAULT_REGION,
    pue: float | None = None,
    carbon_intensity: float | None = None,
    net_intensity: float | None = None,
) -> Footprint:
    """Node energy (J) -> facility kWh (x PUE) -> gross and net kg CO2e (x intensities), priced in `region`
    (see `pricing` for the overrides)."""
    return pricing(region, pue, carbon_intensity, net_intensity).price(node_joules)


def positive_number(name: str, value: float | None) -> float:
    """`value` as a float, or CarbonInputError naming the flag when it is not a finite number above 0."""
    if value is None or not math.isfinite(value) or value <= 0:
        raise CarbonInputError(f"{name} must be a positive number, got {value}")
    return float(value)
