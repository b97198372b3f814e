"""Dropless top-1 routing for the Switch layer: every token reaches its chosen expert, whatever its batch-mates.

No capacity: a token's output is its expert's FFN times its gate, computed alone, so it depends on no other token
(serving answers the same alone or in a batch) and nothing is dropped. The work follows the tokens:

- **gather** (few tokens a call: decode): each token's chosen expert weights gathered, one matrix-vector product
  per token. Exactly the dense FFN's FLOPs per token; no sort.
- **block** (many tokens: prefill, training): tokens sorted by expert (a counting sort, stable), each expert's
  segment padded to a multiple of a block of `b` rows, each block's expert weights gathered and the blocks
  multiplied as a batch.
  The buffer's size is static, the bound over every routing, T + E (b - 1) rows rounded to blocks: the executed
  rows are that bound (workloads/flops.py `block_rows`), the padding what dropless costs here.
- **ragged** (an NVIDIA GPU whose JAX lowers `jax.lax.ragged_dot` through its Pallas Triton grouped matmul): the
  sorted tokens unpadded, two ragged matmuls. Never the default lowering, which on XLA:CPU and XLA:GPU is a masked
  dense matmul over every expert (E times the work): where the Triton path is missing the block path runs.

Two custom VJPs keep the backward off XLA's scatter-add (JAX's transpose of a gather): the sort and its inverse
are permutations, whose backward is the gather by the inverse permutation; and the experts' weights gathered a
block have their gradients summed by expert as a one-hot matmul. The measurements behind the thresholds and these
choices are in reference_results/cpu-2core/dropless/ (scripts/bench_switch_layer.py, bench_switch_step.py).
"""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from workloads.routing import GATHER_MAX_TOKENS, GroupedPlan, block_rows, grouped_plan
from workloads.specs import ModelConfig

__all__ = ["GroupedPlan", "Layout", "dropless_ffn", "expert_blocks", "expert_positions", "permute_rows", "plan_for",
           "route_dropless", "routing_facts", "sorted_layout", "take_experts"]

# JAX's switch for the Pallas Triton lowering of ragged_dot on GPU (JAX >= 0.10; off by default there).
TRITON_FLAG = "jax_ragged_dot_use_gpu_pallas_triton_lowering"
_TRITON_MODULE = "jax._src.lax.pallas_lowerings.gpu.ragged_dot"


class Routed(NamedTuple):
    expert: jax.Array  # [T] int32: each token's expert
    gate: jax.Array  # [T] float32: the router's probability of that expert


def route_dropless(logits: jax.Array) -> Routed:
    """Top-1 choices for [T, E] float32 router logits: argmax, and its softmax probability as the gate, as
    1 / sum_e exp(l_e - l_chosen): the [T, E] probabilities never materialised (the losses, in training, take their
    own softmax), and the gradient the softmax's."""
    expert = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    chosen = jnp.take_along_axis(logits, expert[:, None], axis=-1)
    gate = 1.0 / jnp.sum(jnp.exp(logits - chosen), axis=-1)
    return Routed(expert, gate)


def triton_ragged_dot_available() -> str | None:
    """Why the Triton ragged_dot cannot run in this process, or None when it can (an NVIDIA GPU of compute
    capability 8.0 or newer, a JAX with the flag and its Pallas lowering)."""
    if jax.default_backend() != "gpu":
        return f"backend {jax.default_backend()}, not gpu"
    if TRITON_FLAG not in jax.config.values:
        return f"JAX {jax.__version__} has no {TRITON_FLAG}"
    try:
        found = importlib.util.find_spec(_TRITON_MODULE) is not None
    except ImportError:
        found = False
    if not found:
        return f"JAX {jax.__version__} lacks {_TRITON_MODULE}"
    capability = getattr(jax.devices()[0], "compute_capability", "0")
    if float(capability) < 8.0:
        return f"compute capability {capability} < 8.0"
    return None


def routing_facts(cfg: ModelConfig) -> dict[str, Any]:
    """For a model about to be traced: turn on the Triton lowering of ragged_dot where a dropless Switch layer can
    use it (an NVIDIA GPU, JAX with the lowering), and say how its Switch layers route, for the record:
    {"switch_routing", "ragged_dot_triton", "grouped_matmul"} ({} for a dense model)."""
    if not cfg.num_experts:
        return {}
    if cfg.routing != "dropless":
        return {"switch_routing": cfg.routing, "ragged_dot_triton": False,
                "grouped_matmul": "capacity buffer: every expert's slots (einsum over experts)"}
    why_not = triton_ragged_dot_available()
    if why_not is None:
        jax.config.update(TRITON_FLAG, True)
    ragged = why_not is None
    rest = ("jax.lax.ragged_dot (Pallas Triton)" if ragged else "the block path" if jax.default_backend() != "gpu"
            else f"the block path (no Triton ragged_dot: {why_not})")
    return {"switch_routing": "dropless", "ragged_dot_triton": ragged,
            "grouped_matmul": f"gather up to {GATHER_MAX_TOKENS} tokens a call, else {rest}"}


