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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UsageError
from harness.report import plots
from harness.report.stats import log_mean_ci, median, paired_comparison
from harness.results.files import atomic_write_text
from harness.results.identity import Identity, group, identity
from harness.results.inference import InferenceRecord
from harness.results.reader import read_records, read_study
from harness.results.schema import CommandRecord, Record, RunRecord, Status
from harness.results.writer import new_folder

Block = tuple


@dataclass
class Collected:
    """What the paths hold: runs by identity (one row each), the studies named with their runs by label, metered
    commands, and every record passed over with why."""

    grouped: dict[Identity, list[RunRecord]]
    studies: list[tuple[dict, dict[str, list[RunRecord]]]]
    commands: list[CommandRecord]
    skipped: list[str]
    inference: list[InferenceRecord] = field(default_factory=list)  # harness infer records: a report of their own

    def names(self) -> dict[Identity, str]:
        """How the report's table names each row: the workload with what tells it from the rows of the same
        system (the system has a column of its own)."""
        ids = list(self.grouped)
        return {i: i.label(ids) for i in ids}

    def named(self) -> dict[str, list[RunRecord]]:
        """The rows by a name unique across systems too (the figures' legends have no system column)."""
        names = self.names()
        seen = Counter(names.values())
        return {(f"{names[i]} on {i.system_text}" if seen[names[i]] > 1 else names[i]): runs
                for i, runs in self.grouped.items()}


def _collect(paths: list[Path]) -> Collected:
    """A path is a campaign folder (what `harness study` prints), a study folder, a run's folder, or any folder of
    runs. A run found twice (a study inside a folder also given) is one run."""
    studies: list[tuple[dict, dict[str, list[RunRecord]]]] = []
    study_dirs: list[Path] = []
    loose: list[Record] = []
    skipped: list[str] = []
    for path in paths:
        if (path / "campaign.json").is_file():
            study_dirs += sorted(s.parent for s in path.glob("*/study.json"))
        elif (path / "study.json").is_file():
            study_dirs.append(path)
        else:
            loose += read_records(path, skipped=skipped.append)
    for study_dir in study_dirs:
        studies.append(read_study(study_dir))
    records = [*loose, *(r for _, results in studies for runs in results.values() for r in runs)]
    unique = list({(r.source or r.run_id): r for r in records}.values())
    commands = [r for r in unique if isinstance(r, CommandRecord)]
    inference = [r for r in unique if isinstance(r, InferenceRecord)]
    return Collected(group(r for r in unique if isinstance(r, RunRecord)), studies, commands, skipped, inference)


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def _outcomes(runs: list[Record]) -> str:
    """'3: 2 converged, 1 interrupted (no final record)': every run counted, each status said."""
    counts = Counter(str(r.status) for r in runs)
    words = [f"{n} {s}" + (" (no final record)" if s == Status.INTERRUPTED else "") for s, n in counts.items()]
    return f"{len(runs)}: " + ", ".join(words)


def _summary_table(found: Collected) -> Block:
    rows = []
    for ident, name in found.names().items():
        runs = found.grouped[ident]
        methods = sorted({r.energy.method for r in runs})
        # Energy figures of one row come from one method: a figure without the accelerator's meter, or a modelled
        # one, averaged with a measured one would be neither.
        same = len(methods) == 1
        incomplete = sum(1 for r in runs if r.converged and r.energy_to_target_j is None)
        note = "" if same else " (energy methods differ between the runs: energy not averaged across them)"
        rows.append([name, ident.system_text, ident.framework, _outcomes(runs),
                     _fmt(median([r.time_to_target_s for r in runs])),
                     _fmt(median([r.energy_to_target_j for r in runs])) if same else "—",
                     _fmt(median([r.training.steps for r in runs if r.converged]), ".0f"),
                     _fmt(median([r.tokens_per_j for r in runs if r.converged]), ",.0f") if same else "—",
                     _fmt(median([(r.co2e_to_target_kg or 0) * 1000 if r.co2e_to_target_kg is not None else None
                                   for r in runs]), ".4f") if same else "—",
                     " | ".join(methods) + note + (f" ({incomplete} converged run(s) with an INCOMPLETE figure, "
                                                   "not ranked)" if incomplete else "")])
    header = ["benchmark", "system", "framework", "runs", "time to target, median (s)",
              "energy to target, median (J)", "steps, median", "tokens per J, median", "CO2e gross, median (g)",
              "energy method"]
    return ("table", header, rows)


