"""`harness report`: report.md and a self-contained report.html (images embedded) from runs or studies.

The report is a list of blocks (heading, paragraph, table, image) rendered twice, so the two files always say
the same thing.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from collections import Counter
from pathlib import Path

from harness.errors import UsageError
from harness.report import plots
from harness.report.stats import paired_comparison, paired_ratio_ci
from harness.results.files import atomic_write_text
from harness.results.reader import read_records, read_study
from harness.results.schema import CommandRecord, Record, RunRecord, Status

Block = tuple


def _collect(paths: list[Path]) -> tuple[dict[str, list[RunRecord]], list[dict], list[CommandRecord]]:
    """Runs grouped by workload (and corpus), the studies the paths named, and metered commands. A path is a
    campaign folder (what `harness study` prints), a study folder, a run's folder, or any folder of runs."""
    grouped: dict[str, list[RunRecord]] = {}
    studies: list[dict] = []
    commands: list[CommandRecord] = []
    study_dirs: list[Path] = []
    loose: list[Record] = []
    for path in paths:
        if (path / "campaign.json").is_file():
            study_dirs += sorted(s.parent for s in path.glob("*/study.json"))
        elif (path / "study.json").is_file():
            study_dirs.append(path)
        else:
            loose += read_records(path)
    for study_dir in study_dirs:
        study, results = read_study(study_dir)
        studies.append(study)
        for name, runs in results.items():
            grouped.setdefault(f"{name} [{study['corpus']}]", []).extend(runs)
    for r in loose:
        if isinstance(r, CommandRecord):
            commands.append(r)
            continue
        label = r.workload if r.framework == "jax" else f"{r.workload}@{r.framework}"
        grouped.setdefault(f"{label} [{r.corpus}]", []).append(r)
    return grouped, studies, commands


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def _median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _outcomes(runs: list[Record]) -> str:
    """'3: 2 converged, 1 interrupted (no final record)': every run counted, each status said."""
    counts = Counter(str(r.status) for r in runs)
    words = [f"{n} {s}" + (" (no final record)" if s == Status.INTERRUPTED else "") for s, n in counts.items()]
    return f"{len(runs)}: " + ", ".join(words)


def _summary_table(grouped: dict[str, list[RunRecord]]) -> Block:
    rows = []
    for name, runs in grouped.items():
        incomplete = sum(1 for r in runs if r.converged and r.energy_to_target_j is None)
        method = " + ".join(sorted({r.energy.method for r in runs}))
        rows.append([name, _outcomes(runs), _fmt(_median([r.time_to_target_s for r in runs])),
                     _fmt(_median([r.energy_to_target_j for r in runs])),
                     _fmt(_median([r.training.steps for r in runs if r.converged]), ".0f"),
                     _fmt(_median([r.tokens_per_j for r in runs if r.converged]), ",.0f"),
                     _fmt(_median([(r.co2e_to_target_kg or 0) * 1000 if r.co2e_to_target_kg is not None else None
                                   for r in runs]), ".4f"),
                     method + (f" ({incomplete} converged run(s) with an INCOMPLETE figure, not ranked)"
                               if incomplete else "")])
    header = ["workload [corpus]", "runs", "time to target, median (s)", "energy to target, median (J)",
              "steps, median", "tokens per J, median", "CO2e gross, median (g)", "energy method"]
    return ("table", header, rows)


def _commands_table(commands: list[CommandRecord]) -> Block:
    rows = [[c.workload, f"{c.status} (exit {c.exit_code})", _fmt(c.timing.run_s, ".2f"), _fmt(c.energy.total_j),
             _fmt(c.co2e_gross_kg * 1000 if c.co2e_gross_kg is not None else None, ".4f"), c.energy.label]
            for c in commands]
    return ("table", ["command", "status", "time (s)", "energy (J)", "CO2e gross (g)", "energy method"], rows)


def _sweep_points(grouped: dict[str, list[RunRecord]], sweep: dict) -> list[tuple[int, float, float, float]]:
    points = []
    for e in sweep["values"]:
        runs = next((v for k, v in grouped.items() if k.startswith(f"{sweep['base']}-e{e} ")), [])
        energies = [r.energy_to_target_j for r in runs if r.energy_to_target_j is not None]
        if energies:
            ci = paired_ratio_ci(energies, [1.0] * len(energies))  # ratio to 1 = the mean, with its CI
            points.append((e, ci.ratio, ci.lo, ci.hi))
    return points


def _method_caveat(methods: set[str]) -> str:
    """What a reader must know about the energy method: all of it modelled, or which part."""
    parts = {p for m in methods for p in m.split("+") if p}
    modelled = sorted(p for p in parts if p.startswith("modelled:"))
    if not modelled:
        return ""
    if len(modelled) == len(parts):
        return "This is a model of power, not a measurement. "
    return (f"Part of it is modelled, not measured: {', '.join(modelled)} "
            "(each component's method is in the runs' result.json). ")


