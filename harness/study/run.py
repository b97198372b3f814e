"""`harness study`: several workloads over several seeds, interleaved, compared with confidence intervals."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from harness.errors import UsageError
from harness.results.files import sha256_file, write_json
from harness.results.reader import read_json
from harness.results.schema import RunRecord, Status
from harness.runner.execute import execute
from harness.runner.plan import RunOptions, plan
from workloads.registry import WorkloadSpec, get_workload

SCHEMA = "harness.study/1"
SWEEPABLE = ("experts",)


def expert_variant(base: WorkloadSpec, experts: int) -> WorkloadSpec:
    """The same Switch model with another expert count: activated FLOPs per token stay the same (router aside)."""
    if experts < 1:
        raise UsageError(f"--sweep experts: counts must be >= 1, got {experts}")
    model = dataclasses.replace(base.model, num_experts=experts)
    return dataclasses.replace(base, name=f"{base.name}-e{experts}", model=model)


def parse_sweep(text: str) -> tuple[str, list[int]]:
    key, _, values = text.partition("=")
    if key not in SWEEPABLE or not values:
        raise UsageError(f"--sweep must look like experts=2,4,8; valid keys: {', '.join(SWEEPABLE)}")
    try:
        counts = [int(v) for v in values.split(",")]
    except ValueError:
        raise UsageError(f"--sweep {key}: values must be integers, got {values!r}") from None
    return key, counts


def interleaved_order(workloads: list[str], seeds: int) -> list[tuple[str, int]]:
    """A, B, A, B, ...: each seed runs every workload back to back, so drift on the machine falls on all."""
    return [(w, s) for s in range(seeds) for w in workloads]


def entries(specs: list[WorkloadSpec], frameworks: list[str]) -> dict[str, tuple[WorkloadSpec, str]]:
    """What a study runs, by label: every workload in every framework ("name@framework" when several)."""
    several = len(frameworks) > 1
    return {f"{s.name}@{f}" if several else s.name: (s, f) for s in specs for f in frameworks}


# A run that ended one of these ways is not run again on --resume (an aborted one is).
FINAL = (Status.CONVERGED, Status.NOT_CONVERGED, Status.DIVERGED)
USER_DATA = "user-data"  # the study's "corpus" when it runs on the user's own --data


def run_study(specs: list[WorkloadSpec], seeds: int, corpus: str, study_dir: Path, base_opts: RunOptions,
              on_run: Callable[[RunRecord], None] | None = None, sweep: dict | None = None,
              frameworks: list[str] | None = None) -> Path:
    """Every (entry, seed) of the study in interleaved order, into `study_dir`; runs already recorded there
    as finished, whose result.json still hashes as recorded, are kept and not run again."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    frameworks = frameworks or [base_opts.framework]
    by_label = entries(specs, frameworks)
    order = interleaved_order(list(by_label), seeds)
    done = _finished_runs(study_dir)
    study = {"schema": SCHEMA, "corpus": corpus, "seeds": seeds, "workloads": list(by_label), "sweep": sweep,
             "frameworks": frameworks, "order": [f"{w}/seed{s}" for w, s in order], "runs": {}, "done": done,
             "status": "running"}
    for label, seed in order:
        key = f"{label}/seed{seed}"
        if key not in done:
            spec, framework = by_label[label]
            opts = dataclasses.replace(base_opts, workload=spec.name, seed=seed, framework=framework,
                                       output_dir=str(study_dir / "runs"), spec=spec,
                                       corpus=base_opts.corpus if corpus == USER_DATA else corpus)
            run_dir, result = execute(opts, plan(opts))
            done[key] = {"dir": str(run_dir.relative_to(study_dir)),
                         "sha256": sha256_file(run_dir / "result.json"), "status": str(result.status)}
            if on_run:
                on_run(result)
        study["runs"] = _runs_in_order(by_label, seeds, done)
        write_json(study_dir / "study.json", study)  # progress survives an interrupted study
    study["status"] = "complete"
    write_json(study_dir / "study.json", study)
    return study_dir


def _finished_runs(study_dir: Path) -> dict[str, dict[str, str]]:
    """The runs a previous, interrupted attempt finished: final status, result.json unchanged since."""
    path = study_dir / "study.json"
    if not path.is_file():
        study_dir.mkdir(parents=True, exist_ok=True)
        return {}
    kept = {}
    for key, run in (read_json(path, "study.json").get("done") or {}).items():
        f = study_dir / run["dir"] / "result.json"
        if run.get("status") in FINAL and f.is_file() and sha256_file(f) == run["sha256"]:
            kept[key] = run
    return kept


def _runs_in_order(by_label: dict, seeds: int, done: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    return {label: [done[f"{label}/seed{s}"]["dir"] for s in range(seeds) if f"{label}/seed{s}" in done]
            for label in by_label}


def resolve_specs(names: list[str], sweep: str | None) -> tuple[list[WorkloadSpec], dict | None]:
    specs = [get_workload(n) for n in names]
    if sweep is None:
        return specs, None
    key, counts = parse_sweep(sweep)
    switch = [s for s in specs if s.model.num_experts > 0]
    if len(switch) != 1:
        raise UsageError("--sweep experts needs exactly one Switch workload in --workloads, e.g. switch-small")
    variants = [expert_variant(switch[0], e) for e in counts]
    dense = [s for s in specs if s.model.num_experts == 0]
    return dense + variants, {"key": key, "values": counts, "base": switch[0].name}
