"""Deterministic synthetic meter for tests: power and its exact integral are known analytically."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Meter

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

PowerFn = Callable[[float], dict[str, float]]


def _const_watts(t: float) -> dict[str, float]:
    return {"cpu": 50.0}


def _const_energy(t: float) -> dict[str, float]:
    return {"cpu": 50.0 * t}


@dataclass(frozen=True)
class SineTrace:
    """w(t) = a + b*sin(2*pi*t/period) on one component, with its exact cumulative integral."""

    a: float
    b: float
    period: float
    component: str = "cpu"

    def watts(self, t: float) -> dict[str, float]:
        return {self.component: self.a + self.b * math.sin(2 * math.pi * t / self.period)}

    def energy(self, t: float) -> dict[str, float]:
        # Integral of a + b*sin(wt) from 0 to t = a*t + (b/w)*(1 - cos(wt)).
        w = 2 * math.pi / self.period
        return {self.component: self.a * t + (self.b / w) * (1 - math.cos(w * t))}


class FakeMeter(Meter):
    name: ClassVar[str] = "fake"
    part: ClassVar[str] = "synthetic"
    description: ClassVar[tuple[str, str, str]] = ("synthetic trace for tests", "synthetic", "any")
    request_hint: ClassVar[str] = "synthetic, only on request (--meter fake)"

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        watts: PowerFn | None = None,
        energy: PowerFn | None = None,
        label: str = "constant 50 W",
    ) -> None:
        # The analytic integral is required with a custom power function: the point of this meter is
        # that tests can compare the harness against an exact answer, not a numerical approximation.
        if (watts is None) != (energy is None):
            raise ValueError("FakeMeter needs both watts and energy functions, or neither")
        self.method = "fake:synthetic"
        self._clock = clock
        self._watts = watts or _const_watts
        self._energy = energy or _const_energy
        self._label = label
        self._t0: float | None = None

    @classmethod
    def sine(
        cls, a: float, b: float, period: float, clock: Callable[[], float] = time.monotonic
    ) -> FakeMeter:
        trace = SineTrace(a, b, period)
        return cls(clock, trace.watts, trace.energy, label=f"sine a={a} b={b} period={period}")

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> FakeMeter:
        return cls()

    def ready(self) -> str:
        return "ok: synthetic meter, always available (not a measurement)"

    def components(self) -> list[str]:
        return sorted(self._watts(0.0))

    def start(self) -> None:
        self._t0 = self._clock()

    def elapsed(self) -> float:
        if self._t0 is None:
            raise RuntimeError("FakeMeter.start() has not been called")
        return self._clock() - self._t0

    def watts_now(self) -> dict[str, float]:
        return self._watts(self.elapsed())

    def read(self) -> dict[str, float]:
        return dict(self._energy(self.elapsed()))

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "trace": self._label, "note": "synthetic, not measured"}
