"""Loss, AdamW and the XLA-compiled train and eval steps for the TensorFlow model.

AdamW is written out here rather than taken from Keras because the two frameworks must run the same
optimiser: optax's chain of global-norm clipping, Adam with bias correction (epsilon outside the square
root), decoupled weight decay, and the learning rate of update n taken at n (0 for the first update), from
the one schedule in workloads/specs.py. Keras's AdamW orders decay and schedule differently.
"""

from __future__ import annotations

import tensorflow as tf

from workloads.specs import OptimizerConfig, learning_rate
from workloads.tf_impl.models import TransformerLM


class AdamW(tf.Module):
    def __init__(self, cfg: OptimizerConfig, variables: list[tf.Variable], max_steps: int) -> None:
        super().__init__(name="adamw")
        self.cfg = cfg
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")
        self.mu = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.nu = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        # The schedule as a table, indexed by the update count inside the compiled step.
        self.schedule = tf.constant([learning_rate(cfg, n, max_steps) for n in range(max_steps + 1)], tf.float32)

    def apply(self, grads: list[tf.Tensor], variables: list[tf.Variable]) -> None:
        cfg = self.cfg
        norm = tf.linalg.global_norm(grads)
        scale = tf.where(norm < cfg.grad_clip_norm, 1.0, cfg.grad_clip_norm / norm)
        step = tf.cast(self.count + 1, tf.float32)
        lr = tf.gather(self.schedule, tf.minimum(self.count, tf.size(self.schedule, tf.int64) - 1))
        for g, v, mu, nu in zip(grads, variables, self.mu, self.nu, strict=True):
            g = g * scale
            mu.assign(cfg.b1 * mu + (1 - cfg.b1) * g)
            nu.assign(cfg.b2 * nu + (1 - cfg.b2) * g * g)
            mu_hat = mu / (1 - cfg.b1 ** step)
            nu_hat = nu / (1 - cfg.b2 ** step)
            update = mu_hat / (tf.sqrt(nu_hat) + cfg.epsilon) + cfg.weight_decay * v
            v.assign_sub(lr * update)
        self.count.assign_add(1)


def make_steps(model: TransformerLM, opt: AdamW, variables: list[tf.Variable]):
    """The train step (tokens -> metrics) and the eval step (tokens, weights -> sums), XLA-compiled."""

    @tf.function(jit_compile=True, reduce_retracing=True)
    def train(tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits, stats = model(tokens[:, :-1], train=True)
            nll = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tokens[:, 1:], logits))
            loss = nll + stats["aux_loss"]
        opt.apply(tape.gradient(loss, variables), variables)
        metrics = {"loss": nll, "aux_loss": stats["aux_loss"]}
        if "dropped_fraction" in stats:
            metrics |= {"dropped_fraction": stats["dropped_fraction"], "expert_load": stats["expert_load"]}
        return metrics

    @tf.function(jit_compile=True, reduce_retracing=True)
    def evaluate(tokens: tf.Tensor, weights: tf.Tensor) -> tuple[tf.Tensor, ...]:
        logits, _ = model(tokens[:, :-1], train=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(tokens[:, 1:], logits)  # [batch, length]
        per_sequence = tf.reduce_mean(nll, axis=-1)
        length = tf.cast(tf.shape(nll)[1], tf.float32)
        return (tf.reduce_sum(tf.reduce_sum(nll, axis=-1) * weights), tf.reduce_sum(weights) * length,
                tf.reduce_sum(weights), tf.reduce_sum(per_sequence * weights),
                tf.reduce_sum(per_sequence**2 * weights))

    return train, evaluate