def plan_for(tokens: int, num_experts: int) -> GroupedPlan:
    """The grouped matmul for `tokens` tokens a call on this backend, chosen at trace time."""
    ragged = jax.default_backend() == "gpu" and bool(jax.config.values.get(TRITON_FLAG, False))
    return grouped_plan(tokens, num_experts, jax.default_backend(), ragged)


def dropless_ffn(x: jax.Array, expert: jax.Array, gate: jax.Array, w_in: jax.Array, b_in: jax.Array,
                 w_out: jax.Array, b_out: jax.Array, dtype: jnp.dtype, plan: GroupedPlan | None = None) -> jax.Array:
    """Each token of x [T, d] through its expert's FFN (w_in [E, d, f], b_in [E, 1, f], w_out [E, f, d], b_out
    [E, 1, d]), times its gate: [T, d] in `dtype`."""
    tokens, num_experts = x.shape[0], w_in.shape[0]
    plan = plan or plan_for(tokens, num_experts)
    x = x.astype(dtype)
    weights = tuple(w.astype(dtype) for w in (w_in, b_in, w_out, b_out))
    if plan.path == "gather":
        y = expert_blocks(x[:, None, :], expert, *weights)[:, 0]
    elif plan.path == "block":
        y = _block_path(x, expert, weights, plan.block)
    elif plan.path == "ragged":
        y = _ragged_path(x, expert, weights)
    else:
        raise ValueError(f"unknown grouped matmul path {plan.path!r}")
    return y * gate.astype(dtype)[:, None]


# -- the paths ---------------------------------------------------------------------------------------------------

def expert_blocks(blocks: jax.Array, block_expert: jax.Array, w_in: jax.Array, b_in: jax.Array, w_out: jax.Array,
                  b_out: jax.Array) -> jax.Array:
    """Blocks of rows [n, b, d], each through the FFN of its expert [n]: the experts' weights gathered a block."""
    def take(w: jax.Array) -> jax.Array:
        return take_experts(w, block_expert)

    h = nn.gelu(jnp.einsum("nbd,ndf->nbf", blocks, take(w_in)) + take(b_in))
    return jnp.einsum("nbf,nfd->nbd", h, take(w_out)) + take(b_out)


def take_experts(w: jax.Array, block_expert: jax.Array) -> jax.Array:
    """w[block_expert]: each block's expert weights [n, ...] from [E, ...]. Its backward sums the blocks' weight
    gradients by expert as a [E, n] one-hot matmul (2 E n |w_e| FLOPs, counted in workloads/flops.py) rather than
    the scatter-add JAX's transpose of a gather gives, which XLA:CPU runs 1.5x slower than the whole dense training
    step when the step's state is donated (measured on the 2-core CPU: switch-small-dropless 26.7 against 18.2 ms a
    step)."""
    return _take_experts(w, block_expert, _varying_axes(w))


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _take_experts(w: jax.Array, block_expert: jax.Array, w_axes: tuple[str, ...]) -> jax.Array:
    return w[block_expert]


def _take_fwd(w: jax.Array, block_expert: jax.Array, w_axes: tuple[str, ...]):
    return w[block_expert], (block_expert, w.shape[0])


def _take_bwd(w_axes: tuple[str, ...], saved, g: jax.Array):
    block_expert, num_experts = saved
    onehot = jax.nn.one_hot(block_expert, num_experts, dtype=g.dtype)
    return _summed_to(jnp.einsum("ne,n...->e...", onehot, g), w_axes), None


_take_experts.defvjp(_take_fwd, _take_bwd)


def _varying_axes(x: jax.Array) -> tuple[str, ...]:
    """The mesh axes x varies over inside a shard_map; () outside one. Its type says: `.mat.varying` from JAX
    0.10, `.vma` before."""
    aval = jax.typeof(x)
    mat = getattr(aval, "mat", None)
    return tuple(sorted(mat.varying if mat is not None else getattr(aval, "vma", ())))


def _summed_to(ct: jax.Array, axes: tuple[str, ...]) -> jax.Array:
    """An input's cotangent, summed over the mesh axes it varies over and the input does not: a weight replicated
    over "data" but used on every device's own tokens has for gradient the sum of every device's, which is what
    JAX's own transpose of its implicit broadcast gives, and what a custom backward must give itself (shard_map
    checks the cotangent's type against the input's)."""
    extra = tuple(a for a in _varying_axes(ct) if a not in axes)
    return jax.lax.psum(ct, extra) if extra else ct


class Layout(NamedTuple):
    """Tokens sorted by expert (stable), each expert's segment padded to whole blocks of `block` rows."""

    row_of_token: jax.Array  # [T]: the row each token goes to
    token_of_row: jax.Array  # [rows]: the token each row holds, T for a padding row
    counts: jax.Array  # [E]: each expert's tokens
    block_expert: jax.Array  # [rows / block]: each block's expert (with block 1: each sorted token's)


