"""`harness study --inference`: the trained runs of a study served over a batch sweep, interleaved, and the dense
÷ Switch energy per generated token at each batch with its interval over the trained seeds.

Each run that reached its target is served (harness/infer/execute.py) at every batch of the sweep; the order
runs over batches, then seeds, the workloads taking turns within a seed (in reverse every other seed), so that a
machine's drift falls on both models alike. A run that did not reach its target is not served (its quality is
not the pair's) and the summary says so. Ratios pair the two models by training seed (harness/report/stats.py
`seeded_ratio_ci`), never by position in a list.

The summary also prices training and serving together: the energy to train each model once (its runs' median
energy to target) plus N generated tokens at each batch's J/token, and the N at which the cheaper model changes,
where it does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.infer.execute import InferOptions, infer
from harness.report.serving_summary import summarise
from harness.results.files import atomic_write_text, write_json
from harness.results.inference import InferenceRecord
from harness.results.reader import read_json, read_record, read_study

SCHEMA = "harness.inference-study/1"
DEFAULT_BATCHES = (1, 4, 16, 64)
FILE = "inference.json"


def study_dirs(path: Path) -> list[Path]:
    """The studies under `path`: a study folder (study.json), or a campaign's (one study a corpus)."""
    if (path / "study.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/study.json"))
    if not found:
        raise UsageError(f"--from {path}: no study here (no study.json in it or in its folders); give what "
                         "harness study printed")
    return found


def serve_study(study_dir: Path, batches: list[int], base: InferOptions,
                on_record: Callable[[InferenceRecord], None] | None = None) -> dict[str, Any]:
    """Serve every converged run of the study at every batch, into <study>/inference/; returns the summary."""
    study, runs = read_study(study_dir)
    labels = list(runs)
    out = study_dir / inference_folder(base)
    done = _done(out)
    skipped = [f"{r.workload} seed {r.seed}: {r.status_text}, not served" for rs in runs.values() for r in rs
               if not r.converged]
    seeds = sorted({r.seed for rs in runs.values() for r in rs if r.converged})
    by = {(label, r.seed): r for label, rs in runs.items() for r in rs if r.converged}
    for batch in batches:
        for i, seed in enumerate(seeds):
            for label in labels if i % 2 == 0 else labels[::-1]:
                run = by.get((label, seed))
                key = f"{label}/seed{seed}/batch{batch}"
                if run is None or key in done:
                    continue
                opts = dataclasses.replace(base, run_dir=str(run.directory), batch=batch,
                                           output_dir=str(out / "records"))
                folder, record = infer(opts)
                done[key] = str(folder.relative_to(out))
                if on_record:
                    on_record(record)
                write_json(out / FILE, {"schema": SCHEMA, "study": str(study_dir), "batches": batches,
                                        "done": done, "status": "running"})
    records = {key: read_record(out / rel) for key, rel in done.items()}
    summary = summarise(labels, batches, runs, records, skipped)
    write_json(out / FILE, {"schema": SCHEMA, "study": str(study_dir), "corpus": study.get("corpus"),
                            "batches": batches, "scenario": base.scenario, "duration_ms": base.duration_ms,
                            "routing": routing_setting(base), "capacity_factor": base.capacity_factor, "done": done,
                            "status": "complete",
                            "summary": summary})
    return summary


def inference_folder(base: InferOptions) -> str:
    """Where a study's serving goes, one folder a Switch routing and scenario (so that two settings never share
    one summary, nor a rerun reuse another's records): inference-dropless/ (the default), inference-capacity/ at
    the spec's eval capacity factor, or inference-capacity<F>/ at another; -<scenario> after it for any scenario
    but Offline. (inference/ holds what studies served before dropless routing: capacity, Offline.)"""
    if base.routing != "capacity" and base.capacity_factor is None:
        folder = "inference-dropless"
    else:
        folder = "inference-capacity" + ("" if base.capacity_factor is None else f"{base.capacity_factor:g}")
    return folder + ("" if base.scenario == "offline" else f"-{base.scenario}")


def sweep(scenario: str, asked: list[int] | None, samples_per_query: int) -> list[int]:
    """The batches a study serves at: the sweep asked (default DEFAULT_BATCHES) for Offline and Server. The stream
    scenarios fix their batch (SingleStream 1 sample a query, MultiStream a query's samples), so a sweep there
    would label one serving as several: refused in one line."""
    fixed = {"singlestream": 1, "multistream": samples_per_query}.get(scenario)
    if fixed is None:
        return list(asked or DEFAULT_BATCHES)
    if asked is not None and asked != [fixed]:
        raise UsageError(f"--scenario {scenario} serves batch {fixed} only (its queries fix it): give --batches "
                         f"{fixed} or leave --batches out; a sweep of batches is for offline and server")
    return [fixed]


def _done(out: Path) -> dict[str, str]:
    """What an interrupted attempt served already (its records still there)."""
    f = out / FILE
    if not f.is_file():
        return {}
    return {k: v for k, v in (read_json(f, FILE).get("done") or {}).items() if (out / v / "result.json").is_file()}


def routing_setting(base: InferOptions) -> str:
    """How the Switch models were served, in words, for the report's title."""
    if base.routing != "capacity" and base.capacity_factor is None:
        return "Switch routing dropless"
    return "Switch capacity routing, factor " + ("as the spec's eval one" if base.capacity_factor is None
                                                  else f"{base.capacity_factor:g}")


def report_inference(study_dir: Path, summary: dict[str, Any], base: InferOptions) -> Path:
    """<study>/<folder of base's routing>/report.md and its figures."""
    from harness.report.plots import inference_sweep
    from harness.report.serving_report import study_markdown

    out = study_dir / inference_folder(base)
    figures = [p.name for p in inference_sweep(summary, out)]
    study = read_json(study_dir / "study.json", "study.json")
    md = out / "report.md"
    atomic_write_text(md, study_markdown(summary, study.get("corpus"), figures, routing_setting(base)))
    return md
