""":::MLLOG files for a run, written through MLCommons' `mlperf_logging.mllog`: the run log and the power log.

Both are rendered from result.json and power.csv with the timestamps recorded during the run (epoch ms), so
an interrupted run gets its log too, and `harness package` can re-render them under a submitter's names.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants as K
from mlperf_logging.mllog.mllog import MLLogger

from harness.meters.ptdaemon import parse_power_log
from harness.results.files import atomic_write_text
from workloads.registry import WORKLOADS
from workloads.spec import same_workload

# Keys of our own, beside MLCommons' (their checker allows unknown keys; our rules check these).
TARGET_EVAL_LOSS = "target_eval_loss"
DATASET = "dataset"
NUM_EXPERTS = "num_experts"
FRAMEWORK = "framework"
DATA_PARALLELISM = "data_parallelism"  # MLCommons names the other *_parallelism keys; data is ours
HARNESS_RESULT = "harness_result"

# Results recorded before the spec named epsilon ran with optax.adamw's default.
ADAMW_EPSILON = 1e-8
PRECISION = {"float32": "fp32", "bfloat16": "bfloat16", "float16": "fp16"}


class _Capture:
    """An MLLogger whose lines go to a string, so that files can be written atomically in one go."""

    def __init__(self, name: str) -> None:
        self.buffer = io.StringIO()
        logger = logging.getLogger(f"harness.mllog.{name}.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        self._handler = logging.StreamHandler(self.buffer)
        logger.addHandler(self._handler)
        self.logger = logger
        self.mllog = MLLogger(logger=logger, default_stack_offset=1)

    def text(self) -> str:
        self.logger.removeHandler(self._handler)
        return self.buffer.getvalue()


def division(result: dict[str, Any]) -> str:
    """'closed' for a registered workload run exactly as registered on its default corpus, else 'open'."""
    spec = WORKLOADS.get(result["workload"])
    if spec is None or result["data"].get("kind") != "procedural" or result["data"].get("corpus") != "default":
        return "open"
    same_spec = same_workload(spec, result["spec"])
    same_target = math.isclose(result["target"]["target_loss"], spec.target_loss(), rel_tol=0, abs_tol=1e-12)
    return "closed" if same_spec and same_target else "open"


def platform_name(result: dict[str, Any]) -> str:
    hw = result["environment"]["hardware"]
    accel = [d["kind"] for d in hw["devices"] if d["platform"] != "cpu"]
    return f"{len(accel)}x{accel[0]}" if accel else f"{hw['logical_cpus']}x{hw['cpu_model']}"


def _ms(t: float) -> float:
    return round(t * 1000.0, 3)


def render_run_log(result: dict[str, Any], org: str = "harness-user", platform: str | None = None,
                   status: str = "research") -> str:
    """The run's :::MLLOG text, MLPerf training keys plus the disclosure keys of the newest ruleset."""
    cap = _Capture("run")
    log = cap.mllog
    spec, marks = result["spec"], result["timing"]["marks_unix_s"]
    model, opt = spec["model"], spec["optimizer"]
    batch = spec["batch_size"]
    t_init = _ms(marks.get("init_start", result["created_unix_s"]))

    def event(key: str, value: Any, t: float = t_init, **metadata: Any) -> None:
        log.event(key=key, value=value, time_ms=t, metadata=metadata or None)

    # Procedural data never touches disk, so there is no page cache to drop; say so rather than claim it.
    event(K.CACHE_CLEAR, False, note="procedural or user data read into memory; no OS cache dropped")
    log.start(key=K.INIT_START, value=None, time_ms=t_init)
    event(K.SUBMISSION_ORG, org)
    event(K.SUBMISSION_PLATFORM, platform or platform_name(result))
    event(K.SUBMISSION_DIVISION, division(result))
    event(K.SUBMISSION_STATUS, status)
    event(K.SUBMISSION_BENCHMARK, result["workload"])
    event(K.SEED, result["seed"])
    event(K.GLOBAL_BATCH_SIZE, batch)
    event(K.MICRO_BATCH_SIZE, batch)
    event(K.GRADIENT_ACCUMULATION_STEPS, 1)
    event(K.MAX_SEQUENCE_LENGTH, spec["corpus"]["seq_len"])
    # The procedural corpus is an unbounded stream: its "epoch" is the step budget, train_samples its size.
    train_samples = result["target"]["max_steps"] * batch
    event(K.TRAIN_SAMPLES, train_samples)
    event(K.EVAL_SAMPLES, result["data"]["eval_sequences"])
    event(DATASET, result["data"]["kind"], corpus=result["data"].get("corpus"),
          eval_sha256=result["data"]["eval_sha256"])
    event(TARGET_EVAL_LOSS, result["target"]["target_loss"], metric="eval loss, nats/token, lower is better")
    event(K.OPT_NAME, "adamw")
    event(K.OPT_BASE_LR, opt["learning_rate"])
    event(K.OPT_LR_WARMUP_STEPS, opt["warmup_steps"])
    event(K.OPT_LR_DECAY_SCHEDULE, opt["schedule"])
    event(K.OPT_ADAMW_BETA_1, opt["b1"])
    event(K.OPT_ADAMW_BETA_2, opt["b2"])
    event(K.OPT_ADAMW_EPSILON, opt.get("epsilon", ADAMW_EPSILON))
    event(K.OPT_ADAMW_WEIGHT_DECAY, opt["weight_decay"])
    event(K.OPT_GRADIENT_CLIP_NORM, opt["grad_clip_norm"])
    if model["num_experts"]:
        event(K.MOE_AUX_LOSS_COEFF, model["balance_coef"])
        event(NUM_EXPERTS, model["num_experts"])
    precision = PRECISION.get(model["dtype"], model["dtype"])
    # Parameters and optimiser state stay float32; the router and the loss too (Switch's selective precision).
    recorded = result["training"].get("precision", {})
    event(K.LOWEST_NUMERICAL_PRECISION_IN_LINEAR, precision, **{k: PRECISION.get(v, v) for k, v in recorded.items()})
    # The QKV and output projections, and the attention itself, run in the model dtype.
    event(K.LOWEST_NUMERICAL_PRECISION_IN_ATTN, precision,
          implementation=result["training"].get("framework", {}).get("attention_implementation"))
    # Gradients all-reduce and tokens all-to-all in the precision they are computed in: float32 gradients,
    # model-dtype activations (one device: nothing is communicated).
    par = result.get("parallelism") or {"data": 1, "expert": 1, "devices": 1}
    event(K.LOWEST_NUMERICAL_PRECISION_IN_COMM, PRECISION.get(model["dtype"], model["dtype"])
          if par["expert"] > 1 else "fp32")
    for key in (K.TENSOR_PARALLELISM, K.PIPELINE_PARALLELISM, K.CONTEXT_PARALLELISM):
        event(key, 1)
    event(K.EXPERT_PARALLELISM, par["expert"])
    event(DATA_PARALLELISM, par["data"], devices=par["devices"], processes=par.get("processes", 1),
          device_kinds=par.get("device_kinds"))
    event(K.CONFIG_FILENAME, f"workloads/registry.py:{result['workload']}")
    fw = result["training"].get("framework") or {}
    if fw:
        event(FRAMEWORK, fw.get("framework"), version=fw.get("version"), backend=fw.get("backend"))
    event(HARNESS_RESULT, result["run_id"])
    if "init_stop" in marks:
        log.end(key=K.INIT_STOP, value=None, time_ms=_ms(marks["init_stop"]))
    if "run_start" in marks:
        _timed_window(log, result, marks, batch, train_samples)
    return cap.text()


