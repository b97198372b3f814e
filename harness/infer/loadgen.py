"""MLPerf LoadGen (`mlcommons-loadgen`, module `mlperf_loadgen`): its settings from our flags, the decoder's warm-up
or a user.conf (`settings_for`, and a bound no run can meet refused), one test run in a thread of its own with its
logs in the run's folder (`run_in_thread`), and its verdict read back from mlperf_log_detail.txt.

LoadGen is the only load generator: the scenarios, the query schedule, the latency percentiles and the validity
rules are its own, never re-implemented here. Times in LoadGen's settings are nanoseconds; in user.conf and our
flags, milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.results.inference import SCENARIO_METRIC, LoadGenResult

if TYPE_CHECKING:
    from harness.infer.options import InferOptions
    from harness.infer.sut import DecoderSUT

LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")
# LoadGen's names for our scenario words (its TestScenario members and its user.conf keys).
LOADGEN_NAME = {"offline": "Offline", "server": "Server", "singlestream": "SingleStream", "multistream": "MultiStream"}
# Offline: LoadGen issues expected_qps x min_duration x 1.1 samples; an estimate below the steady rate would end the
# test before min_duration (INVALID), one above only lengthens it.
OFFLINE_QPS_HEADROOM = 1.5
MLPERF_MODEL = "harness"  # the model name our user.conf lines use: harness.Offline.min_duration = 5000 (or *.)


def loadgen():
    """The mlperf_loadgen module, or a one-line usage error saying how to install it."""
    try:
        import mlperf_loadgen
    except ImportError:
        raise UsageError("harness infer needs MLPerf LoadGen: pip install mlcommons-loadgen") from None
    return mlperf_loadgen


@dataclass(frozen=True)
class Settings:
    """What a test asks of LoadGen (milliseconds, queries per second); None: LoadGen's default or ours."""

    scenario: str
    duration_ms: int
    min_queries: int
    target_qps: float | None = None  # Server's arrival rate; Offline's expected rate
    latency_ms: float | None = None  # Server's p99 query latency bound
    ttft_ms: float | None = None  # time to first token bound (p99 Server, p90 SingleStream...)
    tpot_ms: float | None = None  # time per output token bound
    expected_latency_ms: float | None = None  # SingleStream / MultiStream: what a query is expected to take
    samples_per_query: int = 8  # MultiStream
    user_conf: str | None = None  # LoadGen's own format; read after the flags, so that it has the last word

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def test_settings(s: Settings, mode: str, performance_count: int):
    """LoadGen TestSettings for `s` in `mode` ("performance" or "accuracy")."""
    lg = loadgen()
    t = lg.TestSettings()
    t.scenario = getattr(lg.TestScenario, LOADGEN_NAME[s.scenario])
    t.mode = lg.TestMode.PerformanceOnly if mode == "performance" else lg.TestMode.AccuracyOnly
    t.min_duration_ms = int(s.duration_ms)
    t.min_query_count = int(s.min_queries)
    # Time to first token and time per output token, as MLPerf's LLM benchmarks; LoadGen then judges Server on
    # them and ignores a query latency bound, so --latency-ms (whole queries) turns them off.
    t.use_token_latencies = s.latency_ms is None
    t.performance_sample_count_override = performance_count
    if s.target_qps is not None:
        t.offline_expected_qps = float(s.target_qps)
        t.server_target_qps = float(s.target_qps)
    if s.latency_ms is not None:
        t.server_target_latency_ns = int(s.latency_ms * 1e6)
        t.server_target_latency_percentile = 0.99
    if s.ttft_ms is not None:
        t.ttft_latency = int(s.ttft_ms * 1e6)
    if s.tpot_ms is not None:
        t.tpot_latency = int(s.tpot_ms * 1e6)
    if s.expected_latency_ms is not None:
        t.single_stream_expected_latency_ns = int(s.expected_latency_ms * 1e6)
        t.multi_stream_expected_latency_ns = int(s.expected_latency_ms * 1e6)
    t.multi_stream_samples_per_query = int(s.samples_per_query)
    if s.user_conf is not None:
        t.FromConfig(s.user_conf, MLPERF_MODEL, LOADGEN_NAME[s.scenario])
    return t


