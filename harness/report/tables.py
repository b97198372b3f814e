"""The tables the CLI prints (rich renderables built from data): workloads, regions, meters, comparisons.
Presentation only; every figure comes from the module that owns it."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _table(title: str, *columns: str, fold: bool = False) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold" if fold else "ellipsis")
    return table


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:,.4g}"


def workloads_table(workloads: dict[str, Any]) -> tuple[Table, list[str]]:
    """The registered workloads, and a line for each whose learning rate is not yet calibrated."""
    table = _table("workloads", "name", "model", "shape", "precision", "corpus", "batch x seq", "lr", "eval every",
                   "target", "max steps", "sized for")
    for spec in workloads.values():
        m = spec.model
        model = f"switch E={m.num_experts}, {m.routing}" if m.num_experts else "dense"
        lr = f"{spec.optimizer.learning_rate:g}" + ("" if spec.calibration.calibrated else " (uncalibrated)")
        target = (f"{spec.target_eval_loss:.3f}" if spec.target_eval_loss is not None
                  else f"floor+{spec.target_margin} ({spec.target_loss():.3f})")
        table.add_row(spec.name, model, f"L={m.num_layers} d={m.d_model} ff={m.d_ff}", m.dtype, spec.corpus.name,
                      f"{spec.batch_size}x{spec.seq_len}", lr, str(spec.eval_every_steps), target,
                      str(spec.max_steps), spec.sized_for)
    notes = [f"{s.name}: {s.calibration.where}" for s in workloads.values() if not s.calibration.calibrated]
    return table, notes


def regions_tables(regions: dict[str, Any], processors: dict[str, Any], default: str) -> list[Table]:
    reg = _table(f"carbon regions (default: {default})", "region", "PUE", "gross kg/kWh", "net kg/kWh", "source",
                 fold=True)
    for r in regions.values():
        reg.add_row(r.name, f"{r.pue:g}", f"{r.gross_kg_per_kwh:g}", f"{r.net_kg_per_kwh:g}", r.source)
    procs = _table("processors (for whatif --processor and the 4M machine factor)", "processor", "avg system W",
                   "energy per work (P100 = 1)", "source", fold=True)
    for p in processors.values():
        procs.add_row(p.name, f"{p.avg_system_w:g}", "—" if p.energy_per_work is None else f"{p.energy_per_work:g}",
                      p.source)
    return [reg, procs]


def meters_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("energy meters on this machine", "backend", "here", "auto", "measures", "basis", "rate",
                   "why / what", fold=True)
    for r in rows:
        if not r.get("loaded", True):
            continue  # a plugin that did not load: one line under the table (harness meters)
        origin = r.get("origin", {})
        backend = r["backend"] if origin.get("kind", "built-in") == "built-in" else \
            f"{r['backend']} (plugin {origin['distribution']} {origin['version']}: {origin['entry_point']})"
        table.add_row(backend, "yes" if r["available"] else "no", "used" if r["used_by_auto"] else "",
                      r["measures"], r["basis"], r["sample_rate"], r["reason"])
    return table


def compare_lines(entries: list[dict[str, Any]]) -> list[tuple[Any, str | None]]:
    """Each comparison's table and the lines under it, with a style for each line (None: plain)."""
    out: list[tuple[Any, str | None]] = []
    for e in entries:
        setup = f"{e['framework']}, {e['precision']}, mesh {e['mesh']}"
        table = _table(f"{e['benchmark']} ({setup}) on {e['system']}: {e['runs']} run(s) vs {e['reference_runs']} "
                       f"reference run(s) on {e['reference_system'] or 'none'}",
                       "metric", "yours", "reference", "yours / reference")
        for row in e["rows"]:
            if row["yours"] is None and row["reference"] is None:
                continue  # a figure neither side has (MFU on a CPU, accelerator power without one)
            table.add_row(row["metric"], _num(row["yours"]), _num(row["reference"]),
                          "—" if row["ratio"] is None else f"{row['ratio']:.2f}x")
        out.append((table, None))
        if e["reference_runs"] and not e["reference_on_your_system"]:
            out.append(("  no reference runs on your system: these are another system's, so times and energies "
                        "do not compare like for like (samples to target do)", "yellow"))
        out.append((f"  energy: yours {', '.join(e['energy_methods'])}; reference "
                    f"{', '.join(e['reference_energy_methods']) or '—'}", None))
        for other in e["not_compared"]:
            out.append((f"  reference runs set up otherwise, not compared: {other}", None))
        for line in e["unfinished"]:
            out.append((f"  not finished, not compared: {line}", "yellow"))
        if e["energy_incomplete"]:
            out.append((f"  not ranked on energy (incomplete figure): {', '.join(e['energy_incomplete'])}", "yellow"))
        out.append((f"  convergence: {e['convergence']['verdict']}", None))
    return out


def compare_inference_lines(entries: list[dict]) -> list[str]:
    """harness compare on inference records: each serving setup, yours beside the reference's, with ratios."""
    out = []
    for e in entries:
        head = (f"{e['model']} batch {e['batch']}, served {e['serving']}: {e['records']} record(s) against "
                f"{e['reference_records']} reference record(s)")
        out.append(head)
        if not e["reference_records"]:
            out.append("  no reference record served this way on this machine: nothing to compare")
        for row in e["rows"]:
            ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
            yours = "n/a" if row["yours"] is None else f"{row['yours']:.4g}"
            ref = "n/a" if row["reference"] is None else f"{row['reference']:.4g}"
            out.append(f"  {row['metric']}: yours {yours}, reference {ref}, ratio {ratio}")
        out.append(f"  energy: yours {', '.join(e['energy_methods'])}; reference "
                   f"{', '.join(e['reference_energy_methods']) or 'n/a'}")
        out += [f"  not valid: {x}" for x in e["not_valid"]]
    return out
