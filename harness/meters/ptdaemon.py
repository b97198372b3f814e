"""Import a PTDaemon (SPEC power daemon, used by MLPerf) power log and integrate it over a run window.

PTDaemon runs on a separate machine next to the analyzer, so its log is joined to the run after the
fact by wall-clock time. Its date-form timestamps are in that machine's local time, hence utc_offset_h.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.meters.integrate import trapezoid
from workloads.errors import InputError

_DATE_FORMATS = ("%m-%d-%Y %H:%M:%S.%f", "%m-%d-%Y %H:%M:%S")


class PowerLogError(InputError):
    """A power log that cannot be read, or does not support the requested figure; one-line message."""


@dataclass(frozen=True)
class PowerLog:
    path: str
    times_unix_s: tuple[float, ...]  # sorted ascending
    watts: tuple[float, ...]
    skipped_lines: int


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")


def _parse_time(field: str, utc_offset_h: float) -> float:
    try:
        t = float(field)  # epoch form carries its own time zone (none), so the offset does not apply
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                naive = datetime.strptime(field, fmt)
            except ValueError:
                continue
            return naive.replace(tzinfo=UTC).timestamp() - utc_offset_h * 3600.0
        raise ValueError(f"unrecognised timestamp {field!r}") from None
    if not math.isfinite(t):
        raise ValueError(f"unrecognised timestamp {field!r}")
    return t


def _parse_line(line: str, utc_offset_h: float) -> tuple[float, float]:
    """(unix time, watts) from one "Time,<ts>,Watts,<w>,..." line; ValueError says why it is unusable."""
    fields = [f.strip() for f in line.split(",")]
    if fields[0] != "Time" or len(fields) < 2:
        raise ValueError("not a Time line")
    t = _parse_time(fields[1], utc_offset_h)
    # After the timestamp the line is name,value pairs; Watts is usually first but need not be.
    pairs = dict(zip(fields[2::2], fields[3::2], strict=False))
    if "Watts" not in pairs:
        raise ValueError("no Watts field")
    watts = float(pairs["Watts"])
    if not math.isfinite(watts) or watts < 0:
        # PTDaemon writes -1 when the analyzer returned an error or an out-of-range reading.
        raise ValueError(f"invalid watts {pairs['Watts']!r}")
    return t, watts


def parse_power_log(path: str | Path, utc_offset_h: float = 0.0) -> PowerLog:
    """Valid (time, watts) samples of a PTDaemon log; other lines are skipped and counted."""
    if not (math.isfinite(utc_offset_h) and -14.0 <= utc_offset_h <= 14.0):
        raise PowerLogError(f"{path}: utc_offset_h must be within -14..14 hours, got {utc_offset_h}")
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise PowerLogError(f"{path}: cannot read power log: {e.strerror or e}") from None
    times: list[float] = []
    watts: list[float] = []
    skipped = 0
    first_skip = ""
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        try:
            if not line or line.startswith("#"):
                raise ValueError("blank or comment")
            t, w = _parse_line(line, utc_offset_h)
        except ValueError as e:
            skipped += 1
            first_skip = first_skip or f"line {n}: {e}"
            continue
        if times and t < times[-1]:
            # Reordering would hide a clock step or two logs pasted together; make the user look.
            raise PowerLogError(
                f"{path}: line {n}: timestamp {_iso(t)} UTC is before the previous sample's "
                f"{_iso(times[-1])} UTC; the log is out of order"
            )
        times.append(t)
        watts.append(w)
    if len(times) < 2:
        hint = f"; first skipped {first_skip}" if first_skip else ""
        raise PowerLogError(
            f"{path}: {len(times)} valid Time/Watts samples, need at least 2 ({skipped} lines skipped{hint})"
        )
    return PowerLog(str(path), tuple(times), tuple(watts), skipped)


def _watts_at(log: PowerLog, t: float) -> float:
    """Linear interpolation between samples; outside the log, the nearest sample's watts are held."""
    ts, ws = log.times_unix_s, log.watts
    if t <= ts[0]:
        return ws[0]
    if t >= ts[-1]:
        return ws[-1]
    i = bisect_right(ts, t)  # ts[i-1] <= t < ts[i], so the denominator is positive
    return ws[i - 1] + (ws[i] - ws[i - 1]) * (t - ts[i - 1]) / (ts[i] - ts[i - 1])


def _gap(a: float, b: float) -> dict[str, float]:
    return {"start_unix_s": a, "stop_unix_s": b, "seconds": b - a}


def window_points(log: PowerLog, start_unix_s: float, stop_unix_s: float) -> list[tuple[float, float]]:
    """(unix s, W) over [start, stop]: the log's readings inside, and the power interpolated at both edges."""
    ts, ws = log.times_unix_s, log.watts
    lo, hi = bisect_right(ts, start_unix_s), bisect_left(ts, stop_unix_s)
    return ([(start_unix_s, _watts_at(log, start_unix_s))] + [(ts[i], ws[i]) for i in range(lo, hi)]
            + [(stop_unix_s, _watts_at(log, stop_unix_s))])


def window_energy(
    log: PowerLog, start_unix_s: float, stop_unix_s: float, max_gap_s: float = 2.0, tolerance_s: float = 1.0
) -> dict[str, Any]:
    """Joules over [start, stop] from the log, by trapezoid over the samples, interpolated at the edges."""
    if not (math.isfinite(start_unix_s) and math.isfinite(stop_unix_s)) or stop_unix_s <= start_unix_s:
        raise PowerLogError(f"{log.path}: run window {start_unix_s}..{stop_unix_s} is empty or not finite")
    ts = log.times_unix_s
    first, last = ts[0], ts[-1]
    if first > start_unix_s + tolerance_s or last < stop_unix_s - tolerance_s:
        # The usual cause is a time-zone mismatch between the PTD machine and this one.
        raise PowerLogError(
            f"{log.path}: log covers {_iso(first)}..{_iso(last)} UTC but the run window is "
            f"{_iso(start_unix_s)}..{_iso(stop_unix_s)} UTC; check --utc-offset"
        )
    points = window_points(log, start_unix_s, stop_unix_s)
    joules = trapezoid([t for t, _ in points], [w for _, w in points])
    seconds = stop_unix_s - start_unix_s

    inside = [t for t in ts if start_unix_s <= t <= stop_unix_s]
    span = inside[-1] - inside[0] if len(inside) > 1 else 0.0
    gaps = []
    if first - start_unix_s > max_gap_s:  # only possible with tolerance_s > max_gap_s
        gaps.append(_gap(start_unix_s, first))
    gaps += [
        _gap(a, b)
        for a, b in zip(ts, ts[1:], strict=False)
        if b > start_unix_s and a < stop_unix_s and b - a > max_gap_s
    ]
    if stop_unix_s - last > max_gap_s:
        gaps.append(_gap(last, stop_unix_s))
    return {
        "joules": joules,
        "seconds": seconds,
        "mean_w": joules / seconds,
        "samples_in_window": len(inside),
        "achieved_hz": (len(inside) - 1) / span if span > 0 else None,
        "gaps": gaps,
        "log_first_unix_s": first,
        "log_last_unix_s": last,
        "method": "measured:ptdaemon-log",
        "integration": "trapezoid, linear interpolation at the window edges",
    }
