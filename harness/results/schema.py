"""The result record: one typed schema for every run and every metered command, its statuses, and the figures
derived from it.

A record stores what was measured (the timed window, the work done, energy by component with its method)
and the factors that price it (PUE, grid intensities). Every figure derived from those (energy to target,
tokens and FLOPs per joule, joules per token, MFU, CO2e) is a property computed from the one stored energy,
so no two copies can disagree: re-pricing or importing a node power log changes the energy, and every
figure follows. harness/results/encoding.py writes a record as result.json (the derived figures beside the
stored ones, for readers of the JSON) and reads it back (ignoring them: they are worked out again);
harness/results/versions.py upgrades every older shape first.

Units: joules (J), seconds (s), watts (W), FLOPs, kilograms CO2e (kg), unix seconds for wall-clock times.
Importing this module loads no framework (nothing beyond the standard library and harness.carbon).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

from harness.carbon import Footprint, Pricing

SCHEMA = "harness.result/3"
SCHEMA_FAMILY = "harness.result/"
RUN, COMMAND = "run", "command"  # the record kinds: `harness run` and `harness meter` (and harness/results/
# inference.py's "inference": `harness infer`)


class Status(StrEnum):
    """Where a record stands. Runs: RUNNING until they end as CONVERGED, NOT_CONVERGED, DIVERGED or ABORTED;
    metered commands: COMPLETED, FAILED, KILLED or ABORTED. INTERRUPTED is never written: a reader gives it
    to a RUNNING record whose process is gone (killed outright), which therefore has no final record."""

    RUNNING = "running"  # written at run_start and after evaluations; replaced by the final record
    CONVERGED = "converged"  # reached the quality target: the only status with a time and energy to target
    NOT_CONVERGED = "not_converged"  # the step budget ran out first
    DIVERGED = "diverged"  # the loss went NaN or inf; stopped there
    ABORTED = "aborted"  # Ctrl-C or SIGTERM (passed on to a metered command), a crash, or a process lost
    INTERRUPTED = "interrupted"  # read as: RUNNING on disk, its process gone; figures up to its last evaluation
    COMPLETED = "completed"  # harness meter: the command exited 0
    FAILED = "failed"  # harness meter: the command exited non-zero
    KILLED = "killed"  # harness meter: a signal the harness did not pass on killed the command

    @property
    def final(self) -> bool:
        """Whether the record is the run's last word (not RUNNING, not INTERRUPTED)."""
        return self not in (Status.RUNNING, Status.INTERRUPTED)


# The sampler mark an aborted run's window ends at (energy.window "run_start..aborted"); run_stop is taken there.
ABORT_MARK = "aborted"
RUN_STATUSES = (Status.RUNNING, Status.CONVERGED, Status.NOT_CONVERGED, Status.DIVERGED, Status.ABORTED)
COMMAND_STATUSES = (Status.COMPLETED, Status.FAILED, Status.KILLED, Status.ABORTED)
INTERRUPTED_NOTE = "no final record: the run's process is gone (killed?); figures are up to its last evaluation"


# -- energy -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Component:
    """One meter component ("nvml/gpu-0", "rapl/package-0", "p1:cpu-model/cpu" in a multi-process run)."""

    joules: float | None  # J over the energy window; None when it could not be measured (see the flags)
    init_joules: float | None  # J over init (untimed), reported apart
    method: str  # "measured:nvml-energy-counter", "modelled:cpu-tdp-utilization", ...
    scope: str = "device"  # "device": one part of the node; "node": the whole node (contains the devices)
    part: str = "cpu"  # "accelerator", "cpu", "node" or "synthetic"
    avg_watts: float | None = None  # W, joules / window seconds
    peak_watts: float | None = None  # W, highest reading in the window
    peak_source: str | None = None  # "instantaneous power gauge" or "sampling-interval average"
    power_limit_w: float | None = None  # W, the board's enforced limit (accelerators)
    coverage: float | None = None  # fraction of the window backed by real readings
    errors: int | None = None  # failed readings inside the window
    process: int | None = None  # multi-process runs: the process that read it
    host: str | None = None  # multi-process runs: its host


