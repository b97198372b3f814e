"""Which frameworks implement the workloads, and the one factory that builds a Trainer in any of them.

Each implementation is imported only when asked for, so that a machine without one can use the others.
"""

from __future__ import annotations

import numpy as np

from workloads.framework import Decoder, FrameworkUnavailableError, Runtime, Trainer
from workloads.mesh import MeshShape
from workloads.specs import WorkloadSpec

FRAMEWORKS = ("jax", "tensorflow")
INSTALL_HINT = {"tensorflow": "pip install -e '.[tensorflow]'"}


def _require(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise FrameworkUnavailableError(f"unknown framework {framework!r}; valid: {', '.join(FRAMEWORKS)}")
    module = {"jax": "jax", "tensorflow": "tensorflow"}[framework]
    if framework == "tensorflow":
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its start-up logging, not errors
    try:
        __import__(module)
    except ImportError:
        hint = INSTALL_HINT.get(framework, f"pip install {module}")
        raise FrameworkUnavailableError(f"--framework {framework}: {module} is not installed; "
                                        f"install the extra: {hint}") from None


_RUNTIMES: dict[str, Runtime] = {}


def runtime(framework: str) -> Runtime:
    """The process-level runtime of `framework` (one per process)."""
    if framework not in _RUNTIMES:
        _require(framework)
        if framework == "jax":
            from workloads.jax_impl.runtime import JaxRuntime

            _RUNTIMES[framework] = JaxRuntime()
        else:
            from workloads.tf_impl.runtime import TfRuntime

            _RUNTIMES[framework] = TfRuntime()
    return _RUNTIMES[framework]


def build_trainer(framework: str, spec: WorkloadSpec, seed: int, max_steps: int, first_batch: np.ndarray,
                  eval_set: np.ndarray, mesh: MeshShape | None = None, steps_per_dispatch: int = 1) -> Trainer:
    """Build, initialise (from `seed`) and compile `spec` in `framework`, over `mesh` (None: one device), its
    step running `steps_per_dispatch` training steps a call (a [K, batch, seq_len + 1] block; 1: one batch)."""
    _require(framework)
    if framework == "jax":
        from workloads.jax_impl.trainer import JaxTrainer

        return JaxTrainer(spec, seed, max_steps, first_batch, eval_set, mesh, steps_per_dispatch)
    if spec.model.num_experts and spec.model.routing != "capacity":
        raise FrameworkUnavailableError(f"--framework {framework}: {spec.name} routes {spec.model.routing}, which "
                                        "only the JAX implementation has; valid: --framework jax, or a "
                                        "capacity-routed workload")
    if steps_per_dispatch != 1:
        raise FrameworkUnavailableError(f"{framework} runs one step a dispatch: --steps-per-dispatch must be 1 "
                                        f"for it, got {steps_per_dispatch}")
    from workloads.tf_impl.trainer import TfTrainer

    return TfTrainer(spec, seed, max_steps, first_batch, eval_set, mesh)


def weight_shapes(spec: WorkloadSpec) -> dict[str, tuple[int, ...]]:
    """The parameter shapes by path that weights of `spec`'s model must have, in every framework (the names and
    shapes a run keeps), worked out without computing or compiling anything."""
    _require("jax")
    from workloads.jax_impl.weights import weight_shapes as shapes

    return shapes(spec)


def build_decoder(spec: WorkloadSpec, weights: dict[str, np.ndarray], batch: int, prompt_len: int, gen_len: int,
                  temperature: float = 0.0, seed: int = 0) -> Decoder:
    """A compiled decoder of `spec`'s model with `weights` (by Flax parameter path, as a run keeps them). Serving
    is JAX's, whichever framework trained the weights: every framework keeps them under the same names."""
    _require("jax")
    from workloads.jax_impl.decode import JaxDecoder, params_from_flat

    return JaxDecoder(spec.model, params_from_flat(weights), batch, prompt_len, gen_len, temperature=temperature,
                      seed=seed)
