"""Statistics for comparing runs over seeds: confidence intervals on paired ratios.

Runs of a study are paired by seed (A and B with seed s ran back to back). The estimate is the geometric mean
of the per-seed ratios A_s / B_s, i.e. exp(mean of log ratios). With few seeds the interval is Student's t on
the log ratios (n - 1 degrees of freedom): a bootstrap over 3 seeds has 10 distinct resamples and gives
intervals too narrow to trust. From BOOTSTRAP_FROM seeds up, a percentile bootstrap of the mean log ratio.
With no noise the interval collapses to the ratio; a difference is significant when the interval excludes 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.results.schema import RunRecord

MIN_SEEDS_FOR_CLAIM = 3
BOOTSTRAP_FROM = 10
T_METHOD = "Student t interval on per-seed log ratios (n-1 df)"
BOOTSTRAP_METHOD = "percentile bootstrap of the mean per-seed log ratio (10,000 resamples)"


@dataclass(frozen=True)
class RatioCI:
    ratio: float
    lo: float
    hi: float
    n: int
    level: float
    method: str = T_METHOD

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
        how = "t" if self.method == T_METHOD else "bootstrap"
        return (f"{what}: {self.ratio:.2f}x, {pct}% CI [{self.lo:.2f}, {self.hi:.2f}] ({how}, n={self.n} seeds): "
                f"{word}")

    def to_dict(self) -> dict:
        return asdict(self) | {"significant": self.significant}


def paired_ratio_ci(numer: Sequence[float], denom: Sequence[float], level: float = 0.95, resamples: int = 10_000,
                    seed: int = 0) -> RatioCI:
    """CI of the paired ratio numer_s / denom_s over seeds s (geometric mean of the per-seed ratios)."""
    from scipy import stats

    a, b = np.asarray(numer, dtype=float), np.asarray(denom, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two equal-length non-empty sequences, got {a.shape} and {b.shape}")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("ratios need positive values")
    logs = np.log(a) - np.log(b)
    mean = float(logs.mean())
    ratio = float(np.exp(mean))
    n = int(logs.size)
    if n < 2 or float(np.ptp(logs)) < 1e-12:  # one seed, or no noise at all: the interval is the ratio
        return RatioCI(ratio, ratio, ratio, n, level, T_METHOD if n < BOOTSTRAP_FROM else BOOTSTRAP_METHOD)
    if n < BOOTSTRAP_FROM:
        spread = float(logs.std(ddof=1)) / np.sqrt(n)
        half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * spread
        lo, hi, method = np.exp(mean - half), np.exp(mean + half), T_METHOD
    else:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        tail = (1.0 - level) / 2.0
        lo, hi = np.exp(np.quantile(logs[idx].mean(axis=1), [tail, 1.0 - tail]))
        method = BOOTSTRAP_METHOD
    # Clamp float noise so that identical ratios give an interval of exactly that ratio.
    return RatioCI(ratio, float(min(lo, ratio)), float(max(hi, ratio)), n, level, method)


def paired_comparison(baseline: list[RunRecord], other: list[RunRecord],
                      names: tuple[str, str] | None = None) -> dict[str, Any]:
    """Baseline ÷ other for energy, time and steps to target over the seeds both converged on, with a ranked
    energy figure on both sides; tokens per joule other ÷ baseline. Pairs whose CPU was shared with other work
    are counted and said (a CPU meter charges that work to the run)."""
    converged = [(a, b) for a, b in zip(baseline, other, strict=False) if a.converged and b.converged]
    # A pair with an incomplete energy figure is not ranked: it is counted, and left out.
    pairs = [(a, b) for a, b in converged if a.energy_to_target_j is not None and b.energy_to_target_j is not None]
    names = names or (baseline[0].workload, other[0].workload)
    contended = [r.run_id for a, b in pairs for r in (a, b) if r.energy.contention and r.energy.contention.flagged]
    out: dict[str, Any] = {"baseline": names[0], "other": names[1],
                           "pairs_energy_incomplete": len(converged) - len(pairs),
                           "pairs_converged": len(pairs), "pairs_total": min(len(baseline), len(other)),
                           "energy_method": baseline[0].energy.method, "runs_contended": contended}
    if not pairs:
        out["verdict"] = "no seed where both converged with a complete energy figure: no ratio"
        return out
    metrics = {
        "energy_to_target": lambda r: r.energy_to_target_j,
        "time_to_target": lambda r: r.time_to_target_s,
        "steps_to_target": lambda r: r.training.steps,
    }
    for key, get in metrics.items():
        ci = paired_ratio_ci([get(a) for a, _ in pairs], [get(b) for _, b in pairs])
        out[key] = ci.to_dict() | {"verdict": ci.verdict(f"{key.replace('_', ' ')} ratio")}
    # Tokens per joule: other ÷ baseline, so > 1 means the other model does more work per joule.
    tpj = paired_ratio_ci([b.training.tokens / b.energy_to_target_j for _, b in pairs],
                          [a.training.tokens / a.energy_to_target_j for a, _ in pairs])
    out["tokens_per_joule_other_over_baseline"] = tpj.to_dict() | {"verdict": tpj.verdict("tokens/J ratio")}
    if contended:
        out["contention"] = (f"{len(contended)} of the {2 * len(pairs)} runs compared shared their CPU with other "
                             "work (over 10 % of the machine): a CPU meter charges it to the run, so their energy "
                             "ratios are less certain than the interval says")
    return out
