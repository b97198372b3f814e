"""The GPU serving demonstration's summary (scripts/gpu_serve.sh): per routing and batch, each model's J per
generated token and tokens/J, dense / Switch J/token, the Switch model's drops, and whether each model's served
quality held, from the inference studies' own summaries (harness study --inference: inference.json).

    python scripts/serve_summary.py CAMPAIGN_DIR OUT_DIR FAILED_STAGES_FILE [--dry-run]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def summarise(campaign: Path, failed_file: Path) -> dict[str, Any]:
    """Every inference study under the campaign (one folder a routing), and the stages that failed so far."""
    failed = [line for line in failed_file.read_text().splitlines() if line] if failed_file.is_file() else []
    routings = {}
    for f in sorted(campaign.glob("*/*/inference-*/inference.json")):
        data = json.loads(f.read_text())
        s = data.get("summary") or {}
        base = s.get("baseline")
        rows = []
        for row in s.get("rows", []):
            models = {m: {"j_per_token": v["median_j_per_token"],
                          "tokens_per_j": 1 / v["median_j_per_token"] if v["median_j_per_token"] else None,
                          "tokens_per_s": v["tokens_per_s"], "dropped_fraction": v["dropped_fraction"],
                          "quality_holds": all(v["quality_holds"]), "loadgen_valid": v["loadgen_valid"],
                          "energy_method": v["method"]} for m, v in row["models"].items()}
            ratios = {k: v["ratio"] for k, v in (row.get("ratios") or {}).items()}
            rows.append({"batch": row["batch"], "models": models, "dense_over_switch_j_per_token": ratios})
        routings[f.parent.name.removeprefix("inference-")] = {"baseline": base, "status": data.get("status"),
                                                               "rows": rows, "skipped": s.get("skipped", [])}
    return {"dry_run": False, "failed_stages": failed, "routings": routings}


def text(summary: dict[str, Any]) -> str:
    def f(x: Any, spec: str = ".4g") -> str:
        return "n/a" if x is None else format(x, spec)

    failed = summary["failed_stages"]
    out = [f"FAILED stages: {'; '.join(failed)}" if failed else "every stage ran"]
    if summary["dry_run"]:
        out.append("DRY RUN: the tiny pair on a CPU with a fake NVML GPU: no figure below is a measurement")
    if not summary["routings"]:
        out.append("nothing was served")
    for routing, r in summary["routings"].items():
        out.append(f"Switch routed {routing} ({r['status']}):")
        for row in r["rows"]:
            cells = [f"{m} {f(v['j_per_token'], '.3e')} J/token ({f(v['tokens_per_j'], ',.0f')} tokens/J, "
                     f"{'quality holds' if v['quality_holds'] else 'quality MISSED'}"
                     + (f", drops {100 * v['dropped_fraction']:.1f} %" if v["dropped_fraction"] is not None else "")
                     + ")" for m, v in row["models"].items()]
            ratios = ", ".join(f"{k.replace('/', ' / ')} {f(x, '.3f')}"
                               for k, x in row["dense_over_switch_j_per_token"].items())
            out.append(f"  batch {row['batch']}: " + "; ".join(cells) + (f"; {ratios}" if ratios else ""))
        out += [f"  not served: {line}" for line in r["skipped"]]
    return "\n".join(out) + "\n"


def main() -> None:
    campaign, out, failed_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    summary = {**summarise(campaign, failed_file), "dry_run": "--dry-run" in sys.argv[4:]}
    (out / "serve_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "serve_summary.txt").write_text(text(summary))
    print(text(summary), end="")


if __name__ == "__main__":
    main()
