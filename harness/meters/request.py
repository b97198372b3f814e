"""What a run asks of its meters: which backends, with which options, for which accelerators."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# How a GPU's model name gives its vendor. Frameworks report both vendors' GPUs as platform "gpu"; the name is
# what tells NVML's cards from AMD SMI's. JAX on ROCm names a card by product ("AMD Instinct MI300X") or by
# its architecture ("gfx942:sramecc+:xnack-"), TensorFlow by product.
_AMD = re.compile(r"\b(AMD|Instinct|Radeon|ATI)\b|^gfx\d", re.IGNORECASE)
_NVIDIA = re.compile(r"\b(NVIDIA|Tesla|GeForce|Quadro|TITAN)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Accelerator:
    platform: str  # "gpu", "tpu", ...
    index: int  # process-local (logical) device index: what CUDA_VISIBLE_DEVICES maps
    kind: str  # the device's model, e.g. "NVIDIA H100 80GB HBM3", "TPU v3"

    @property
    def vendor(self) -> str | None:
        """"amd" or "nvidia" for a GPU whose model name says which; None where it does not (or not a GPU)."""
        if self.platform == "rocm":
            return "amd"
        if self.platform == "cuda":
            return "nvidia"
        if self.platform != "gpu":
            return None
        if _AMD.search(self.kind):
            return "amd"
        return "nvidia" if _NVIDIA.search(self.kind) else None


class MeterRequest:
    """Which backends (names: "auto" and/or backend names; named ones are required) and every backend's
    options by name (each backend declares its own: harness/meters/registry.py lists them; an option not
    given is None and the backend's default applies). host_level=False: a process that does not lead its
    physical host, which reads only its own accelerators (host_leader says who reads the rest)."""

    def __init__(self, names: tuple[str, ...] = ("auto",), *, host_level: bool = True, host_leader: str = "",
                 **options: Any) -> None:
        self.names = tuple(names)
        self.host_level, self.host_leader = host_level, host_leader
        self.options: Mapping[str, Any] = {k: v for k, v in options.items() if v is not None}

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def with_names(self, names: tuple[str, ...]) -> MeterRequest:
        return MeterRequest(names, host_level=self.host_level, host_leader=self.host_leader, **self.options)
