"""`harness infer RUN_DIR`: a trained run's weights served under MLPerf LoadGen, metered like training.

1. init (untimed, metered apart): the run's record and weights checked and loaded, one decoder compiled per
   batch bucket, each warmed up once (its timings set LoadGen's expected rates where no flag does);
2. the performance test: LoadGen drives the SUT (harness/infer/sut.py) in the scenario asked; the energy
   window runs from its first query to its last response;
3. the accuracy pass: LoadGen's AccuracyOnly mode (each sample once) into accuracy/; the served model's loss
   and greedy accuracy on the true continuations, and the generated tokens scored by the corpus's true law;
4. the record (harness/results/inference.py) with LoadGen's files beside it.

A record saying `running` is written before the test, so that a killed process still leaves one; Ctrl-C or
SIGTERM during the test writes it `aborted` with the energy so far.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import meters as meter_pkg
from harness.errors import UsageError
from harness.infer import loadgen as lgx
from harness.infer.served import ServedRun, load_run, prompts_and_truth, served_routing
from harness.infer.sut import DecoderSUT, percentiles_ms
from harness.meters.contention import cpu_between, cpu_snapshot
from harness.meters.window import measure_window, session_facts
from harness.results import environment
from harness.results.build import energy_from_windows
from harness.results.files import check_writable
from harness.results.inference import SCENARIOS, Accuracy, InferenceRecord, Serving, Traffic
from harness.results.schema import Device, Status, Timing
from harness.results.writer import RecordFiles, new_folder
from harness.session import DEFAULT_SAMPLE_HZ, Metering, local_accelerators
from workloads.errors import InputError
from workloads.flops import expert_capacity, forward_flops_per_token
from workloads.routing import ROUTINGS
from workloads.specs import spec_sha256
from workloads.trainers import build_decoder, runtime

EXIT_ABORTED = 130
WARM_UP_CALLS = 3
# Offline: LoadGen issues expected_qps x min_duration x 1.1 samples; an estimate below the steady rate would end the
# test before min_duration (INVALID), one above only lengthens it.
OFFLINE_QPS_HEADROOM = 1.5
START, STOP = "first_query", "last_response"


class TestAborted(Exception):
    """SIGTERM during the test: recorded like Ctrl-C."""


@dataclass(frozen=True)
class InferOptions:
    run_dir: str
    scenario: str = "offline"
    batch: int = 16
    prompt_len: int | None = None  # None: half the workload's context
    gen_len: int | None = None  # None: the other half
    samples: int | None = None  # None: every held-out context
    duration_ms: int = 5000  # LoadGen's min_duration_ms; MLPerf's is 600000
    min_queries: int = 1
    target_qps: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    max_wait_ms: float = 2.0  # Server: how long a batch waits for more queries after its first
    samples_per_query: int = 8  # MultiStream
    user_conf: str | None = None
    temperature: float = 0.0
    seed: int = 0
    # Switch: how tokens reach the experts when served: "dropless" (the default, as serving systems route) or
    # "capacity" (the paper's eval setting); None: dropless, or capacity where a capacity factor is given.
    routing: str | None = None
    capacity_factor: float | None = None  # capacity routing: slots per expert over tokens per expert; None: the spec's
    accuracy: bool = True
    output_dir: str = "results"
    metering: Metering = field(default_factory=Metering)


def check(o: InferOptions) -> None:
    """What needs no run and no device, checked now (one-line errors, exit 2)."""
    if o.scenario not in SCENARIOS:
        raise UsageError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {o.scenario!r}")
    for flag, value in (("--batch", o.batch), ("--duration-ms", o.duration_ms), ("--min-queries", o.min_queries),
                        ("--samples-per-query", o.samples_per_query)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if o.gen_len is not None and o.gen_len < 1:
        raise UsageError(f"--gen-len must be at least 1, got {o.gen_len}")
    for flag, value in (("--target-qps", o.target_qps), ("--latency-ms", o.latency_ms), ("--ttft-ms", o.ttft_ms),
                        ("--tpot-ms", o.tpot_ms)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{flag} must be a positive number, got {value}")
    if o.latency_ms is not None and (o.ttft_ms is not None or o.tpot_ms is not None):
        raise UsageError("--latency-ms bounds whole queries, --ttft-ms and --tpot-ms tokens: LoadGen judges one or "
                         "the other; give --latency-ms alone, or --ttft-ms / --tpot-ms")
    if not o.max_wait_ms >= 0:
        raise UsageError(f"--max-wait-ms must be >= 0, got {o.max_wait_ms}")
    if o.routing is not None and o.routing not in ROUTINGS:
        raise UsageError(f"--routing must be one of {', '.join(ROUTINGS)}, got {o.routing!r}")
    if o.capacity_factor is not None and not o.capacity_factor > 0:
        raise UsageError(f"--capacity-factor must be positive, got {o.capacity_factor}")
    if o.capacity_factor is not None and o.routing == "dropless":
        raise UsageError("--capacity-factor sets capacity routing's slots; dropless routing has none: give "
                         "--routing capacity with it, or leave it out")
    if not o.temperature >= 0:
        raise UsageError(f"--temperature must be >= 0 (0: greedy), got {o.temperature}")
    if o.user_conf is not None:
        lgx.check_user_conf(o.user_conf)
    lgx.loadgen()
    o.metering.check()
    check_writable(Path(o.output_dir), "--output-dir")


def buckets(batch: int) -> list[int]:
    """The batch sizes compiled: powers of two below `batch`, and `batch`."""
    out, b = [], 1
    while b < batch:
        out.append(b)
        b *= 2
    return out + [batch]


def infer(o: InferOptions) -> tuple[Path, InferenceRecord]:
    check(o)
    served = load_run(o.run_dir)
    served = replace(served, spec=served_routing(served.spec, o.routing, o.capacity_factor))
    seq = served.spec.seq_len
    prompt_len = o.prompt_len if o.prompt_len is not None else seq // 2
    gen_len = o.gen_len if o.gen_len is not None else min(seq - prompt_len, served.spec.model.max_len - prompt_len)
    prompts, truth = prompts_and_truth(served, prompt_len, gen_len, o.samples)
    batch = {"singlestream": 1, "multistream": o.samples_per_query}.get(o.scenario, o.batch)
    rt = runtime("jax")
    devices = rt.devices()[:1]
    meters, unavailable = o.metering.choose(local_accelerators(devices, rt.process_index()))
    pricing = o.metering.check()
    out = new_folder(Path(o.output_dir), f"{served.record.workload}-{o.scenario}")
    sampler = meter_pkg.Sampler(meters, hz=o.metering.sample_hz or DEFAULT_SAMPLE_HZ, accounting=cpu_snapshot)
    sampler.start()
    marks: dict[str, float] = {}

    def mark(label: str) -> float:
        marks[label] = sampler.mark(label)
        return marks[label]

    state: dict[str, Any] = {"status": Status.RUNNING, "error": None, "sut": None, "settings": None,
                             "verdict": None, "accuracy": None, "decoder": {}}
    files = RecordFiles(out)
    build = _Builder(o, served, prompt_len, gen_len, batch, prompts.shape[0], devices, pricing, meters,
                     unavailable, sampler, marks, state, out)
    previous = signal.signal(signal.SIGTERM, _raise_aborted)
    try:
        mark("init_start")
        decoders = {b: build_decoder(served.spec, served.weights, b, prompt_len, gen_len, o.temperature, o.seed)
                    for b in buckets(batch)}
        warm = _warm_up(decoders, prompts)
        mark("init_stop")
        state["decoder"] = {"framework": "jax", "version": rt.version(), "device": devices[0].kind,
                            "buckets": sorted(decoders), "warm_up_ms": warm,
                            "trained_with": served.record.framework, **decoders[batch].routing,
                            "executed_flops_per_call": {str(b): d.executed_flops for b, d in decoders.items()}}
        settings = _settings(o, warm, batch)
        _unmeetable(settings, warm)
        state["settings"] = settings
        files.record(build.record(), durable=False)
        sut = DecoderSUT(decoders, prompts, gen_len, o.max_wait_ms / 1e3 if o.scenario == "server" else 0.0,
                         mark, (START, STOP), served.spec.model.num_switch_layers)
        state["sut"] = sut
        _run_loadgen(sut, prompts.shape[0], lgx.test_settings(settings, "performance", prompts.shape[0]), out)
        state["verdict"] = lgx.verdict(lgx.read_detail(out / "mlperf_log_detail.txt"), o.scenario, None)
        if sut.served.error:
            raise RuntimeError(f"the decoder failed during the test: {sut.served.error}")
        if o.accuracy:
            state["accuracy"] = _accuracy(o, served, decoders[batch], prompts, truth, settings, out)
        state["status"] = Status.COMPLETED
    except InputError:
        # A bound found unmeetable in the warm-up: bad input, nothing served; no record is left behind.
        signal.signal(signal.SIGTERM, previous)
        sampler.stop()
        shutil.rmtree(out, ignore_errors=True)
        raise
    except (KeyboardInterrupt, TestAborted):
        state["status"] = Status.ABORTED
        if STOP not in marks:
            mark("aborted")
    except Exception as e:
        state["status"], state["error"] = Status.FAILED, f"{type(e).__name__}: {e}"[:300]
        if STOP not in marks:
            mark("failed")
    signal.signal(signal.SIGTERM, previous)
    sampler.stop()
    record = _write(files, build)
    if state["status"] == Status.ABORTED:
        print(f"harness: aborted; the record so far: {out / 'result.json'}", file=sys.stderr)
        sys.stdout.flush()
        os._exit(EXIT_ABORTED)  # LoadGen's threads may still wait on queries: the process ends them
    return out, record


def _raise_aborted(signum, frame) -> None:
    raise TestAborted(f"signal {signum}")


def _warm_up(decoders: dict[int, Any], prompts: np.ndarray) -> dict[str, float]:
    """Untimed calls per bucket (after compilation), the fastest of WARM_UP_CALLS: what sets LoadGen's expected
    rates (the first calls after compilation run slower than the steady state)."""
    out = {}
    for b, d in decoders.items():
        rows = np.resize(prompts, (b, prompts.shape[1])).astype(np.int32)
        prefill, total = [], []
        for _ in range(WARM_UP_CALLS):
            t0 = time.perf_counter()
            first, state = d.prefill(rows)
            np.asarray(first)
            t1 = time.perf_counter()
            if d.gen_len > 1:
                np.asarray(d.generate_rest(state))
            prefill.append(t1 - t0)
            total.append(time.perf_counter() - t0)
        out[f"batch_{b}_prefill"] = 1e3 * min(prefill)
        out[f"batch_{b}_total"] = 1e3 * min(total)
    return out


def _settings(o: InferOptions, warm: dict[str, float], batch: int) -> lgx.Settings:
    """The flags, with LoadGen's expected rates from the warm-up where no flag sets them (a user.conf read last)."""
    full_s = warm[f"batch_{batch}_total"] / 1e3
    one_s = warm["batch_1_total"] / 1e3
    qps = o.target_qps
    if qps is None:
        # Offline: what the decoder does at its full batch; Server: half of that, so that queues stay bounded.
        qps = batch / full_s * (OFFLINE_QPS_HEADROOM if o.scenario == "offline" else 0.5)
    expected = {"singlestream": one_s, "multistream": full_s}.get(o.scenario)
    return lgx.Settings(scenario=o.scenario, duration_ms=o.duration_ms, min_queries=o.min_queries, target_qps=qps,
                        latency_ms=o.latency_ms, ttft_ms=o.ttft_ms, tpot_ms=o.tpot_ms,
                        expected_latency_ms=None if expected is None else 1e3 * expected,
                        samples_per_query=o.samples_per_query, user_conf=o.user_conf)


