"""Loss, optimiser and the jitted train / eval steps for a TransformerLM. No timing, no metering here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from workloads.models import ModelConfig, TransformerLM


@dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float
    warmup_steps: int
    schedule: str = "constant"  # "constant" after warmup, or "cosine" decay to 10% over max_steps
    b1: float = 0.9
    b2: float = 0.98
    weight_decay: float = 0.0
    grad_clip_norm: float = 1.0
    # The sweep the learning rate was chosen from (same sweep for every model of a pair), for the record.
    lr_sweep: tuple[float, ...] = ()
    lr_selection: str = ""


def make_optimizer(cfg: OptimizerConfig, max_steps: int) -> optax.GradientTransformation:
    if cfg.schedule == "constant":
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, cfg.learning_rate, max(1, cfg.warmup_steps)),
             optax.constant_schedule(cfg.learning_rate)],
            [max(1, cfg.warmup_steps)],
        )
    elif cfg.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, cfg.learning_rate, max(1, cfg.warmup_steps), max(max_steps, cfg.warmup_steps + 1),
            end_value=0.1 * cfg.learning_rate,
        )
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; valid: constant, cosine")
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip_norm),
        optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay),
    )


class TrainState(NamedTuple):
    params: Any
    opt_state: Any


def _collect(tree: dict, name: str) -> list[jax.Array]:
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


class Steps(NamedTuple):
    init: Any        # (rng_key, example_tokens) -> TrainState
    train: Any       # (TrainState, tokens) -> (TrainState, metrics)
    eval: Any        # (params, tokens) -> (sum of nll, token count)


def make_steps(model_cfg: ModelConfig, opt_cfg: OptimizerConfig, max_steps: int) -> Steps:
    """Build un-jitted step functions; the runner decides when to jit and compile them."""
    model = TransformerLM(model_cfg)
    tx = make_optimizer(opt_cfg, max_steps)

    def init(key: jax.Array, tokens: jax.Array) -> TrainState:
        params = model.init(key, tokens[:, :-1], train=False)["params"]
        return TrainState(params, tx.init(params))

    def loss_fn(params, tokens):
        logits, state = model.apply(
            {"params": params}, tokens[:, :-1], train=True, mutable=["losses", "metrics"]
        )
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
        aux_terms = _collect(state.get("losses", {}), "aux_loss")
        aux = sum(aux_terms) if aux_terms else jnp.zeros(())
        metrics = {"loss": nll, "aux_loss": aux}
        metrics.update(_switch_metrics(state.get("metrics", {})))
        return nll + aux, metrics

    def train(state: TrainState, tokens: jax.Array):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, tokens)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state), metrics

    def evaluate(params, tokens: jax.Array):
        logits = model.apply({"params": params}, tokens[:, :-1], train=False)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
        return nll.sum(), jnp.asarray(nll.size, jnp.float32)

    return Steps(init, train, evaluate)


def _switch_metrics(sown: dict) -> dict[str, jax.Array]:
    dropped = _collect(sown, "dropped_fraction")
    if not dropped:
        return {}
    return {
        "dropped_fraction": jnp.mean(jnp.stack(dropped)),
        "expert_load": jnp.stack(_collect(sown, "expert_load")),  # [switch layers, experts]
    }
