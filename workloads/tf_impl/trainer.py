"""The TensorFlow Trainer (workloads.framework.Trainer): one device, XLA-compiled steps.

It starts from the JAX implementation's initial weights for the same seed (workloads/jax_impl/weights.py),
so that two runs of one workload in the two frameworks differ only by the framework.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import numpy as np
import tensorflow as tf

from workloads.flops import param_counts
from workloads.framework import EvalResult, FrameworkUnavailableError, eval_batches
from workloads.mesh import MeshShape
from workloads.specs import WorkloadSpec, attention_implementation, precision_of
from workloads.tf_impl.models import TransformerLM
from workloads.tf_impl.steps import AdamW, make_steps


class TfTrainer:
    framework = "tensorflow"

    def __init__(self, spec: WorkloadSpec, seed: int, max_steps: int, first_batch: np.ndarray,
                 eval_set: np.ndarray, mesh: MeshShape | None = None,
                 weights: dict[str, np.ndarray] | None = None) -> None:
        if mesh is not None and mesh.devices > 1:
            raise FrameworkUnavailableError("--framework tensorflow trains on one device; meshes are JAX only")
        from workloads.jax_impl.weights import initial_weights

        self.spec = spec
        self.device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0]
        with tf.device(self.device.name):
            self.model = TransformerLM(spec.model, weights or initial_weights(spec, seed, first_batch))
            self.variables = [self.model.params[k] for k in sorted(self.model.params)]
            self.opt = AdamW(spec.optimizer, self.variables, max_steps)
            self._train, self._eval = make_steps(self.model, self.opt, self.variables)
            self._eval_batches = [(self.to_device(t), self.to_device(w))
                                  for t, w in eval_batches(eval_set, spec.eval_batch_size)]
            self._compile(self.to_device(first_batch))
        self._param_counts = param_counts(spec.model)
        if sum(int(np.prod(v.shape)) for v in self.variables) != self._param_counts["total"]:
            raise RuntimeError("the TensorFlow model's variables do not match the spec's parameter count")

    def _compile(self, first: tf.Tensor) -> None:
        """XLA compiles a tf.function at its first call: make both calls now (init, untimed), then put the
        weights and the optimiser back as they were, so the run starts from the initial state."""
        state = self.variables + self.opt.mu + self.opt.nu + [self.opt.count]
        saved = [v.numpy() for v in state]
        self._train(first)
        self._eval(*self._eval_batches[0])
        for v, value in zip(state, saved, strict=True):
            v.assign(value)

    @property
    def param_counts(self) -> dict[str, int]:
        return self._param_counts

    def to_device(self, batch: np.ndarray) -> tf.Tensor:
        with tf.device(self.device.name):
            return tf.identity(tf.convert_to_tensor(batch))

    def step(self, batch: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.device(self.device.name):
            return self._train(batch)

    def latest_loss(self, handle: dict[str, tf.Tensor]) -> float:
        return float(handle["loss"].numpy())

    def host_metrics(self, handles: list[dict[str, tf.Tensor]]) -> list[dict[str, Any]]:
        return [{k: float(v.numpy()) if v.shape.rank == 0 else v.numpy() for k, v in m.items()} for m in handles]

    def evaluate(self) -> EvalResult:
        with tf.device(self.device.name):
            total = None
            for tokens, weights in self._eval_batches:
                sums = self._eval(tokens, weights)
                total = sums if total is None else tuple(a + b for a, b in zip(total, sums, strict=True))
        return EvalResult.from_sums(*(float(x.numpy()) for x in total))

    def sync(self) -> None:
        # Eager TensorFlow returns from a step when its outputs exist; reading a variable waits for the last.
        self.variables[0].numpy()

    def weights(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v.numpy(), np.float32) for k, v in self.model.params.items()}

    def describe(self) -> dict[str, Any]:
        model = self.spec.model
        platform = self.device.device_type.lower()
        kind = "cpu" if platform == "cpu" else tf.config.experimental.get_device_details(
            tf.config.list_physical_devices("GPU")[0]).get("device_name", self.device.name)
        return {
            "framework": "tensorflow",
            "version": tf.__version__,
            "keras": _version("keras"),
            "backend": platform,
            "devices": [{"kind": kind, "platform": platform, "id": 0, "process": 0}],
            "mesh": None,
            "processes": 1,
            "attention_implementation": attention_implementation("plain", model.dtype, platform),
            "precision": precision_of(model),
            "xla": "tf.function(jit_compile=True)",
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on, on x86 CPUs)"),
            "initial_weights": "the JAX implementation's initialisers for the seed",
        }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
