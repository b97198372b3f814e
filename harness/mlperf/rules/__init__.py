"""Our compliance rules for mlperf_logging's checker, as YAML data (one file per scope, as MLCommons does).

The checker joins a config path onto its own package folder unless the path is absolute, so every path we
hand it, including those our YAML enqueues, goes through `path()`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parent

# The MLPerf training ruleset whose log format, compliance checker and system-description checker we follow;
# our YAML replaces its per-benchmark rules.
RULESET = "6.0.0"


def path(name: str) -> str:
    """Absolute path of a rules file shipped with harness."""
    return str(RULES_DIR / name)


def common() -> str:
    return path("common.yaml")


@cache
def required_runs(workload: str) -> int | None:
    """How many runs a closed set of `workload` holds (its closed_<workload>.yaml's RESULT_FILES COUNT): the set
    MLPerf scores and applies the reference-convergence test to. None for a workload without closed rules."""
    import yaml

    f = RULES_DIR / f"closed_{workload}.yaml"
    if not f.is_file():
        return None
    for item in yaml.safe_load(f.read_text()) or []:
        if isinstance(item, dict) and "RESULT_FILES" in item:
            return int(item["RESULT_FILES"]["COUNT"])
    return None