def _commands_table(commands: list[CommandRecord]) -> Block:
    rows = [[c.workload, f"{c.status} (exit {c.exit_code})", _fmt(c.timing.run_s, ".2f"), _fmt(c.energy.total_j),
             _fmt(c.co2e_gross_kg * 1000 if c.co2e_gross_kg is not None else None, ".4f"), c.energy.label]
            for c in commands]
    return ("table", ["command", "status", "time (s)", "energy (J)", "CO2e gross (g)", "energy method"], rows)


def _sweep_points(results: dict[str, list[RunRecord]], sweep: dict) -> list[tuple[int, float, float, float]]:
    """Each expert count's energy to target: its geometric mean with the interval."""
    points = []
    for e in sweep["values"]:
        energies = [v for r in results.get(f"{sweep['base']}-e{e}", []) if (v := r.energy_to_target_j) is not None]
        if energies:
            ci = log_mean_ci(energies)
            points.append((e, ci.ratio, ci.lo, ci.hi))
    return points


def _comparisons(found: Collected) -> list[dict]:
    """Each study's baseline ÷ each other entry, on each system both ran on (a study resumed on another machine
    is never compared across the two)."""
    out = []
    for study, results in found.studies:
        labels = study["workloads"]
        for label in labels[1:]:
            base_by, other_by = (group(results[k], lambda i: i.system) for k in (labels[0], label))
            systems = [s for s in base_by if s in other_by]
            for system in systems:
                c = paired_comparison(base_by[system], other_by[system], (labels[0], label))
                out.append(c | {"corpus": study["corpus"], "system": identity(base_by[system][0]).system_text})
            for name, side in ((labels[0], base_by), (label, other_by)):
                for system in (s for s in side if s not in systems):
                    out.append({"baseline": labels[0], "other": label, "corpus": study["corpus"],
                                "system": identity(side[system][0]).system_text,
                                "verdict": f"only {name} ran on this system: nothing to compare it with"})
    return out


def _comparison_blocks(comparisons: list[dict]) -> list[Block]:
    blocks: list[Block] = [
        ("h2", "Comparisons (baseline ÷ other, paired by seed)"),
        ("p", "Each ratio is the geometric mean of the per-seed ratios over the seeds both sides ran once and "
              "converged on with a complete energy figure, with a 95% confidence interval: Student's t on the "
              "per-seed log ratios below 10 seeds, a percentile bootstrap from 10 up. A seed only one side has is "
              "left out and named; where a seed ran twice on a side, every run counts and the sides are compared "
              "unpaired (Welch's t on the log values). With fewer than 3 seeds no difference is called.")]
    several = len({c["system"] for c in comparisons}) > 1
    for c in comparisons:
        where = f" on {c['system']}" if several else ""
        seeds = (f" ({c['pairs_converged']}/{c['pairs_total']} seeds paired)" if c.get("paired")
                 else " (unpaired)" if "pairing" in c else "")
        blocks.append(("h3", f"{c['baseline']} ÷ {c['other']} on the {c['corpus']} corpus{where}{seeds}"))
        verdicts = [c[k]["verdict"] for k in ("energy_to_target", "time_to_target", "steps_to_target",
                                               "tokens_per_joule_other_over_baseline") if k in c]
        said = [c["pairing"]] if c.get("pairing") else []
        said += [f"not ranked: incomplete energy figure: {', '.join(c['energy_incomplete'])}"] if c.get(
            "energy_incomplete") else []
        said += [f"did not converge: {', '.join(c['not_converged'])}"] if c.get("not_converged") else []
        blocks.append(("list", (verdicts or [c.get("verdict", "")]) + said
                       + ([c["contention"]] if "contention" in c else [])))
    return blocks


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


