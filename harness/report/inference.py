"""What `harness infer` prints: LoadGen's verdict, J per token with its method, the latencies and the quality."""

from __future__ import annotations

from typing import Any

from harness.report.lifetime import lifetime
from harness.report.stats import median, seeded_ratio_ci
from harness.results.inference import SCENARIO_METRIC, InferenceRecord, ServingKey
from harness.results.schema import RunRecord


def _num(x: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{fmt}}{unit}"


def infer_lines(r: InferenceRecord, path: str) -> list[str]:
    s, t, e = r.serving, r.traffic, r.energy
    lines = [f"{r.workload} served ({s.scenario}, batch {s.batch}, prompt {s.prompt_len} + {s.gen_len} generated "
             f"tokens, {s.sampling}) from run {s.run_id} ({s.run_status}): {r.status_text}"]
    lg = r.loadgen
    if lg is not None:
        _, name = SCENARIO_METRIC[s.scenario]
        lines.append(f"  LoadGen {lg.version}: {lg.validity}"
                     + (f" ({', '.join(lg.failed)} not met)" if lg.failed else "")
                     + f"; {name}: {_num(lg.metric_value, ',.2f')}")
        if lg.below_mlperf_duration:
            lines.append(f"  duration: {(lg.effective_min_duration_ms or 0) / 1e3:g} s minimum, below MLPerf's "
                         "600 s: a measurement, not a submission")
    lines.append(f"  window {e.window}: {_num(e.seconds, '.2f', ' s')}, {t.queries} queries, {t.samples} samples, "
                 f"{t.generated_tokens:,} tokens, {_num(r.tokens_per_s, ',.1f', ' tokens/s')}")
    lines.append(f"  energy: {_num(e.total_j, '.3f', ' J')} ({e.label}); init {_num(e.init_j, '.2f', ' J')} apart")
    # MLPerf Inference's efficiency for the scenario: samples/J (Offline, Server) or energy per query (the streams).
    mlperf = (f"samples/J {_num(r.samples_per_j, ',.3f')}" if s.scenario in ("offline", "server")
              else f"mJ/query {_num(r.mj_per_query, ',.2f')}")
    lines.append(f"  J/token {_num(r.joules_per_token, '.3e')}, tokens/J {_num(r.tokens_per_j, ',.1f')}, {mlperf}")
    co2 = r.co2e_per_million_tokens_kg
    if co2:
        lines.append(f"  CO2e per million tokens: {1e3 * co2[0]:.3f} g gross / {1e3 * co2[1]:.3f} g net "
                     f"({r.carbon.region})")
    lat = t.latency_ms
    for key, name in (("ttft", "time to first token"), ("tpot", "time per output token"), ("query", "query")):
        q = lat.get(key) or {}
        if q:
            lines.append(f"  {name}: p50 {q['p50']:.2f} / p90 {q['p90']:.2f} / p99 {q['p99']:.2f} ms")
    if t.routed_tokens:
        lines.append(f"  Switch routing {s.switch_routing}: {t.dropped_tokens:,} of {t.routed_tokens:,} token-slots "
                     f"dropped ({100 * t.dropped_tokens / t.routed_tokens:.2f} %)")
    if s.executed_over_activated is not None:
        lines.append(f"  FLOPs per token: executed {s.executed_flops_per_token:,.0f}, activated "
                     f"{s.forward_flops_per_token:,.0f}: executed / activated {s.executed_over_activated:.3f}")
    a = r.accuracy
    if a is not None:
        floor = "" if a.floor_loss is None else f" (true law {a.floor_loss:.4f}, allowed +{a.allowed:.3f})"
        lines.append(f"  quality: teacher-forced loss {a.teacher_forced_loss:.4f} nats/token{floor}; greedy "
                     f"accuracy {a.greedy_accuracy:.3f}"
                     + ("" if a.floor_greedy_accuracy is None else f" (Bayes {a.floor_greedy_accuracy:.3f})")
                     + ("" if a.generated_valid_fraction is None
                        else f"; generated tokens the law allows {a.generated_valid_fraction:.3f}")
                     + f": {'holds' if a.meets_target else 'MISSED'}")
    lines.append(f"  verdict: {r.verdict()}")
    lines.append(f"  result: {path}")
    return lines


def _ci(x: dict | None) -> str:
    if not x:
        return "n/a"
    return f"**{x['ratio']:.2f}×** [{x['lo']:.2f}, {x['hi']:.2f}] (n={x['n']})"


