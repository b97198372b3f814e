"""A spec's corpus as the data a run reads, and what is known of it: the one place that tells a procedural corpus
(workloads/corpus.py) from the shipped text (workloads/text.py).

    source = open_corpus(cfg)    # train_batch / train_batches / eval_set, as the runner reads them
    corpus_facts(cfg)            # what a record keeps of it: kind, config, entropy floor (None for text), ...
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from workloads.corpus import CORPUS_VERSION, CorpusConfig, MarkovMixture, entropy_floor
from workloads.specs import dataclass_for
from workloads.text import TextConfig, TextCorpus, held_out_books

Corpus = CorpusConfig | TextConfig


def open_corpus(cfg: Corpus) -> MarkovMixture | TextCorpus:
    return TextCorpus.of(cfg) if isinstance(cfg, TextConfig) else MarkovMixture(cfg)


def floor_of(cfg: Corpus) -> float | None:
    """The Bayes-optimal loss, nats/token, where it is known: exactly for a procedural corpus, never for text."""
    return None if isinstance(cfg, TextConfig) else entropy_floor(cfg)


def corpus_facts(cfg: Corpus) -> dict[str, Any]:
    """What a run's record keeps of its corpus (the `data` section, beside the eval set's hash)."""
    if isinstance(cfg, TextConfig):
        return {"kind": "text", "config": asdict(cfg), "entropy_floor": None, "text_sha256": cfg.text_sha256,
                "held_out": held_out_books()}
    return {"kind": "procedural", "config": asdict(cfg), "entropy_floor": entropy_floor(cfg),
            "contexts_to_memorise": cfg.num_contexts}


def corpus_from(d: dict[str, Any]) -> Corpus:
    """A corpus config as a record or a spec's dict holds it (its kind told by its fields, as specs.canonical does)."""
    if dataclass_for(Corpus, d) is TextConfig:
        return TextConfig(**d)
    return CorpusConfig(**{**d, "successor_probs": tuple(d["successor_probs"])})


def source_text(cfg: Corpus) -> str:
    """Where a corpus comes from, in words (harness list --json)."""
    if isinstance(cfg, TextConfig):
        return (f"the King James Version of the Bible as bytes ({cfg.version}, workloads/data/{cfg.file}, text "
                f"sha256 {cfg.text_sha256[:12]}…; Debian bible-kjv-text 4.38, copyright expired: "
                "workloads/data/SOURCES.md), split by whole books; read from the package, no network")
    return f"procedural ({CORPUS_VERSION}, workloads/corpus.py), generated on the machine: no file, no network"
