"""A claim file (TOML, read with the standard library): what is claimed, about which runs, and the bound.

    text = "switch-small on system A reaches its target with <= 70 % of system B's energy"
    metric = "energy_to_target"          # see harness/report/claims/metrics.py for every metric
    workload = "switch-small"            # for dense_over_sparse_energy: { dense = "...", sparse = "..." }
    subject = "runs/system-a"            # a package, a --runs set or a folder of runs, relative to this file
    baseline = "runs/system-b"           # left out for an absolute bound on the subject
    relation = "<="                      # read: subject / baseline RELATION value (or: subject RELATION value)
    value = 0.70
    scope = "node"                       # per-joule metrics: the node's energy or the accelerators' ("accelerator")
    confidence = 0.95                    # of the interval the verdict is judged on
    stage = "training"                   # or "inference": the sides are harness infer records
                                         # (metrics in harness/report/claims/inference.py)
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.report.claims.inference import INFERENCE_METRICS
from harness.report.claims.metrics import METRICS, SCOPES, Metric
from workloads.errors import InputError

RELATIONS = ("<=", ">=")
KEYS = ("text", "metric", "workload", "subject", "baseline", "relation", "value", "scope", "confidence", "stage")
STAGES = ("training", "inference")


class ClaimFileError(InputError):
    """A claim file that cannot be read as a claim: one line naming the key and what is valid (exit 2)."""


@dataclass(frozen=True)
class Claim:
    path: Path
    text: str
    metric: Metric
    workloads: dict[str, str]  # {"subject": name}, or {"dense": name, "sparse": name}
    subject: Path
    baseline: Path | None
    relation: str
    value: float
    scope: str | None  # the energy the metric is over: "node" or "accelerator"; None for time and MFU
    confidence: float
    stage: str = "training"  # "inference": the sides are inference records (harness/report/claims/inference.py)

    @property
    def ratio(self) -> bool:
        """Whether the bound is on a ratio (subject / baseline, or dense / sparse) rather than a value."""
        return self.baseline is not None or self.metric.within_one_system

    def as_read(self) -> dict[str, Any]:
        return {"text": self.text, "metric": self.metric.name, "workload": self.workloads,
                "subject": str(self.subject), "baseline": str(self.baseline) if self.baseline else None,
                "relation": self.relation, "value": self.value, "scope": self.scope, "confidence": self.confidence,
                "stage": self.stage}


def read_claim(path: Path) -> Claim:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClaimFileError(f"{path}: no such claim file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClaimFileError(f"{path}: unreadable ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ClaimFileError(f"{path}: not valid TOML ({e})") from None
    where = f"{path}:"
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ClaimFileError(f"{where} unknown key(s) {', '.join(unknown)}; a claim has {', '.join(KEYS)}")
    for key in ("text", "metric", "workload", "subject", "relation", "value"):
        if key not in data:
            raise ClaimFileError(f"{where} missing `{key}` (a claim has {', '.join(KEYS)})")
    stage = data.get("stage", "training")
    if stage not in STAGES:
        raise ClaimFileError(f"{where} stage must be one of {', '.join(STAGES)}, got {stage!r}")
    table = INFERENCE_METRICS if stage == "inference" else METRICS
    metric = table.get(str(data["metric"]))
    if metric is None:
        raise ClaimFileError(f"{where} metric must be one of {', '.join(table)} (stage {stage}), got "
                             f"{data['metric']!r}")
    relation = data["relation"]
    if relation not in RELATIONS:
        raise ClaimFileError(f"{where} relation must be {' or '.join(RELATIONS)}, got {relation!r}")
    value = data["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ClaimFileError(f"{where} value must be a positive number, got {value!r}")
    workloads = _workloads(where, data["workload"], metric)
    subject = _side(path, where, "subject", data["subject"])
    baseline = _side(path, where, "baseline", data["baseline"]) if data.get("baseline") is not None else None
    if metric.within_one_system and baseline is not None:
        raise ClaimFileError(f"{where} {metric.name} is a ratio within one system: give `subject` only")
    scope = data.get("scope", metric.default_scope)
    if metric.default_scope is None and "scope" in data:
        raise ClaimFileError(f"{where} {metric.name} is no energy figure: it takes no `scope`")
    if metric.default_scope is not None and scope not in SCOPES:
        raise ClaimFileError(f"{where} scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if metric.fixed_scope and scope != metric.default_scope:
        raise ClaimFileError(f"{where} {metric.name} is over the {metric.default_scope}'s energy: scope "
                             f"{scope!r} does not apply")
    confidence = data.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, float | int) or not 0.5 <= confidence < 1:
        raise ClaimFileError(f"{where} confidence must be a level in [0.5, 1), e.g. 0.95, got {confidence!r}")
    return Claim(path=path, text=str(data["text"]), metric=metric, workloads=workloads, subject=subject,
                 baseline=baseline, relation=relation, value=float(value), scope=scope, confidence=float(confidence),
                 stage=stage)


def _workloads(where: str, given: Any, metric: Metric) -> dict[str, str]:
    if metric.within_one_system:
        if not isinstance(given, dict) or set(given) != {"dense", "sparse"}:
            raise ClaimFileError(f"{where} {metric.name} needs workload = {{ dense = \"NAME\", sparse = \"NAME\" }}")
        return {"dense": str(given["dense"]), "sparse": str(given["sparse"])}
    if not isinstance(given, str) or not given:
        raise ClaimFileError(f"{where} workload must be a workload's name, e.g. \"switch-small\", got {given!r}")
    return {"subject": given}


def _side(claim_path: Path, where: str, key: str, given: Any) -> Path:
    if not isinstance(given, str) or not given:
        raise ClaimFileError(f"{where} {key} must be a path (a package, a --runs set or a folder of runs)")
    path = (claim_path.parent / given).resolve()
    if not path.exists():
        raise ClaimFileError(f"{where} {key} {given!r}: no such file or folder (paths are relative to the claim file)")
    return path
