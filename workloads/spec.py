"""Workload specs as plain data, and the arithmetic on them (FLOPs, parameters, capacity, precision).

Nothing here imports a framework: `harness list`, `package`, `check` and the carbon tools read specs
without loading JAX or TensorFlow, and every framework implementation builds from the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from workloads.corpus import CorpusConfig, entropy_floor
from workloads.errors import InputError

ATTENTION_KINDS = ("plain", "fused")
DTYPES = ("float32", "bfloat16")
SCHEDULES = ("constant", "cosine")


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
    schedule: str = "constant"  # "constant" after warmup, or "cosine" decay to 10% over max_steps
    b1: float = 0.9
    b2: float = 0.98
    weight_decay: float = 0.0
    grad_clip_norm: float = 1.0
    epsilon: float = 1e-8


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
    corpus: CorpusConfig
    control_corpus: CorpusConfig
    optimizer: OptimizerConfig
    batch_size: int
    eval_every_steps: int
    target_margin: float  # target eval loss = the corpus's exact entropy floor + this many nats/token
    max_steps: int
    eval_batch_size: int = 0  # sequences per eval call; 0: the training batch size
    sized_for: str = "cpu"  # "cpu" or "accelerator": the latter refuses to start on a CPU without --allow-cpu
    calibration: Calibration = Calibration()

    @property
    def seq_len(self) -> int:
        return self.corpus.seq_len

    @property
    def eval_batch(self) -> int:
        return self.eval_batch_size or self.batch_size

    def corpus_named(self, name: str) -> CorpusConfig:
        return {"default": self.corpus, "control": self.control_corpus}[name]

    def target_loss(self, corpus: str = "default") -> float:
        return entropy_floor(self.corpus_named(corpus)) + self.target_margin

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Fields that record how a spec came about; two specs differing only there describe the same workload.
RECORD_ONLY = {("calibration",), ("optimizer", "lr_sweep"), ("optimizer", "lr_selection")}


def same_workload(spec: WorkloadSpec, recorded: dict) -> bool:
    """Whether a spec recorded in a result (a dict read from JSON) is this spec.

    A field the recorded spec lacks matches when this spec holds that field's default: it was added to the
    harness after the run, with the value every earlier run implicitly used.
    """
    import json

    live = json.loads(json.dumps(spec.to_dict()))  # tuples become lists, as in result.json
    return _same(live, json.loads(json.dumps(recorded)), _defaults(spec), ())


def _same(live: dict, recorded: dict, defaults: dict, path: tuple[str, ...]) -> bool:
    for key in live.keys() | recorded.keys():
        where = (*path, key)
        if where in RECORD_ONLY:
            continue
        if key not in recorded:
            if defaults.get(where, _MISSING) != live[key]:
                return False
        elif key not in live:
            return False
        elif isinstance(live[key], dict) and isinstance(recorded[key], dict):
            if not _same(live[key], recorded[key], defaults, where):
                return False
        elif live[key] != recorded[key]:
            return False
    return True


_MISSING = object()


def _defaults(spec: WorkloadSpec) -> dict[tuple[str, ...], object]:
    import json

    out: dict[tuple[str, ...], object] = {}

    def visit(obj, path: tuple[str, ...]) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.default is not dataclasses.MISSING:
                out[(*path, f.name)] = json.loads(json.dumps(dataclasses.asdict(f.default)
                                                             if dataclasses.is_dataclass(f.default) else f.default))
            if dataclasses.is_dataclass(value):
                visit(value, (*path, f.name))

    visit(spec, ())
    return out


@dataclass(frozen=True)
class MeshShape:
    """Devices on each mesh axis: the batch is split over data x expert devices, the experts over expert."""

    data: int = 1
    expert: int = 1

    @property
    def devices(self) -> int:
        return self.data * self.expert

    def __str__(self) -> str:
        return f"data={self.data},expert={self.expert}"


class MeshError(InputError):
    """A --mesh that cannot run this workload; the message says why and what would."""


def parse_mesh(text: str) -> MeshShape:
    """'data=D,expert=E' (either may be left out: 1)."""
    sizes = {"data": 1, "expert": 1}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, value = part.partition("=")
        if name.strip() not in sizes or not value.strip().isdigit() or int(value) < 1:
            raise MeshError(f"--mesh must look like data=D,expert=E with positive integers, got {text!r}")
        sizes[name.strip()] = int(value)
    return MeshShape(**sizes)


def max_batch_split(spec: WorkloadSpec) -> int:
    """The most devices the batch can be split over: whole routing groups for Switch, sequences for dense."""
    unit = (spec.model.group_sequences or spec.batch_size) if spec.model.num_experts else 1
    return spec.batch_size // unit


def check_mesh(spec: WorkloadSpec, mesh: MeshShape, devices: int) -> None:
    """Raise MeshError unless `mesh` can run `spec` on `devices` devices and compute the 1-device function."""
    if mesh.devices != devices:
        raise MeshError(f"--mesh {mesh} asks for {mesh.devices} devices but {devices} are visible; "
                        f"data x expert must equal {devices}")
    problem = mesh_problem(spec, mesh)
    if problem:
        raise MeshError(f"--mesh {mesh}: {problem}")


def mesh_problem(spec: WorkloadSpec, mesh: MeshShape) -> str | None:
    """Why `spec` cannot run on `mesh` (whatever the device count), or None."""
    experts = spec.model.num_experts
    if mesh.expert > 1 and not experts:
        return f"{spec.name} is dense and has no experts to shard; put every device on data"
    if experts and experts % mesh.expert:
        return f"{spec.name}'s {experts} experts do not split evenly over {mesh.expert} devices"
    split = max_batch_split(spec)
    if split % mesh.devices:
        if experts:
            group = spec.model.group_sequences or spec.batch_size
            return (f"{spec.name} routes its batch of {spec.batch_size} in groups of {group} sequences ({split} "
                    f"group(s)) and a group cannot be split: data x expert must divide {split}")
        return f"{spec.name}'s batch of {spec.batch_size} sequences does not split over {mesh.devices} devices"
    unit = (spec.model.group_sequences or spec.batch_size) * mesh.devices if experts else mesh.devices
    eval_batch = spec.eval_batch_size or spec.corpus.eval_sequences
    if eval_batch % unit:
        return (f"{spec.name}'s eval batch of {eval_batch} sequences does not split into {mesh.devices} equal "
                "shards of whole routing groups")
    return None


def default_mesh(spec: WorkloadSpec, devices: int) -> MeshShape:
    """Data parallelism over as many of the devices as the workload allows (all of them where it can)."""
    return MeshShape(data=max(d for d in range(1, devices + 1) if mesh_problem(spec, MeshShape(data=d)) is None))


# -- arithmetic on a model config ----------------------------------------------------------------------


def expert_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """capacity = capacity_factor * tokens / experts, rounded up, at least one slot."""
    return max(1, math.ceil(capacity_factor * num_tokens / num_experts))


def forward_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Matmul FLOPs of one forward pass per token (2 per multiply-add), activated experts only.

    Attention scores count the full L x L product, as the PaLM / MLPerf convention does. The router's
    d x E matmul is counted; it is the only FLOP difference between Switch and dense at equal shapes.
    """
    d, f = cfg.d_model, cfg.d_ff
    per_layer = 2 * 4 * d * d + 2 * 2 * seq_len * d + 2 * 2 * d * f
    router = 2 * d * cfg.num_experts * cfg.num_switch_layers
    logits = 2 * d * cfg.vocab_size
    return float(cfg.num_layers * per_layer + router + logits)


