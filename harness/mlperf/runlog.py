""":::MLLOG files for a run, written through MLCommons' `mlperf_logging.mllog`: the run log and the power log.

Both are rendered from result.json and power.csv with the timestamps recorded during the run (epoch ms), so
an interrupted run gets its log too, and `harness package` can re-render them under a submitter's names.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants as K
from mlperf_logging.mllog.mllog import MLLogger

from harness.meters.ptdaemon import parse_power_log, window_points
from harness.results.schema import Record, RunRecord, Status
from workloads.registry import WORKLOADS
from workloads.specs import same_workload

# Keys of our own, beside MLCommons' (their checker allows unknown keys; our rules check these).
TARGET_EVAL_LOSS = "target_eval_loss"
DATASET = "dataset"
NUM_EXPERTS = "num_experts"
MOE_ROUTING = "moe_routing"  # "capacity" (the Switch paper's) or "dropless"
FRAMEWORK = "framework"
DATA_PARALLELISM = "data_parallelism"  # MLCommons names the other *_parallelism keys; data is ours
HARNESS_RESULT = "harness_result"

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

    def repeat_last(self, points: Iterable[tuple[float, Any]]) -> None:
        """More events like the last one logged, at other times with other values, in the logger's own format.

        The logger reads its caller's source line for every event (inspect.getframeinfo: ~0.15 ms each); a power
        log holds a reading per sample, tens of thousands for a long run, and a package or site renders many."""
        last = self.buffer.getvalue().rstrip("\n").rsplit("\n", 1)[-1]
        event = json.loads(last.split(":::MLLOG ", 1)[1])
        # The line with two marks in place of the time and the value, split there once: a float's JSON is its
        # repr (json.dumps writes float.__repr__ for finite floats), so each line is three joins, not a dumps.
        event["time_ms"], event["value"] = "\0t", "\0v"
        head, rest = (":::MLLOG " + json.dumps(event)).split('"\\u0000t"')
        middle, tail = rest.split('"\\u0000v"')
        write = self.buffer.write
        for time_ms, value in points:
            if type(time_ms) is float and type(value) is float and math.isfinite(time_ms) and math.isfinite(value):
                write(f"{head}{time_ms!r}{middle}{value!r}{tail}\n")
            else:
                event["time_ms"], event["value"] = time_ms, value
                write(":::MLLOG " + json.dumps(event) + "\n")


def division(record: RunRecord) -> str:
    """'closed' for a registered workload run exactly as registered on its default corpus, else 'open'."""
    spec = WORKLOADS.get(record.workload)
    if spec is None or record.data.get("kind") not in ("procedural", "text") or record.data.get("corpus") != "default":
        return "open"
    same_spec = same_workload(spec, record.spec)
    same_target = math.isclose(record.target.target_loss, spec.target_loss(), rel_tol=0, abs_tol=1e-12)
    return "closed" if same_spec and same_target else "open"


def _ms(t: float) -> float:
    return round(t * 1000.0, 3)


def render_run_log(record: RunRecord, org: str = "harness-user", platform: str | None = None,
                   status: str = "research") -> str:
    """The run's :::MLLOG text, MLPerf training keys plus the disclosure keys of the newest ruleset."""
    cap = _Capture("run")
    log = cap.mllog
    spec, marks = record.spec, record.timing.marks_unix_s
    model, opt = spec["model"], spec["optimizer"]
    batch = spec["batch_size"]
    t_init = _ms(marks.get("init_start", record.created_unix_s))

    def event(key: str, value: Any, t: float = t_init, **metadata: Any) -> None:
        log.event(key=key, value=value, time_ms=t, metadata=metadata or None)

    # Procedural data never touches disk, so there is no page cache to drop; say so rather than claim it.
    event(K.CACHE_CLEAR, False, note="procedural, shipped or user data read into memory; no OS cache dropped")
    log.start(key=K.INIT_START, value=None, time_ms=t_init)
    event(K.SUBMISSION_ORG, org)
    event(K.SUBMISSION_PLATFORM, platform or record.environment.hardware.platform_name)
    event(K.SUBMISSION_DIVISION, division(record))
    event(K.SUBMISSION_STATUS, status)
    event(K.SUBMISSION_BENCHMARK, record.workload)
    event(K.SEED, record.seed)
    event(K.GLOBAL_BATCH_SIZE, batch)
    event(K.MICRO_BATCH_SIZE, batch)
    event(K.GRADIENT_ACCUMULATION_STEPS, 1)
    event(K.MAX_SEQUENCE_LENGTH, spec["corpus"]["seq_len"])
    # The procedural corpus is an unbounded stream: its "epoch" is the step budget, train_samples its size.
    train_samples = record.target.max_steps * batch
    event(K.TRAIN_SAMPLES, train_samples)
    event(K.EVAL_SAMPLES, record.data["eval_sequences"])
    event(DATASET, record.data["kind"], corpus=record.data.get("corpus"), eval_sha256=record.data["eval_sha256"])
    event(TARGET_EVAL_LOSS, record.target.target_loss, metric="eval loss, nats/token, lower is better")
    event(K.OPT_NAME, "adamw")
    event(K.OPT_BASE_LR, opt["learning_rate"])
    event(K.OPT_LR_WARMUP_STEPS, opt["warmup_steps"])
    event(K.OPT_LR_DECAY_SCHEDULE, opt["schedule"])
    event(K.OPT_ADAMW_BETA_1, opt["b1"])
    event(K.OPT_ADAMW_BETA_2, opt["b2"])
    event(K.OPT_ADAMW_EPSILON, opt["epsilon"])
    event(K.OPT_ADAMW_WEIGHT_DECAY, opt["weight_decay"])
    event(K.OPT_GRADIENT_CLIP_NORM, opt["grad_clip_norm"])
    if model["num_experts"]:
        event(K.MOE_AUX_LOSS_COEFF, model["balance_coef"])
        event(NUM_EXPERTS, model["num_experts"])
        event(MOE_ROUTING, model.get("routing", "capacity"))  # a spec recorded before the field: capacity
    precision = PRECISION.get(model["dtype"], model["dtype"])
    # Parameters and optimiser state stay float32; the router and the loss too (Switch's selective precision).
    recorded = record.training.precision
    event(K.LOWEST_NUMERICAL_PRECISION_IN_LINEAR, precision, **{k: PRECISION.get(v, v) for k, v in recorded.items()})
    # The QKV and output projections, and the attention itself, run in the model dtype.
    framework = record.training.framework
    event(K.LOWEST_NUMERICAL_PRECISION_IN_ATTN, precision, implementation=framework.get("attention_implementation"))
    # Gradients all-reduce and tokens all-to-all in the precision they are computed in: float32 gradients,
    # model-dtype activations (one device: nothing is communicated).
    par = record.parallelism or {"data": 1, "expert": 1, "devices": 1}
    event(K.LOWEST_NUMERICAL_PRECISION_IN_COMM, precision if par["expert"] > 1 else "fp32")
    for key in (K.TENSOR_PARALLELISM, K.PIPELINE_PARALLELISM, K.CONTEXT_PARALLELISM):
        event(key, 1)
    event(K.EXPERT_PARALLELISM, par["expert"])
    event(DATA_PARALLELISM, par["data"], devices=par["devices"], processes=par.get("processes", 1),
          device_kinds=par.get("device_kinds"))
    event(K.CONFIG_FILENAME, f"workloads/registry.py:{record.workload}")
    if framework:
        event(FRAMEWORK, framework.get("framework"), version=framework.get("version"),
              backend=framework.get("backend"))
    event(HARNESS_RESULT, record.run_id)
    if "init_stop" in marks:
        log.end(key=K.INIT_STOP, value=None, time_ms=_ms(marks["init_stop"]))
    if "run_start" in marks:
        _timed_window(log, record, marks, batch, train_samples)
    return cap.text()


