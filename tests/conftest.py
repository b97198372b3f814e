"""Helpers shared by the test files: the CLI in a subprocess, a run's only result, a settable clock."""

from __future__ import annotations

import os

# TensorFlow's oneDNN kernels round differently from XLA's; parity tests against JAX need them off, and
# TensorFlow reads this once, at import. Its start-up logging is noise in test output.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# One persistent XLA compilation cache for the whole session, this process and every subprocess it starts:
# the tests run the same tiny workloads many times, and a warm cache cuts a run's start from ~8 s to ~3 s
# on 2 cores. A fresh folder each session, so nothing carries over between versions.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile as _tempfile

    _OWN_CACHE = _tempfile.mkdtemp(prefix="harness-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_sessionfinish(session, exitstatus) -> None:
    if _OWN_CACHE:
        import shutil

        shutil.rmtree(_OWN_CACHE, ignore_errors=True)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def harness(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """`python -m harness.cli ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def only_result(out_dir: Path) -> dict:
    results = list(Path(out_dir).glob("*/result.json"))
    assert len(results) == 1, results
    return json.loads(results[0].read_text())


def run_dirs(out_dir: Path) -> list[Path]:
    """The run directories in an output folder (which also holds emissions.csv), sorted."""
    return sorted(d for d in Path(out_dir).iterdir() if d.is_dir())


def only_run_dir(out_dir: Path) -> Path:
    (run_dir,) = run_dirs(out_dir)
    return run_dir


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


MESH_ENV = {"JAX_NUM_CPU_DEVICES": "8", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def with_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `extra` (for a subprocess that must see 8 simulated devices)."""
    import os

    return {**os.environ, **extra}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_processes(n: int, *args: str, port: int | None = None) -> list[subprocess.Popen]:
    """`harness ARGS` as processes 0..n-1 of one multi-process run on this machine (one CPU device each)."""
    port = port or free_port()
    env = with_env({"JAX_NUM_CPU_DEVICES": "1"})
    return [subprocess.Popen([sys.executable, "-m", "harness.cli", *args, "--coordinator", f"127.0.0.1:{port}",
                              "--num-processes", str(n), "--process-id", str(i)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env) for i in range(n)]
