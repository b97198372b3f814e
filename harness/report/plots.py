"""Report figures as PNG files. Every energy axis names how the energy was obtained (measured / modelled)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from harness.results.files import read_stored, stored  # noqa: E402
from harness.results.schema import RunRecord  # noqa: E402

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _read_csv(path: Path) -> list[dict[str, float]]:
    """A trace's rows, plain or packed; none when the run left no trace (it was killed before writing one)."""
    if stored(path) is None:
        return []
    rows = csv.DictReader(io.StringIO(read_stored(path).decode()))
    return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in rows]


def _finish(fig, ax, out: Path, xlabel: str, ylabel: str, title: str) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _target_line(ax, results: dict[str, list[RunRecord]]) -> None:
    targets = {round(r.target.target_loss, 6) for runs in results.values() for r in runs}
    for t in sorted(targets):
        ax.axhline(t, color="black", linestyle="--", linewidth=1, label=f"target {t:.3f}")


def loss_curves(results: dict[str, list[RunRecord]], x: str, out: Path) -> Path:
    """Eval loss against energy (x='energy_j') or wall time (x='elapsed_s') for every run, one colour a workload."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            # An eval window too short for a counter has no energy (None): left out, never drawn at 0 J.
            trace = [p for p in r.eval_trace if getattr(p, x) is not None and p.eval_loss is not None]
            ax.plot([getattr(p, x) for p in trace], [p.eval_loss for p in trace], color=_COLORS[i % len(_COLORS)],
                    alpha=0.8, linewidth=1.2, label=name if j == 0 else None)
    _target_line(ax, results)
    method = next(iter(results.values()))[0].energy.method
    ax.set_xscale("log")
    return _finish(fig, ax, out,
                   f"energy since run_start (J, {method})" if x == "energy_j" else "wall time since run_start (s)",
                   "eval loss (nats/token)",
                   "Eval loss vs " + ("energy" if x == "energy_j" else "time") + " (each line one seed)")


def power_trace(results: dict[str, list[RunRecord]], out: Path) -> Path:
    """Power by meter component over the first seed's run of each workload."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, runs) in enumerate(results.items()):
        r = runs[0]
        # Mark samples can fall milliseconds after a periodic one; watts over such slivers are noise.
        raw = _read_csv(r.directory / "power.csv") if r.directory else []
        rows = [row for prev, row in zip([None, *raw], raw, strict=False)
                if prev is None or row["time_unix_s"] - prev["time_unix_s"] >= 0.02]
        t0 = r.timing.marks_unix_s.get("run_start", rows[0]["time_unix_s"] if rows else 0.0)
        columns = [c for c in (rows[0] if rows else {}) if c.endswith("_w")]
        # A counter that moves every ~100 ms, differenced at 20 Hz, zigzags between 0 and twice the power; where
        # the same component has an instant-power gauge, that gauge is the trace to draw.
        gauged = {c.removesuffix(".instant_w") + "_w" for c in columns if c.endswith(".instant_w")}
        for k, key in enumerate(c for c in columns if c not in gauged):
            ax.plot([row["time_unix_s"] - t0 for row in rows], [row[key] for row in rows], linewidth=0.8,
                    color=_COLORS[(i + k) % len(_COLORS)], label=f"{name}: {key[:-2]}")
    method = next(iter(results.values()))[0].energy.method
    ax.axvline(0, color="black", linestyle=":", linewidth=1, label="run_start")
    ylabel = "power (W, " + method.replace("+", " +\n") + ")"  # one method per line: combined labels are long
    return _finish(fig, ax, out, "time since run_start (s); negative = init", ylabel,
                   "Power by component (seed 0 of each workload)")


def routing(results: dict[str, list[RunRecord]], out: Path) -> Path | None:
    """Dropped-token fraction and the busiest expert's load over training, for Switch runs (seed 0)."""
    switch = {n: runs[0] for n, runs in results.items() if runs[0].training.dropped_fraction_mean is not None}
    if not switch:
        return None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for i, (name, r) in enumerate(switch.items()):
        rows = _read_csv(r.directory / "steps.csv") if r.directory else []
        steps = [row["step"] for row in rows]
        color = _COLORS[i % len(_COLORS)]
        ax1.plot(steps, [100 * row["dropped_fraction"] for row in rows], color=color, linewidth=0.6, label=name)
        ax2.plot(steps, [row["expert_load_max"] for row in rows], color=color, linewidth=0.6, label=name)
        experts = r.num_experts
        ax2.axhline(1.0 / experts, color=color, linestyle="--", linewidth=1, label=f"balanced (1/{experts})")
    ax1.set_ylabel("dropped tokens (%)")
    ax1.set_title("Switch routing over training (seed 0)")
    ax2.set_ylabel("busiest expert's share of tokens")
    ax2.set_xlabel("training step")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out)


def sweep(points: list[tuple[int, float, float, float]], method: str, dense_energy: float | None, out: Path) -> Path:
    """Energy to target against number of experts: (experts, mean J, CI low, CI high) per point."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    err = [[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]
    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, label="Switch (mean, 95% CI over seeds)")
    if dense_energy is not None:
        ax.axhline(dense_energy, color="black", linestyle="--", label="dense (mean)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    return _finish(fig, ax, out, "experts per Switch layer (activated FLOPs per token fixed)",
                   f"energy to target (J, {method})", "Energy to target vs number of experts")


def inference_sweep(summary: dict, out: Path) -> list[Path]:
    """J per generated token against batch, each model (median over seeds, every seed a dot), and tokens/s against
    p99 time per output token (latency against throughput), from an inference study's summary."""
    rows = summary["rows"]
    labels = sorted({m for r in rows for m in r["models"]}, key=lambda m: m != summary["baseline"])
    method = "; ".join(sorted({x for r in rows for m in r["models"].values() for x in m["method"]}))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(labels):
        pts = [(r["batch"], r["models"][label]) for r in rows if label in r["models"]]
        ax.plot([b for b, _ in pts], [m["median_j_per_token"] for _, m in pts], "o-", color=_COLORS[i], label=label)
        for b, m in pts:
            ax.scatter([b] * len(m["j_per_token"]), list(m["j_per_token"].values()), s=8, color=_COLORS[i], alpha=0.5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    paths = [_finish(fig, ax, out / "j_per_token_vs_batch.png", "batch (sequences a decoder call)",
                     f"J per generated token ({method})", "Energy per generated token against batch")]
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(labels):
        pts = [(r["batch"], r["models"][label]) for r in rows if label in r["models"]
               and r["models"][label]["tpot_p99_ms"] is not None]
        ax.plot([m["tpot_p99_ms"] for _, m in pts], [m["tokens_per_s"] for _, m in pts], "o-", color=_COLORS[i],
                label=label)
        for b, m in pts:
            ax.annotate(f"b{b}", (m["tpot_p99_ms"], m["tokens_per_s"]), fontsize=7)
    paths.append(_finish(fig, ax, out / "throughput_vs_latency.png", "p99 time per output token (ms)",
                         "generated tokens/s", "Throughput against latency"))
    return paths
