"""The TensorFlow Runtime (workloads.framework.Runtime): its devices. Multi-process runs are JAX only."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from workloads.framework import Device, FrameworkUnavailableError


class TfRuntime:
    name = "tensorflow"

    def initialize(self, coordinator: str | None, num_processes: int | None, process_id: int | None,
                   heartbeat_timeout_s: int) -> None:
        if any(v is not None for v in (coordinator, num_processes, process_id)):
            raise FrameworkUnavailableError("multi-process runs are JAX only (jax.distributed); "
                                            "--framework tensorflow runs in one process")

    def version(self) -> str:
        return tf.__version__

    def process_index(self) -> int:
        return 0

    def process_count(self) -> int:
        return 1

    def devices(self) -> list[Device]:
        gpus = tf.config.list_logical_devices("GPU")
        chosen = gpus or tf.config.list_logical_devices("CPU")
        # The name is what TensorFlow reports; a GPU's model name needs its details, where TF has them.
        out = []
        for i, d in enumerate(chosen):
            kind = "cpu"
            if d.device_type == "GPU":
                physical = tf.config.list_physical_devices("GPU")[i]
                kind = tf.config.experimental.get_device_details(physical).get("device_name", d.name)
            out.append(Device(kind, d.device_type.lower(), i, 0, i))
        return out

    def kv_set(self, key: str, value: bytes) -> None:
        raise RuntimeError("not a multi-process run")

    def kv_get(self, key: str, timeout_s: float) -> bytes:
        raise RuntimeError("not a multi-process run")

    def kv_try_get(self, key: str) -> bytes | None:
        raise RuntimeError("not a multi-process run")

    def barrier(self, name: str, timeout_s: float) -> None:
        return None

    def sync(self, arrays: Any = None) -> None:
        # TensorFlow's own barrier over every device's queued work (arrays need no separate wait).
        tf.test.experimental.sync_devices()