def sorted_layout(expert: jax.Array, num_experts: int, block: int = 1) -> Layout:
    """The layout of T tokens routed to `expert` [T]: with block 1 the stable sort by expert, unpadded; else the
    block path's static buffer of block_rows(T, E, block) rows."""
    tokens = expert.shape[0]
    rows = tokens if block == 1 else block_rows(tokens, num_experts, block)
    position, counts = expert_positions(expert, num_experts)
    padded = (counts + block - 1) // block * block
    padded_end = jnp.cumsum(padded)
    row_of_token = (padded_end - padded)[expert] + position
    token_of_row = jnp.full(rows, tokens, jnp.int32).at[row_of_token].set(jnp.arange(tokens, dtype=jnp.int32),
                                                                           unique_indices=True)
    # Blocks past the last expert's segment hold only padding; any expert serves them (their rows are zeros and
    # their outputs are never gathered back).
    block_expert = jnp.minimum(jnp.searchsorted(padded_end, jnp.arange(0, rows, block), side="right"),
                               num_experts - 1).astype(jnp.int32)
    return Layout(row_of_token, token_of_row, counts, block_expert)


def _block_path(x: jax.Array, expert: jax.Array, weights: tuple, block: int) -> jax.Array:
    d_model = x.shape[1]
    at = sorted_layout(expert, weights[0].shape[0], block)
    blocks = permute_rows(x, at.token_of_row, at.row_of_token).reshape(-1, block, d_model)
    out = expert_blocks(blocks, at.block_expert, *weights).reshape(-1, d_model)
    return permute_rows(out, at.row_of_token, at.token_of_row)


def _ragged_path(x: jax.Array, expert: jax.Array, weights: tuple) -> jax.Array:
    w_in, b_in, w_out, b_out = weights
    at = sorted_layout(expert, w_in.shape[0])
    xs = permute_rows(x, at.token_of_row, at.row_of_token)
    h = nn.gelu(jax.lax.ragged_dot(xs, w_in, at.counts) + b_in[at.block_expert, 0])
    out = jax.lax.ragged_dot(h, w_out, at.counts) + b_out[at.block_expert, 0]
    return permute_rows(out, at.row_of_token, at.token_of_row)


def expert_positions(expert: jax.Array, num_experts: int, chunk: int = 64) -> tuple[jax.Array, jax.Array]:
    """Each token's place among the tokens of its expert (0 for the first), and each expert's token count: a
    counting sort, stable. The running count is a matmul with a lower-triangular matrix inside chunks of
    `chunk` tokens and a cumulative sum across chunks: on the 2-core CPU 2.7x faster than argsort at 2,048 tokens
    (85 against 229 us), and exact (0/1 products summed in float32, at most `chunk` a chunk)."""
    tokens = expert.shape[0]
    chunks = -(-tokens // chunk)
    onehot = jax.nn.one_hot(expert, num_experts, dtype=jnp.float32)
    grid = jnp.pad(onehot, ((0, chunks * chunk - tokens), (0, 0))).reshape(chunks, chunk, num_experts)
    tril = jnp.tril(jnp.ones((chunk, chunk), jnp.float32))
    within = jnp.einsum("ij,cje->cie", tril, grid, precision=jax.lax.Precision.HIGHEST).astype(jnp.int32)
    per_chunk = within[:, -1]
    before = jnp.cumsum(per_chunk, axis=0) - per_chunk
    running = (within + before[:, None]).reshape(chunks * chunk, num_experts)[:tokens]
    position = jnp.take_along_axis(running, expert[:, None], axis=-1)[:, 0] - 1
    return position, jnp.sum(per_chunk, axis=0)


# -- a permutation of rows, differentiated as one ------------------------------------------------------------------

def permute_rows(x: jax.Array, index: jax.Array, inverse: jax.Array) -> jax.Array:
    """x[index] by rows, an index of len(x) (or more) giving a zero row. `inverse` maps each row of x to where it
    went (each row of x goes to exactly one place): the backward is the gather of the cotangent by it."""
    return _permute_rows(x, index, inverse, _varying_axes(x))


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _permute_rows(x: jax.Array, index: jax.Array, inverse: jax.Array, x_axes: tuple[str, ...]) -> jax.Array:
    return jnp.take(x, index, axis=0, mode="fill", fill_value=0)


def _permute_fwd(x: jax.Array, index: jax.Array, inverse: jax.Array, x_axes: tuple[str, ...]):
    return _permute_rows(x, index, inverse, x_axes), (index, inverse)


def _permute_bwd(x_axes: tuple[str, ...], saved, g: jax.Array):
    index, inverse = saved
    return _summed_to(jnp.take(g, inverse, axis=0, mode="fill", fill_value=0), x_axes), None, None


_permute_rows.defvjp(_permute_fwd, _permute_bwd)