@dataclass(frozen=True, kw_only=True)
class Contention:
    """CPU time on this host over the energy window: the run's own (its process and the children it waited
    for) against every process's. A CPU meter (RAPL or the CPU model) charges the whole package to the run,
    so other work on the machine inflates its figure; above `threshold` of the machine's CPU the window is
    flagged. (NVML warns of other processes on a GPU the same way.)"""

    seconds: float  # s, the window
    cpus: int  # logical CPUs the machine accounts for
    own_cpu_s: float  # s of CPU the run's process (and its waited-for children) used
    machine_busy_cpu_s: float  # s of CPU every process on the machine used (/proc/stat, busy jiffies)
    threshold: float  # fraction of the machine's CPU capacity above which others' use is flagged

    @property
    def others_cpu_s(self) -> float:
        """s of CPU used by other processes (never below 0: the two clocks tick at different rates)."""
        return max(0.0, self.machine_busy_cpu_s - self.own_cpu_s)

    @property
    def others_share(self) -> float | None:
        """Other processes' CPU time as a fraction of the machine's capacity over the window."""
        capacity = self.seconds * self.cpus
        return self.others_cpu_s / capacity if capacity > 0 else None

    @property
    def flagged(self) -> bool:
        return (self.others_share or 0.0) > self.threshold

    def note(self) -> str:
        share = self.others_share
        return (f"other processes used {100 * (share or 0):.0f} % of the machine's CPU over the window "
                f"({self.others_cpu_s:.1f} of {self.seconds * self.cpus:.1f} CPU-s; the run itself "
                f"{self.own_cpu_s:.1f}); a CPU meter charges their work to the run")


@dataclass(frozen=True, kw_only=True)
class Energy:
    """The energy of the timed window (run_start..run_stop, or ..the abort, or ..the latest evaluation for a
    record written during the run), by component, with its method and everything a sceptic checks."""

    window: str | None  # "run_start..run_stop", "run_start..aborted", "run_start..eval_400"
    seconds: float | None  # s, the window's length
    total_j: float | None  # J: THE energy (node meter's or imported log's when there is one, else the
    #                        metered components' sum, summed over hosts); None when not measurable
    method: str  # every method behind total_j, "+"-joined
    basis: str | None  # what total_j contains, in words
    device_j: float | None  # J, sum of the device-scope components
    node_j: float | None  # J, the node-scope figure (external meter or imported log)
    init_j: float | None  # J over init, reported apart
    components: Mapping[str, Component]
    complete: bool  # every component read at both edges, >= 95 % covered, no failed reads, no host lost
    coverage: float | None = None
    incomplete_reasons: tuple[str, ...] = ()
    cross_checks: tuple[Mapping[str, Any], ...] = ()  # independent figures and their disagreement in %
    flags: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    meters: tuple[Mapping[str, Any], ...] = ()  # every meter's parameters
    unavailable: tuple[Mapping[str, str], ...] = ()  # {"name", "reason"} for every meter not used
    sampler: Mapping[str, Any] = field(default_factory=dict)
    hosts: tuple[Mapping[str, Any], ...] = ()  # multi-process runs: each host's own figure
    external_import: Mapping[str, Any] | None = None  # an imported node power log (harness import-power)
    contention: Contention | None = None

    @property
    def rankable(self) -> bool:
        """May this figure be ranked, compared or scored? Only when complete and a positive finite number."""
        return self.complete and self.total_j is not None and math.isfinite(self.total_j) and self.total_j > 0

    @property
    def ranked_j(self) -> float | None:
        """total_j where it may be ranked, else None (the reason: `why_not_ranked`)."""
        return self.total_j if self.rankable else None

    def why_not_ranked(self) -> str | None:
        if self.rankable:
            return None
        if not self.complete:
            return "energy figure incomplete: " + ("; ".join(self.incomplete_reasons) or "see energy.flags")
        return "no energy figure" if self.total_j is None else f"energy figure {self.total_j} J is not positive"

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.method.split("+") if m)

    @property
    def modelled_methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m.startswith("modelled:"))

    @property
    def method_word(self) -> str:
        """'measured', 'modelled', 'partly modelled' or 'synthetic': how to say where the figure comes from. The
        fake meter's figures (tests, dry runs) are synthetic, never measured, whatever else is in the sum."""
        if any(m.startswith("fake:") for m in self.methods):
            return "synthetic"
        modelled = self.modelled_methods
        if not modelled:
            return "measured"
        return "modelled" if len(modelled) == len(self.methods) else "partly modelled"

    @property
    def label(self) -> str:
        """The method as a reader must see it, with INCOMPLETE where it is."""
        return self.method + ("" if self.complete else " (INCOMPLETE)")

    def part_j(self, part: str) -> float | None:
        """J of every component of one part ("accelerator", "cpu", ...); None if one is unmeasured or none."""
        joules = [c.joules for c in self.components.values() if c.part == part]
        return sum(joules) if joules and all(j is not None for j in joules) else None


