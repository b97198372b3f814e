"""How a Switch layer's experts are computed, as plain data: the routing (capacity or dropless) and, for dropless,
which grouped matmul runs for a given number of tokens a call. Framework-free: the FLOP accounting
(workloads/flops.py) and the JAX layer (workloads/jax_impl/dropless.py) read the same plan.

The thresholds are measurements (scripts/bench_switch_layer.py --paths on the 2-core CPU at switch-small's shape,
reference_results/cpu-2core/dropless/bench_switch_layer_small.txt), not guesses; on a GPU the ragged path is the
Pallas Triton grouped matmul where JAX has it (the GPU thresholds are the CPU's until a card measures them).
"""

from __future__ import annotations

from dataclasses import dataclass

ROUTINGS = ("capacity", "dropless")
PATHS = ("gather", "block", "ragged")

# Up to this many tokens a call the gather path runs: each token's expert weights gathered and a matrix-vector
# product, no sort. Measured against the block path at blocks of 2 and 4: gather 3.19x the dense FFN at 32 tokens
# against 3.44x, the block path ahead from 64 (3.03x against 4.29x).
GATHER_MAX_TOKENS = 32
# The block path pads each expert's segment to a multiple of `block` rows; the buffer holds the bound over every
# routing, T + E (block - 1) rows. The block grows with the tokens so that the padding bound stays near
# PADDING_BOUND of the tokens, between the limits (more rows a block: fewer weight gathers, more padding). Measured:
# the chosen block within 10 % of the fastest forced one from 64 to 2,048 tokens at switch-small's shape.
PADDING_BOUND = 0.25
MIN_BLOCK, MAX_BLOCK = 4, 128


@dataclass(frozen=True)
class GroupedPlan:
    """The grouped matmul a dropless Switch layer runs for one call: its path and, for the block path, the rows
    a block."""

    path: str  # one of PATHS
    block: int = 1

    def __str__(self) -> str:
        return f"block of {self.block}" if self.path == "block" else self.path


def block_size(tokens: int, num_experts: int) -> int:
    """The largest power of two b in [MIN_BLOCK, MAX_BLOCK] whose padding bound E (b - 1) is at most PADDING_BOUND
    of the tokens."""
    b = MIN_BLOCK
    while b * 2 <= MAX_BLOCK and num_experts * (b * 2 - 1) <= PADDING_BOUND * tokens:
        b *= 2
    return b


def block_rows(tokens: int, num_experts: int, block: int) -> int:
    """Rows of the block path's buffer: every expert's segment padded to a multiple of `block`, at most
    T + E (block - 1) rows whatever the routing, in whole blocks (and never more blocks than tokens + experts)."""
    blocks = min(-(-tokens // block) + num_experts - 1, (tokens + num_experts * (block - 1)) // block)
    return blocks * block


def grouped_plan(tokens: int, num_experts: int, backend: str, ragged: bool = False) -> GroupedPlan:
    """The grouped matmul for `tokens` tokens a call: gather for a few, else ragged where the Triton ragged_dot is
    on (`ragged`, GPU only), else block."""
    if tokens <= GATHER_MAX_TOKENS:
        return GroupedPlan("gather")
    if ragged and backend == "gpu":
        return GroupedPlan("ragged")
    return GroupedPlan("block", block_size(tokens, num_experts))


def executed_expert_rows(tokens: int, num_experts: int, plan: GroupedPlan) -> int:
    """Rows the experts' FFNs compute for `tokens` tokens under dropless routing: one a token, plus the block
    path's static padding."""
    if plan.path == "block":
        return block_rows(tokens, num_experts, plan.block)
    return tokens
