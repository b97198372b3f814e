"""Switch layer (Fedus et al. 2021): top-1 routing to one of E feed-forward experts, by one of two routings.

- "capacity", the paper's: each routing group gives every expert capacity_factor x tokens / E slots; tokens past
  an expert's slots are dropped (the residual carries them). Dispatch is scatter/gather into an
  [E * capacity + 1] buffer (the extra row swallows dropped tokens), and every slot is computed whether a token
  fills it or not. A token's output depends on its group-mates: who came first takes the slot.
- "dropless", the field's at serving (MaxText, vLLM, MegaBlocks): no capacity, nothing dropped, each token through
  its expert alone (workloads/jax_impl/dropless.py): the executed work follows the tokens.

Losses, as in the paper and flaxformer:
- load balancing: alpha * E * sum_i f_i * P_i, f_i = fraction of tokens whose top-1 choice is expert i,
  P_i = mean router probability of expert i. Equals alpha when routing is perfectly uniform.
- router z-loss (ST-MoE, Zoph et al. 2022): mean(logsumexp(logits)^2), keeps router logits small.
The router runs in float32 whatever the model dtype: bf16 softmax over experts flips argmax choices.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from workloads.flops import expert_capacity
from workloads.jax_impl.dropless import dropless_ffn, route_dropless

__all__ = ["SwitchFFN", "expert_capacity", "route_top1"]


def route_top1(router_logits: jax.Array, capacity: int) -> dict[str, jax.Array]:
    """Top-1 routing decisions for [T, E] float32 logits, tokens taking slots in order of position."""
    num_experts = router_logits.shape[-1]
    probs = jax.nn.softmax(router_logits, axis=-1)
    expert = jnp.argmax(probs, axis=-1)
    gate = jnp.take_along_axis(probs, expert[:, None], axis=-1)[:, 0]
    onehot = jax.nn.one_hot(expert, num_experts, dtype=jnp.int32)
    # Position of each token in its expert's queue: a running count, O(T * E), never O(T^2).
    running = jax.lax.associative_scan(jnp.add, onehot, axis=0)  # cumsum in O(T log T); XLA's is windowed
    position = jnp.sum((running - 1) * onehot, axis=-1)
    keep = position < capacity
    slot = jnp.where(keep, expert * capacity + position, num_experts * capacity)
    return {"expert": expert, "gate": gate, "keep": keep, "slot": slot,
            **router_stats(router_logits, probs, onehot.astype(jnp.float32))}


def router_stats(logits: jax.Array, probs: jax.Array, onehot: jax.Array) -> dict[str, jax.Array]:
    """The router's losses and load over one routing group of [T, E] logits, probabilities and top-1 one-hots."""
    fraction_routed = jnp.mean(onehot, axis=0)
    balance = logits.shape[-1] * jnp.sum(fraction_routed * jnp.mean(probs, axis=0))
    z = jnp.mean(jax.nn.logsumexp(logits, axis=-1) ** 2)
    return {"load": fraction_routed, "balance_loss": balance, "z_loss": z}


# Mesh axes (harness run --mesh data=D,expert=E): the batch is split over both, the experts over "expert".
DATA, EXPERT = "data", "expert"
BATCH_AXES = (DATA, EXPERT)
STATS = ("balance_loss", "z_loss", "dropped_fraction", "load")