def _timed_window(log: MLLogger, record: RunRecord, marks: Mapping[str, float], batch: int,
                  train_samples: int) -> None:
    log.start(key=K.RUN_START, value=None, time_ms=_ms(marks["run_start"]))
    log.start(key=K.BLOCK_START, value=None, time_ms=_ms(marks["run_start"]), metadata={K.SAMPLES_COUNT: 0})
    last = len(record.eval_trace) - 1
    for i, point in enumerate(record.eval_trace):
        samples = point.step * batch
        meta = {K.SAMPLES_COUNT: samples, K.EPOCH_NUM: samples / train_samples}
        begin, end = point.eval_start_unix_s, point.eval_stop_unix_s
        if begin is None or end is None:  # records from before evaluations were timestamped
            continue
        log.end(key=K.BLOCK_STOP, value=None, time_ms=_ms(begin), metadata={K.SAMPLES_COUNT: samples})
        log.start(key=K.EVAL_START, value=None, time_ms=_ms(begin), metadata=meta)
        if point.eval_loss is not None:  # a diverged run's last eval has none
            log.event(key=K.EVAL_ACCURACY, value=point.eval_loss, time_ms=_ms(end), metadata=meta)
        log.end(key=K.EVAL_STOP, value=None, time_ms=_ms(end), metadata=meta)
        if i < last:
            log.start(key=K.BLOCK_START, value=None, time_ms=_ms(end), metadata={K.SAMPLES_COUNT: samples})
    if "run_stop" in marks:
        status = K.SUCCESS if record.status == Status.CONVERGED else K.ABORTED
        log.end(key=K.RUN_STOP, value=None, time_ms=_ms(marks["run_stop"]),
                metadata={K.STATUS: status, "harness_status": str(record.recorded_status or record.status)})


