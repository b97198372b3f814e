"""The meter interface every energy backend implements.

A meter reports cumulative joules per component since ``start()``. Every meter carries a ``method``
label ("measured:...", "modelled:...", "fake:...") so no figure can lose track of how it was obtained.

Optional extras, all with harmless defaults:
- ``scope``: "device" components add up to the run's energy; a "node" meter (a wall-socket or BMC
  reading) already contains them, so when one is present the node figure is the run's energy.
- ``update_period_s``: how often the underlying counter moves; shorter windows cannot be measured.
- ``gauges()``: instantaneous watts that are *not* summed (an instant-power field, a nested memory
  rail); they go to power.csv and feed cross-checks.
- ``cross_checks()``: component -> gauge that independently measures the same thing, so the result
  can report both figures and how far apart they are.
- ``warnings()``: conditions that weaken the figure (other processes on the GPU, a counter reset).
- ``part``: what hardware the components are ("accelerator", "cpu", "node", "synthetic"), so that
  efficiency figures can speak of the accelerators alone.
- ``power_limits_w()``: component -> the board's enforced power limit in W, where the hardware has one.
- ``unmeasured_s(start, stop)``: seconds of a window (unix times) with no real reading behind the figure,
  bridged by interpolation instead; 0 for counters, whose difference over a window is exact.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest


@dataclass(frozen=True)
class Option:
    """A setting a backend takes from the request, and the command-line flag that sets it."""

    name: str  # key in MeterRequest.options
    flag: str | None  # e.g. "--cpu-tdp"; None: not on the command line (tests inject it)
    type: type = float
    help: str = ""
    check: Callable[[Any], str | None] | None = None  # the problem with a value, or None


def positive(unit: str) -> Callable[[Any], str | None]:
    return lambda v: None if v > 0 else f"must be a positive number of {unit}, got {v:g}"


class MeterUnavailable(Exception):
    """A backend cannot meter here; the message says why, for the user."""


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and always a human-readable reason either way."""

    available: bool
    reason: str


class Meter(abc.ABC):
    """One energy backend. Every backend is built the same way, from one request (`from_request`), and lists
    what it takes from it (`options`); harness/meters/registry.py is the one list of backends."""

    name: ClassVar[str]
    scope: ClassVar[str] = "device"
    part: ClassVar[str] = "cpu"
    platforms: ClassVar[tuple[str, ...]] = ()  # the accelerator platforms it meters ("gpu", "tpu"), if any
    options: ClassVar[tuple[Option, ...]] = ()
    in_auto: ClassVar[bool] = False  # `--meter auto` takes it where it works
    instead_of: ClassVar[str | None] = None  # auto takes it only where that backend does not work
    description: ClassVar[tuple[str, str, str]] = ("", "", "")  # what it measures, measured/modelled, rate
    request_hint: ClassVar[str] = ""  # for a backend auto never takes: how to ask for it
    method: str
    update_period_s: float = 0.0

    @classmethod
    @abc.abstractmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> Meter:
        """The meter for this request and these accelerators; MeterUnavailable, with the reason, if none."""

    @classmethod
    def covers(cls, accel: Accelerator) -> bool:
        """Whether this backend meters that accelerator: by platform, unless a backend knows better (NVML and AMD
        SMI share "gpu", and each meters only its vendor's cards)."""
        return accel.platform in cls.platforms

    @classmethod
    def probe(cls, req: MeterRequest, accels: list[Accelerator]) -> Availability:
        """Whether this backend works here, always with a reason; what it holds is released again."""
        try:
            meter = cls.from_request(req, accels)
        except MeterUnavailable as e:
            return Availability(False, str(e))
        try:
            problem = method_problem(meter)
            return Availability(False, problem) if problem else Availability(True, meter.ready())
        finally:
            meter.stop()

    def ready(self) -> str:
        """What `harness meters` says of a working meter."""
        return "ok"

    @abc.abstractmethod
    def components(self) -> list[str]:
        """Component names this meter reports, e.g. ["cpu-package-0", "dram-0"]."""

    @abc.abstractmethod
    def start(self) -> None:
        """Take the baseline; cumulative energy is 0 at this point."""

    @abc.abstractmethod
    def read(self) -> dict[str, float]:
        """Cumulative joules per component since start()."""

    def stop(self) -> None:  # noqa: B027 - deliberately optional hook, not abstract
        """Release resources; most meters hold none."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-able description of method, parameters and data sources."""

    def gauges(self) -> dict[str, float]:
        """Instantaneous watts by gauge name, read right after read(); never added to energy totals."""
        return {}

    def cross_checks(self) -> dict[str, str]:
        """Component -> gauge name giving an independent power reading of that component."""
        return {}

    def warnings(self) -> list[str]:
        """Human-readable conditions that weaken this meter's figures; empty when there are none."""
        return []

    def power_limits_w(self) -> dict[str, float]:
        """Component -> enforced board power limit, W; empty where the hardware reports none."""
        return {}

    def unmeasured_s(self, start_unix_s: float, stop_unix_s: float) -> float:
        """Seconds of [start, stop] that no real reading backs (bridged by interpolation), for coverage."""
        return 0.0


def method_problem(meter: Meter) -> str | None:
    """Why a meter's method label does not say how its figures are obtained ("measured:<how>" or
    "modelled:<how>"; "fake:" for the synthetic test meter alone), or None when it does."""
    method = getattr(meter, "method", None)
    kinds = ("measured", "modelled", *(("fake",) if meter.part == "synthetic" else ()))
    kind, _, how = method.partition(":") if isinstance(method, str) else ("", "", "")
    if kind in kinds and how.strip():
        return None
    return f"{meter.name}: method label {method!r} must say how its figures are obtained: 'measured:<how>' or " \
           "'modelled:<how>'"


def run_periodically(hz: float, clock: Callable[[], float], stop: threading.Event, tick: Callable[[], Any]) -> None:
    """Call tick() every 1/hz seconds until stop is set (the body of a sampling thread)."""
    period = 1.0 / hz
    next_t = clock() + period
    while True:
        # Event.wait sleeps in the kernel and returns as soon as stop is set: no busy waiting, and stopping
        # never waits out a period.
        if stop.wait(max(0.0, next_t - clock())):
            return
        tick()
        next_t += period
        now = clock()
        if next_t <= now:
            # Fell behind (a slow read, or starved by the training loop): skip missed ticks, never burst.
            next_t = now + period
