"""The site's rows: one per system, benchmark (a workload on one corpus with one spec) and framework, each figure
from the typed record's own properties, the time and energy to target scored the MLPerf way (olympic, from 3 runs
up), the energy method said, never merged. Also the dense-versus-sparse pairs of a system, and the rows as
MLCommons' results summarizer names its columns.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.mlperf.runlog import division
from harness.mlperf.scoring import olympic
from harness.report.site.collect import UNPACKAGED, SiteRun, System
from harness.report.stats import RatioCI, is_paired, median, seeded_ratio_ci
from harness.results.identity import Identity, identity
from harness.results.schema import RunRecord

MEASURED, MODELLED, PARTLY, INCOMPLETE = "measured", "modelled", "partly modelled", "incomplete"
MIXED = "mixed methods"  # runs of one row metered by different methods: their energies are not scored together


@dataclass(frozen=True)
class Scored:
    value: float | None
    how: str  # "olympic mean of 3 of 5 runs", "median of 2 converged runs (an olympic score needs 3)", ...


@dataclass
class Row:
    """One system's runs of one benchmark: runs of one identity (harness/results/identity.py: workload, spec,
    data, framework, precision, mesh, accelerators and host) under one submitter's system name."""

    system: System
    ident: Identity
    runs: list[SiteRun]
    benchmark: str  # the workload as the pages name it: with what tells it from the system's other rows

    @property
    def workload(self) -> str:
        return self.ident.workload

    @property
    def framework(self) -> str:
        return self.ident.framework

    @property
    def data(self) -> str:
        """'' for the registered corpus, else which ('control corpus', 'data 1a2b3c4d5e6f')."""
        return self.ident.data_text

    @property
    def records(self) -> list[RunRecord]:
        return [r.record for r in self.runs]

    @property
    def first(self) -> RunRecord:
        return self.runs[0].record

    @property
    def converged(self) -> list[RunRecord]:
        return [r for r in self.records if r.converged]

    def scored(self, get: Callable[[RunRecord], float | None]) -> Scored:
        """MLPerf's olympic score over the runs (a run without the figure counts as the worst); below 3 runs, the
        median of those that have it, said so."""
        values = [get(r) for r in self.records]
        if len(values) >= 3:
            score = olympic(values)
            return Scored(score.value, score.reason if score.valid else f"no olympic score: {score.reason}")
        return Scored(median(values), f"median of {sum(v is not None for v in values)} of {len(values)} run(s) (an "
                      "olympic score needs 3)")

    def median(self, get: Callable[[RunRecord], float | None]) -> float | None:
        return median(get(r) for r in self.converged)

    @property
    def one_method(self) -> bool:
        """Whether every run's energy came from the same meters: a figure without the accelerator's meter, or a
        modelled one, scored together with a measured one would be neither."""
        return len({r.energy.method for r in self.records}) == 1

    def energy_scored(self) -> Scored:
        if not self.one_method:
            return Scored(None, "energy methods differ between the runs (" + "; ".join(self.methods)
                          + "): not scored together")
        return self.scored(lambda r: r.energy_to_target_j)

    def energy_median(self, get: Callable[[RunRecord], float | None]) -> float | None:
        """The median of a per-joule figure, over one method's runs only (None where the row mixes methods)."""
        return self.median(get) if self.one_method else None

    @property
    def method(self) -> str:
        """measured, modelled, partly modelled, mixed methods, or incomplete (any converged run whose figure may
        not be ranked)."""
        if any(r.converged and not r.energy.rankable for r in self.records):
            return INCOMPLETE
        if not self.one_method:
            return MIXED
        words = {r.energy.method_word for r in self.records}
        return words.pop() if len(words) == 1 else PARTLY

    @property
    def methods(self) -> list[str]:
        return sorted({r.energy.label for r in self.records})

    @property
    def check(self) -> tuple[str, list[str]]:
        """("pass" | "fail" | "not checked", the problems), over the folders the row's runs came from."""
        sources = {id(r.source): r.source for r in self.runs}.values()
        problems = [p for s in sources for p in (s.check or [])]
        if problems:
            return "fail", problems
        if any(s.check is None for s in sources):
            return "not checked", ["records shipped without their traces and logs: nothing for check to recompute"]
        return "pass", []

    @property
    def accelerator(self) -> str:
        accel = self.first.environment.hardware.accelerators
        return f"{len(accel)} x {accel[0].kind}" if accel else "none (CPU)"

    @property
    def host_cpu(self) -> str:
        hw = self.first.environment.hardware
        return f"{hw.cpu_model} ({hw.logical_cpus} CPUs)"

    @property
    def model(self) -> str:
        r = self.first
        kind = f"MoE, {r.num_experts} experts" if r.num_experts else "dense"
        total, act = r.training.params_total, r.training.params_activated
        if not (total and act):
            return kind
        return f"{kind}; {_count(total)} params" + (f", {_count(act)} active" if act != total else "")

    @property
    def precision(self) -> str:
        return str(self.first.spec["model"].get("dtype", "float32"))

    @property
    def framework_text(self) -> str:
        version = self.first.training.framework.get("version")
        return f"{self.framework} {version}" if version else self.framework

    @property
    def regions(self) -> str:
        return ", ".join(sorted({r.carbon.region for r in self.records if r.carbon}))

    def division_and_status(self) -> tuple[str, str]:
        desc = self.system.description or {}
        if desc:
            return str(desc.get("division", "")), str(desc.get("status", ""))
        return " / ".join(sorted({division(r) for r in self.records})), "not packaged"