# -- the work and the window it was timed over ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Timing:
    """MLPerf's timing: init untimed; the timed window run_start..run_stop includes evaluation."""

    rules: str = "MLPerf: init untimed; timed window run_start..run_stop includes evaluation"
    init_s: float | None = None  # s, init_start..init_stop
    run_s: float | None = None  # s, run_start..run_stop (run_stop is the abort for an aborted run)
    marks_unix_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Target:
    metric: str = "eval_loss_nats_per_token"
    target_loss: float  # nats/token; converged at the first evaluation at or below it
    entropy_floor: float | None  # nats/token, the Bayes-optimal loss of a procedural corpus (None: text, user data)
    max_steps: int


@dataclass(frozen=True, kw_only=True)
class Training:
    steps: int  # steps dispatched in the timed window
    tokens: int  # training tokens of those steps
    train_flops_per_token: float  # model matmul FLOPs, forward + backward (3x forward), activated experts only
    params_total: int | None
    params_activated: int | None
    dropped_fraction_mean: float | None = None  # Switch: mean fraction of tokens over capacity
    precision: Mapping[str, str] = field(default_factory=dict)  # per part of the computation
    framework: Mapping[str, Any] = field(default_factory=dict)  # name, version, backend, devices, attention
    # Matmul FLOPs the compiled step computes per trained token, forward + backward: every capacity slot filled or
    # not, the dropless block padding (workloads/flops.py executed_train_flops_per_token). None: recorded before.
    executed_flops_per_token: float | None = None

    FLOPS_NOTE: ClassVar[str] = ("model matmul FLOPs, forward + backward (3x forward), activated experts only; "
                                 "MFU and FLOPs/J use these, executed_flops_per_token is what the step computed")

    @property
    def train_flops(self) -> float:
        return self.train_flops_per_token * self.tokens

    @property
    def executed_over_activated(self) -> float | None:
        """Executed over activated FLOPs per token: 1 where the step computes only what the tokens need."""
        if not self.executed_flops_per_token or not self.train_flops_per_token:
            return None
        return self.executed_flops_per_token / self.train_flops_per_token


@dataclass(frozen=True, kw_only=True)
class EvalPoint:
    """One evaluation in the timed window (also a row of quality.csv)."""

    step: int
    elapsed_s: float  # s since run_start
    tokens: int  # training tokens seen so far
    eval_loss: float | None  # nats/token; None when non-finite (a diverged run)
    train_loss: float | None
    energy_j: float | None = None  # J since run_start (None: the window was too short for a counter)
    eval_loss_stderr: float | None = None
    eval_start_unix_s: float | None = None
    eval_stop_unix_s: float | None = None  # the evaluation's mark: device work synchronised here

    @property
    def mark(self) -> str:
        return f"eval_{self.step}"


@dataclass(frozen=True, kw_only=True)
class Work:
    """The work of the efficiency window and the peak it is held against; the figures are derived.

    The window is one whose device work was synchronised at both edges: the whole timed window, or for an
    aborted run the span up to its last evaluation (steps dispatched after it were never waited for, so
    counting them would claim work the device may not have done). Without such a window, `window_reason`
    says why.
    """

    window: str | None  # "run_start..run_stop" or "run_start..eval_<step>"; None: no synchronised window
    seconds: float | None  # s
    tokens: int  # training tokens in the window
    model_flops: float  # training 3x forward, plus every evaluation's forward, in the window
    peak_flops_per_s: float | None  # FLOP/s, the devices' published dense peak for the matmul precision
    peak: Mapping[str, Any] | None = None  # the peak's row and source, or {"reason"} why there is none
    window_reason: str | None = None  # why there is no synchronised window

    NOTE: ClassVar[str] = ("training 3x forward matmul FLOPs (activated experts only) plus the forward FLOPs of "
                           "every evaluation, over the efficiency window (loop and evaluation time included)")
    NO_EVALUATION_YET: ClassVar[str] = "written before the run's first evaluation: no synchronised window yet"
    ABORTED_UNSYNCED: ClassVar[str] = ("aborted before its first evaluation: the steps it dispatched were never "
                                       "waited for, so no window holds work the device is known to have done")


