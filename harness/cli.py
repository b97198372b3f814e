"""`harness`: parse, call, print. Logic lives in harness.runner, harness.carbon and friends."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where a command prints with it: `harness meter` starts faster without it
    from rich.console import Console

from harness.errors import InputError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"harness: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Energy benchmark harness for ML training.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list workloads")

    run = sub.add_parser("run", help="train a workload to its quality target, metered")
    run.add_argument("--workload", required=True, help="workload name (see `harness list`)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--corpus", default="default", help="default | control (procedural corpus variant)")
    run.add_argument("--data", help="your own corpus: UTF-8 text (byte tokens) or .npy of int token ids")
    run.add_argument("--target-loss", type=float, help="eval loss target, nats/token (required with --data)")
    run.add_argument("--max-steps", type=int, help="step budget (default: the workload's)")
    run.add_argument("--output-dir", default="results")
    run.add_argument("--region", default=None, help="carbon region (default us-average); see harness regions")
    run.add_argument("--pue", type=float, help="override the region's PUE")
    run.add_argument("--carbon-intensity", type=float, help="override grid intensity, kgCO2e/kWh")
    run.add_argument("--net-carbon-intensity", type=float, help="override net intensity, kgCO2e/kWh")
    _meter_args(run)
    run.add_argument("--sample-hz", type=float, default=20.0, help="power sampling rate (>= 10)")
    run.add_argument("--no-progress", action="store_true", help="no live display")
    run.add_argument("--allow-cpu", action="store_true",
                     help="run a workload sized for an accelerator (dense-base, switch-base) on the CPU anyway")
    _mesh_arg(run)
    run.add_argument("--framework", default="jax", help="jax | tensorflow (needs the tensorflow extra)")
    run.add_argument("--coordinator", help="multi-process run: HOST:PORT of process 0 (jax.distributed)")
    run.add_argument("--num-processes", type=int, help="multi-process run: how many processes")
    run.add_argument("--process-id", type=int, help="multi-process run: this process's index, 0..N-1")
    run.add_argument("--peer-timeout", type=float, default=20.0,
                     help="multi-process run: seconds without a heartbeat before a process counts as lost (20)")
    run.add_argument("--runs", type=int, default=1,
                     help="N runs on seeds seed..seed+N-1, olympic-scored for time and energy (N >= 3)")

    sub.add_parser("regions", help="list carbon regions and processors, each with its source")

    fp = sub.add_parser("footprint", help="energy and CO2e of a training job from its inputs (the paper's formula)")
    fp.add_argument("--paper", action="store_true", help="recompute the seed paper's Table 4 and running example")
    fp.add_argument("--chips", type=float, help="number of processors")
    fp.add_argument("--hours", type=float)
    fp.add_argument("--days", type=float)
    fp.add_argument("--watts", type=float, help="average system W per processor")
    fp.add_argument("--pue", type=float, help="datacenter PUE (default: the region's)")
    fp.add_argument("--region", help="carbon region (see harness regions)")
    fp.add_argument("--intensity", type=float, help="grid intensity, kg CO2e/kWh (instead of --region)")
    fp.add_argument("--net-intensity", type=float, help="net intensity after carbon-free energy, kg CO2e/kWh")
    fp.add_argument("--embodied", type=float, help="embodied carbon, kg CO2e per chip-year (reported apart)")
    fp.add_argument("--embodied-source", help="where the --embodied figure comes from")
    fp.add_argument("--json", action="store_true")

    wi = sub.add_parser("whatif", help="re-price a measured result, or split a reduction into the paper's 4M")
    wi.add_argument("results", nargs="+", help="RESULT, or with --4m: DENSE SPARSE (result.json, run or set dirs)")
    wi.add_argument("--4m", dest="four_m", action="store_true", help="decompose DENSE -> SPARSE into 4 factors")
    wi.add_argument("--region", help="region to re-price in (single RESULT)")
    wi.add_argument("--pue", type=float, help="PUE to re-price with (default: the region's)")
    wi.add_argument("--processor", help="another processor, through processors.csv (modelled)")
    wi.add_argument("--from-processor", help="the processor the result ran on, if not detected")
    wi.add_argument("--to-processor", help="with --4m and --from-processor: the machine factor from the table")
    wi.add_argument("--from-region", help="--4m: the dense run's region (default: its result's)")
    wi.add_argument("--to-region", help="--4m: the sparse run's region (default: its result's)")
    wi.add_argument("--from-pue", type=float)
    wi.add_argument("--to-pue", type=float)
    wi.add_argument("--machine-factor", type=float, help="--4m: energy on the old / the new machine")
    wi.add_argument("--machine-source", help="where --machine-factor comes from")
    wi.add_argument("--net", action="store_true", help="--4m: use net (after carbon-free energy) intensities")
    wi.add_argument("--json", action="store_true")

    sc = sub.add_parser("schedule", help="when and where to run a job for the least CO2e")
    sc.add_argument("--hours", type=float, required=True, help="job length")
    sc.add_argument("--profile", required=True, help="CSV: timestamp,region,kg_per_kwh (hourly)")
    sc.add_argument("--regions", help="comma-separated; the first is where 'now' is (default: all in the profile)")
    sc.add_argument("--watts", type=float, required=True, help="average IT power of the whole job, W")
    sc.add_argument("--pue", type=float, default=1.0, help="facility PUE (default 1.0)")
    sc.add_argument("--json", action="store_true")

    doctor = sub.add_parser("meters", help="which energy meters work here, what they measure, and why not")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    _meter_args(doctor, choose=False)

    cmp_ = sub.add_parser("compare", help="your results beside reference results, with ratios")
    cmp_.add_argument("path", help="a result.json, a run directory, a --runs set or a folder of runs")
    cmp_.add_argument("--reference", default="reference_results",
                      help="reference results folder (default: ./reference_results)")
    cmp_.add_argument("--json", action="store_true")

    pkg = sub.add_parser("package", help="lay runs out as an MLPerf submission package")
    pkg.add_argument("paths", nargs="+", help="run directories or folders holding them")
    pkg.add_argument("--org", required=True, help="submitting organisation")
    pkg.add_argument("--system", required=True, help="system name (systems/<system>.json)")
    pkg.add_argument("--output", default="submission", help="folder to create <org>/ in (default: submission)")
    pkg.add_argument("--status", default="available", help="system status: available | preview | rdi")

    chk = sub.add_parser("check", help="MLCommons checkers with our rules plus energy checks on a package")
    chk.add_argument("path", help="a package folder (holding <org>/harness_manifest.json), a run directory or a "
                                  "--runs set directory")

    imp = sub.add_parser("import-power", help="attach a PTDaemon-style node power log to a finished run")
    imp.add_argument("run_dir", help="run directory (holds result.json)")
    imp.add_argument("log", help="power log: lines 'Time,<MM-DD-YYYY HH:MM:SS.fff or unix s>,Watts,<W>,...'")
    imp.add_argument("--utc-offset", type=float, default=0.0,
                     help="hours the log's clock is ahead of UTC, for date-form timestamps (default 0)")

    study = sub.add_parser("study", help="several workloads over seeds, interleaved, with confidence intervals")
    study.add_argument("--workloads", help="comma-separated; first is baseline (default dense-small,switch-small)")
    study.add_argument("--seeds", type=int, help="seeds per workload (default 3)")
    study.add_argument("--corpus",
                       help="corpora, comma-separated (default: both, so the report shows where sparse does not win)")
    study.add_argument("--sweep", help="experts=2,4,8,16,32: Switch variants at matched activated FLOPs")
    study.add_argument("--output-dir", default="results")
    _meter_args(study)
    study.add_argument("--region", default=None)
    study.add_argument("--frameworks",
                       help="comma-separated: jax, tensorflow; every workload runs in each (the first is baseline)")
    study.add_argument("--resume", help="finish an interrupted study: its folder (<output>/<utc>-study-<id>)")
    _mesh_arg(study)

    meter = sub.add_parser("meter", help="run any command under the meters: harness meter [options] -- CMD ARGS...")
    _meter_args(meter)
    meter.add_argument("--region", default=None, help="carbon region (default us-average); see harness regions")
    meter.add_argument("--pue", type=float, help="override the region's PUE")
    meter.add_argument("--carbon-intensity", type=float, help="override grid intensity, kgCO2e/kWh")
    meter.add_argument("--sample-hz", type=float, default=20.0, help="power sampling rate (>= 10)")
    meter.add_argument("--output-dir", default="results")
    meter.add_argument("--name", help="what to call it in the record and emissions.csv (default: the program)")
    meter.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS",
                       help="the command and its arguments, after --")

    report = sub.add_parser("report", help="report.md and report.html from run or study directories")
    report.add_argument("paths", nargs="+", help="run directories (result.json) or study directories (study.json)")
    report.add_argument("--output-dir", help="where to write the report (default: the single path given)")
    return parser


def _mesh_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh", help="data=D,expert=E over every device (default: every device on data, as far as "
                                  "the workload's batch splits)")


def _meter_args(p: argparse.ArgumentParser, choose: bool = True) -> None:
    """--meter and every backend's own flags, from the one registry (harness/meters/registry.py)."""
    from harness.meters import BACKENDS, meter_flags

    if choose:
        p.add_argument("--meter", default="auto",
                       help=f"comma-separated: auto (the best available) | {' | '.join(BACKENDS)}; named meters are "
                            "required (fake is for tests)")
    for option in meter_flags():
        p.add_argument(option.flag, dest=f"meter_{option.name}", type=option.type, help=option.help)