def rows_of(runs: list[SiteRun]) -> list[Row]:
    """Runs grouped by submitter's system and identity: a figure scored over runs of another corpus, spec,
    framework or machine would be no benchmark's figure (the control corpus's runs cost a hundredth of the
    default's; a package's system name can cover two machines)."""
    grouped: dict[tuple[str, Identity], list[SiteRun]] = {}
    for run in runs:
        grouped.setdefault((run.system.key, identity(run.record)), []).append(run)
    by_system: dict[str, list[Identity]] = {}
    for key, ident in grouped:
        by_system.setdefault(key, []).append(ident)
    rows = [Row(group[0].system, ident, sorted(group, key=lambda x: (x.record.seed, x.record.run_id)),
                _name(ident, by_system[key])) for (key, ident), group in grouped.items()]
    # MLCommons' summarizer orders by division, availability, system; then our workload.
    return sorted(rows, key=lambda row: (row.system.org == UNPACKAGED, row.system.key, row.benchmark, row.framework))


def _name(ident: Identity, among: list[Identity]) -> str:
    """The identity's label among its system's rows, with the machine where one system name covers two."""
    name = ident.label(among)
    if any(o.system != ident.system and o.label(among) == name for o in among):
        name += f" on {ident.system_text}"
    return name


@dataclass(frozen=True)
class Pair:
    system: System
    dense: Row
    sparse: Row
    ci: RatioCI | None
    note: str