class SwitchFFN(nn.Module):
    """Drop-in replacement for a dense FFN: E experts, each shaped like the dense FFN (d -> d_ff -> d).

    Tokens are routed in groups of `group_sequences` whole sequences (0: the batch is one group), each group with
    its own capacity and its own balance loss (dropless routing has no capacity but keeps the groups for the
    losses). Given a mesh, the layer runs under shard_map: every device routes its own groups; under capacity
    routing it sends each expert's slots to the device that holds the expert (all-to-all over "expert"), applies
    its local experts and sends the results back: the t5x / flaxformer pattern. Dropless routing keeps every
    expert on every device (data parallel; workloads/mesh.py refuses an expert axis). Groups fix the function, so
    any mesh computes what one device computes.
    """

    num_experts: int
    d_ff: int
    capacity_factor_train: float = 1.25
    capacity_factor_eval: float = 2.0
    balance_coef: float = 0.01
    z_loss_coef: float = 1e-3
    expert_init_scale: float = 0.1
    dtype: jnp.dtype = jnp.float32
    group_sequences: int = 0
    routing: str = "capacity"  # or "dropless" (workloads/routing.py)
    mesh: Any = None  # a jax.sharding.Mesh with axes (data, expert), or None for one device

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        d_model, e, f = x.shape[-1], self.num_experts, self.d_ff
        # Switch's recipe: initialise at 0.1x the usual fan-in scale for stable early routing.
        init = nn.initializers.variance_scaling(self.expert_init_scale, "fan_in", "truncated_normal")
        weights = (
            self.param("router", init, (d_model, e), jnp.float32),
            self.param("w_in", _batched(init), (e, d_model, f), jnp.float32),
            self.param("b_in", nn.initializers.zeros, (e, 1, f), jnp.float32),
            self.param("w_out", _batched(init), (e, f, d_model), jnp.float32),
            self.param("b_out", nn.initializers.zeros, (e, 1, d_model), jnp.float32),
        )
        expert_devices = 1 if self.mesh is None else self.mesh.shape[EXPERT]
        common = dict(group_sequences=self.group_sequences or x.shape[0], dtype=self.dtype,
                      mesh_axes=None if self.mesh is None else BATCH_AXES)
        if self.routing == "dropless":
            if expert_devices > 1:  # workloads/mesh.py refuses such a mesh before anything is built
                raise ValueError("dropless routing keeps every expert on every device: no expert mesh axis")
            layer = functools.partial(_dropless_layer, **common)
        else:
            layer = functools.partial(
                _switch_layer, **common, expert_devices=expert_devices,
                capacity_factor=self.capacity_factor_train if train else self.capacity_factor_eval)
        if self.mesh is None:
            y, stats = layer(x, *weights)
        else:
            experts = P(EXPERT)
            y, stats = jax.shard_map(layer, mesh=self.mesh, in_specs=(P(BATCH_AXES), P(), *[experts] * 4),
                                     out_specs=(P(BATCH_AXES), {**dict.fromkeys(STATS, P()),
                                                                "expert": P(BATCH_AXES)}))(x, *weights)
        aux = self.balance_coef * stats["balance_loss"] + self.z_loss_coef * stats["z_loss"]
        self.sow("losses", "aux_loss", aux)
        self.sow("metrics", "dropped_fraction", stats["dropped_fraction"])
        self.sow("metrics", "expert_load", stats["load"])
        # Each token's expert, [groups, tokens per group]: kept only when "intermediates" is mutable (tests).
        self.sow("intermediates", "expert", stats["expert"])
        return y


def _switch_layer(x: jax.Array, router_w: jax.Array, w_in: jax.Array, b_in: jax.Array, w_out: jax.Array,
                  b_out: jax.Array, *, group_sequences: int, capacity_factor: float, dtype: jnp.dtype,
                  mesh_axes: tuple[str, ...] | None, expert_devices: int) -> tuple[jax.Array, dict]:
    """The layer on the sequences this device holds: [b, length, d] -> [b, length, d], and routing stats
    (means over every group of the whole batch)."""
    batch, length, d_model = x.shape
    if batch % group_sequences:
        raise ValueError(f"a batch of {batch} sequences does not split into routing groups of {group_sequences}")
    groups, e = batch // group_sequences, router_w.shape[1]
    tokens = x.reshape(groups, group_sequences * length, d_model)  # [g, T, d]
    capacity = expert_capacity(tokens.shape[1], e, capacity_factor)
    logits = tokens.astype(jnp.float32) @ router_w  # the router in float32 whatever the model dtype
    if groups == 1:
        r = jax.tree_util.tree_map(lambda v: v[None], route_top1(logits[0], capacity))
    else:
        r = jax.vmap(route_top1, in_axes=(0, None))(logits, capacity)

    rows = jnp.arange(groups)[:, None]
    buffer = jnp.zeros((groups, e * capacity + 1, d_model), dtype)
    buffer = buffer.at[rows, r["slot"]].set(tokens.astype(dtype), mode="promise_in_bounds")
    expert_in = buffer[:, :-1].reshape(groups, e, capacity, d_model)
    if expert_devices > 1:
        # Each device keeps the slots of its own experts, from every device along "expert":
        # [g, E, C, d] -> [devices * g, E / devices, C, d].
        expert_in = jax.lax.all_to_all(expert_in, EXPERT, split_axis=1, concat_axis=0, tiled=True)
    out = _experts(expert_in, w_in, b_in, w_out, b_out, dtype)
    if expert_devices > 1:
        out = jax.lax.all_to_all(out, EXPERT, split_axis=0, concat_axis=1, tiled=True)  # back to [g, E, C, d]

    out = jnp.concatenate([out.reshape(groups, e * capacity, d_model), jnp.zeros((groups, 1, d_model), dtype)],
                          axis=1)
    # Dropped tokens gather the zero row: the layer adds nothing and the residual carries them.
    y = out.at[rows, r["slot"]].get(mode="promise_in_bounds") * (r["gate"] * r["keep"]).astype(dtype)[..., None]
    stats = {"balance_loss": jnp.mean(r["balance_loss"]), "z_loss": jnp.mean(r["z_loss"]),
             "dropped_fraction": 1.0 - jnp.mean(r["keep"].astype(jnp.float32)), "load": jnp.mean(r["load"], axis=0)}
    if mesh_axes is not None:
        stats = jax.lax.pmean(stats, mesh_axes)  # every device holds as many groups: the mean of means
    return y.reshape(batch, length, d_model), stats | {"expert": r["expert"]}


