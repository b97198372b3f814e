"""Background sampler: polls meters at a fixed rate and answers energy-in-window questions.

Each sample stores cumulative joules per "<meter>/<component>" key. Energy over a window is the
difference of the cumulative readings taken synchronously at its two marks, so it does not depend on
the sampling rate; the periodic samples exist for power traces, live display and counter-wrap handling.
Gauges (instantaneous watts a meter offers beside its energy) are stored per sample too; integrated over
a window they give the independent figure for cross-checks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.meters.base import Meter, run_periodically
from harness.meters.integrate import trapezoid


@dataclass(frozen=True)
class SamplerError:
    time_unix_s: float
    meter: str
    error: str


class Sampler:
    def __init__(
        self,
        meters: list[Meter],
        hz: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        accounting: Callable[[], dict[str, float] | None] | None = None,
    ) -> None:
        """accounting: read at every mark too, beside the meters (e.g. contention.cpu_snapshot); its readings
        are `accounts[label]`."""
        if hz <= 0:
            raise ValueError(f"hz must be positive, got {hz}")
        self.meters = list(meters)
        self.hz = hz
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = self._stopped = False
        self._clock0 = self._wall0 = 0.0
        # Each meter's (component, "meter/component") pairs, worked out once: sample_once runs at every
        # window edge, inside the loops that users time.
        self._components = [[(c, f"{m.name}/{c}") for c in m.components()] for m in self.meters]
        self.keys = [key for pairs in self._components for _, key in pairs]
        self.times: list[float] = []
        self.cumulative: list[dict[str, float]] = []
        self.gauge_values: list[dict[str, float]] = []
        self.marks: dict[str, tuple[float, dict[str, float]]] = {}
        self._mark_index: dict[str, int] = {}
        self._accounting = accounting
        self.accounts: dict[str, dict[str, float] | None] = {}
        self.errors: list[SamplerError] = []

    @property
    def start_unix_s(self) -> float:
        return self._wall0

    def _now(self) -> float:
        # Monotonic (immune to NTP steps) yet aligned with epoch time for joining with other logs.
        return self._wall0 + (self._clock() - self._clock0)

    def sample_once(self) -> tuple[float, dict[str, float]]:
        """Read every meter now and append the sample. A failing meter yields NaN, never an exception."""
        with self._lock:
            t = self._now()
            row: dict[str, float] = {}
            gauges: dict[str, float] = {}
            for m, pairs in zip(self.meters, self._components, strict=True):
                try:
                    vals = m.read()
                    row.update({key: float(vals[c]) for c, key in pairs})
                    gauges.update({f"{m.name}/{g}": float(w) for g, w in m.gauges().items()})
                except Exception as e:  # the sampler must survive any backend failure
                    self.errors.append(SamplerError(t, m.name, repr(e)))
                    row.update({key: math.nan for _, key in pairs})
            self.times.append(t)
            self.cumulative.append(row)
            self.gauge_values.append(gauges)
            return t, row

    def start(self, background: bool = True) -> None:
        """Start meters and take the first sample; background=False lets tests drive sample_once()."""
        if self._started:
            raise RuntimeError("Sampler already started")
        self._started = True
        for m in self.meters:
            m.start()
        self._clock0, self._wall0 = self._clock(), self._wall()
        self.sample_once()
        if background:
            self._thread = threading.Thread(target=self._run, name="energy-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        run_periodically(self.hz, self._clock, self._stop_evt, self.sample_once)

    def mark(self, label: str) -> float:
        """Sample synchronously now and remember it under label; returns the wall-clock timestamp."""
        if not self._started:
            raise RuntimeError("Sampler.start() has not been called")
        if label in self.marks:
            raise ValueError(f"mark {label!r} already recorded")
        t, row = self.sample_once()
        self.marks[label] = (t, row)
        self._mark_index[label] = len(self.times) - 1
        if self._accounting is not None:
            self.accounts[label] = self._accounting()
        return t

    def stop(self) -> None:
        if not self._started or self._stopped:
            return
        self._stopped = True
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join()
        self.sample_once()
        for m in self.meters:
            m.stop()

    def energy_between(self, start_label: str, stop_label: str) -> dict[str, float]:
        """Joules per key between two marks; NaN for a key whose meter failed at either mark."""
        missing = [x for x in (start_label, stop_label) if x not in self.marks]
        if missing:
            raise KeyError(f"no mark named {missing[0]!r}; marks: {sorted(self.marks)}")
        (_, a), (_, b) = self.marks[start_label], self.marks[stop_label]
        return {k: b[k] - a[k] for k in self.keys}

    def window_seconds(self, start_label: str, stop_label: str) -> float:
        return self.marks[stop_label][0] - self.marks[start_label][0]

    def gauge_energy_between(self, start_label: str, stop_label: str, key: str) -> float:
        """Joules from integrating gauge `key` (trapezoid) over the samples between two marks; NaN if unknown."""
        a, b = self._mark_index[start_label], self._mark_index[stop_label]
        with self._lock:
            times, values = self.times[a:b + 1], [g.get(key, math.nan) for g in self.gauge_values[a:b + 1]]
        return trapezoid(times, values)

    def peak_watts_between(self, start_label: str, stop_label: str, key: str, gauge: str | None = None) -> float:
        """Highest power of `key` between two marks: its gauge's highest reading when `gauge` is given, else
        the highest average over one sampling interval (NaN when there is none)."""
        a, b = self._mark_index[start_label], self._mark_index[stop_label]
        with self._lock:
            if gauge is not None:
                values = [g.get(gauge, math.nan) for g in self.gauge_values[a:b + 1]]
            else:
                times, cum = self.times[a:b + 1], self.cumulative[a:b + 1]
                values = [(cum[i][key] - cum[i - 1][key]) / (times[i] - times[i - 1])
                          for i in range(1, len(times)) if times[i] > times[i - 1]]
        finite = [v for v in values if math.isfinite(v)]
        return max(finite) if finite else math.nan

    def gauge_keys(self) -> list[str]:
        with self._lock:
            return sorted({k for g in self.gauge_values for k in g})

    def gaps(self, threshold_s: float) -> list[dict[str, float]]:
        """Intervals between consecutive samples longer than threshold_s (the sampler was starved or paused)."""
        with self._lock:
            times = list(self.times)
        return [{"start_unix_s": a, "stop_unix_s": b, "seconds": b - a}
                for a, b in zip(times, times[1:], strict=False) if b - a > threshold_s]

    def power_rows(self) -> list[dict[str, float]]:
        """Average watts per key over each interval between consecutive samples (row time = interval end),
        then the gauges as read at the interval's end."""
        with self._lock:
            times, cum, gauges = list(self.times), list(self.cumulative), list(self.gauge_values)
        gauge_keys = sorted({k for g in gauges for k in g})
        rows = []
        for i in range(1, len(times)):
            dt = times[i] - times[i - 1]
            if dt <= 0:
                continue
            row = {"time_unix_s": times[i]}
            row.update({f"{k}_w": (cum[i][k] - cum[i - 1][k]) / dt for k in self.keys})
            row.update({f"{k}_w": gauges[i].get(k, math.nan) for k in gauge_keys})
            rows.append(row)
        return rows

    def watts_now(self, window_s: float = 1.0) -> float:
        """Total average watts over about the last window_s, for a live display (failed keys ignored)."""
        with self._lock:
            if len(self.times) < 2:
                return 0.0
            j = len(self.times) - 1
            i = j - 1
            while i > 0 and self.times[j] - self.times[i] < window_s:
                i -= 1
            dt = self.times[j] - self.times[i]
            de = _nansum(self.cumulative[j][k] - self.cumulative[i][k] for k in self.keys)
        return de / dt if dt > 0 else 0.0

    def joules_since(self, label: str) -> float:
        """Total joules from a mark to the latest sample, for a live display (failed keys ignored)."""
        with self._lock:
            base, last = self.marks[label][1], self.cumulative[-1]
            return _nansum(last[k] - base[k] for k in self.keys)

    def achieved_hz(self) -> float:
        """Samples per second actually recorded (periodic and mark samples together)."""
        with self._lock:
            if len(self.times) < 2 or self.times[-1] <= self.times[0]:
                return 0.0
            return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def _nansum(values: Iterable[float]) -> float:
    return sum(v for v in values if not math.isnan(v))
