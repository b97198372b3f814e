"""Hardware and software a result was obtained on, so that a sceptic can reproduce or discount it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from harness import DISTRIBUTION, machine
from harness.results.schema import Device, Hardware

PACKAGES = ("harness", "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "nvidia-ml-py", "rich", "mlperf-logging",
            "tensorflow", "tensorflow-cpu", "keras")


def software() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        # "harness" is our own version, read under our distribution's name: the index's "harness" is another
        # project, which must never be reported as ours.
        try:
            versions[name] = importlib.metadata.version(DISTRIBUTION if name == "harness" else name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _git_commit(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def hardware(devices: list[Device]) -> Hardware:
    """This host, and the devices the run trained on (as the framework lists them; across every process of a
    multi-process run)."""
    host = machine.describe()
    return Hardware(platform=host["platform"], machine=host["machine"], host=host["host"], cpu_model=host["cpu_model"],
                    logical_cpus=host["logical_cpus"], memory_gib=host["memory_gib"], cpu=host["cpu"],
                    backend=devices[0].platform if devices else None, devices=tuple(devices))


@cache
def _git_commit() -> str | None:
    """Commit of the harness checkout, with '+dirty' if it has local changes; None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")
