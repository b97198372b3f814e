"""Hardware and software a result was obtained on, so that a sceptic can reproduce or discount it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("harness", "jax", "jaxlib", "flax", "optax", "numpy", "scipy", "nvidia-ml-py", "rich", "mlperf-logging",
            "tensorflow", "tensorflow-cpu", "keras")


def software() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _git_commit(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def main_device(hardware: dict[str, Any]) -> str:
    """What a recorded run trained on: its first accelerator's kind, else the CPU model."""
    accel = [d["kind"] for d in hardware["devices"] if d["platform"] != "cpu"]
    return accel[0] if accel else hardware["cpu_model"]


def hardware(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """This host, and the devices the run trained on ({"kind", "platform", "id", ...} as the framework lists
    them; across every process of a multi-process run)."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "backend": devices[0]["platform"] if devices else None,
        "devices": devices,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


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