def build_report(paths: list[Path], out_dir: Path) -> tuple[Path, Path]:
    grouped, studies, commands = _collect(paths)
    if not grouped and not commands:
        raise UsageError("no runs found in the given paths")
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[Record] = [r for runs in grouped.values() for r in runs] + list(commands)
    methods = {r.energy.method for r in records}
    method = " + ".join(sorted(methods))
    blocks: list[Block] = [("h1", "harness report"),
                           ("p", f"Energy method: **{method}**. "
                                 + _method_caveat(methods)
                                 + "Times and energies are for the MLPerf timed window (run_start..run_stop); "
                                   "init is excluded. Runs that did not converge, and converged runs whose energy "
                                   "figure is incomplete, are counted, never averaged in.")]
    if grouped:
        blocks += [("h2", "Runs"), _summary_table(grouped)]
    unfinished = [r for r in records if not r.status.final]
    if unfinished:
        blocks.append(("list", [f"{r.run_id}: {r.status_text}" for r in unfinished]))
    if commands:
        blocks += [("h2", "Metered commands (harness meter)"), _commands_table(commands)]

    comparisons = []
    for study in studies:
        labels = study["workloads"]
        names = [f"{w} [{study['corpus']}]" for w in labels]
        for label, other in zip(labels[1:], names[1:], strict=True):
            comparisons.append(paired_comparison(grouped[names[0]], grouped[other], (labels[0], label))
                               | {"corpus": study["corpus"]})
    if comparisons:
        blocks.append(("h2", "Comparisons (baseline ÷ other, paired by seed)"))
        blocks.append(("p", "Each ratio is the geometric mean of the per-seed ratios, with a 95% confidence interval: "
                            "Student's t on the per-seed log ratios below 10 seeds, a percentile bootstrap from 10 "
                            "up. With fewer than 3 seeds no difference is called."))
        for c in comparisons:
            excluded = (f"; {c['pairs_energy_incomplete']} pair(s) left out: incomplete energy figure"
                        if c.get("pairs_energy_incomplete") else "")
            blocks.append(("h3", f"{c['baseline']} ÷ {c['other']} on the {c['corpus']} corpus "
                                 f"({c['pairs_converged']}/{c['pairs_total']} seeds where both converged{excluded})"))
            verdicts = [c[k]["verdict"] for k in ("energy_to_target", "time_to_target", "steps_to_target",
                                                   "tokens_per_joule_other_over_baseline") if k in c]
            blocks.append(("list", (verdicts or [c.get("verdict", "")]) + ([c["contention"]] if "contention" in c
                                                                           else [])))
        atomic_write_text(out_dir / "comparisons.json", json.dumps(comparisons, indent=2) + "\n")

    images = [] if not grouped else [
              ("Eval loss vs energy", plots.loss_curves(grouped, "energy_j", out_dir / "loss_vs_energy.png")),
              ("Eval loss vs wall time", plots.loss_curves(grouped, "elapsed_s", out_dir / "loss_vs_time.png")),
              ("Power over time", plots.power_trace(grouped, out_dir / "power.png"))]
    routing = plots.routing(grouped, out_dir / "routing.png") if grouped else None
    if routing:
        images.append(("Switch routing: dropped tokens and expert load", routing))
    for study in studies:
        if study.get("sweep"):
            dense = next((v for v in grouped.values() if v[0].num_experts == 0), [])
            dense_energies = [r.energy_to_target_j for r in dense if r.energy_to_target_j is not None]
            dense_j = statistics.mean(dense_energies) if dense_energies else None
            points = _sweep_points(grouped, study["sweep"])
            if points:
                images.append(("Energy to target vs experts",
                               plots.sweep(points, method, dense_j, out_dir / "sweep_experts.png")))
    if images:
        blocks.append(("h2", "Figures"))
        blocks.extend(("img", title, path) for title, path in images)

    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md, _markdown(blocks))
    atomic_write_text(page, _html(blocks))
    return md, page


def _markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + b[1])
        elif kind == "p":
            out.append(b[1])
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in b[1]))
        elif kind == "table":
            _, header, rows = b
            out.append("\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                                 + ["| " + " | ".join(map(str, r)) + " |" for r in rows]))
        elif kind == "img":
            out.append(f"![{b[1]}]({Path(b[2]).name})")
    return "\n\n".join(out) + "\n"


def _html(blocks: list[Block]) -> str:
    body = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(b[1])}</{kind}>")
        elif kind == "p":
            text = html.escape(b[1])
            while "**" in text:  # the one piece of markdown the paragraphs use
                text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
            body.append(f"<p>{text}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b[1]) + "</ul>")
        elif kind == "table":
            _, header, rows = b
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(Path(b[2]).read_bytes()).decode()
            body.append(f"<figure><img alt='{html.escape(b[1])}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{html.escape(b[1])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px}"
             "img{max-width:100%}figure{margin:1.5em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>harness report</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")

