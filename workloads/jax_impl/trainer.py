"""The JAX Trainer (workloads.framework.Trainer): compiled steps on the first local device."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from workloads.framework import EvalResult, eval_batches
from workloads.jax_impl.models import count_params
from workloads.jax_impl.train import make_steps
from workloads.spec import WorkloadSpec, attention_implementation, precision_of


class JaxTrainer:
    framework = "jax"

    def __init__(self, spec: WorkloadSpec, seed: int, max_steps: int, first_batch: np.ndarray,
                 eval_set: np.ndarray) -> None:
        self.spec = spec
        # One device: the workload jits onto the default device (a mesh spreads it, see harness run --mesh).
        self.device = jax.local_devices()[0]
        steps = make_steps(spec.model, spec.optimizer, max_steps)
        first = self.to_device(first_batch)
        self._state = jax.jit(steps.init)(jax.random.PRNGKey(seed), first)
        self._train = jax.jit(steps.train, donate_argnums=0).lower(self._state, first).compile()
        # The eval set lives on the device for the whole run: evaluating reads no host data.
        self._eval_batches = [(self.to_device(t), self.to_device(w))
                              for t, w in eval_batches(eval_set, spec.eval_batch_size)]
        self._eval = jax.jit(steps.eval).lower(self._state.params, *self._eval_batches[0]).compile()
        self._param_counts = count_params(self._state.params)
        self.sync()

    @property
    def param_counts(self) -> dict[str, int]:
        return self._param_counts

    def to_device(self, batch: np.ndarray) -> jax.Array:
        out = jax.device_put(batch, self.device)
        out.block_until_ready()  # on the prefetch thread: the step never waits for a transfer
        return out

    def step(self, batch: jax.Array) -> dict[str, jax.Array]:
        self._state, metrics = self._train(self._state, batch)
        return metrics

    def latest_loss(self, handle: dict[str, jax.Array]) -> float:
        return float(handle["loss"])

    def host_metrics(self, handles: list[dict[str, jax.Array]]) -> list[dict[str, Any]]:
        fetched = jax.device_get(handles)  # one batched transfer, not one per step and key
        return [{k: float(v) if np.ndim(v) == 0 else np.asarray(v) for k, v in m.items()} for m in fetched]

    def evaluate(self) -> EvalResult:
        total = None
        for tokens, weights in self._eval_batches:
            sums = self._eval(self._state.params, tokens, weights)
            # Added on the device: one host transfer at the end, however many batches.
            total = sums if total is None else jax.tree_util.tree_map(jnp.add, total, sums)
        host = jax.device_get(total)
        return EvalResult.from_sums(*(float(x) for x in host))

    def sync(self) -> None:
        jax.block_until_ready(self._state)

    def describe(self) -> dict[str, Any]:
        model = self.spec.model
        return {
            "framework": "jax",
            "version": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "flax": _version("flax"),
            "optax": _version("optax"),
            "backend": self.device.platform,
            "devices": [{"kind": self.device.device_kind, "platform": self.device.platform, "id": self.device.id}],
            "attention_implementation": attention_implementation(model.attention, model.dtype,
                                                                 self.device.platform),
            "precision": precision_of(model),
        }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
