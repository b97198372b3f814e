"""Statistics for comparing runs over seeds: confidence intervals on paired ratios.

Runs of a study are paired by seed (A and B with seed s ran back to back). The estimate is the geometric mean
of the per-seed ratios A_s / B_s, i.e. exp(mean of log ratios). With few seeds the interval is Student's t on
the log ratios (n - 1 degrees of freedom): a bootstrap over 3 seeds has 10 distinct resamples and gives
intervals too narrow to trust. From BOOTSTRAP_FROM seeds up, a percentile bootstrap of the mean log ratio.
With no noise the interval collapses to the ratio; a difference is significant when the interval excludes 1.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, TypeVar

import numpy as np

from harness.results.schema import RunRecord

MIN_SEEDS_FOR_CLAIM = 3
BOOTSTRAP_FROM = 10
T_METHOD = "Student t interval on per-seed log ratios (n-1 df)"
BOOTSTRAP_METHOD = "percentile bootstrap of the mean per-seed log ratio (10,000 resamples)"
WELCH_METHOD = "Welch t interval on the difference of mean log values (unpaired; Welch-Satterthwaite df)"
LOG_MEAN_METHOD = "Student t interval on the mean log value (a geometric mean; n-1 df)"
T = TypeVar("T")


def median(values: Iterable[float | None]) -> float | None:
    """The median of the figures a set of runs has (None marks a run without one); None when none has it."""
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


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
    left_out: int = 0  # paired: runs whose seed the other side did not run, not in the figure

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
        how = {T_METHOD: f"t, paired, n={self.n} seeds", BOOTSTRAP_METHOD: f"bootstrap, paired, n={self.n} seeds",
               WELCH_METHOD: f"Welch, unpaired, n>={self.n} runs a side"}.get(self.method, f"n={self.n}")
        return f"{what}: {self.ratio:.2f}x, {pct}% CI [{self.lo:.2f}, {self.hi:.2f}] ({how}): {word}"

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


@dataclass(frozen=True)
class SeedPairs(Generic[T]):
    """Two sides' runs, (seed, run) each, paired by seed: a pair is the same seed once on each side, and nothing
    else is paired. A seed run twice on a side is two runs, so that side cannot be paired at all (keying by seed
    would keep one of them and drop the other silently)."""

    pairs: tuple[tuple[T, T], ...]  # (numer's run, denom's run) of each seed both sides ran, ascending seed
    only_numer: tuple[int, ...]  # seeds the denominator's side lacks: left out of a paired figure
    only_denom: tuple[int, ...]
    repeated: tuple[int, ...]  # seeds run more than once on a side

    @property
    def pairable(self) -> bool:
        return not self.repeated and bool(self.pairs)

    @property
    def left_out(self) -> int:
        return len(self.only_numer) + len(self.only_denom)

    def note(self, names: tuple[str, str] = ("numerator", "denominator")) -> str:
        """What was paired and what was not, in words."""
        if self.repeated:
            return f"not paired: seed(s) {_seeds(self.repeated)} ran more than once on a side, and each run counts"
        said = [f"{len(self.pairs)} seed(s) on both sides"]
        for name, seeds in zip(names, (self.only_numer, self.only_denom), strict=True):
            if seeds:
                said.append(f"{name} seed(s) {_seeds(seeds)} without a partner, left out")
        return "; ".join(said)


def pair_by_seed(numer: Sequence[tuple[int, T]], denom: Sequence[tuple[int, T]]) -> SeedPairs[T]:
    a, b = Counter(s for s, _ in numer), Counter(s for s, _ in denom)
    repeated = sorted(s for s, n in (a + b).items() if a[s] > 1 or b[s] > 1)
    by_a, by_b = dict(numer), dict(denom)
    common = sorted(set(a) & set(b))
    return SeedPairs(tuple((by_a[s], by_b[s]) for s in common), tuple(sorted(set(a) - set(b))),
                     tuple(sorted(set(b) - set(a))), tuple(repeated))


def seeded_ratio_ci(numer: Sequence[tuple[int, float]], denom: Sequence[tuple[int, float]],
                    level: float = 0.95) -> RatioCI:
    """numer / denom from two sides' (seed, value) runs: paired by seed (pair_by_seed) where two or more seeds
    ran once on both sides, a seed's own luck cancelling, and the runs without a partner left out and counted;
    else Welch's on every value (a seed run twice, or fewer than two common seeds)."""
    p = pair_by_seed(numer, denom)
    if p.pairable and (len(p.pairs) >= 2 or len(numer) < 2 or len(denom) < 2):
        ci = paired_ratio_ci([x for x, _ in p.pairs], [y for _, y in p.pairs], level)
        return replace(ci, left_out=p.left_out)
    return welch_ratio_ci([v for _, v in numer], [v for _, v in denom], level)


