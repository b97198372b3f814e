"""`harness meters`: every backend, whether it works here, what it would measure, and if not, why; where each
came from, and every plugin that did not load."""

from __future__ import annotations

from typing import Any

from harness.meters.registry import BACKENDS, ORIGINS, REJECTED, Accelerator, MeterRequest
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
                     "sample_rate": rate, "reason": status.reason, "used_by_auto": name in auto_names,
                     "origin": ORIGINS[name].to_dict(), "loaded": True})
    for r in REJECTED:
        rows.append({"backend": r.name, "available": False, "measures": "", "basis": "", "sample_rate": "",
                     "reason": r.line(), "used_by_auto": False, "origin": r.origin.to_dict(), "loaded": False})
    return rows
