"""Workload specs as plain data: the model, its corpus, the optimiser and the target (the arithmetic on them
is in workloads/flops.py, meshes in workloads/mesh.py).

Nothing here imports a framework: `harness list`, `package`, `check` and the carbon tools read specs
without loading JAX or TensorFlow, and every framework implementation builds from the same numbers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workloads.corpus import CorpusConfig, entropy_floor
from workloads.errors import InputError
from workloads.routing import ROUTINGS
from workloads.text import TextConfig

ATTENTION_KINDS = ("plain", "fused")
DTYPES = ("float32", "bfloat16")
SCHEDULES = ("constant",)


class SpecError(InputError):
    """A spec whose dtype, attention or schedule no implementation has."""


def _one_of(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise SpecError(f"{what} must be one of {', '.join(valid)}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int
    num_heads: int
    num_layers: int
    d_ff: int
    max_len: int
    num_experts: int = 0  # 0: dense. Otherwise layers 1, 3, 5, ... use a Switch FFN with this many experts.
    capacity_factor_train: float = 1.25
    capacity_factor_eval: float = 2.0
    balance_coef: float = 0.01
    z_loss_coef: float = 1e-3
    expert_init_scale: float = 0.1
    # Matmul precision. "bfloat16" is the Switch paper's selective precision: parameters and optimiser state
    # stay float32, matmuls and activations run in bfloat16, the router and the loss in float32.
    dtype: str = "float32"
    attention: str = "plain"  # "plain": einsum + softmax; "fused": the framework's fused attention op
    # Sequences per routing group; 0: the whole batch is one group. Capacity is computed per group (the
    # t5x / flaxformer way), so the groups are part of the function: a mesh splits the batch along group
    # boundaries and computes exactly what one device computes.
    group_sequences: int = 0
    # How tokens reach the experts (workloads/routing.py): "capacity", the paper's (capacity_factor_* slots per
    # expert, the rest dropped), or "dropless" (every token through its expert, executed work following tokens).
    routing: str = "capacity"

    def __post_init__(self) -> None:
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("attention", self.attention, ATTENTION_KINDS)
        _one_of("routing", self.routing, ROUTINGS)

    def is_switch_layer(self, layer: int) -> bool:
        return self.num_experts > 0 and layer % 2 == 1

    @property
    def num_switch_layers(self) -> int:
        return sum(self.is_switch_layer(i) for i in range(self.num_layers))


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW with global-norm clipping; epsilon is optax's and Keras's default, 1e-8."""

    learning_rate: float
    warmup_steps: int
    schedule: str = "constant"  # linear warmup over warmup_steps, then constant
    b1: float = 0.9
    b2: float = 0.98
    weight_decay: float = 0.0
    grad_clip_norm: float = 1.0
    epsilon: float = 1e-8

    def __post_init__(self) -> None:
        _one_of("schedule", self.schedule, SCHEDULES)


@dataclass(frozen=True)
class Calibration:
    """How the learning rate was chosen: recorded with the spec, never part of what makes a run "closed"."""

    lr_sweep: tuple[float, ...] = ()
    selection: str = ""
    where: str = ""  # machine and reference file, or "pending: ..." while uncalibrated
    calibrated: bool = True


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    description: str
    model: ModelConfig
    corpus: CorpusConfig | TextConfig
    control_corpus: CorpusConfig | None  # None: no control corpus (the text pairs contrast two targets instead)
    optimizer: OptimizerConfig
    batch_size: int
    eval_every_steps: int
    target_margin: float  # target eval loss = the corpus's exact entropy floor + this many nats/token
    max_steps: int
    eval_batch_size: int = 0  # sequences per eval call; 0: the training batch size
    sized_for: str = "cpu"  # "cpu" or "accelerator": the latter refuses to start on a CPU without --allow-cpu
    calibration: Calibration = Calibration()
    # Training steps one compiled call runs (one host round trip per K steps; `--steps-per-dispatch`). How the
    # steps are dispatched, not which: the same parameters and losses at any K (tests/test_dispatch.py).
    steps_per_dispatch: int = 1
    # The target outright, nats/token, for a corpus whose entropy floor nobody knows (real text): there the target
    # cannot be a margin over the floor. None: the floor + target_margin.
    target_eval_loss: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.corpus, TextConfig) and self.target_eval_loss is None:
            raise SpecError(f"{self.name}: a text corpus has no known entropy floor; give target_eval_loss")

    @property
    def seq_len(self) -> int:
        return self.corpus.seq_len

    @property
    def eval_batch(self) -> int:
        return self.eval_batch_size or self.batch_size

    def corpus_named(self, name: str) -> CorpusConfig | TextConfig:
        if name == "control" and self.control_corpus is None:
            raise SpecError(f"--corpus control: {self.name} has no control corpus; valid: default")
        return {"default": self.corpus, "control": self.control_corpus}[name]

    def target_loss(self, corpus: str = "default") -> float:
        if self.target_eval_loss is not None:
            return self.target_eval_loss
        return entropy_floor(self.corpus_named(corpus)) + self.target_margin

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Fields that record how a spec came about or how its steps are dispatched; two specs differing only there
# describe the same workload.
RECORD_ONLY = {("calibration",), ("optimizer", "lr_sweep"), ("optimizer", "lr_selection"), ("steps_per_dispatch",)}
# Fields added after runs kept their spec's hash beside their weights (harness infer checks it): left out of the
# canonical form while at their default, so that every spec without them hashes as it did.
OMITTED_AT_DEFAULT = {("target_eval_loss",), ("model", "routing")}


