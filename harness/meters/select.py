"""Which meters a run uses, and why every other backend is not used.

``auto`` takes the best available figure per component: the backends marked for auto in registry order
(NVML for NVIDIA GPUs, the published-power model for TPUs, RAPL, or the CPU model where RAPL does not work).
Names given explicitly are *required*: if one cannot run the run does not start, so nothing is ever
substituted silently. The external node meter is only used when asked for, because it needs a command.
"""

from __future__ import annotations

from harness.meters.base import Availability, Meter, MeterUnavailable, method_problem
from harness.meters.plugins import one_line
from harness.meters.registry import BACKENDS, REJECTED, Accelerator, MeterRequest, MeterSelectionError, is_plugin

HOST_LEVEL_PARTS = ("cpu", "node", "synthetic")  # read by one process per physical host


def probe(name: str, req: MeterRequest, accels: list[Accelerator]) -> Availability:
    """Can backend `name` meter this run? Never raises for 'not here'; the reason says why."""
    if not is_plugin(name):
        return BACKENDS[name].probe(req, accels)
    try:
        return BACKENDS[name].probe(req, accels)
    except Exception as e:  # a third party's failure makes its meter unavailable, not the command fail
        return Availability(False, f"{name}: probe failed: {one_line(e)}")


def select_meters(req: MeterRequest, accels: list[Accelerator]) -> tuple[list[Meter], list[dict[str, str]]]:
    """Meters to use, and {"name", "reason"} for every backend not used.

    Raises MeterSelectionError when an explicitly named backend cannot run. An empty list from "auto"
    means nothing usable was found; the caller must say so, not invent a figure.
    """
    names = req.names
    if names == ("fake",):
        why = "not used: synthetic fake meter requested"
        unused = [{"name": n, "reason": why} for n in BACKENDS if n != "fake"]
        return ([BACKENDS["fake"].from_request(req, accels)] if req.host_level else []), unused
    checked: dict[str, Availability] = {}

    def available(name: str) -> bool:
        if name not in checked:
            checked[name] = probe(name, req, accels)
        return checked[name].available

    allowed = [n for n in BACKENDS if req.host_level or BACKENDS[n].part not in HOST_LEVEL_PARTS]
    chosen: list[str] = []
    for name in names:
        if name == "auto" or name not in allowed:
            continue
        if not available(name):
            raise MeterSelectionError(f"--meter {name}: {checked[name].reason}")
        if name not in chosen:
            chosen.append(name)
    if "auto" in names:
        for name, backend in BACKENDS.items():
            if not backend.in_auto or name not in allowed or name in chosen:
                continue
            if backend.instead_of and backend.instead_of in allowed and available(backend.instead_of):
                continue
            if available(name):
                chosen.append(name)
    meters: list[Meter] = []
    for name in chosen:
        try:
            meter = BACKENDS[name].from_request(req, accels)
        except (MeterUnavailable, Exception) as e:  # a probe passed but setup failed: required meters must not vanish
            raise MeterSelectionError(f"--meter {name}: probe passed but setup failed: {e}") from e
        problem = method_problem(meter)  # every figure must say how it was obtained, a plugin's too
        if problem:
            meter.stop()
            raise MeterSelectionError(f"--meter {name}: {problem}")
        meters.append(meter)
    unused = [{"name": n, "reason": _why_not(n, req, chosen, checked)} for n in BACKENDS if n not in chosen]
    unused += [{"name": r.name, "reason": r.line()} for r in REJECTED]
    _declare_unmetered(meters, accels, unused, checked)
    return meters, unused


def _why_not(name: str, req: MeterRequest, chosen: list[str], checked: dict[str, Availability]) -> str:
    backend = BACKENDS[name]
    if not req.host_level and backend.part in HOST_LEVEL_PARTS:
        return f"not used here: read by {req.host_leader or 'another process'}, which leads this host"
    if backend.instead_of in chosen:
        return f"not used: measured {backend.instead_of} energy is available and preferred over the model"
    if name in checked:
        return checked[name].reason
    if backend.request_hint:
        return f"not used: {backend.request_hint}"
    return "not requested"


def _declare_unmetered(meters: list[Meter], accels: list[Accelerator], unused: list[dict[str, str]],
                       checked: dict[str, Availability]) -> None:
    """An accelerator no meter sees must be named, so the CPU figure cannot pass for the whole run."""
    if any(m.scope == "node" for m in meters):
        return  # a node-level meter includes every accelerator
    # Per device, not per platform: NVML and AMD SMI share "gpu", each covering its own vendor's cards.
    unmetered = [a for a in accels if a.platform != "cpu" and not any(type(m).covers(a) for m in meters)]
    for platform in sorted({a.platform for a in unmetered}):
        devices = [a for a in unmetered if a.platform == platform]
        owners = [name for name, backend in BACKENDS.items() if any(backend.covers(a) for a in devices)]
        why = "; ".join(checked[n].reason for n in owners if n in checked) or "no meter for this platform"
        unused.append({"name": f"{platform}-energy", "reason": f"{platform.upper()} energy NOT metered ({why}); "
                       "energy covers the metered components only"})