def _dropless_layer(x: jax.Array, router_w: jax.Array, w_in: jax.Array, b_in: jax.Array, w_out: jax.Array,
                    b_out: jax.Array, *, group_sequences: int, dtype: jnp.dtype,
                    mesh_axes: tuple[str, ...] | None) -> tuple[jax.Array, dict]:
    """The dropless layer on the sequences this device holds: every token through its expert, nothing dropped;
    the router's losses per routing group as for capacity routing."""
    batch, length, d_model = x.shape
    if batch % group_sequences:
        raise ValueError(f"a batch of {batch} sequences does not split into routing groups of {group_sequences}")
    groups, e = batch // group_sequences, router_w.shape[1]
    tokens = x.reshape(batch * length, d_model)
    logits = tokens.astype(jnp.float32) @ router_w  # the router in float32 whatever the model dtype
    r = route_dropless(logits)
    y = dropless_ffn(tokens, r.expert, r.gate, w_in, b_in, w_out, b_out, dtype)
    per_group = jax.vmap(router_stats)(logits.reshape(groups, -1, e),
                                       jax.nn.softmax(logits, axis=-1).reshape(groups, -1, e),
                                       jax.nn.one_hot(r.expert, e, dtype=jnp.float32).reshape(groups, -1, e))
    stats = {"balance_loss": jnp.mean(per_group["balance_loss"]), "z_loss": jnp.mean(per_group["z_loss"]),
             "dropped_fraction": jnp.zeros((), jnp.float32), "load": jnp.mean(per_group["load"], axis=0)}
    if mesh_axes is not None:
        stats = jax.lax.pmean(stats, mesh_axes)
    return y.reshape(batch, length, d_model), stats | {"expert": r.expert.reshape(groups, -1)}


def _experts(expert_in: jax.Array, w_in: jax.Array, b_in: jax.Array, w_out: jax.Array, b_out: jax.Array,
             dtype: jnp.dtype) -> jax.Array:
    """Each expert's FFN on its slots: [g, E, C, d] -> [g, E, C, d], the groups folded into the slots."""
    groups, e, capacity, d_model = expert_in.shape
    slots = expert_in.transpose(1, 0, 2, 3).reshape(e, groups * capacity, d_model)
    h = nn.gelu(jnp.einsum("ecd,edf->ecf", slots, w_in.astype(dtype)) + b_in.astype(dtype))
    out = jnp.einsum("ecf,efd->ecd", h, w_out.astype(dtype)) + b_out.astype(dtype)
    return out.reshape(e, groups, capacity, d_model).transpose(1, 0, 2, 3)


def _batched(init):
    """Apply a fan-in initialiser to each expert's [fan_in, fan_out] matrix, not to the stacked tensor."""

    def init_fn(key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, shape[0])
        return jax.vmap(lambda k: init(k, shape[1:], dtype))(keys)

    return init_fn
