"""Energy meters behind one interface, and the policy for choosing among them.

Preference order: measured (RAPL) before modelled (CPU TDP x utilisation). The synthetic meter is only
ever used when asked for; no backend is ever substituted without saying why.
"""

from __future__ import annotations

from pathlib import Path

from harness.meters.base import Availability, Meter
from harness.meters.cpu_model import CpuModelMeter
from harness.meters.fake import FakeMeter, SineTrace
from harness.meters.rapl import DEFAULT_ROOT, RaplMeter
from harness.meters.sampler import Sampler, SamplerError

BACKENDS: dict[str, type[Meter]] = {
    RaplMeter.name: RaplMeter,
    CpuModelMeter.name: CpuModelMeter,
    FakeMeter.name: FakeMeter,
}

__all__ = [
    "BACKENDS",
    "Availability",
    "CpuModelMeter",
    "FakeMeter",
    "Meter",
    "RaplMeter",
    "Sampler",
    "SamplerError",
    "SineTrace",
    "select_meters",
]


def select_meters(
    cpu_tdp: float | None = None, fake: bool = False, *, rapl_root: str | Path = DEFAULT_ROOT
) -> tuple[list[Meter], list[dict[str, str]]]:
    """Meters to use, and {"name", "reason"} for every backend not used.

    An empty meter list means nothing usable was found; the caller must report that, not invent a figure.
    """
    if fake:
        why = "not used: synthetic fake meter requested"
        return [FakeMeter()], [{"name": n, "reason": why} for n in (RaplMeter.name, CpuModelMeter.name)]
    unused: list[dict[str, str]] = []
    rapl = RaplMeter.probe(root=rapl_root)
    if rapl.available:
        try:
            meter = RaplMeter(rapl_root)
        except (OSError, RuntimeError, ValueError) as e:
            unused.append({"name": RaplMeter.name, "reason": f"RAPL: probe passed but setup failed: {e}"})
        else:
            why = "not used: measured RAPL energy is available and preferred over the model"
            return [meter], [{"name": CpuModelMeter.name, "reason": why}]
    else:
        unused.append({"name": RaplMeter.name, "reason": rapl.reason})
    model = CpuModelMeter.probe(tdp_w=cpu_tdp)
    if not model.available:
        unused.append({"name": CpuModelMeter.name, "reason": model.reason})
        return [], unused
    return [CpuModelMeter(tdp_w=cpu_tdp)], unused