def study_markdown(summary: dict, corpus: str | None, figures: list[str], setting: str = "") -> str:
    """The inference study's report: J/token per batch, the ratio with its interval, training plus serving."""
    base = summary["baseline"]
    others = sorted({m for r in summary["rows"] for m in r["models"]} - {base})
    methods = sorted({x for r in summary["rows"] for m in r["models"].values() for x in m["method"]})
    setting = f", {setting}" if setting else ""
    out = [f"# Serving {base} against {', '.join(others)}" + (f" ({corpus} corpus)" if corpus else "") + setting,
           "",
           f"Energy per generated token under MLPerf LoadGen, each trained seed served at each batch. "
           f"Energy: {'; '.join(methods)}. Ratios pair the models by training seed (t interval on the per-seed "
           f"log ratios).", ""]
    head = "| batch | " + " | ".join(f"{m} J/token" for m in [base, *others]) + " | " + \
        " | ".join(f"{base} ÷ {m}" for m in others) + " | tokens/s | p99 TPOT ms | dropped | LoadGen | quality |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in summary["rows"]:
        models = r["models"]
        cells = [f"{models[m]['median_j_per_token']:.3e}" if m in models and models[m]["median_j_per_token"]
                 else "n/a" for m in [base, *others]]
        ratios = [_ci((r.get("ratios") or {}).get(f"{base}/{m}")) for m in others]

        def each(key: str, fmt: str, models: dict = models) -> str:
            return " / ".join(fmt.format(models[m][key]) if m in models and models[m][key] is not None else "n/a"
                              for m in [base, *others])

        valid = " / ".join(",".join(sorted(set(filter(None, models[m]["loadgen_valid"])))) if m in models else "n/a"
                           for m in [base, *others])
        holds = " / ".join(("yes" if all(models[m]["quality_holds"]) else "NO") if m in models else "n/a"
                           for m in [base, *others])
        out.append(f"| {r['batch']} | " + " | ".join(cells + ratios) + f" | {each('tokens_per_s', '{:,.0f}')} | "
                   f"{each('tpot_p99_ms', '{:.3f}')} | {each('dropped_fraction', '{:.1%}')} | {valid} | {holds} |")
    out += ["", "## Training once, then serving", ""]
    trained = {m: j for m, j in summary["training_j"].items() if j}
    if trained:
        out += [f"Energy to train (median over the converged seeds, {'; '.join(summary['training_method'])}): "
                + ", ".join(f"{m} {trained[m]:,.1f} J" if m in trained else f"{m}: no converged run with an energy "
                            "figure among the given folders" for m in [base, *others]), ""]
    else:
        out += ["No training run of these models is among the given folders: give the runs that were served "
                "(their folders, or the study's) beside these records to price training and serving.", ""]
    for life in summary["lifetime"]:
        out.append(f"- batch {life['batch']}: {life['note']}")
    if summary["skipped"]:
        out += ["", "Not served: " + "; ".join(summary["skipped"])]
    out += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(out) + "\n"


def infer_line(r: InferenceRecord) -> str:
    """One line per served record, as a study goes."""
    s = r.serving
    return (f"{r.workload} seed {s.run_seed} batch {s.batch}: {_num(r.joules_per_token, '.3e', ' J/token')} "
            f"({r.energy.label}), {_num(r.tokens_per_s, ',.0f', ' tokens/s')}; {r.verdict()}")


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
            jpt = [(s, r.joules_per_token) for s, r in rs]
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
            a = [(s, r.joules_per_token) for s, r in per.get(base, []) if r.joules_per_token]
            b = [(s, r.joules_per_token) for s, r in per.get(label, []) if r.joules_per_token]
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


def served_groups(records: list[InferenceRecord]) -> tuple[dict[str, dict[str, InferenceRecord]], list[str]]:
    """Records outside a study, as summarise() takes them: one group a way of serving (ServingKey.table: machine,
    trained corpus, framework, scenario, lengths, sampling, LoadGen's settings), each keyed <model>/seed<trained
    seed>/batch<b>, the model naming a Switch model's routing; and a line for each record left out (the same
    serving met twice: the later record is shown, the earlier named)."""
    groups: dict[tuple, tuple[str, dict[str, InferenceRecord]]] = {}
    skipped: list[str] = []
    for r in sorted(records, key=lambda r: r.created_unix_s):
        key = ServingKey.of(r)
        _, keyed = groups.setdefault(key.table(), (key.traffic, {}))
        label = f"{key.model}/seed{r.serving.run_seed}/batch{key.batch}"
        if label in keyed:
            skipped.append(f"{keyed[label].run_id}: {key.model} seed {r.serving.run_seed} batch {key.batch} served "
                           f"the same way again later ({r.run_id}, shown)")
        keyed[label] = r
    return {title: keyed for title, keyed in groups.values()}, skipped


def served_report(records: list[InferenceRecord], out_dir, runs: list[RunRecord] = ()) -> Any:
    """`harness report` on inference records: for each way of serving, J/token against batch for every model
    (dense first), latency against throughput, the dense ÷ Switch ratios paired by trained seed, and training
    plus serving where the served runs (`runs`, matched by run id) are among what was given."""
    from pathlib import Path

    from harness.report.plots import inference_sweep
    from harness.results.files import atomic_write_text

    out_dir = Path(out_dir)
    parts = []
    groups, skipped = served_groups(records)
    for i, (title, keyed) in enumerate(groups.items(), 1):
        labels = sorted({k.split("/")[0] for k in keyed}, key=lambda m: (_routing(keyed, m) is not None, m))
        batches = sorted({r.serving.batch for r in keyed.values()})
        by_id = {r.run_id: r for r in runs}
        trained = {m: list({r.serving.run_id: by_id[r.serving.run_id] for k, r in keyed.items()
                            if k.startswith(f"{m}/") and r.serving.run_id in by_id}.values()) for m in labels}
        summary = summarise(labels, batches, {m: rs for m, rs in trained.items() if rs}, keyed, [])
        folder = out_dir / f"serving_{i}"
        folder.mkdir(parents=True, exist_ok=True)
        figures = [f"serving_{i}/{p.name}" for p in inference_sweep(summary, folder)]
        body = study_markdown(summary, None, figures).split("\n", 1)[1].replace("\n## ", "\n### ")
        parts.append(f"## {title}\n{body}")
    if skipped:
        parts.append("## Left out\n\n" + "\n".join(f"- {line}" for line in skipped) + "\n")
    md = out_dir / "report.md"
    atomic_write_text(md, "# harness report: serving\n\n" + "\n".join(parts))
    return md


def _routing(keyed: dict[str, InferenceRecord], model: str) -> str | None:
    """The Switch routing `model` was served with; None for a dense model (which comes first)."""
    return next(r.serving.switch_routing for k, r in keyed.items() if k.startswith(f"{model}/"))
