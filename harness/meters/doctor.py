"""`harness meters`: every backend, whether it works here, what it would measure, and if not, why."""

from __future__ import annotations

from typing import Any

from harness.meters.select import BACKENDS, Accelerator, MeterRequest, probe, select_meters

# What each backend would measure: (component, basis, rate). Kept as data beside the code that selects.
DESCRIPTIONS: dict[str, tuple[str, str, str]] = {
    "nvml": ("each NVIDIA GPU board the run uses (GPU + HBM)", "measured",
             "energy counter (~10 Hz updates) read at the sampler rate, default 20 Hz; instant-power gauge beside it"),
    "rapl": ("CPU packages + DRAM", "measured", "counters (~1 kHz updates) read at the sampler rate, default 20 Hz"),
    "tpu-model": ("each TPU chip incl. its host share", "modelled", "chips x published W/chip x time"),
    "cpu-model": ("CPUs visible to this process", "modelled", "/proc/stat utilisation at the sampler rate x TDP"),
    "external": ("the whole node (BMC, PDU or wall meter)", "measured", "--meter-hz, default 1 Hz"),
    "fake": ("synthetic trace for tests", "synthetic", "any"),
}


def diagnose(req: MeterRequest, accels: list[Accelerator]) -> list[dict[str, Any]]:
    auto, _ = select_meters(MeterRequest(("auto",), cpu_tdp=req.cpu_tdp, tpu_watts=req.tpu_watts,
                                         rapl_root=req.rapl_root, nvml=req.nvml), accels)
    auto_names = {m.name for m in auto}
    for m in auto:
        m.stop()
    rows = []
    for name in BACKENDS:
        status = probe(name, req, accels)
        component, basis, rate = DESCRIPTIONS[name]
        rows.append({"backend": name, "available": status.available, "measures": component, "basis": basis,
                     "sample_rate": rate, "reason": status.reason, "used_by_auto": name in auto_names})
    return rows
