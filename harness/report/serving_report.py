"""The serving report in markdown: a study's (study_markdown), and `harness report`'s on inference records,
grouped into one table a way of serving (harness/results/inference.py `ServingKey`), naming what it leaves out."""

from __future__ import annotations

from typing import Any

from harness.report.serving_summary import summarise
from harness.results.inference import InferenceRecord, ServingKey, serving_study
from harness.results.schema import RunRecord


def _ci(x: dict | None) -> str:
    if not x:
        return "n/a"
    return f"**{x['ratio']:.2f}×** [{x['lo']:.2f}, {x['hi']:.2f}] (n={x['n']})"


def study_markdown(summary: dict, corpus: str | None, figures: list[str], setting: str = "") -> str:
    """The inference study's report: J/token per batch, the ratio with its interval, training plus serving."""
    base = summary["baseline"]
    others = sorted({m for r in summary["rows"] for m in r["models"]} - {base})
    methods = sorted({x for r in summary["rows"] for m in r["models"].values() for x in m["method"]})
    setting = f", {setting}" if setting else ""
    out = [f"# Serving {base} against {', '.join(others)}" + (f" ({corpus} corpus)" if corpus else "") + setting,
           "",
           f"Energy per generated token under MLPerf LoadGen, each trained seed served at each batch. "
           f"Energy: {'; '.join(methods)}. Ratios pair the models by training seed (t interval on the per-seed "
           f"log ratios).", ""]
    head = "| batch | " + " | ".join(f"{m} J/token" for m in [base, *others]) + " | " + \
        " | ".join(f"{base} ÷ {m}" for m in others) + " | tokens/s | p99 TPOT ms | dropped | LoadGen | quality |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for r in summary["rows"]:
        models = r["models"]
        cells = [f"{models[m]['median_j_per_token']:.3e}" if m in models and models[m]["median_j_per_token"]
                 else "n/a" for m in [base, *others]]
        ratios = [_ci((r.get("ratios") or {}).get(f"{base}/{m}")) for m in others]

        def each(key: str, fmt: str, models: dict = models) -> str:
            return " / ".join(fmt.format(models[m][key]) if m in models and models[m][key] is not None else "n/a"
                              for m in [base, *others])

        valid = " / ".join(",".join(sorted(set(filter(None, models[m]["loadgen_valid"])))) if m in models else "n/a"
                           for m in [base, *others])
        holds = " / ".join(("yes" if all(models[m]["quality_holds"]) else "NO") if m in models else "n/a"
                           for m in [base, *others])
        out.append(f"| {r['batch']} | " + " | ".join(cells + ratios) + f" | {each('tokens_per_s', '{:,.0f}')} | "
                   f"{each('tpot_p99_ms', '{:.3f}')} | {each('dropped_fraction', '{:.1%}')} | {valid} | {holds} |")
    out += ["", "## Training once, then serving", ""]
    trained = {m: j for m, j in summary["training_j"].items() if j}
    if trained:
        out += [f"Energy to train (median over the converged seeds, {'; '.join(summary['training_method'])}): "
                + ", ".join(f"{m} {trained[m]:,.1f} J" if m in trained else f"{m}: no converged run with an energy "
                            "figure among the given folders" for m in [base, *others]), ""]
    else:
        out += ["No training run of these models is among the given folders: give the runs that were served "
                "(their folders, or the study's) beside these records to price training and serving.", ""]
    for life in summary["lifetime"]:
        out.append(f"- batch {life['batch']}: {life['note']}")
    if summary["skipped"]:
        out += ["", "Not served: " + "; ".join(summary["skipped"])]
    out += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(out) + "\n"


def serving_groups(records: list[InferenceRecord]) -> tuple[dict[str, dict[str, InferenceRecord]], list[str]]:
    """Records as summarise() takes them: one group a way of serving (ServingKey.table: machine, trained corpus,
    framework, scenario, lengths, sampling, LoadGen's settings) and a sitting (the `harness study --inference` that
    served them together, interleaved; else the folder holding them), each keyed <model>/seed<trained seed>/
    batch<b>, the model naming a Switch model's routing; and a line for each record left out (the same serving met
    twice in one sitting: the later record is shown, the earlier named). Sittings stay apart because their ratios
    pair models served side by side: across days this VM's speed alone moves J/token by 2x."""
    groups: dict[tuple, tuple[str, dict[str, InferenceRecord]]] = {}
    skipped: list[str] = []
    for r in sorted(records, key=lambda r: r.created_unix_s):
        key = ServingKey.of(r)
        sitting = _sitting(r)
        _, keyed = groups.setdefault((key.table(), sitting), (f"{key.traffic}; served together in {sitting}", {}))
        label = f"{key.model}/seed{r.serving.run_seed}/batch{key.batch}"
        if label in keyed:
            skipped.append(f"{keyed[label].run_id}: {key.model} seed {r.serving.run_seed} batch {key.batch} served "
                           f"the same way again later ({r.run_id}, shown)")
        keyed[label] = r
    return {title: keyed for title, keyed in groups.values()}, skipped


def _sitting(r: InferenceRecord) -> str:
    """Where r was served with others: its inference study's folder, else its own parent folder (the last two
    parts of the path, enough to tell them apart in a title)."""
    study, _ = serving_study(r)
    folder = study or (r.directory.parent if r.directory is not None else None)
    return "/".join(folder.parts[-2:]) if folder is not None else "no folder"


def serving_report(records: list[InferenceRecord], out_dir, runs: list[RunRecord] = ()) -> Any:
    """`harness report` on inference records: for each way of serving, J/token against batch for every model
    (dense first), latency against throughput, the dense ÷ Switch ratios paired by trained seed, and training
    plus serving where the served runs (`runs`, matched by run id) are among what was given."""
    from pathlib import Path

    from harness.report.plots import inference_sweep
    from harness.results.files import atomic_write_text

    out_dir = Path(out_dir)
    parts = []
    groups, skipped = serving_groups(records)
    for i, (title, keyed) in enumerate(groups.items(), 1):
        labels = sorted({k.split("/")[0] for k in keyed}, key=lambda m: (_routing(keyed, m) is not None, m))
        batches = sorted({r.serving.batch for r in keyed.values()})
        by_id = {r.run_id: r for r in runs}
        trained = {m: list({r.serving.run_id: by_id[r.serving.run_id] for k, r in keyed.items()
                            if k.startswith(f"{m}/") and r.serving.run_id in by_id}.values()) for m in labels}
        summary = summarise(labels, batches, {m: rs for m, rs in trained.items() if rs}, keyed, [])
        folder = out_dir / f"serving_{i}"
        folder.mkdir(parents=True, exist_ok=True)
        figures = [f"serving_{i}/{p.name}" for p in inference_sweep(summary, folder)]
        body = study_markdown(summary, None, figures).split("\n", 1)[1].replace("\n## ", "\n### ")
        parts.append(f"## {title}\n{body}")
    if skipped:
        parts.append("## Left out\n\n" + "\n".join(f"- {line}" for line in skipped) + "\n")
    md = out_dir / "report.md"
    atomic_write_text(md, "# harness report: serving\n\n" + "\n".join(parts))
    return md


def _routing(keyed: dict[str, InferenceRecord], model: str) -> str | None:
    """The Switch routing `model` was served with; None for a dense model (which comes first)."""
    return next(r.serving.switch_routing for k, r in keyed.items() if k.startswith(f"{model}/"))
