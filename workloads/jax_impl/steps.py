"""Loss, optimiser and the jitted train / eval steps for a TransformerLM. No timing, no metering here."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from workloads.jax_impl.models import TransformerLM
from workloads.specs import ModelConfig, OptimizerConfig


def make_optimizer(cfg: OptimizerConfig, max_steps: int) -> optax.GradientTransformation:
    # workloads/specs.py's one schedule (SCHEDULES): linear warmup, then constant.
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.learning_rate, max(1, cfg.warmup_steps)),
         optax.constant_schedule(cfg.learning_rate)],
        [max(1, cfg.warmup_steps)],
    )
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip_norm),
        optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.epsilon, weight_decay=cfg.weight_decay),
    )


class TrainState(NamedTuple):
    params: Any
    opt_state: Any


def _sown(tree: dict, name: str) -> list[jax.Array]:
    """All values sown under `name` anywhere in a Flax collection (one per Switch layer)."""
    found: list[jax.Array] = []

    def visit(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == name:
                    found.extend(v)
                else:
                    visit(v)

    visit(tree)
    return found


class EvalSums(NamedTuple):
    """Sums that add across eval batches; the mean loss and its standard error follow from them."""

    nll_sum: jax.Array
    tokens: jax.Array
    sequences: jax.Array
    seq_mean_sum: jax.Array  # sum over sequences of each sequence's mean loss
    seq_mean_sq_sum: jax.Array


class Steps(NamedTuple):
    init: Any        # (rng_key, example_tokens) -> TrainState
    train: Any       # (TrainState, tokens) -> (TrainState, metrics)
    eval: Any        # (params, tokens, weights) -> EvalSums of one fixed-size batch


def make_steps(model_cfg: ModelConfig, opt_cfg: OptimizerConfig, max_steps: int, mesh: Any = None) -> Steps:
    """Build un-jitted step functions; the trainer decides when to jit and compile them, and where."""
    model = TransformerLM(model_cfg, mesh)
    tx = make_optimizer(opt_cfg, max_steps)

    def init(key: jax.Array, tokens: jax.Array) -> TrainState:
        params = model.init(key, tokens[:, :-1], train=False)["params"]
        return TrainState(params, tx.init(params))

    def loss_fn(params, tokens):
        logits, state = model.apply(
            {"params": params}, tokens[:, :-1], train=True, mutable=["losses", "metrics"]
        )
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
        aux_terms = _sown(state.get("losses", {}), "aux_loss")
        aux = sum(aux_terms) if aux_terms else jnp.zeros(())
        metrics = {"loss": nll, "aux_loss": aux}
        metrics.update(_switch_metrics(state.get("metrics", {})))
        return nll + aux, metrics

    def train(state: TrainState, tokens: jax.Array):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, tokens)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state), metrics

    def evaluate(params, tokens: jax.Array, weights: jax.Array) -> EvalSums:
        """Sums over one eval batch; `weights` is 1 for a real sequence, 0 for padding of the last batch."""
        logits = model.apply({"params": params}, tokens[:, :-1], train=False)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])  # [batch, length] float32
        per_sequence = nll.mean(axis=-1)
        return EvalSums(nll_sum=jnp.sum(nll.sum(axis=-1) * weights), tokens=jnp.sum(weights) * nll.shape[1],
                        sequences=jnp.sum(weights), seq_mean_sum=jnp.sum(per_sequence * weights),
                        seq_mean_sq_sum=jnp.sum(per_sequence**2 * weights))

    return Steps(init, train, evaluate)


def scan_steps(train: Any) -> Any:
    """K training steps as one function: (TrainState, tokens [K, batch, seq_len + 1]) -> (TrainState, metrics
    with a leading K axis). lax.scan runs `train` K times inside one compiled call, so the host dispatches once
    per K steps."""

    def train_block(state: TrainState, blocks: jax.Array):
        return jax.lax.scan(train, state, blocks)

    return train_block


def _switch_metrics(sown: dict) -> dict[str, jax.Array]:
    dropped = _sown(sown, "dropped_fraction")
    if not dropped:
        return {}
    return {
        "dropped_fraction": jnp.mean(jnp.stack(dropped)),
        "expert_load": jnp.stack(_sown(sown, "expert_load")),  # [switch layers, experts]
    }
