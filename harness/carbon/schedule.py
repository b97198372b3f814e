"""Where and when to run a job so that it emits the least CO2e, given hourly grid carbon intensity.

Patterson et al. 2021 (Sec. 4) point out that the choice of datacenter and time can change a
training run's footprint several-fold. `plan_job` makes that concrete: it slides a job of fixed
duration and power over an hourly intensity profile (see profiles/README.md for the CSV format and
where real data comes from) and reports the lowest-CO2e (region, start hour) against starting now.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from harness.carbon.accounting import CarbonInputError

_HEADER = ("timestamp", "region", "kg_per_kwh")
_S_PER_HOUR = 3600
# The dirtiest grids (lignite, oil) sit near 1.0-1.3 kg/kWh; anything far above is almost surely
# g/kWh (Electricity Maps) or lb/MWh (WattTime) pasted without conversion, so refuse it loudly.
_MAX_KG_PER_KWH = 2.0
# Prefix-sum differences carry ~1e-16 relative rounding, so windows equal in exact arithmetic can
# differ by an ulp; treat them as tied so the documented tie-break (earliest, then region) holds.
_TIE_REL = 1e-9
_TIE_ABS = 1e-12


@dataclass(frozen=True)
class Profile:
    source: str  # file path
    regions: tuple[str, ...]  # in file order of first appearance
    start_unix_s: float  # first timestamp (hour-aligned, UTC)
    intensity: dict[str, tuple[float, ...]]  # region -> kg CO2e/kWh per hour from start, all the same length

    @property
    def hours(self) -> int:
        """Number of hourly slots every region covers."""
        return len(self.intensity[self.regions[0]]) if self.regions else 0


@dataclass(frozen=True)
class Window:
    region: str
    start_unix_s: float
    hours: float
    energy_kwh: float  # facility energy of the job
    co2e_kg: float


@dataclass(frozen=True)
class Plan:
    best: Window
    baseline: Window  # starting now (the profile's first hour) in the first region asked for
    saving_kg: float
    saving_pct: float  # percent of the baseline, 0..100
    candidates: int  # windows considered
    per_region_best: tuple[Window, ...]


def example_profile_path() -> Path:
    """Path of the shipped synthetic profile (profiles/example_hourly.csv); illustrative data only."""
    return Path(__file__).resolve().parent / "profiles" / "example_hourly.csv"


def _fmt_hour(hour_index: int) -> str:
    return datetime.fromtimestamp(hour_index * _S_PER_HOUR, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _parse_hour(text: str, where: str) -> int:
    """ISO 8601 timestamp -> whole hours since the Unix epoch (UTC)."""
    valid = "an ISO 8601 UTC hour such as 2026-03-01T00:00Z or 2026-03-01T00:00:00+00:00"
    # fromisoformat also takes a bare date, which would silently mean midnight; demand a time part.
    if "T" not in text.upper() and " " not in text:
        raise CarbonInputError(f"{where}: timestamp must be {valid}, got {text!r}")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise CarbonInputError(f"{where}: timestamp must be {valid}, got {text!r}") from None
    # Exported grid data is UTC unless marked otherwise, so naive means UTC rather than local time.
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    if (stamp.minute, stamp.second, stamp.microsecond) != (0, 0, 0):
        raise CarbonInputError(f"{where}: timestamp must be on a whole UTC hour ({valid}), got {text!r}")
    return int(stamp.timestamp()) // _S_PER_HOUR


def _parse_intensity(text: str, where: str) -> float:
    valid = f"a finite number of kg CO2e/kWh between 0 and {_MAX_KG_PER_KWH}"
    try:
        value = float(text)
    except ValueError:
        raise CarbonInputError(f"{where}: kg_per_kwh must be {valid}, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise CarbonInputError(f"{where}: kg_per_kwh must be {valid}, got {text!r}")
    if value > _MAX_KG_PER_KWH:
        raise CarbonInputError(
            f"{where}: kg_per_kwh must be {valid}, got {text!r} (g/kWh? divide by 1000; lb/MWh? multiply by 0.000454)"
        )
    return value


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark that would spoil the header.
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise CarbonInputError(f"cannot read carbon-intensity profile {path}: {reason}") from None


def load_profile(path: str | Path) -> Profile:
    """Read an hourly carbon-intensity CSV (header timestamp,region,kg_per_kwh).

    '#' lines are comments and blank lines are skipped. Timestamps are ISO 8601 whole hours; a
    timestamp without an offset is taken as UTC, one with an offset is converted to UTC. Every
    region must cover the same contiguous hourly range exactly once. Rows may come in any order.
    Any problem raises CarbonInputError naming the file and line.
    """
    path = Path(path)
    header_seen = False
    # region -> hour index -> (intensity, line number); dict keeps regions in order of first appearance.
    rows: dict[str, dict[int, tuple[float, int]]] = {}
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{lineno}"
        fields = [field.strip() for field in next(csv.reader([line]))]
        if not header_seen:
            if tuple(fields) != _HEADER:
                raise CarbonInputError(f"{where}: header must be {','.join(_HEADER)}, got {line.strip()!r}")
            header_seen = True
            continue
        if len(fields) != len(_HEADER):
            raise CarbonInputError(f"{where}: expected 3 fields {','.join(_HEADER)}, got {len(fields)}")
        stamp_text, region, value_text = fields
        if not region:
            raise CarbonInputError(f"{where}: region must be a non-empty name, got an empty field")
        hour = _parse_hour(stamp_text, where)
        value = _parse_intensity(value_text, where)
        by_hour = rows.setdefault(region, {})
        if hour in by_hour:
            first_line = by_hour[hour][1]
            raise CarbonInputError(
                f"{where}: duplicate hour {_fmt_hour(hour)} for region {region!r} (first given on line {first_line})"
            )
        by_hour[hour] = (value, lineno)
    if not rows:
        raise CarbonInputError(f"{path}: no data rows; expected a header {','.join(_HEADER)} and hourly rows")

    first = min(min(by_hour) for by_hour in rows.values())
    last = max(max(by_hour) for by_hour in rows.values())
    intensity: dict[str, tuple[float, ...]] = {}
    for region, by_hour in rows.items():
        _check_coverage(path, region, by_hour, first, last)
        intensity[region] = tuple(by_hour[h][0] for h in range(first, last + 1))
    return Profile(
        source=str(path),
        regions=tuple(rows),
        start_unix_s=float(first * _S_PER_HOUR),
        intensity=intensity,
    )


def _check_coverage(path: Path, region: str, by_hour: dict[int, tuple[float, int]], first: int, last: int) -> None:
    # Summing hours across regions only means something if they share one clock, so every region
    # must span the whole [first, last] range; report the line next to the first hole found.
    hours = sorted(by_hour)
    span = f"the profile spans {_fmt_hour(first)} to {_fmt_hour(last)}"
    if hours[0] != first:
        line = by_hour[hours[0]][1]
        raise CarbonInputError(
            f"{path}:{line}: region {region!r} starts at {_fmt_hour(hours[0])} but {span}; missing {_fmt_hour(first)}"
        )
    for prev, cur in zip(hours, hours[1:], strict=False):
        if cur != prev + 1:
            line = by_hour[cur][1]
            raise CarbonInputError(
                f"{path}:{line}: region {region!r} jumps from {_fmt_hour(prev)} to {_fmt_hour(cur)}; "
                f"missing {_fmt_hour(prev + 1)} (hours must be contiguous)"
            )
    if hours[-1] != last:
        line = by_hour[hours[-1]][1]
        raise CarbonInputError(
            f"{path}:{line}: region {region!r} ends at {_fmt_hour(hours[-1])} but {span}; "
            f"missing {_fmt_hour(hours[-1] + 1)}"
        )


def _positive(name: str, value: float, valid: str, minimum: float, inclusive: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CarbonInputError(f"{name} must be {valid}, got {value!r}") from None
    too_small = number < minimum if inclusive else number <= minimum
    if not math.isfinite(number) or too_small:
        raise CarbonInputError(f"{name} must be {valid}, got {value!r}")
    return number


def _pick_regions(profile: Profile, regions: list[str] | None) -> list[str]:
    if regions is None:
        return list(profile.regions)
    valid = ", ".join(profile.regions)
    if isinstance(regions, str) or not regions:
        raise CarbonInputError(f"regions must be a non-empty list of profile regions ({valid}), got {regions!r}")
    unknown = [r for r in regions if r not in profile.intensity]
    if unknown:
        raise CarbonInputError(f"unknown region {unknown[0]!r} for profile {profile.source}; valid regions: {valid}")
    return list(dict.fromkeys(regions))  # a repeated name would only double-count candidates


def _window_co2e(values: tuple[float, ...], start: int, whole: int, frac: float, kwh_per_hour: float) -> float:
    # Exact re-sum for the windows we report, so printed numbers do not carry prefix-sum rounding.
    total = math.fsum(values[start : start + whole])
    if frac:
        total += frac * values[start + whole]
    return total * kwh_per_hour


def _earliest_min(co2e: np.ndarray) -> tuple[int, int]:
    """(row, column) of the minimum with ties going to the earliest column, then the first row."""
    low = float(co2e.min())
    tied = co2e <= low + max(_TIE_ABS, abs(low) * _TIE_REL)
    column = int(np.argmax(tied.any(axis=0)))
    row = int(np.argmax(tied[:, column]))
    return row, column


def plan_job(
    profile: Profile, hours: float, power_kw: float, regions: list[str] | None = None, pue: float = 1.0
) -> Plan:
    """Best (region, start hour) for a job of `hours` at constant `power_kw` IT power x `pue`.

    Starts are on the profile's hour boundaries and the whole job must fit inside the profile; a
    fractional last hour counts for its fraction of that hour's intensity. The baseline is starting
    at the profile's first hour in the first region of `regions` (default: all, in file order).
    Ties go to the earliest start, then to the order of `regions`.
    """
    hours = _positive("hours", hours, "a finite number of hours > 0", 0.0, inclusive=False)
    power_kw = _positive("power_kw", power_kw, "a finite IT power in kW > 0", 0.0, inclusive=False)
    pue = _positive("pue", pue, "a finite number >= 1.0 (facility energy / IT energy)", 1.0, inclusive=True)
    names = _pick_regions(profile, regions)

    span = math.ceil(hours)  # hourly slots the job touches
    whole = math.floor(hours)
    frac = hours - whole
    if span > profile.hours:
        raise CarbonInputError(
            f"job needs {hours:g} h ({span} hourly slots) but profile {profile.source} covers only "
            f"{profile.hours} h; use a longer profile or a shorter job"
        )
    starts = profile.hours - span + 1
    kwh_per_hour = power_kw * pue

    # One row per region: CO2e of starting at each hour, via prefix sums -> O(regions x hours).
    table = np.array([profile.intensity[name] for name in names], dtype=np.float64)
    prefix = np.concatenate([np.zeros((len(names), 1)), np.cumsum(table, axis=1)], axis=1)
    per_kwh = prefix[:, whole : whole + starts] - prefix[:, :starts]
    if frac:
        per_kwh = per_kwh + frac * table[:, whole : whole + starts]
    co2e = per_kwh * kwh_per_hour

    def window(row: int, start: int) -> Window:
        name = names[row]
        return Window(
            region=name,
            start_unix_s=profile.start_unix_s + start * _S_PER_HOUR,
            hours=hours,
            energy_kwh=kwh_per_hour * hours,
            co2e_kg=_window_co2e(profile.intensity[name], start, whole, frac, kwh_per_hour),
        )

    best = window(*_earliest_min(co2e))
    baseline = window(0, 0)
    per_region = tuple(window(row, _earliest_min(co2e[row : row + 1])[1]) for row in range(len(names)))
    # Clamp: when best ties the baseline, rounding must not report a tiny negative saving.
    saving = max(0.0, baseline.co2e_kg - best.co2e_kg)
    pct = 100.0 * saving / baseline.co2e_kg if baseline.co2e_kg > 0 else 0.0
    return Plan(
        best=best,
        baseline=baseline,
        saving_kg=saving,
        saving_pct=pct,
        candidates=len(names) * starts,
        per_region_best=per_region,
    )
