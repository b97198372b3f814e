"""Arithmetic on a model config: matmul FLOPs per token, parameter counts, expert capacity.

MFU, FLOPs per joule and the Switch-versus-dense comparison at matched activated FLOPs rest on these numbers;
tests hold them to XLA's own count of the compiled step.
"""

from __future__ import annotations

import math

from workloads.specs import ModelConfig


def expert_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """capacity = capacity_factor * tokens / experts, rounded up, at least one slot."""
    return max(1, math.ceil(capacity_factor * num_tokens / num_experts))


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Matmul FLOPs of one forward pass per token (2 per multiply-add), activated experts only.

    Attention scores count the full L x L product, as the PaLM / MLPerf convention does. The router's
    d x E matmul is counted; it is the only FLOP difference between Switch and dense at equal shapes.
    """
    d, f = cfg.d_model, cfg.d_ff
    per_layer = 2 * 4 * d * d + 2 * 2 * seq_len * d + 2 * 2 * d * f
    router = 2 * d * cfg.num_experts * cfg.num_switch_layers
    logits = 2 * d * cfg.vocab_size
    return float(cfg.num_layers * per_layer + router + logits)


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward plus backward (twice the forward): the usual 3x."""
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Total parameters, those one token activates (one expert per Switch layer), and the experts' share.

    Counted from the architecture, so every framework's implementation is held to the same numbers.
    """
    d, f, e = cfg.d_model, cfg.d_ff, cfg.num_experts
    ffn = 2 * d * f + f + d  # w_in, b_in, w_out, b_out
    layer_norm = 2 * d
    per_layer = 4 * d * d + 2 * layer_norm  # qkv + out (no biases), two layer norms
    total = cfg.vocab_size * d + layer_norm  # tied embedding, final layer norm
    expert = 0
    for layer in range(cfg.num_layers):
        total += per_layer
        if cfg.is_switch_layer(layer):
            total += d * e + e * ffn  # router + experts
            expert += e * ffn
        else:
            total += ffn
    activated = total - expert + (expert // e if e else 0)
    return {"total": total, "activated": activated, "expert": expert}
