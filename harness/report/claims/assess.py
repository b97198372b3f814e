"""`harness claim CLAIM.toml`: one verdict on a claim, with its interval, every rule, and every run cited.

SUPPORTED when the whole interval satisfies the relation, NOT SUPPORTED when the whole interval violates it,
INCONCLUSIVE otherwise (with about how many more runs a side would settle it, from the observed spread), and
CANNOT BE ASSESSED when a rule fails (harness/report/claims/rules.py), with every reason.

Statistics: runs of two sides with the same seed share their initial weights and data order, so they are paired
by seed (stats.seeded_ratio_ci: a t interval on the per-seed log ratios, as `harness study` does; a run whose seed
the other side lacks is left out and counted); where a seed ran twice on a side, Welch's interval on the log
values of every run. An absolute bound is judged on the interval of the subject's geometric mean. The point estimate
beside it is MLPerf's olympic score of each side (for a figure where higher is better, the olympic mean of its
reciprocal, so that a failed run still counts as the worst), so the claim's number is the one MLPerf publishes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from harness.mlperf.scoring import olympic
from harness.report.claims.claim_file import Claim
from harness.report.claims.rules import check_rules, differences
from harness.report.claims.verdict import CANNOT, INCONCLUSIVE
from harness.report.claims.verdict import how as _how
from harness.report.claims.verdict import verdict as _verdict
from harness.report.stats import RatioCI, is_paired, log_mean_ci, pair_by_seed, runs_to_settle, seeded_ratio_ci
from harness.results.files import sha256_file
from harness.results.reader import ResultReadError, read_records, runs_only
from harness.results.schema import RunRecord

SCHEMA = "harness.claim/1"


def assess(claim: Claim, checker=None) -> dict[str, Any]:
    """The claim's verdict and everything behind it (claim.json's content). `checker(path) -> problems` is
    `harness check` (harness/mlperf/check.py); tests may pass their own."""
    checker = checker or _harness_check
    if claim.stage == "inference":
        from harness.report.claims.inference import assess_inference

        return assess_inference(claim, checker)
    notes: list[str] = []
    reasons: list[str] = []
    sides, folders = _sides(claim, notes, reasons)
    checked = {folder: _checked(checker, folder) for folder in folders}
    rules = check_rules(sides, claim.scope, claim.metric.within_one_system, checked)
    reasons += [f"{rule.name}: {rule.detail}" for rule in rules if not rule.passed]
    values = {name: _values(claim, side) for name, side in sides.items()}
    estimate, interval = _estimate(claim, sides, values, reasons)
    verdict = CANNOT if reasons else _verdict(claim.relation, claim.value, interval)
    more = None
    if verdict == INCONCLUSIVE:
        logs = _log_spread(values, is_paired(interval))
        more = runs_to_settle(logs, interval.ratio, claim.value, claim.confidence, paired=is_paired(interval))
    n_now = min((len(v) for v in values.values()), default=0)
    return {
        "schema": SCHEMA, "verdict": verdict, "text": claim.text, "claim": claim.as_read(),
        "metric": {"name": claim.metric.name, "what": claim.metric.what, "scope": claim.scope,
                   "higher_is_better": claim.metric.higher_is_better,
                   "derived": (f"derived: {claim.metric.derived}; a normalisation, not an MLPerf-verified figure"
                               if claim.metric.derived else None)},
        "estimate": estimate,
        "interval": None if interval is None else {"estimate": interval.ratio, "lo": interval.lo, "hi": interval.hi,
                                                   "level": interval.level, "method": interval.method,
                                                   "n": interval.n, "pairing": _how(interval)},
        "rules": [{"rule": r.name, "passed": r.passed, "detail": r.detail} for r in rules],
        "reasons": reasons,
        "more_runs_per_side": None if more is None else max(0, more - n_now),
        "differences": differences(sides) if sides else [],
        "notes": notes,
        "runs": {name: [_cite(r, claim) for r in side] for name, side in sides.items()},
        "created_unix_s": time.time(),
    }


def _checked(checker, folder: Path) -> list[str]:
    """What `harness check` found; a record it refuses to read (a trace changed after the run) is a finding."""
    try:
        return checker(folder)
    except ResultReadError as e:
        return [str(e)]


def _harness_check(path: Path) -> list[str]:
    from harness.mlperf.check import check_package, check_run_or_set
    from harness.mlperf.package import MANIFEST

    if any(path.rglob(MANIFEST)):
        return check_package(path)
    if (path / "result.json").is_file() or (path / "score.json").is_file():
        return check_run_or_set(path)
    problems = []
    for run in sorted({f.parent for f in path.rglob("result.json")}):
        problems += check_run_or_set(run)
    return problems


def _sides(claim: Claim, notes: list[str], reasons: list[str]) -> tuple[dict[str, list[RunRecord]], list[Path]]:
    """Each side's runs of its workload, and the folders `harness check` must pass on."""
    paths = {"subject": claim.subject} | ({"baseline": claim.baseline} if claim.baseline else {})
    found: dict[str, list[RunRecord]] = {}
    for name, path in paths.items():
        try:
            # A record that cannot be read cannot be cited: the claim cannot be assessed, and says which.
            found[name] = runs_only(read_records(path, skipped=lambda line, name=name: reasons.append(
                f"{name}: {line}")), lambda line, name=name: notes.append(f"{name}: {line}"))
        except ResultReadError as e:
            reasons.append(f"{name}: {e}")
            found[name] = []
    if claim.metric.within_one_system:
        sides = {role: [r for r in found["subject"] if r.workload == name] for role, name in claim.workloads.items()}
    else:
        sides = {name: [r for r in runs if r.workload == claim.workloads["subject"]] for name, runs in found.items()}
    wanted = set(claim.workloads.values())
    for name, runs in found.items():
        others = sorted({r.workload for r in runs} - wanted)
        if others:
            about = ", ".join(sorted(wanted))
            notes.append(f"{name}: runs of {', '.join(others)} left out (the claim is about {about})")
    return {k: sorted(v, key=lambda r: (r.seed, r.run_id)) for k, v in sides.items()}, list(paths.values())


