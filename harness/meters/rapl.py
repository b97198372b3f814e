"""Measured CPU package and DRAM energy from the Linux powercap (RAPL) sysfs interface."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.meters.base import Availability, Meter

DEFAULT_ROOT = "/sys/class/powercap"
# Only top-level zones: "intel-rapl:0". Excludes "intel-rapl-mmio:0", which re-exposes the same package
# counter through MMIO and would double count it.
_TOP = re.compile(r"^(intel|amd)-rapl:(\d+)$")


@dataclass(frozen=True)
class _Domain:
    component: str
    zone: Path
    max_range_uj: int | None


def _read_int(path: Path) -> int:
    # Module-level so tests can simulate PermissionError even when running as root.
    with open(path) as f:
        return int(f.read().strip())


def _read_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return zone.name


def _max_range(zone: Path) -> int | None:
    try:
        return _read_int(zone / "max_energy_range_uj")
    except (OSError, ValueError):
        return None


def _subzones(root: Path, top: Path) -> list[Path]:
    """Children of a package zone; real sysfs nests them, and also links them flat under the root."""
    pat = re.compile(re.escape(top.name) + r":(\d+)$")
    found: dict[int, Path] = {}
    for parent in (top, root):
        for p in parent.iterdir() if parent.is_dir() else []:
            m = pat.match(p.name)
            if m:
                found.setdefault(int(m.group(1)), p)
    return [found[k] for k in sorted(found)]


def discover(root: Path) -> tuple[list[_Domain], list[dict[str, str]]]:
    """Package zones and their dram subzones; everything else is listed as skipped with why."""
    domains: list[_Domain] = []
    skipped: list[dict[str, str]] = []
    tops = sorted((m.group(1), int(m.group(2)), p) for p in root.iterdir() if (m := _TOP.match(p.name)))
    used: set[str] = set()
    for vendor, _, top in tops:
        name = _read_name(top)
        if not name.startswith("package"):
            # "psys" covers the whole SoC including the packages: adding it would double count.
            skipped.append({"zone": top.name, "name": name, "why": "not a package zone (overlaps packages)"})
            continue
        idx = name.rsplit("-", 1)[-1]
        comp = f"cpu-package-{idx}"
        if comp in used:
            comp = f"{comp}-{vendor}"
        used.add(comp)
        domains.append(_Domain(comp, top, _max_range(top)))
        for sub in _subzones(root, top):
            sub_name = _read_name(sub)
            if sub_name == "dram":
                # DRAM is outside the package power plane, so it is additive, unlike core/uncore.
                domains.append(_Domain(f"dram-{idx}", sub, _max_range(sub)))
            else:
                why = "nested inside package energy (would double count)"
                skipped.append({"zone": sub.name, "name": sub_name, "why": why})
    return domains, skipped


class RaplMeter(Meter):
    name: ClassVar[str] = "rapl"

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.method = "measured:rapl"
        self.root = Path(root)
        self._domains, self._skipped = discover(self.root)
        if not self._domains:
            raise RuntimeError(f"RAPL: no package zones under {self.root}")
        self._last: dict[str, int] = {}
        self._acc: dict[str, float] = {}
        self.wraps = 0

    @classmethod
    def probe(cls, root: str | Path = DEFAULT_ROOT) -> Availability:
        root = Path(root)
        if not root.is_dir():
            return Availability(False, f"RAPL: {root} absent (VM or container?)")
        try:
            domains, _ = discover(root)
            if not domains:
                why = "present but has no intel-rapl:N/amd-rapl:N package zone"
                return Availability(False, f"RAPL: {root} {why}")
            for d in domains:
                _read_int(d.zone / "energy_uj")
        except PermissionError:
            # Kernels patched for CVE-2020-8694 (PLATYPUS) make energy_uj readable by root only.
            return Availability(False, f"RAPL: {root} present but not readable (root-only?)")
        except (OSError, ValueError) as e:
            return Availability(False, f"RAPL: {root} present but not readable: {e}")
        comps = ", ".join(d.component for d in domains)
        return Availability(True, f"ok: {len(domains)} domains readable ({comps})")

    def components(self) -> list[str]:
        return [d.component for d in self._domains]

    def start(self) -> None:
        self._last = {d.component: _read_int(d.zone / "energy_uj") for d in self._domains}
        self._acc = {d.component: 0.0 for d in self._domains}
        self.wraps = 0

    def read(self) -> dict[str, float]:
        if not self._last:
            raise RuntimeError("RaplMeter.start() has not been called")
        for d in self._domains:
            raw = _read_int(d.zone / "energy_uj")
            delta = raw - self._last[d.component]
            if delta < 0:
                # The counter wrapped. Polling at >=10 Hz leaves at most one wrap per interval (the
                # shortest wrap period on big servers is still tens of seconds).
                if d.max_range_uj is None:
                    raise RuntimeError(f"RAPL {d.zone}: counter went back, max_energy_range_uj unknown")
                delta += d.max_range_uj
                self.wraps += 1
            self._acc[d.component] += delta * 1e-6
            self._last[d.component] = raw
        return dict(self._acc)

    def params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "root": str(self.root),
            "domains": [
                {"component": d.component, "zone": d.zone.name, "max_energy_range_uj": d.max_range_uj}
                for d in self._domains
            ],
            "skipped_zones": self._skipped,
            "counter_wraps": self.wraps,
            "note": "measured by the CPU's RAPL energy counters (package and DRAM only)",
        }
