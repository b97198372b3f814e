"""Which frameworks implement the workloads, and the one factory that builds a Trainer in any of them.

Each implementation is imported only when asked for, so that a machine without one can use the others.
"""

from __future__ import annotations

import numpy as np

from workloads.framework import Runtime, Trainer
from workloads.spec import MeshShape, WorkloadSpec

FRAMEWORKS = ("jax",)


class FrameworkUnavailableError(ValueError):
    """The framework asked for is not installed (a one-line usage error)."""


_RUNTIMES: dict[str, Runtime] = {}


def runtime(framework: str) -> Runtime:
    """The process-level runtime of `framework` (one per process)."""
    if framework not in _RUNTIMES:
        if framework == "jax":
            from workloads.jax_impl.runtime import JaxRuntime

            _RUNTIMES[framework] = JaxRuntime()
        else:
            raise FrameworkUnavailableError(f"unknown framework {framework!r}; valid: {', '.join(FRAMEWORKS)}")
    return _RUNTIMES[framework]


def build_trainer(framework: str, spec: WorkloadSpec, seed: int, max_steps: int, first_batch: np.ndarray,
                  eval_set: np.ndarray, mesh: MeshShape | None = None) -> Trainer:
    """Build, initialise (from `seed`) and compile `spec` in `framework`, over `mesh` (None: one device)."""
    if framework == "jax":
        from workloads.jax_impl.trainer import JaxTrainer

        return JaxTrainer(spec, seed, max_steps, first_batch, eval_set, mesh)
    raise FrameworkUnavailableError(f"unknown framework {framework!r}; valid: {', '.join(FRAMEWORKS)}")