def _meter_options(args: argparse.Namespace) -> dict:
    from harness.meters import meter_flags

    return {o.name: getattr(args, f"meter_{o.name}") for o in meter_flags()
            if getattr(args, f"meter_{o.name}", None) is not None}


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    console = None if args.command == "meter" else _console()
    try:
        return _COMMANDS[args.command](args, console)
    except InputError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2


def _console() -> Console:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def _table(title: str):
    from rich.table import Table

    return Table(title=title)


def _list(args: argparse.Namespace, console: Console) -> int:
    from workloads.registry import WORKLOADS

    table = _table("workloads")
    for col in ("name", "model", "shape", "precision", "corpus", "batch x seq", "lr", "eval every", "target",
                "max steps", "sized for"):
        table.add_column(col)
    for spec in WORKLOADS.values():
        m = spec.model
        model = f"switch E={m.num_experts}" if m.num_experts else "dense"
        lr = f"{spec.optimizer.learning_rate:g}" + ("" if spec.calibration.calibrated else " (uncalibrated)")
        table.add_row(spec.name, model, f"L={m.num_layers} d={m.d_model} ff={m.d_ff}", m.dtype, spec.corpus.name,
                      f"{spec.batch_size}x{spec.seq_len}", lr, str(spec.eval_every_steps),
                      f"floor+{spec.target_margin} ({spec.target_loss():.3f})", str(spec.max_steps), spec.sized_for)
    console.print(table)
    for spec in WORKLOADS.values():
        if not spec.calibration.calibrated:
            console.print(f"{spec.name}: {spec.calibration.where}", highlight=False, style="yellow")
    return 0