class NoRunsFound(UsageError):
    """No training run and no metered command among the paths (the CLI then looks for inference records)."""


def build_report(paths: list[Path], out_dir: Path | None, root: Path | None = None,
                 say: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """report.md and report.html into `out_dir` (None: a new folder <utc>-report-<id> under `root`, so that a report
    is never written into the folders it reads, which may be a checkout's). Every record passed over is told to
    `say` and listed in the report."""
    found = _collect(paths)
    for line in found.skipped if say is not None else ():
        say(line)
    if not found.grouped and not found.commands:
        raise NoRunsFound("no runs found in the given paths" + (f" ({'; '.join(found.skipped)})"
                                                                 if found.skipped else ""))
    out_dir = new_folder(root or Path("results"), "report") if out_dir is None else out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[Record] = [r for runs in found.grouped.values() for r in runs] + list(found.commands)
    methods = {r.energy.method for r in records}
    method = " + ".join(sorted(methods))
    blocks: list[Block] = [("h1", "harness report"),
                           ("p", f"Energy method: **{method}**. "
                                 + _method_caveat(methods)
                                 + "Times and energies are for the MLPerf timed window (run_start..run_stop); "
                                   "init is excluded. One row is one benchmark (workload, spec, data, framework, "
                                   "precision, mesh) on one system: runs of different systems or setups are never "
                                   "averaged together. Runs that did not converge, and converged runs whose energy "
                                   "figure is incomplete, are counted, never averaged in.")]
    if found.grouped:
        blocks += [("h2", "Runs"), _summary_table(found)]
    unfinished = [r for r in records if not r.status.final]
    if unfinished:
        blocks.append(("list", [f"{r.run_id}: {r.status_text}" for r in unfinished]))
    if found.skipped:
        blocks += [("h2", "Not in the report"), ("list", found.skipped)]
    if found.commands:
        blocks += [("h2", "Metered commands (harness meter)"), _commands_table(found.commands)]
    if found.inference:
        from harness.report.serving_report import serving_report

        serving = serving_report(found.inference, out_dir / "serving", [r for rs in found.grouped.values() for r in rs])
        blocks += [("h2", "Serving (harness infer)"),
                   ("p", f"{len(found.inference)} inference record(s), one table a way of serving, with training plus "
                         f"serving where their runs are here: {serving.relative_to(out_dir)}")]

    comparisons = _comparisons(found)
    if comparisons:
        blocks += _comparison_blocks(comparisons)
        atomic_write_text(out_dir / "comparisons.json", json.dumps(comparisons, indent=2) + "\n")

    named = found.named()
    images = [] if not named else [
              ("Eval loss vs energy", plots.loss_curves(named, "energy_j", out_dir / "loss_vs_energy.png")),
              ("Eval loss vs wall time", plots.loss_curves(named, "elapsed_s", out_dir / "loss_vs_time.png")),
              ("Power over time", plots.power_trace(named, out_dir / "power.png"))]
    routing = plots.routing(named, out_dir / "routing.png") if named else None
    if routing:
        images.append(("Switch routing: dropped tokens and expert load", routing))
    for study, results in found.studies:
        if study.get("sweep"):
            dense = next((v for v in results.values() if v and v[0].num_experts == 0), [])
            dense_energies = [r.energy_to_target_j for r in dense if r.energy_to_target_j is not None]
            dense_j = statistics.mean(dense_energies) if dense_energies else None
            points = _sweep_points(results, study["sweep"])
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

