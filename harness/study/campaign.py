"""A whole `harness study`: validate, run one study a corpus, and write the report that covers them all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.build import build_report
from harness.results.record import new_run_dir
from harness.runner.run import RunOptions
from harness.study.run import resolve_specs, run_study
from workloads.registry import CORPUS_NAMES
from workloads.trainers import FRAMEWORKS, runtime


def study_and_report(names: list[str], sweep: str | None, seeds: int, corpora: list[str], out: Path,
                     base: RunOptions, on_run: Callable[[dict[str, Any]], None] | None = None,
                     frameworks: list[str] | None = None) -> tuple[list[Path], Path, Path]:
    """Returns the study directories and the report's markdown and html paths."""
    frameworks = frameworks or ["jax"]
    for f in frameworks:
        if f not in FRAMEWORKS:
            raise UsageError(f"--frameworks must be among {', '.join(FRAMEWORKS)}, got {f!r}")
    if len(names) * len(frameworks) < 2 and not sweep:
        raise UsageError("a study compares at least two things: give two --workloads, two --frameworks or a --sweep")
    for corpus in corpora:
        if corpus not in CORPUS_NAMES:
            raise UsageError(f"--corpus must be among {', '.join(CORPUS_NAMES)}, got {corpus!r}")
    specs, sweep_info = resolve_specs(names, sweep)
    base = dataclasses.replace(base, workload=specs[0].name)
    for f in frameworks:
        runtime(f)  # a framework that is not installed fails here, in one line, before any run
    study_dirs = [run_study(specs, seeds, c, out, base, on_run=on_run, sweep=sweep_info, frameworks=frameworks)
                  for c in corpora]
    report_dir = study_dirs[0] if len(study_dirs) == 1 else new_run_dir(out, "study-report")
    md, page = build_report(study_dirs, report_dir)
    return study_dirs, md, page
