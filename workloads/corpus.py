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
        self.successors = _successor_tables(cfg.num_domains, cfg.vocab_per_domain, len(p), cfg.table_seed)
        v, k = cfg.vocab_per_domain, len(p)
        # Flat view for the sampler: one gather per position instead of a 4-D fancy index.
        self._flat = self.successors.reshape(-1)
        self._strides = ((v + 1) * v * k, v * k, k)
        self._probs = np.diff(np.concatenate([[0.0], self._cum]))

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        return self._walk(*self._draw(rng, batch))

    def _draw(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The random choices of one batch: each row's domain, first token, and successor slot per position."""
        cfg = self.cfg
        # Stratified over domains: every domain appears equally often in a batch of a multiple of D
        # sequences (a random subset of distinct domains in a smaller batch). A batch of i.i.d. domains
        # would load experts unevenly from step to step and drop tokens for reasons that have nothing to do
        # with the model; balanced sampling across tasks is the usual multi-task pipeline choice.
        domain = np.resize(rng.permutation(cfg.num_domains), batch)
        first = rng.integers(0, cfg.vocab_per_domain, size=batch)
        slots = np.searchsorted(self._cum, rng.random((batch, cfg.seq_len)), side="right")
        return domain, first, slots

    def _walk(self, domain: np.ndarray, first: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Run the Markov chains of the drawn rows; rows are independent, so any number can walk together."""
        cfg = self.cfg
        d_count, v, length = cfg.num_domains, cfg.vocab_per_domain, cfg.seq_len
        rows = len(domain)
        local = np.empty((rows, length), dtype=np.int32)
        local[:, 0] = first
        s_domain, s_prev, s_cur = self._strides
        base = domain.astype(np.int64) * s_domain
        prev = np.full(rows, v, dtype=np.int64)  # the marker
        for t in range(1, length):
            cur = local[:, t - 1]
            local[:, t] = self._flat[base + prev * s_prev + cur * s_cur + slots[:, t]]
            prev = cur
        tokens = np.empty((rows, length + 1), dtype=np.int32)
        tokens[:, 0] = domain
        tokens[:, 1:] = d_count + domain[:, None] * v + local
        return tokens

    def train_batch(self, run_seed: int, step: int, batch: int) -> np.ndarray:
        """Batch `step` of the training stream of `run_seed`: independent of what came before."""
        return self.sample(_step_rng(run_seed, step), batch)

    def train_batches(self, run_seed: int, first_step: int, count: int, batch: int) -> np.ndarray:
        """[count, batch, seq_len + 1]: exactly train_batch of steps first_step.., made in one walk.

        The Markov walk costs a Python-level loop over positions; walking many batches' rows together pays
        that loop once instead of once a batch (the input thread then holds the interpreter far less).
        """
        draws = [self._draw(_step_rng(run_seed, first_step + i), batch) for i in range(count)]
        tokens = self._walk(*(np.concatenate(parts) for parts in zip(*draws, strict=True)))
        return tokens.reshape(count, batch, -1)

    def eval_set(self) -> np.ndarray:
        """The fixed held-out set: same for every run and seed of this corpus version."""
        return self.sample(np.random.default_rng(self.cfg.eval_seed), self.cfg.eval_sequences)

    def true_nll(self, tokens: np.ndarray) -> np.ndarray:
        """-log p_true(x_t | x_<t) for t = 1..L: the Bayes-optimal loss on concrete data."""
        cfg = self.cfg
        d_count, v = cfg.num_domains, cfg.vocab_per_domain
        domain = tokens[:, 0]
        local = tokens[:, 1:] - d_count - domain[:, None] * v
        nll = np.empty(local.shape, dtype=np.float64)
        nll[:, 0] = math.log(v)
        prev = np.concatenate([np.full((len(tokens), 1), v), local[:, :-2]], axis=1)
        # The successors of each (prev, cur) context, compared with the token that came next.
        succ = self.successors[domain[:, None], prev, local[:, :-1]]  # [batch, L-1, k]
        p = ((succ == local[:, 1:, None]) * self._probs).sum(axis=-1)
        with np.errstate(divide="ignore"):
            nll[:, 1:] = -np.log(p)
        return nll


    def allowed(self, tokens: np.ndarray) -> np.ndarray:
        """[batch, L] bool for rows [marker, x_1..x_L] of any provenance (a model's generations): whether the true
        law can produce x_t after x_<t. A token outside the row's domain, or after a context the law never makes,
        is not allowed."""
        cfg = self.cfg
        d_count, v = cfg.num_domains, cfg.vocab_per_domain
        tokens = np.asarray(tokens, np.int64)
        domain = np.clip(tokens[:, 0], 0, d_count - 1)
        local = tokens[:, 1:] - d_count - domain[:, None] * v
        inside = (local >= 0) & (local < v) & (tokens[:, :1] < d_count)
        safe = np.where(inside, local, 0)
        ok = inside.copy()
        prev = np.concatenate([np.full((len(tokens), 1), v), safe[:, :-2]], axis=1)
        succ = self.successors[domain[:, None], prev, safe[:, :-1]]  # [batch, L-1, k]
        context_ok = inside[:, :-1] & np.concatenate([np.ones((len(tokens), 1), bool), inside[:, :-2]], axis=1)
        ok[:, 1:] &= context_ok & (succ == safe[:, 1:, None]).any(axis=-1)
        return ok


def _step_rng(run_seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([run_seed, step, 7])


def _successor_tables(domains: int, vocab: int, k: int, seed: int) -> np.ndarray:
    """successors[domain, prev, cur, slot] -> local id of the next token; prev == vocab stands for the marker.

    The k successors of a context are the k smallest of `vocab` random keys, in order: a uniformly random
    ordered k-subset. Keys are drawn one domain at a time, which reads the generator's stream exactly as one
    [D, V+1, V, V] draw would (so every corpus version markov-mixture/1 ever made is unchanged), but holds
    only one domain's keys in memory: the base corpora would need gigabytes at once.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((domains, vocab + 1, vocab, k), dtype=np.int32)
    for d in range(domains):
        keys = rng.random((vocab + 1, vocab, vocab))
        smallest = np.argpartition(keys, k - 1, axis=-1)[..., :k] if k < vocab else np.argsort(keys, axis=-1)
        order = np.argsort(np.take_along_axis(keys, smallest, axis=-1), axis=-1)
        out[d] = np.take_along_axis(smallest, order, axis=-1)
    return out


def dataset_sha256(tokens: np.ndarray) -> str:
    """Hash of the eval tokens with dtype and shape, so a different layout can never collide."""
    arr = np.ascontiguousarray(tokens)
    header = f"{arr.dtype.str}{arr.shape}".encode()
    return hashlib.sha256(header + arr.tobytes()).hexdigest()
