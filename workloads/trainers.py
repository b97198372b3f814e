"""Which frameworks implement the workloads, and the one factory that builds a Trainer in any of them.

Each implementation is imported only when asked for, so that a machine without one can use the others.
"""

from __future__ import annotations

import numpy as np

from workloads.framework import Trainer
from workloads.spec import WorkloadSpec

FRAMEWORKS = ("jax",)


class FrameworkUnavailableError(ValueError):
    """The framework asked for is not installed (a one-line usage error)."""


def build_trainer(framework: str, spec: WorkloadSpec, seed: int, max_steps: int, first_batch: np.ndarray,
                  eval_set: np.ndarray) -> Trainer:
    """Build, initialise (from `seed`) and compile `spec` in `framework`."""
    if framework == "jax":
        from workloads.jax_impl.trainer import JaxTrainer

        return JaxTrainer(spec, seed, max_steps, first_batch, eval_set)
    raise FrameworkUnavailableError(f"unknown framework {framework!r}; valid: {', '.join(FRAMEWORKS)}")
