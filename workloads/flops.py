"""Arithmetic on a model config: matmul FLOPs per token, parameter counts, expert capacity.

Two counts of FLOPs: **activated**, what a token needs (its one expert; `forward_flops_per_token`), the PaLM /
MLPerf model FLOPs that MFU and the Switch-versus-dense comparison at matched computation rest on; and
**executed**, what a compiled call of a given shape computes (`executed_forward_flops`): every capacity slot
whether a token fills it or not, the dropless block path's padding, the counting sort's matmul. Tests hold both
to XLA's own count of the compiled computation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from workloads.routing import GroupedPlan, executed_expert_rows, grouped_plan
from workloads.specs import ModelConfig

# The dropless counting sort's running count is a [chunk x chunk] lower-triangular matmul per chunk of tokens
# (workloads/jax_impl/dropless.py `expert_positions`): executed work of the block and ragged paths.
POSITION_CHUNK = 64


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


class SwitchWork(NamedTuple):
    """What one Switch layer computes for one call on one device."""

    rows: int  # rows through an expert FFN: capacity slots, or tokens plus the block path's padding
    sort_rows: int  # tokens through the dropless counting sort's chunked matmul (padded to whole chunks)
    weight_blocks: int  # blocks whose gathered expert weights' gradients the backward sums by expert (one-hot matmul)


def switch_rows(cfg: ModelConfig, batch: int, length: int, train: bool, backend: str = "cpu",
                ragged: bool = False) -> SwitchWork:
    """What one Switch layer computes for [batch, length] tokens on one device. Capacity: every group's E x
    capacity slots. Dropless: one row a token, plus the block path's padding; the block and ragged paths also count
    tokens in chunks of POSITION_CHUNK rows; the gather and block paths gather expert weights a block."""
    tokens = batch * length
    if cfg.routing == "capacity":
        group = cfg.group_sequences or batch
        factor = cfg.capacity_factor_train if train else cfg.capacity_factor_eval
        slots = (batch // group) * cfg.num_experts * expert_capacity(group * length, cfg.num_experts, factor)
        return SwitchWork(slots, 0, 0)
    plan = dropless_plan(cfg, tokens, backend, ragged)
    rows = executed_expert_rows(tokens, cfg.num_experts, plan)
    sort_rows = 0 if plan.path == "gather" else -(-tokens // POSITION_CHUNK) * POSITION_CHUNK
    blocks = {"gather": tokens, "block": rows // plan.block}.get(plan.path, 0)
    return SwitchWork(rows, sort_rows, blocks)


def dropless_plan(cfg: ModelConfig, tokens: int, backend: str = "cpu", ragged: bool = False) -> GroupedPlan:
    """The grouped matmul a dropless Switch layer runs for `tokens` tokens a call (workloads/routing.py)."""
    return grouped_plan(tokens, cfg.num_experts, backend, ragged)


def executed_forward_flops(cfg: ModelConfig, batch: int, length: int, context: int | None = None, *,
                           train: bool = False, backend: str = "cpu", ragged: bool = False) -> float:
    """Matmul FLOPs one forward call over [batch, length] tokens executes on one device, attention scoring
    `context` positions a token (the sequence itself, or a key/value cache's length); logits at every position.

    The same terms as forward_flops_per_token, with the Switch layers' rows as compiled (switch_rows) in place of
    one expert a token."""
    d, f, e = cfg.d_model, cfg.d_ff, cfg.num_experts
    tokens = batch * length
    context = length if context is None else context
    flops = tokens * (cfg.num_layers * (2 * 4 * d * d + 2 * 2 * context * d) + 2 * d * cfg.vocab_size)
    for layer in range(cfg.num_layers):
        if cfg.is_switch_layer(layer):
            work = switch_rows(cfg, batch, length, train, backend, ragged)
            flops += tokens * 2 * d * e + work.rows * 2 * 2 * d * f + work.sort_rows * 2 * POSITION_CHUNK * e
        else:
            flops += tokens * 2 * 2 * d * f
    return float(flops)


def executed_train_flops_per_token(cfg: ModelConfig, batch: int, seq_len: int, devices: int = 1,
                                   backend: str = "cpu", ragged: bool = False) -> float:
    """Executed FLOPs of a training step per trained token: forward plus backward (3x), each device routing its
    share of the batch, and the dropless backward's sum of gathered expert-weight gradients by expert."""
    per_device = max(1, batch // devices)
    forward = executed_forward_flops(cfg, per_device, seq_len, train=True, backend=backend, ragged=ragged)
    expert_weights = 2 * cfg.d_model * cfg.d_ff + cfg.d_ff + cfg.d_model
    sums = 0
    if cfg.num_experts:
        work = switch_rows(cfg, per_device, seq_len, True, backend, ragged)
        sums = cfg.num_switch_layers * 2 * cfg.num_experts * work.weight_blocks * expert_weights
    return (3.0 * forward + sums) / (per_device * seq_len)
