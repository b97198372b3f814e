"""The fault matrix: what the harness does when things go wrong, each row of docs/timing.md "Guarantees" tested.

Killed runs, a loss that turns NaN, meters that die, output paths that cannot be written, two runs into one
folder, damaged records in front of every reader, and an interrupted study resumed.
"""

from __future__ import annotations

import html
import json
import math
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import harness, only_result, only_run_dir, run_dirs

from harness.cli import main, run_exit_code
from harness.meters import FakeMeter
from harness.results.reader import read_record
from harness.runner.execute import execute
from harness.runner.plan import RunOptions, plan
from workloads.registry import WORKLOADS

pytestmark = pytest.mark.e2e

LONG_RUN = ("run", "--workload", "dense-tiny", "--max-steps", "100000", "--target-loss", "0.01", "--meter", "fake")


def _start_and_wait_for_training(tmp_path: Path, seconds: float = 2.5) -> subprocess.Popen:
    """A long dense-tiny run, `seconds` into its timed window (by its own progress lines: "step N  T.Ts ...")."""
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *LONG_RUN, "--output-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the plain progress lines start once the timed window is open
        fields = line.split()
        if fields[:1] == ["step"] and float(fields[2].rstrip("s")) >= seconds:
            return proc
    raise AssertionError("the run never started training")


