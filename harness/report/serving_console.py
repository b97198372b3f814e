"""What `harness infer` prints, and a study prints as it serves: LoadGen's verdict, J per token with its method,
the latencies, the routing and the quality of one inference record."""

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
    # MLPerf Inference's efficiency for the scenario: samples/J (Offline, Server) or energy per query (the streams).
    mlperf = (f"samples/J {_num(r.samples_per_j, ',.3f')}" if s.scenario in ("offline", "server")
              else f"mJ/query {_num(r.mj_per_query, ',.2f')}")
    lines.append(f"  J/token {_num(r.j_per_token, '.3e')}, tokens/J {_num(r.tokens_per_j, ',.1f')}, {mlperf}")
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


def infer_line(r: InferenceRecord) -> str:
    """One line per served record, as a study goes."""
    s = r.serving
    return (f"{r.workload} seed {s.run_seed} batch {s.batch}: {_num(r.j_per_token, '.3e', ' J/token')} "
            f"({r.energy.label}), {_num(r.tokens_per_s, ',.0f', ' tokens/s')}; {r.verdict()}")