WEIGHTS_FILE = "weights.npz"
WEIGHTS_FORMAT = "numpy .npz, float32 arrays by Flax parameter path (block_1/attn/qkv/kernel), any framework"


@dataclass(frozen=True, kw_only=True)
class Weights:
    """The trained parameters a run kept (weights.npz in its folder), what `harness infer` serves."""

    file: str  # "weights.npz", in the run's folder
    sha256: str  # of the file; harness infer refuses weights whose hash differs
    bytes: int
    parameters: int  # scalars in the file
    spec_sha256: str  # the spec they were trained under (workloads/specs.py spec_sha256)
    step: int  # the training step they are from (the run's last)
    format: str = WEIGHTS_FORMAT


# -- where it ran -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Device:
    kind: str  # the device's model ("NVIDIA H100 80GB HBM3", "cpu")
    platform: str  # "gpu", "tpu", "cpu"
    id: int = 0
    process: int = 0


@dataclass(frozen=True, kw_only=True)
class Hardware:
    """The host and the devices the run trained on (every process's, in a multi-process run)."""

    platform: str | None  # Python's platform string: OS, kernel, libc
    machine: str | None  # "x86_64", "aarch64"
    cpu_model: str
    logical_cpus: int | None
    memory_gib: float | None
    devices: tuple[Device, ...]
    backend: str | None = None
    host: str | None = None
    cpu: Mapping[str, Any] | None = None  # /proc/cpuinfo and sysfs, read during the run (sockets, caches, ...)

    @property
    def accelerators(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.platform != "cpu")

    @property
    def main_device(self) -> str:
        """What the run trained on: its first accelerator's kind, else the CPU model."""
        accel = self.accelerators
        return accel[0].kind if accel else self.cpu_model

    @property
    def platform_name(self) -> str:
        """'1xNVIDIA H100 80GB HBM3', '2xIntel(R) Xeon(R) ...': the MLPerf submission_platform default."""
        accel = self.accelerators
        return f"{len(accel)}x{accel[0].kind}" if accel else f"{self.logical_cpus}x{self.cpu_model}"

    @property
    def machine_class(self) -> str:
        """What a like-for-like comparison matches on: the accelerator, or the CPU model and its count."""
        accel = self.accelerators
        return accel[0].kind if accel else f"{self.cpu_model} ({self.logical_cpus} CPUs)"


@dataclass(frozen=True, kw_only=True)
class Environment:
    hardware: Hardware
    software: Mapping[str, Any]  # python, packages and versions, git commit, XLA_FLAGS


# -- the records ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Record:
    """What every record has: `harness run` writes a RunRecord, `harness meter` a CommandRecord."""

    KIND: ClassVar[str] = ""
    WHAT: ClassVar[str] = "a record"  # what a reader that passes it over calls it

    run_id: str
    created_unix_s: float
    workload: str  # a run's workload; a metered command's name
    status: Status
    timing: Timing
    energy: Energy
    carbon: Pricing | None  # how the energy is priced; CO2e is derived
    environment: Environment
    error: str | None = None
    process: Mapping[str, Any] | None = None  # {"pid", "host"}: a RUNNING record's reader asks if it lives
    files: Mapping[str, str] = field(default_factory=dict)  # trace name -> sha256
    files_missing: Mapping[str, str] = field(default_factory=dict)  # file that could not be written -> why
    # Set by the reader, never written:
    source: Path | None = field(default=None, compare=False)  # the file it was read from
    status_note: str | None = field(default=None, compare=False)
    recorded_status: Status | None = field(default=None, compare=False)  # what the file says, where it differs
    read_schema: str | None = field(default=None, compare=False)  # the schema of the file it was read from

    @property
    def is_run(self) -> bool:
        return self.KIND == RUN

    @property
    def directory(self) -> Path | None:
        """The folder holding the record's traces (None for a record not read from a file)."""
        return self.source.parent if self.source is not None else None

    @property
    def status_text(self) -> str:
        """The status as people should read it, with its note."""
        return f"{self.status} ({self.status_note})" if self.status_note else str(self.status)

    @property
    def footprint(self) -> Footprint | None:
        """The energy priced: facility kWh and CO2e gross and net (None without an energy figure)."""
        if self.carbon is None or self.energy.total_j is None or not math.isfinite(self.energy.total_j):
            return None
        return self.carbon.price(max(0.0, self.energy.total_j))

    @property
    def co2e_gross_kg(self) -> float | None:
        fp = self.footprint
        return fp.co2e_gross_kg if fp else None

    @property
    def co2e_net_kg(self) -> float | None:
        fp = self.footprint
        return fp.co2e_net_kg if fp else None

    @property
    def complete(self) -> bool:
        """Final, with a complete energy figure and every file written: a record that may count."""
        return self.status.final and self.energy.complete and not self.files_missing

    def problems(self) -> list[str]:
        """Why this record may not count (empty when it may): not final, energy incomplete, files missing."""
        out = []
        if not self.status.final:
            out.append(f"{self.status_text}: not a finished run")
        if not self.energy.complete:
            out.append(f"energy figure incomplete ({'; '.join(self.energy.incomplete_reasons) or 'see flags'})")
        for name, why in self.files_missing.items():
            out.append(f"{name} was not written ({why})")
        return out


