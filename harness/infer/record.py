"""The inference record (harness/results/inference.py) from what a `harness infer` has reached: written once
before the test (`running`, so that a killed process leaves one) and again at its end, with LoadGen's files beside
it, hashed."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.infer import loadgen as lgx
from harness.infer.options import InferOptions, buckets
from harness.infer.sut import percentiles_ms
from harness.infer.trained import TrainedRun
from harness.meters.contention import cpu_between
from harness.meters.window import measure_window, session_facts
from harness.results import environment
from harness.results.build import energy_from_windows
from harness.results.inference import InferenceRecord, Serving, Traffic
from harness.results.schema import Device, Environment, Timing
from harness.results.writer import RecordFiles
from workloads.flops import expert_capacity, forward_flops_per_token
from workloads.specs import spec_sha256

START, STOP = "first_query", "last_response"  # the energy window's marks, at the SUT's first query and last answer


@dataclass
class RecordBuilder:
    """The record from what the test has done so far (written before the test, and at the end)."""

    o: InferOptions
    trained: TrainedRun
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
        o, state, marks = self.o, self.state, self.marks
        run, spec = self.trained.record, self.trained.spec
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
        s = sut.tally if sut is not None else None
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
                          dropped_tokens=s.dropped if s else 0, padded_rows=s.padded_rows if s else 0,
                          padding_routed_tokens=s.padding_routed if s else 0,
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


def environment_of(devices: list[Device]) -> Environment:
    return Environment(hardware=environment.hardware(devices), software=environment.software())


def write_record(files: RecordFiles, build: RecordBuilder) -> InferenceRecord:
    rows = build.sampler.power_rows()
    files.csv("power.csv", rows)
    for name in (*lgx.LOG_FILES, *(f"accuracy/{n}" for n in lgx.LOG_FILES)):
        if (build.out / name).exists():
            files.adopt(name)  # LoadGen wrote it: hashed into the record
    record, _ = files.record(build.record())
    return record
