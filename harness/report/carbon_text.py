"""Text and tables for the carbon commands (footprint, whatif, schedule): presentation only, no arithmetic."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table


def _vs(computed: float, published: float | None, diff: float | None, fmt: str) -> str:
    text = f"{computed:{fmt}}"
    return text if published is None else f"{text} vs {published:g} ({diff:+.1f}%)"


def paper_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Patterson et al. 2021 recomputed (kWh = h x chips x W x PUE / 1000): computed vs published")
    for col in ("run", "chips x proc", "days", "W", "PUE", "MWh", "gross tCO2e", "net tCO2e"):
        table.add_column(col, overflow="fold")
    for r in rows:
        c, pub, d = r["computed"], r["published"], r["diff_pct"]
        table.add_row(r["run"], f"{r['chips']:g} x {r['processor']}", f"{r['days']:g}", f"{r['watts_per_chip']:g}",
                      f"{r['pue']:g}", _vs(c["mwh"], pub["mwh"], d["mwh"], ",.4g"),
                      _vs(c["gross_t"], pub["gross_t"], d["gross_t"], ",.3f"),
                      _vs(c["net_t"], pub["net_t"], d["net_t"], ",.3f"))
    return table


def four_m_lines(f) -> list[str]:
    lines = [f"  {name:13s} {getattr(f, name):8.2f}x  {f.labels[name]}"
             for name in ("model", "machine", "mechanization", "map")]
    lines.append(f"  product       {f.product:8.2f}x  (directly: {f.before_kg:,.4g} kg / {f.after_kg:,.4g} kg = "
                 f"{f.total:.2f}x)")
    return lines


def footprint_lines(out: dict[str, Any]) -> list[str]:
    lines = list(out["formula"])
    lines.append(f"energy {out['mwh']:,.3f} MWh; CO2e gross {out['gross_tco2e']:,.4f} t, net {out['net_tco2e']:,.4f} t "
                 f"({out['inputs']['intensity_source']})")
    if "embodied" in out:
        e = out["embodied"]
        lines.append(f"embodied (estimate, apart): {e['kg_co2e']:,.1f} kg CO2e = {e['kg_per_chip_year']:g} kg per "
                     f"chip-year x {e['chip_hours']:,.0f} chip-hours / 8766 h ({e['source']})")
    return lines


def whatif_lines(outs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for o in outs:
        m, rp = o["measured"], o["repriced"]
        was = m["carbon"] or {}
        before = "n/a" if was.get("co2e_gross_kg") is None else f"{was['co2e_gross_kg'] * 1000:.4f} g"
        lines.append(f"{o['workload']} {o['run_id']} ({o['status']}): {m['energy_j']:,.1f} J ({m['method_word']}: "
                     f"{m['method']}); CO2e gross {before} in {was.get('region')} -> "
                     f"{rp['co2e_gross_kg'] * 1000:.4f} g ({rp['label']})")
        lines += [f"  note: {c}" for c in o["caveats"]]
        if "processor" in o:
            lines.append(f"  {o['processor']['label']}")
    return lines


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def schedule_lines(plan) -> list[str]:
    b, base = plan.best, plan.baseline
    lines = [f"best: {b.region} starting {_when(b.start_unix_s)}: {b.co2e_kg:,.3f} kg CO2e for {b.energy_kwh:,.2f} kWh",
             f"now in {base.region} ({_when(base.start_unix_s)}): {base.co2e_kg:,.3f} kg; saving {plan.saving_kg:,.3f} "
             f"kg ({plan.saving_pct:.1f} %) over {plan.candidates} windows considered"]
    lines += [f"  best in {w.region}: {_when(w.start_unix_s)}, {w.co2e_kg:,.3f} kg" for w in plan.per_region_best]
    return lines
