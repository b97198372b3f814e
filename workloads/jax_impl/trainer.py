"""The JAX Trainer (workloads.framework.Trainer): compiled steps on one device, or over a mesh.

On a mesh (data, expert) the batch is split over every device, the dense parameters are replicated (data
parallelism: XLA inserts the gradient all-reduce), and the Switch experts, with their optimiser state, are
split over "expert" (the Switch layer's shard_map does the all-to-all). The same code serves one process or
many (jax.distributed): every process builds the same global batch and places only its own shards.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from workloads.framework import EvalResult, eval_batches
from workloads.jax_impl.dropless import routing_facts
from workloads.jax_impl.models import count_params
from workloads.jax_impl.steps import make_steps, scan_steps
from workloads.jax_impl.switch import BATCH_AXES, DATA, EXPERT
from workloads.mesh import MeshShape
from workloads.specs import WorkloadSpec, attention_implementation, precision_of

EXPERT_LEAVES = ("w_in", "b_in", "w_out", "b_out")


class JaxTrainer:
    framework = "jax"

    def __init__(self, spec: WorkloadSpec, seed: int, max_steps: int, first_batch: np.ndarray,
                 eval_set: np.ndarray, mesh: MeshShape | None = None, steps_per_dispatch: int = 1) -> None:
        self.spec, self.mesh_shape, self.k = spec, mesh, steps_per_dispatch
        if mesh is None:
            # One device: the workload jits onto the default device, with no sharding machinery at all.
            self.mesh, self.devices = None, [jax.local_devices()[0]]
            self._batch_sharding = self._rows_sharding = jax.sharding.SingleDeviceSharding(self.devices[0])
            self._block_sharding = self._batch_sharding
        else:
            self.devices = jax.devices()[:mesh.devices]
            self.mesh = Mesh(np.asarray(self.devices).reshape(mesh.data, mesh.expert), (DATA, EXPERT))
            self._batch_sharding = NamedSharding(self.mesh, P(BATCH_AXES))
            self._rows_sharding = self._batch_sharding
            # A block [K, batch, ...]: each step's batch split as one batch is.
            self._block_sharding = NamedSharding(self.mesh, P(None, BATCH_AXES))
        # Before anything is traced: the grouped matmul a dropless Switch layer uses on this backend.
        self._routing = routing_facts(spec.model)
        steps = make_steps(spec.model, spec.optimizer, max_steps, mesh=self.mesh)
        first = self.to_device(first_batch)
        step_fn = steps.train if self.k == 1 else scan_steps(steps.train)
        step_sharding = self._batch_sharding if self.k == 1 else self._block_sharding
        example = first if self.k == 1 else self.to_device(np.stack([first_batch] * self.k))
        key = jax.random.PRNGKey(seed)
        if self.mesh is None:
            init = jax.jit(steps.init)
            train = jax.jit(step_fn, donate_argnums=0)
            evaluate = jax.jit(steps.eval)
        else:
            state_sharding = self._state_sharding(jax.eval_shape(steps.init, key, first))
            replicated = NamedSharding(self.mesh, P())
            init = jax.jit(steps.init, out_shardings=state_sharding)
            train = jax.jit(step_fn, in_shardings=(state_sharding, step_sharding),
                            out_shardings=(state_sharding, replicated), donate_argnums=0)
            evaluate = jax.jit(steps.eval, in_shardings=(state_sharding.params, self._batch_sharding,
                                                         self._rows_sharding), out_shardings=replicated)
        self._state = init(key, first)
        self._train = train.lower(self._state, example).compile()
        # The eval set lives on the devices for the whole run: evaluating reads no host data.
        self._eval_batches = [(self.to_device(t), self.to_device(w))
                              for t, w in eval_batches(eval_set, spec.eval_batch_size)]
        self._eval = evaluate.lower(self._state.params, *self._eval_batches[0]).compile()
        self._param_counts = count_params(self._state.params)
        self.sync()

    def _state_sharding(self, abstract_state: Any) -> Any:
        """Expert weights and their optimiser moments split over "expert"; everything else replicated."""

        def place(path, leaf) -> NamedSharding:
            names = [str(getattr(k, "key", getattr(k, "name", ""))) for k in path]
            expert = "switch_ffn" in names and names[-1] in EXPERT_LEAVES
            return NamedSharding(self.mesh, P(EXPERT) if expert else P())

        return jax.tree_util.tree_map_with_path(place, abstract_state)

    @property
    def param_counts(self) -> dict[str, int]:
        return self._param_counts

    def param_shardings(self) -> dict[str, str]:
        """'block_1/switch_ffn/w_in' -> its partition spec, for the record and for tests."""
        out = {}
        for path, leaf in jax.tree_util.tree_flatten_with_path(self._state.params)[0]:
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            out[name] = str(getattr(leaf.sharding, "spec", "single device"))
        return out

    def to_device(self, batch: np.ndarray) -> jax.Array:
        if self.mesh is None:
            out = jax.device_put(batch, self.devices[0])
        else:
            # Every process holds the whole global batch; each places the rows its own devices hold.
            sharding = {3: self._block_sharding, 2: self._batch_sharding}.get(batch.ndim, self._rows_sharding)
            out = jax.make_array_from_callback(batch.shape, sharding, lambda index: batch[index])
        return out  # not waited for: the copy overlaps the step before the one that reads it

    def step(self, batch: jax.Array) -> dict[str, jax.Array]:
        self._state, metrics = self._train(self._state, batch)
        return metrics

    def latest_loss(self, handle: dict[str, jax.Array]) -> float:
        loss = handle["loss"]
        return float(loss if self.k == 1 else loss[-1])

    def host_metrics(self, handles: list[dict[str, jax.Array]]) -> list[dict[str, Any]]:
        fetched = jax.device_get(handles)  # one batched transfer, not one per step and key
        if self.k > 1:  # a block's metrics carry a leading K axis: one dict a step
            fetched = [{key: v[i] for key, v in m.items()} for m in fetched for i in range(self.k)]
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

    def weights(self) -> dict[str, np.ndarray]:
        host = jax.device_get(self._state.params)  # gathers expert shards from every device of a mesh
        return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf, np.float32)
                for path, leaf in jax.tree_util.tree_flatten_with_path(host)[0]}

    def describe(self) -> dict[str, Any]:
        model = self.spec.model
        platform = self.devices[0].platform
        return {
            "framework": "jax",
            "version": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "flax": _version("flax"),
            "optax": _version("optax"),
            "backend": platform,
            "devices": [{"kind": d.device_kind, "platform": d.platform, "id": d.id, "process": d.process_index}
                        for d in self.devices],
            "mesh": None if self.mesh_shape is None else {"data": self.mesh_shape.data,
                                                          "expert": self.mesh_shape.expert},
            "processes": jax.process_count(),
            "steps_per_dispatch": self.k,
            "attention_implementation": attention_implementation(model.attention, model.dtype, platform),
            "precision": precision_of(model),
            **self._routing,
        }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
