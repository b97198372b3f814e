"""What a claim can be about: each metric, the figure it reads from a run, which way is better, whose energy it is
over, and whether it is a normalisation (MLPerf's messaging rules: derived figures state their basis and are
never presented as verified)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.results.schema import RunRecord

SCOPES = ("node", "accelerator")


def _to_target_energy(r: RunRecord, scope: str | None) -> float | None:
    if scope == "accelerator":
        acc = r.accelerators
        return acc.joules if acc and r.converged and r.energy.rankable else None
    return r.energy_to_target_j


def _per_joule(node: Callable[[RunRecord], float | None], accelerator: str) -> Callable[[RunRecord, str | None],
                                                                                        float | None]:
    def value(r: RunRecord, scope: str | None) -> float | None:
        if scope == "accelerator":
            acc = r.accelerators
            return getattr(acc, accelerator) if acc else None
        return node(r)

    return value


@dataclass(frozen=True)
class Metric:
    name: str
    what: str  # the figure, with its unit
    value: Callable[[RunRecord, str | None], float | None]  # a run's figure at a scope; None: it has none
    higher_is_better: bool = False
    default_scope: str | None = "node"  # whose energy; None: not an energy figure
    fixed_scope: bool = False  # the metric names its scope (energy_to_target is the node's)
    derived: str | None = None  # the normalisation's basis, for a derived figure
    within_one_system: bool = False  # a ratio of two workloads on the subject (dense / sparse)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("energy_to_target", "energy to target (J, the node's)", _to_target_energy, fixed_scope=True),
    Metric("accelerator_energy_to_target", "accelerator energy to target (J, the boards')", _to_target_energy,
           default_scope="accelerator", fixed_scope=True),
    Metric("time_to_target", "time to target (s)", lambda r, _: r.time_to_target_s, default_scope=None),
    Metric("tokens_per_j", "training tokens per joule", _per_joule(lambda r: r.tokens_per_j, "tokens_per_j"),
           higher_is_better=True, derived="tokens per joule of the scope's measured energy over the timed window"),
    Metric("model_flops_per_j", "model FLOPs per joule",
           _per_joule(lambda r: r.model_flops_per_j, "model_flops_per_j"), higher_is_better=True,
           derived="model FLOPs (3x forward matmuls, activated experts) per joule of the scope's measured energy"),
    Metric("mfu", "model FLOPs utilisation", lambda r, _: r.mfu, higher_is_better=True, default_scope=None,
           derived="model FLOP/s over the devices' published dense peak (harness/results/peak_flops.csv)"),
    Metric("dense_over_sparse_energy", "dense / sparse energy to target", _to_target_energy, higher_is_better=True,
           within_one_system=True),
)}
