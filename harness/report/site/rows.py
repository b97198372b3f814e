"""The site's rows: one per system, benchmark (a workload on one corpus with one spec) and framework, each figure
from the typed record's own properties, the time and energy to target scored the MLPerf way (olympic, from 3 runs
up), the energy method said, never merged. Also the dense-versus-sparse pairs of a system, and the rows as
MLCommons' results summarizer names its columns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.mlperf.runlog import division
from harness.mlperf.scoring import olympic
from harness.report.claims.rules import spec_hash
from harness.report.site.collect import UNPACKAGED, SiteRun, System
from harness.report.stats import RatioCI, is_paired, seeded_ratio_ci
from harness.results.schema import RunRecord

MEASURED, MODELLED, PARTLY, INCOMPLETE = "measured", "modelled", "partly modelled", "incomplete"


@dataclass(frozen=True)
class Scored:
    value: float | None
    how: str  # "olympic mean of 3 of 5 runs", "median of 2 converged runs (an olympic score needs 3)", ...


@dataclass
class Row:
    """One system's runs of one benchmark: a workload on one data set with one spec, in one framework."""

    system: System
    workload: str
    framework: str
    runs: list[SiteRun]
    data: str = ""  # "" for the registered corpus, else which ("control corpus", "data 1a2b3c4d")
    variant: str = ""  # set where one system ran the workload under more than one spec ("spec 0f3e...")

    @property
    def benchmark(self) -> str:
        """The workload as the pages name it: with its data and spec where they are not the registered ones."""
        more = ", ".join(x for x in (self.data, self.variant) if x)
        return f"{self.workload} ({more})" if more else self.workload

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
        kept = [v for v in values if v is not None]
        return Scored(statistics.median(kept) if kept else None,
                      f"median of {len(kept)} of {len(values)} run(s) (an olympic score needs 3)")

    def median(self, get: Callable[[RunRecord], float | None]) -> float | None:
        kept = [v for r in self.converged if (v := get(r)) is not None]
        return statistics.median(kept) if kept else None

    @property
    def method(self) -> str:
        """measured, modelled, partly modelled or incomplete (any converged run whose figure may not be ranked)."""
        if any(r.converged and not r.energy.rankable for r in self.records):
            return INCOMPLETE
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
    """Runs grouped by system, workload, data, spec and framework: a figure scored over runs of another corpus,
    target or spec would be no benchmark's figure (the control corpus's runs cost a hundredth of the default's)."""
    grouped: dict[tuple[str, str, str, str, str], list[SiteRun]] = {}
    for run in runs:
        r = run.record
        key = (run.system.key, r.workload, data_label(r), r.framework, spec_hash(r.spec))
        grouped.setdefault(key, []).append(run)
    specs: dict[tuple[str, ...], int] = {}
    for key in grouped:
        specs[key[:4]] = specs.get(key[:4], 0) + 1
    rows = [Row(group[0].system, workload, framework, sorted(group, key=lambda x: (x.record.seed, x.record.run_id)),
                data, f"spec {digest[:8]}" if specs[key[:4]] > 1 else "")
            for key, group in grouped.items() for (_, workload, data, framework, digest) in [key]]
    # MLCommons' summarizer orders by division, availability, system; then our workload.
    return sorted(rows, key=lambda row: (row.system.org == UNPACKAGED, row.system.key, row.benchmark, row.framework))


def data_label(r: RunRecord) -> str:
    """What a run trained on, where it is not the workload's registered corpus."""
    if r.data.get("kind") == "procedural":
        corpus = str(r.data.get("corpus", "default"))
        return "" if corpus == "default" else f"{corpus} corpus"
    digest = str(r.data.get("sha256") or r.data.get("eval_sha256") or "")
    return f"data {digest[:8]}" if digest else f"{r.data.get('kind', 'unknown')} data"


@dataclass(frozen=True)
class Pair:
    system: System
    dense: Row
    sparse: Row
    ci: RatioCI | None
    note: str


def dense_sparse_pairs(rows: list[Row]) -> list[Pair]:
    """Per system, each dense-X / switch-X pair it ran on the same data: dense / sparse energy to target, with its
    interval (paired by seed where both ran the same seeds once each, else Welch's)."""
    pairs = []
    for dense in rows:
        if not dense.workload.startswith("dense-"):
            continue
        twin = "switch-" + dense.workload.removeprefix("dense-")
        for sparse in rows:
            if (sparse.system.key, sparse.workload, sparse.data, sparse.framework) != (
                    dense.system.key, twin, dense.data, dense.framework):
                continue
            a = [(r.seed, v) for r in dense.records if (v := r.energy_to_target_j) is not None]
            b = [(r.seed, v) for r in sparse.records if (v := r.energy_to_target_j) is not None]
            ci, note = None, ""
            try:
                ci = seeded_ratio_ci(a, b)
                note = (f"paired by seed, {ci.n} pairs" if is_paired(ci)
                        else f"unpaired (seeds differ or repeat): Welch, {len(a)} and {len(b)} runs")
            except ValueError as e:
                note = f"no ratio: {e}"
            pairs.append(Pair(dense.system, dense, sparse, ci, note))
    return pairs


def summary_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """One dict a row, MLCommons' result summarizer's column names where they mean the same (time_to_train in
    minutes, as it prints it), then ours."""
    out = []
    for row in rows:
        div, status = row.division_and_status()
        hw = row.first.environment.hardware
        t = row.scored(lambda r: r.time_to_target_s)
        e = row.scored(lambda r: r.energy_to_target_j)
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
            "tokens_per_j": row.median(lambda r: r.tokens_per_j),
            "accelerator_tokens_per_j": row.median(_boards("tokens_per_j")),
            "model_flops_per_j": row.median(lambda r: r.model_flops_per_j),
            "accelerator_model_flops_per_j": row.median(_boards("model_flops_per_j")),
            "mfu": row.median(lambda r: r.mfu),
            "co2e_gross_g": _g(row.median(lambda r: r.co2e_to_target_kg)), "region": row.regions,
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
