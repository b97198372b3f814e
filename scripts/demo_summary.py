"""The GPU demonstration's summary (scripts/gpu_demo.sh): every figure it measured, from the benchmarks' JSON
and the runs' records, with the dense ÷ switch energy to target.

The ratio is a measurement only when both models reached the target. When switch-base reached it and
dense-base ran out of its share of the deadline, dense's energy so far is less than its energy to target, so
dense ÷ switch is a lower bound, and is said to be one. When switch-base did not reach it, there is no ratio.

    python scripts/demo_summary.py WORK_DIR OUT_DIR [--dry-run]   (reads WORK_DIR/bench_*.json and WORK_DIR/runs/)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.results.reader import ResultReadError, read_records  # noqa: E402
from harness.results.schema import RunRecord  # noqa: E402


def run_figures(r: RunRecord, bench_ms: float | None) -> dict[str, Any]:
    """One run's figures; `bench_ms`: the compiled step on a resident batch (bench_switch_step), for the
    runner's efficiency in the run: that step over the run's timed window a step, evaluations included. The
    evaluations cannot be taken out: an evaluation's window opens while the steps before it may still be queued
    (harness/runner/loop.py), so it holds training too, and taking it out would overstate the efficiency (past 1).
    Included, the figure is a lower bound on the runner's own efficiency; `evaluations_s` says how much of the
    window the evaluations (with those queued steps) took."""
    evals_s = sum((p.eval_stop_unix_s or 0) - (p.eval_start_unix_s or 0) for p in r.eval_trace
                  if p.eval_start_unix_s and p.eval_stop_unix_s)
    steps, run_s, accel = r.training.steps, r.timing.run_s, r.accelerators
    train_ms = 1000 * run_s / steps if steps and run_s else None
    return {
        "workload": r.workload, "corpus": r.corpus, "status": r.status, "reached_target": r.converged,
        "steps": steps, "steps_per_dispatch": r.training.framework.get("steps_per_dispatch"),
        "timed_s": run_s, "evaluations_s": evals_s, "target_loss": r.target.target_loss,
        "best_eval_loss": r.best_eval_loss, "energy_j": r.energy.total_j, "energy_method": r.energy.label,
        "accelerator_j": accel and accel.joules, "energy_complete": r.energy.complete, "mfu": r.mfu,
        "accelerator_tokens_per_j": accel and accel.tokens_per_j,
        "ms_per_step_in_run": train_ms,
        "runner_efficiency": bench_ms / train_ms if bench_ms and train_ms else None,
        "devices": [d.get("kind") for d in r.training.framework.get("devices", [])],
        "eval_trace": [[p.step, round(p.elapsed_s, 2), p.eval_loss] for p in r.eval_trace],
    }


def energy_ratio(dense: dict | None, switch: dict | None) -> dict[str, Any]:
    """dense ÷ switch energy to target, or its lower bound, or why there is none."""
    if not dense or not switch:
        return {"ratio": None, "kind": "none", "why": "a run of the pair is missing"}
    if not switch["reached_target"]:
        return {"ratio": None, "kind": "none", "why": f"switch-base did not reach the target ({switch['status']})"}
    if not (dense["energy_complete"] and switch["energy_complete"] and dense["energy_j"] and switch["energy_j"]):
        return {"ratio": None, "kind": "none", "why": "an energy figure is incomplete"}
    ratio = dense["energy_j"] / switch["energy_j"]
    if dense["reached_target"]:
        return {"ratio": ratio, "kind": "measured", "why": "both reached the target"}
    return {"ratio": ratio, "kind": "lower bound",
            "why": f"dense-base stopped before the target ({dense['status']}, {dense['steps']} steps): its energy "
                   "to target is more than this"}


def summarise(work: Path) -> dict[str, Any]:
    bench = {p.stem.removeprefix("bench_"): json.loads(p.read_text()) for p in sorted(work.glob("bench_*.json"))}
    step_ms = {name: m["ms_per_step"] for name, m in bench.get("step", {}).get("models", {}).items()}
    skipped: list[str] = []
    try:
        records = [r for r in read_records(work / "runs", skipped.append) if isinstance(r, RunRecord)]
    except ResultReadError as e:  # no run got as far as a record
        records, skipped = [], [*skipped, str(e)]
    runs = [run_figures(r, step_ms.get(r.workload)) for r in records]
    pairs = {}
    for corpus in ("default", "control"):
        of = {f["workload"].split("-")[0]: f for f in runs if f["corpus"] == corpus}
        if of:
            pairs[corpus] = {"dense_over_switch_energy": energy_ratio(of.get("dense"), of.get("switch")),
                             "dense_over_switch_steps": (of["dense"]["steps"] / of["switch"]["steps"]
                                                         if {"dense", "switch"} <= of.keys() else None)}
    failed_file = work / "failed_stages"  # gpu_demo.sh's stages that failed so far (device_env.sh `stage`)
    failed = [line for line in failed_file.read_text().splitlines() if line] if failed_file.is_file() else []
    return {"dry_run": False, "failed_stages": failed, "bench": bench, "runs": runs, "pairs": pairs,
            "records_skipped": skipped}


def text(summary: dict[str, Any]) -> str:
    def f(x: Any, spec: str = ".4g") -> str:
        return "n/a" if x is None else format(x, spec)

    failed = summary.get("failed_stages") or []
    out = [f"FAILED stages: {'; '.join(failed)}" if failed else "every stage ran"]
    if summary["dry_run"]:
        out.append("DRY RUN at tiny width with a fake NVML GPU: no figure below is a measurement")
    step = summary["bench"].get("step")
    if step:
        out.append(f"compiled step on a resident batch ({step['device']}, K = {step['steps_per_dispatch']}):")
        for name, m in step["models"].items():
            out.append(f"  {name}: {m['ms_per_step']:.2f} ms/step, {m['model_tflops_per_s']:.1f} TFLOP/s, "
                       f"MFU {f(m['mfu'] and 100 * m['mfu'], '.1f')} %")
        out.append(f"  switch / dense step: {step['switch_over_dense_step']:.3f} (goal <= {step['goal']})")
        if "dropless_over_capacity_step" in step:
            out.append(f"  dropless switch / capacity switch step: {step['dropless_over_capacity_step']:.3f}")
    layer = summary["bench"].get("layer")
    for shape, rows in (layer or {}).get("shapes", {}).items():
        out.append(f"one {shape} Switch layer / the dense FFN ({layer['device']}), capacity and dropless "
                   f"({layer.get('grouped_matmul')}):")
        for tokens, row in rows.items():
            out.append(f"  T {tokens}: capacity {row['capacity']['over_dense']:.2f}x, dropless "
                       f"{row['dropless']['over_dense']:.2f}x [{row['plan']}]")
    edges = summary["bench"].get("edges")
    if edges:
        out.append(f"metering window edges: {100 * edges['edges_share']:+.2f} % of a {edges['step_ms']:.1f} ms step "
                   f"(one begin+end pair alone {edges['pair_alone_us']:.0f} us; goal <= 1 %)")
    for r in summary["runs"]:
        out.append(f"{r['workload']} [{r['corpus']}]: {r['status']} after {r['steps']} steps, "
                   f"{f(r['timed_s'], '.1f')} s timed, best eval {f(r['best_eval_loss'])} "
                   f"(target {r['target_loss']:.4f}); energy "
                   f"{f(r['energy_j'], '.1f')} J ({r['energy_method']}), accelerator {f(r['accelerator_j'], '.1f')} J, "
                   f"{f(r['accelerator_tokens_per_j'], '.1f')} tokens/J; "
                   f"MFU {f(r['mfu'] and 100 * r['mfu'], '.1f')} %; "
                   f"runner efficiency {f(r['runner_efficiency'], '.3f')} at K = {r['steps_per_dispatch']}")
    for corpus, p in summary["pairs"].items():
        e = p["dense_over_switch_energy"]
        out.append(f"dense / switch energy to target [{corpus}]: {f(e['ratio'], '.2f')} ({e['kind']}: {e['why']}); "
                   f"steps {f(p['dense_over_switch_steps'], '.2f')}")
    out += [f"skipped: {s}" for s in summary["records_skipped"]]
    return "\n".join(out) + "\n"


def main() -> None:
    work, out = Path(sys.argv[1]), Path(sys.argv[2])
    summary = {**summarise(work), "dry_run": "--dry-run" in sys.argv[3:]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.txt").write_text(text(summary))
    print(text(summary), end="")


if __name__ == "__main__":
    main()