def _values(claim: Claim, side: list[RunRecord]) -> list[tuple[int, float]]:
    """(seed, the metric's figure) of each run that converged and has it."""
    out = []
    for r in side:
        v = claim.metric.value(r, claim.scope) if r.converged else None
        if v is not None and v > 0 and math.isfinite(v):
            out.append((r.seed, v))
    return out


def _side_score(claim: Claim, side: list[RunRecord]) -> dict[str, Any]:
    """MLPerf's olympic score of a side's figure; a run without one (not converged) counts as the worst."""
    higher = claim.metric.higher_is_better and not claim.metric.within_one_system
    figures = [claim.metric.value(r, claim.scope) if r.converged else None for r in side]
    score = olympic([None if v is None else (1.0 / v if higher else v) for v in figures])
    value = None if score.value is None else (1.0 / score.value if higher else score.value)
    return {"value": value, "valid": score.valid, "reason": score.reason, "runs": len(side),
            "kept": [side[i].run_id for i in score.kept]}


def _estimate(claim: Claim, sides: dict[str, list[RunRecord]], values: dict[str, list[tuple[int, float]]],
              reasons: list[str]) -> tuple[dict[str, Any], RatioCI | None]:
    scores = {name: _side_score(claim, side) for name, side in sides.items()}
    for name, s in scores.items():
        if not s["valid"]:
            reasons.append(f"{name}: no olympic score ({s['reason']})")
    names = list(sides)
    point = None
    if all(s["valid"] for s in scores.values()):
        first = scores[names[0]]["value"]
        point = first / scores[names[1]]["value"] if len(names) == 2 else first
    estimate = {"olympic": scores, "value": point,
                "of": f"{names[0]} / {names[1]}" if len(names) == 2 else names[0]}
    try:
        if len(names) == 1:
            interval = log_mean_ci([v for _, v in values[names[0]]], claim.confidence)
        else:
            interval = seeded_ratio_ci(values[names[0]], values[names[1]], claim.confidence)
    except ValueError as e:
        reasons.append(f"no interval: {e}")
        return estimate, None
    return estimate, interval


def _log_spread(values: dict[str, list[tuple[int, float]]], paired: bool) -> list[list[float]]:
    """The log values whose spread says how many runs would settle the claim: per-seed log ratios when paired."""
    if paired:
        return [[math.log(a / b) for a, b in pair_by_seed(*values.values()).pairs]]
    return [[math.log(v) for _, v in side] for side in values.values()]


def _cite(r: RunRecord, claim: Claim) -> dict[str, Any]:
    return {"run_id": r.run_id, "seed": r.seed, "status": str(r.status), "workload": r.workload,
            "value": claim.metric.value(r, claim.scope), "energy_method": r.energy.label,
            "record": str(r.source), "sha256": sha256_file(r.source) if r.source and r.source.is_file() else None}


def judge(claim_path: Path, output_dir: Path | None = None) -> tuple[dict[str, Any], Path, Path]:
    """Read the claim file, assess it, and write claim.json and claim.md (into `output_dir`, by default the claim
    file's folder); returns the result and both paths."""
    from harness.report.claims.claim_file import read_claim
    from harness.report.claims.render import markdown
    from harness.results.files import atomic_write_text, check_writable, write_json

    claim = read_claim(claim_path)
    out = Path(output_dir) if output_dir is not None else claim.path.parent
    check_writable(out, "--output-dir")
    result = assess(claim)
    write_json(out / "claim.json", result)
    atomic_write_text(out / "claim.md", markdown(result))
    return result, out / "claim.json", out / "claim.md"
