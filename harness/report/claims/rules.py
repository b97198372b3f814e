"""The rules a claim must pass before its numbers mean anything (each one line, pass or fail), and the
differences between the sides that must be disclosed beside it.

After MLCommons' Results Messaging Guidelines: the sides measure the same thing (workload, spec, target, data,
schema); every run counts (converged, at most one failure a side as the olympic score allows, not implausibly
fast); energy is measured at the scope the metric names and complete, never modelled (no perf/W from TDP); and
`harness check` passes on every side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.mlperf.runset import reference_for
from harness.mlperf.scoring import convergence_check
from harness.results.schema import SCHEMA, RunRecord
from workloads.specs import RECORD_ONLY

MIN_RUNS = 3  # MLPerf's olympic score drops the best and the worst run


@dataclass(frozen=True)
class Rule:
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a recorded spec without the fields that only record how it came about (its calibration)."""
    kept = {k: v for k, v in spec.items() if (k,) not in RECORD_ONLY}
    kept["optimizer"] = {k: v for k, v in (spec.get("optimizer") or {}).items()
                         if ("optimizer", k) not in RECORD_ONLY}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def check_rules(sides: dict[str, list[RunRecord]], scope: str | None, dense_sparse: bool,
                checked: Mapping[Path, list[str]]) -> list[Rule]:
    """Every rule on the sides ({"subject", "baseline"} or {"dense", "sparse"}; an absolute bound has one).
    `checked`: each side's folder and what `harness check` found there."""
    runs = [r for side in sides.values() for r in side]
    rules = [Rule("runs", all(len(s) >= MIN_RUNS for s in sides.values()),
                  _per_side(sides, lambda s: f"{len(s)} run(s) of {_names(s)}")
                  + f" (the olympic score needs >= {MIN_RUNS} a side)")]
    if not runs:
        return rules
    if dense_sparse:
        dense, sparse = sides["dense"], sides["sparse"]
        ok = all(r.num_experts == 0 for r in dense) and all(r.num_experts > 0 for r in sparse)
        rules.append(Rule("dense and sparse", ok, f"dense {_names(dense)} (experts {_set(dense, 'num_experts')}), "
                                                  f"sparse {_names(sparse)} (experts {_set(sparse, 'num_experts')})"))
        specs_ok = all(len({spec_hash(r.spec) for r in s}) == 1 for s in sides.values())
        rules.append(Rule("spec", specs_ok, "one spec a side" if specs_ok else _spread(sides, "spec")))
    else:
        hashes = {spec_hash(r.spec) for r in runs}
        rules.append(Rule("same workload", len({r.workload for r in runs}) == 1,
                          _per_side(sides, lambda s: _names(s))))
        rules.append(Rule("spec", len(hashes) == 1, f"one spec (sha256 {next(iter(hashes))[:12]})"
                          if len(hashes) == 1 else _spread(sides, "spec")))
    targets = {round(r.target.target_loss, 9) for r in runs}
    rules.append(Rule("target", len(targets) == 1, f"eval loss <= {', '.join(f'{t:.4f}' for t in sorted(targets))}"))
    data = {(r.corpus, r.data.get("eval_sha256")) for r in runs}
    rules.append(Rule("data", len(data) == 1, "; ".join(f"{c}, eval set sha256 {str(h)[:12]}" for c, h in data)))
    schemas = sorted({r.read_schema or SCHEMA for r in runs})
    older = [s for s in schemas if s != SCHEMA]
    rules.append(Rule("schema", True, ", ".join(schemas) + (f" ({', '.join(older)} read through one upgrade)"
                                                            if older else "")))
    rules.append(Rule("converged", all(sum(not r.converged for r in s) <= 1 for s in sides.values()),
                      _per_side(sides, lambda s: f"{sum(r.converged for r in s)} of {len(s)} converged")
                      + " (at most one failed run a side)"))
    rules.append(_convergence(sides))
    rules.append(_energy(runs, scope))
    problems = [p for found in checked.values() for p in found]
    rules.append(Rule("harness check", not problems,
                      f"{len(checked)} folder(s), all checks passed" if not problems else
                      f"{len(problems)} problem(s), first: {problems[0]}"))
    return rules


def _convergence(sides: dict[str, list[RunRecord]]) -> Rule:
    details, ok = [], True
    for name, side in sides.items():
        samples = [r.samples_to_target for r in side if r.samples_to_target is not None]
        ref, why_not = reference_for(side) if side else (None, "no runs")
        if not samples or not ref or len(ref) < 2:
            details.append(f"{name}: {why_not or 'too few reference convergence points to test against'}")
            continue
        check = convergence_check(samples, ref)
        ok &= not check["implausibly_fast"]
        details.append(f"{name}: {check['verdict']}")
    return Rule("not implausibly fast (RCP)", ok, "; ".join(details))


def _energy(runs: list[RunRecord], scope: str | None) -> Rule:
    if scope is None:
        return Rule("energy", True, "not an energy metric")
    bad = [f"{r.run_id}: {why}" for r in runs if (why := energy_problem(r, scope))]
    if bad:
        return Rule("energy", False, f"{len(bad)} run(s) without a measured, complete {scope} figure; first: {bad[0]}")
    methods = sorted({m for r in runs for m in _scope_methods(r, scope)})
    return Rule("energy", True, f"measured at the {scope} and complete on every run ({', '.join(methods)})")


def energy_problem(r: RunRecord, scope: str) -> str | None:
    """Why a run's energy may not back a claim at `scope` (None: it may): measured by a meter of that scope,
    complete, and never modelled (MLPerf allows no perf/W from TDP or rated power)."""
    e = r.energy
    if not e.complete:
        return "energy figure incomplete"
    if scope == "accelerator":
        acc = [c for c in e.components.values() if c.part == "accelerator"]
        if not acc:
            return "no accelerator meter (the run's energy has no accelerator component)"
        modelled = sorted({c.method for c in acc if c.method.startswith("modelled:")})
        return f"accelerator energy modelled ({', '.join(modelled)})" if modelled else None
    if e.node_j is None:
        return (f"no node meter (the energy is {e.method}: the sum of the metered parts, not the node); a node "
                "claim needs an external node meter or an imported PTDaemon log")
    return f"node energy modelled ({', '.join(e.modelled_methods)})" if e.modelled_methods else None


def _scope_methods(r: RunRecord, scope: str) -> list[str]:
    if scope == "accelerator":
        return [c.method for c in r.energy.components.values() if c.part == "accelerator"]
    return list(r.energy.methods)


def differences(sides: dict[str, list[RunRecord]]) -> list[str]:
    """What differs between (or within) the sides and must be stated beside the claim."""
    facts: dict[str, Callable[[RunRecord], str]] = {
        "devices": lambda r: _devices(r),
        "framework": lambda r: f"{r.framework} {r.training.framework.get('version', '')}".strip(),
        "precision": lambda r: str(r.spec["model"].get("dtype", "float32")),
        "mesh": lambda r: _mesh(r.parallelism or {}),
        "software": lambda r: ", ".join(f"{k} {v}" for k, v in sorted((r.environment.software.get("packages")
                                                                       or {}).items()) if v),
        "harness commit": lambda r: str(r.environment.software.get("git_commit")),
        "energy method": lambda r: r.energy.method,
    }
    out = []
    for what, fact in facts.items():
        per_side = {name: sorted({fact(r) for r in side}) for name, side in sides.items()}
        if len({v for values in per_side.values() for v in values}) > 1:
            out.append(f"{what}: " + "; ".join(f"{name} {' | '.join(values)}" for name, values in per_side.items()))
    return out


def _mesh(p: Mapping[str, Any]) -> str:
    return (f"data={p.get('data', 1)},expert={p.get('expert', 1)} on {p.get('devices', 1)} device(s), "
            f"{p.get('processes', 1)} process(es)")


def _devices(r: RunRecord) -> str:
    hw = r.environment.hardware
    accel = hw.accelerators
    if accel:
        return f"{len(accel)}x {accel[0].kind}"
    return f"{hw.logical_cpus} CPU(s) of {hw.cpu_model}"


def _per_side(sides: dict[str, list[RunRecord]], say: Callable[[list[RunRecord]], str]) -> str:
    return "; ".join(f"{name} {say(side)}" for name, side in sides.items())


def _names(runs: list[RunRecord]) -> str:
    return "+".join(sorted({r.workload for r in runs})) or "none"


def _set(runs: list[RunRecord], attr: str) -> str:
    return ",".join(str(x) for x in sorted({getattr(r, attr) for r in runs}))


def _spread(sides: dict[str, list[RunRecord]], what: str) -> str:
    return _per_side(sides, lambda s: f"{len({spec_hash(r.spec) for r in s})} {what}(s) "
                                      f"({', '.join(sorted({spec_hash(r.spec)[:12] for r in s}))})")