def _unmeetable(s: lgx.Settings, warm: dict[str, float]) -> None:
    """A bound below half of what one prompt alone takes on this decoder (the warm-up's fastest call; the half is a
    margin for its noise) can never be met: a usage error, not a test."""
    prefill_1, total_1 = warm["batch_1_prefill"], warm["batch_1_total"]
    for flag, bound, least in (("--ttft-ms", s.ttft_ms, prefill_1), ("--latency-ms", s.latency_ms, total_1)):
        if bound is not None and bound < 0.5 * least:
            raise UsageError(f"{flag} {bound:g}: no run can meet it; one prompt alone takes {least:.2f} ms on this "
                             "decoder (the warm-up's fastest call); give at least half of that")


def _run_loadgen(sut: DecoderSUT, count: int, settings, out: Path) -> None:
    """One LoadGen test in a thread of its own, so that Ctrl-C reaches the main thread while LoadGen runs."""
    lg = lgx.loadgen()
    qsl = lg.ConstructQSL(count, count, lambda _: None, lambda _: None)  # the prompts are in memory already
    failure: list[BaseException] = []

    def target() -> None:
        try:
            lgx.run_test(sut.handle, qsl, settings, out)
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


def _accuracy(o: InferOptions, served: ServedRun, decoder, prompts: np.ndarray, truth: np.ndarray, settings,
              out: Path) -> Accuracy:
    """LoadGen's AccuracyOnly pass (each sample once) into accuracy/, and the served model's quality."""
    acc_dir = out / "accuracy"
    sut = DecoderSUT({decoder.batch: decoder}, prompts, decoder.gen_len, 0.0, lambda label: None,
                     ("accuracy_start", "accuracy_stop"), 0)
    _run_loadgen(sut, prompts.shape[0], lgx.test_settings(replace(settings, min_queries=1), "accuracy",
                                                          prompts.shape[0]), acc_dir)
    if sut.served.error:  # its samples were answered empty: nothing to score, and the record must not pass
        raise RuntimeError(f"the decoder failed during the accuracy pass: {sut.served.error}")
    generated = lgx.accuracy_outputs(acc_dir / "mlperf_log_accuracy.json")
    log_probs, correct = [], []
    b = decoder.batch
    for start in range(0, len(prompts), b):
        rows = np.concatenate([prompts[start:start + b], truth[start:start + b]], axis=1)
        n = len(rows)
        padded = np.resize(rows, (b, rows.shape[1])).astype(np.int32)
        tf = decoder.teacher_forced(padded)
        log_probs.append(tf.log_probs[:n])
        correct.append(np.asarray(tf.correct)[:n])
    lp = np.concatenate(log_probs)
    loss, accuracy = float(-lp.mean()), float(np.concatenate(correct).mean())
    law, margin = served.law, served.entropy_margin
    floor = floor_acc = valid = None
    note = (f"the prompts' true continuations scored as served: each prompt prefilled, then its continuation fed one "
            f"token a step through the cache, at batch {b}; generations from LoadGen's accuracy log")
    prompt_len = prompts.shape[1]
    if law is not None:
        rows = np.concatenate([prompts, truth], axis=1)
        nll = law.true_nll(rows)  # [N, P+G-1]: x_1.. ; the continuation is x_P..
        floor = float(nll[:, prompt_len - 1:prompt_len - 1 + truth.shape[1]].mean())
        p_max = max(law.cfg.successor_probs)
        floor_acc = float(p_max if prompt_len >= 2 else (p_max * (truth.shape[1] - 1) + 1 / law.cfg.vocab_per_domain)
                          / truth.shape[1])
        made = [np.frombuffer(generated[i], np.int32) for i in range(len(prompts)) if i in generated]
        if made and all(len(m) == truth.shape[1] for m in made):
            idx = [i for i in range(len(prompts)) if i in generated]
            gen_rows = np.concatenate([prompts[idx], np.stack(made)], axis=1)
            allowed = law.allowed(gen_rows)[:, prompt_len - 1:]
            valid = float(allowed.mean())
        allowed_excess = float(margin)
        meets = loss - floor <= allowed_excess
    else:
        allowed_excess = served.record.target.target_loss
        meets = loss <= allowed_excess
        kind = "real text" if served.record.data.get("kind") == "text" else "user data"
        note += f"; {kind}: no true law, the loss is held to the training target itself"
    return Accuracy(samples=len(prompts), tokens=int(lp.size), teacher_forced_loss=loss, greedy_accuracy=accuracy,
                    floor_loss=floor, floor_greedy_accuracy=floor_acc, allowed=allowed_excess, meets_target=bool(meets),
                    generated_valid_fraction=valid, note=note)


