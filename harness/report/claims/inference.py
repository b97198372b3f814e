"""Claims at inference (`stage = "inference"` in the claim file): J per generated token, tokens per joule or
samples per joule of served models, judged under the same rules as training claims where they apply.

The sides are inference records (harness infer). Their figures pair by the training seed of the run each record
served (two records of one trained model are one seed twice: Welch's then). The rules: each side's records of its
workload, one spec and one system a side; the same serving on both sides (scenario, batch, prompt and generated
lengths, sampling, capacity factor); LoadGen VALID and the served quality holding on every record; energy
measured at the claim's scope and complete, never modelled; at least MIN_RUNS trained seeds a side; and
`harness check` passing on every side's folder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from harness.report.claims.metrics import Metric
from harness.report.claims.rules import MIN_RUNS, Rule, energy_problem
from harness.report.claims.verdict import CANNOT, INCONCLUSIVE, how, verdict
from harness.report.stats import is_paired, log_mean_ci, pair_by_seed, runs_to_settle, seeded_ratio_ci
from harness.results.files import sha256_file
from harness.results.inference import InferenceRecord, ServingKey
from harness.results.reader import ResultReadError, read_records


def _accelerator_j(r: InferenceRecord) -> float | None:
    j = r.energy.part_j("accelerator")
    return j if j and r.energy.complete else None


def _per(figure: Callable[[InferenceRecord, float], float | None]) -> Callable[[InferenceRecord, str | None],
                                                                               float | None]:
    """A figure from a record's energy at a scope: the node's (the record's ranked energy) or the accelerators'."""

    def value(r: InferenceRecord, scope: str | None) -> float | None:
        j = _accelerator_j(r) if scope == "accelerator" else r.energy.ranked_j
        return figure(r, j) if j else None

    return value


def _j_per_token(r: InferenceRecord, j: float) -> float | None:
    return j / r.traffic.generated_tokens if r.traffic.generated_tokens else None


# The metrics a claim at inference can be about: the same Metric as training claims, reading inference records.
INFERENCE_METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("joules_per_token", "energy per generated token (J)", _per(_j_per_token)),
    Metric("tokens_per_j", "generated tokens per joule", _per(lambda r, j: r.traffic.generated_tokens / j),
           higher_is_better=True),
    Metric("samples_per_j", "samples per joule (MLPerf Inference's Offline and Server efficiency)",
           _per(lambda r, j: r.traffic.samples / j), higher_is_better=True),
    Metric("dense_over_sparse_joules_per_token", "dense / sparse energy per generated token", _per(_j_per_token),
           higher_is_better=True, within_one_system=True),
)}


def serving_setup(r: InferenceRecord, routing: bool = True) -> str:
    """How a record was served (results/inference.py `ServingKey`: the machine, trained corpus, framework,
    scenario, batch, lengths, sampling and LoadGen's settings); `routing`: with the Switch routing and capacity
    factor (not between dense and sparse, where only the sparse side has one: that side is held to one apart)."""
    key = ServingKey.of(r)
    setup = f"{key.traffic}, batch {key.batch}"
    return setup + (f", routing {key.switch_setting}" if routing and key.routing else "")


def assess_inference(claim, checker) -> dict[str, Any]:
    """The claim.json content for an inference claim (the shape harness/report/claims/assess.py writes)."""
    notes: list[str] = []
    reasons: list[str] = []
    paths = {"subject": claim.subject} | ({"baseline": claim.baseline} if claim.baseline else {})
    found: dict[str, list[InferenceRecord]] = {}
    for name, path in paths.items():
        try:
            records = read_records(path, skipped=lambda line, name=name: reasons.append(f"{name}: {line}"))
        except ResultReadError as e:
            reasons.append(f"{name}: {e}")
            records = []
        found[name] = [r for r in records if isinstance(r, InferenceRecord)]
        if len(found[name]) < len(records):
            notes.append(f"{name}: {len(records) - len(found[name])} record(s) that are not inference records left "
                         "out")
    if claim.metric.within_one_system:
        sides = {role: [r for r in found["subject"] if r.workload == w] for role, w in claim.workloads.items()}
    else:
        sides = {name: [r for r in rs if r.workload == claim.workloads["subject"]] for name, rs in found.items()}
    sides = {k: sorted(v, key=lambda r: (r.serving.run_seed, r.run_id)) for k, v in sides.items()}
    checked = {path: _checked(checker, path) for path in paths.values()}
    rules = _rules(sides, claim.scope, claim.metric.within_one_system, checked)
    reasons += [f"{rule.name}: {rule.detail}" for rule in rules if not rule.passed]
    values = {name: [(r.serving.run_seed, v) for r in side
                     if (v := claim.metric.value(r, claim.scope)) is not None and v > 0 and math.isfinite(v)]
              for name, side in sides.items()}
    names = list(sides)
    interval = None
    try:
        interval = (log_mean_ci([v for _, v in values[names[0]]], claim.confidence) if len(names) == 1 else
                    seeded_ratio_ci(values[names[0]], values[names[1]], claim.confidence))
    except ValueError as e:
        reasons.append(f"no interval: {e}")
    judged = CANNOT if reasons else verdict(claim.relation, claim.value, interval)
    more = None
    if judged == INCONCLUSIVE:
        paired = is_paired(interval)
        logs = ([[math.log(a / b) for a, b in pair_by_seed(*values.values()).pairs]] if paired else
                [[math.log(v) for _, v in side] for side in values.values()])
        more = runs_to_settle(logs, interval.ratio, claim.value, claim.confidence, paired=paired)
    of = f"{names[0]} / {names[1]}" if len(names) == 2 else names[0]
    n_now = min((len(v) for v in values.values()), default=0)
    return {
        "schema": "harness.claim/1", "verdict": judged, "text": claim.text, "claim": claim.as_read(),
        "metric": {"name": claim.metric.name, "what": claim.metric.what, "scope": claim.scope,
                   "higher_is_better": claim.metric.higher_is_better, "derived": None, "stage": "inference"},
        "estimate": {"olympic": {}, "value": None, "of": of,
                     "geometric_mean": None if interval is None else interval.ratio},
        "interval": None if interval is None else {"estimate": interval.ratio, "lo": interval.lo, "hi": interval.hi,
                                                   "level": interval.level, "method": interval.method,
                                                   "n": interval.n, "pairing": how(interval)},
        "rules": [{"rule": r.name, "passed": r.passed, "detail": r.detail} for r in rules],
        "reasons": reasons, "more_runs_per_side": None if more is None else max(0, more - n_now),
        "differences": _differences(sides), "notes": notes,
        "runs": {name: [_cite(r, claim) for r in side] for name, side in sides.items()},
        "created_unix_s": time.time(),
    }


def _checked(checker, folder) -> list[str]:
    try:
        return checker(folder)
    except ResultReadError as e:
        return [str(e)]


def _rules(sides: dict[str, list[InferenceRecord]], scope: str | None, dense_sparse: bool,
           checked: dict) -> list[Rule]:
    records = [r for side in sides.values() for r in side]
    seeds = {name: sorted({r.serving.run_seed for r in side}) for name, side in sides.items()}
    rules = [Rule("runs", all(len(s) >= MIN_RUNS for s in seeds.values()),
                  "; ".join(f"{n} {len(s)} trained seed(s) served" for n, s in seeds.items())
                  + f" (a side needs {MIN_RUNS})")]
    if not records:
        return rules
    if dense_sparse:
        dense, sparse = sides["dense"], sides["sparse"]
        ok = (all(r.serving.switch_routing is None for r in dense)
              and all(r.serving.switch_routing is not None for r in sparse))
        rules.append(Rule("dense and sparse", ok and bool(dense) and bool(sparse),
                          f"dense {_names(dense)}, sparse {_names(sparse)}"))
    else:
        rules.append(Rule("same workload", len({r.workload for r in records}) == 1, _names(records)))
    specs = {n: {r.serving.spec_sha256 for r in side} for n, side in sides.items()}
    one_spec = all(len(s) == 1 for s in specs.values()) and (dense_sparse or len(set().union(*specs.values())) == 1)
    rules.append(Rule("spec", one_spec, "; ".join(f"{n} {', '.join(sorted(h[:12] for h in s))}"
                                                  for n, s in specs.items())))
    systems = {n: sorted({r.environment.hardware.machine_class for r in side}) for n, side in sides.items()}
    one = all(len(s) == 1 for s in systems.values()) and (not dense_sparse or len(set().union(*systems.values())) == 1)
    rules.append(Rule("one system a side" if not dense_sparse else "one system", one,
                      "; ".join(f"{n} {' | '.join(s)}" for n, s in systems.items())))
    setups = sorted({serving_setup(r, routing=not dense_sparse) for r in records})
    if dense_sparse:  # the sparse side's routing held to one too: capacity 2 and capacity 16 are two computations
        routings = sorted({ServingKey.of(r).switch_setting for r in sides["sparse"]})
        if len(routings) > 1:
            setups.append("the sparse side was routed " + " and ".join(routings))
    rules.append(Rule("same serving", len(setups) == 1, setups[0] if len(setups) == 1 else
                      "the records were served differently: " + " | ".join(setups)))
    invalid = [f"{r.run_id}: {r.verdict()}" for r in records if not r.valid]
    rules.append(Rule("LoadGen VALID and quality", not invalid, f"{len(records)} record(s), every one VALID with its "
                      "quality holding" if not invalid else f"{len(invalid)} not; first: {invalid[0]}"))
    bad = [f"{r.run_id}: {why}" for r in records if (why := energy_problem(r, scope or "node"))]
    rules.append(Rule("energy", not bad, f"measured at the {scope} and complete on every record" if not bad else
                      f"{len(bad)} record(s) without a measured, complete {scope} figure; first: {bad[0]}"))
    problems = [p for found in checked.values() for p in found]
    rules.append(Rule("harness check", not problems, f"{len(checked)} folder(s), all checks passed" if not problems
                      else f"{len(problems)} problem(s), first: {problems[0]}"))
    return rules


def _differences(sides: dict[str, list[InferenceRecord]]) -> list[str]:
    facts = {"devices": lambda r: r.environment.hardware.machine_class,
             "decoder": lambda r: f"{r.serving.decoder.get('framework')} {r.serving.decoder.get('version')}",
             "trained with": lambda r: str(r.serving.decoder.get("trained_with")),
             "LoadGen": lambda r: str(r.loadgen.version if r.loadgen else None)}
    out = []
    for what, fact in facts.items():
        per = {n: sorted({fact(r) for r in side}) for n, side in sides.items()}
        if len({v for vs in per.values() for v in vs}) > 1:
            out.append(f"{what}: " + "; ".join(f"{n} {' | '.join(v)}" for n, v in per.items()))
    return out


def _names(records: list[InferenceRecord]) -> str:
    return "+".join(sorted({r.workload for r in records})) or "none"


def _cite(r: InferenceRecord, claim) -> dict[str, Any]:
    return {"run_id": r.run_id, "seed": r.serving.run_seed, "status": str(r.status), "workload": r.workload,
            "value": claim.metric.value(r, claim.scope), "energy_method": r.energy.label, "record": str(r.source),
            "sha256": sha256_file(r.source) if r.source and r.source.is_file() else None}
