"""The decoder-only LM of workloads/specs.py in TensorFlow, written as functions over a dict of variables.

Why tf.Module and functions, not Keras layers: the variables are named exactly as the Flax parameter tree
("block_1/switch_ffn/w_in"), so the JAX initial weights load name for name, and the computation reads top to
bottom beside its JAX twin (workloads/jax_impl/models.py, switch.py), op for op: the same pre-LN blocks,
rotary attention, tied embeddings, and Switch layers with top-1 routing in float32, capacity per routing
group, scatter/gather dispatch and the same auxiliary losses.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from workloads.flops import expert_capacity
from workloads.specs import ModelConfig

LAYER_NORM_EPS = 1e-6  # Flax's default


class TransformerLM(tf.Module):
    def __init__(self, cfg: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        super().__init__(name="transformer_lm")
        self.cfg = cfg
        self.dtype = tf.bfloat16 if cfg.dtype == "bfloat16" else tf.float32
        self.params = {k: tf.Variable(v, name=k.replace("/", "."), dtype=tf.float32) for k, v in weights.items()}

    def __call__(self, tokens: tf.Tensor, train: bool) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """[batch, length] int32 -> float32 logits [batch, length, vocab], and the Switch layers' statistics."""
        cfg, p = self.cfg, self.params
        embedding = p["embed/embedding"]
        x = tf.cast(tf.gather(embedding, tokens), self.dtype)
        stats = []
        for i in range(cfg.num_layers):
            name = f"block_{i}"
            h = _layer_norm(x, p, f"{name}/ln_attn", self.dtype)
            x = x + _attention(h, p, f"{name}/attn", cfg.num_heads, self.dtype)
            h = _layer_norm(x, p, f"{name}/ln_ffn", self.dtype)
            if cfg.is_switch_layer(i):
                y, s = _switch(h, p, f"{name}/switch_ffn", cfg, train, self.dtype)
                stats.append(s)
            else:
                y = _dense_ffn(h, p, f"{name}/ffn", self.dtype)
            x = x + y
        x = _layer_norm(x, p, "ln_final", self.dtype)
        # Tied output projection in the model dtype, accumulated into float32 logits (as in the JAX model).
        logits = _matmul(x, tf.transpose(tf.cast(embedding, self.dtype)))
        return tf.cast(logits, tf.float32), _combine(stats, cfg)


def _layer_norm(x: tf.Tensor, p: dict, name: str, dtype: tf.DType) -> tf.Tensor:
    # Flax's fast variance: E[x^2] - E[x]^2, floored at 0, statistics in float32.
    x32 = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
    var = tf.maximum(0.0, tf.reduce_mean(x32 * x32, axis=-1, keepdims=True) - mean * mean)
    y = (x32 - mean) * (tf.math.rsqrt(var + LAYER_NORM_EPS) * p[f"{name}/scale"]) + p[f"{name}/bias"]
    return tf.cast(y, dtype)


def _matmul(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """[..., i] @ [i, o] as one 2-D matmul. TensorFlow differentiates a broadcasting einsum ("...i,io->...o")
    through per-position outer products summed afterwards: measured 16x slower for a whole dense-small train
    step on a CPU."""
    shape = tf.shape(x)
    y = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), w)
    return tf.reshape(y, tf.concat([shape[:-1], [w.shape[-1]]], axis=0))


def _dense(x: tf.Tensor, p: dict, name: str, dtype: tf.DType, bias: bool = True) -> tf.Tensor:
    y = _matmul(x, tf.cast(p[f"{name}/kernel"], dtype))
    return y + tf.cast(p[f"{name}/bias"], dtype) if bias else y


def rotary(x: tf.Tensor) -> tf.Tensor:
    """Rotary position embedding on [batch, length, heads, head_dim] (as the JAX model's `rotary`)."""
    length, dim = tf.shape(x)[1], x.shape[-1]
    half = dim // 2
    freq = 1.0 / (10_000.0 ** (tf.range(half, dtype=tf.float32) / half))
    angle = tf.cast(tf.range(length), tf.float32)[:, None] * freq[None, :]
    cos, sin = tf.cos(angle)[None, :, None, :], tf.sin(angle)[None, :, None, :]
    x1, x2 = tf.cast(x[..., :half], tf.float32), tf.cast(x[..., half:], tf.float32)
    return tf.cast(tf.concat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1), x.dtype)


def _attention(x: tf.Tensor, p: dict, name: str, num_heads: int, dtype: tf.DType) -> tf.Tensor:
    batch, length, d_model = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    head_dim = d_model // num_heads
    qkv = tf.reshape(_dense(x, p, f"{name}/qkv", dtype, bias=False), [batch, length, 3 * num_heads, head_dim])
    q, k, v = tf.split(qkv, 3, axis=2)
    q, k = rotary(q), rotary(k)
    scores = tf.cast(tf.einsum("blhd,bmhd->bhlm", q, k), tf.float32) / math.sqrt(head_dim)
    causal = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
    weights = tf.cast(tf.nn.softmax(tf.where(causal, scores, -1e9), axis=-1), dtype)
    out = tf.reshape(tf.einsum("bhlm,bmhd->blhd", weights, v), [batch, length, d_model])
    return _dense(out, p, f"{name}/out", dtype, bias=False)