def _regions(args: argparse.Namespace, console: Console) -> int:
    from harness.carbon import DEFAULT_REGION, load_regions

    table = _table(f"carbon regions (default: {DEFAULT_REGION})")
    for col in ("region", "PUE", "gross kg/kWh", "net kg/kWh", "source"):
        table.add_column(col, overflow="fold")
    for r in load_regions().values():
        table.add_row(r.name, f"{r.pue:g}", f"{r.gross_kg_per_kwh:g}", f"{r.net_kg_per_kwh:g}", r.source)
    console.print(table)
    from harness.carbon.processors import load_processors

    procs = _table("processors (for whatif --processor and the 4M machine factor)")
    for col in ("processor", "avg system W", "energy per work (P100 = 1)", "source"):
        procs.add_column(col, overflow="fold")
    for p in load_processors().values():
        procs.add_row(p.name, f"{p.avg_system_w:g}", "—" if p.energy_per_work is None else f"{p.energy_per_work:g}",
                      p.source)
    console.print(procs)
    return 0


def _say(console: Console, lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False, markup=False)


def _emit(args: argparse.Namespace, console: Console, data, lines: Callable[[], list[str]]) -> int:
    """--json prints the data for scripts; otherwise the human-readable lines."""
    if args.json:
        import json

        print(json.dumps(data, indent=2))
    else:
        _say(console, lines())
    return 0


def _footprint(args: argparse.Namespace, console: Console) -> int:

    from harness.carbon.jobs import job_footprint
    from harness.carbon.paper import recompute, running_example
    from harness.report.carbon_text import footprint_lines, four_m_lines, paper_table

    if args.paper:
        rows, example = recompute(), running_example()
        if args.json:
            return _emit(args, console, {"runs": rows, "running_example_4m": example.to_dict()}, list)
        console.print(paper_table(rows))
        _say(console, ["Published days are rounded, so small differences are expected. The running example's rows",
                       "have no published energy; the paper reports them as a ratio (about 57x), split here into 4M:",
                       *four_m_lines(example)])
        return 0
    if args.hours is not None and args.days is not None:
        raise UsageError("give --hours or --days, not both")
    hours = args.hours if args.days is None else args.days * 24
    if hours is None or args.chips is None or args.watts is None:
        raise UsageError("footprint needs --chips N, --hours H (or --days D) and --watts W, or --paper")
    out = job_footprint(args.chips, hours, args.watts, args.pue, args.region, args.intensity, args.net_intensity,
                        args.embodied, args.embodied_source)
    return _emit(args, console, out, lambda: footprint_lines(out))


