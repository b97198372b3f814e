"""What `harness infer` prints: LoadGen's verdict, J per token with its method, the latencies and the quality."""

from __future__ import annotations

from harness.results.inference import SCENARIO_METRIC, InferenceRecord


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
    lines.append(f"  J/token {_num(r.joules_per_token, '.3e')}, tokens/J {_num(r.tokens_per_j, ',.1f')}, "
                 f"samples/J {_num(r.samples_per_j, ',.3f')}, mJ/query {_num(r.mj_per_query, ',.2f')}")
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
        lines.append(f"  Switch routing: {t.dropped_tokens:,} of {t.routed_tokens:,} token-slots dropped "
                     f"({100 * t.dropped_tokens / t.routed_tokens:.2f} %)")
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


def study_markdown(summary: dict, corpus: str | None, figures: list[str], capacity: float | None = None) -> str:
    """The inference study's report: J/token per batch, the ratio with its interval, training plus serving."""
    base = summary["baseline"]
    others = sorted({m for r in summary["rows"] for m in r["models"]} - {base})
    methods = sorted({x for r in summary["rows"] for m in r["models"].values() for x in m["method"]})
    setting = ", Switch capacity factor " + (f"{capacity:g}" if capacity is not None else "as the spec's eval one")
    out = [f"# Serving {base} against {', '.join(others)}" + (f" ({corpus} corpus)" if corpus else "") + setting,
           "",
           f"Energy per generated token under MLPerf LoadGen, each trained seed served at each batch, interleaved. "
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

        valid = " / ".join(",".join(sorted(set(filter(None, models[m]["loadgen_valid"])))) for m in models)
        holds = " / ".join("yes" if all(models[m]["quality_holds"]) else "NO" for m in models)
        out.append(f"| {r['batch']} | " + " | ".join(cells + ratios) + f" | {each('tokens_per_s', '{:,.0f}')} | "
                   f"{each('tpot_p99_ms', '{:.3f}')} | {each('dropped_fraction', '{:.1%}')} | {valid} | {holds} |")
    out += ["", "## Training once, then serving", "",
            f"Energy to train (median over seeds, {'; '.join(summary['training_method'])}): "
            + ", ".join(f"{m} {j:,.1f} J" if j else f"{m} n/a" for m, j in summary["training_j"].items()), ""]
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