def _dense_ffn(x: tf.Tensor, p: dict, name: str, dtype: tf.DType) -> tf.Tensor:
    return _dense(tf.nn.gelu(_dense(x, p, f"{name}/w_in", dtype), approximate=True), p, f"{name}/w_out", dtype)


def route_top1(logits: tf.Tensor, capacity: int) -> dict[str, tf.Tensor]:
    """Top-1 routing per group for [groups, tokens, experts] float32 logits; slots taken in token order."""
    experts = logits.shape[-1]
    probs = tf.nn.softmax(logits, axis=-1)
    expert = tf.argmax(probs, axis=-1, output_type=tf.int32)
    gate = tf.gather(probs, expert, batch_dims=2)
    onehot = tf.one_hot(expert, experts, dtype=tf.int32)
    position = tf.reduce_sum((tf.cumsum(onehot, axis=1) - 1) * onehot, axis=-1)  # place in its expert's queue
    keep = position < capacity
    slot = tf.where(keep, expert * capacity + position, experts * capacity)
    load = tf.reduce_mean(tf.cast(onehot, tf.float32), axis=1)  # [groups, experts]
    balance = experts * tf.reduce_sum(load * tf.reduce_mean(probs, axis=1), axis=-1)
    z = tf.reduce_mean(tf.square(tf.reduce_logsumexp(logits, axis=-1)), axis=1)
    return {"expert": expert, "gate": gate, "keep": keep, "slot": slot, "load": load, "balance_loss": balance,
            "z_loss": z}


def _switch(x: tf.Tensor, p: dict, name: str, cfg: ModelConfig, train: bool,
            dtype: tf.DType) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    batch, length, d_model = x.shape
    group = cfg.group_sequences or batch
    groups, e = batch // group, cfg.num_experts
    tokens = tf.reshape(x, [groups, group * length, d_model])
    capacity = expert_capacity(group * length, e, cfg.capacity_factor_train if train else cfg.capacity_factor_eval)
    r = route_top1(_matmul(tf.cast(tokens, tf.float32), p[f"{name}/router"]), capacity)

    rows = tf.broadcast_to(tf.range(groups)[:, None], tf.shape(r["slot"]))
    where = tf.stack([rows, r["slot"]], axis=-1)  # [groups, tokens, 2]
    buffer = tf.tensor_scatter_nd_update(tf.zeros([groups, e * capacity + 1, d_model], dtype), where, tokens)
    slots = tf.reshape(tf.transpose(tf.reshape(buffer[:, :-1], [groups, e, capacity, d_model]), [1, 0, 2, 3]),
                       [e, groups * capacity, d_model])
    h = tf.nn.gelu(tf.einsum("ecd,edf->ecf", slots, tf.cast(p[f"{name}/w_in"], dtype))
                   + tf.cast(p[f"{name}/b_in"], dtype), approximate=True)
    out = tf.einsum("ecf,efd->ecd", h, tf.cast(p[f"{name}/w_out"], dtype)) + tf.cast(p[f"{name}/b_out"], dtype)
    out = tf.reshape(tf.transpose(tf.reshape(out, [e, groups, capacity, d_model]), [1, 0, 2, 3]),
                     [groups, e * capacity, d_model])
    out = tf.concat([out, tf.zeros([groups, 1, d_model], dtype)], axis=1)
    # Dropped tokens gather the zero row: the layer adds nothing and the residual carries them.
    y = tf.gather_nd(out, where) * tf.cast(r["gate"] * tf.cast(r["keep"], tf.float32), dtype)[..., None]
    stats = {"aux_loss": cfg.balance_coef * tf.reduce_mean(r["balance_loss"]) + cfg.z_loss_coef *
             tf.reduce_mean(r["z_loss"]), "dropped_fraction": 1.0 - tf.reduce_mean(tf.cast(r["keep"], tf.float32)),
             "expert_load": tf.reduce_mean(r["load"], axis=0), "expert": r["expert"]}
    return tf.reshape(y, [batch, length, d_model]), stats


def _combine(stats: list[dict[str, tf.Tensor]], cfg: ModelConfig) -> dict[str, tf.Tensor]:
    if not stats:
        return {"aux_loss": tf.zeros([])}
    return {"aux_loss": tf.add_n([s["aux_loss"] for s in stats]),
            "dropped_fraction": tf.reduce_mean(tf.stack([s["dropped_fraction"] for s in stats])),
            "expert_load": tf.stack([s["expert_load"] for s in stats]),
            "expert": tf.stack([s["expert"] for s in stats])}
