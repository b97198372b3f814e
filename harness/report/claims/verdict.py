"""A claim's verdict from its interval, and how the interval paired the sides: what every stage's claims share."""

from __future__ import annotations

from harness.report.stats import RatioCI

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, CANNOT = "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE", "CANNOT BE ASSESSED"


def how(interval: RatioCI | None) -> str:
    if interval is None:
        return ""
    if "Welch" in interval.method:
        return (f"unpaired (a seed ran twice on a side, or fewer than 2 seeds are shared): Welch, n >= {interval.n} "
                "a side")
    if "mean log value" in interval.method:
        return f"one side: {interval.n} runs"
    left = f"; {interval.left_out} run(s) whose seed the other side did not run left out" if interval.left_out else ""
    return f"paired by seed: {interval.n} pairs{left}"


def verdict(relation: str, value: float, interval: RatioCI | None) -> str:
    """SUPPORTED when the whole interval satisfies `relation value`, NOT SUPPORTED when the whole interval violates
    it, INCONCLUSIVE otherwise."""
    if interval is None:
        return CANNOT
    lo, hi, v = interval.lo, interval.hi, value
    if relation == "<=":
        return SUPPORTED if hi <= v else NOT_SUPPORTED if lo > v else INCONCLUSIVE
    return SUPPORTED if lo >= v else NOT_SUPPORTED if hi < v else INCONCLUSIVE