def _seeds(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


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
    """Baseline ÷ other for energy, time and steps to target, tokens per joule other ÷ baseline: over the runs that
    converged with a ranked energy figure, paired by seed (pair_by_seed: the same seed once on each side; a seed
    with no partner is left out and named; a seed run twice makes the sides unpaired, Welch's on every run).
    Runs whose CPU was shared with other work are counted and said (a CPU meter charges that work to the run)."""
    names = names or (baseline[0].workload, other[0].workload)
    ranked = [[(r.seed, r) for r in side if r.energy_to_target_j is not None] for side in (baseline, other)]
    pairing = pair_by_seed(*ranked)
    every = pair_by_seed([(r.seed, r) for r in baseline], [(r.seed, r) for r in other])
    unranked = [r.run_id for side in (baseline, other) for r in side if r.converged and r.energy_to_target_j is None]
    used = ([x for pair in pairing.pairs for x in pair] if pairing.pairable
            else [r for side in ranked for _, r in side])
    contended = [r.run_id for r in used if r.energy.contention and r.energy.contention.flagged]
    out: dict[str, Any] = {"baseline": names[0], "other": names[1], "paired": pairing.pairable,
                           "pairs_converged": len(pairing.pairs) if pairing.pairable else 0,
                           "pairs_total": len(every.pairs), "runs": [len(baseline), len(other)],
                           "pairing": pairing.note(names), "energy_incomplete": unranked,
                           "not_converged": [f"{r.run_id} (seed {r.seed}): {r.status_text}"
                                             for side in (baseline, other) for r in side if not r.converged],
                           "energy_method": "+".join(sorted({m for r in used for m in r.energy.methods})),
                           "runs_contended": contended}
    if not used or not all(ranked):
        out["verdict"] = "no run of one side converged with a complete energy figure: no ratio"
        return out
    metrics = {
        "energy_to_target": lambda r: r.energy_to_target_j,
        "time_to_target": lambda r: r.time_to_target_s,
        "steps_to_target": lambda r: r.training.steps,
        # Tokens per joule: other ÷ baseline, so > 1 means the other model does more work per joule.
        "tokens_per_joule_other_over_baseline": lambda r: 1.0 / (r.training.tokens / r.energy_to_target_j),
    }
    for key, get in metrics.items():
        try:
            ci = seeded_ratio_ci([(s, get(r)) for s, r in ranked[0]], [(s, get(r)) for s, r in ranked[1]])
        except ValueError as e:
            out["verdict"] = f"no ratio: {e}"
            return out
        what = "tokens/J ratio" if key.startswith("tokens") else f"{key.replace('_', ' ')} ratio"
        out[key] = ci.to_dict() | {"verdict": ci.verdict(what)}
    if contended:
        out["contention"] = (f"{len(contended)} of the {len(used)} runs compared shared their CPU with other "
                             "work (over 10 % of the machine): a CPU meter charges it to the run, so their energy "
                             "ratios are less certain than the interval says")
    return out
