"""Power to energy: the one trapezoid rule every integrating meter and cross-check uses."""

from __future__ import annotations

from collections.abc import Sequence


def trapezoid_step(w0: float, w1: float, dt: float) -> float:
    """Joules over one interval of `dt` seconds between readings of w0 and w1 watts."""
    return 0.5 * (w0 + w1) * dt


def trapezoid(times: Sequence[float], watts: Sequence[float]) -> float:
    """Joules under a power trace: times in seconds, watts at those times (a NaN reading makes it NaN)."""
    return sum(trapezoid_step(watts[i - 1], watts[i], times[i] - times[i - 1]) for i in range(1, len(times)))
