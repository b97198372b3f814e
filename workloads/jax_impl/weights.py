"""The initial weights of a workload for a seed, as numpy arrays by parameter path ("block_1/attn/qkv/kernel").

They are the Flax initialisers' for the seed; every framework starts from them, so that runs in two
frameworks differ only by the framework. Computed on the CPU, so that a run in another framework does not
take a GPU's memory for JAX.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from workloads.specs import WorkloadSpec


def initial_weights(spec: WorkloadSpec, seed: int, example_batch: np.ndarray) -> dict[str, np.ndarray]:
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # JAX only initialises here: keep it off the GPU
    import jax
    import jax.numpy as jnp

    from workloads.jax_impl.models import TransformerLM

    with jax.default_device(jax.devices("cpu")[0]):
        params = jax.jit(lambda key, tokens: TransformerLM(spec.model).init(key, tokens, train=False)["params"])(
            jax.random.PRNGKey(seed), jnp.asarray(example_batch[:, :-1]))
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def weight_shapes(spec: WorkloadSpec) -> dict[str, tuple[int, ...]]:
    """Each parameter's shape by path, as spec's model declares them: traced abstractly (jax.eval_shape), nothing
    computed or compiled, so that weights can be checked against a model before a decoder is built."""
    import jax
    import jax.numpy as jnp

    from workloads.jax_impl.models import TransformerLM

    tokens = jax.ShapeDtypeStruct((max(1, spec.model.group_sequences), spec.seq_len), jnp.int32)
    params = jax.eval_shape(lambda key, t: TransformerLM(spec.model).init(key, t, train=False)["params"],
                            jax.random.PRNGKey(0), tokens)
    return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
