"""The trained run `harness infer` serves: its record read and checked, its weights loaded against their hash, its
held-out contexts cut into prompts and the true continuations that score them.

Everything wrong with the folder is a one-line usage error (exit 2) before anything is compiled: not a run,
a run that kept no weights, weights whose hash differs from the record's, a diverged or aborted run, weights
that do not fit the spec's model, prompts longer than the model's context, more samples than held-out contexts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UsageError
from harness.results.files import sha256_file
from harness.results.reader import ResultReadError, read_record
from harness.results.schema import RunRecord, Status
from workloads.corpus import MarkovMixture, dataset_sha256
from workloads.sources import corpus_from, open_corpus
from workloads.specs import ModelConfig, OptimizerConfig, WorkloadSpec, canonical, spec_sha256
from workloads.trainers import weight_shapes
from workloads.user_data import TokenFile

SERVABLE = (Status.CONVERGED, Status.NOT_CONVERGED)


@dataclass(frozen=True)
class TrainedRun:
    record: RunRecord
    spec: WorkloadSpec
    weights: dict[str, np.ndarray]
    eval_set: np.ndarray  # [N, seq_len + 1], the run's held-out contexts (hash checked against the record)
    law: MarkovMixture | None  # the procedural corpus's true next-token law; None for text and user data

    @property
    def entropy_margin(self) -> float | None:
        """The training target's margin over the corpus's floor (nats/token); None for user data."""
        floor = self.record.target.entropy_floor
        return None if floor is None else self.record.target.target_loss - floor


def load_run(run_dir: str) -> TrainedRun:
    """The run in `run_dir`, checked; its weights and held-out set loaded."""
    path = Path(run_dir)
    if not (path / "result.json").is_file():
        raise UsageError(f"{run_dir}: not a run folder (no result.json); give the folder harness run printed")
    try:
        record = read_record(path)
    except ResultReadError as e:
        raise UsageError(str(e)) from None
    if not isinstance(record, RunRecord):
        raise UsageError(f"{run_dir}: a {record.KIND} record, not a training run; harness infer serves what "
                         "harness run trained")
    if record.status not in SERVABLE:
        raise UsageError(f"{run_dir}: the run is {record.status_text}; only a run that ended (converged or "
                         "not_converged) has weights to serve")
    w = record.weights
    if w is None:
        raise UsageError(f"{run_dir}: the run kept no weights (trained with --no-weights, or before harness kept "
                         "them); train again without --no-weights")
    file = path / w.file
    if not file.is_file():
        raise UsageError(f"{run_dir}: {w.file} is missing (the record lists it with sha256 {w.sha256[:12]}…)")
    digest = sha256_file(file)
    if digest != w.sha256:
        raise UsageError(f"{run_dir}: {w.file} has sha256 {digest[:12]}…, the record says {w.sha256[:12]}…: "
                         "the weights are not the ones the run trained")
    if spec_sha256(record.spec) != w.spec_sha256:
        raise UsageError(f"{run_dir}: the weights were trained under spec {w.spec_sha256[:12]}…, the record's spec "
                         f"is {spec_sha256(record.spec)[:12]}…")
    with np.load(file) as npz:
        weights = {k: npz[k] for k in npz.files}
    spec = spec_of(record.spec)
    _fits(run_dir, w.file, weights, spec, {"the record's weights": w.parameters,
                                           "its trained parameters": record.training.params_total})
    eval_set, law = _held_out(record, spec, run_dir)
    return TrainedRun(record, spec, weights, eval_set, law)


def _fits(run_dir: str, name: str, weights: dict[str, np.ndarray], spec: WorkloadSpec,
          counts: dict[str, int | None]) -> None:
    """The weights have the names and shapes of spec's model, and as many parameters as the record says: else one
    line naming the first mismatch (before anything is compiled: a decoder would fail inside the test)."""
    want = weight_shapes(spec)
    missing, extra = sorted(want.keys() - weights.keys()), sorted(weights.keys() - want.keys())
    if missing or extra:
        what = "; ".join(f"{label} {names[0]}" + (f" and {len(names) - 1} more" if len(names) > 1 else "")
                         for label, names in (("missing", missing), ("not in the model", extra)) if names)
        raise UsageError(f"{run_dir}: {name} does not fit {spec.name}'s model: {what}")
    for key, shape in want.items():
        if tuple(weights[key].shape) != shape:
            raise UsageError(f"{run_dir}: {name} does not fit {spec.name}'s model: {key} is "
                             f"{list(weights[key].shape)}, the model's is {list(shape)}")
    held = sum(int(w.size) for w in weights.values())
    for label, count in counts.items():
        if count is not None and count != held:
            raise UsageError(f"{run_dir}: {name} holds {held:,} parameters, {label} {count:,}")


def spec_of(recorded: dict[str, Any]) -> WorkloadSpec:
    """The WorkloadSpec a record ran (its model and corpus as the harness reads them now)."""
    d = canonical(recorded)
    model = ModelConfig(**d["model"])
    control = d.get("control_corpus")
    return WorkloadSpec(name=recorded["name"], description=d.get("description", ""), model=model,
                        corpus=corpus_from(d["corpus"]), control_corpus=control and corpus_from(control),
                        optimizer=_optimizer(d), batch_size=d["batch_size"], eval_every_steps=d["eval_every_steps"],
                        target_margin=d["target_margin"], max_steps=d["max_steps"],
                        eval_batch_size=d.get("eval_batch_size", 0), sized_for=d.get("sized_for", "cpu"),
                        target_eval_loss=d.get("target_eval_loss"))


def _optimizer(d: dict[str, Any]) -> OptimizerConfig:
    fields = OptimizerConfig.__dataclass_fields__
    return OptimizerConfig(**{k: v for k, v in d["optimizer"].items() if k in fields and fields[k].init})


def _held_out(record: RunRecord, spec: WorkloadSpec, run_dir: str) -> tuple[np.ndarray, MarkovMixture | None]:
    data = record.data
    if data.get("kind") == "user-file":
        source = Path(str(data.get("path")))
        if not source.is_file():
            raise UsageError(f"{run_dir}: the run trained on {source}, which is not there now; its held-out "
                             "contexts are the prompts")
        eval_set, law = TokenFile(source, spec.seq_len).eval_set(), None
    else:
        source = open_corpus(corpus_from(dict(data["config"])))
        eval_set = source.eval_set()
        law = source if isinstance(source, MarkovMixture) else None
    if dataset_sha256(eval_set) != data.get("eval_sha256"):
        raise UsageError(f"{run_dir}: the held-out set made now hashes {dataset_sha256(eval_set)[:12]}…, the run's "
                         f"was {str(data.get('eval_sha256'))[:12]}… (a different corpus version)")
    return eval_set, law


def prompts_and_truth(served: TrainedRun, prompt_len: int, gen_len: int, samples: int | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Prompts [N, prompt_len] and their true continuations [N, gen_len], cut from the held-out contexts (never
    training data); one-line errors for lengths the model or the contexts cannot hold."""
    n_ctx, width = served.eval_set.shape
    max_len = served.spec.model.max_len
    if gen_len < 1:
        raise UsageError(f"--gen-len must be at least 1, got {gen_len}")
    if prompt_len < 1:
        raise UsageError(f"--prompt-len must be at least 1, got {prompt_len}")
    if prompt_len + gen_len > max_len:
        raise UsageError(f"--prompt-len {prompt_len} + --gen-len {gen_len} = {prompt_len + gen_len} tokens: longer "
                         f"than the model's context of {max_len}")
    if prompt_len + gen_len > width:
        raise UsageError(f"--prompt-len + --gen-len = {prompt_len + gen_len}: the held-out contexts hold {width} "
                         "tokens, so the continuation could not be scored")
    samples = n_ctx if samples is None else samples
    if not 1 <= samples <= n_ctx:
        raise UsageError(f"--samples must be 1..{n_ctx} (the run's held-out contexts), got {samples}")
    rows = served.eval_set[:samples]
    return (np.ascontiguousarray(rows[:, :prompt_len], np.int32),
            np.ascontiguousarray(rows[:, prompt_len:prompt_len + gen_len], np.int32))


def served_routing(spec: WorkloadSpec, routing: str | None, capacity_factor: float | None) -> WorkloadSpec:
    """`spec` as served: a Switch model routes dropless unless capacity routing is asked for (`routing`, or a
    capacity factor alone), at `capacity_factor` where given. A dense model is served as it is."""
    if not spec.model.num_experts:
        return spec
    routing = routing or ("capacity" if capacity_factor is not None else "dropless")
    model = replace(spec.model, routing=routing)
    if capacity_factor is not None:
        model = replace(model, capacity_factor_eval=capacity_factor)
    return replace(spec, model=model)
