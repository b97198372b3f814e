"""The TensorFlow implementation of the workloads: the same models, optimiser and steps as the JAX one,
compiled with XLA (tf.function(jit_compile=True)), behind the same Trainer interface."""
