"""`harness meters`: every backend, whether it works here, what it would measure, and if not, why."""

from __future__ import annotations

from typing import Any

from harness.meters.registry import BACKENDS, Accelerator, MeterRequest
from harness.meters.select import probe, select_meters


def diagnose(req: MeterRequest, accels: list[Accelerator]) -> list[dict[str, Any]]:
    auto, _ = select_meters(req.with_names(("auto",)), accels)
    auto_names = {m.name for m in auto}
    for m in auto:
        m.stop()
    rows = []
    for name, backend in BACKENDS.items():
        status = probe(name, req, accels)
        component, basis, rate = backend.description
        rows.append({"backend": name, "available": status.available, "measures": component, "basis": basis,
                     "sample_rate": rate, "reason": status.reason, "used_by_auto": name in auto_names})
    return rows
