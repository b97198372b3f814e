"""Efficiency figures of a run's timed window: model FLOP/s and MFU, tokens and FLOPs per joule, power.

These are what a vendor compares across accelerators. Every figure says what it is divided by: the run's
energy (with its method) or the accelerators' own. A device not in the peak table gets MFU null with the
reason, never a guessed peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

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


def efficiency(*, model_flops: float, tokens: int, seconds: float | None, devices: list[dict[str, str]],
               dtype: str, total_j: float | None, energy_method: str,
               components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The efficiency section of result.json for one timed window.

    model_flops: model FLOPs in the window (training 3x forward, plus every evaluation's forward).
    devices: the devices the run trained on ({"kind", "platform"}); components: energy.components.
    """
    flops_per_s = model_flops / seconds if seconds else None
    peaks = [device_peak(d["kind"], d["platform"], dtype) for d in devices]
    missing = [p["reason"] for p in peaks if p["flops_per_s"] is None]
    peak_total = None if missing or not peaks else sum(p["flops_per_s"] for p in peaks)
    out: dict[str, Any] = {
        "model_flops": model_flops,
        "model_flops_note": "training 3x forward matmul FLOPs (activated experts only) plus the forward FLOPs "
                            "of every evaluation, over the timed window (loop and evaluation time included)",
        "model_flops_per_s": flops_per_s,
        "peak_flops_per_s": peak_total,
        "peak": peaks[0] | {"devices": len(peaks)} if peaks else None,
        "mfu": flops_per_s / peak_total if flops_per_s is not None and peak_total else None,
        "mfu_reason": "; ".join(sorted(set(missing))) if missing else None,
        "energy_basis": f"the run's energy ({energy_method})",
        **_per_joule(model_flops, tokens, total_j),
    }
    out["accelerators"] = _accelerators(model_flops, tokens, seconds, components)
    return out


def _per_joule(model_flops: float, tokens: int, joules: float | None) -> dict[str, float | None]:
    ok = joules is not None and joules > 0
    return {"tokens_per_j": tokens / joules if ok else None,
            "model_flops_per_j": model_flops / joules if ok else None,
            "j_per_token": joules / tokens if ok and tokens else None}


def _accelerators(model_flops: float, tokens: int, seconds: float | None,
                  components: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Figures for the accelerator boards alone (what a vendor's efficiency claim is about)."""
    accel = {k: c for k, c in components.items() if c.get("part") == "accelerator"}
    if not accel:
        return None
    joules = [c["joules"] for c in accel.values()]
    total = sum(joules) if all(j is not None for j in joules) else None
    limits = [c.get("power_limit_w") for c in accel.values()]
    avg = total / seconds if total is not None and seconds else None
    peaks = [c.get("peak_watts") for c in accel.values()]
    fractions = [p / lim for p, lim in zip(peaks, limits, strict=True) if p is not None and lim]
    return {
        "components": sorted(accel),
        "method": "+".join(sorted({c["method"] for c in accel.values()})),
        "joules": total,
        **_per_joule(model_flops, tokens, total),
        "avg_w": avg,
        "peak_w": max((p for p in peaks if p is not None), default=None),
        "peak_source": "; ".join(sorted({c.get("peak_source", "") for c in accel.values()})),
        "power_limit_w": sum(limits) if all(limits) else None,
        "avg_fraction_of_limit": avg / sum(limits) if avg is not None and all(limits) else None,
        "peak_fraction_of_limit": max(fractions) if fractions else None,
    }
