"""The JAX Runtime (workloads.framework.Runtime): devices, and jax.distributed for multi-process runs.

Multi-process runs use JAX's own multi-controller runtime: jax.distributed.initialize joins the processes
(its coordinator's key-value store carries what the processes tell each other; no shared filesystem is
needed), and CPU collectives go through gloo.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp

from workloads.framework import Device

# Environment variables by which jax.distributed.initialize() detects a cluster on its own.
CLUSTER_ENV = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "JAX_COORDINATOR_ADDRESS")


class JaxRuntime:
    name = "jax"

    def __init__(self) -> None:
        self._client = None

    def initialize(self, coordinator: str | None, num_processes: int | None, process_id: int | None,
                   heartbeat_timeout_s: int) -> None:
        from jax._src import distributed

        if distributed.global_state.client is not None:
            self._client = distributed.global_state.client
            return  # already joined (a second run in the same process)
        asked = any(v is not None for v in (coordinator, num_processes, process_id))
        if not asked and not any(os.environ.get(v) for v in CLUSTER_ENV):
            return  # one process: no distributed runtime at all
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, heartbeat_timeout_seconds=heartbeat_timeout_s)
        self._client = distributed.global_state.client

    def version(self) -> str:
        return jax.__version__

    def process_index(self) -> int:
        return jax.process_index()

    def process_count(self) -> int:
        return jax.process_count()

    def devices(self) -> list[Device]:
        return [Device(d.device_kind, d.platform, d.id, d.process_index,
                       # local_hardware_id is the CUDA ordinal among the visible devices.
                       d.local_hardware_id if getattr(d, "local_hardware_id", None) is not None else d.id)
                for d in jax.devices()]

    def _kv(self):
        if self._client is None:
            raise RuntimeError("not a multi-process run: there is no key-value store")
        return self._client

    def kv_set(self, key: str, value: bytes) -> None:
        self._kv().key_value_set_bytes(key, value, allow_overwrite=True)

    def kv_get(self, key: str, timeout_s: float) -> bytes:
        try:
            return self._kv().blocking_key_value_get_bytes(key, int(timeout_s * 1000))
        except Exception as e:  # the runtime raises its own error type for a deadline
            raise TimeoutError(f"no value for {key!r} within {timeout_s:g} s ({e})") from e

    def kv_try_get(self, key: str) -> bytes | None:
        try:
            return self._kv().key_value_try_get_bytes(key)
        except Exception as e:
            if "NOT_FOUND" in str(e) or "not found" in str(e).lower():
                return None
            raise

    def barrier(self, name: str, timeout_s: float) -> None:
        if self._client is not None:
            self._client.wait_at_barrier(name, int(timeout_s * 1000))

    def sync(self, arrays: Any = None) -> None:
        if arrays is not None:
            jax.block_until_ready(arrays)
            return
        # A device runs its computations in order: a tiny one enqueued on each, waited for, waits for all.
        jax.block_until_ready([jax.device_put(jnp.zeros(()), d) + 1 for d in jax.local_devices()])
