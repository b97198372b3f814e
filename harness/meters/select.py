"""Which meters a run uses, and why every other backend is not used.

``auto`` takes the best available figure per component: RAPL before the modelled CPU, NVML for NVIDIA
GPUs, the published-power model for TPUs. Names given explicitly are *required*: if one cannot run the
run does not start, so nothing is ever substituted silently. The external node meter is only used when
asked for, because it needs a command from the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.meters.base import Availability, Meter
from harness.meters.cpu_model import CpuModelMeter
from harness.meters.external import ExternalMeter
from harness.meters.fake import FakeMeter
from harness.meters.nvml import NvmlMeter
from harness.meters.rapl import DEFAULT_ROOT, RaplMeter
from harness.meters.tpu_model import TpuModelMeter

BACKENDS: dict[str, type[Meter]] = {
    m.name: m for m in (NvmlMeter, RaplMeter, TpuModelMeter, CpuModelMeter, ExternalMeter, FakeMeter)
}
GPU_PLATFORMS = ("gpu", "cuda")


class MeterSelectionError(ValueError):
    """A requested meter cannot run here, or the request itself is malformed (exit code 2)."""


@dataclass(frozen=True)
class Accelerator:
    platform: str  # jax platform: "gpu", "tpu", ...
    index: int  # process-local (logical) device id
    kind: str  # jax device_kind, e.g. "NVIDIA H100 80GB HBM3", "TPU v3"


@dataclass(frozen=True)
class MeterRequest:
    names: tuple[str, ...] = ("auto",)
    cpu_tdp: float | None = None
    tpu_watts: float | None = None
    external_command: str | None = None
    external_hz: float = 1.0
    rapl_root: str | Path = DEFAULT_ROOT
    nvml: Any = None  # a pynvml-like module; None imports the real one (tests pass a fake)
    # False in every process but one per physical host: node- and CPU-scope meters are read once a host.
    host_level: bool = True
    host_leader: str = ""  # who reads them instead, for the reason given


def parse_meter_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    valid = ("auto", *BACKENDS)
    bad = [n for n in names if n not in valid]
    if not names or bad:
        raise MeterSelectionError(f"--meter must be a comma-separated list of {', '.join(valid)}; "
                                  f"got {text!r}")
    if "fake" in names and len(names) > 1:
        raise MeterSelectionError("--meter fake is synthetic and cannot be combined with real meters")
    return names


def _gpus(accels: list[Accelerator]) -> list[int]:
    return [a.index for a in accels if a.platform in GPU_PLATFORMS]


def _tpu_kinds(accels: list[Accelerator]) -> list[str]:
    return [a.kind for a in accels if a.platform == "tpu"]


def probe(name: str, req: MeterRequest, accels: list[Accelerator]) -> Availability:
    """Can backend `name` meter this run? Never raises for 'not here'; the reason says why."""
    if name == NvmlMeter.name:
        gpus = _gpus(accels)
        if not gpus:
            platforms = sorted({a.platform for a in accels}) or ["cpu"]
            return Availability(False, f"NVML: no GPU among the run's devices (backend {', '.join(platforms)})")
        return NvmlMeter.probe(gpus, nvml=req.nvml)
    if name == RaplMeter.name:
        return RaplMeter.probe(root=req.rapl_root)
    if name == CpuModelMeter.name:
        return CpuModelMeter.probe(tdp_w=req.cpu_tdp)
    if name == TpuModelMeter.name:
        return TpuModelMeter.probe(_tpu_kinds(accels), req.tpu_watts)
    if name == ExternalMeter.name:
        return ExternalMeter.probe(req.external_command)
    return FakeMeter.probe()


def build(name: str, req: MeterRequest, accels: list[Accelerator]) -> Meter:
    if name == NvmlMeter.name:
        return NvmlMeter(_gpus(accels), nvml=req.nvml)
    if name == RaplMeter.name:
        return RaplMeter(req.rapl_root)
    if name == CpuModelMeter.name:
        return CpuModelMeter(tdp_w=req.cpu_tdp)
    if name == TpuModelMeter.name:
        return TpuModelMeter(_tpu_kinds(accels), req.tpu_watts)
    if name == ExternalMeter.name:
        return ExternalMeter(req.external_command or "", hz=req.external_hz)
    return FakeMeter()


def select_meters(req: MeterRequest, accels: list[Accelerator]) -> tuple[list[Meter], list[dict[str, str]]]:
    """Meters to use, and {"name", "reason"} for every backend not used.

    Raises MeterSelectionError when an explicitly named backend cannot run. An empty list from "auto"
    means nothing usable was found; the caller must say so, not invent a figure.
    """
    names = req.names
    if not req.host_level:
        return _accelerators_only(req, accels)
    if names == ("fake",):
        why = "not used: synthetic fake meter requested"
        return [FakeMeter()], [{"name": n, "reason": why} for n in BACKENDS if n != "fake"]
    chosen: list[str] = []
    unused: list[dict[str, str]] = []
    checked: dict[str, Availability] = {}

    def available(name: str) -> bool:
        if name not in checked:
            checked[name] = probe(name, req, accels)
        return checked[name].available

    for name in names:
        if name != "auto" and not available(name):
            raise MeterSelectionError(f"--meter {name}: {checked[name].reason}")
        if name != "auto" and name not in chosen:
            chosen.append(name)
    if "auto" in names:
        cpu = RaplMeter.name if available(RaplMeter.name) else CpuModelMeter.name
        for name in (NvmlMeter.name, TpuModelMeter.name, cpu):
            if name not in chosen and available(name):
                chosen.append(name)
    meters: list[Meter] = []
    for name in chosen:
        try:
            meters.append(build(name, req, accels))
        except Exception as e:  # a probe passed but setup failed: required meters must not vanish quietly
            raise MeterSelectionError(f"--meter {name}: probe passed but setup failed: {e}") from e
    for name in BACKENDS:
        if name in chosen:
            continue
        if name == CpuModelMeter.name and RaplMeter.name in chosen:
            reason = "not used: measured RAPL energy is available and preferred over the model"
        elif name == ExternalMeter.name and not req.external_command:
            reason = "not used: needs --meter external --meter-command 'CMD' (a command printing watts)"
        elif name == FakeMeter.name:
            reason = "not used: synthetic, only on request (--meter fake)"
        else:
            reason = checked[name].reason if name in checked else "not requested"
        unused.append({"name": name, "reason": reason})
    _declare_unmetered(meters, accels, unused, checked)
    return meters, unused


HOST_LEVEL_PARTS = ("cpu", "node", "synthetic")


def _accelerators_only(req: MeterRequest, accels: list[Accelerator]) -> tuple[list[Meter], list[dict[str, str]]]:
    """A process that does not lead its host meters only its own accelerators."""
    why = f"not used here: read by {req.host_leader or 'another process'}, which leads this host"
    host_level = [n for n, b in BACKENDS.items() if b.part in HOST_LEVEL_PARTS]
    named = [n for n in req.names if n != "auto" and n not in host_level]
    wanted = named or ([NvmlMeter.name, TpuModelMeter.name] if "auto" in req.names else [])
    sub = MeterRequest(tuple(wanted) or ("auto",), tpu_watts=req.tpu_watts, nvml=req.nvml)
    if not wanted:
        return [], [{"name": n, "reason": why} for n in BACKENDS]
    meters: list[Meter] = []
    unused: list[dict[str, str]] = [{"name": n, "reason": why} for n in host_level]
    for name in wanted:
        a = probe(name, sub, accels)
        if a.available:
            meters.append(build(name, sub, accels))
        elif name in named:
            raise MeterSelectionError(f"--meter {name}: {a.reason}")
        else:
            unused.append({"name": name, "reason": a.reason})
    _declare_unmetered(meters, accels, unused, {})
    return meters, unused


def _declare_unmetered(meters: list[Meter], accels: list[Accelerator], unused: list[dict[str, str]],
                       checked: dict[str, Availability]) -> None:
    """An accelerator no meter sees must be named, so the CPU figure cannot pass for the whole run."""
    used = {m.name for m in meters} | {m.scope for m in meters}
    if "node" in used:
        return  # a node-level meter includes every accelerator
    for platform in sorted({a.platform for a in accels} - {"cpu"}):
        meter = {"gpu": NvmlMeter.name, "cuda": NvmlMeter.name, "tpu": TpuModelMeter.name}.get(platform)
        if meter in used:
            continue
        why = checked[meter].reason if meter in checked else "no meter for this platform"
        unused.append({"name": f"{platform}-energy", "reason": f"{platform.upper()} energy NOT metered ({why}); "
                       "energy covers the metered components only"})