def train_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward plus backward (twice the forward): the usual 3x."""
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Total parameters, those one token activates (one expert per Switch layer), and the experts' share.

    Counted from the architecture, so every framework's implementation is held to the same numbers.
    """
    d, f, e = cfg.d_model, cfg.d_ff, cfg.num_experts
    ffn = 2 * d * f + f + d  # w_in, b_in, w_out, b_out
    layer_norm = 2 * d
    per_layer = 4 * d * d + 2 * layer_norm  # qkv + out (no biases), two layer norms
    total = cfg.vocab_size * d + layer_norm  # tied embedding, final layer norm
    expert = 0
    for layer in range(cfg.num_layers):
        total += per_layer
        if cfg.is_switch_layer(layer):
            total += d * e + e * ffn  # router + experts
            expert += e * ffn
        else:
            total += ffn
    activated = total - expert + (expert // e if e else 0)
    return {"total": total, "activated": activated, "expert": expert}


def learning_rate(opt: OptimizerConfig, count: int, max_steps: int) -> float:
    """The learning rate of update number `count` (0 for the first): linear warmup from 0 over warmup_steps,
    then constant, or cosine decay to 10% at max_steps. This is the schedule every framework implements
    (the JAX one through optax; tests hold them to each other)."""
    warmup = max(1, opt.warmup_steps)
    if count < warmup:
        return opt.learning_rate * count / warmup
    if opt.schedule == "constant":
        return opt.learning_rate
    if opt.schedule == "cosine":
        span = max(max_steps, warmup + 1) - warmup
        cosine = 0.5 * (1 + math.cos(math.pi * min(count - warmup, span) / span))
        return opt.learning_rate * (0.9 * cosine + 0.1)
    raise ValueError(f"unknown schedule {opt.schedule!r}; valid: {', '.join(SCHEDULES)}")


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
