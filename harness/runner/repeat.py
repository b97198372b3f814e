"""`harness run --runs N`: the same workload on N consecutive seeds, scored the MLPerf way (harness.mlperf.runset)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.mlperf.runset import run_set
from harness.results.schema import RunRecord
from harness.runner.execute import execute
from harness.runner.plan import RunOptions, plan


def run_repeated(opts: RunOptions, n: int, on_run: Callable[[RunRecord], None] | None = None
                 ) -> tuple[Path, dict[str, Any]]:
    """Runs seeds opts.seed .. opts.seed + n - 1 into one folder; returns it and its score.json contents."""
    if n < 3:
        raise UsageError(f"--runs must be 1, or >= 3 for olympic scoring (it drops two runs), got {n}")
    plan(opts)  # every input checked before the set's folder exists or any run starts

    def one(seed: int, out: Path) -> tuple[Path, RunRecord]:
        o = replace(opts, seed=seed, output_dir=str(out), progress=False)
        run_dir, result = execute(o, plan(o))
        if on_run:
            on_run(result)
        return run_dir, result

    return run_set(n, opts.seed, Path(opts.output_dir), opts.workload, one)