def test_sigkill_leaves_a_record_that_every_reader_calls_interrupted(tmp_path, capsys):
    proc = _start_and_wait_for_training(tmp_path / "runs")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    run_dir = only_run_dir(tmp_path / "runs")
    raw = json.loads((run_dir / "result.json").read_text())
    assert raw["status"] == "running" and raw["training"]["steps"] > 0  # written at run_start and every eval
    r = read_record(run_dir)
    assert r.status == "interrupted" and "no final record" in r.status_note and not r.status.final
    capsys.readouterr()
    assert main(["check", str(run_dir)]) == 1
    assert "interrupted (no final record" in capsys.readouterr().out
    assert main(["report", str(run_dir), "--output-dir", str(run_dir)]) == 0
    report = (run_dir / "report.md").read_text()
    assert "| 1: 1 interrupted (no final record) |" in report  # counted, never as converged, and said
    assert main(["whatif", str(run_dir), "--region", "europe-north1"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as read, whatever the console's wrapping
    assert "(interrupted)" in out and "only what was spent up to its last record" in out
    assert "energy still synthetic" in out or "energy still measured" in out


def test_a_loss_that_turns_nan_stops_the_run_as_diverged(tmp_path):
    spec = WORKLOADS["dense-tiny"]
    wild = replace(spec, optimizer=replace(spec.optimizer, learning_rate=1e6, warmup_steps=1, grad_clip_norm=1e30))
    opts = RunOptions(workload="dense-tiny", spec=wild, meter="fake", progress=False, output_dir=str(tmp_path))
    run_dir, r = execute(opts, plan(opts))
    assert r.status == "diverged" and "non-finite" in r.error
    assert r.training.steps < r.target.max_steps  # stopped at the next host sync, not at the budget
    assert r.energy.total_j > 0 and r.energy.window == "run_start..run_stop"
    assert run_exit_code(r) == 1
    log = (run_dir / "mllog.txt").read_text()
    assert '"status": "aborted"' in log and '"harness_status": "diverged"' in log


class _DyingFake(FakeMeter):
    """The fake meter, until `after_s` into its life: then every read fails."""

    def __init__(self, after_s: float) -> None:
        super().__init__()
        self.after_s = after_s

    def read(self) -> dict[str, float]:
        if self.elapsed() > self.after_s:
            raise OSError("meter unplugged")
        return super().read()


def test_a_meter_that_dies_mid_run_leaves_an_incomplete_flagged_figure(tmp_path, capsys):
    opts = RunOptions(workload="dense-tiny", meter="fake", progress=False, output_dir=str(tmp_path),
                      target_loss=0.01, max_steps=400)
    p = plan(opts)
    p = replace(p, meters=[_DyingFake(after_s=0.5)])
    run_dir, r = execute(opts, p)
    e = r.energy
    assert not e.complete and e.total_j is None
    assert any("failed reading" in why and "meter unplugged" in why for why in e.incomplete_reasons)
    assert run_exit_code(r) == 1
    assert main(["check", str(run_dir)]) == 1
    assert "energy figure incomplete" in capsys.readouterr().out


def test_an_external_meter_that_stops_answering_is_incomplete_not_measured(tmp_path, capsys):
    counter = tmp_path / "calls"
    script = tmp_path / "bmc"
    # Answers its first 5 calls, then fails: the rest of the window would be a straight-line bridge.
    script.write_text(f"#!/bin/sh\nn=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n"
                      "[ $n -lt 5 ] && echo '150 W' && exit 0\nexit 1\n")
    script.chmod(0o755)
    # In-process: a subprocess adds nothing here. 400 steps (the dying meter's run above: the same compiled
    # program): a window of ~2 s, twice what 5 answers at 10 Hz can cover.
    code = main(["run", "--workload", "dense-tiny", "--max-steps", "400", "--target-loss", "0.01", "--output-dir",
                 str(tmp_path / "out"), "--no-progress", "--meter", "cpu-model,external", "--meter-command",
                 str(script), "--meter-hz", "10", "--cpu-tdp", "10"])
    out, err = capsys.readouterr()
    assert code == 1, out + err
    e = only_result(tmp_path / "out")["energy"]
    assert e["method"] == "measured:external-command" and not e["complete"]
    assert e["components"]["external/node"]["coverage"] < 0.95
    assert any("bridged by interpolation" in why for why in e["incomplete_reasons"])
    assert "INCOMPLETE" in out


@pytest.mark.parametrize("where", ["/proc/harness-cannot-write-here", "{tmp}/a-file/below-it"])
def test_an_output_path_that_cannot_be_written_fails_before_any_work(tmp_path, where):
    (tmp_path / "a-file").write_text("not a directory")
    proc = harness("run", "--workload", "dense-tiny", "--meter", "fake", "--output-dir", where.format(tmp=tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--output-dir" in proc.stderr
    assert "cannot write there" in proc.stderr


def test_two_runs_into_one_output_dir_both_keep_their_record(tmp_path):
    argv = [sys.executable, "-m", "harness.cli", "run", "--workload", "dense-tiny", "--meter", "fake",
            "--no-progress", "--output-dir", str(tmp_path)]
    procs = [subprocess.Popen(argv + ["--seed", str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for s in (0, 1)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    runs = run_dirs(tmp_path)
    assert len(runs) == 2
    assert sorted(read_record(r, verify_files=True).seed for r in runs) == [0, 1]


# -- every reader on damaged records ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_run(switch_tiny_run) -> Path:
    """A converged switch-tiny run (the session's shared one, tests/conftest.py): every reader copies it first."""
    return switch_tiny_run


def _damage(run_dir: Path, kind: str) -> None:
    f = run_dir / "result.json"
    if kind == "missing":
        f.unlink()
    elif kind == "truncated":
        f.write_text(f.read_text()[:200])
    elif kind == "list-shaped":
        f.write_text(json.dumps([1, 2, 3]))
    elif kind == "future-schema":
        f.write_text(json.dumps(json.loads(f.read_text()) | {"schema": "harness.result/4"}))
    elif kind == "tampered":
        with open(run_dir / "power.csv", "a") as trace:
            trace.write("9999999999,1e9\n")


DAMAGE = {"missing": "missing", "truncated": "not valid JSON", "list-shaped": "not an object",
          "future-schema": "harness.result/4", "tampered": "sha256 differs"}


def _claim_on(run_dir: Path, tmp: Path) -> list[str]:
    (tmp / "claim.toml").write_text(f'text = "t"\nmetric = "energy_to_target"\nworkload = "switch-tiny"\n'
                                    f'subject = "{run_dir}"\nbaseline = "{run_dir}"\nrelation = "<="\nvalue = 1.0\n')
    return ["claim", str(tmp / "claim.toml"), "--output-dir", str(tmp / "claim")]


COMMANDS = {
    "report": lambda d, tmp: ["report", str(d), "--output-dir", str(tmp / "rep")],
    "compare": lambda d, tmp: ["compare", str(d / "result.json"), "--reference", str(tmp)],
    "whatif": lambda d, tmp: ["whatif", str(d / "result.json"), "--region", "europe-north1"],
    "package": lambda d, tmp: ["package", str(d), "--org", "acme", "--system", "vm", "--output-dir", str(tmp / "pkg")],
    "import-power": lambda d, tmp: ["import-power", str(d), str(tmp / "log.txt")],
    "project": lambda d, tmp: ["project", str(d), "--allow-modelled"],
    "check": lambda d, tmp: ["check", str(d)],
    "site": lambda d, tmp: ["site", str(d), "--output-dir", str(tmp / "site")],
    "claim": _claim_on,
}
# Readers that never touch the traces cannot see a tampered one: the packagers, importers and checkers can.
READS_TRACES = {"package", "import-power", "check", "site", "claim"}
CASES = [(c, k) for c in COMMANDS for k in DAMAGE if k != "tampered" or c in READS_TRACES]


def _outcome(command: str, kind: str) -> tuple[int, str]:
    """(exit code, where the damage is named): refused in one line on stderr, exit 2, unless the command's answer
    is itself a finding: a claim that cannot be assessed (exit 1), a folder `check` finds no record in (exit 1),
    a site that shows the run with `harness check` failing it (exit 0, said on the page)."""
    if command == "claim":
        return 1, "claim.json"
    if command == "check" and kind == "missing":
        return 1, "stdout"
    if command == "site" and kind == "tampered":
        return 0, "page"
    return 2, "stderr"


@pytest.mark.parametrize("command, kind", CASES)
def test_every_reader_names_the_damage(good_run, tmp_path, capsys, command, kind):
    run_dir = tmp_path / "run"
    shutil.copytree(good_run, run_dir)
    (tmp_path / "log.txt").write_text("Time,1.0,Watts,100\n")
    _damage(run_dir, kind)
    capsys.readouterr()
    code, where = _outcome(command, kind)
    assert main(COMMANDS[command](run_dir, tmp_path)) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if where == "stderr":
        err = err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("harness: error:")
        said = err[0]
    elif where == "stdout":
        said = out
    elif where == "claim.json":
        result = json.loads((tmp_path / "claim" / "claim.json").read_text())
        assert result["verdict"] == "CANNOT BE ASSESSED"
        said = " ".join(result["reasons"])
    else:
        said = html.unescape((tmp_path / "site" / "index.html").read_text())
        assert ">fail (" in said  # the row's harness check column
        said = " ".join(p.read_text() for p in (tmp_path / "site").glob("systems/*/index.html"))
    assert DAMAGE[kind] in said or (kind == "missing" and "result.json" in said), said[-2000:]


def test_a_folder_with_one_damaged_record_is_read_and_the_damage_named(good_run, tmp_path, capsys):
    """Readers of a folder pass over a record they cannot read, and name it with why; nothing is dropped silently."""
    folder = tmp_path / "runs"
    shutil.copytree(good_run, folder / "good")
    shutil.copytree(good_run, folder / "bad")
    _damage(folder / "bad", "truncated")
    # A record copied out of its run folder under another name, then cut short: still a record, still named.
    (folder / "copy.json").write_text((good_run / "result.json").read_text()[:300])
    capsys.readouterr()
    assert main(["site", str(folder), "--output-dir", str(tmp_path / "site")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    page = html.unescape((tmp_path / "site" / "index.html").read_text())
    for named in (out, page):
        assert "Not in the site" in page and f"{folder / 'bad' / 'result.json'}: damaged: not valid JSON" in named
        assert f"{folder / 'copy.json'}: damaged: not valid JSON" in named
    assert main(["report", str(folder), "--output-dir", str(tmp_path / "rep")]) == 0
    assert "skipped: " in capsys.readouterr().out
    assert "bad/result.json: damaged" in (tmp_path / "rep" / "report.md").read_text()
    for argv in (["compare", str(folder), "--reference", str(good_run)], ["project", str(folder), "--allow-modelled"]):
        assert main(argv) == 0
        assert "bad/result.json: damaged: not valid JSON" in " ".join(capsys.readouterr().out.split())


# -- an interrupted study, resumed ---------------------------------------------------------------------------


def test_an_interrupted_study_resumes_with_only_what_is_missing(tmp_path):
    args = ["study", "--workloads", "dense-tiny,switch-tiny", "--seeds", "2", "--corpus", "control", "--meter",
            "fake", "--output-dir", str(tmp_path)]
    assert main(args) == 0
    (campaign,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    study_json = campaign / "control" / "study.json"
    study = json.loads(study_json.read_text())
    done = study["done"]
    # As if the study had been killed during its last run, and one finished record had been edited since.
    del done["switch-tiny/seed1"]
    edited = campaign / "control" / done["dense-tiny/seed0"]["dir"] / "result.json"
    edited.write_text(edited.read_text().replace('"seed": 0', '"seed": 0 '))
    study_json.write_text(json.dumps(study | {"done": done, "status": "running"}))
    kept = {k: v["dir"] for k, v in done.items() if k != "dense-tiny/seed0"}
    assert main(["study", "--resume", str(campaign), "--output-dir", str(tmp_path)]) == 0
    resumed = json.loads(study_json.read_text())
    assert resumed["status"] == "complete"
    assert set(resumed["done"]) == {f"{w}/seed{s}" for w in ("dense-tiny", "switch-tiny") for s in (0, 1)}
    for key, d in kept.items():
        assert resumed["done"][key]["dir"] == d  # finished and unchanged: kept, not run again
    assert resumed["done"]["dense-tiny/seed0"]["dir"] != done["dense-tiny/seed0"]["dir"]  # edited: run again
    assert len(run_dirs(campaign / "control" / "runs")) == 4 + 2
    # The resumed study's report against its runs' figures worked out by hand: each seed's two runs, as recorded.
    runs = {key: read_record(campaign / "control" / run["dir"]) for key, run in resumed["done"].items()}
    (c,) = json.loads((campaign / "comparisons.json").read_text())
    assert c["paired"] and c["pairs_converged"] == 2
    for metric, get in (("energy_to_target", lambda r: r.energy.total_j), ("time_to_target", lambda r: r.timing.run_s),
                        ("steps_to_target", lambda r: r.training.steps)):
        logs = [math.log(get(runs[f"dense-tiny/seed{s}"]) / get(runs[f"switch-tiny/seed{s}"])) for s in (0, 1)]
        assert c[metric]["ratio"] == pytest.approx(math.exp(sum(logs) / 2), rel=1e-12), metric
    assert main(["study", "--resume", str(campaign), "--seeds", "3"]) == 2  # a different study: refused