@dataclass
class _Builder:
    """The record from what the test has done so far (written before the test, and at the end)."""

    o: InferOptions
    served: ServedRun
    prompt_len: int
    gen_len: int
    batch: int
    samples: int  # prompts in the sample library
    devices: list  # the framework's devices served on
    pricing: Any
    meters: list
    unavailable: list[dict[str, str]]
    sampler: Any
    marks: dict[str, float]  # label -> unix s, as the sampler took them
    state: dict[str, Any]  # what the test has reached: status, error, SUT, settings, verdict, accuracy, decoder
    out: Path

    def record(self) -> InferenceRecord:
        o, served, state, marks = self.o, self.served, self.state, self.marks
        run, spec = served.record, served.spec
        stop = next((x for x in (STOP, "aborted", "failed") if x in marks), None)
        window = None
        if START in marks and stop is not None:
            window = measure_window(self.sampler, self.meters, START, stop)
        init_w = (measure_window(self.sampler, self.meters, "init_start", "init_stop")
                  if {"init_start", "init_stop"} <= marks.keys() else None)
        cpu = cpu_between(self.sampler.accounts.get(START), self.sampler.accounts.get(stop)) if stop else None
        energy = energy_from_windows(window, init_w, start_label=START, stop_label=stop or STOP,
                                     facts=session_facts(self.sampler, self.meters), unavailable=self.unavailable,
                                     cpu=cpu)
        sut = state["sut"]
        s = sut.served if sut is not None else None
        cfg = spec.model
        e = cfg.num_experts
        capacity = ({"capacity_factor_eval": cfg.capacity_factor_eval, "experts": e,
                     "slots_per_expert_at_decode": {str(b): expert_capacity(b, e, cfg.capacity_factor_eval)
                                                    for b in buckets(self.batch)},
                     "slots_per_expert_at_prefill": {str(b): expert_capacity(b * self.prompt_len, e,
                                                                             cfg.capacity_factor_eval)
                                                     for b in buckets(self.batch)},
                     "note": "each call's tokens route as one group: a decode step of a batch of 1 gets 1 slot and "
                             "never drops; a prompt's tokens share their group's slots (a prompt of one domain "
                             "crowds one expert)"} if e and cfg.routing == "capacity" else {})
        serving = Serving(
            run_id=run.run_id, run_status=str(run.status), run_seed=run.seed, spec_sha256=spec_sha256(run.spec),
            weights_sha256=run.weights.sha256, target_loss=run.target.target_loss,
            params_total=int(run.training.params_total or 0), params_activated=int(run.training.params_activated or 0),
            scenario=o.scenario, batch=self.batch, prompt_len=self.prompt_len, gen_len=self.gen_len,
            samples=self.samples, sampling="greedy" if o.temperature == 0 else f"temperature={o.temperature:g}, "
                                                                                f"seed={o.seed}",
            forward_flops_per_token=forward_flops_per_token(cfg, self.prompt_len + self.gen_len),
            executed_flops_per_token=self._executed_per_token(s), routing=cfg.routing if e else None,
            trained_corpus=str(run.data.get("corpus") or run.data.get("kind") or "unrecorded"),
            capacity=capacity, settings=state["settings"].to_dict() if state["settings"] else {},
            decoder=dict(state["decoder"]))
        traffic = Traffic(queries=s.queries if s else 0, samples=s.samples if s else 0,
                          generated_tokens=s.tokens if s else 0, routed_tokens=s.routed if s else 0,
                          dropped_tokens=s.dropped if s else 0,
                          latency_ms={"ttft": percentiles_ms(s.ttft_s), "tpot": percentiles_ms(s.tpot_s),
                                      "query": percentiles_ms(s.latency_s)} if s else {})
        init_s = marks["init_stop"] - marks["init_start"] if {"init_start", "init_stop"} <= marks.keys() else None
        devices = [Device(kind=d.kind, platform=d.platform, id=d.id, process=d.process) for d in self.devices]
        return InferenceRecord(
            run_id=self.out.name, created_unix_s=time.time(), workload=run.workload, status=state["status"],
            error=state["error"], process={"pid": os.getpid(), "host": os.uname().nodename},
            timing=Timing(rules="MLPerf Inference: LoadGen's performance window, first query to last response; "
                                "load, compilation and warm-up untimed", init_s=init_s,
                          run_s=energy.seconds, marks_unix_s=dict(marks)),
            energy=energy, carbon=self.pricing,
            environment=environment_of(devices), serving=serving, loadgen=state["verdict"], traffic=traffic,
            accuracy=state["accuracy"])

    def _executed_per_token(self, s: Any) -> float | None:
        """Executed matmul FLOPs of the window's calls per token fed through the model (each sample's prompt at
        prefill, then one a decode step): batch padding, capacity slots and block padding included, so that for
        a dense model with full batches it equals forward_flops_per_token."""
        per_call = self.state["decoder"].get("executed_flops_per_call")
        if s is None or not s.samples or not per_call:
            return None
        total = sum(n * sum(per_call[str(b)].values()) for b, n in s.calls.items())
        return total / (s.samples * (self.prompt_len + self.gen_len - 1))


def environment_of(devices):
    from harness.results.schema import Environment

    return Environment(hardware=environment.hardware(devices), software=environment.software())


def _write(files: RecordFiles, build: _Builder) -> InferenceRecord:
    rows = build.sampler.power_rows()
    files.csv("power.csv", rows)
    for name in (*lgx.LOG_FILES, *(f"accuracy/{n}" for n in lgx.LOG_FILES)):
        if (build.out / name).exists():
            files.adopt(name)  # LoadGen wrote it: hashed into the record
    record, _ = files.record(build.record())
    return record
