"""Processor table (processors.csv): average power and, where a source gives one, energy for the same work."""

from __future__ import annotations

from dataclasses import dataclass

from harness.carbon.accounting import CarbonInputError
from harness.carbon.regions import read_data_csv
from harness.tables import longest_match


@dataclass(frozen=True)
class Processor:
    name: str
    pattern: str
    avg_system_w: float
    energy_per_work: float | None  # relative to P100 = 1.0 for the same training; None when unpublished
    source: str


def load_processors() -> dict[str, Processor]:
    out = {}
    for row in read_data_csv("processors.csv"):
        epw = row["energy_per_work"].strip()
        out[row["processor"]] = Processor(row["processor"], row["pattern"], float(row["avg_system_w"]),
                                          float(epw) if epw else None, row["source"])
    return out


def get_processor(name: str) -> Processor:
    table = load_processors()
    for p in table.values():
        if p.name.lower() == name.strip().lower():
            return p
    raise CarbonInputError(f"unknown processor {name!r}; valid processors: {', '.join(table)}")


def match_processor(device: str) -> Processor | None:
    """The table row whose pattern occurs in a device name (a device kind or CPU model) as whole words;
    the longest pattern wins."""
    return longest_match(device, load_processors().values(), lambda p: p.pattern)


def energy_ratio(source: Processor, target: Processor) -> float:
    """Energy on target / energy on source for the same training, from the table's energy_per_work."""
    missing = [p.name for p in (source, target) if p.energy_per_work is None]
    if missing:
        known = ", ".join(p.name for p in load_processors().values() if p.energy_per_work is not None)
        raise CarbonInputError(f"no published energy-per-work figure for {', '.join(missing)}; processors with one: "
                               f"{known} (or give --machine-factor X --machine-source TEXT)")
    return target.energy_per_work / source.energy_per_work