def _whatif(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.carbon_text import four_m_lines, whatif_lines
    from harness.report.whatif import four_m_results, reprice
    from harness.results.reader import read_results as load_results

    if args.four_m:
        if len(args.results) != 2:
            raise UsageError("--4m needs two paths: DENSE SPARSE")
        f = four_m_results(load_results(Path(args.results[0])), load_results(Path(args.results[1])),
                           args.from_region, args.to_region, args.from_pue, args.to_pue, args.machine_factor,
                           args.machine_source, args.net, args.from_processor, args.to_processor)
        return _emit(args, console, f.to_dict(),
                     lambda: ["CO2e reduction as the paper's 4M (each factor before / after):", *four_m_lines(f)])
    if len(args.results) != 1 or not args.region:
        raise UsageError("whatif needs one RESULT and --region R (or --4m DENSE SPARSE)")
    outs = [reprice(r, args.region, args.pue, args.processor, args.from_processor)
            for r in load_results(Path(args.results[0]))]
    return _emit(args, console, outs, lambda: whatif_lines(outs))


def _schedule(args: argparse.Namespace, console: Console) -> int:
    from dataclasses import asdict

    from harness.carbon.schedule import load_profile, plan_job
    from harness.report.carbon_text import schedule_lines

    if not args.watts > 0:
        raise UsageError(f"--watts must be a positive number, got {args.watts}")
    regions = [r for r in args.regions.split(",") if r] if args.regions else None
    plan = plan_job(load_profile(args.profile), args.hours, args.watts / 1000.0, regions, args.pue)
    return _emit(args, console, asdict(plan), lambda: schedule_lines(plan))


def _run(args: argparse.Namespace, console: Console) -> int:
    from harness import carbon
    from harness.report.summary import run_summary
    from harness.runner.run import PeerLost, RunAborted, RunOptions, execute, leave_now, plan

    opts = RunOptions(
        workload=args.workload, seed=args.seed, corpus=args.corpus, data=args.data, target_loss=args.target_loss,
        max_steps=args.max_steps, output_dir=args.output_dir, region=args.region or carbon.DEFAULT_REGION,
        pue=args.pue, carbon_intensity=args.carbon_intensity, net_intensity=args.net_carbon_intensity,
        meter=args.meter, meter_options=_meter_options(args), sample_hz=args.sample_hz,
        progress=not args.no_progress, allow_cpu=args.allow_cpu,
        mesh=args.mesh, coordinator=args.coordinator, num_processes=args.num_processes, process_id=args.process_id,
        peer_timeout_s=args.peer_timeout, framework=args.framework,
    )
    if args.runs != 1:
        return _run_set(args, opts, console)
    p = plan(opts)
    region = carbon.get_region(opts.region)
    where = p.placement
    process = f"process {where.process}/{where.processes}: " if where.processes > 1 else ""
    mesh = f"mesh {where.mesh} on {len(where.devices)} {where.devices[0].kind}; " if where.mesh else ""
    console.print(f"{process}[bold]{p.spec.name}[/] seed {opts.seed}: target eval loss {p.target_loss:.4f}, "
                  f"up to {p.max_steps} steps; {mesh}meters: {', '.join(m.method for m in p.meters) or 'none here'}; "
                  f"carbon: region {region.name} (PUE {opts.pue or region.pue}, "
                  f"{opts.carbon_intensity or region.gross_kg_per_kwh} kgCO2e/kWh)", highlight=False)
    for note in where.notes:
        console.print(f"  note: {note}", highlight=False, style="yellow")
    for u in p.unavailable:
        console.print(f"  meter not used: {u['name']}: {u['reason']}", highlight=False, style="dim")
    try:
        run_dir, result = execute(opts, p)
    except PeerLost as e:
        written = "result written with status aborted" if where.process == 0 else "process 0 writes the result"
        console.print(f"{e}: {written}", style="bold red", highlight=False)
        leave_now(1)  # the framework's shutdown would wait for the lost process
    except (KeyboardInterrupt, RunAborted):
        console.print("interrupted: result written with status aborted", style="bold red")
        return 130
    if where.process != 0:
        console.print(f"process {where.process}: {result['status']}; its figures went to process 0, which writes "
                      f"{run_dir / 'result.json'}", highlight=False)
        return 0 if result["status"] == "converged" else 1
    console.print(run_summary(result, str(run_dir / "result.json")))
    for line in result["energy"]["warnings"] + result["energy"]["flags"]:
        console.print(f"  warning: {line}", highlight=False, style="yellow")
    return run_exit_code(result)


def run_exit_code(result: dict) -> int:
    """0 only for a run that reached its target with a complete energy figure (README: exit codes)."""
    return 0 if result["status"] == "converged" and result["energy"].get("complete", True) else 1


def _run_set(args: argparse.Namespace, opts, console: Console) -> int:
    from harness.runner.repeat import run_repeated
    from harness.runner.run import RunAborted

    def said(r: dict) -> None:
        console.print(f"seed {r['seed']}: {r['status']}, {r['timing']['run_s']:.1f} s, "
                      f"{r['energy']['total_j']:.1f} J ({r['energy']['method']})", highlight=False)

    try:
        set_dir, score = run_repeated(opts, args.runs, on_run=said)
    except (KeyboardInterrupt, RunAborted):
        console.print("interrupted: the finished runs are scored in score.json", style="bold red")
        return 130
    t, e = score["time_to_target_s"], score["energy_to_target_j"]
    console.print(f"{score['workload']} x{args.runs}: time to target {_scored(t, 's')} ({t['reason']}); energy to "
                  f"target {_scored(e, 'J')} ({score['energy_method']}); convergence: "
                  f"{score['convergence']['verdict']}\nscore: {set_dir / 'score.json'}", highlight=False)
    return 0 if score["valid"] else 1


def _scored(score: dict, unit: str) -> str:
    return f"{score['value']:.2f} {unit}" if score["valid"] else "INVALID"


def _compare(args: argparse.Namespace, console: Console) -> int:
    import json
    from pathlib import Path

    from harness.report.compare import compare
    from harness.results.reader import read_results as load_results

    ref_dir = Path(args.reference)
    if not ref_dir.is_dir():
        raise UsageError(f"--reference {ref_dir}: not a directory (give the reference_results folder of a checkout)")
    entries = compare(load_results(Path(args.path)), load_results(ref_dir))
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        table = _table(f"{e['workload']} ({e['corpus']}): {e['runs']} run(s) vs {e['reference_runs']} reference "
                            f"run(s) on {', '.join(e['reference_hardware']) or 'none'}")
        for col in ("metric", "yours", "reference", "yours / reference"):
            table.add_column(col)
        for row in e["rows"]:
            if row["yours"] is None and row["reference"] is None:
                continue  # a figure neither side has (MFU on a CPU, accelerator power without one)
            table.add_row(row["metric"], _num(row["yours"]), _num(row["reference"]),
                          "—" if row["ratio"] is None else f"{row['ratio']:.2f}x")
        console.print(table)
        console.print(f"  energy: yours {', '.join(e['energy_methods'])}; reference "
                      f"{', '.join(e['reference_energy_methods']) or '—'}", highlight=False)
        if e["energy_incomplete"]:
            console.print(f"  not ranked on energy (incomplete figure): {', '.join(e['energy_incomplete'])}",
                          highlight=False, style="yellow")
        conv = e["convergence"]
        console.print(f"  convergence: {conv['verdict'] if conv else 'nothing to compare'}", highlight=False)
    return 0


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:,.4g}"


