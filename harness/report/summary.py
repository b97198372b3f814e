"""The final summary table of one run, printed by `harness run`."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:{spec}}{unit}"


def efficiency_lines(eff: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Rows for the efficiency figures: MFU (or why not), per-joule figures, accelerator power."""
    if not eff:
        return []
    mfu = (f"{100 * eff['mfu']:.1f} % of {eff['peak_flops_per_s'] / 1e12:,.0f} TFLOP/s "
           f"({eff['peak']['precision']} peak, {eff['peak']['matched']})" if eff["mfu"] is not None
           else f"— ({eff['mfu_reason']})")
    rows = [("model FLOP/s", _fmt(eff["model_flops_per_s"], ".3e") + f"   MFU {mfu}"),
            ("tokens / J, FLOPs / J", f"{_fmt(eff['tokens_per_j'], ',.1f')} tokens/J, "
             f"{_fmt(eff['model_flops_per_j'], '.3e')} FLOPs/J, {_fmt(eff['j_per_token'], '.3e', ' J/token')}")]
    acc = eff.get("accelerators")
    if acc:
        limit = (f" of a {acc['power_limit_w']:.0f} W limit ({_fmt(acc['avg_fraction_of_limit'], '.0%')} avg, "
                 f"{_fmt(acc['peak_fraction_of_limit'], '.0%')} peak)" if acc["power_limit_w"] else "")
        rows.append(("  accelerators alone", f"{_fmt(acc['tokens_per_j'], ',.1f')} tokens/J, "
                     f"{_fmt(acc['model_flops_per_j'], '.3e')} FLOPs/J; avg {_fmt(acc['avg_w'], '.0f', ' W')}, "
                     f"peak {_fmt(acc['peak_w'], '.0f', ' W')}{limit}   method: {acc['method']}"))
    return rows


def run_summary(result: dict[str, Any], result_path: str) -> Table:
    t, tr, en, co = result["timing"], result["training"], result["energy"], result["carbon"] or {}
    status = result["status"]
    error = f" ({result['error']})" if result.get("error") and status != "converged" else ""
    table = Table(title=f"{result['workload']}  seed {result['seed']}  status: {status.upper()}{error}",
                  title_justify="left", show_header=False, show_edge=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    target = result["target"]
    table.add_row("target", f"eval loss <= {target['target_loss']:.4f} nats/token"
                  + (f" (entropy floor {target['entropy_floor']:.4f})" if target["entropy_floor"] else ""))
    table.add_row("best eval loss", _fmt(tr["best_eval_loss"], ".4f"))
    ttq = "time to target" if status == "converged" else f"timed run ({status}: target NOT reached)"
    table.add_row(ttq, _fmt(t["run_s"], ".1f", " s") + f"   (init, untimed: {_fmt(t['init_s'], '.1f', ' s')})")
    table.add_row("steps / tokens", f"{tr['steps']} / {tr['tokens']:,}")
    table.add_row("train FLOPs", _fmt(tr["train_flops"], ".3e"))
    table.add_row("params total / activated", f"{tr['params_total']:,} / {tr['params_activated']:,}"
                  if tr["params_total"] else "—")
    if tr["dropped_fraction_mean"] is not None:
        table.add_row("dropped tokens (mean)", f"{100 * tr['dropped_fraction_mean']:.2f} %")
    table.add_row("energy, timed window", _fmt(en["total_j"], ",.1f", " J") + f"   method: {en['method']}")
    if not en.get("complete", True):
        table.add_row("energy figure", "INCOMPLETE, not a valid result: " + "; ".join(en.get("incomplete_reasons", [])),
                      style="bold red")
    for key, comp in en["components"].items():
        table.add_row(f"  {key}", _fmt(comp["joules"], ",.1f", " J") + f", avg {_fmt(comp['avg_watts'], '.1f', ' W')}"
                      + f"   method: {comp['method']}")
    for c in en.get("cross_checks", []):
        pct = c["disagreement_pct"]
        a, b = (f"{_fmt(x['joules'], ',.1f', ' J')} ({x['figure']})" for x in (c["a"], c["b"]))
        table.add_row(f"  cross-check {c['what']}", f"{a} vs {b}: " + ("n/a" if pct is None else f"{pct:+.2f} %"))
    table.add_row("energy, init (apart)", _fmt(en["init_j"], ",.1f", " J"))
    for u in en["unavailable"]:
        table.add_row(f"  not used: {u['name']}", u["reason"])
    for line in efficiency_lines(result.get("efficiency")):
        table.add_row(*line)
    if co:
        table.add_row("facility energy", f"{co['facility_kwh'] * 1000:.4f} Wh (PUE {co['pue']})")
        table.add_row("CO2e gross / net", f"{co['co2e_gross_kg'] * 1000:.4f} g / {co['co2e_net_kg'] * 1000:.4f} g"
                      f"   (region {co['region']}: {co['gross_kg_per_kwh']} / {co['net_kg_per_kwh']} kg/kWh)")
    table.add_row("eval set sha256", result["data"]["eval_sha256"][:16] + "…")
    table.add_row("result", result_path)
    return table
