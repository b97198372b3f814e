"""Procedural corpus: a mixture of domains, each a second-order Markov source over its own vocabulary.

Why this shape. Sparse models win where the dense model's parameters, not its samples, are the bottleneck.
Each domain owns a disjoint slice of the vocabulary and a random transition table that maps the last two
tokens to a small set of successors. The tables are pure facts: nothing generalises between contexts, so a
model must store every one of them, and the number of contexts (domains x vocab^2) is what sets the
capacity a model needs. Because a token's identity names its domain, a router can send each domain to its
own expert; a dense FFN must hold every domain's table at once.

The **control** corpus keeps the format but has a single domain with a small table (few contexts): a
dense model has capacity to spare, so extra expert parameters should buy nothing there.

Exact entropy floor. Every context has the same successor distribution up to a permutation of tokens
(`successor_probs`), so the Bayes-optimal next-token loss is known in closed form:
position 1 (first token after the domain marker) is uniform over the domain's vocabulary, every later
position has entropy H(successor_probs). No estimate, no model of the source is needed.

Every batch holds the domains in equal numbers (stratified sampling); the eval set too, so it weighs each
domain equally.

Layout of the vocabulary: ids [0, D) are domain markers; domain d owns ids D + d*V .. D + (d+1)*V - 1.
A sequence is [marker_d, x_1, ..., x_L]; a model is scored on predicting x_1..x_L.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

CORPUS_VERSION = "markov-mixture/1"


@dataclass(frozen=True)
class CorpusConfig:
    """Plain data describing a procedural corpus; `seed` fixes the tables, not the training stream."""

    name: str
    num_domains: int
    vocab_per_domain: int
    successor_probs: tuple[float, ...]
    seq_len: int
    table_seed: int = 1234
    eval_sequences: int = 256
    eval_seed: int = 99_991
    version: str = CORPUS_VERSION

    @property
    def vocab_size(self) -> int:
        return self.num_domains * (1 + self.vocab_per_domain)

    @property
    def num_contexts(self) -> int:
        """Distinct (previous, current) contexts the tables define: the facts a model must store."""
        return self.num_domains * (self.vocab_per_domain + 1) * self.vocab_per_domain


def entropy_floor(cfg: CorpusConfig) -> float:
    """Exact Bayes-optimal cross-entropy, nats per predicted token, averaged over positions 1..L."""
    p = np.asarray(cfg.successor_probs, dtype=np.float64)
    h_successor = float(-(p * np.log(p)).sum())
    return (math.log(cfg.vocab_per_domain) + (cfg.seq_len - 1) * h_successor) / cfg.seq_len


class MarkovMixture:
    """Generates batches of int32 token ids of shape [batch, seq_len + 1], deterministically."""

    def __init__(self, cfg: CorpusConfig):
        p = np.asarray(cfg.successor_probs, dtype=np.float64)
        if len(p) > cfg.vocab_per_domain or not np.isclose(p.sum(), 1.0) or (p <= 0).any():
            raise ValueError(f"successor_probs must be positive, sum to 1, at most vocab_per_domain long: {p}")
        self.cfg = cfg
        self._cum = np.cumsum(p)
        self._cum[-1] = 1.0
        d, v, k = cfg.num_domains, cfg.vocab_per_domain, len(p)
        rng = np.random.default_rng(cfg.table_seed)
        # successors[domain, prev, cur, slot] -> local id of the next token. prev == v stands for the marker.
        # argsort of random keys gives k distinct successors per context, all contexts at once.
        keys = rng.random((d, v + 1, v, v))
        self.successors = np.argsort(keys, axis=-1)[..., :k].astype(np.int32)

    def log_prob_table(self) -> np.ndarray:
        """Dense [D, V+1, V, V] table of true next-token probabilities (for analytic checks)."""
        d, v1, v, k = self.successors.shape
        probs = np.zeros((d, v1, v, v))
        p = np.diff(np.concatenate([[0.0], self._cum]))
        np.put_along_axis(probs, self.successors, np.broadcast_to(p, self.successors.shape), axis=-1)
        return probs

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        cfg = self.cfg
        d_count, v, length = cfg.num_domains, cfg.vocab_per_domain, cfg.seq_len
        # Stratified over domains: every domain appears equally often in a batch of a multiple of D
        # sequences (a random subset of distinct domains in a smaller batch). A batch of i.i.d. domains
        # would load experts unevenly from step to step and drop tokens for reasons that have nothing to do
        # with the model; balanced sampling across tasks is the usual multi-task pipeline choice.
        domain = np.resize(rng.permutation(d_count), batch)
        local = np.empty((batch, length), dtype=np.int32)
        local[:, 0] = rng.integers(0, v, size=batch)
        slots = np.searchsorted(self._cum, rng.random((batch, length)), side="right")
        prev = np.full(batch, v, dtype=np.int32)  # the marker
        for t in range(1, length):
            cur = local[:, t - 1]
            local[:, t] = self.successors[domain, prev, cur, slots[:, t]]
            prev = cur
        tokens = np.empty((batch, length + 1), dtype=np.int32)
        tokens[:, 0] = domain
        tokens[:, 1:] = d_count + domain[:, None] * v + local
        return tokens

    def train_batch(self, run_seed: int, step: int, batch: int) -> np.ndarray:
        """Batch `step` of the training stream of `run_seed`: independent of what came before."""
        return self.sample(np.random.default_rng([run_seed, step, 7]), batch)

    def eval_set(self) -> np.ndarray:
        """The fixed held-out set: same for every run and seed of this corpus version."""
        return self.sample(np.random.default_rng(self.cfg.eval_seed), self.cfg.eval_sequences)

    def true_nll(self, tokens: np.ndarray) -> np.ndarray:
        """-log p_true(x_t | x_<t) for t = 1..L: the Bayes-optimal loss on concrete data."""
        cfg = self.cfg
        d_count, v = cfg.num_domains, cfg.vocab_per_domain
        domain = tokens[:, 0]
        local = tokens[:, 1:] - d_count - domain[:, None] * v
        probs = self.log_prob_table()
        nll = np.empty(local.shape, dtype=np.float64)
        nll[:, 0] = math.log(v)
        prev = np.concatenate([np.full((len(tokens), 1), v), local[:, :-2]], axis=1)
        p = probs[domain[:, None], prev, local[:, :-1], local[:, 1:]]
        nll[:, 1:] = -np.log(p)
        return nll


def dataset_sha256(tokens: np.ndarray) -> str:
    """Hash of the eval tokens with dtype and shape, so a different layout can never collide."""
    arr = np.ascontiguousarray(tokens)
    header = f"{arr.dtype.str}{arr.shape}".encode()
    return hashlib.sha256(header + arr.tobytes()).hexdigest()
