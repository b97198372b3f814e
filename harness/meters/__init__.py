"""Energy meters behind one interface (`base.Meter`), the sampler that polls them, and the policy for
choosing among them (`select`). One backend per file; none of them knows anything about models."""

from __future__ import annotations

from harness.meters.base import Availability, Meter
from harness.meters.cpu_model import CpuModelMeter
from harness.meters.fake import FakeMeter, SineTrace
from harness.meters.rapl import RaplMeter
from harness.meters.registry import BACKENDS, MeterSelectionError, check_request, meter_flags, parse_meter_names
from harness.meters.request import Accelerator, MeterRequest
from harness.meters.sampler import Sampler, SamplerError
from harness.meters.select import select_meters

__all__ = [
    "BACKENDS",
    "Accelerator",
    "Availability",
    "CpuModelMeter",
    "FakeMeter",
    "Meter",
    "MeterRequest",
    "MeterSelectionError",
    "RaplMeter",
    "Sampler",
    "check_request",
    "meter_flags",
    "SamplerError",
    "SineTrace",
    "parse_meter_names",
    "select_meters",
]