def check_user_conf(path: str) -> None:
    """A user.conf that LoadGen can read: every line `model.scenario.key = value` or a # comment."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--user-conf {path}: no such file")
    for n, line in enumerate(p.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text and (text.count("=") != 1 or text.split("=")[0].strip().count(".") != 2):
            raise UsageError(f"--user-conf {path}: line {n} is not 'model.scenario.key = value' "
                             f"(LoadGen's user.conf format, e.g. '*.Offline.min_duration = 5000'): {line.strip()!r}")


def run_test(sut, qsl, settings, out_dir: Path) -> None:
    """One LoadGen test, its logs (summary, detail, accuracy) written in `out_dir`."""
    lg = loadgen()
    out = lg.LogOutputSettings()
    out.outdir = str(out_dir)
    out.copy_summary_to_stdout = False
    log = lg.LogSettings()
    log.log_output = out
    log.enable_trace = False  # its trace is tens of MB of JSON for a few seconds of serving
    out_dir.mkdir(parents=True, exist_ok=True)
    lg.StartTestWithLogSettings(sut, qsl, settings, log)
    trace = out_dir / "mlperf_log_trace.json"
    if trace.is_file() and trace.stat().st_size == 0:  # what LoadGen leaves with its trace off
        trace.unlink()


def read_detail(path: Path) -> dict[str, Any]:
    """The values of mlperf_log_detail.txt's :::MLLOG lines by key (the last of each key)."""
    values: dict[str, Any] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                entry = json.loads(line[len(":::MLLOG "):])
            except json.JSONDecodeError:
                continue
            values[entry.get("key")] = entry.get("value")
    return values


def loadgen_time(text: str | None) -> float | None:
    """LoadGen's power_begin / power_end stamp ("MM-DD-YYYY HH:MM:SS.mmm", UTC) as unix seconds."""
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%m-%d-%Y %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def verdict(detail: Mapping[str, Any], scenario: str, version: str | None) -> LoadGenResult:
    """LoadGen's verdict from its detail log: validity, the constraints it found unmet, its metric."""
    failed = tuple(name for key, name in (("result_min_duration_met", "min_duration"),
                                          ("result_min_queries_met", "min_queries"),
                                          ("result_perf_constraints_met", "perf_constraints"),
                                          ("early_stopping_met", "early_stopping"))
                   if detail.get(key) is False)
    metric, _ = SCENARIO_METRIC[scenario]
    value = detail.get(metric)
    results = {k: v for k, v in detail.items() if k.startswith(("result_", "effective_", "early_stopping"))
               and not isinstance(v, dict)}
    return LoadGenResult(
        version=version or detail.get("loadgen_version"), validity=str(detail.get("result_validity", "INVALID")),
        failed=failed, metric=metric, metric_value=float(value) if isinstance(value, int | float) else None,
        effective_min_duration_ms=detail.get("effective_min_duration_ms"),
        power_begin_unix_s=loadgen_time(detail.get("power_begin")),
        power_end_unix_s=loadgen_time(detail.get("power_end")), results=results)


def accuracy_outputs(path: Path) -> dict[int, bytes]:
    """mlperf_log_accuracy.json: each sample's response bytes by QSL index (its hex `data`)."""
    entries = json.loads(path.read_text() or "[]")
    return {int(e["qsl_idx"]): bytes.fromhex(e["data"]) for e in entries}


def settings_for(o: InferOptions, warm: dict[str, float], batch: int) -> Settings:
    """The flags, with LoadGen's expected rates from the warm-up where no flag sets them (a user.conf read last)."""
    full_s = warm[f"batch_{batch}_total"] / 1e3
    one_s = warm["batch_1_total"] / 1e3
    qps = o.target_qps
    if qps is None:
        # Offline: what the decoder does at its full batch; Server: half of that, so that queues stay bounded.
        qps = batch / full_s * (OFFLINE_QPS_HEADROOM if o.scenario == "offline" else 0.5)
    expected = {"singlestream": one_s, "multistream": full_s}.get(o.scenario)
    return Settings(scenario=o.scenario, duration_ms=o.duration_ms, min_queries=o.min_queries, target_qps=qps,
                    latency_ms=o.latency_ms, ttft_ms=o.ttft_ms, tpot_ms=o.tpot_ms,
                    expected_latency_ms=None if expected is None else 1e3 * expected,
                    samples_per_query=o.samples_per_query, user_conf=o.user_conf)


def refuse_unmeetable(s: Settings, warm: dict[str, float]) -> None:
    """A bound below half of what one prompt alone takes on this decoder (the warm-up's fastest call; the half is a
    margin for its noise) can never be met: a usage error, not a test."""
    prefill_1, total_1 = warm["batch_1_prefill"], warm["batch_1_total"]
    for flag, bound, least in (("--ttft-ms", s.ttft_ms, prefill_1), ("--latency-ms", s.latency_ms, total_1)):
        if bound is not None and bound < 0.5 * least:
            raise UsageError(f"{flag} {bound:g}: no run can meet it; one prompt alone takes {least:.2f} ms on this "
                             "decoder (the warm-up's fastest call); give at least half of that")


def run_in_thread(sut: DecoderSUT, count: int, settings, out: Path) -> None:
    """One LoadGen test in a thread of its own, so that Ctrl-C reaches the main thread while LoadGen runs."""
    lg = loadgen()
    qsl = lg.ConstructQSL(count, count, lambda _: None, lambda _: None)  # the prompts are in memory already
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run_test(sut.handle, qsl, settings, out)
        except BaseException as e:  # pragma: no cover - LoadGen raises nothing it does not log
            failure.append(e)

    thread = threading.Thread(target=target, name="harness-loadgen", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(timeout=0.2)
    sut.close()
    lg.DestroyQSL(qsl)
    if failure:
        raise failure[0]
