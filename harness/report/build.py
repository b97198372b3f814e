"""`harness report`: report.md and a self-contained report.html (images embedded) from runs or studies.

The report is a list of blocks (heading, paragraph, table, image) rendered twice, so the two files always say
the same thing.
"""

from __future__ import annotations

import base64
import html
import json
import statistics
from pathlib import Path

from harness.errors import UsageError
from harness.report import plots
from harness.report.stats import compare, paired_ratio_ci
from harness.results.files import atomic_write_text
from harness.results.reader import read_result, read_study

Block = tuple


def _collect(paths: list[Path]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Results grouped by workload (and corpus when several), plus the studies the paths named."""
    grouped: dict[str, list[dict]] = {}
    studies: list[dict] = []
    for path in paths:
        if (path / "study.json").is_file():
            study, results = read_study(path)
            studies.append(study)
            for name, runs in results.items():
                grouped.setdefault(f"{name} [{study['corpus']}]", []).extend(runs)
        elif (path / "result.json").is_file():
            r = read_result(path) | {"_dir": str(path)}
            corpus = r["data"].get("corpus", r["data"]["kind"])
            framework = (r["training"].get("framework") or {}).get("framework", "jax")
            label = r["workload"] if framework == "jax" else f"{r['workload']}@{framework}"
            grouped.setdefault(f"{label} [{corpus}]", []).append(r)
        else:
            raise UsageError(f"{path}: neither a run directory (result.json) nor a study directory (study.json)")
    return grouped, studies


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def _summary_table(grouped: dict[str, list[dict]]) -> Block:
    rows = []
    for name, runs in grouped.items():
        ok = [r for r in runs if r["status"] == "converged"]

        def med(get, ok=ok):
            return statistics.median(get(r) for r in ok) if ok else None

        rows.append([name, f"{len(ok)}/{len(runs)}", _fmt(med(lambda r: r["timing"]["run_s"])),
                     _fmt(med(lambda r: r["energy"]["total_j"])), _fmt(med(lambda r: r["training"]["steps"]), ".0f"),
                     _fmt(med(lambda r: r["training"]["tokens"] / r["energy"]["total_j"]), ",.0f"),
                     _fmt(med(lambda r: r["carbon"]["co2e_gross_kg"] * 1000), ".4f"), runs[0]["energy"]["method"]])
    header = ["workload [corpus]", "converged", "time to target, median (s)", "energy to target, median (J)",
              "steps, median", "tokens per J, median", "CO2e gross, median (g)", "energy method"]
    return ("table", header, rows)


def _sweep_points(grouped: dict[str, list[dict]], sweep: dict) -> list[tuple[int, float, float, float]]:
    points = []
    for e in sweep["values"]:
        runs = next((v for k, v in grouped.items() if k.startswith(f"{sweep['base']}-e{e} ")), [])
        energies = [r["energy"]["total_j"] for r in runs if r["status"] == "converged"]
        if energies:
            ci = paired_ratio_ci(energies, [1.0] * len(energies))  # ratio to 1 = the mean, with its CI
            points.append((e, ci.ratio, ci.lo, ci.hi))
    return points


def _method_caveat(method: str) -> str:
    """What a reader must know about the energy method: all of it modelled, or which part."""
    parts = method.split("+")
    modelled = [p for p in parts if p.startswith("modelled:")]
    if not modelled:
        return ""
    if len(modelled) == len(parts):
        return "This is a model of power, not a measurement. "
    return (f"Part of it is modelled, not measured: {', '.join(modelled)} "
            "(each component's method is in the runs' result.json). ")


def build_report(paths: list[Path], out_dir: Path) -> tuple[Path, Path]:
    grouped, studies = _collect(paths)
    if not grouped:
        raise UsageError("no runs found in the given paths")
    out_dir.mkdir(parents=True, exist_ok=True)
    method = next(iter(grouped.values()))[0]["energy"]["method"]
    blocks: list[Block] = [("h1", "harness report"),
                           ("p", f"Energy method: **{method}**. "
                                 + _method_caveat(method)
                                 + "Times and energies are for the MLPerf timed window (run_start..run_stop); "
                                   "init is excluded. Runs that did not converge are counted, never averaged in."),
                           ("h2", "Runs"), _summary_table(grouped)]

    comparisons = []
    for study in studies:
        labels = study["workloads"]
        names = [f"{w} [{study['corpus']}]" for w in labels]
        for label, other in zip(labels[1:], names[1:], strict=True):
            comparisons.append(compare(grouped[names[0]], grouped[other], (labels[0], label))
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
            blocks.append(("list", verdicts or [c.get("verdict", "")]))
        atomic_write_text(out_dir / "comparisons.json", json.dumps(comparisons, indent=2) + "\n")

    images = [("Eval loss vs energy", plots.loss_curves(grouped, "energy_j", out_dir / "loss_vs_energy.png")),
              ("Eval loss vs wall time", plots.loss_curves(grouped, "elapsed_s", out_dir / "loss_vs_time.png")),
              ("Power over time", plots.power_trace(grouped, out_dir / "power.png"))]
    routing = plots.routing(grouped, out_dir / "routing.png")
    if routing:
        images.append(("Switch routing: dropped tokens and expert load", routing))
    for study in studies:
        if study.get("sweep"):
            dense = [v for k, v in grouped.items() if v[0]["spec"]["model"]["num_experts"] == 0]
            dense_j = (statistics.mean(r["energy"]["total_j"] for r in dense[0] if r["status"] == "converged")
                       if dense and any(r["status"] == "converged" for r in dense[0]) else None)
            points = _sweep_points(grouped, study["sweep"])
            if points:
                images.append(("Energy to target vs experts",
                               plots.sweep(points, method, dense_j, out_dir / "sweep_experts.png")))
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