def _timed_window(log: MLLogger, result: dict[str, Any], marks: dict[str, float], batch: int,
                  train_samples: int) -> None:
    log.start(key=K.RUN_START, value=None, time_ms=_ms(marks["run_start"]))
    log.start(key=K.BLOCK_START, value=None, time_ms=_ms(marks["run_start"]), metadata={K.SAMPLES_COUNT: 0})
    last = len(result["eval_trace"]) - 1
    for i, point in enumerate(result["eval_trace"]):
        samples = point["step"] * batch
        meta = {K.SAMPLES_COUNT: samples, K.EPOCH_NUM: samples / train_samples}
        begin, end = point["eval_start_unix_s"], point["eval_stop_unix_s"]
        log.end(key=K.BLOCK_STOP, value=None, time_ms=_ms(begin), metadata={K.SAMPLES_COUNT: samples})
        log.start(key=K.EVAL_START, value=None, time_ms=_ms(begin), metadata=meta)
        if point["eval_loss"] is not None:  # a diverged run's last eval has none
            log.event(key=K.EVAL_ACCURACY, value=point["eval_loss"], time_ms=_ms(end), metadata=meta)
        log.end(key=K.EVAL_STOP, value=None, time_ms=_ms(end), metadata=meta)
        if i < last:
            log.start(key=K.BLOCK_START, value=None, time_ms=_ms(end), metadata={K.SAMPLES_COUNT: samples})
    if "run_stop" in marks:
        status = K.SUCCESS if result["status"] == "converged" else K.ABORTED
        log.end(key=K.RUN_STOP, value=None, time_ms=_ms(marks["run_stop"]),
                metadata={K.STATUS: status, "harness_status": result["status"]})


