"""What `harness run`, `meter`, `import-power` and the studies print about a record: the summary table of a
run, and one-line accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.results.schema import CommandRecord, Record, RunRecord

if TYPE_CHECKING:  # rich is loaded where a table is made: `harness meter` prints lines and starts faster
    from rich.table import Table


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:{spec}}{unit}"


def efficiency_lines(r: RunRecord) -> list[tuple[str, str]]:
    """Rows for the efficiency figures: MFU (or why not), per-joule figures, accelerator power."""
    w = r.work
    if w is None:
        return []
    if r.mfu is not None:
        peak = w.peak or {}
        mfu = (f"{100 * r.mfu:.1f} % of {w.peak_flops_per_s / 1e12:,.0f} TFLOP/s "
               f"({peak.get('precision')} peak, {peak.get('matched')})")
    else:
        mfu = f"— ({r.mfu_reason})"
    window = "" if w.window in (None, "run_start..run_stop") else f" (over {w.window}, the last synchronised point)"
    rows = [("model FLOP/s", _fmt(r.model_flops_per_s, ".3e") + f"   MFU {mfu}{window}, of activated FLOPs"),
            ("tokens / J, FLOPs / J", f"{_fmt(r.tokens_per_j, ',.1f')} tokens/J, "
             f"{_fmt(r.model_flops_per_j, '.3e')} FLOPs/J, {_fmt(r.j_per_token, '.3e', ' J/token')}")]
    acc = r.accelerators
    if acc:
        limit = (f" of a {acc.power_limit_w:.0f} W limit ({_fmt(acc.avg_fraction_of_limit, '.0%')} avg, "
                 f"{_fmt(acc.peak_fraction_of_limit, '.0%')} peak)" if acc.power_limit_w else "")
        rows.append(("  accelerators alone", f"{_fmt(acc.tokens_per_j, ',.1f')} tokens/J, "
                     f"{_fmt(acc.model_flops_per_j, '.3e')} FLOPs/J; avg {_fmt(acc.avg_w, '.0f', ' W')}, "
                     f"peak {_fmt(acc.peak_w, '.0f', ' W')}{limit}   method: {acc.method}"))
    return rows


def run_summary(r: RunRecord, result_path: str) -> Table:
    from rich.table import Table

    t, tr, en = r.timing, r.training, r.energy
    status = r.status
    error = f" ({r.error})" if r.error and not r.converged else ""
    table = Table(title=f"{r.workload}  seed {r.seed}  status: {str(status).upper()}{error}",
                  title_justify="left", show_header=False, show_edge=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    target = r.target
    text = r.data.get("kind") == "text"
    table.add_row("target", f"eval loss <= {target.target_loss:.4f} nats/{'byte' if text else 'token'}"
                  + (f" (entropy floor {target.entropy_floor:.4f})" if target.entropy_floor else "")
                  + (" of held-out text (real text: no known floor)" if text else ""))
    table.add_row("best eval loss", _fmt(r.best_eval_loss, ".4f"))
    ttq = "time to target" if r.converged else f"timed run ({status}: target NOT reached)"
    table.add_row(ttq, _fmt(t.run_s, ".1f", " s") + f"   (init, untimed: {_fmt(t.init_s, '.1f', ' s')})")
    table.add_row("steps / tokens", f"{tr.steps} / {tr.tokens:,}")
    table.add_row("train FLOPs", _fmt(tr.train_flops, ".3e") + "   (activated)" + (
        f"; executed / activated {tr.executed_over_activated:.3f} ({tr.framework.get('switch_routing', 'dense')})"
        if tr.executed_over_activated else ""))
    table.add_row("params total / activated", f"{tr.params_total:,} / {tr.params_activated:,}"
                  if tr.params_total else "—")
    if tr.dropped_fraction_mean is not None:
        table.add_row("dropped tokens (mean)", f"{100 * tr.dropped_fraction_mean:.2f} %")
    table.add_row("energy, timed window", _fmt(en.total_j, ",.1f", " J") + f"   method: {en.method}")
    if not en.complete:
        table.add_row("energy figure", "INCOMPLETE, not a valid result: " + "; ".join(en.incomplete_reasons),
                      style="bold red")
    for key, comp in en.components.items():
        table.add_row(f"  {key}", _fmt(comp.joules, ",.1f", " J") + f", avg {_fmt(comp.avg_watts, '.1f', ' W')}"
                      + f"   method: {comp.method}")
    for c in en.cross_checks:
        pct = c["disagreement_pct"]
        a, b = (f"{_fmt(x['joules'], ',.1f', ' J')} ({x['figure']})" for x in (c["a"], c["b"]))
        table.add_row(f"  cross-check {c['what']}", f"{a} vs {b}: " + ("n/a" if pct is None else f"{pct:+.2f} %"))
    table.add_row("energy, init (apart)", _fmt(en.init_j, ",.1f", " J"))
    if en.contention is not None:
        c = en.contention
        table.add_row("CPU time, window", f"run {c.own_cpu_s:.1f} s, other processes {c.others_cpu_s:.1f} s of "
                      f"{c.seconds * c.cpus:.1f} CPU-s ({100 * (c.others_share or 0):.0f} %)"
                      + ("   CONTENDED: a CPU meter charges their work to the run" if c.flagged else ""),
                      style="yellow" if c.flagged else None)
    for u in en.unavailable:
        table.add_row(f"  not used: {u['name']}", u["reason"])
    for line in efficiency_lines(r):
        table.add_row(*line)
    fp = r.footprint
    if fp:
        table.add_row("facility energy", f"{fp.facility_kwh * 1000:.4f} Wh (PUE {fp.pue})")
        table.add_row("CO2e gross / net", f"{fp.co2e_gross_kg * 1000:.4f} g / {fp.co2e_net_kg * 1000:.4f} g"
                      f"   (region {fp.region}: {fp.gross_kg_per_kwh} / {fp.net_kg_per_kwh} kg/kWh)")
    table.add_row("eval set sha256", str(r.data["eval_sha256"])[:16] + "…")
    for name, why in r.files_missing.items():
        table.add_row(f"  NOT WRITTEN: {name}", why, style="bold red")
    table.add_row("result", result_path)
    return table


def run_line(r: RunRecord) -> str:
    """One line a run, as a set or a study goes: status, time, energy with its method."""
    fw = f" ({r.framework})" if r.framework != "jax" else ""
    return (f"{r.workload}{fw} seed {r.seed}: {r.status_text}, {_fmt(r.timing.run_s, '.1f', ' s')}, "
            f"{_fmt(r.energy.total_j, ',.1f', ' J')} ({r.energy.label})")


def plan_lines(opts: Any, p: Any) -> list[tuple[str, str | None]]:
    """What `harness run` is about to do, before it does it (line, style)."""
    where = p.placement
    process = f"process {where.process}/{where.processes}: " if where.processes > 1 else ""
    mesh = f"mesh {where.mesh} on {len(where.devices)} {where.devices[0].kind}; " if where.mesh else ""
    pricing = p.pricing
    lines = [(f"{process}[bold]{p.spec.name}[/] seed {opts.seed}: target eval loss {p.target_loss:.4f}, up to "
              f"{p.max_steps} steps; {mesh}meters: {', '.join(m.method for m in p.meters) or 'none here'}; "
              f"carbon: region {pricing.region} (PUE {pricing.pue:g}, {pricing.gross_kg_per_kwh:g} kgCO2e/kWh)", None)]
    lines += [(f"  note: {note}", "yellow") for note in where.notes]
    return lines  # meters not used are said once, in the summary table beside the energy they explain


def import_lines(r: Record) -> list[str]:
    """What `harness import-power` did: the node energy, and the component meters against it."""
    e, node = r.energy, r.energy.external_import or {}
    hz = "n/a" if node.get("achieved_hz") is None else f"{node['achieved_hz']:.2f}"
    co2 = r.co2e_gross_kg
    lines = [f"node energy {e.total_j:,.1f} J over {node['seconds']:.1f} s ({node['mean_w']:.1f} W mean, "
             f"{node['samples_in_window']} samples, {hz} Hz, {e.method}); CO2e re-priced: "
             f"{_fmt(co2 * 1000 if co2 is not None else None, '.4f', ' g')} gross; every figure per joule follows"]
    for c in e.cross_checks:
        if c["what"] == "node vs components" and c["disagreement_pct"] is not None:
            lines.append(f"  device meters {c['b']['joules']:.1f} J = node {c['disagreement_pct']:+.1f} %")
    session = node.get("session")
    if session:  # an MLPerf Power session: its testing run is the figure above, the ranging run's is only shown
        t, g = node["testing"], node["ranging"]
        pct = node.get("testing_vs_ranging_pct")
        lines += [f"  session {session['name']}: analyzer {session['analyzer']} on PTDaemon "
                  f"{session['ptdaemon_version']}; MLPerf's checks that its files show passed",
                  f"  testing run (run_1) over LoadGen's power window: {_fmt(t['mean_w'], '.2f', ' W')} mean, "
                  f"{t['joules']:,.1f} J in {t['seconds']:.1f} s",
                  f"  ranging run, apart (never scored): {_fmt(g['mean_w'], '.2f', ' W')} mean, {g['joules']:,.1f} J "
                  f"in {g['seconds']:.1f} s; testing {_fmt(pct, '+.1f', ' %')} against it"]
        lines += [f"  warning: {w}" for w in e.warnings if w.startswith("PTDaemon")]
    return lines


def command_lines(r: CommandRecord, path: Any) -> list[str]:
    """What `harness meter` measured, for stderr (the command's own output stays its own)."""
    e = r.energy
    fp = r.footprint
    co2 = f", CO2e {fp.co2e_gross_kg * 1000:.4f} g gross (region {fp.region})" if fp else ""
    lines = [f"{r.workload} {r.status} (exit {r.exit_code}) in {r.timing.run_s:.2f} s: "
             f"{_fmt(e.total_j, ',.1f', ' J')} ({e.method}){co2}", f"record: {path}"]
    if not e.complete:
        lines.append("energy figure INCOMPLETE: " + "; ".join(e.incomplete_reasons))
    if e.contention is not None and e.contention.flagged:
        lines.append(f"contention: {e.contention.note()}")
    if r.files_missing:
        lines.append(f"NOT WRITTEN: {', '.join(r.files_missing)} ({'; '.join(sorted(set(r.files_missing.values())))})")
    return lines
