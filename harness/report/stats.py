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
WELCH_METHOD = "Welch t interval on the difference of mean log values (unpaired; Welch-Satterthwaite df)"
LOG_MEAN_METHOD = "Student t interval on the mean log value (a geometric mean; n-1 df)"


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile (scipy.special's, the same function scipy.stats.t.ppf calls; scipy.stats takes ~0.6 s
    to import, which `harness claim` would spend on every call)."""
    from scipy import special

    return float(special.stdtrit(df, p))


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
        half = t_quantile(0.5 + level / 2.0, n - 1) * spread
        lo, hi, method = np.exp(mean - half), np.exp(mean + half), T_METHOD
    else:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        tail = (1.0 - level) / 2.0
        lo, hi = np.exp(np.quantile(logs[idx].mean(axis=1), [tail, 1.0 - tail]))
        method = BOOTSTRAP_METHOD
    # Clamp float noise so that identical ratios give an interval of exactly that ratio.
    return RatioCI(ratio, float(min(lo, ratio)), float(max(hi, ratio)), n, level, method)


def welch_ratio_ci(numer: Sequence[float], denom: Sequence[float], level: float = 0.95) -> RatioCI:
    """CI of the ratio of geometric means numer / denom from two unpaired samples (log values, Welch's t).
    n is the smaller sample's size; each side needs at least 2 values."""
    a, b = np.log(np.asarray(numer, dtype=float)), np.log(np.asarray(denom, dtype=float))
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's interval needs >= 2 values a side, got {a.size} and {b.size}")
    diff = float(a.mean() - b.mean())
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    ratio = float(np.exp(diff))
    if va + vb < 1e-24:  # no spread on either side: the interval is the ratio
        return RatioCI(ratio, ratio, ratio, int(min(a.size, b.size)), level, WELCH_METHOD)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = t_quantile(0.5 + level / 2.0, df) * float(np.sqrt(va + vb))
    return RatioCI(ratio, float(np.exp(diff - half)), float(np.exp(diff + half)), int(min(a.size, b.size)), level,
                   WELCH_METHOD)


def seeded_ratio_ci(numer: Sequence[tuple[int, float]], denom: Sequence[tuple[int, float]],
                    level: float = 0.95) -> RatioCI:
    """numer / denom from two sides' (seed, value) runs: paired by seed when both sides ran the same two or more
    seeds, each once (a seed's own luck cancels); else Welch's on every value. A seed run twice is two runs:
    keying by seed would keep one of them and drop the other silently."""
    a, b = dict(numer), dict(denom)
    if len(a) == len(numer) and len(b) == len(denom) and set(a) == set(b) and len(a) >= 2:
        seeds = sorted(a)
        return paired_ratio_ci([a[s] for s in seeds], [b[s] for s in seeds], level)
    return welch_ratio_ci([v for _, v in numer], [v for _, v in denom], level)


def is_paired(ci: RatioCI) -> bool:
    return ci.method in (T_METHOD, BOOTSTRAP_METHOD)


def log_mean_ci(values: Sequence[float], level: float = 0.95) -> RatioCI:
    """CI of the geometric mean of `values` (t on the log values): an absolute bound's interval."""
    ones = [1.0] * len(values)
    ci = paired_ratio_ci(values, ones, level)
    return RatioCI(ci.ratio, ci.lo, ci.hi, ci.n, level, LOG_MEAN_METHOD if ci.method == T_METHOD else ci.method)


def runs_to_settle(log_values: Sequence[Sequence[float]], estimate: float, bound: float, level: float = 0.95,
                   paired: bool = False) -> int | None:
    """About how many runs a side would put the interval on one side of `bound`, if the spread stays what it
    is: n with z * s * sqrt(k / n) < |log(bound / estimate)|, s the observed standard deviation of the log values
    (of the per-seed log ratios when paired), k = 1 paired or for one side, 2 for two unpaired sides. None when
    the estimate sits on the bound (no number of runs settles it)."""
    from scipy import special

    distance = abs(float(np.log(bound / estimate)))
    spread = [float(np.std(v, ddof=1)) for v in log_values if len(v) >= 2]
    if distance < 1e-12 or not spread:
        return None
    s = float(np.sqrt(np.mean(np.square(spread))))
    k = 1 if paired or len(log_values) == 1 else 2
    z = float(special.ndtri(0.5 + level / 2.0))
    return max(2, int(np.ceil(k * (z * s / distance) ** 2)))


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
