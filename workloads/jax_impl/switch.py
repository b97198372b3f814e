"""Switch layer (Fedus et al. 2021): top-1 routing to one of E feed-forward experts, with a capacity limit.

Dispatch is scatter/gather into an [E * capacity + 1] buffer (the extra row swallows dropped tokens), so
its cost is linear in the number of tokens: the one-hot dispatch einsum is quadratic in tokens per group
and measured ~3x slower than a dense step on CPU (see shared notes, MoE probes).

Losses, as in the paper and flaxformer:
- load balancing: alpha * E * sum_i f_i * P_i, f_i = fraction of tokens whose top-1 choice is expert i,
  P_i = mean router probability of expert i. Equals alpha when routing is perfectly uniform.
- router z-loss (ST-MoE, Zoph et al. 2022): mean(logsumexp(logits)^2), keeps router logits small.
The router runs in float32 whatever the model dtype: bf16 softmax over experts flips argmax choices.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from workloads.spec import expert_capacity

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
    fraction_routed = jnp.mean(onehot.astype(jnp.float32), axis=0)
    mean_prob = jnp.mean(probs, axis=0)
    balance = num_experts * jnp.sum(fraction_routed * mean_prob)
    z = jnp.mean(jax.nn.logsumexp(router_logits, axis=-1) ** 2)
    return {
        "expert": expert,
        "gate": gate,
        "keep": keep,
        "slot": slot,
        "load": fraction_routed,
        "balance_loss": balance,
        "z_loss": z,
    }


class SwitchFFN(nn.Module):
    """Drop-in replacement for a dense FFN: E experts, each shaped like the dense FFN (d -> d_ff -> d)."""

    num_experts: int
    d_ff: int
    capacity_factor_train: float = 1.25
    capacity_factor_eval: float = 2.0
    balance_coef: float = 0.01
    z_loss_coef: float = 1e-3
    expert_init_scale: float = 0.1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        batch, length, d_model = x.shape
        e, f = self.num_experts, self.d_ff
        tokens = x.reshape(-1, d_model)
        num_tokens = tokens.shape[0]
        cf = self.capacity_factor_train if train else self.capacity_factor_eval
        capacity = expert_capacity(num_tokens, e, cf)

        # Switch's recipe: initialise at 0.1x the usual fan-in scale for stable early routing.
        init = nn.initializers.variance_scaling(self.expert_init_scale, "fan_in", "truncated_normal")
        router_w = self.param("router", init, (d_model, e), jnp.float32)
        logits = tokens.astype(jnp.float32) @ router_w
        r = route_top1(logits, capacity)

        buffer = jnp.zeros((e * capacity + 1, d_model), self.dtype)
        buffer = buffer.at[r["slot"]].set(tokens.astype(self.dtype), mode="promise_in_bounds")
        expert_in = buffer[:-1].reshape(e, capacity, d_model)

        w_in = self.param("w_in", _batched(init), (e, d_model, f), jnp.float32)
        b_in = self.param("b_in", nn.initializers.zeros, (e, 1, f), jnp.float32)
        w_out = self.param("w_out", _batched(init), (e, f, d_model), jnp.float32)
        b_out = self.param("b_out", nn.initializers.zeros, (e, 1, d_model), jnp.float32)
        h = nn.gelu(jnp.einsum("ecd,edf->ecf", expert_in, w_in.astype(self.dtype)) + b_in.astype(self.dtype))
        out = jnp.einsum("ecf,efd->ecd", h, w_out.astype(self.dtype)) + b_out.astype(self.dtype)

        out = jnp.concatenate([out.reshape(e * capacity, d_model), jnp.zeros((1, d_model), self.dtype)])
        # Dropped tokens gather the zero row: the layer adds nothing and the residual carries them.
        y = out.at[r["slot"]].get(mode="promise_in_bounds") * (r["gate"] * r["keep"]).astype(self.dtype)[:, None]

        aux = self.balance_coef * r["balance_loss"] + self.z_loss_coef * r["z_loss"]
        self.sow("losses", "aux_loss", aux)
        self.sow("metrics", "dropped_fraction", 1.0 - jnp.mean(r["keep"].astype(jnp.float32)))
        self.sow("metrics", "expert_load", r["load"])
        return y.reshape(batch, length, d_model)


def _batched(init):
    """Apply a fan-in initialiser to each expert's [fan_in, fan_out] matrix, not to the stacked tensor."""

    def init_fn(key, shape, dtype=jnp.float32):
        keys = jax.random.split(key, shape[0])
        return jax.vmap(lambda k: init(k, shape[1:], dtype))(keys)

    return init_fn
