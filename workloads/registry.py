"""Workload specs as plain data. `harness list` prints them; the runner reads nothing else."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from workloads.corpus import CorpusConfig, entropy_floor
from workloads.models import ModelConfig
from workloads.train import OptimizerConfig


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

    @property
    def seq_len(self) -> int:
        return self.corpus.seq_len

    def corpus_named(self, name: str) -> CorpusConfig:
        return {"default": self.corpus, "control": self.control_corpus}[name]

    def target_loss(self, corpus: str = "default") -> float:
        return entropy_floor(self.corpus_named(corpus)) + self.target_margin

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


CORPUS_NAMES = ("default", "control")

# Calibrated on a 2-core CPU; see scripts/tune_lr.py for the sweep and reference_results/ for the runs.
# 16 domains x 31 tokens (vocabulary 512): 15,872 order-2 contexts of ~14.6 bits each, several times what the
# dense model's FFNs hold; the control has one domain and 992 contexts, which the dense model holds with room
# to spare. Vocabulary <= 512 on purpose: at 640-800 the 2-core step time of the Switch model doubled
# (cache cliff, measured), which would have priced the hardware rather than the model.
_SMALL_CORPUS = CorpusConfig("domains-16x31", num_domains=16, vocab_per_domain=31,
                             successor_probs=(0.7, 0.2, 0.1), seq_len=64, eval_sequences=128)
_SMALL_CONTROL = CorpusConfig("control-1x31", num_domains=1, vocab_per_domain=31,
                              successor_probs=(0.7, 0.2, 0.1), seq_len=64, eval_sequences=128)
_TINY_CORPUS = CorpusConfig("domains-4x8", num_domains=4, vocab_per_domain=8,
                            successor_probs=(0.7, 0.2, 0.1), seq_len=32, eval_sequences=64)
_TINY_CONTROL = CorpusConfig("control-1x8", num_domains=1, vocab_per_domain=8,
                             successor_probs=(0.7, 0.2, 0.1), seq_len=32, eval_sequences=64)


_SMALL_SHAPE = dict(d_model=32, num_heads=2, num_layers=2, d_ff=128)
_TINY_SHAPE = dict(d_model=32, num_heads=2, num_layers=2, d_ff=64)
# One sweep for both models of a pair (scripts/tune_lr.py, seed 0, default corpus); each model gets the value
# with the fewest steps to target. Measured 2026-11-26 on the 2-core CPU, steps cap 12,000:
#   dense-small  3e-3: not converged (best 1.875)  1e-2: not converged (best 1.855)  3e-2: not converged (2.381)
#   switch-small 3e-3: 1,900 steps  1e-2: 2,800 steps  3e-2: not converged (2.312)
_SWEEP = (3e-3, 1e-2, 3e-2)
_SELECTION = "fewest steps to target in the sweep (scripts/tune_lr.py, seed 0), same sweep for dense and switch"


def _spec(name: str, description: str, corpus: CorpusConfig, control: CorpusConfig, experts: int, shape: dict,
          lr: float, batch: int, eval_every: int, margin: float, max_steps: int, warmup: int) -> WorkloadSpec:
    vocab = max(corpus.vocab_size, control.vocab_size)
    model = ModelConfig(vocab_size=vocab, max_len=corpus.seq_len, num_experts=experts, **shape)
    opt = OptimizerConfig(learning_rate=lr, warmup_steps=warmup, lr_sweep=_SWEEP, lr_selection=_SELECTION)
    return WorkloadSpec(name, description, model, corpus, control, opt, batch, eval_every, margin, max_steps)


_SMALL = dict(corpus=_SMALL_CORPUS, control=_SMALL_CONTROL, shape=_SMALL_SHAPE, batch=32, eval_every=100,
              margin=1.0, max_steps=30_000, warmup=100)
_TINY = dict(corpus=_TINY_CORPUS, control=_TINY_CONTROL, shape=_TINY_SHAPE, batch=16, eval_every=20, margin=1.0,
             max_steps=200, warmup=10)

WORKLOADS: dict[str, WorkloadSpec] = {
    s.name: s
    for s in (
        _spec("dense-small", "Dense pre-LN Transformer LM, 2 layers, d=32, rotary attention", experts=0, lr=1e-2,
              **_SMALL),
        _spec("switch-small", "dense-small with every other FFN a 16-expert Switch layer", experts=16, lr=3e-3,
              **_SMALL),
        _spec("dense-tiny", "Seconds-long dense model for tests", experts=0, lr=1e-2, **_TINY),
        _spec("switch-tiny", "Seconds-long Switch model (4 experts) for tests", experts=4, lr=1e-2, **_TINY),
    )
}


class UnknownWorkloadError(ValueError):
    pass


def get_workload(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UnknownWorkloadError(
            f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}"
        ) from None
