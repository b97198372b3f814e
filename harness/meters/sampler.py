"""Background sampler: polls meters at a fixed rate and answers energy-in-window questions.

Each sample stores cumulative joules per "<meter>/<component>" key. Energy over a window is the
difference of the cumulative readings taken synchronously at its two marks, so it does not depend on
the sampling rate; the periodic samples exist for power traces, live display and counter-wrap handling.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.meters.base import Meter


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
    ) -> None:
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
        self.keys = [f"{m.name}/{c}" for m in self.meters for c in m.components()]
        self.times: list[float] = []
        self.cumulative: list[dict[str, float]] = []
        self.marks: dict[str, tuple[float, dict[str, float]]] = {}
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
            for m in self.meters:
                try:
                    vals = m.read()
                    row.update({f"{m.name}/{c}": float(vals[c]) for c in m.components()})
                except Exception as e:  # the sampler must survive any backend failure
                    self.errors.append(SamplerError(t, m.name, repr(e)))
                    row.update({f"{m.name}/{c}": math.nan for c in m.components()})
            self.times.append(t)
            self.cumulative.append(row)
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
        period = 1.0 / self.hz
        next_t = self._clock() + period
        while True:
            delay = next_t - self._clock()
            # Event.wait sleeps in the kernel and returns early when stop() is called: no busy waiting.
            if self._stop_evt.wait(max(0.0, delay)):
                return
            self.sample_once()
            next_t += period
            now = self._clock()
            if next_t <= now:
                # Fell behind (e.g. starved by the training loop): skip missed ticks instead of bursting.
                next_t = now + period

    def mark(self, label: str) -> float:
        """Sample synchronously now and remember it under label; returns the wall-clock timestamp."""
        if not self._started:
            raise RuntimeError("Sampler.start() has not been called")
        if label in self.marks:
            raise ValueError(f"mark {label!r} already recorded")
        t, row = self.sample_once()
        self.marks[label] = (t, row)
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

    def power_rows(self) -> list[dict[str, float]]:
        """Average watts per key over each interval between consecutive samples (row time = interval end)."""
        with self._lock:
            times, cum = list(self.times), list(self.cumulative)
        rows = []
        for i in range(1, len(times)):
            dt = times[i] - times[i - 1]
            if dt <= 0:
                continue
            row = {"time_unix_s": times[i]}
            row.update({f"{k}_w": (cum[i][k] - cum[i - 1][k]) / dt for k in self.keys})
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
