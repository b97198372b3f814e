"""Devices' published peak FLOP/s, which MFU is held against (the figures themselves are derived in
harness/results/schema.py from the record's work and energy).

A device not in the peak table gets no peak and the reason, never a guessed one; so its MFU is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from harness.results.schema import Device
from harness.tables import longest_match, read_table

# What the table's columns mean for each model dtype. float32 matmuls run as TF32 on NVIDIA GPUs from
# Ampere on under JAX's default matmul precision, so their peak is the TF32 one where the table has it.
_COLUMNS = {"bfloat16": ("bf16_tflops",), "float32": ("tf32_tflops", "fp32_tflops")}


@dataclass(frozen=True)
class Peak:
    pattern: str
    tflops: dict[str, float | None]
    source: str


@cache
def peak_table() -> tuple[Peak, ...]:
    rows = read_table(__package__, "peak_flops.csv")
    return tuple(Peak(r["pattern"], {k: float(r[k]) if r[k] else None for k in ("bf16_tflops", "tf32_tflops",
                                                                                "fp32_tflops")}, r["source"])
                 for r in rows)


def device_peak(kind: str, platform: str, dtype: str) -> dict[str, Any]:
    """Peak FLOP/s of one device for matmuls in `dtype`, with its source; or None and the reason."""
    if platform == "cpu":
        return {"flops_per_s": None, "reason": "no peak table for CPUs: it depends on the SKU, clocks and "
                "vector width, and no published figure applies to a VM's share of a package"}
    row = longest_match(kind, peak_table(), lambda p: p.pattern)
    if row is None:
        return {"flops_per_s": None, "reason": f"{kind!r} is not in harness/results/peak_flops.csv; add a row "
                "with its published dense peak and source"}
    for column in _COLUMNS.get(dtype, ()):
        value = row.tflops[column]
        if value is not None:
            return {"flops_per_s": value * 1e12, "precision": column.removesuffix("_tflops"),
                    "matched": row.pattern, "source": row.source}
    return {"flops_per_s": None, "reason": f"no published {dtype} peak for {row.pattern} ({row.source})"}


def devices_peak(devices: Sequence[Device], dtype: str) -> tuple[float | None, dict[str, Any]]:
    """The devices' summed peak FLOP/s for matmuls in `dtype` (None unless every device has one), and the
    first device's row with its source and the device count (or the reason there is none)."""
    peaks = [device_peak(d.kind, d.platform, dtype) for d in devices]
    if not peaks:
        return None, {"flops_per_s": None, "reason": "no devices recorded", "devices": 0}
    missing = sorted({p["reason"] for p in peaks if p["flops_per_s"] is None})
    total = None if missing else sum(p["flops_per_s"] for p in peaks)
    return total, peaks[0] | {"devices": len(peaks)} | ({"reason": "; ".join(missing)} if missing else {})
