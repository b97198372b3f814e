"""The one list of energy backends, and the one request they are all built from.

Adding a backend: write its file (a Meter subclass with `from_request`, its `options` and `description`) and
add it to BACKENDS below. Its options become command-line flags of `run`, `study`, `meters` and `meter`,
and fields of the request, with no other change. Another package adds one through the entry point group
`harness.meters` instead (harness/meters/plugins.py): it joins BACKENDS after ours, with its ORIGINS entry.
"""

from __future__ import annotations

from typing import Any

from harness.meters import plugins
from harness.meters.amdsmi import AmdSmiMeter
from harness.meters.base import Meter, Option
from harness.meters.cpu_model import CpuModelMeter
from harness.meters.external import ExternalMeter
from harness.meters.fake import FakeMeter
from harness.meters.nvml import NvmlMeter
from harness.meters.rapl import RaplMeter
from harness.meters.request import Accelerator, MeterRequest
from harness.meters.tpu_model import TpuModelMeter
from workloads.errors import InputError

__all__ = ["BACKENDS", "OPTIONS", "ORIGINS", "REJECTED", "Accelerator", "MeterRequest", "MeterSelectionError",
           "admit", "check_request", "is_plugin", "meter_flags", "parse_meter_names", "recorded_params", "withdraw"]

# In `--meter auto` order (the CPU model only where RAPL does not work; external and fake only on request).
BACKENDS: dict[str, type[Meter]] = {
    m.name: m for m in (NvmlMeter, AmdSmiMeter, RaplMeter, TpuModelMeter, CpuModelMeter, ExternalMeter, FakeMeter)
}
OPTIONS: dict[str, tuple[Option, str]] = {o.name: (o, b.name) for b in BACKENDS.values() for o in b.options}
ORIGINS: dict[str, plugins.Origin] = dict.fromkeys(BACKENDS, plugins.BUILT_IN)
REJECTED: list[plugins.Rejected] = []  # plugins that did not load, each with its one-line reason


def admit(loaded: plugins.Loaded) -> None:
    """Other packages' meters into the registry, after ours (so auto prefers a built-in figure)."""
    BACKENDS.update(loaded.backends)
    ORIGINS.update(loaded.origins)
    OPTIONS.update({o.name: (o, b.name) for b in loaded.backends.values() for o in b.options})
    REJECTED.extend(loaded.rejected)


admit(plugins.load(plugins.discover(), BACKENDS))  # once, at the first import of the registry


def is_plugin(name: str) -> bool:
    return not ORIGINS[name].builtin


def withdraw(name: str, reason: str) -> None:
    """Take a loaded plugin out again (the CLI finds its flag among its own), to be listed as rejected."""
    if name in BACKENDS and is_plugin(name):
        REJECTED.append(plugins.Rejected(name, ORIGINS.pop(name), reason))
        for option in BACKENDS.pop(name).options:
            OPTIONS.pop(option.name, None)


def recorded_params(meter: Meter) -> dict[str, Any]:
    """A meter's parameters as records keep them: a plugin's say which distribution produced the figure."""
    params = meter.params()
    origin = ORIGINS.get(meter.name, plugins.BUILT_IN)
    return params if origin.builtin else {**params, "origin": origin.to_dict()}


class MeterSelectionError(InputError):
    """A requested meter cannot run here, or the request itself is malformed (exit code 2)."""


def parse_meter_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    valid = ("auto", *BACKENDS)
    bad = [n for n in names if n not in valid]
    rejected = [r for r in REJECTED if r.name in bad]
    if rejected:
        raise MeterSelectionError(f"--meter {rejected[0].name}: {rejected[0].line()}")
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
        # A backend auto never takes is used only when named: its options alone would be silently ignored.
        if not BACKENDS[backend].in_auto and backend not in req.names:
            raise MeterSelectionError(f"{flag} is only used with --meter {backend} (e.g. --meter auto,{backend})")


def meter_flags(plugin: bool | None = None) -> list[Option]:
    """The options that are command-line flags, for the CLI to add once to every command that meters (only the
    plugins' with plugin=True, only ours with False)."""
    return [o for o, b in OPTIONS.values() if o.flag and (plugin is None or is_plugin(b) == plugin)]
