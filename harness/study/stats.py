"""Statistics for comparing runs over seeds: paired bootstrap confidence intervals on ratios of means.

Runs of a study are paired by seed (A and B with seed s ran back to back), so the bootstrap resamples seeds,
keeping each pair together, and recomputes the ratio of means. With no noise every resample gives the same
ratio and the interval collapses to it; a difference is called significant when the interval excludes 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

MIN_SEEDS_FOR_CLAIM = 3


@dataclass(frozen=True)
class RatioCI:
    ratio: float
    lo: float
    hi: float
    n: int
    level: float

    @property
    def significant(self) -> bool:
        # Two seeds give only three distinct bootstrap resamples: no basis for a claim either way.
        return self.n >= MIN_SEEDS_FOR_CLAIM and (self.lo > 1.0 or self.hi < 1.0)

    def verdict(self, what: str) -> str:
        pct = int(round(self.level * 100))
        if self.n < 2:
            return f"{what}: {self.ratio:.2f}x from {self.n} pair(s); no interval without at least 2 seeds"
        if self.n < MIN_SEEDS_FOR_CLAIM:
            word = f"too few seeds to call (need >= {MIN_SEEDS_FOR_CLAIM})"
        else:
            word = "significant" if self.significant else "NOT significant (interval includes 1)"
        return f"{what}: {self.ratio:.2f}x, {pct}% CI [{self.lo:.2f}, {self.hi:.2f}] over {self.n} seeds: {word}"

    def to_dict(self) -> dict:
        return asdict(self) | {"significant": self.significant}


def paired_ratio_ci(numer: Sequence[float], denom: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                    seed: int = 0) -> RatioCI:
    """CI of mean(numer) / mean(denom), resampling pairs (seeds) with replacement; percentile interval."""
    a, b = np.asarray(numer, dtype=float), np.asarray(denom, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal-length non-empty sequences, got {a.shape} and {b.shape}")
    ratio = float(a.mean() / b.mean())
    if a.size < 2:
        return RatioCI(ratio, ratio, ratio, int(a.size), level)
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    boot = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    # Clamp float noise so that identical ratios give an interval of exactly that ratio.
    return RatioCI(ratio, float(min(lo, ratio)), float(max(hi, ratio)), int(a.size), level)


def interleaved_order(workloads: Sequence[str], seeds: int) -> list[tuple[str, int]]:
    """A, B, A, B, ...: each seed runs every workload back to back, so drift on the machine falls on all."""
    return [(w, s) for s in range(seeds) for w in workloads]
