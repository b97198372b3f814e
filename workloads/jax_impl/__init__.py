"""The JAX implementation of the workloads: Flax models, optax training steps, and the trainer the runner
drives through workloads.framework.Trainer."""