def _package(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.mlperf.package import build_package

    root = build_package([Path(p) for p in args.paths], Path(args.output), args.org, args.system, args.status)
    console.print(f"package: {root} (check it with: harness check {root})", highlight=False)
    return 0


def _check(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.mlperf.check import check_package, check_run_or_set

    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"{path}: not a directory (give a package, a run directory or a --runs set)")
    is_run = (path / "result.json").is_file() or (path / "score.json").is_file()
    problems = check_run_or_set(path) if is_run else check_package(path)
    for line in problems:
        print(line)
    print(f"{len(problems)} problem(s)" if problems else "all checks passed", file=sys.stderr)
    return 1 if problems else 0


def _meters(args: argparse.Namespace, console: Console) -> int:
    import json

    from harness.meters import MeterRequest
    from harness.meters.doctor import diagnose
    from harness.runner.devices import all_accelerators

    rows = diagnose(MeterRequest(**_meter_options(args)), all_accelerators())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = _table("energy meters on this machine")
    for col in ("backend", "here", "auto", "measures", "basis", "rate", "why / what"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["backend"], "yes" if r["available"] else "no", "used" if r["used_by_auto"] else "",
                      r["measures"], r["basis"], r["sample_rate"], r["reason"])
    console.print(table)
    return 0


def _import_power(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.runner.power_import import import_power_log

    result = import_power_log(Path(args.run_dir), Path(args.log), args.utc_offset)
    e, node = result["energy"], result["energy"]["external_import"]
    hz = "n/a" if node["achieved_hz"] is None else f"{node['achieved_hz']:.2f}"
    console.print(f"node energy {e['total_j']:.1f} J over {node['seconds']:.1f} s ({node['mean_w']:.1f} W mean, "
                  f"{node['samples_in_window']} samples, {hz} Hz, {e['method']}); "
                  f"CO2e re-priced: {result['carbon']['co2e_gross_kg'] * 1000:.4f} g gross", highlight=False)
    for c in e.get("cross_checks", []):
        if c["what"] == "node vs components" and c["disagreement_pct"] is not None:
            console.print(f"  device meters {c['b']['joules']:.1f} J = node {c['disagreement_pct']:+.1f} %",
                          highlight=False)
    return 0


def _study(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness import carbon
    from harness.runner.run import RunOptions
    from harness.study.campaign import study_and_report

    base = RunOptions(workload="", meter=args.meter, meter_options=_meter_options(args), progress=False,
                      region=args.region or carbon.DEFAULT_REGION, mesh=args.mesh)

    def said(r: dict) -> None:
        fw = r["training"]["framework"].get("framework", "jax")
        joules = r["energy"]["total_j"]
        console.print(f"{r['workload']} ({fw}) seed {r['seed']}: {r['status']}, {r['timing']['run_s'] or 0:.1f} s, "
                      f"{'—' if joules is None else f'{joules:.1f}'} J ({r['energy']['method']})", highlight=False)

    def listed(text: str | None) -> list[str] | None:
        return None if text is None else [x for x in text.split(",") if x]

    asked = {"workloads": listed(args.workloads), "seeds": args.seeds, "corpora": listed(args.corpus),
             "sweep": args.sweep, "frameworks": listed(args.frameworks)}
    study_dirs, md, page = study_and_report(asked, Path(args.output_dir), base, on_run=said,
                                            resume=Path(args.resume) if args.resume else None)
    console.print(md.read_text(), highlight=False, markup=False)
    console.print("studies: " + ", ".join(map(str, study_dirs)) + f"\nreport: {md} and {page}", highlight=False)
    return 0


def _report(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.build import build_report

    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.is_dir():
            raise UsageError(f"{p}: not a directory (give run or study directories)")
    out = Path(args.output_dir) if args.output_dir else (paths[0] if len(paths) == 1 else None)
    if out is None:
        raise UsageError("several paths need --output-dir for the report")
    md, page = build_report(paths, out)
    console.print(f"report: {md} and {page}", highlight=False)
    return 0


def _meter(args: argparse.Namespace, console: Console | None) -> int:
    from harness import carbon
    from harness.runner.command import CommandOptions, meter_command

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    run_dir, r, code = meter_command(CommandOptions(
        argv=argv, meter=args.meter, meter_options=_meter_options(args), region=args.region or carbon.DEFAULT_REGION,
        pue=args.pue, carbon_intensity=args.carbon_intensity, sample_hz=args.sample_hz, output_dir=args.output_dir,
        name=args.name))
    e, co = r["energy"], r["carbon"] or {}
    joules = "—" if e["total_j"] is None else f"{e['total_j']:,.1f} J"
    co2 = "" if not co else f", CO2e {co['co2e_gross_kg'] * 1000:.4f} g gross (region {co['region']})"
    print(f"harness meter: {r['workload']} {r['status']} (exit {r['exit_code']}) in {r['timing']['run_s']:.2f} s: "
          f"{joules} ({e['method']}){co2}\nrecord: {run_dir / 'result.json'}", file=sys.stderr)
    if not e.get("complete", True):
        print("harness meter: energy figure INCOMPLETE: " + "; ".join(e["incomplete_reasons"]), file=sys.stderr)
    return code


_COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "list": _list, "regions": _regions, "run": _run, "study": _study, "report": _report, "footprint": _footprint,
    "whatif": _whatif, "schedule": _schedule, "compare": _compare, "package": _package, "check": _check,
    "meters": _meters, "import-power": _import_power, "meter": _meter,
}


if __name__ == "__main__":
    sys.exit(main())
