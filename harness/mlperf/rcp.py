"""The reference-convergence (RCP) test as MLPerf applies it: to a whole set of runs of one closed benchmark, of at
least the benchmark's required number of runs (its rules YAML says how many), never to one run.

MLPerf's RCP checker asks whether a submission's runs converge in implausibly fewer samples than the reference
implementation's: it takes the set's olympic runs (the fastest and the slowest dropped) and holds their samples to
target against the reference convergence points. A single run, or a set smaller than the benchmark's count, is no
set: it gets no verdict, and the reason says so. `harness check`, the `--runs` score, `harness compare` and the
claim rules all call `rcp_test`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from harness.mlperf.rules import required_runs
from harness.mlperf.scoring import convergence_check, olympic
from harness.results.schema import RunRecord

RCP_FILE = "rcps.json"


def load_rcps() -> dict[str, Any]:
    """Reference convergence points shipped with harness (scripts/make_rcps.py builds them)."""
    return json.loads(resources.files("harness.mlperf").joinpath(RCP_FILE).read_text())


def reference_samples(workload: str, batch_size: int, rcps: dict[str, Any] | None = None) -> list[int] | None:
    entry = (rcps if rcps is not None else load_rcps()).get("workloads", {}).get(workload)
    if not entry or entry["batch_size"] != batch_size:
        return None
    return entry["samples_to_target"]


def reference_for(records: list[RunRecord], rcps: dict[str, Any] | None = None) -> tuple[list[int] | None, str]:
    """The reference convergence points the records' samples to target may be tested against, or None and why:
    they were made from closed-division runs (the registered workload, its default corpus and target), so only
    such runs compare with them (a control-corpus run converges in a fraction of the samples, by design)."""
    from harness.mlperf.runlog import division  # here: it loads mlperf_logging, which scoring alone does not need

    first = records[0]
    if any(division(r) != "closed" for r in records):
        return None, (f"no reference convergence points for open-division runs ({first.workload} on "
                      f"{first.corpus}): they were made from closed-division runs")
    ref = reference_samples(first.workload, first.batch_size, rcps)
    if ref is None:
        return None, f"no reference convergence points for {first.workload} at batch {first.batch_size}"
    return ref, ""


@dataclass(frozen=True)
class RcpResult:
    verdict: str  # one line: the verdict, or why there is none
    implausibly_fast: bool | None  # None: not tested (the verdict says why)
    runs: int
    required: int | None  # the benchmark's set size (its rules YAML); None: no closed rules
    figures: dict[str, Any] | None = None  # scoring.convergence_check's figures where it was tested

    @property
    def tested(self) -> bool:
        return self.implausibly_fast is not None

    def to_dict(self) -> dict[str, Any]:
        return {**(self.figures or {}), "verdict": self.verdict, "implausibly_fast": self.implausibly_fast,
                "runs": self.runs, "required_runs": self.required}


def rcp_test(records: list[RunRecord], rcps: dict[str, Any] | None = None) -> RcpResult:
    """The RCP test on a set of runs of one benchmark (the caller groups them; harness/results/identity.py)."""
    n = len(records)
    if not records:
        return RcpResult("no runs: nothing to test", None, 0, None)
    first = records[0]
    required = required_runs(first.workload)
    ref, why_not = reference_for(records, rcps)
    if ref is None:
        return RcpResult(why_not, None, n, required)
    rules = f"harness/mlperf/rules/closed_{first.workload}.yaml"
    if required is None or n < required:
        return RcpResult(f"not enough runs for the RCP test: {n} run(s) of {first.workload}; MLPerf applies it to a "
                         f"set of {required or 'the required number of'} runs ({rules})", None, n, required)
    if len(ref) < 2:
        return RcpResult(f"too few reference convergence points for {first.workload} ({len(ref)}; need 2)", None,
                         n, required)
    score = olympic([r.samples_to_target for r in records])
    if not score.valid:
        return RcpResult(f"no olympic set to test: {score.reason}", None, n, required)
    kept = [records[i].samples_to_target for i in score.kept]
    check = convergence_check([s for s in kept if s is not None], ref)
    return RcpResult(f"{check['verdict']} (the {len(kept)} olympic run(s) of {n}; a set of {required}, {rules})",
                     bool(check["implausibly_fast"]), n, required, check)