def dense_sparse_pairs(rows: list[Row]) -> list[Pair]:
    """Per system, each dense-X / switch-X pair it ran on the same data: dense / sparse energy to target, with its
    interval (stats.seeded_ratio_ci: paired by seed, else Welch's where a seed repeats), over the runs of the one
    energy method both rows share."""
    pairs = []
    for dense in rows:
        if not dense.workload.startswith("dense-"):
            continue
        twin = "switch-" + dense.workload.removeprefix("dense-")
        for sparse in rows:
            a, b = dense.ident, sparse.ident
            if (sparse.system.key, b.workload, b.data, b.eval_sha256, b.setup, b.system) != (
                    dense.system.key, twin, a.data, a.eval_sha256, a.setup, a.system):
                continue
            # One energy method on both sides: the one both ran most under (a ratio of a figure without the
            # accelerator's meter to one with it would measure the meters).
            method, said = _shared_method(dense, sparse)
            a = [(r.seed, v) for r in dense.records if r.energy.method == method
                 and (v := r.energy_to_target_j) is not None]
            b = [(r.seed, v) for r in sparse.records if r.energy.method == method
                 and (v := r.energy_to_target_j) is not None]
            ci, note = None, said
            try:
                ci = seeded_ratio_ci(a, b)
                left = f", {ci.left_out} run(s) without a partner seed left out" if ci.left_out else ""
                note += (f"paired by seed, {ci.n} pairs{left}" if is_paired(ci)
                         else f"unpaired (a seed repeats, or fewer than 2 shared): Welch, {len(a)} and {len(b)} runs")
            except ValueError as e:
                note += f"no ratio: {e}"
            pairs.append(Pair(dense.system, dense, sparse, ci, note))
    return pairs


def _shared_method(dense: Row, sparse: Row) -> tuple[str | None, str]:
    """The energy method both rows' runs share (the one with the most runs), and what was left out, in words."""
    counts = Counter(r.energy.method for r in dense.records) & Counter(r.energy.method for r in sparse.records)
    if not counts:
        return None, "energy methods differ between the two: "
    method = max(counts, key=lambda m: (counts[m], m))
    if dense.one_method and sparse.one_method:
        return method, ""
    return method, f"only the runs metered by {method}; "


def summary_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """One dict a row, MLCommons' result summarizer's column names where they mean the same (time_to_train in
    minutes, as it prints it), then ours."""
    out = []
    for row in rows:
        div, status = row.division_and_status()
        hw = row.first.environment.hardware
        t = row.scored(lambda r: r.time_to_target_s)
        e = row.energy_scored()
        out.append({
            "division": div, "availability": status, "submitter": row.system.org, "system": row.system.name,
            "number_of_nodes": (row.first.parallelism or {}).get("processes", 1),
            "host_processor_model_name": hw.cpu_model, "host_processors_count": (hw.cpu or {}).get("sockets"),
            "accelerator_model_name": hw.accelerators[0].kind if hw.accelerators else None,
            "accelerators_count": len(hw.accelerators), "framework": row.framework_text, "benchmark": row.benchmark,
            "workload": row.workload, "data": row.data or "registered corpus",
            "time_to_train": t.value / 60 if t.value is not None else None, "time_to_train_s": t.value,
            "time_scoring": t.how, "energy_to_train_j": e.value, "energy_scoring": e.how,
            "samples_to_converge": row.median(lambda r: r.samples_to_target), "runs": len(row.runs),
            "converged": len(row.converged), "precision": row.precision, "model": row.model,
            "energy_method": row.method, "energy_methods": row.methods,
            "tokens_per_j": row.energy_median(lambda r: r.tokens_per_j),
            "accelerator_tokens_per_j": row.energy_median(_boards("tokens_per_j")),
            "model_flops_per_j": row.energy_median(lambda r: r.model_flops_per_j),
            "accelerator_model_flops_per_j": row.energy_median(_boards("model_flops_per_j")),
            "mfu": row.median(lambda r: r.mfu),
            "co2e_gross_g": _g(row.energy_median(lambda r: r.co2e_to_target_kg)), "region": row.regions,
            "check": row.check[0], "run_ids": [r.run_id for r in row.records],
        })
    return out


def _boards(figure: str) -> Callable[[RunRecord], float | None]:
    """A figure of the accelerator boards alone, or None for a run without an accelerator meter."""
    return lambda r: getattr(r.accelerators, figure) if r.accelerators else None


def _g(kg: float | None) -> float | None:
    return kg * 1000 if kg is not None and math.isfinite(kg) else None


def _count(n: int) -> str:
    """A parameter count as papers write it: 167.4k, 1.6B."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.4g}{unit}"
    return str(n)
