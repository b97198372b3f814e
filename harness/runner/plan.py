"""A run's plan: every input checked before any work starts (a one-line error, exit 2, for anything wrong),
the data and target worked out, the processes joined, the devices placed and the meters chosen.

`harness run` is plan (this file), execute (harness/runner/execute.py: the sampler, signals, the loop) and
finish (harness/runner/finish.py: the record and every file rendered from it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import carbon
from harness.carbon import Pricing
from harness.errors import UsageError
from harness.mlperf.rcp import reference_samples
from harness.results.files import check_writable
from harness.runner.cluster import LOST_AFTER_S, RUNTIME_HEARTBEAT_TIMEOUT_S
from harness.runner.devices import Placement, place
from harness.runner.sizing import cpu_refusal, typical_steps
from harness.session import DEFAULT_SAMPLE_HZ, Metering
from workloads.corpus import dataset_sha256
from workloads.registry import CORPUS_NAMES, WorkloadSpec, get_workload
from workloads.sources import corpus_facts, open_corpus
from workloads.trainers import runtime
from workloads.user_data import TokenFile


@dataclass
class RunOptions:
    workload: str
    seed: int = 0
    corpus: str = "default"
    data: str | None = None
    target_loss: float | None = None
    max_steps: int | None = None
    output_dir: str = "results"
    region: str = carbon.DEFAULT_REGION
    pue: float | None = None
    carbon_intensity: float | None = None
    net_intensity: float | None = None
    meter: str = "auto"  # comma-separated backends (harness/meters/registry.py); "fake" is for tests only
    meter_options: dict[str, Any] = field(default_factory=dict)  # by option name, e.g. {"cpu_tdp": 65.0}
    sample_hz: float = DEFAULT_SAMPLE_HZ
    progress: bool = True
    allow_cpu: bool = False  # run a workload sized for an accelerator on the CPU anyway
    mesh: str | None = None  # "data=D,expert=E"; None: every device on data, as far as the batch splits
    framework: str = "jax"
    # Multi-process runs (jax.distributed); none given: a single process, or detected from SLURM / Open MPI.
    coordinator: str | None = None  # HOST:PORT of process 0
    num_processes: int | None = None
    process_id: int | None = None
    peer_timeout_s: float = LOST_AFTER_S  # a process silent this long is lost; the others stop
    spec: WorkloadSpec | None = None  # a variant not in the registry (e.g. a study's expert sweep)
    steps_per_dispatch: int | None = None  # training steps a compiled call; None: the spec's
    keep_weights: bool = True  # write the trained parameters (weights.npz) into the run folder
    # Where MLPerf Power's client (its -L) finds the timed window as LoadGen's power window, written when done.
    loadgen_log_dir: str | None = None

    def metering(self) -> Metering:
        return Metering(meter=self.meter, meter_options=self.meter_options, sample_hz=self.sample_hz,
                        region=self.region, pue=self.pue, carbon_intensity=self.carbon_intensity,
                        net_intensity=self.net_intensity)


@dataclass
class RunPlan:
    spec: WorkloadSpec
    data: Any
    data_info: dict[str, Any]
    target_loss: float
    max_steps: int
    meters: list
    unavailable: list[dict[str, str]]
    placement: Placement
    pricing: Pricing
    steps_per_dispatch: int = 1  # what the run gets (dispatch_steps)


def check(opts: RunOptions) -> tuple[WorkloadSpec, Pricing]:
    """Every option that needs no data and no device, checked; nothing is started."""
    spec = opts.spec or get_workload(opts.workload)
    if opts.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {opts.seed}")
    if opts.max_steps is not None and opts.max_steps < 1:
        raise UsageError(f"--max-steps must be >= 1, got {opts.max_steps}")
    if opts.steps_per_dispatch is not None and opts.steps_per_dispatch < 1:
        raise UsageError(f"--steps-per-dispatch must be >= 1, got {opts.steps_per_dispatch}")
    if (opts.steps_per_dispatch or 1) > 1 and opts.framework != "jax":
        raise UsageError(f"--steps-per-dispatch must be 1 with --framework {opts.framework} (one step a dispatch "
                         f"there; K steps a call is JAX's lax.scan), got {opts.steps_per_dispatch}")
    if opts.target_loss is not None and not opts.target_loss > 0:
        raise UsageError(f"--target-loss must be a positive loss in nats/token, got {opts.target_loss}")
    if opts.data is not None and opts.target_loss is None:
        raise UsageError("--data needs --target-loss (a user corpus has no known entropy floor)")
    if opts.data is None and opts.corpus not in CORPUS_NAMES:
        raise UsageError(f"--corpus must be one of {', '.join(CORPUS_NAMES)}, got {opts.corpus!r}")
    if opts.data is None:
        spec.corpus_named(opts.corpus)  # a spec without a control corpus says so here
    pricing = opts.metering().check()  # a bad region or PUE fails before training, not after
    check_writable(Path(opts.output_dir), "--output-dir")
    if opts.loadgen_log_dir is not None:  # refused now, not after the training
        check_writable(Path(opts.loadgen_log_dir), "--loadgen-log-dir")
    return spec, pricing


def plan(opts: RunOptions) -> RunPlan:
    """Check everything a run needs, then join the processes of a multi-process run (the one side effect:
    devices cannot be listed before it), place the run on its devices and choose its meters."""
    spec, pricing = check(opts)
    if opts.data is not None:
        data = TokenFile(opts.data, spec.seq_len)
        if data.vocab_size > spec.model.vocab_size:
            spec = replace(spec, model=replace(spec.model, vocab_size=data.vocab_size))
        info = {"kind": "user-file", "path": str(Path(opts.data).resolve()), "vocab_size": data.vocab_size,
                "entropy_floor": None}
        target = opts.target_loss
    else:
        cfg = spec.corpus_named(opts.corpus)
        data = open_corpus(cfg)
        info = {**corpus_facts(cfg), "corpus": opts.corpus}
        target = opts.target_loss if opts.target_loss is not None else spec.target_loss(opts.corpus)
    eval_set = data.eval_set()
    info["eval_sha256"] = dataset_sha256(eval_set)
    info["eval_sequences"] = int(eval_set.shape[0])

    _join_processes(opts)
    placement = place(spec, opts.mesh, opts.framework)
    chosen, unavailable = opts.metering().choose(placement.accelerators(), host_level=placement.leads_host,
                                                 host_leader=placement.leader_of_host())
    if spec.sized_for == "accelerator" and not placement.accelerators() and not opts.allow_cpu:
        steps = typical_steps(reference_samples(spec.name, spec.batch_size) or [], spec.batch_size)
        raise UsageError(cpu_refusal(spec, steps))
    max_steps = opts.max_steps or spec.max_steps
    asked = opts.steps_per_dispatch or (spec.steps_per_dispatch if opts.framework == "jax" else 1)
    return RunPlan(spec, data, info, target, max_steps, chosen, unavailable, placement, pricing,
                   dispatch_steps(asked, spec.eval_every_steps, max_steps))


def dispatch_steps(asked: int, eval_every_steps: int, max_steps: int) -> int:
    """The K a run gets when `asked` for K steps a dispatch: the largest that divides `asked`, the eval period
    and the step budget, so that every evaluation falls on a call's last step and no call runs past the budget
    (the record keeps both: training.framework steps_per_dispatch and the spec's)."""
    return math.gcd(asked, eval_every_steps, max_steps)


def _join_processes(opts: RunOptions) -> None:
    """Join a multi-process run before anything touches a device (or detect one from SLURM / Open MPI)."""
    given = [x is not None for x in (opts.coordinator, opts.num_processes, opts.process_id)]
    if any(given) and not all(given):
        raise UsageError("a multi-process run needs --coordinator HOST:PORT, --num-processes N and --process-id I "
                         "together (or none of them, under SLURM or Open MPI)")
    if not 2 <= opts.peer_timeout_s <= RUNTIME_HEARTBEAT_TIMEOUT_S - 10:
        raise UsageError(f"--peer-timeout must be 2..{RUNTIME_HEARTBEAT_TIMEOUT_S - 10} s, got {opts.peer_timeout_s:g}")
    if opts.num_processes is not None and not 0 <= opts.process_id < opts.num_processes:
        raise UsageError(f"--process-id must be in 0..{opts.num_processes - 1}, got {opts.process_id}")
    if opts.coordinator is not None and (":" not in opts.coordinator or
                                         not opts.coordinator.rsplit(":", 1)[1].isdigit()):
        raise UsageError(f"--coordinator must be HOST:PORT, got {opts.coordinator!r}")
    runtime(opts.framework).initialize(opts.coordinator, opts.num_processes, opts.process_id,
                                       RUNTIME_HEARTBEAT_TIMEOUT_S)
