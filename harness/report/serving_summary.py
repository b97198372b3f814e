"""The statistics of serving several models over a batch sweep: per batch, each model's J/token, throughput,
latency and drops over its trained seeds, the baseline ÷ each other model's J/token paired by seed with its
interval, and training plus serving (harness/report/lifetime.py)."""

from __future__ import annotations

from typing import Any

from harness.report.lifetime import lifetime
from harness.report.stats import median, seeded_ratio_ci
from harness.results.inference import InferenceRecord
from harness.results.schema import RunRecord


def summarise(labels: list[str], batches: list[int], runs: dict[str, list[RunRecord]],
              records: dict[str, InferenceRecord], skipped: list[str]) -> dict[str, Any]:
    """Per batch: each model's J/token, tokens/s, p99 time per output token and drops by seed; the baseline ÷
    each other model's J/token with its interval, paired by seed; and training plus serving."""
    base = labels[0]
    rows = []
    for batch in batches:
        per: dict[str, list[tuple[int, InferenceRecord]]] = {}
        for key, r in records.items():
            label, seed, b = key.split("/")
            if int(b.removeprefix("batch")) == batch:
                per.setdefault(label, []).append((int(seed.removeprefix("seed")), r))
        row: dict[str, Any] = {"batch": batch, "models": {}}
        for label, rs in per.items():
            jpt = [(s, r.j_per_token) for s, r in rs]
            row["models"][label] = {
                "j_per_token": dict((str(s), j) for s, j in jpt),
                "median_j_per_token": median([j for _, j in jpt]),
                "tokens_per_s": median([r.tokens_per_s for _, r in rs]),
                "tpot_p99_ms": median([(r.traffic.latency_ms.get("tpot") or {}).get("p99") for _, r in rs]),
                "ttft_p99_ms": median([(r.traffic.latency_ms.get("ttft") or {}).get("p99") for _, r in rs]),
                "dropped_fraction": median([r.traffic.dropped_tokens / r.traffic.routed_tokens
                                             for _, r in rs if r.traffic.routed_tokens]),
                "loadgen_valid": [r.loadgen.validity if r.loadgen else None for _, r in rs],
                "quality_holds": [bool(r.accuracy and r.accuracy.meets_target) for _, r in rs],
                "method": sorted({r.energy.label for _, r in rs}),
            }
        for label in labels[1:]:
            a = [(s, r.j_per_token) for s, r in per.get(base, []) if r.j_per_token]
            b = [(s, r.j_per_token) for s, r in per.get(label, []) if r.j_per_token]
            if a and b:
                ci = seeded_ratio_ci(a, b)
                row.setdefault("ratios", {})[f"{base}/{label}"] = {
                    "ratio": ci.ratio, "lo": ci.lo, "hi": ci.hi, "n": ci.n, "method": ci.method,
                    "left_out": list(getattr(ci, "left_out", ()) or ())}
        rows.append(row)
    training = {label: median([r.energy_to_target_j for r in runs.get(label, [])]) for label in labels}
    training_method = sorted({r.energy.label for rs in runs.values() for r in rs if r.converged})
    return {"baseline": base, "rows": rows, "skipped": skipped, "training_j": training,
            "training_method": training_method, "lifetime": [lifetime(training, row, base, label)
                                                            for row in rows for label in labels[1:]]}