@dataclass(frozen=True, kw_only=True)
class RunRecord(Record):
    """One `harness run`: a workload trained to its target (or not), metered and priced."""

    KIND: ClassVar[str] = RUN
    WHAT: ClassVar[str] = "a training run (harness run)"

    seed: int
    spec: Mapping[str, Any]  # the workload spec as run (workloads/specs.py), with its corpus and optimiser
    data: Mapping[str, Any]  # corpus kind and name, its config, eval-set size and SHA-256
    target: Target
    training: Training
    work: Work | None  # None: recorded before efficiency figures existed
    eval_trace: tuple[EvalPoint, ...] = ()
    parallelism: Mapping[str, Any] | None = None  # mesh, devices, processes
    weights: Weights | None = None  # the trained parameters kept in the run's folder (None: not kept)

    # -- what the run achieved --------------------------------------------------------------------------
    @property
    def converged(self) -> bool:
        return self.status == Status.CONVERGED

    @property
    def time_to_target_s(self) -> float | None:
        return self.timing.run_s if self.converged else None

    @property
    def energy_to_target_j(self) -> float | None:
        """The run's energy, only where it converged and the figure may be ranked."""
        return self.energy.ranked_j if self.converged else None

    @property
    def co2e_to_target_kg(self) -> float | None:
        return self.co2e_gross_kg if self.energy_to_target_j is not None else None

    @property
    def samples_to_target(self) -> int | None:
        return self.training.steps * self.batch_size if self.converged else None

    @property
    def final_eval_loss(self) -> float | None:
        losses = [p.eval_loss for p in self.eval_trace if p.eval_loss is not None]
        return losses[-1] if losses else None

    @property
    def best_eval_loss(self) -> float | None:
        losses = [p.eval_loss for p in self.eval_trace if p.eval_loss is not None]
        return min(losses) if losses else None

    # -- what it was --------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return int(self.spec["batch_size"])

    @property
    def num_experts(self) -> int:
        return int(self.spec["model"].get("num_experts", 0))

    @property
    def corpus(self) -> str:
        """The spec's corpus it ran on ("default", "control"), or "user:<eval sha256 prefix>" for --data."""
        return self.data.get("corpus") or f"user:{str(self.data.get('eval_sha256', ''))[:12]}"

    @property
    def framework(self) -> str:
        return str(self.training.framework.get("framework", "jax"))

    # -- efficiency, over the synchronised window (Work) --------------------------------------------------
    @property
    def model_flops_per_s(self) -> float | None:
        w = self.work
        return w.model_flops / w.seconds if w and w.window and w.seconds else None

    @property
    def mfu(self) -> float | None:
        """Model FLOP/s over the devices' peak; None without a peak, and never above 1 (a window whose work
        the device had not finished would claim more than it can do)."""
        flops, w = self.model_flops_per_s, self.work
        if flops is None or w is None or not w.peak_flops_per_s:
            return None
        mfu = flops / w.peak_flops_per_s
        return mfu if mfu <= 1.0 else None

    @property
    def mfu_reason(self) -> str | None:
        w = self.work
        if w is None:
            return "recorded before efficiency figures existed"
        if not w.window:
            return w.window_reason
        if not w.peak_flops_per_s:
            return str((w.peak or {}).get("reason") or "no published peak for the device")
        if self.mfu is None and self.model_flops_per_s is not None:
            return "above the devices' peak: the window's work was not all done inside it"
        return None

    @property
    def work_energy_j(self) -> float | None:
        """J over the efficiency window: the run's energy where the windows are the same, else the meters'
        energy at the window's last evaluation; None where it may not be ranked."""
        w, e = self.work, self.energy
        if w is None or not w.window or not e.rankable:
            return None
        if w.window == e.window:
            return e.total_j
        if e.external_import:  # the imported node log replaced the meters' figures at the evaluations
            return None
        step = w.window.rsplit("eval_", 1)[-1]
        point = next((p for p in self.eval_trace if str(p.step) == step), None)
        return point.energy_j if point else None

    @property
    def energy_basis(self) -> str:
        return f"the run's energy ({self.energy.label})"

    @property
    def tokens_per_j(self) -> float | None:
        j = self.work_energy_j
        return self.work.tokens / j if j and self.work else None

    @property
    def model_flops_per_j(self) -> float | None:
        j = self.work_energy_j
        return self.work.model_flops / j if j and self.work else None

    @property
    def j_per_token(self) -> float | None:
        j = self.work_energy_j
        return j / self.work.tokens if j and self.work and self.work.tokens else None

    @property
    def accelerators(self) -> AcceleratorFigures | None:
        """The accelerator boards alone (what a vendor's efficiency claim is about); None without any."""
        accel = {k: c for k, c in self.energy.components.items() if c.part == "accelerator"}
        if not accel:
            return None
        return AcceleratorFigures(self, accel)


