"""Region table: PUE and grid carbon intensity per datacenter or cloud region.

The numbers live in regions.csv (shipped as package data) so that each row carries its own
source and can be audited or updated without touching code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from harness.tables import read_table
from workloads.errors import InputError

DEFAULT_REGION = "us-average"
_CSV_NAME = "regions.csv"
_COLUMNS = ("region", "label", "pue", "gross_kg_per_kwh", "net_kg_per_kwh", "cfe_fraction", "source")


class UnknownRegionError(InputError):
    """Raised for a region name that is not in regions.csv."""


class RegionTableError(ValueError):
    """Raised when regions.csv itself is malformed (a packaging or editing mistake)."""


@dataclass(frozen=True)
class Region:
    name: str
    label: str
    pue: float
    gross_kg_per_kwh: float
    net_kg_per_kwh: float
    cfe_fraction: float | None
    source: str


def _parse_row(row: dict[str, str], index: int) -> Region:
    try:
        cfe_text = row["cfe_fraction"].strip()
        return Region(
            name=row["region"].strip(),
            label=row["label"].strip(),
            pue=float(row["pue"]),
            gross_kg_per_kwh=float(row["gross_kg_per_kwh"]),
            net_kg_per_kwh=float(row["net_kg_per_kwh"]),
            cfe_fraction=float(cfe_text) if cfe_text else None,
            source=row["source"].strip(),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RegionTableError(f"{_CSV_NAME} data row {index}: {exc}") from exc


def read_data_csv(name: str) -> list[dict[str, str]]:
    """A CSV data file shipped in harness.carbon, without its '#' lines (harness/tables.py)."""
    return read_table(__package__, name)


@cache
def _load_cached() -> dict[str, Region]:
    rows = read_data_csv(_CSV_NAME)
    if rows and tuple(rows[0]) != _COLUMNS:
        raise RegionTableError(f"{_CSV_NAME}: expected columns {','.join(_COLUMNS)}, got {list(rows[0])}")
    regions: dict[str, Region] = {}
    for index, row in enumerate(rows, start=1):
        region = _parse_row(row, index)
        if region.name in regions:
            raise RegionTableError(f"{_CSV_NAME}: duplicate region {region.name!r}")
        regions[region.name] = region
    return regions


def load_regions() -> dict[str, Region]:
    """All regions keyed by name. Returns a fresh dict so callers cannot corrupt the cache."""
    return dict(_load_cached())


def get_region(name: str) -> Region:
    """Look up one region; unknown names raise UnknownRegionError listing the valid ones."""
    regions = _load_cached()
    key = name.strip().lower()
    if key not in regions:
        valid = ", ".join(sorted(regions))
        raise UnknownRegionError(f"unknown region {name!r}; valid regions: {valid}")
    return regions[key]
