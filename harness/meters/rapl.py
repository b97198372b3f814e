"""Measured CPU package and DRAM energy from the Linux powercap (RAPL) sysfs interface."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Availability, Meter, MeterUnavailable, Option

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

DEFAULT_ROOT = "/sys/class/powercap"
# When a zone does not publish its power limit, bound plausible power generously: a counter that "went
# back" by more than this could explain is a reset (module reload, firmware), not a wrap.
FALLBACK_MAX_W = 1000.0
# Only top-level zones: "intel-rapl:0". Excludes "intel-rapl-mmio:0", which re-exposes the same package
# counter through MMIO and would double count it.
_TOP = re.compile(r"^(intel|amd)-rapl:(\d+)$")


@dataclass(frozen=True)
class _Domain:
    component: str
    zone: Path
    max_range_uj: int | None
    max_power_w: float | None = None

    def wrap_period_s(self) -> float | None:
        """Seconds for the counter to wrap at the zone's power limit: reads must come faster than this."""
        if self.max_range_uj is None:
            return None
        return self.max_range_uj * 1e-6 / (self.max_power_w or FALLBACK_MAX_W)


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


def _max_power(zone: Path) -> float | None:
    # constraint_0 is the long-term limit (PL1), the package's sustained power budget.
    try:
        watts = _read_int(zone / "constraint_0_max_power_uw") * 1e-6
    except (OSError, ValueError):
        return None
    return watts if watts > 0 else None


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
        domains.append(_Domain(comp, top, _max_range(top), _max_power(top)))
        for sub in _subzones(root, top):
            sub_name = _read_name(sub)
            if sub_name == "dram":
                # DRAM is outside the package power plane, so it is additive, unlike core/uncore.
                domains.append(_Domain(f"dram-{idx}", sub, _max_range(sub), _max_power(sub)))
            else:
                why = "nested inside package energy (would double count)"
                skipped.append({"zone": sub.name, "name": sub_name, "why": why})
    return domains, skipped


class RaplMeter(Meter):
    name: ClassVar[str] = "rapl"
    options: ClassVar[tuple[Option, ...]] = (Option("rapl_root", None, str),)  # a sysfs tree (tests)
    in_auto: ClassVar[bool] = True
    description: ClassVar[tuple[str, str, str]] = (
        "CPU packages + DRAM", "measured", "counters (~1 kHz updates) read at the sampler rate, default 20 Hz")

    def __init__(self, root: str | Path = DEFAULT_ROOT, clock: Callable[[], float] = time.monotonic) -> None:
        self.method = "measured:rapl"
        self.update_period_s = 0.001  # RAPL counters update about every millisecond
        self.root = Path(root)
        self._clock = clock
        self._domains, self._skipped = discover(self.root)
        if not self._domains:
            raise RuntimeError(f"RAPL: no package zones under {self.root}")
        self._last: dict[str, int] = {}
        self._acc: dict[str, float] = {}
        self._last_t = 0.0
        self.wraps = self.resets = 0
        self.longest_read_gap_s = 0.0

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> RaplMeter:
        root = req.option("rapl_root", DEFAULT_ROOT)
        availability = cls.check(root)
        if not availability.available:
            raise MeterUnavailable(availability.reason)
        return cls(root)

    @classmethod
    def probe(cls, req: MeterRequest, accels: list[Accelerator]) -> Availability:
        return cls.check(req.option("rapl_root", DEFAULT_ROOT))

    @classmethod
    def check(cls, root: str | Path = DEFAULT_ROOT) -> Availability:
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
        self._last_t = self._clock()
        self.wraps = self.resets = 0
        self.longest_read_gap_s = 0.0

    def read(self) -> dict[str, float]:
        if not self._last:
            raise RuntimeError("RaplMeter.start() has not been called")
        now = self._clock()
        dt = max(now - self._last_t, 1e-9)
        self.longest_read_gap_s = max(self.longest_read_gap_s, dt)
        for d in self._domains:
            raw = _read_int(d.zone / "energy_uj")
            delta = raw - self._last[d.component]
            if delta < 0:
                if d.max_range_uj is None:
                    raise RuntimeError(f"RAPL {d.zone}: counter went back, max_energy_range_uj unknown")
                wrapped = delta + d.max_range_uj
                if wrapped * 1e-6 / dt > 1.5 * (d.max_power_w or FALLBACK_MAX_W):
                    # No real wrap could add this much energy in dt: the counter was reset. What it shows
                    # now is energy since the reset; the part of the interval before it is lost.
                    delta = raw
                    self.resets += 1
                else:
                    # Reads at >= 10 Hz leave at most one wrap per interval: the shortest wrap period at a
                    # package's power limit is still tens of seconds (see wrap_period_s in params).
                    delta = wrapped
                    self.wraps += 1
            self._acc[d.component] += delta * 1e-6
            self._last[d.component] = raw
        self._last_t = now
        return dict(self._acc)

    def warnings(self) -> list[str]:
        out = []
        if self.resets:
            out.append(f"rapl: energy counter reset {self.resets} time(s); energy in those intervals is undercounted")
        periods = [p for d in self._domains if (p := d.wrap_period_s()) is not None]
        if periods and self.longest_read_gap_s > 0.5 * min(periods):
            out.append(f"rapl: {self.longest_read_gap_s:.1f} s between two reads, over half the counter's wrap "
                       f"period ({min(periods):.0f} s at full power): a wrap may have been missed")
        return out

    def params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "root": str(self.root),
            "domains": [
                {"component": d.component, "zone": d.zone.name, "max_energy_range_uj": d.max_range_uj,
                 "max_power_w": d.max_power_w, "wrap_period_s_at_max_power": d.wrap_period_s()}
                for d in self._domains
            ],
            "skipped_zones": self._skipped,
            "counter_wraps": self.wraps,
            "counter_resets": self.resets,
            "longest_read_gap_s": self.longest_read_gap_s,
            "note": "measured by the CPU's RAPL energy counters (package and DRAM only)",
        }
