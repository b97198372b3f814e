"""`harness`: parse, call, print. Logic lives in harness.runner, harness.carbon, harness.report and friends.

Exit codes: 0 success; 1 a run that did not converge, an incomplete or unwritten record, problems found by
`check`, or any failure to write; 2 bad input (one line, no traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where a command prints with it: `harness meter` starts faster without it
    from rich.console import Console

from harness.errors import InputError, UsageError

DEFAULT_OUTPUT = "results"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        self.exit(2, f"harness: error: {message}\n")


# -- flags shared by several commands, named alike everywhere ---------------------------------------------


def _output_arg(p: argparse.ArgumentParser, default: str | None = DEFAULT_OUTPUT, what: str = "results") -> None:
    p.add_argument("--output-dir", default=default,
                   help=f"folder to write {what} in" + (f" (default: {default})" if default else ""))


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


def _carbon_args(p: argparse.ArgumentParser, region_default: str | None = "us-average") -> None:
    """--region, --pue, --carbon-intensity and --net-carbon-intensity (run, study, meter, footprint)."""
    where = f" (default {region_default})" if region_default else ""
    p.add_argument("--region", help=f"carbon region{where}; see harness regions")
    p.add_argument("--pue", type=float, help="datacenter PUE, facility / IT energy (default: the region's)")
    p.add_argument("--carbon-intensity", type=float, help="grid intensity, kg CO2e/kWh (overrides the region's)")
    p.add_argument("--net-carbon-intensity", type=float,
                   help="net intensity after carbon-free energy, kg CO2e/kWh (default: the gross one when "
                        "--carbon-intensity is given, else the region's)")


def _sample_arg(p: argparse.ArgumentParser) -> None:
    from harness.session import DEFAULT_SAMPLE_HZ, MIN_SAMPLE_HZ

    p.add_argument("--sample-hz", type=float, default=DEFAULT_SAMPLE_HZ,
                   help=f"power sampling rate, Hz (>= {MIN_SAMPLE_HZ:g}; default {DEFAULT_SAMPLE_HZ:g})")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="your own corpus: UTF-8 text (byte tokens) or .npy of int token ids "
                                  "(needs --target-loss)")
    p.add_argument("--target-loss", type=float, help="eval loss target, nats/token (required with --data)")


def _weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-weights", action="store_true",
                   help="do not keep the trained parameters (weights.npz, what harness infer serves)")


def _mesh_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mesh", help="data=D,expert=E over every device (default: every device on data, as far as "
                                  "the workload's batch splits)")


def _serving_args(p: argparse.ArgumentParser, only: str = "") -> None:
    """How a trained run is served under LoadGen (infer, study --inference); `only` prefixes the help where the
    flags apply to one mode of the command."""
    p.add_argument("--scenario", default="offline", help=f"{only}offline | server | singlestream | multistream "
                                                         "(default offline)")
    p.add_argument("--prompt-len", type=int, help=f"{only}prompt tokens, cut from held-out contexts (default: half "
                                                  "the context)")
    p.add_argument("--gen-len", type=int, help=f"{only}tokens generated a prompt (default: the rest of the context)")
    p.add_argument("--samples", type=int, help=f"{only}prompts in LoadGen's sample library (default: every held-out "
                                               "context)")
    p.add_argument("--duration-ms", type=int, default=5000,
                   help=f"{only}LoadGen's min_duration_ms a test (default 5000; MLPerf's is 600000)")
    p.add_argument("--routing", help=f"{only}Switch routing when served: dropless (default: every token through its "
                                     "expert, as serving systems route) | capacity (the paper's eval setting)")
    p.add_argument("--capacity-factor", type=float,
                   help=f"{only}capacity routing's expert capacity factor (default: the spec's eval one; given "
                        "alone, it implies --routing capacity)")


def _serving_options(args: argparse.Namespace, **more):
    """InferOptions from the serving and metering flags (infer, study --inference)."""
    from harness.infer.options import InferOptions
    from harness.session import Metering

    metering = Metering(meter=args.meter, meter_options=_meter_options(args), sample_hz=args.sample_hz,
                        **_pricing(args))
    return InferOptions(scenario=args.scenario.lower(), prompt_len=args.prompt_len, gen_len=args.gen_len,
                        samples=args.samples, duration_ms=args.duration_ms, routing=args.routing,
                        capacity_factor=args.capacity_factor,
                        metering=metering, **more)


def _meter_help() -> str:
    from harness.meters import BACKENDS

    return f"comma-separated: auto (the best available) | {' | '.join(BACKENDS)}; named meters are required (fake " \
           "is for tests)"


def _meter_args(p: argparse.ArgumentParser, choose: bool = True) -> None:
    """--meter and our backends' own flags, from the one registry (harness/meters/registry.py); plugin meters'
    flags are added last (_plugin_flags)."""
    from harness.meters import meter_flags

    if choose:
        p.add_argument("--meter", default="auto", help=_meter_help())
    for option in meter_flags(plugin=False):
        p.add_argument(option.flag, dest=f"meter_{option.name}", type=option.type, help=option.help)
    p.metered = True  # _build_parser gives the parsers marked so the plugin meters' flags


def _plugin_flags(parsers: list[argparse.ArgumentParser]) -> None:
    """Plugin meters' flags on every command that meters, once each has all of its own: a plugin whose flag one
    of them already takes is withdrawn (`harness meters` names it) instead of breaking every command."""
    from harness.meters.registry import OPTIONS, meter_flags, withdraw

    ours = {s for p in parsers for a in p._actions for s in a.option_strings}  # argparse lists them nowhere public
    clashes = [o for o in meter_flags(plugin=True) if o.flag in ours]
    for option in clashes:
        if option.name in OPTIONS:
            withdraw(OPTIONS[option.name][1], f"its flag {option.flag} is one of harness's own")
    for option in meter_flags(plugin=True):
        for p in parsers:
            p.add_argument(option.flag, dest=f"meter_{option.name}", type=option.type, help=option.help)
    if clashes:  # --meter's help named the plugins withdrawn
        for action in (a for p in parsers for a in p._actions if a.dest == "meter"):
            action.help = _meter_help()


def _meter_options(args: argparse.Namespace) -> dict:
    from harness.meters import meter_flags

    return {o.name: getattr(args, f"meter_{o.name}") for o in meter_flags()
            if getattr(args, f"meter_{o.name}", None) is not None}


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Energy benchmark harness for ML training and serving.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add, _handler in _COMMANDS.values():  # each declares its own subparser, named as its key
        add(sub)
    _plugin_flags([p for p in sub.choices.values() if getattr(p, "metered", False)])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    console = None if args.command == "meter" else _console()
    try:
        _add, handler = _COMMANDS[args.command]
        return handler(args, console)
    except InputError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder gone: said in one line, never a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"harness: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1


def _console() -> Console:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def _say(console: Console, lines: list[str], style: str | None = None) -> None:
    for line in lines:
        console.print(line, highlight=False, markup=False, style=style)


def _emit(args: argparse.Namespace, console: Console, data, lines: Callable[[], list[str]]) -> int:
    """--json prints the data for scripts; otherwise the human-readable lines."""
    if args.json:
        import json

        print(json.dumps(data, indent=2))
    else:
        _say(console, lines())
    return 0


def _pricing(args: argparse.Namespace) -> dict:
    from harness import carbon

    return {"region": args.region or carbon.DEFAULT_REGION, "pue": args.pue,
            "carbon_intensity": args.carbon_intensity, "net_intensity": args.net_carbon_intensity}


def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list workloads")
    _json_arg(p)


def _list(args: argparse.Namespace, console: Console) -> int:
    from harness.report.tables import workloads_table
    from workloads.registry import WORKLOADS, describe

    if args.json:
        return _emit(args, console, [describe(s) for s in WORKLOADS.values()], list)
    table, notes = workloads_table(WORKLOADS)
    console.print(table)
    _say(console, notes, style="yellow")
    return 0


def _add_regions(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("regions", help="list carbon regions and processors, each with its source")


def _regions(args: argparse.Namespace, console: Console) -> int:
    from harness.carbon import DEFAULT_REGION, load_regions
    from harness.carbon.processors import load_processors
    from harness.report.tables import regions_tables

    for table in regions_tables(load_regions(), load_processors(), DEFAULT_REGION):
        console.print(table)
    return 0


def _add_footprint(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("footprint", help="energy and CO2e of a training job from its inputs (the paper's formula)")
    p.add_argument("--paper", action="store_true", help="recompute the seed paper's Table 4 and running example")
    p.add_argument("--chips", type=float, help="number of processors")
    p.add_argument("--hours", type=float, help="training time, hours (or --days)")
    p.add_argument("--days", type=float, help="training time, days (or --hours)")
    p.add_argument("--watts", type=float, help="average system W per processor")
    _carbon_args(p, region_default=None)
    # The names of before the flags were made alike, still read.
    p.add_argument("--intensity", dest="carbon_intensity", type=float, help=argparse.SUPPRESS)
    p.add_argument("--net-intensity", dest="net_carbon_intensity", type=float, help=argparse.SUPPRESS)
    p.add_argument("--embodied", type=float, help="embodied carbon, kg CO2e per chip-year (reported apart)")
    p.add_argument("--embodied-source", help="where the --embodied figure comes from")
    p.add_argument("--lifetime", nargs=2, metavar=("TRAIN_RESULT", "INFER_RESULT"),
                   help="train once and serve: a run and an inference record of its weights (with --tokens N)")
    p.add_argument("--tokens", type=float, help="--lifetime: generated tokens served")
    _json_arg(p)


def _footprint(args: argparse.Namespace, console: Console) -> int:
    from harness.carbon.jobs import job_footprint
    from harness.carbon.paper import recompute, running_example
    from harness.report.carbon_text import footprint_lines, four_m_lines, paper_table

    if args.lifetime:
        return _lifetime(args, console)
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
    out = job_footprint(args.chips, hours, args.watts, args.pue, args.region, args.carbon_intensity,
                        args.net_carbon_intensity, args.embodied, args.embodied_source)
    return _emit(args, console, out, lambda: footprint_lines(out))


def _lifetime(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.lifetime import footprint_of, lifetime_lines
    from harness.results.inference import InferenceRecord
    from harness.results.reader import read_record
    from harness.results.schema import RunRecord

    if args.tokens is None or not args.tokens >= 0:
        raise UsageError("--lifetime needs --tokens N (generated tokens served, >= 0)")
    train, served = (read_record(Path(p)) for p in args.lifetime)
    if not isinstance(train, RunRecord) or not isinstance(served, InferenceRecord):
        raise UsageError(f"--lifetime TRAIN_RESULT INFER_RESULT: a training run then an inference record, got "
                         f"{train.WHAT} and {served.WHAT}")
    out = footprint_of(train, served, args.tokens)
    return _emit(args, console, out, lambda: lifetime_lines(out))


def _add_whatif(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("whatif", help="re-price a measured result, or split a reduction into the paper's 4M")
    p.add_argument("results", nargs="+", help="RESULT, or with --4m: DENSE SPARSE (result.json, run or set dirs)")
    p.add_argument("--4m", dest="four_m", action="store_true", help="decompose DENSE -> SPARSE into 4 factors")
    p.add_argument("--region", help="region to re-price in (single RESULT)")
    p.add_argument("--pue", type=float, help="PUE to re-price with (default: the region's)")
    p.add_argument("--processor", help="another processor, through processors.csv (modelled)")
    p.add_argument("--from-processor", help="the processor the result ran on, if not detected")
    p.add_argument("--to-processor", help="with --4m and --from-processor: the machine factor from the table")
    p.add_argument("--from-region", help="--4m: the dense run's region (default: its result's)")
    p.add_argument("--to-region", help="--4m: the sparse run's region (default: its result's)")
    p.add_argument("--from-pue", type=float, help="--4m: the dense run's PUE (default: its region's)")
    p.add_argument("--to-pue", type=float, help="--4m: the sparse run's PUE (default: its region's)")
    p.add_argument("--machine-factor", type=float, help="--4m: energy on the old / the new machine")
    p.add_argument("--machine-source", help="where --machine-factor comes from")
    p.add_argument("--net", action="store_true", help="--4m: use net (after carbon-free energy) intensities")
    _json_arg(p)


def _whatif(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.carbon_text import four_m_lines, whatif_lines
    from harness.report.whatif import four_m_results, reprice
    from harness.results.reader import read_records

    if args.four_m:
        if len(args.results) != 2:
            raise UsageError("--4m needs two paths: DENSE SPARSE")
        f = four_m_results(read_records(Path(args.results[0])), read_records(Path(args.results[1])),
                           args.from_region, args.to_region, args.from_pue, args.to_pue, args.machine_factor,
                           args.machine_source, args.net, args.from_processor, args.to_processor)
        return _emit(args, console, f.to_dict(),
                     lambda: ["CO2e reduction as the paper's 4M (each factor before / after):", *four_m_lines(f)])
    if len(args.results) != 1 or not args.region:
        raise UsageError("whatif needs one RESULT and --region R (or --4m DENSE SPARSE)")
    outs = [reprice(r, args.region, args.pue, args.processor, args.from_processor)
            for r in read_records(Path(args.results[0]))]
    return _emit(args, console, outs, lambda: whatif_lines(outs))


def _add_schedule(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedule", help="when and where to run a job for the least CO2e")
    p.add_argument("--hours", type=float, required=True, help="job length, hours")
    p.add_argument("--profile", required=True, help="CSV: timestamp,region,kg_per_kwh (hourly)")
    p.add_argument("--regions", help="comma-separated; the first is where 'now' is (default: all in the profile)")
    p.add_argument("--watts", type=float, required=True, help="average IT power of the whole job, W")
    p.add_argument("--pue", type=float, default=1.0, help="facility PUE (default 1.0)")
    _json_arg(p)


def _schedule(args: argparse.Namespace, console: Console) -> int:
    from dataclasses import asdict

    from harness.carbon.schedule import load_profile, plan_job
    from harness.report.carbon_text import schedule_lines

    if not args.watts > 0:
        raise UsageError(f"--watts must be a positive number, got {args.watts}")
    regions = [r for r in args.regions.split(",") if r] if args.regions else None
    plan = plan_job(load_profile(args.profile), args.hours, args.watts / 1000.0, regions, args.pue)
    return _emit(args, console, asdict(plan), lambda: schedule_lines(plan))


def _run_options(args: argparse.Namespace):
    from harness.runner.plan import RunOptions

    return RunOptions(
        workload=args.workload, seed=args.seed, corpus=args.corpus, data=args.data, target_loss=args.target_loss,
        max_steps=args.max_steps, output_dir=args.output_dir, **_pricing(args), meter=args.meter,
        meter_options=_meter_options(args), sample_hz=args.sample_hz, progress=not args.no_progress,
        allow_cpu=args.allow_cpu, mesh=args.mesh, coordinator=args.coordinator, num_processes=args.num_processes,
        process_id=args.process_id, peer_timeout_s=args.peer_timeout, framework=args.framework,
        steps_per_dispatch=args.steps_per_dispatch, keep_weights=not args.no_weights,
        loadgen_log_dir=args.loadgen_log_dir)


def _loadgen_log_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--loadgen-log-dir", metavar="DIR",
                   help=f"also write {what} into DIR when done (mlperf_log_detail.txt, mlperf_log_summary.txt): the "
                        "folder MLPerf Power's power_client names with -L")


def _add_run(sub: argparse._SubParsersAction) -> None:
    from harness.runner.cluster import LOST_AFTER_S

    p = sub.add_parser("run", help="train a workload to its quality target, metered")
    p.add_argument("--workload", required=True, help="workload name (see `harness list`)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the data order (default 0)")
    p.add_argument("--runs", type=int, default=1,
                   help="N runs on seeds seed..seed+N-1, olympic-scored for time and energy (N >= 3)")
    p.add_argument("--corpus", default="default", help="default | control (procedural corpus variant)")
    _data_args(p)
    p.add_argument("--max-steps", type=int, help="step budget (default: the workload's)")
    p.add_argument("--steps-per-dispatch", type=int, metavar="K",
                   help="training steps one compiled call runs (JAX; default: the workload's); the run gets the "
                        "largest K' dividing K, the eval period and the budget")
    _output_arg(p)
    _carbon_args(p)
    _meter_args(p)
    _sample_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no live display")
    _weights_arg(p)
    _loadgen_log_arg(p, "the timed window as LoadGen's power_begin..power_end")
    p.add_argument("--allow-cpu", action="store_true",
                   help="run a workload sized for an accelerator (dense-base, switch-base) on the CPU anyway")
    _mesh_arg(p)
    p.add_argument("--framework", default="jax", help="jax | tensorflow (needs the tensorflow extra)")
    p.add_argument("--coordinator", help="multi-process run: HOST:PORT of process 0 (jax.distributed)")
    p.add_argument("--num-processes", type=int, help="multi-process run: how many processes")
    p.add_argument("--process-id", type=int, help="multi-process run: this process's index, 0..N-1")
    p.add_argument("--peer-timeout", type=float, default=LOST_AFTER_S,
                   help=f"multi-process run: seconds without a heartbeat before a process counts as lost "
                        f"(default {LOST_AFTER_S:g})")


def _run(args: argparse.Namespace, console: Console) -> int:
    from harness.report.summary import plan_lines, run_summary
    from harness.results.schema import Status
    from harness.runner.execute import PeerLost, RunAborted, execute, leave_now
    from harness.runner.plan import plan

    opts = _run_options(args)
    if args.loadgen_log_dir is not None and args.runs != 1:
        raise UsageError("--loadgen-log-dir takes one run (MLPerf Power's client measures one); give --runs 1")
    if args.runs != 1:
        return _run_set(args, opts, console)
    p = plan(opts)
    where = p.placement
    for line, style in plan_lines(opts, p):
        console.print(line, highlight=False, style=style)
    try:
        run_dir, record = execute(opts, p)
    except PeerLost as e:
        written = "result written with status aborted" if where.process == 0 else "process 0 writes the result"
        console.print(f"{e}: {written}", style="bold red", highlight=False)
        leave_now(1)  # the framework's shutdown would wait for the lost process
    except (KeyboardInterrupt, RunAborted):
        console.print("interrupted: result written with status aborted", style="bold red")
        return 130
    if where.process != 0:
        console.print(f"process {where.process}: {record['status']}; its figures went to process 0, which writes "
                      f"{run_dir / 'result.json'}", highlight=False)
        return 0 if record["status"] == Status.CONVERGED else 1
    console.print(run_summary(record, str(run_dir / "result.json")))
    for line in (*record.energy.warnings, *record.energy.flags):
        console.print(f"  warning: {line}", highlight=False, style="yellow")
    _say_missing(console, record)
    return run_exit_code(record)


def _say_missing(console: Console, record) -> None:
    if record.files_missing:
        why = sorted(set(record.files_missing.values()))
        console.print(f"NOT WRITTEN: {', '.join(record.files_missing)} ({'; '.join(why)}): this record does not count",
                      style="bold red", highlight=False)


def run_exit_code(record) -> int:
    """0 only for a run that reached its target with a complete energy figure and every file written."""
    return 0 if record.converged and record.complete else 1


def _run_set(args: argparse.Namespace, opts, console: Console) -> int:
    from harness.report.summary import run_line
    from harness.runner.execute import RunAborted
    from harness.runner.repeat import run_repeated

    try:
        set_dir, score = run_repeated(opts, args.runs, on_run=lambda r: console.print(run_line(r), highlight=False))
    except (KeyboardInterrupt, RunAborted):
        console.print("interrupted: the finished runs are scored in score.json", style="bold red")
        return 130
    t, e = score["time_to_target_s"], score["energy_to_target_j"]
    console.print(f"{score['workload']} x{args.runs}: time to target {_scored(t, 's')} ({t['reason']}); energy to "
                  f"target {_scored(e, 'J')} ({score['energy_method']}; {e['reason']}); convergence: "
                  f"{score['convergence']['verdict']}\nscore: {set_dir / 'score.json'}", highlight=False)
    _say(console, [f"  does not count: {p}" for p in score["problems"]], style="bold red")
    return 0 if score["valid"] and not score["problems"] else 1


def _scored(score: dict, unit: str) -> str:
    return f"{score['value']:.2f} {unit}" if score["valid"] else "INVALID"


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="your results beside reference results, with ratios")
    p.add_argument("path", help="a result.json, a run directory, a --runs set or a folder of runs")
    p.add_argument("--reference", help="reference results folder (default: the reference_results/ of the "
                                       "checkout harness is installed from, else ./reference_results)")
    _json_arg(p)


def _compare(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.compare import compare, compare_inference, default_reference
    from harness.report.tables import compare_inference_lines, compare_lines
    from harness.results.inference import InferenceRecord
    from harness.results.reader import read_records, runs_only

    ref_dir = Path(args.reference) if args.reference else default_reference()
    if ref_dir is None:
        raise UsageError("no reference_results/ folder found (neither in the checkout harness is installed from nor "
                         "here); give --reference DIR")
    if not ref_dir.is_dir():
        raise UsageError(f"--reference {ref_dir}: not a directory (give a folder of reference runs)")
    notes: list[str] = []
    yours = read_records(Path(args.path), skipped=notes.append)
    reference = read_records(ref_dir, skipped=lambda line: notes.append(f"reference: {line}"))
    yours_served = [r for r in yours if isinstance(r, InferenceRecord)]
    reference_served = [r for r in reference if isinstance(r, InferenceRecord)]
    trained = [r for r in yours if not isinstance(r, InferenceRecord)]
    entries = compare(runs_only(trained, notes.append),
                      runs_only([r for r in reference if not isinstance(r, InferenceRecord)], notes.append,
                                why="not training runs (reference)")) if trained or not yours_served else []
    inference = compare_inference(yours_served, reference_served) if yours_served else []
    if args.json:
        return _emit(args, console, entries + inference if inference else entries, list)
    _say(console, [f"reference: {ref_dir}", *notes])
    for item, style in compare_lines(entries) if entries else ():
        console.print(item, highlight=False, style=style)
    _say(console, compare_inference_lines(inference))
    return 0


def _add_package(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("package", help="lay runs out as an MLPerf submission package")
    p.add_argument("paths", nargs="+", help="run directories or folders holding them")
    p.add_argument("--org", required=True, help="submitting organisation")
    p.add_argument("--system", required=True, help="system name (systems/<system>.json)")
    _output_arg(p, "submission", "the package (<org>/)")
    p.add_argument("--output", dest="output_dir", help=argparse.SUPPRESS)  # the name before --output-dir
    p.add_argument("--status", default="available", help="system status: available | preview | rdi")


def _package(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.mlperf.package import build_package

    root = build_package([Path(p) for p in args.paths], Path(args.output_dir), args.org, args.system, args.status,
                         say=lambda line: console.print(line, highlight=False, style="yellow"))
    console.print(f"package: {root} (check it with: harness check {root})", highlight=False)
    return 0


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="MLCommons checkers with our rules plus energy checks on a package")
    p.add_argument("path", help="a package folder (holding <org>/harness_manifest.json), a run directory, a "
                                "--runs set directory or a metered command's folder")


def _check(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.mlperf.check import check_package, check_run_or_set

    path = Path(args.path)
    if not path.is_dir():
        raise UsageError(f"{path}: not a directory (give a package, a run directory or a --runs set)")
    is_run = (path / "result.json").is_file() or (path / "score.json").is_file()
    notes: list[str] = []
    problems = check_run_or_set(path, notes) if is_run else check_package(path, notes)
    for line in problems:
        print(line)
    for line in notes:
        print(f"note: {line}", file=sys.stderr)
    print(f"{len(problems)} problem(s)" if problems else "all checks passed", file=sys.stderr)
    return 1 if problems else 0


def _add_meters(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meters", help="which energy meters work here, what they measure, and why not")
    _json_arg(p)
    _meter_args(p, choose=False)


def _meters(args: argparse.Namespace, console: Console) -> int:
    from harness.meters import MeterRequest
    from harness.meters.doctor import diagnose
    from harness.report.tables import meters_table
    from harness.session import accelerators

    rows = diagnose(MeterRequest(**_meter_options(args)), accelerators("jax"))
    if args.json:
        return _emit(args, console, rows, list)
    console.print(meters_table(rows))
    for r in rows:  # plugins that did not load: one line each, and the command still succeeds
        if not r["loaded"]:
            console.print(r["reason"], highlight=False, soft_wrap=True)
    return 0


def _add_import_power(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-power", help="attach a node power log, or an MLPerf Power session, to a finished "
                                            "run or inference record")
    p.add_argument("run_dir", help="run or inference record directory (holds result.json)")
    p.add_argument("log", help="power log: lines 'Time,<MM-DD-YYYY HH:MM:SS.fff or unix s>,Watts,<W>,...'; or the "
                               "session folder power-dev's power_client wrote (power/, ranging/, run_1/)")
    p.add_argument("--utc-offset", type=float, default=0.0,
                   help="hours the log's clock is ahead of UTC, for date-form timestamps (default 0)")


def _import_power(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.summary import import_lines
    from harness.runner.power_import import import_power

    record = import_power(Path(args.run_dir), Path(args.log), args.utc_offset)
    _say(console, import_lines(record))
    return 0


def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="several workloads over seeds, interleaved, with confidence intervals")
    p.add_argument("--workloads", help="comma-separated; first is baseline (default dense-small,switch-small)")
    p.add_argument("--seeds", type=int, help="seeds per workload (default 3)")
    p.add_argument("--corpus",
                   help="corpora, comma-separated (default: both, so the report shows where sparse does not win)")
    _data_args(p)
    p.add_argument("--sweep", help="experts=2,4,8,16,32: Switch variants at matched activated FLOPs")
    _output_arg(p)
    _carbon_args(p)
    _meter_args(p)
    _sample_arg(p)
    p.add_argument("--frameworks",
                   help="comma-separated: jax, tensorflow; every workload runs in each (the first is baseline)")
    p.add_argument("--resume", help="finish an interrupted study: its folder (<output>/<utc>-study-<id>)")
    _mesh_arg(p)
    _weights_arg(p)
    p.add_argument("--inference", action="store_true",
                   help="serve the study's trained runs under LoadGen over a batch sweep: dense / Switch J per token")
    p.add_argument("--from", dest="from_dir", help="--inference: a finished study (or campaign) to serve, "
                                                   "instead of training one first")
    p.add_argument("--batches", help="--inference: comma-separated batch sizes (default 1,4,16,64)")
    _serving_args(p, "--inference: ")


def _study(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.summary import run_line
    from harness.runner.plan import RunOptions
    from harness.study.campaign import study_and_report

    base = RunOptions(workload="", meter=args.meter, meter_options=_meter_options(args), progress=False,
                      **_pricing(args), sample_hz=args.sample_hz, mesh=args.mesh,
                      data=str(Path(args.data).resolve()) if args.data else None, target_loss=args.target_loss,
                      keep_weights=not args.no_weights)

    def listed(text: str | None) -> list[str] | None:
        return None if text is None else [x for x in text.split(",") if x]

    asked = {"workloads": listed(args.workloads), "seeds": args.seeds, "corpora": listed(args.corpus),
             "sweep": args.sweep, "frameworks": listed(args.frameworks)}
    if args.inference:
        from harness.study.inference import sweep

        # A bad list, or a sweep a stream scenario cannot serve, fails before anything trains.
        serve = _serving_options(args, run_dir="")
        batches = sweep(serve.scenario, _inference_batches(args.batches), serve.samples_per_query)
    if not (args.inference and args.from_dir):
        campaign, md, page = study_and_report(asked, Path(args.output_dir), base,
                                              on_run=lambda r: console.print(run_line(r), highlight=False),
                                              resume=Path(args.resume) if args.resume else None)
        console.print(md.read_text(), highlight=False, markup=False)
        console.print(f"study: {campaign} (harness report {campaign} builds this report again)\nreport: {md} and "
                      f"{page}", highlight=False)
    if not args.inference:
        return 0
    from harness.report.serving_console import infer_line
    from harness.study.inference import report_inference, serve_study, study_dirs

    for study_dir in study_dirs(Path(args.from_dir) if args.from_dir else campaign):
        summary = serve_study(study_dir, batches, serve,
                              on_record=lambda r: console.print(infer_line(r), highlight=False, markup=False))
        md = report_inference(study_dir, summary, serve)
        console.print(md.read_text(), highlight=False, markup=False)
        console.print(f"inference report: {md}", highlight=False)
    return 0


def _inference_batches(text: str | None) -> list[int] | None:
    """--batches as a list (None: not given)."""
    if text is None:
        return None
    try:
        batches = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise UsageError(f"--batches must be comma-separated integers, e.g. 1,4,16,64; got {text!r}") from None
    if not batches or min(batches) < 1:
        raise UsageError(f"--batches must be positive integers, got {text!r}")
    return batches


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="report.md and report.html from runs, studies or study campaigns")
    p.add_argument("paths", nargs="+", help="study campaign folders (what harness study prints), study "
                                            "folders, run directories or folders of runs")
    _output_arg(p, None, f"the report (default: a new folder <utc>-report-<id> under {DEFAULT_OUTPUT}/)")


def _report(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.build import NoRunsFound, build_report

    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.is_dir():
            raise UsageError(f"{p}: not a directory (give study campaign, study or run directories)")
    try:
        md, page = build_report(paths, Path(args.output_dir) if args.output_dir else None, root=Path(DEFAULT_OUTPUT),
                                say=lambda line: console.print(f"skipped: {line}", highlight=False, style="yellow"))
    except NoRunsFound as e:
        return _serving_report(args, paths, console, e)  # no training runs: inference records only, or nothing
    console.print(f"report: {md} and {page}", highlight=False)
    return 0


def _serving_report(args: argparse.Namespace, paths: list, console: Console, refused: UsageError) -> int:
    """harness report on inference records alone: the serving report; with none, the training report's own error
    (`refused`)."""
    from pathlib import Path

    from harness.report.serving_report import serving_report
    from harness.results.inference import InferenceRecord
    from harness.results.reader import read_records
    from harness.results.writer import new_folder

    # What could not be read was said already, by the training report that found no runs.
    records = [r for p in paths for r in read_records(p, skipped=lambda line: None) if isinstance(r, InferenceRecord)]
    if not records:
        raise refused
    out = Path(args.output_dir) if args.output_dir else new_folder(Path(DEFAULT_OUTPUT), "report")
    console.print(f"report: {serving_report(records, out)}", highlight=False)
    return 0


def _add_claim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("claim", help="judge an efficiency claim (CLAIM.toml) on measured runs: SUPPORTED, NOT "
                                     "SUPPORTED, INCONCLUSIVE or CANNOT BE ASSESSED")
    p.add_argument("claim_file", help="the claim, TOML: text, metric, workload, subject, baseline, relation, value")
    _output_arg(p, None, "claim.json and claim.md (default: the claim file's folder)")
    _json_arg(p)


def _claim(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.claims.assess import judge
    from harness.report.claims.render import lines
    from harness.report.claims.verdict import SUPPORTED

    result, json_path, md_path = judge(Path(args.claim_file), Path(args.output_dir) if args.output_dir else None)
    _emit(args, console, result, lambda: [*lines(result), f"written: {json_path} and {md_path}"])
    return 0 if result["verdict"] == SUPPORTED else 1


def _add_project(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="the seed paper's training runs (Table 4) projected onto this system's "
                                       "measured efficiency: energy, device-days and CO2e, labelled projected")
    p.add_argument("path", help="a result.json, a run directory, a --runs set or a folder of runs")
    p.add_argument("--to", default="all", help="all, or comma-separated: gpt3, switch, gshard, t5, meena")
    p.add_argument("--region", help="carbon region to price the projection in (default: the run's own)")
    p.add_argument("--pue", type=float, help="datacenter PUE (default: the run's own, or the region's)")
    p.add_argument("--allow-modelled", action="store_true",
                   help="project from modelled energy too (refused otherwise); every such line is stamped")
    _json_arg(p)


def _project(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.project import lines, project
    from harness.results.reader import read_records, runs_only

    notes: list[str] = []
    out = project(runs_only(read_records(Path(args.path), skipped=notes.append), notes.append), args.to,
                  args.region, args.pue, args.allow_modelled)
    if args.json:
        return _emit(args, console, out["rows"], list)
    _say(console, [*notes, *lines(out)])
    return 0


def _add_site(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("site", help="a static results site across packages, sets, studies and runs (works "
                                    "offline from file://)")
    p.add_argument("paths", nargs="+", help="packages, --runs sets, study campaigns or folders of runs")
    _output_arg(p, "site", "the site")


def _site(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from harness.report.site.build import build_site

    index = build_site([Path(p) for p in args.paths], Path(args.output_dir),
                       say=lambda line: console.print(f"not in the site: {line}", highlight=False, style="yellow"))
    console.print(f"site: {index} (open it in a browser; it needs no server)", highlight=False)
    return 0


def _add_meter(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("meter", help="run any command under the meters: harness meter [options] -- CMD ARGS...")
    _meter_args(p)
    _carbon_args(p)
    _sample_arg(p)
    _output_arg(p)
    p.add_argument("--name", help="what to call it in the record and emissions.csv (default: the program)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS",
                   help="the command and its arguments, after --")


def _meter(args: argparse.Namespace, console: Console | None) -> int:
    from harness.report.summary import command_lines
    from harness.runner.command import CommandOptions, meter_command

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    run_dir, record, code = meter_command(CommandOptions(
        argv=argv, meter=args.meter, meter_options=_meter_options(args), **_pricing(args), sample_hz=args.sample_hz,
        output_dir=args.output_dir, name=args.name))
    for line in command_lines(record, run_dir / "result.json"):
        print(f"harness meter: {line}", file=sys.stderr)
    # The command's own status is passed back; a command that succeeded but whose record is not whole is not.
    return code if code != 0 or not record.files_missing else 1


def _add_infer(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="serve a trained run under MLPerf LoadGen, metered: J per generated token")
    p.add_argument("run_dir", help="a run folder harness run wrote (holds result.json and weights.npz)")
    p.add_argument("--batch", type=int, default=16, help="most sequences a decoder call holds (default 16)")
    _serving_args(p)
    p.add_argument("--min-queries", type=int, default=1, help="LoadGen's min_query_count (default 1)")
    p.add_argument("--target-qps", type=float, help="Server's arrival rate / Offline's expected rate "
                                                    "(default: from the warm-up)")
    p.add_argument("--latency-ms", type=float, help="Server: p99 query latency bound")
    p.add_argument("--ttft-ms", type=float, help="time-to-first-token bound")
    p.add_argument("--tpot-ms", type=float, help="time-per-output-token bound")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="Server: how long a batch waits for more queries (default 2)")
    p.add_argument("--samples-per-query", type=int, default=8, help="MultiStream: samples a query (default 8)")
    p.add_argument("--user-conf", help="LoadGen's user.conf (model.scenario.key = value; model 'harness' or *)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); else sampled")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--no-accuracy", action="store_true", help="skip LoadGen's AccuracyOnly pass")
    _loadgen_log_arg(p, "LoadGen's logs of the performance run")
    _output_arg(p)
    _carbon_args(p)
    _meter_args(p)
    _sample_arg(p)
    _json_arg(p)


def _infer(args: argparse.Namespace, console: Console) -> int:
    from harness.infer.execute import infer
    from harness.report.serving_console import infer_lines
    from harness.results.encoding import to_json

    opts = _serving_options(
        args, run_dir=args.run_dir, batch=args.batch, min_queries=args.min_queries, target_qps=args.target_qps,
        latency_ms=args.latency_ms, ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, max_wait_ms=args.max_wait_ms,
        samples_per_query=args.samples_per_query, user_conf=args.user_conf, temperature=args.temperature,
        seed=args.seed, accuracy=not args.no_accuracy, output_dir=args.output_dir,
        loadgen_log_dir=args.loadgen_log_dir)
    out, record = infer(opts)
    _emit(args, console, to_json(record), lambda: infer_lines(record, str(out / "result.json")))
    _say_missing(console, record)
    return 0 if record.valid and not record.files_missing else 1


# Every command: (declares its subparser and flags, runs it), in the order `harness --help` lists them.
_COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None],
                           Callable[[argparse.Namespace, Console], int]]] = {
    "list": (_add_list, _list),
    "run": (_add_run, _run),
    "infer": (_add_infer, _infer),
    "regions": (_add_regions, _regions),
    "footprint": (_add_footprint, _footprint),
    "whatif": (_add_whatif, _whatif),
    "schedule": (_add_schedule, _schedule),
    "meters": (_add_meters, _meters),
    "compare": (_add_compare, _compare),
    "package": (_add_package, _package),
    "check": (_add_check, _check),
    "import-power": (_add_import_power, _import_power),
    "study": (_add_study, _study),
    "meter": (_add_meter, _meter),
    "claim": (_add_claim, _claim),
    "project": (_add_project, _project),
    "site": (_add_site, _site),
    "report": (_add_report, _report),
}


if __name__ == "__main__":
    sys.exit(main())
