"""MLPerf training scoring: the olympic mean over runs, and the test that a submission does not converge
implausibly faster than the reference (the idea behind MLPerf's reference convergence points, RCPs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

RCP_METHOD = "one-sided pooled two-sample t-test of mean samples-to-target, as MLPerf's RCP checker"


@dataclass(frozen=True)
class OlympicScore:
    value: float | None  # mean of the kept runs; None when invalid
    valid: bool
    reason: str  # how the value was formed, or why there is none
    kept: tuple[int, ...]  # indices into the input, ascending
    dropped: tuple[int, ...]  # (lowest, highest) indices; empty when invalid


def olympic(values: Sequence[float | None]) -> OlympicScore:
    """MLPerf's olympic mean: drop the single lowest and single highest run and average the rest.

    None marks a run that did not reach the target; it counts as the highest (infinitely slow or costly), so
    one such run is simply the one dropped, and more than one makes the result invalid. Works the same for
    time-to-target and energy-to-target. Ties are broken by index: among equal lowest values the earliest
    run is dropped, among equal highest values the latest (a stable sort's first and last element).
    Run numbers in ``reason`` are the 0-based input indices.
    """
    n = len(values)
    for i, v in enumerate(values):
        if v is not None and math.isnan(v):
            raise ValueError(f"run {i} is NaN; use None for a run that did not converge")
    if n < 3:
        return OlympicScore(None, False, f"need at least 3 runs for an olympic mean, got {n}", (), ())
    failed = [i for i, v in enumerate(values) if v is None]
    if len(failed) > 1:
        runs = ", ".join(map(str, failed))
        return OlympicScore(None, False, f"{len(failed)} of {n} runs did not converge (runs {runs}); "
                            "at most one may fail", (), ())
    order = sorted(range(n), key=lambda i: (math.inf if values[i] is None else values[i], i))
    low, high = order[0], order[-1]
    kept = tuple(sorted(order[1:-1]))
    value = math.fsum(v for i in kept if (v := values[i]) is not None) / len(kept)  # kept holds no None
    high_note = ", which did not converge" if values[high] is None else ""
    reason = (f"olympic mean of {len(kept)} of {n} runs "
              f"(dropped lowest run {low} and highest run {high}{high_note})")
    return OlympicScore(value, True, reason, kept, (low, high))


def one_sided_p_faster(sub: Sequence[float], ref: Sequence[float]) -> float:
    """p-value of a pooled-variance two-sample t-test of H1: mean(sub) < mean(ref) (scipy.stats.ttest_ind).

    With zero pooled variance (all values identical within each group) the t statistic is undefined and
    the test degenerates to comparing the means: 0.0 or 1.0.
    """
    from scipy import special  # here: olympic scoring alone need not load scipy (and scipy.stats is slow to load)

    n1, n2 = len(sub), len(ref)
    if n1 < 1 or n2 < 2 or n1 + n2 < 3:
        raise ValueError(f"need >= 1 submission and >= 2 reference values, got {n1} and {n2}")
    m1, m2 = _mean(sub), _mean(ref)
    pooled = math.fsum((x - m1) ** 2 for x in sub) + math.fsum((y - m2) ** 2 for y in ref)
    if pooled == 0:
        return 0.0 if m1 < m2 else 1.0
    # scipy.stats.ttest_ind(sub, ref, equal_var=True, alternative="less"), written out: t on the pooled variance,
    # n1 + n2 - 2 degrees of freedom, p = P(T <= t).
    df = n1 + n2 - 2
    t = (m1 - m2) / math.sqrt(pooled / df * (1 / n1 + 1 / n2))
    return float(special.stdtr(df, t))


def convergence_check(sub: Sequence[float], ref: Sequence[float], alpha: float = 0.05) -> dict[str, Any]:
    """Whether the submission's samples-to-target are implausibly low against reference runs.

    sub: samples (or epochs) to target per submission run, as the caller chooses them (MLPerf uses the runs
    kept by the olympic mean); ref: the same quantity from reference runs.
    """
    if not sub:
        raise ValueError("need at least one submission value")
    n_sub, n_ref = len(sub), len(ref)
    sub_mean = _mean(sub)
    ref_mean = _mean(ref) if ref else None
    ref_std = math.sqrt(math.fsum((y - ref_mean) ** 2 for y in ref) / (n_ref - 1)) if n_ref >= 2 else None
    ref_min, ref_max = (min(ref), max(ref)) if ref else (None, None)
    within = ref_min <= sub_mean <= ref_max if ref else None
    out: dict[str, Any] = {
        "n_sub": n_sub, "n_ref": n_ref, "sub_mean": sub_mean, "ref_mean": ref_mean, "ref_std": ref_std,
        "ref_min": ref_min, "ref_max": ref_max, "p_value": None, "alpha": alpha, "implausibly_fast": None,
        "within_reference_range": within, "verdict": "", "method": RCP_METHOD,
    }
    if n_ref < 2:
        out["verdict"] = f"too few reference runs to test ({n_ref}; need at least 2)"
        return out
    p = one_sided_p_faster(sub, ref)
    out["p_value"] = p
    out["implausibly_fast"] = p < alpha
    compare = f"mean {sub_mean:.6g} vs reference mean {ref_mean:.6g}"
    if p < alpha:
        out["verdict"] = f"implausibly fast: {compare}, one-sided p={p:.3g} < alpha={alpha}"
    else:
        out["verdict"] = f"consistent with reference convergence: {compare}, one-sided p={p:.3g} >= alpha={alpha}"
    return out


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)
