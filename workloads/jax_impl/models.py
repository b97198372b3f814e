"""Decoder-only pre-LN Transformer LM; with `num_experts > 0` every other FFN is a Switch layer.

Read top to bottom: parameter counting on a built tree, rotary positions, the blocks, the model. The config
and the FLOP accounting are framework-free (workloads/specs.py, workloads/flops.py).

The same modules decode with a key/value cache (workloads/jax_impl/decode.py): given `cache`, attention writes
this call's keys and values at positions start.. and attends over the cache. Without one, the full forward is
what it always was, with the same parameter tree.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from workloads.jax_impl.switch import SwitchFFN
from workloads.specs import ModelConfig, attention_implementation

__all__ = ["KVCache", "TransformerLM", "count_params", "init_cache"]


def count_params(params) -> dict[str, int]:
    """Total parameters, and those a single token activates (one expert per Switch layer)."""
    total = sum(x.size for x in jax.tree_util.tree_leaves(params))
    expert = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        names = [getattr(p, "key", "") for p in path]
        if any(str(n).startswith("switch") for n in names) and names[-1] in ("w_in", "b_in", "w_out", "b_out"):
            expert += leaf.size
    num_experts = max(1, _experts_in(params))
    activated = total - expert + expert // num_experts
    return {"total": int(total), "activated": int(activated), "expert": int(expert)}


def _experts_in(params) -> int:
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if getattr(path[-1], "key", "") == "w_in":
            return int(leaf.shape[0])
    return 1


# One (keys, values) pair per layer, each [batch, cache length, heads, head_dim].
KVCache = tuple[tuple[jax.Array, jax.Array], ...]


def init_cache(cfg: ModelConfig, batch: int, length: int, dtype: Any = None) -> KVCache:
    """An empty cache of `length` positions; keys and values in the model dtype unless `dtype` says otherwise."""
    shape = (batch, length, cfg.num_heads, cfg.d_model // cfg.num_heads)
    dtype = jnp.dtype(dtype or cfg.dtype)
    return tuple((jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)) for _ in range(cfg.num_layers))


def rotary(x: jax.Array, offset: int | jax.Array = 0) -> jax.Array:
    """Rotary position embedding (Su et al. 2021) on [batch, length, heads, head_dim], positions offset..; the
    offset may be traced (a decode step's position).

    Why rotary rather than learned absolute positions: the workloads' facts are keyed on the previous
    token, and with rotary a "look one back" head is one relative pattern, learned in a few hundred steps;
    with absolute positions a small model spends thousands of steps on it (measured: 2-layer d=32 model
    on the default corpus plateaued at the bigram loss for ~2,500 steps).
    """
    length, dim = x.shape[1], x.shape[-1]
    half = dim // 2
    freq = 1.0 / (10_000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
    # Adding a zero offset is exact: the full forward's angles are bit for bit what they were without one.
    positions = jnp.arange(length, dtype=jnp.float32) + jnp.asarray(offset, jnp.float32)
    angle = positions[:, None] * freq[None, :]
    cos, sin = jnp.cos(angle)[None, :, None, :], jnp.sin(angle)[None, :, None, :]
    x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
    out = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.astype(x.dtype)


class CausalSelfAttention(nn.Module):
    num_heads: int
    dtype: jnp.dtype
    kind: str = "plain"

    @nn.compact
    def __call__(self, x: jax.Array, cache: tuple[jax.Array, jax.Array] | None = None,
                 start: int | jax.Array = 0) -> Any:
        """[batch, length, d] -> [batch, length, d]; given `cache`, also the cache with this call's keys and
        values written at positions start..start+length-1: (out, (k_cache, v_cache))."""
        batch, length, d_model = x.shape
        head_dim = d_model // self.num_heads
        qkv = nn.Dense(3 * d_model, use_bias=False, dtype=self.dtype, name="qkv")(x)
        q, k, v = jnp.split(qkv.reshape(batch, length, 3 * self.num_heads, head_dim), 3, axis=2)
        q, k = rotary(q, start), rotary(k, start)
        out_proj = nn.Dense(d_model, use_bias=False, dtype=self.dtype, name="out")
        if cache is not None:
            out, cache = _cached_attention(q, k, v, cache, start, self.dtype)
            return out_proj(out.reshape(batch, length, d_model)), cache
        if self.kind == "fused":
            impl = attention_implementation("fused", jnp.dtype(self.dtype).name, jax.default_backend())
            out = jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn" if impl == "cudnn"
                                               else "xla")
        else:
            scores = jnp.einsum("blhd,bmhd->bhlm", q, k).astype(jnp.float32) / jnp.sqrt(head_dim)
            causal = jnp.tril(jnp.ones((length, length), bool))
            weights = jax.nn.softmax(jnp.where(causal, scores, -1e9), axis=-1).astype(self.dtype)
            out = jnp.einsum("bhlm,bmhd->blhd", weights, v)
        return out_proj(out.reshape(batch, length, d_model))


def _cached_attention(q: jax.Array, k: jax.Array, v: jax.Array, cache: tuple[jax.Array, jax.Array],
                      start: int | jax.Array, dtype: jnp.dtype) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """The plain path over a cache of M positions: query i (at start + i) sees keys 0..start + i. Positions not
    written yet score -1e9, whose softmax weight is exactly 0 in float32, so a prefix agrees with the full
    forward to rounding. Fused attention has no cache form here; decoding uses this path whatever `kind`."""
    k_cache, v_cache = cache
    at = (0, start, 0, 0)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), at)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), at)
    length, cache_len, head_dim = q.shape[1], k_cache.shape[1], q.shape[-1]
    scores = jnp.einsum("blhd,bmhd->bhlm", q, k_cache.astype(q.dtype)).astype(jnp.float32) / jnp.sqrt(head_dim)
    visible = jnp.arange(cache_len)[None, :] <= start + jnp.arange(length)[:, None]
    weights = jax.nn.softmax(jnp.where(visible, scores, -1e9), axis=-1).astype(dtype)
    return jnp.einsum("bhlm,bmhd->blhd", weights, v_cache.astype(dtype)), (k_cache, v_cache)


class DenseFFN(nn.Module):
    d_ff: int
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        d_model = x.shape[-1]
        h = nn.gelu(nn.Dense(self.d_ff, dtype=self.dtype, name="w_in")(x))
        return nn.Dense(d_model, dtype=self.dtype, name="w_out")(h)


class Block(nn.Module):
    cfg: ModelConfig
    layer: int
    mesh: Any = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, cache: tuple[jax.Array, jax.Array] | None = None,
                 start: int | jax.Array = 0) -> Any:
        cfg = self.cfg
        dtype = jnp.dtype(cfg.dtype)
        attn = CausalSelfAttention(cfg.num_heads, dtype, cfg.attention, name="attn")
        h = nn.LayerNorm(dtype=dtype, name="ln_attn")(x)
        if cache is None:
            x = x + attn(h)
        else:
            a, cache = attn(h, cache, start)
            x = x + a
        h = nn.LayerNorm(dtype=dtype, name="ln_ffn")(x)
        if cfg.is_switch_layer(self.layer):
            ffn = SwitchFFN(
                num_experts=cfg.num_experts,
                d_ff=cfg.d_ff,
                capacity_factor_train=cfg.capacity_factor_train,
                capacity_factor_eval=cfg.capacity_factor_eval,
                balance_coef=cfg.balance_coef,
                z_loss_coef=cfg.z_loss_coef,
                expert_init_scale=cfg.expert_init_scale,
                dtype=dtype,
                group_sequences=cfg.group_sequences,
                routing=cfg.routing,
                mesh=self.mesh,
                name="switch_ffn",
            )
        else:
            ffn = DenseFFN(cfg.d_ff, dtype, name="ffn")
        x = x + ffn(h, train)
        return x if cache is None else (x, cache)


class TransformerLM(nn.Module):
    cfg: ModelConfig
    mesh: Any = None  # a jax.sharding.Mesh (data, expert) for the Switch layers' shard_map; None: one device

    @nn.compact
    def __call__(self, tokens: jax.Array, train: bool = False, cache: KVCache | None = None,
                 start: int | jax.Array = 0) -> Any:
        """Logits [batch, length, vocab] for `tokens` [batch, length]. Given `cache` (init_cache), the tokens
        sit at positions start.. and the call returns (logits, the cache with their keys and values)."""
        cfg = self.cfg
        dtype = jnp.dtype(cfg.dtype)
        embed = nn.Embed(cfg.vocab_size, cfg.d_model, name="embed")
        x = embed(tokens).astype(dtype)
        new_cache = []
        for i in range(cfg.num_layers):
            block = Block(cfg, i, self.mesh, name=f"block_{i}")
            if cache is None:
                x = block(x, train)
            else:
                x, layer_cache = block(x, train, cache[i], start)
                new_cache.append(layer_cache)
        x = nn.LayerNorm(dtype=dtype, name="ln_final")(x)
        # Tied input/output embedding: keeps the vocabulary's parameters out of the capacity comparison.
        # The product runs in the model dtype and accumulates into float32 logits, so that the softmax and
        # the loss are float32 whatever the matmul precision.
        logits = jnp.dot(x, embed.embedding.T.astype(dtype), preferred_element_type=jnp.float32)
        return logits if cache is None else (logits, tuple(new_cache))
