"""The one list of energy backends, and the one request they are all built from.

Adding a backend: write its file (a Meter subclass with `from_request`, its `options` and `description`) and
add it to BACKENDS below. Its options become command-line flags of `run`, `study`, `meters` and `meter`,
and fields of the request, with no other change.
"""

from __future__ import annotations

from harness.meters.base import Meter, Option
from harness.meters.cpu_model import CpuModelMeter
from harness.meters.external import ExternalMeter
from harness.meters.fake import FakeMeter
from harness.meters.nvml import NvmlMeter
from harness.meters.rapl import RaplMeter
from harness.meters.request import Accelerator, MeterRequest
from harness.meters.tpu_model import TpuModelMeter
from workloads.errors import InputError

__all__ = ["BACKENDS", "OPTIONS", "Accelerator", "MeterRequest", "MeterSelectionError", "check_request",
           "meter_flags", "parse_meter_names"]

# In `--meter auto` order (the CPU model only where RAPL does not work; external and fake only on request).
BACKENDS: dict[str, type[Meter]] = {
    m.name: m for m in (NvmlMeter, RaplMeter, TpuModelMeter, CpuModelMeter, ExternalMeter, FakeMeter)
}
OPTIONS: dict[str, tuple[Option, str]] = {o.name: (o, b.name) for b in BACKENDS.values() for o in b.options}


class MeterSelectionError(InputError):
    """A requested meter cannot run here, or the request itself is malformed (exit code 2)."""


def parse_meter_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    valid = ("auto", *BACKENDS)
    bad = [n for n in names if n not in valid]
    if not names or bad:
        raise MeterSelectionError(f"--meter must be a comma-separated list of {', '.join(valid)}; got {text!r}")
    if "fake" in names and len(names) > 1:
        raise MeterSelectionError("--meter fake is synthetic and cannot be combined with real meters")
    return names


def check_request(req: MeterRequest) -> None:
    """Every option's name and value, and that options are not given to backends the request does not use."""
    unknown = sorted(set(req.options) - set(OPTIONS))
    if unknown:
        raise MeterSelectionError(f"unknown meter option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    for name, value in req.options.items():
        option, backend = OPTIONS[name]
        flag = option.flag or name
        problem = option.check(value) if option.check else None
        if problem:
            raise MeterSelectionError(f"{flag} {problem}")
        if backend in ("external",) and backend not in req.names:
            raise MeterSelectionError(f"{flag} is only used with --meter {backend} (e.g. --meter auto,{backend})")


def meter_flags() -> list[Option]:
    """The options that are command-line flags, for the CLI to add once to every command that meters."""
    return [o for o, _ in OPTIONS.values() if o.flag]
