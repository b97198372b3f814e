"""A whole `harness study`: validate, run one study a corpus in one campaign folder, and write the report.

    <output>/<utc>-study-<id>/campaign.json     what was asked (so that --resume can finish it)
                              <corpus>/study.json, <corpus>/runs/...
                              report.md, report.html, figures, comparisons.json

An interrupted campaign rerun with --resume keeps every finished run whose result.json still hashes as
recorded, and runs only what is missing, in the same interleaved order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.build import build_report
from harness.results.files import check_writable, write_json
from harness.results.reader import ResultReadError, read_json
from harness.results.schema import RunRecord
from harness.results.writer import new_folder
from harness.runner.plan import RunOptions, check
from harness.study.run import USER_DATA, resolve_specs, run_study
from workloads.registry import CORPUS_NAMES, get_workload
from workloads.trainers import FRAMEWORKS, runtime

SCHEMA = "harness.campaign/1"
DEFAULTS = {"workloads": ["dense-small", "switch-small"], "seeds": 3, "corpora": ["default", "control"],
            "sweep": None, "frameworks": ["jax"]}
# Everything a resumed campaign must run with again, as first asked.
RECORDED_OPTIONS = ("meter", "meter_options", "region", "pue", "carbon_intensity", "net_intensity", "sample_hz",
                    "mesh", "data", "target_loss", "keep_weights")


def study_and_report(asked: dict[str, Any], out: Path, base: RunOptions,
                     on_run: Callable[[RunRecord], None] | None = None,
                     resume: Path | None = None) -> tuple[Path, Path, Path]:
    """`asked`: workloads, seeds, corpora, sweep, frameworks as given (None: default, or the campaign's on
    resume). Returns the campaign's folder (one study a corpus inside) and the report's markdown and html."""
    if resume is not None:
        campaign_dir = Path(resume)
        plan, base = _resumed(campaign_dir, asked, base)
    else:
        plan = {k: DEFAULTS[k] if asked.get(k) is None else asked[k] for k in DEFAULTS}
        if asked.get("corpora") is None:
            plan["corpora"] = default_corpora(plan["workloads"])
        if base.data is not None:
            if asked.get("corpora") is not None:
                raise UsageError("--data is the study's corpus: give --data FILE --target-loss X or --corpus, "
                                 "not both")
            plan["corpora"] = [USER_DATA]
        _validate(plan)
    specs, sweep_info = resolve_specs(plan["workloads"], plan["sweep"])
    for spec in specs:
        for c in plan["corpora"]:
            if c != USER_DATA:
                spec.corpus_named(c)  # a workload without a control corpus, asked for one, fails before any run
    base = dataclasses.replace(base, workload=specs[0].name, spec=specs[0])  # a sweep variant is in no registry
    check(base)  # the carbon, meter and data options, before anything is written or run
    for f in plan["frameworks"]:
        runtime(f)  # a framework that is not installed fails here, in one line, before any run
    if resume is None:
        check_writable(out, "--output-dir")
        campaign_dir = new_folder(out, "study")
        write_json(campaign_dir / "campaign.json", {"schema": SCHEMA, **plan, "options": {
            k: getattr(base, k) for k in RECORDED_OPTIONS}})
    for c in plan["corpora"]:
        run_study(specs, plan["seeds"], c, campaign_dir / c, base, on_run=on_run, sweep=sweep_info,
                  frameworks=plan["frameworks"])
    md, page = build_report([campaign_dir], campaign_dir)
    return campaign_dir, md, page


def default_corpora(workloads: list[str]) -> list[str]:
    """Both corpora, so that the report shows where sparse does not win; the default alone where a workload has no
    control corpus (the text pairs: their contrast is another target)."""
    if any(get_workload(w).control_corpus is None for w in workloads):
        return ["default"]
    return list(CORPUS_NAMES)


def _validate(plan: dict[str, Any]) -> None:
    for f in plan["frameworks"]:
        if f not in FRAMEWORKS:
            raise UsageError(f"--frameworks must be among {', '.join(FRAMEWORKS)}, got {f!r}")
    if len(plan["workloads"]) * len(plan["frameworks"]) < 2 and not plan["sweep"]:
        raise UsageError("a study compares at least two things: give two --workloads, two --frameworks or a --sweep")
    for corpus in plan["corpora"]:
        if corpus not in (*CORPUS_NAMES, USER_DATA):
            raise UsageError(f"--corpus must be among {', '.join(CORPUS_NAMES)}, got {corpus!r}")
    if plan["seeds"] < 1:
        raise UsageError(f"--seeds must be >= 1, got {plan['seeds']}")


def _resumed(campaign_dir: Path, asked: dict[str, Any], base: RunOptions) -> tuple[dict[str, Any], RunOptions]:
    """The campaign as recorded; arguments given again must agree with it."""
    try:
        recorded = read_json(campaign_dir / "campaign.json", "campaign.json (is this a study folder?)")
    except ResultReadError as e:
        raise UsageError(f"--resume {e}") from None
    if not isinstance(recorded, dict) or recorded.get("schema") != SCHEMA:
        raise UsageError(f"--resume {campaign_dir}: campaign.json is not a {SCHEMA} record")
    for key, value in asked.items():
        if value is not None and value != recorded[key]:
            raise UsageError(f"--resume {campaign_dir}: it was a study of {key}={recorded[key]}, not {value}; "
                             "give only --resume (and --output-dir) to finish it")
    _validate(recorded)
    options = {k: v for k, v in recorded.get("options", {}).items() if k in RECORDED_OPTIONS}
    return {k: recorded[k] for k in DEFAULTS}, dataclasses.replace(base, **options)
