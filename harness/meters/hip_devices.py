"""How HIP numbers AMD GPUs: the physical GPU (AMD SMI's order) behind each logical index a ROCm program sees,
after ROCR_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES (or CUDA_VISIBLE_DEVICES, which HIP honours where that is unset).
Pure functions: the AMD meter (harness/meters/amdsmi.py) gives them AMD SMI's GPUs and their identifiers."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def parse_visible(value: str | None, name: str) -> list[str] | None:
    """A visible-devices variable's entries (indices or GPU-<uuid>) in order; None when unset (all visible)."""
    if value is None:
        return None
    entries = [v.strip() for v in value.split(",") if v.strip()]
    for v in entries:
        if not (v.isdigit() or v.upper().startswith("GPU-")):
            raise ValueError(f"{name} entry {v!r} is neither a GPU index nor a GPU-<uuid>")
    return entries


def hip_order(env: Mapping[str, str], count: int, ids: Callable[[int], set[str]]) -> list[int]:
    """The physical GPU (AMD SMI's order) behind each logical index, as HIP numbers them: ROCR_VISIBLE_DEVICES picks
    from every GPU first, then HIP_VISIBLE_DEVICES (CUDA_VISIBLE_DEVICES where it is unset) from those.
    ids(physical) gives a GPU's identifiers for GPU-<uuid> entries."""
    order = list(range(count))
    hip = env.get("HIP_VISIBLE_DEVICES")
    for name, value in (("ROCR_VISIBLE_DEVICES", env.get("ROCR_VISIBLE_DEVICES")),
                        ("HIP_VISIBLE_DEVICES" if hip is not None else "CUDA_VISIBLE_DEVICES",
                         hip if hip is not None else env.get("CUDA_VISIBLE_DEVICES"))):
        entries = parse_visible(value, name)
        if entries is not None:
            order = [_pick(entry, order, ids, name) for entry in entries]
    return order


def _pick(entry: str, order: list[int], ids: Callable[[int], set[str]], name: str) -> int:
    if entry.isdigit():
        if int(entry) >= len(order):
            raise RuntimeError(f"AMD SMI: {name} names GPU {entry}, but {len(order)} are visible to it")
        return order[int(entry)]
    wanted = ident(entry)
    found = [p for p in order if wanted in ids(p)]
    if not found:
        raise RuntimeError(f"AMD SMI: {name} names {entry}, which is none of the GPUs visible to it")
    return found[0]


def ident(text: str) -> str:
    """An identifier as compared: no GPU- or 0x prefix, no leading zeros, lower case."""
    text = text.strip().lower()
    for prefix in ("gpu-", "0x"):
        text = text.removeprefix(prefix)
    return text.lstrip("0") or "0"
