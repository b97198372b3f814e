"""A metered session, set up the same way for `harness run`, `harness meter` and the Python API: the sampling
rate checked, the carbon pricing validated, the meters chosen (and why every other one was not), before any
work starts. Also the one place where a framework's devices become the accelerators the meters must see.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness import carbon, meters
from harness.carbon import Pricing
from harness.errors import UsageError
from harness.meters import Accelerator, Meter

DEFAULT_SAMPLE_HZ = 20.0
MIN_SAMPLE_HZ = 10.0  # power traces need 10 Hz or more


@dataclass(frozen=True)
class Metering:
    """What a session is metered with and priced at.

    meter: "auto" or comma-separated backends (named ones are required; harness/meters/registry.py).
    meter_options: the backends' own options by name, e.g. {"cpu_tdp": 65.0}.
    sample_hz: the sampler's rate, Hz. region, pue, carbon_intensity, net_intensity: the carbon pricing
    (harness regions; kg CO2e/kWh for the intensities).
    """

    meter: str = "auto"
    meter_options: Mapping[str, Any] = field(default_factory=dict)
    sample_hz: float = DEFAULT_SAMPLE_HZ
    region: str = carbon.DEFAULT_REGION
    pue: float | None = None
    carbon_intensity: float | None = None
    net_intensity: float | None = None

    def check(self, rate_flag: str = "--sample-hz") -> Pricing:
        """Everything that needs no device, checked now (one-line errors); returns the pricing."""
        if not self.sample_hz >= MIN_SAMPLE_HZ:
            raise UsageError(f"{rate_flag} must be >= {MIN_SAMPLE_HZ:g} (power traces need {MIN_SAMPLE_HZ:g} Hz or "
                             f"more), got {self.sample_hz}")
        meters.check_request(self.request())
        return carbon.pricing(self.region, self.pue, self.carbon_intensity, self.net_intensity)

    def request(self, host_level: bool = True, host_leader: str = "") -> meters.MeterRequest:
        return meters.MeterRequest(meters.parse_meter_names(self.meter), host_level=host_level,
                                   host_leader=host_leader, **self.meter_options)

    def choose(self, accelerators: list[Accelerator], host_level: bool = True,
               host_leader: str = "") -> tuple[list[Meter], list[dict[str, str]]]:
        """The meters for these accelerators, and {"name", "reason"} for every backend not used. A process that
        leads its host must get at least one meter: nothing is ever reported unmetered as if metered."""
        chosen, unavailable = meters.select_meters(self.request(host_level, host_leader), accelerators)
        if not chosen and host_level:
            raise UsageError("no energy meter is available: " + "; ".join(u["reason"] for u in unavailable))
        return chosen, unavailable


def local_accelerators(devices: Iterable[Any], process: int) -> list[Accelerator]:
    """The non-CPU devices that `process` drives (framework Devices: kind, platform, process, local_index)."""
    return [Accelerator(d.platform, d.local_index, d.kind) for d in devices
            if d.platform != "cpu" and d.process == process]


def accelerators(framework: str | None) -> list[Accelerator]:
    """The accelerators this process meters: a framework's local ones, or without a framework every NVIDIA GPU
    that NVML sees (CUDA_VISIBLE_DEVICES applied) and every AMD GPU that AMD SMI sees (as HIP would number them)."""
    if framework is None:
        from harness.meters import amdsmi, nvml

        return nvml.visible_gpus() + amdsmi.visible_gpus()
    from workloads.trainers import runtime

    rt = runtime(framework)
    return local_accelerators(rt.devices(), rt.process_index())
