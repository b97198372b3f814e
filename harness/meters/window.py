"""Energy over one window of a sampled run: per component, totals by scope, flags and cross-checks.

This is where the honesty rules for a window live:
- a window shorter than a counter's update period is flagged and left unmeasured, never reported as 0 J;
- a node-level meter, when present, *is* the run's energy (it contains every device component);
- wherever two independent figures exist, both are reported with their disagreement in percent.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from harness.meters.base import Meter
from harness.meters.registry import recorded_params
from harness.meters.sampler import Sampler

# Sampler gaps longer than this are listed in the result: a power trace and a gauge integral cannot see
# inside a gap (counter energies can: they are differenced, not integrated).
GAP_S = 2.0
# Below this fraction of a window backed by real readings, a figure is flagged incomplete.
MIN_COVERAGE = 0.95


def disagreement_pct(reference: float, other: float) -> float | None:
    if not (math.isfinite(reference) and math.isfinite(other)) or reference == 0:
        return None
    return 100.0 * (other - reference) / reference


def session_facts(sampler: Sampler, meters: list[Meter]) -> dict[str, Any]:
    """What a record says of its meters besides their energy: each component's method, the meters' warnings
    and parameters, and how the sampler kept up."""
    return {"methods": {f"{m.name}/{c}": m.method for m in meters for c in m.components()},
            "warnings": [w for m in meters for w in m.warnings()], "meters": [recorded_params(m) for m in meters],
            "sampler": {"target_hz": sampler.hz, "achieved_hz": sampler.achieved_hz(), "samples": len(sampler.times),
                        "errors": [asdict(e) for e in sampler.errors], "gaps_over_2s": sampler.gaps(GAP_S)}}


def measure_window(sampler: Sampler, meters: list[Meter], start: str, stop: str) -> dict[str, Any]:
    seconds = sampler.window_seconds(start, stop)
    raw = sampler.energy_between(start, stop)
    flags: list[str] = []
    incomplete: list[str] = []
    components: dict[str, dict[str, Any]] = {}
    t0, t1 = sampler.marks[start][0], sampler.marks[stop][0]
    for m in meters:
        coverage = max(0.0, 1.0 - m.unmeasured_s(t0, t1) / seconds) if seconds > 0 else 1.0
        errors = [e for e in sampler.errors if e.meter == m.name and t0 <= e.time_unix_s <= t1]
        if coverage < MIN_COVERAGE:
            incomplete.append(f"{m.name}: real readings back only {100 * coverage:.0f} % of the window "
                              f"({(1 - coverage) * seconds:.1f} of {seconds:.1f} s bridged by interpolation)")
        if errors:
            incomplete.append(f"{m.name}: {len(errors)} failed reading(s) in the window "
                              f"(first: {errors[0].error[:120]})")
        gauges, limits = m.cross_checks(), m.power_limits_w()
        short = m.update_period_s > 0 and seconds < m.update_period_s
        if short:
            flags.append(f"{m.name}: window {start}..{stop} lasts {seconds * 1000:.0f} ms, shorter than the "
                         f"counter's ~{m.update_period_s * 1000:.0f} ms update period: not measurable, not 0 J")
        for c in m.components():
            key = f"{m.name}/{c}"
            joules = None if short or not math.isfinite(raw[key]) else raw[key]
            # A counter that moves every ~100 ms makes 50 ms interval averages jagged (0, then double): the
            # peak comes from the meter's instantaneous gauge where it has one.
            gauge = f"{m.name}/{gauges[c]}" if c in gauges else None
            peak = sampler.peak_watts_between(start, stop, key, gauge)
            if joules is None and not short:
                incomplete.append(f"{key}: no reading at an edge of the window")
            components[key] = {"joules": joules, "method": m.method, "scope": m.scope, "part": m.part,
                               "coverage": coverage, "errors": len(errors),
                               "avg_watts": joules / seconds if joules is not None and seconds > 0 else None,
                               "peak_watts": peak if math.isfinite(peak) else None,
                               "peak_source": "instantaneous power gauge" if gauge else "sampling-interval average",
                               "power_limit_w": limits.get(c)}

    def total(scope: str) -> float | None:
        values = [v["joules"] for v in components.values() if v["scope"] == scope]
        return sum(values) if values and all(v is not None for v in values) else None

    device_j, node_j = total("device"), total("node")
    has_node = any(m.scope == "node" for m in meters)
    if has_node:
        total_j = node_j
        basis = "node-level energy from the external meter (contains every component of the node)"
    else:
        total_j = device_j
        basis = "sum of the metered components only; node parts no meter sees are not included"
    scope = "node" if has_node else "device"
    return {
        "window": f"{start}..{stop}",
        "seconds": seconds,
        "total_j": total_j,
        "method": "+".join(sorted({m.method for m in meters if m.scope == scope})),
        "device_j": device_j,
        "node_j": node_j,
        "basis": basis,
        "components": components,
        "flags": flags + [f"incomplete: {why}" for why in incomplete],
        "coverage": min((c["coverage"] for c in components.values()), default=1.0),
        "complete": not incomplete and total_j is not None,
        "incomplete_reasons": incomplete,
        "cross_checks": cross_checks(sampler, meters, start, stop, components, device_j, node_j),
    }


def cross_checks(sampler: Sampler, meters: list[Meter], start: str, stop: str,
                 components: dict[str, dict[str, Any]], device_j: float | None,
                 node_j: float | None) -> list[dict[str, Any]]:
    checks = []
    for m in meters:
        for comp, gauge in m.cross_checks().items():
            primary = components[f"{m.name}/{comp}"]["joules"]
            integrated = sampler.gauge_energy_between(start, stop, f"{m.name}/{gauge}")
            if primary is None:
                continue
            checks.append({
                "what": f"{m.name}/{comp}",
                "a": {"figure": m.method, "joules": primary},
                "b": {"figure": f"{m.name}/{gauge} power integrated (trapezoid at the sampler's rate)",
                      "joules": integrated},
                "disagreement_pct": disagreement_pct(primary, integrated),
            })
    if node_j is not None and device_j is not None:
        checks.append(node_vs_components("external node meter", node_j, device_j))
    return checks


def node_vs_components(node_figure: str, node_j: float, device_j: float) -> dict[str, Any]:
    """The cross-check between a node-level figure and the sum of the device meters."""
    return {
        "what": "node vs components",
        "a": {"figure": node_figure, "joules": node_j},
        "b": {"figure": "sum of device meters", "joules": device_j},
        "disagreement_pct": disagreement_pct(node_j, device_j),
        "note": "different scopes: the node also holds PSU losses, fans, NICs and drives, so the "
                "components should read lower; a component sum above the node figure is an error",
    }
