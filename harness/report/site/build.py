"""`harness site DIR... [--output-dir site]`: a static results site across packages, sets, campaigns and runs.

    site/index.html                      dense versus sparse and the chart first, then the results table
                                         (sortable, filtered, in its own scrolling box), claims, study reports
    site/summary.csv, summary.json       what the table shows, MLCommons' summarizer column names where they match
    site/systems/<slug>/index.html       a system: its description, each run's charts and files with SHA-256
    site/systems/<slug>/runs/<run>/      the run's result.json, :::MLLOG and power logs, power.csv, charts
    site/reports/<slug>/                 study reports found among the folders (report.html and its figures)

It works from file:// and any static host: nothing is fetched at view time, every page loads only what lies in
its own folder. Files are copied only from inside the folders given.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.report.site import pages, svg
from harness.report.site.collect import Collected, SiteRun, collect, inside, slug
from harness.report.site.pages import badge, cell, esc, fmt
from harness.report.site.rows import Pair, Row, dense_sparse_pairs, rows_of, summary_rows
from harness.results.files import PACKED_SUFFIX, atomic_write_text, check_writable, sha256_file
from harness.results.inference import ServingKey

MAX_TRACE_POINTS = 400  # a power trace on a run's page: enough to see it, few enough to stay small


def build_site(paths: list[Path], out: Path, check: bool = True, say: Callable[[str], None] | None = None) -> Path:
    """Build the site into `out`; returns its index.html. Every record passed over is told to `say` and listed on
    the index page ("Not in the site")."""
    for p in paths:
        if not Path(p).is_dir():
            raise UsageError(f"{p}: not a directory (give packages, --runs sets, study campaigns or folders of runs)")
        if Path(out).resolve().is_relative_to(Path(p).resolve()):
            raise UsageError(f"--output-dir {out} lies inside {p}: give a folder outside the ones the site reads")
    check_writable(Path(out), "--output-dir")
    found = collect([Path(p) for p in paths], check=check)
    if not found.runs and not found.inference:
        raise UsageError(f"no training runs or inference records (result.json) found under {', '.join(map(str, paths))}"
                         + (f" ({'; '.join(found.skipped)})" if found.skipped else ""))
    for line in found.skipped if say is not None else ():
        say(line)
    rows = rows_of(found.runs)
    links = {r.record.run_id: f"systems/{r.system.slug}/index.html#run-{slug(r.record.run_id)}" for r in found.runs}
    reports = _copy_reports(found, out)
    summary = summary_rows(rows)
    _write_summary(out, summary)
    for system_rows in _by_system(rows).values():
        _system_page(out / "systems" / system_rows[0].system.slug, system_rows)
    index = out / "index.html"
    atomic_write_text(index, _index(found, rows, summary, dense_sparse_pairs(rows), links, reports))
    return index


def _by_system(rows: list[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.system.key, []).append(row)
    return grouped


# -- the index ----------------------------------------------------------------------------------------------


HEADERS = ("System", "Workload", "Energy to target (J)", "Time to target (s)", "Energy method", "Runs",
           "Accelerator", "Host CPU", "Framework, precision", "Model", "Tokens/J, node", "Tokens/J, accelerators",
           "FLOPs/J, node", "FLOPs/J, accelerators", "MFU", "CO2e to target (g)", "harness check")


def _row_html(row: Row, s: dict[str, Any]) -> str:
    """A results row, its cells in HEADERS' order; `s` is the row's summary (summary_rows), so that the page shows
    what summary.csv holds."""
    status, problems = row.check
    attrs = (f'data-workload="{esc(row.benchmark)}" data-accelerator="{esc(row.accelerator)}" '
             f'data-framework="{esc(row.framework)}" data-method="{esc(row.method)}"')
    time, energy = row.scored(lambda r: r.time_to_target_s), row.energy_scored()
    cells = [
        cell(f'<a href="systems/{row.system.slug}/index.html">{esc(row.system.title)}</a>', raw=True),
        cell(row.benchmark),
        cell(f'<span title="{esc(energy.how)}">{fmt(energy.value)}</span>', energy.value, numeric=True, raw=True),
        cell(f'<span title="{esc(time.how)}">{fmt(time.value)}</span>', time.value, numeric=True, raw=True),
        cell(f'<span title="{esc("; ".join(row.methods))}">{badge(row.method)}</span>', raw=True),
        cell(f"{len(row.converged)} of {len(row.runs)} converged", len(row.runs), numeric=True),
        cell(row.accelerator), cell(row.host_cpu), cell(f"{row.framework_text}, {row.precision}"), cell(row.model),
        cell(fmt(s["tokens_per_j"]), s["tokens_per_j"], numeric=True),
        cell(fmt(s["accelerator_tokens_per_j"]), s["accelerator_tokens_per_j"], numeric=True),
        cell(fmt(s["model_flops_per_j"]), s["model_flops_per_j"], numeric=True),
        cell(fmt(s["accelerator_model_flops_per_j"]), s["accelerator_model_flops_per_j"], numeric=True),
        cell(fmt(s["mfu"], ".1%") if s["mfu"] is not None else "—", s["mfu"], numeric=True),
        cell(f"{fmt(s['co2e_gross_g'])} ({esc(s['region'])})", s["co2e_gross_g"], numeric=True, raw=True),
        cell(f'<span class="{status.replace(" ", "-")}" title="{esc("; ".join(problems[:5]))}">{esc(status)}'
             + (f" ({len(problems)})" if problems else "") + "</span>", raw=True),
    ]
    return f"<tr {attrs}>" + "".join(cells) + "</tr>"


def _index(found: Collected, rows: list[Row], summary: list[dict[str, Any]], pairs: list[Pair],
           links: dict[str, str], reports: list[tuple[str, str]]) -> str:
    """The first screen holds what a reader came for, dense ÷ sparse per system and the chart, side by side (one
    above the other on a narrow screen); the results table follows in its own scrolling box, then claims and
    study reports."""
    points = [(f"{row.benchmark}, {row.system.title}", row.scored(lambda r: r.time_to_target_s).value,
               row.energy_scored().value, row.method) for row in rows]
    points = [p for p in points if p[1] and p[2]]
    body = [
        "<header><h1>Energy to train: results</h1>",
        f"<p>{len(found.runs)} runs of {len(rows)} system-workload pairs, from {len(found.sources)} folders. Time and "
        "energy to target are MLPerf's olympic score from 3 runs up (the median below that, said so), for the "
        "timed window; every energy figure carries its method, and an incomplete one is never ranked. "
        '<a href="summary.csv">summary.csv</a> · <a href="summary.json">summary.json</a></p>',
        '<nav><a href="#sparse">Dense vs sparse</a> · <a href="#chart">Chart</a> · <a href="#results">Results</a> · '
        '<a href="#claims">Claims</a> · <a href="#reports">Study reports</a></nav></header>',
        '<div class="first">',
        '<section id="sparse"><h2>Dense versus sparse, per system</h2>',
        "<p>Dense ÷ sparse energy to target on one system: the geometric mean of the per-seed ratios and its 95 % "
        "interval: paired by seed (the same seed once on each side; a run without a partner seed is left out), or "
        "Welch's on the log values of every run where a seed was run twice; one energy method on both sides.</p>",
        pages.table(("System", "Pair", "Dense ÷ sparse energy", "95 % interval", "How"), (_pair_html(p) for p in pairs),
                    box=True)
        if pairs else '<p class="muted">No system ran both of a pair.</p>',
        "</section>",
        '<section id="chart"><h2>Time to target against energy to target</h2>',
        "<p>One point a system and workload, log axes; the marker says how the energy was obtained.</p>",
        svg.scatter(points, "Time to target vs energy to target", "time to target (s)",
                    "energy to target (J)") if points else "<p class=\"muted\">No run reached its target.</p>",
        "</section>",
        "</div>",
        '<section id="results"><h2>Results</h2>',
        pages.filters([r.benchmark for r in rows], [r.accelerator for r in rows], [r.framework for r in rows]),
        pages.table(HEADERS, (_row_html(row, s) for row, s in zip(rows, summary, strict=True)), "results-table",
                    sortable=True, box=True),
        f'<p id="shown" class="muted">{len(rows)} rows</p></section>',
        '<section id="inference"><h2>Inference: energy per generated token</h2>', _inference_html(found),
        "</section>",
        '<section id="claims"><h2>Claims</h2>', _claims_html(found, links), "</section>",
        '<section id="reports"><h2>Study reports</h2>',
        pages.listing(f'<a href="{esc(href)}">{esc(name)}</a>' for name, href in reports), "</section>",
    ]
    if found.skipped:
        body.append("<section><h2>Not in the site</h2>" + pages.listing(esc(s) for s in found.skipped) + "</section>")
    return pages.page("harness results", body, script=True)


INFERENCE_HEADERS = ("System", "Model", "Trained on", "Scenario", "Batch", "Tokens/s", "J/token", "p99 TPOT (ms)",
                     "Energy", "LoadGen", "Quality", "Check")


def _inference_html(found: Collected) -> str:
    """One row per `harness infer` record: what was served how, its J/token with the method's badge, LoadGen's
    verdict and whether the served quality held."""
    if not found.inference:
        return '<p class="muted">No inference records (harness infer) among the folders.</p>'
    rows = []
    keyed = sorted(((ServingKey.of(r), r, source) for r, source in found.inference),
                   key=lambda x: (x[0].model, x[0].trained_corpus, x[0].scenario, x[0].batch, x[1].created_unix_s))
    for key, r, source in keyed:
        s, lg, a = r.serving, r.loadgen, r.accuracy
        tpot = (r.traffic.latency_ms.get("tpot") or {}).get("p99")
        check = "not checked" if source.check is None else ("passes" if not source.check else "FAILS")
        rows.append("<tr>" + "".join([
            pages.cell(key.system), pages.cell(key.model), pages.cell(key.trained_corpus), pages.cell(s.scenario),
            pages.cell(str(s.batch), s.batch, numeric=True),
            pages.cell(fmt(r.tokens_per_s), r.tokens_per_s, numeric=True),
            pages.cell(fmt(r.j_per_token), r.j_per_token, numeric=True),
            pages.cell(fmt(tpot), tpot, numeric=True),
            pages.cell(f'<span title="{esc(r.energy.label)}">{badge(_word(r))}</span>', raw=True),
            pages.cell("not finished" if lg is None else lg.validity + (f" ({', '.join(lg.failed)})" if lg.failed
                                                                         else "")),
            pages.cell("not measured" if a is None else ("holds" if a.meets_target else "MISSED")),
            pages.cell(check)]) + "</tr>")
    return ("<p>Each trained model served under MLPerf LoadGen; J/token is the window's energy over the tokens it "
            "generated, with the method of the energy. A run shorter than MLPerf's 600 s is a measurement, not a "
            "submission.</p>" + pages.table(INFERENCE_HEADERS, rows, "inference-table", sortable=True, box=True)
            + _servings_html(found))


def _servings_html(found: Collected) -> str:
    """One table a way of serving and sitting (harness/report/serving_report.py `serving_groups`, as `harness
    report` groups them): each model's median J/token per batch, the first model ÷ each other paired by trained
    seed, the quality, and training plus serving where the served runs are among the folders."""
    from harness.report.serving_report import serving_groups
    from harness.report.serving_summary import summarise

    groups, skipped = serving_groups([r for r, _ in found.inference])
    trained = {run.record.run_id: run.record for run in found.runs}
    parts = []
    for i, (title, keyed) in enumerate(groups.items(), 1):
        labels = sorted({k.split("/")[0] for k in keyed}, key=lambda m: ("(" in m, m))  # dense first
        runs = {m: list({r.serving.run_id: trained[r.serving.run_id] for k, r in keyed.items()
                         if k.startswith(f"{m}/") and r.serving.run_id in trained}.values()) for m in labels}
        summary = summarise(labels, sorted({r.serving.batch for r in keyed.values()}),
                            {m: rs for m, rs in runs.items() if rs}, keyed, [])
        base, others = labels[0], labels[1:]
        rows = []
        for row in summary["rows"]:
            models = row["models"]
            cells = [pages.cell(str(row["batch"]), row["batch"], numeric=True)]
            for m in labels:
                j = (models.get(m) or {}).get("median_j_per_token")
                cells.append(pages.cell(fmt(j), j, numeric=True))
            for m in others:
                ci = (row.get("ratios") or {}).get(f"{base}/{m}")
                cells.append(pages.cell("—" if not ci else f"{ci['ratio']:.2f}x [{ci['lo']:.2f}, {ci['hi']:.2f}]"))
            cells.append(pages.cell(" / ".join(("holds" if all(models[m]["quality_holds"]) else "MISSED")
                                               if m in models else "—" for m in labels)))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        headers = ("Batch", *(f"{m} J/token" for m in labels), *(f"{base} ÷ {m}" for m in others),
                   "Quality (" + " / ".join(labels) + ")")
        lifetime = "".join(f"<li>batch {x['batch']}: {esc(x['note'])}</li>" for x in summary["lifetime"])
        trained_j = ", ".join(f"{m} {j:,.1f} J" for m, j in summary["training_j"].items() if j)
        parts.append(f"<h4>{esc(title)}</h4>" + pages.table(headers, rows, f"serving-{i}", box=True)
                     + (f"<p>Trained once, then served (energy to train, median: {esc(trained_j)}):</p><ul>{lifetime}"
                        "</ul>" if trained_j else '<p class="muted">The served runs are not among the folders: no '
                        "training plus serving.</p>"))
    if skipped:
        parts.append("<p>Left out:</p><ul>" + "".join(f"<li>{esc(line)}</li>" for line in skipped) + "</ul>")
    return "<h3>Each way of serving, the models side by side</h3>" + "".join(parts)


def _pair_html(p: Pair) -> str:
    ci = p.ci
    ratio = f"<strong>{ci.ratio:.2f}x</strong>" if ci else "—"
    interval = f'<span class="nw">[{ci.lo:.2f}, {ci.hi:.2f}]</span>' if ci and ci.n >= 2 else "— (fewer than 2 seeds)"
    return ("<tr>" + cell(p.system.title) + cell(f"{p.dense.benchmark} / {p.sparse.benchmark}")
            + cell(ratio, ci.ratio if ci else None, numeric=True, raw=True) + cell(interval, raw=True)
            + cell(f'<span class="muted">{esc(p.note)}</span>', raw=True) + "</tr>")


def _claims_html(found: Collected, links: dict[str, str]) -> str:
    if not found.claims:
        return "<p class=\"muted\">No claims (claim.json from `harness claim`) among the folders given.</p>"
    rows = []
    for path, c in found.claims:
        cited = [r for side in (c.get("runs") or {}).values() for r in side if isinstance(r, dict)]
        runs = ", ".join(f'<a href="{esc(links[str(r.get("run_id"))])}">{esc(r.get("run_id"))}</a>'
                         if str(r.get("run_id")) in links else esc(r.get("run_id")) for r in cited)
        reasons = pages.listing(esc(x) for x in c.get("reasons") or [])
        rows.append("<tr>" + cell(str(c.get("verdict"))) + cell(str(c.get("text"))) + cell(str(
            (c.get("metric") or {}).get("name"))) + cell(reasons, raw=True) + cell(runs or "—", raw=True)
            + cell(str(path.name)) + "</tr>")
    return pages.table(("Verdict", "Claim", "Metric", "Reasons", "Runs cited", "File"), rows)


# -- a system's page ------------------------------------------------------------------------------------------


def _system_page(folder: Path, rows: list[Row]) -> None:
    system = rows[0].system
    body = [f'<p><a href="../../index.html">All results</a></p><h1>{esc(system.title)}</h1>',
            "<h2>System</h2>", _description(rows[0])]
    problems = sorted({p for row in rows for p in row.check[1]})
    body.append("<h2>harness check</h2>" + (pages.listing(esc(p) for p in problems) if problems else
                                            "<p class=\"pass\">All checks passed.</p>"))
    for row in rows:
        body.append(f"<h2>{esc(row.benchmark)} ({esc(row.framework_text)})</h2>")
        body.append(pages.table(("Run", "Seed", "Status", "Time (s)", "Energy (J)", "Method", "Tokens/J", "MFU"),
                                (_run_row(r) for r in row.runs)))
        for run in row.runs:
            body.append(_run_section(folder, run))
    atomic_write_text(folder / "index.html", pages.page(system.title, body))


def _description(row: Row) -> str:
    desc = row.system.description
    if desc:
        pairs = [(k, v) for k, v in desc.items() if not isinstance(v, dict | list)]
    else:
        hw, sw = row.first.environment.hardware, row.first.environment.software
        pairs = [("host CPU", f"{hw.cpu_model} ({hw.logical_cpus} logical CPUs)"), ("memory (GiB)", hw.memory_gib),
                 ("accelerators", row.accelerator), ("platform", hw.platform), ("backend", hw.backend),
                 *[(f"host: {k}", v) for k, v in (hw.cpu or {}).items()],
                 ("python", sw.get("python")),
                 *[(k, v) for k, v in sorted((sw.get("packages") or {}).items()) if v],
                 ("harness commit", sw.get("git_commit"))]
    return pages.table(("Field", "Value"), ("<tr>" + cell(str(k)) + cell(str(v)) + "</tr>" for k, v in pairs))


def _run_row(run: SiteRun) -> str:
    r = run.record
    return ("<tr>" + cell(f'<a href="#run-{slug(r.run_id)}">{esc(r.run_id)}</a>', raw=True) + cell(str(r.seed))
            + cell(r.status_text) + cell(fmt(r.timing.run_s), r.timing.run_s, numeric=True)
            + cell(fmt(r.energy.total_j), r.energy.total_j, numeric=True) + cell(badge(_word(r)), raw=True)
            + cell(fmt(r.tokens_per_j), r.tokens_per_j, numeric=True)
            + cell(fmt(r.mfu, ".1%") if r.mfu is not None else "—", r.mfu, numeric=True) + "</tr>")


def _word(r) -> str:
    return "incomplete" if not r.energy.complete else r.energy.method_word


def _run_section(system_folder: Path, run: SiteRun) -> str:
    r = run.record
    name = slug(r.run_id)
    folder = system_folder / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for target, source in run.files.items():
        dest = folder / Path(target).name
        if source.name == dest.name + PACKED_SUFFIX:  # a packed trace: the site serves the text the record hashed
            dest.write_bytes(gzip.decompress(source.resolve().read_bytes()))
        else:
            shutil.copyfile(source.resolve(), dest)  # `source` was checked to lie inside its folder
        recorded = r.files.get(target) if target != "result.json" else None
        digest = sha256_file(dest)
        note = "" if recorded in (None, digest) else " (differs from the hash the record holds)"
        copied.append(f'<a href="runs/{name}/{esc(dest.name)}">{esc(target)}</a> <code>{digest}</code>{esc(note)}')
    charts = []
    loss = _loss_chart(r)
    if loss:
        atomic_write_text(folder / "loss.svg", loss)
        charts.append(f'<img src="runs/{name}/loss.svg" alt="eval loss against energy, {esc(r.run_id)}" '
                      'width="640" height="400">')
    trace = folder / "power.csv" if "power.csv" in run.files else None  # the copy: unpacked if it lay packed
    power = _power_chart(r, trace) if trace else None
    if power:
        atomic_write_text(folder / "power.svg", power)
        charts.append(f'<img src="runs/{name}/power.svg" alt="power trace, {esc(r.run_id)}" width="640" height="400">')
    missing = "" if r.complete else "<p class=\"fail\">" + esc("; ".join(r.problems())) + "</p>"
    return (f'<section id="run-{name}"><h3>{esc(r.run_id)}</h3>{missing}'
            f"<p>{esc(r.workload)}, seed {esc(r.seed)}, {esc(r.status_text)}; energy {fmt(r.energy.total_j)} J "
            f"({esc(r.energy.label)})</p>" + "".join(charts)
            + (pages.listing(copied) if copied else "") + "</section>")


def _loss_chart(r) -> str | None:
    points = [p for p in r.eval_trace if p.eval_loss is not None]
    by_energy = [p for p in points if p.energy_j is not None and p.energy_j > 0]
    if len(by_energy) >= 1:
        xs, label = [p.energy_j for p in by_energy], f"energy since run_start (J, {r.energy.method_word})"
        ys = [p.eval_loss for p in by_energy]
    elif points:
        xs, ys, label = [p.elapsed_s for p in points], [p.eval_loss for p in points], "time since run_start (s)"
    else:
        return None
    return svg.lines([(r.workload, xs, ys)], "Eval loss", label, "eval loss (nats/token)",
                     (f"target {r.target.target_loss:.3f}", r.target.target_loss))


def _power_chart(r, trace: Path) -> str | None:
    try:
        with open(trace, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if len(rows) < 3 or "time_unix_s" not in rows[0]:
        return None
    header, rows = rows[0], rows[1:]
    at = header.index("time_unix_s")
    t0 = r.timing.marks_unix_s.get("run_start", _float(rows[0][at]))
    kept = [row for row in rows[:: max(1, len(rows) // MAX_TRACE_POINTS)] if len(row) == len(header)]
    columns = [(i, c) for i, c in enumerate(header) if c.endswith("_w") and not c.endswith(".instant_w")][:8]
    times = [_float(row[at]) - t0 for row in kept]
    series = [(c.removesuffix("_w"), times, [_float(row[i]) for row in kept]) for i, c in columns]
    series = [(n, xs, ys) for n, xs, ys in series if all(math.isfinite(v) for v in (*xs, *ys))]
    return svg.lines(series, "Power", "time since run_start (s)", f"W ({r.energy.method_word})") if series else None


def _float(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


# -- files beside the pages -------------------------------------------------------------------------------------


def _write_summary(out: Path, summary: list[dict[str, Any]]) -> None:
    atomic_write_text(out / "summary.json", json.dumps({
        "schema": "harness.site-summary/1",
        "units": {"time_to_train": "minutes (as MLCommons' summarizer prints it)", "time_to_train_s": "s",
                  "energy_to_train_j": "J", "co2e_gross_g": "g CO2e", "tokens_per_j": "tokens/J",
                  "model_flops_per_j": "FLOPs/J", "mfu": "fraction of the published dense peak"},
        "rows": summary}, indent=2) + "\n")
    buf = io.StringIO()
    columns = [k for k in summary[0] if k not in ("energy_methods", "run_ids")] if summary else []
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary)
    atomic_write_text(out / "summary.csv", buf.getvalue())


def _copy_reports(found: Collected, out: Path) -> list[tuple[str, str]]:
    """Each study report found (report.html and the files beside it), copied under reports/."""
    links = []
    given = [s.given for s in found.sources]
    for folder in found.reports:
        root = next((g for g in given if folder.is_relative_to(g)), None)
        if root is None:
            continue
        name = str(folder.relative_to(root)) if folder != root else root.name
        dest = out / "reports" / slug(f"{root}/{name}")
        for f in sorted(folder.iterdir()):
            if f.suffix in (".html", ".png", ".md", ".json", ".svg") and inside(root, f):
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.resolve(), dest / f.name)
        if (dest / "report.html").is_file():
            links.append((name, f"reports/{dest.name}/report.html"))
    return links