def power_readings(record: Record, run_dir: Path, host: int | None = None) -> list[tuple[float, float]]:
    """(unix s, W) readings covering run_start..run_stop; each W is the average over the interval ending then.

    With such readings the rectangle sum MLCommons' summarizer takes (W_i x (t_i - t_i-1)) is exactly the
    energy our meters measured. The run's own figure is used: the node meter's or imported log's when there
    is one, else the sum of the device components. In a multi-process run, `host` names the process whose
    trace (host_<k>/power.csv) and components (p<k>:...) are read.
    """
    marks, energy = record.timing.marks_unix_s, record.energy
    start, stop = marks["run_start"], marks.get("run_stop")
    if stop is None:
        return []
    imported = energy.external_import
    if imported:
        # The log's own trapezoid, as interval averages: their rectangle sum is the imported figure exactly.
        log = parse_power_log(run_dir / imported["copied_to"], imported.get("utc_offset_h", 0.0))
        points = window_points(log, start, stop)
        return [(t, (w0 + w) / 2) for (_, w0), (t, w) in zip(points, points[1:], strict=False) if t > start]
    components, trace = dict(energy.components), run_dir / "power.csv"
    if host is not None:
        prefix = f"p{host}:"
        components = {k.removeprefix(prefix): c for k, c in components.items() if k.startswith(prefix)}
        trace = run_dir / f"host_{host}" / "power.csv"
    scope = "node" if any(c.scope == "node" for c in components.values()) else "device"
    columns = [f"{k}_w" for k, c in components.items() if c.scope == scope]
    if not trace.is_file():  # never written (a full disk) or killed before it was: the record says which
        return []
    with open(trace, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        if not set(columns) | {"time_unix_s"} <= set(header):
            return []  # a trace that is not the record's (damaged, or another's): check says the log has no readings
        at, wanted = header.index("time_unix_s"), [header.index(c) for c in columns]
        out = []
        for row in rows:
            try:
                t = float(row[at])
                if start < t <= stop + 1e-6:
                    out.append((t, sum(float(row[i]) for i in wanted)))
            except (IndexError, ValueError):
                continue  # a short or damaged line (a run killed mid-write): not a reading
    return out


def metered_hosts(record: Record) -> list[int | None]:
    """The power logs a run has: [None] for a single process, else every process with components of its own."""
    hosts = record.energy.hosts
    if not hosts:
        return [None]
    return [h["process"] for h in hosts if any(k.startswith(f"p{h['process']}:") for k in record.energy.components)]


def run_log_names(record: Record) -> dict[str, tuple[str | None, int | None]]:
    """The :::MLLOG files of a run's folder, each with its node name and host: mllog.txt (runs only), and the
    power log of each metered host (power_mllog.txt for a single process, else host_<k>/power_mllog.txt)."""
    names: dict[str, tuple[str | None, int | None]] = {"mllog.txt": (None, None)} if record.is_run else {}
    if "run_start" in record.timing.marks_unix_s:
        for host in metered_hosts(record):
            name = "power_mllog.txt" if host is None else f"host_{host}/power_mllog.txt"
            names[name] = (f"node_{host or 0}", host)
    return names


def render_power_log(record: Record, run_dir: Path, node: str = "node_0", host: int | None = None) -> str:
    """MLPerf training power format: power_measurement_start, conversion_eff, power_reading (W), ..._stop."""
    cap = _Capture("power")
    log = cap.mllog
    marks = record.timing.marks_unix_s
    meta = {"host": node}
    log.event(key=K.POWER_MEASUREMENT_START, value=None, time_ms=_ms(marks["run_start"]), metadata=meta)
    # Our readings are already the energy the meters saw at their own scope: no AC/DC conversion to apply.
    log.event(key=K.CONVERTION_EFF, value=1.0, time_ms=_ms(marks["run_start"]), metadata=meta)
    readings = power_readings(record, run_dir, host)
    if readings:
        t, watts = readings[0]
        log.event(key=K.POWER_READING, value=watts, time_ms=_ms(t), metadata=meta)
        cap.repeat_last(((_ms(t), watts) for t, watts in readings[1:]))
    if "run_stop" in marks:
        log.event(key=K.POWER_MEASUREMENT_STOP, value=None, time_ms=_ms(marks["run_stop"]), metadata=meta)
    return cap.text()