class AcceleratorFigures:
    """Figures for the accelerator boards alone, derived from their components and the efficiency window."""

    def __init__(self, record: RunRecord, components: Mapping[str, Component]) -> None:
        self.record, self.components = record, components

    @property
    def joules(self) -> float | None:
        return self.record.energy.part_j("accelerator")

    @property
    def method(self) -> str:
        return "+".join(sorted({c.method for c in self.components.values()}))

    def _per_window_j(self) -> float | None:
        # Accelerator energy exists for the energy window only: figures per token need the same window.
        r = self.record
        same = r.work is not None and r.work.window == r.energy.window and r.energy.complete
        return self.joules if same else None

    @property
    def tokens_per_j(self) -> float | None:
        j = self._per_window_j()
        return self.record.work.tokens / j if j else None

    @property
    def model_flops_per_j(self) -> float | None:
        j = self._per_window_j()
        return self.record.work.model_flops / j if j else None

    @property
    def j_per_token(self) -> float | None:
        j = self._per_window_j()
        return j / self.record.work.tokens if j and self.record.work.tokens else None

    @property
    def avg_w(self) -> float | None:
        seconds = self.record.energy.seconds
        return self.joules / seconds if self.joules is not None and seconds else None

    @property
    def peak_w(self) -> float | None:
        return max((c.peak_watts for c in self.components.values() if c.peak_watts is not None), default=None)

    @property
    def peak_source(self) -> str:
        return "; ".join(sorted({c.peak_source or "" for c in self.components.values()}))

    @property
    def power_limit_w(self) -> float | None:
        limits = [c.power_limit_w for c in self.components.values()]
        return sum(limits) if limits and all(limits) else None  # type: ignore[arg-type]

    @property
    def avg_fraction_of_limit(self) -> float | None:
        return self.avg_w / self.power_limit_w if self.avg_w is not None and self.power_limit_w else None

    @property
    def peak_fraction_of_limit(self) -> float | None:
        fractions = [c.peak_watts / c.power_limit_w for c in self.components.values()
                     if c.peak_watts is not None and c.power_limit_w]
        return max(fractions) if fractions else None

    def to_dict(self) -> dict[str, Any]:
        return {"components": sorted(self.components), "method": self.method, "joules": self.joules,
                "tokens_per_j": self.tokens_per_j, "model_flops_per_j": self.model_flops_per_j,
                "j_per_token": self.j_per_token, "avg_w": self.avg_w, "peak_w": self.peak_w,
                "peak_source": self.peak_source, "power_limit_w": self.power_limit_w,
                "avg_fraction_of_limit": self.avg_fraction_of_limit,
                "peak_fraction_of_limit": self.peak_fraction_of_limit}


@dataclass(frozen=True, kw_only=True)
class CommandRecord(Record):
    """One `harness meter -- COMMAND`: any program run under the meters, with its exit status."""

    KIND: ClassVar[str] = COMMAND
    WHAT: ClassVar[str] = "a metered command record (harness meter)"

    command: tuple[str, ...]
    exit_code: int | None  # the command's own status (negative: killed by that signal)
    signals_forwarded: tuple[str, ...] = ()
