"""The inference kind of the record: a trained run's weights served under MLPerf LoadGen (`harness infer`).

It shares what every record has (harness/results/schema.py `Record`: status, timing, the energy of its window
with its method, pricing, environment, files) and adds what serving is: which trained run was served and how
(`Serving`), what LoadGen decided (`LoadGenResult`), the traffic and latencies inside the energy window
(`Traffic`) and the served model's quality (`Accuracy`). As for a run, every figure per token, per query or per
joule is derived from the one stored energy.

The energy window is LoadGen's performance window as the system under test sees it: from the first query
issued to the last response after LoadGen's flush (marks `first_query..last_response`), which lies inside
LoadGen's own power_begin..power_end (recorded beside it, so that `harness check` can hold one to the other).
Load, compilation and warm-up are init, metered apart, as in training.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.results.schema import Record, Status

INFERENCE = "inference"
INFERENCE_STATUSES = (Status.RUNNING, Status.COMPLETED, Status.FAILED, Status.ABORTED)
MLPERF_MIN_DURATION_MS = 600_000  # MLPerf Inference's mlperf.conf; the submission checker rejects less
SCENARIOS = ("offline", "server", "singlestream", "multistream")
# LoadGen's own metric for each scenario (its mlperf_log_detail.txt key) and what it is called.
SCENARIO_METRIC = {"offline": ("result_samples_per_second", "samples/s"),
                   "server": ("result_completed_samples_per_sec", "completed samples/s"),
                   "singlestream": ("result_90.00_percentile_latency_ns", "p90 latency, ns"),
                   "multistream": ("result_99.00_percentile_per_query_latency_ns", "p99 query latency, ns")}


@dataclass(frozen=True, kw_only=True)
class Serving:
    """What was served, and how."""

    run_id: str  # the training run whose weights were served
    run_status: str  # its status: converged, not_converged, ...
    run_seed: int
    spec_sha256: str
    weights_sha256: str
    target_loss: float  # nats/token, the training target
    params_total: int
    params_activated: int
    scenario: str  # offline | server | singlestream | multistream
    batch: int  # the most sequences one decoder call holds
    prompt_len: int  # tokens of each prompt (cut from the held-out evaluation contexts)
    gen_len: int  # tokens generated for each prompt
    samples: int  # prompts in LoadGen's query sample library
    sampling: str  # "greedy" or "temperature=T, seed=S"
    forward_flops_per_token: float  # matmul FLOPs of one generated token at the full context (activated only)
    # Matmul FLOPs the served calls executed per token fed through the model (prompt tokens, then one a decode
    # step): capacity slots, block padding, batch padding included. None: recorded before the field.
    executed_flops_per_token: float | None = None
    routing: str | None = None  # Switch: "dropless" or "capacity" (a record without it: capacity); None for dense
    # The corpus the served run trained on (its record's data.corpus: "default", "control"; the kind for user
    # data): one spec trains on either. None: recorded before the field (trained_corpus() finds it another way).
    trained_corpus: str | None = None
    capacity: Mapping[str, Any] = field(default_factory=dict)  # capacity routing: eval factor, slots per batch
    settings: Mapping[str, Any] = field(default_factory=dict)  # LoadGen's settings as asked (flags, user.conf)
    decoder: Mapping[str, Any] = field(default_factory=dict)  # framework, version, device, buckets compiled

    @property
    def switch_routing(self) -> str | None:
        """How the Switch layers routed ("capacity" for a record from before dropless serving); None: dense."""
        return self.routing or ("capacity" if self.capacity else None)

    @property
    def executed_over_activated(self) -> float | None:
        if not self.executed_flops_per_token or not self.forward_flops_per_token:
            return None
        return self.executed_flops_per_token / self.forward_flops_per_token


# LoadGen's settings that change what is measured, not only what is judged: how long and how many queries, the
# bounds a Server is held to, a MultiStream query's samples, a user.conf. (Its expected rates are set from each
# record's own warm-up unless asked for, so they are not part of the identity.)
MEASURING_SETTINGS = ("duration_ms", "min_queries", "latency_ms", "ttft_ms", "tpot_ms", "user_conf")


@dataclass(frozen=True)
class ServingKey:
    """What makes two inference records the same serving: every reader that groups, matches or compares them
    (`report`, `compare`, `claim`, `site`, the inference study's folders) goes through this one type.

    - system: J/token on other hardware is another measurement (the machine class, as for training).
    - workload, spec_sha256: the benchmark (model, corpus, target).
    - trained_corpus: the same spec trains on its default or its control corpus: two different models.
    - framework: what served it (the decoder's framework).
    - scenario, batch, prompt_len, gen_len, sampling: the traffic and the work per sample.
    - routing, capacity_factor: how a Switch model's tokens reached its experts (None for dense; the factor for
      capacity routing only): another computation, other answers.
    - loadgen: the settings in MEASURING_SETTINGS, as (name, value) pairs.
    """

    system: str
    workload: str
    spec_sha256: str
    trained_corpus: str
    framework: str
    scenario: str
    batch: int
    prompt_len: int
    gen_len: int
    sampling: str
    routing: str | None
    capacity_factor: float | None
    loadgen: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, r: InferenceRecord) -> ServingKey:
        s = r.serving
        routing = s.switch_routing
        settings = {k: s.settings.get(k) for k in MEASURING_SETTINGS}
        if s.scenario == "multistream":
            settings["samples_per_query"] = s.settings.get("samples_per_query")
        return cls(system=r.environment.hardware.machine_class, workload=r.workload, spec_sha256=s.spec_sha256,
                   trained_corpus=trained_corpus(r), framework=str(s.decoder.get("framework", "jax")),
                   scenario=s.scenario, batch=s.batch, prompt_len=s.prompt_len, gen_len=s.gen_len,
                   sampling=s.sampling, routing=routing,
                   capacity_factor=s.capacity.get("capacity_factor_eval") if routing == "capacity" else None,
                   loadgen=tuple(sorted(settings.items())))

    @property
    def switch_setting(self) -> str:
        """The Switch routing in words ("" for dense): "dropless", "capacity 2"."""
        if self.routing is None:
            return ""
        return self.routing + ("" if self.capacity_factor is None else f" {self.capacity_factor:g}")

    @property
    def model(self) -> str:
        """The served model as a table labels it: the workload, and its routing for a Switch model."""
        return self.workload + (f" ({self.switch_setting})" if self.routing else "")

    @property
    def traffic(self) -> str:
        """How it was served, in words, every part but the model's and the batch: a report's group title."""
        bounds = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.loadgen
                           if v is not None and k not in ("duration_ms", "min_queries"))
        duration = dict(self.loadgen).get("duration_ms")
        return (f"{self.system}, {self.trained_corpus} corpus, {self.framework}, {self.scenario}, prompt "
                f"{self.prompt_len} + {self.gen_len} tokens, {self.sampling}"
                + (f", {duration / 1e3:g} s minimum" if duration else "") + (f", {bounds}" if bounds else ""))

    def table(self) -> tuple:
        """The key of a comparison table: everything but the model (workload, spec, routing) and the batch."""
        return (self.system, self.trained_corpus, self.framework, self.scenario, self.prompt_len, self.gen_len,
                self.sampling, self.loadgen)


def trained_corpus(r: InferenceRecord) -> str:
    """The corpus the served run trained on. Recorded since 2026-12-07; a record from before does not say, but the
    inference study that served it does: its inference.json names the corpus and lists the record's folder.
    "unrecorded" when neither says."""
    if r.serving.trained_corpus:
        return r.serving.trained_corpus
    _, study = serving_study(r)
    return str(study.get("corpus") or "unrecorded")


def serving_study(r: InferenceRecord) -> tuple[Path | None, dict[str, Any]]:
    """The `harness study --inference` folder that served r (its inference.json lists r's folder) and that file's
    content; (None, {}) for a record served on its own, or not read from a file."""
    folder = r.directory
    if folder is None:
        return None, {}
    for study in (folder.parent.parent, folder.parent):
        f = study / "inference.json"
        if f.is_file():
            data, listed = _study_listing(str(f), f.stat().st_mtime_ns)
            if str(folder.resolve()) in listed:
                return study, data
    return None, {}


@functools.lru_cache(maxsize=64)
def _study_listing(path: str, mtime_ns: int) -> tuple[dict[str, Any], frozenset[str]]:
    """An inference.json read once per version (`mtime_ns` in the key: a study still serving rewrites it), and the
    record folders it lists, resolved: a report of many records reads each study's file once."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}, frozenset()
    study = Path(path).parent
    return data, frozenset(str((study / rel).resolve()) for rel in (data.get("done") or {}).values())


@dataclass(frozen=True, kw_only=True)
class LoadGenResult:
    """LoadGen's verdict, from its mlperf_log_detail.txt."""

    version: str | None
    validity: str  # "VALID" or "INVALID"
    failed: tuple[str, ...]  # the constraints LoadGen found unmet: min_duration, min_queries, perf, early_stopping
    metric: str  # LoadGen's metric key for the scenario
    metric_value: float | None
    effective_min_duration_ms: int | None
    power_begin_unix_s: float | None  # LoadGen's power window (UTC in its log)
    power_end_unix_s: float | None
    results: Mapping[str, Any] = field(default_factory=dict)  # every result_* and effective_* key of its log

    @property
    def valid(self) -> bool:
        return self.validity == "VALID"

    @property
    def below_mlperf_duration(self) -> bool:
        """Shorter than MLPerf's 600 s: a measurement, but not one MLPerf's submission checker accepts."""
        return (self.effective_min_duration_ms or 0) < MLPERF_MIN_DURATION_MS


@dataclass(frozen=True, kw_only=True)
class Traffic:
    """What the system under test did inside the energy window, timed by itself (issue to response)."""

    queries: int  # LoadGen queries answered
    samples: int  # samples answered (a MultiStream query holds several)
    generated_tokens: int
    routed_tokens: int = 0  # Switch: token-slots routed (tokens x Switch layers), prefill and decode, every row
    dropped_tokens: int = 0  # of those, over capacity (the residual carries them)
    # Rows a call computed beyond its samples (a batch padded to its compiled bucket with copies of its first
    # prompt), and the token-slots of theirs among routed_tokens. None: recorded before the fields.
    padded_rows: int | None = None
    padding_routed_tokens: int | None = None
    latency_ms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # ttft / tpot / query: p50 p90 p99


@dataclass(frozen=True, kw_only=True)
class Accuracy:
    """The served model's quality on the same prompts (LoadGen's AccuracyOnly pass answers each sample once).

    Teacher forcing: the mean loss of the corpus's true continuation under the served decoder, and its greedy
    next-token accuracy. A procedural corpus knows its true next-token law: the Bayes-optimal loss of the same
    tokens is the floor, and the quality holds when the served loss is within the training target's margin of it
    (target - entropy floor); with user data, when it is at or below the training target. The generated
    continuations are scored too: the fraction of generated tokens the true law allows.
    """

    samples: int
    tokens: int  # continuation tokens scored
    teacher_forced_loss: float  # nats/token
    greedy_accuracy: float
    floor_loss: float | None  # the true law's loss of the same tokens (None: user data)
    floor_greedy_accuracy: float | None  # the Bayes-optimal greedy accuracy on them
    allowed: float  # nats/token: the margin over the floor (procedural) or the target itself (text, user data)
    meets_target: bool
    generated_valid_fraction: float | None = None  # generated tokens the true law gives non-zero probability
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class InferenceRecord(Record):
    """One `harness infer`: a trained run served under LoadGen, metered and priced."""

    KIND: ClassVar[str] = INFERENCE
    WHAT: ClassVar[str] = "an inference record (harness infer)"

    serving: Serving
    loadgen: LoadGenResult | None  # None: the test did not finish (an aborted or failed record)
    traffic: Traffic
    accuracy: Accuracy | None = None

    # -- per token, per query, per joule: from the one stored energy, only where it may be ranked -----------------
    @property
    def window_s(self) -> float | None:
        return self.energy.seconds

    @property
    def tokens_per_s(self) -> float | None:
        s = self.window_s
        return self.traffic.generated_tokens / s if s else None

    @property
    def samples_per_s(self) -> float | None:
        s = self.window_s
        return self.traffic.samples / s if s else None

    @property
    def j_per_token(self) -> float | None:
        j = self.energy.ranked_j
        return j / self.traffic.generated_tokens if j and self.traffic.generated_tokens else None

    @property
    def tokens_per_j(self) -> float | None:
        j = self.energy.ranked_j
        return self.traffic.generated_tokens / j if j else None

    @property
    def samples_per_j(self) -> float | None:
        """MLPerf Inference's Offline and Server efficiency: samples / s per W."""
        j = self.energy.ranked_j
        return self.traffic.samples / j if j else None

    @property
    def mj_per_query(self) -> float | None:
        """MLPerf Inference's SingleStream and MultiStream efficiency: energy per query, mJ."""
        j = self.energy.ranked_j
        return 1e3 * j / self.traffic.queries if j and self.traffic.queries else None

    @property
    def joules_per_query(self) -> float | None:
        j = self.energy.ranked_j
        return j / self.traffic.queries if j and self.traffic.queries else None

    @property
    def co2e_per_million_tokens_kg(self) -> tuple[float, float] | None:
        """(gross, net) kg CO2e per million generated tokens."""
        fp, tokens = self.footprint, self.traffic.generated_tokens
        if fp is None or self.energy.ranked_j is None or not tokens:
            return None
        return fp.co2e_gross_kg * 1e6 / tokens, fp.co2e_net_kg * 1e6 / tokens

    @property
    def valid(self) -> bool:
        """LoadGen said VALID and the served model's quality holds: what exit status 0 means."""
        return (self.status == Status.COMPLETED and self.loadgen is not None and self.loadgen.valid
                and self.accuracy is not None and self.accuracy.meets_target)

    def verdict(self) -> str:
        """One line: LoadGen's verdict and the quality's."""
        if self.loadgen is None:
            return f"{self.status_text}: LoadGen did not finish"
        parts = [f"LoadGen {self.loadgen.validity}"]
        if self.loadgen.failed:
            parts[0] += f" ({', '.join(self.loadgen.failed)} not met)"
        if self.loadgen.below_mlperf_duration:
            parts.append(f"{(self.loadgen.effective_min_duration_ms or 0) / 1e3:g} s minimum duration, below "
                         f"MLPerf's {MLPERF_MIN_DURATION_MS // 1000} s")
        a = self.accuracy
        if a is None:
            parts.append("accuracy not measured")
        else:
            parts.append(f"quality {'holds' if a.meets_target else 'MISSED'}")
        return "; ".join(parts)

    def derived(self) -> dict[str, Any]:
        """The derived figures, for readers of the JSON (never read back)."""
        co2 = self.co2e_per_million_tokens_kg
        return {"tokens_per_s": self.tokens_per_s, "samples_per_s": self.samples_per_s,
                "j_per_token": self.j_per_token, "tokens_per_j": self.tokens_per_j,
                "samples_per_j": self.samples_per_j, "joules_per_query": self.joules_per_query,
                "mj_per_query": self.mj_per_query,
                "co2e_gross_kg_per_million_tokens": co2[0] if co2 else None,
                "co2e_net_kg_per_million_tokens": co2[1] if co2 else None,
                "energy_basis": f"the test's energy ({self.energy.label}) over {self.energy.window}",
                "valid": self.valid, "verdict": self.verdict()}
