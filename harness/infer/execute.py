"""`harness infer RUN_DIR`: a trained run's weights served under MLPerf LoadGen, metered like training. It reads
as its steps, each in one place:

1. load (harness/infer/trained.py): the run's record and weights checked against the spec's model and loaded;
2. compile: one decoder per batch bucket, each warmed up once (its timings set LoadGen's expected rates where no
   flag does: harness/infer/loadgen.py `settings_for`); init, untimed, metered apart;
3. test: LoadGen drives the SUT (harness/infer/sut.py) in the scenario asked; the energy window runs from its first
   query to its last response;
4. score (harness/infer/quality.py): LoadGen's AccuracyOnly pass, and the quality of what was served;
5. record (harness/infer/record.py): the typed record with LoadGen's files beside it.

A record saying `running` is written before the test, so that a killed process still leaves one; Ctrl-C or
SIGTERM during the test writes it `aborted` with the energy so far.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness import meters as meter_pkg
from harness.infer import loadgen as lgx
from harness.infer.options import InferOptions, buckets, check
from harness.infer.quality import accuracy_pass
from harness.infer.record import START, STOP, RecordBuilder, write_record
from harness.infer.sut import DecoderSUT
from harness.infer.trained import load_run, prompts_and_truth, served_routing
from harness.meters.contention import cpu_snapshot
from harness.mlperf.loadgen_logs import export_loadgen_logs
from harness.results.inference import InferenceRecord
from harness.results.schema import Status
from harness.results.writer import RecordFiles, new_folder
from harness.session import DEFAULT_SAMPLE_HZ, local_accelerators
from workloads.errors import InputError
from workloads.trainers import build_decoder, runtime

__all__ = ["EXIT_ABORTED", "InferOptions", "infer"]

EXIT_ABORTED = 130
WARM_UP_CALLS = 3


class TestAborted(Exception):
    """SIGTERM during the test: recorded like Ctrl-C."""


def infer(o: InferOptions) -> tuple[Path, InferenceRecord]:
    check(o)
    # 1. load: the run and its weights, checked; the spec as served (its routing); prompts and their truth
    trained = load_run(o.run_dir)
    trained = replace(trained, spec=served_routing(trained.spec, o.routing, o.capacity_factor))
    seq = trained.spec.seq_len
    prompt_len = o.prompt_len if o.prompt_len is not None else seq // 2
    gen_len = o.gen_len if o.gen_len is not None else min(seq - prompt_len, trained.spec.model.max_len - prompt_len)
    prompts, truth = prompts_and_truth(trained, prompt_len, gen_len, o.samples)
    batch = {"singlestream": 1, "multistream": o.samples_per_query}.get(o.scenario, o.batch)
    rt = runtime("jax")
    devices = rt.devices()[:1]
    meters, unavailable = o.metering.choose(local_accelerators(devices, rt.process_index()))
    pricing = o.metering.check()
    out = new_folder(Path(o.output_dir), f"{trained.record.workload}-{o.scenario}")
    sampler = meter_pkg.Sampler(meters, hz=o.metering.sample_hz or DEFAULT_SAMPLE_HZ, accounting=cpu_snapshot)
    sampler.start()
    marks: dict[str, float] = {}

    def mark(label: str) -> float:
        marks[label] = sampler.mark(label)
        return marks[label]

    state: dict[str, Any] = {"status": Status.RUNNING, "error": None, "sut": None, "settings": None,
                             "verdict": None, "accuracy": None, "decoder": {}}
    files = RecordFiles(out)
    build = RecordBuilder(o, trained, prompt_len, gen_len, batch, prompts.shape[0], devices, pricing, meters,
                          unavailable, sampler, marks, state, out)
    previous = signal.signal(signal.SIGTERM, _raise_aborted)
    try:
        # 2. compile: one decoder a batch bucket, each warmed up (init, metered apart)
        mark("init_start")
        decoders = {b: build_decoder(trained.spec, trained.weights, b, prompt_len, gen_len, o.temperature, o.seed)
                    for b in buckets(batch)}
        warm = _warm_up(decoders, prompts)
        mark("init_stop")
        state["decoder"] = {"framework": "jax", "version": rt.version(), "device": devices[0].kind,
                            "buckets": sorted(decoders), "warm_up_ms": warm,
                            "trained_with": trained.record.framework, **decoders[batch].routing,
                            "executed_flops_per_call": {str(b): d.executed_flops for b, d in decoders.items()}}
        settings = lgx.settings_for(o, warm, batch)
        lgx.refuse_unmeetable(settings, warm)
        state["settings"] = settings
        files.record(build.record(), durable=False)
        # 3. test: LoadGen drives the SUT; the energy window runs from its first query to its last answer
        sut = DecoderSUT(decoders, prompts, gen_len, o.max_wait_ms / 1e3 if o.scenario == "server" else 0.0,
                         mark, (START, STOP), trained.spec.model.num_switch_layers)
        state["sut"] = sut
        lgx.run_in_thread(sut, prompts.shape[0], lgx.test_settings(settings, "performance", prompts.shape[0]), out)
        state["verdict"] = lgx.verdict(lgx.read_detail(out / "mlperf_log_detail.txt"), o.scenario, None)
        if sut.tally.error:
            raise RuntimeError(f"the decoder failed during the test: {sut.tally.error}")
        # 4. score: the accuracy pass, the quality as served
        if o.accuracy:
            state["accuracy"] = accuracy_pass(trained, decoders[batch], prompts, truth, settings, out)
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
    # 5. record: whatever was reached, with LoadGen's files (and a copy where MLPerf Power's client looks for them)
    record = write_record(files, build)
    if o.loadgen_log_dir is not None and state["verdict"] is not None:
        export_loadgen_logs(out, Path(o.loadgen_log_dir))
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
