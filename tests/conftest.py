"""Helpers shared by the test files: the CLI in a subprocess, a run's only result, a settable clock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def harness(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """`python -m harness.cli ARGS` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def only_result(out_dir: Path) -> dict:
    results = list(Path(out_dir).glob("*/result.json"))
    assert len(results) == 1, results
    return json.loads(results[0].read_text())


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt
