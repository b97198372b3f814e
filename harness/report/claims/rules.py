"""The rules a claim must pass before its numbers mean anything (each one line, pass or fail), and the
differences between the sides that must be disclosed beside it.

After MLCommons' Results Messaging Guidelines: the sides measure the same thing (workload, spec, target and data:
the benchmark part of their identity), each side on one system set up one way; every run counts (a set of the
benchmark's required size, converged, at most one failure a side as the olympic score allows, not implausibly
fast by MLPerf's RCP test); energy is measured at the scope the metric names and complete, never modelled (no
perf/W from TDP); and `harness check` passes on every side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.mlperf.rcp import rcp_test
from harness.mlperf.rules import required_runs
from harness.results.identity import Identity, disclosed, identity
from harness.results.schema import SCHEMA, RunRecord

MIN_RUNS = 3  # MLPerf's olympic score drops the best and the worst run


@dataclass(frozen=True)
class Rule:
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"


def runs_needed(side: list[RunRecord]) -> int:
    """A side's set size: the benchmark's required runs for a closed set (its rules YAML), else the olympic 3."""
    from harness.mlperf.runlog import division  # loads mlperf_logging, which the rest of the claim may not need

    if side and all(division(r) == "closed" for r in side):
        return max(MIN_RUNS, required_runs(side[0].workload) or MIN_RUNS)
    return MIN_RUNS


def check_rules(sides: dict[str, list[RunRecord]], scope: str | None, dense_sparse: bool,
                checked: Mapping[Path, list[str]]) -> list[Rule]:
    """Every rule on the sides ({"subject", "baseline"} or {"dense", "sparse"}; an absolute bound has one).
    `checked`: each side's folder and what `harness check` found there. What makes runs the same benchmark, or
    one system, is their identity (harness/results/identity.py)."""
    runs = [r for side in sides.values() for r in side]
    needed = {name: runs_needed(side) for name, side in sides.items()}
    rules = [Rule("runs", all(len(s) >= needed[n] for n, s in sides.items()),
                  _per_side(sides, lambda s: f"{len(s)} run(s) of {_names(s)}")
                  + " (a set needs " + ", ".join(f"{needed[n]} ({n})" for n in sides) + ": the benchmark's set "
                  "size in its rules YAML for a closed set, else the olympic score's 3)")]
    if not runs:
        return rules
    ids = {name: [identity(r) for r in side] for name, side in sides.items()}
    every = [i for side in ids.values() for i in side]
    if dense_sparse:
        dense, sparse = sides["dense"], sides["sparse"]
        ok = all(r.num_experts == 0 for r in dense) and all(r.num_experts > 0 for r in sparse)
        rules.append(Rule("dense and sparse", ok, f"dense {_names(dense)} (experts {_set(dense, 'num_experts')}), "
                                                  f"sparse {_names(sparse)} (experts {_set(sparse, 'num_experts')})"))
        specs_ok = all(len({i.spec_sha256 for i in side}) == 1 for side in ids.values())
        rules.append(Rule("spec", specs_ok, "one spec a side" if specs_ok else _spread(ids, "spec_sha256")))
        systems = sorted({f"{i.system_text} ({_setup(i)})" for i in every})
        rules.append(Rule("one system", len(systems) == 1, systems[0] if len(systems) == 1 else
                          "the sides ran on more than one system or setup: " + "; ".join(systems)))
    else:
        hashes = {i.spec_sha256 for i in every}
        rules.append(Rule("same workload", len({i.workload for i in every}) == 1,
                          _per_side(sides, lambda s: _names(s))))
        rules.append(Rule("spec", len(hashes) == 1, f"one spec (sha256 {next(iter(hashes))[:12]})"
                          if len(hashes) == 1 else _spread(ids, "spec_sha256")))
        mixed = {n: sorted({f"{i.system_text} ({_setup(i)})" for i in side}) for n, side in ids.items()}
        rules.append(Rule("one system a side", all(len(m) == 1 for m in mixed.values()),
                          "; ".join(f"{n} {' | '.join(m)}" for n, m in mixed.items())))
    targets = {round(r.target.target_loss, 9) for r in runs}
    rules.append(Rule("target", len(targets) == 1, f"eval loss <= {', '.join(f'{t:.4f}' for t in sorted(targets))}"))
    data = {(i.data, i.eval_sha256) for i in every}
    rules.append(Rule("data", len(data) == 1, "; ".join(f"{c}, eval set sha256 {h[:12]}" for c, h in sorted(data))))
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
    """MLPerf's RCP test on each side's set (harness/mlperf/rcp.py): an open-division side has no reference
    points to test against, and a set too small is failed by the `runs` rule."""
    results = {name: rcp_test(side) for name, side in sides.items()}
    ok = not any(r.implausibly_fast for r in results.values())
    return Rule("not implausibly fast (RCP)", ok, "; ".join(f"{name}: {r.verdict}" for name, r in results.items()))


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
    """What differs between (or within) the sides and must be stated beside the claim: their systems and setups
    (identity), and what is disclosed but never matched (harness/results/identity.py `disclosed`)."""
    runs = [r for side in sides.values() for r in side]
    if not runs:
        return []
    facts: dict[str, Callable[[RunRecord], str]] = {
        "devices": lambda r: identity(r).system_text,
        "framework": lambda r: identity(r).framework,
        "precision": lambda r: identity(r).precision,
        "mesh": lambda r: identity(r).mesh,
        **{what: (lambda r, what=what: disclosed(r)[what]) for what in disclosed(runs[0])},
        "record schema": lambda r: str(r.read_schema or SCHEMA),
    }
    out = []
    for what, fact in facts.items():
        per_side = {name: sorted({fact(r) for r in side}) for name, side in sides.items()}
        if len({v for values in per_side.values() for v in values}) > 1:
            out.append(f"{what}: " + "; ".join(f"{name} {' | '.join(values)}" for name, values in per_side.items()))
    return out


def _setup(i: Identity) -> str:
    return f"{i.framework}, {i.precision}, mesh {i.mesh}"


def _per_side(sides: dict[str, list[RunRecord]], say: Callable[[list[RunRecord]], str]) -> str:
    return "; ".join(f"{name} {say(side)}" for name, side in sides.items())


def _names(runs: list[RunRecord]) -> str:
    return "+".join(sorted({r.workload for r in runs})) or "none"


def _set(runs: list[RunRecord], attr: str) -> str:
    return ",".join(str(x) for x in sorted({getattr(r, attr) for r in runs}))


def _spread(ids: dict[str, list[Identity]], what: str) -> str:
    return "; ".join(f"{name} {len({getattr(i, what) for i in side})} {what.split('_')[0]}(s) "
                     f"({', '.join(sorted({getattr(i, what)[:12] for i in side}))})" for name, side in ids.items())
