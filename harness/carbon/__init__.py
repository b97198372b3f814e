"""Carbon accounting: node energy x PUE x grid intensity -> gross and net CO2e (Patterson et al. 2021)."""

from harness.carbon.accounting import (
    J_PER_KWH,
    CarbonInputError,
    Footprint,
    Pricing,
    footprint,
    paper_kwh,
    paper_tco2e,
    pricing,
)
from harness.carbon.regions import (
    DEFAULT_REGION,
    Region,
    RegionTableError,
    UnknownRegionError,
    get_region,
    load_regions,
)

__all__ = [
    "DEFAULT_REGION",
    "J_PER_KWH",
    "CarbonInputError",
    "Footprint",
    "Pricing",
    "Region",
    "RegionTableError",
    "UnknownRegionError",
    "footprint",
    "get_region",
    "load_regions",
    "paper_kwh",
    "paper_tco2e",
    "pricing",
]