def canonical(recorded: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as recorded (a dict read from a result's JSON) as this harness would record it now: a field it
    lacks gets that field's default (it was added to the harness after the run, with the value every earlier run
    implicitly used), and the fields that only record how the spec came about (RECORD_ONLY) are left out."""
    return _canonical(json.loads(json.dumps(recorded)), WorkloadSpec, ())


def spec_sha256(recorded: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical spec: two runs with the same hash trained the same model on the same corpus with
    the same optimiser, batch and target, whatever harness version recorded them."""
    return hashlib.sha256(json.dumps(canonical(recorded), sort_keys=True).encode()).hexdigest()


def same_workload(spec: WorkloadSpec, recorded: Mapping[str, Any]) -> bool:
    """Whether a spec recorded in a result is this spec (both canonical)."""
    return canonical(spec.to_dict()) == canonical(recorded)


def _canonical(value: dict[str, Any], cls: type, path: tuple[str, ...]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = {k: v for k, v in value.items() if (*path, k) not in RECORD_ONLY}
    for f in dataclasses.fields(cls):
        where = (*path, f.name)
        if where in RECORD_ONLY:
            continue
        kind = hints[f.name]
        if where in OMITTED_AT_DEFAULT:
            if out.get(f.name, f.default) == f.default:
                out.pop(f.name, None)
            continue
        if f.name not in out:
            if f.default is not dataclasses.MISSING:
                default = dataclasses.asdict(f.default) if dataclasses.is_dataclass(f.default) else f.default
                out[f.name] = json.loads(json.dumps(default))
            continue
        if isinstance(out[f.name], dict) and (cls_of := dataclass_for(kind, out[f.name])) is not None:
            out[f.name] = _canonical(out[f.name], cls_of, where)
    return out


def dataclass_for(kind: Any, value: dict[str, Any]) -> type | None:
    """The dataclass a recorded dict is of: the field's own type, or the member of a union (a corpus is a
    procedural or a text one) that has the most of the dict's keys as fields. A recorded dict may hold keys the
    dataclass no longer has (fields since moved out, such as the optimizer's lr_sweep)."""
    members = [m for m in (typing.get_args(kind) or (kind,)) if dataclasses.is_dataclass(m)]
    if not members:
        return None
    return max(members, key=lambda m: len(set(value) & {f.name for f in dataclasses.fields(m)}))


def learning_rate(opt: OptimizerConfig, count: int, max_steps: int) -> float:
    """The learning rate of update number `count` (0 for the first): linear warmup from 0 over warmup_steps,
    then constant. This is the schedule every framework implements (the JAX one through optax; tests hold
    them to each other). `max_steps` is the run's budget, for schedules that decay over it."""
    warmup = max(1, opt.warmup_steps)
    return opt.learning_rate * count / warmup if count < warmup else opt.learning_rate


def attention_implementation(kind: str, dtype: str, backend: str) -> str:
    """What computes attention of `kind` ("plain" | "fused") in `dtype` on a backend ("gpu", "cpu", ...).

    "fused" asks for cuDNN's flash attention where it exists (NVIDIA GPUs, 16-bit inputs); elsewhere the
    framework's fused op runs its XLA form, the plain computation by another path.
    """
    if kind == "plain":
        return "plain"
    return "cudnn" if backend in ("gpu", "cuda") and dtype == "bfloat16" else "xla"


def precision_of(cfg: ModelConfig) -> dict[str, str]:
    """The numerical precision of each part of the computation, for the result and the MLPerf disclosure."""
    return {"parameters": "float32", "optimizer_state": "float32", "matmuls": cfg.dtype,
            "activations": cfg.dtype, "router": "float32", "logits_and_loss": "float32"}