def power_readings(result: dict[str, Any], run_dir: Path, host: int | None = None) -> list[tuple[float, float]]:
    """(unix s, W) readings covering run_start..run_stop; each W is the average over the interval ending then.

    With such readings the rectangle sum MLCommons' summarizer takes (W_i x (t_i - t_i-1)) is exactly the
    energy our meters measured. The run's own figure is used: the node meter's or imported log's when there
    is one, else the sum of the device components. In a multi-process run, `host` names the process whose
    trace (host_<k>/power.csv) and components (p<k>:...) are read.
    """
    marks, energy = result["timing"]["marks_unix_s"], result["energy"]
    start, stop = marks["run_start"], marks.get("run_stop")
    if stop is None:
        return []
    imported = energy.get("external_import")
    if imported:
        log = parse_power_log(run_dir / imported["copied_to"], imported.get("utc_offset_h", 0.0))
        return [(t, w) for t, w in zip(log.times_unix_s, log.watts, strict=True) if start < t <= stop]
    components, trace = energy["components"], run_dir / "power.csv"
    if host is not None:
        prefix = f"p{host}:"
        components = {k.removeprefix(prefix): c for k, c in components.items() if k.startswith(prefix)}
        trace = run_dir / f"host_{host}" / "power.csv"
    scope = "node" if any(c.get("scope") == "node" for c in components.values()) else "device"
    columns = [f"{k}_w" for k, c in components.items() if c.get("scope", "device") == scope]
    with open(trace, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        t = float(row["time_unix_s"])
        if start < t <= stop + 1e-6:
            out.append((t, sum(float(row[c]) for c in columns)))
    return out


def metered_hosts(result: dict[str, Any]) -> list[int | None]:
    """The power logs a run has: [None] for a single process, else every process with components of its own."""
    hosts = result["energy"].get("hosts")
    if not hosts:
        return [None]
    return [h["process"] for h in hosts
            if any(k.startswith(f"p{h['process']}:") for k in result["energy"]["components"])]


def render_power_log(result: dict[str, Any], run_dir: Path, node: str = "node_0", host: int | None = None) -> str:
    """MLPerf training power format: power_measurement_start, conversion_eff, power_reading (W), ..._stop."""
    cap = _Capture("power")
    log = cap.mllog
    marks = result["timing"]["marks_unix_s"]
    meta = {"host": node}
    log.event(key=K.POWER_MEASUREMENT_START, value=None, time_ms=_ms(marks["run_start"]), metadata=meta)
    # Our readings are already the energy the meters saw at their own scope: no AC/DC conversion to apply.
    log.event(key=K.CONVERTION_EFF, value=1.0, time_ms=_ms(marks["run_start"]), metadata=meta)
    for t, watts in power_readings(result, run_dir, host):
        log.event(key=K.POWER_READING, value=watts, time_ms=_ms(t), metadata=meta)
    if "run_stop" in marks:
        log.event(key=K.POWER_MEASUREMENT_STOP, value=None, time_ms=_ms(marks["run_stop"]), metadata=meta)
    return cap.text()


def write_run_logs(result: dict[str, Any], run_dir: Path) -> list[str]:
    """mllog.txt, and the power log of each metered host (power_mllog.txt for a single process, else
    host_<k>/power_mllog.txt); returns the paths written, relative to the run directory."""
    atomic_write_text(run_dir / "mllog.txt", render_run_log(result))
    names = ["mllog.txt"]
    if "run_start" in result["timing"]["marks_unix_s"]:
        for host in metered_hosts(result):
            name = "power_mllog.txt" if host is None else f"host_{host}/power_mllog.txt"
            atomic_write_text(run_dir / name, render_power_log(result, run_dir, f"node_{host or 0}", host))
            names.append(name)
    return names
