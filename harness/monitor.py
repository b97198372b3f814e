"""Meter your own code: named measurement windows around any Python code, with the harness's own meters.

    from harness.monitor import EnergyMonitor

    with EnergyMonitor(sync="jax", region="europe-north1") as monitor:
        for epoch in range(3):
            with monitor.window(f"epoch {epoch}"):
                train_one_epoch()
    for m in monitor.measurements:
        print(m.name, m.seconds, m.energy_j, m.method, m.co2e_gross_kg)

The meters, the selection rules (`auto`, or named and then required), the >= 10 Hz sampler and its
power.csv are those of `harness run`. Windows may nest and overlap: each is the difference of the meters'
cumulative readings at its two edges. A window shorter than a counter's update period is flagged and has no
energy (never 0 J); a window with failed or bridged readings is flagged incomplete. Importing this module
loads no framework; `sync="jax"` or `"tensorflow"` loads that one at the first window edge.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import carbon, meters
from harness.errors import UsageError
from harness.meters.registry import recorded_params
from harness.meters.window import measure_window
from harness.results.files import write_csv, write_json
from harness.session import DEFAULT_SAMPLE_HZ, Metering, accelerators


class WindowError(UsageError):
    """A window closed that is not open, or opened twice."""


class Measurement:
    """One closed window. Energies in joules, times in seconds, CO2e in kg.

    The edges only take the meters' readings; the figures are worked out from them when first asked for
    (they cannot change afterwards), so that closing a window inside a loop being timed costs the readings
    and little more.

    name, start_unix_s, stop_unix_s: the window.
    seconds, energy_j: energy_j is None when it could not be measured (see flags), never 0 by default.
    method: how ("measured:rapl", "modelled:cpu-tdp-utilization", ...).
    complete: every component read at both edges, >= 95 % covered by real readings, no failed reads.
    components: "meter/component" -> joules, method, average and peak watts, coverage.
    cross_checks, flags: independent figures and their disagreement; what a reader must know.
    co2e_gross_kg, co2e_net_kg, carbon: CO2e, and the region, PUE, intensities and sources that priced it.
    """

    FIGURES = ("seconds", "energy_j", "method", "complete", "components", "cross_checks", "flags", "co2e_gross_kg",
               "co2e_net_kg", "carbon")

    def __init__(self, name: str, start_unix_s: float, stop_unix_s: float,
                 figures: Callable[[], dict[str, Any]]) -> None:
        self.name, self.start_unix_s, self.stop_unix_s = name, start_unix_s, stop_unix_s
        self._work: Callable[[], dict[str, Any]] | None = figures
        self._figures: dict[str, Any] = {}

    def __getattr__(self, key: str) -> Any:  # only for what is not set in __init__: the figures
        if key not in Measurement.FIGURES:
            raise AttributeError(key)
        if self._work is not None:
            self._figures, self._work = self._work(), None
        return self._figures[key]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: getattr(self, k) for k in self.FIGURES},
                "start_unix_s": self.start_unix_s, "stop_unix_s": self.stop_unix_s}

    def __repr__(self) -> str:
        return f"Measurement({self.name!r}, {self.seconds:.3f} s, {self.energy_j} J, {self.method})"


@dataclass
class _Open:
    name: str
    mark: str
    start: float


class EnergyMonitor:
    """Meters sampled in the background from construction to close(); windows measured between any two
    points of the program.

    meter: "auto" or comma-separated backends (named ones are required; see `harness meters`).
    sync: wait for device work at every window edge: "jax", "tensorflow", a callable, or None (no wait).
    framework: whose devices to meter ("jax" or "tensorflow"); default: sync's, else every NVIDIA GPU NVML
        sees (CUDA_VISIBLE_DEVICES applied).
    region, pue, carbon_intensity, net_intensity: how CO2e is priced (harness regions).
    sample_hz: the sampler's rate (>= 10). output_dir: where close() writes power.csv and windows.json.
    meter_options: the backends' own options by name, e.g. cpu_tdp=65.0 (harness/meters/registry.py).
    """

    def __init__(self, meter: str = "auto", *, sync: str | Callable[[Any], None] | None = None,
                 framework: str | None = None, region: str = carbon.DEFAULT_REGION, pue: float | None = None,
                 carbon_intensity: float | None = None, net_intensity: float | None = None,
                 sample_hz: float = DEFAULT_SAMPLE_HZ, output_dir: str | Path | None = None,
                 **meter_options: Any) -> None:
        metering = Metering(meter=meter, meter_options=meter_options, sample_hz=sample_hz, region=region, pue=pue,
                            carbon_intensity=carbon_intensity, net_intensity=net_intensity)
        self._pricing = metering.check(rate_flag="sample_hz")  # a bad region fails now, before any window
        self._sync = sync
        self._sync_fn: Callable[[Any], None] | None = None
        chosen, self.unavailable = metering.choose(accelerators(framework or (sync if isinstance(sync, str) else None)))
        self.meters = chosen
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.sampler = meters.Sampler(chosen, hz=sample_hz)
        self.sampler.start()
        self.measurements: list[Measurement] = []
        self._open: dict[str, _Open] = {}
        self._marks = itertools.count()
        self._closed = False

    # -- windows ----------------------------------------------------------------------------------------------
    def begin_window(self, name: str, sync_with: Any = None) -> None:
        """Open window `name` now (after device work has finished, when the monitor syncs)."""
        if self._closed:
            raise WindowError("the monitor is closed")
        if name in self._open:
            raise WindowError(f"window {name!r} is already open")
        self._wait(sync_with)
        mark = f"{name}#{next(self._marks)}"
        self._open[name] = _Open(name, mark, self.sampler.mark(mark))

    def end_window(self, name: str, sync_with: Any = None) -> Measurement:
        """Close window `name` (after device work has finished) and return what it measured."""
        if name not in self._open:
            opened = ", ".join(repr(n) for n in self._open) or "none"
            raise WindowError(f"window {name!r} is not open (open windows: {opened})")
        self._wait(sync_with)
        begin = self._open.pop(name)
        end_mark = f"{name}#{next(self._marks)}"
        stop = self.sampler.mark(end_mark)
        m = Measurement(name, begin.start, stop, lambda: self._figures(begin.mark, end_mark))
        self.measurements.append(m)
        return m

    def _figures(self, begin_mark: str, end_mark: str) -> dict[str, Any]:
        w = measure_window(self.sampler, self.meters, begin_mark, end_mark)
        total = w["total_j"]
        priced = self._pricing.price(total).to_dict() if total is not None else None
        return {"seconds": w["seconds"], "energy_j": total, "method": w["method"], "complete": w["complete"],
                "components": w["components"], "cross_checks": w["cross_checks"], "flags": w["flags"],
                "co2e_gross_kg": priced["co2e_gross_kg"] if priced else None,
                "co2e_net_kg": priced["co2e_net_kg"] if priced else None, "carbon": priced}

    @contextlib.contextmanager
    def window(self, name: str, sync_with: Any = None) -> Iterator[None]:
        """`with monitor.window("epoch 1"): ...`; the measurement is monitor.measurements[-1] afterwards."""
        self.begin_window(name, sync_with)
        try:
            yield
        finally:
            self.end_window(name, sync_with)

    def _wait(self, arrays: Any) -> None:
        if self._sync is None:
            return
        if self._sync_fn is None:  # resolved at the first edge, so that importing the monitor loads no framework
            if callable(self._sync):
                self._sync_fn = self._sync
            else:
                from workloads.trainers import runtime

                self._sync_fn = runtime(self._sync).sync
        self._sync_fn(arrays)

    # -- the end ------------------------------------------------------------------------------------------------
    def close(self) -> list[Measurement]:
        """Stop sampling; with output_dir, write power.csv and windows.json there. Windows still open are
        closed first (and so measured)."""
        if self._closed:
            return self.measurements
        for name in list(self._open):
            self.end_window(name)
        self._closed = True
        self.sampler.stop()
        if self.output_dir is not None:
            rows = self.sampler.power_rows()
            write_csv(self.output_dir / "power.csv", rows, list(rows[0]) if rows else None)
            write_json(self.output_dir / "windows.json", {
                "schema": "harness.windows/1", "created_unix_s": time.time(),
                "meters": [recorded_params(m) for m in self.meters], "unavailable": self.unavailable,
                "windows": [m.to_dict() for m in self.measurements]})
        return self.measurements

    def __enter__(self) -> EnergyMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EnergyMonitor", "Measurement", "WindowError"]
