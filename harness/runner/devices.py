"""The accelerators a run trains on, as the meters need to know them (meters themselves never import jax)."""

from __future__ import annotations

import jax

from harness.meters import Accelerator


def _accelerator(d) -> Accelerator:
    # local_hardware_id is the CUDA ordinal among the visible devices (what CUDA_VISIBLE_DEVICES maps).
    index = getattr(d, "local_hardware_id", None)
    return Accelerator(d.platform, d.id if index is None else index, d.device_kind)


def all_accelerators() -> list[Accelerator]:
    """Every non-CPU device this process can see (for `harness meters`)."""
    return [_accelerator(d) for d in jax.local_devices() if d.platform != "cpu"]


def training_accelerators() -> list[Accelerator]:
    """The devices a run trains on. Workloads jit onto the default device, so that one only: metering every
    visible GPU would charge the run for idle or foreign cards."""
    device = jax.local_devices()[0]
    return [] if device.platform == "cpu" else [_accelerator(device)]
