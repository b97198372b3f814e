"""The fault matrix: what the harness does when things go wrong, each row of README "Guarantees" tested.

Killed runs, a loss that turns NaN, meters that die, output paths that cannot be written, two runs into one
folder, damaged records in front of every reader, and an interrupted study resumed.
"""

from __future__ import annotations

import json
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
    assert main(["report", str(run_dir)]) == 0
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


def test_an_external_meter_that_stops_answering_is_incomplete_not_measured(tmp_path):
    counter = tmp_path / "calls"
    script = tmp_path / "bmc"
    # Answers its first 5 calls, then fails: the rest of the window would be a straight-line bridge.
    script.write_text(f"#!/bin/sh\nn=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n"
                      "[ $n -lt 5 ] && echo '150 W' && exit 0\nexit 1\n")
    script.chmod(0o755)
    proc = harness("run", "--workload", "dense-tiny", "--max-steps", "1500", "--target-loss", "0.01",
                   "--output-dir", str(tmp_path / "out"), "--no-progress", "--meter", "cpu-model,external",
                   "--meter-command", str(script), "--meter-hz", "10", "--cpu-tdp", "10")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    e = only_result(tmp_path / "out")["energy"]
    assert e["method"] == "measured:external-command" and not e["complete"]
    assert e["components"]["external/node"]["coverage"] < 0.95
    assert any("bridged by interpolation" in why for why in e["incomplete_reasons"])
    assert "INCOMPLETE" in proc.stdout


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
def good_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("good")
    assert main(["run", "--workload", "switch-tiny", "--meter", "fake", "--no-progress", "--output-dir",
                 str(out)]) == 0
    return only_run_dir(out)


def _damage(run_dir: Path, kind: str) -> None:
    f = run_dir / "result.json"
    if kind == "missing":
        f.unlink()
    elif kind == "truncated":
        f.write_text(f.read_text()[:200])
    elif kind == "list-shaped":
        f.write_text(json.dumps([1, 2, 3]))
    elif kind == "future-schema":
        f.write_text(json.dumps(json.loads(f.read_text()) | {"schema": "harness.result/3"}))
    elif kind == "tampered":
        with open(run_dir / "power.csv", "a") as trace:
            trace.write("9999999999,1e9\n")


DAMAGE = {"missing": "missing", "truncated": "not valid JSON", "list-shaped": "not an object",
          "future-schema": "harness.result/3", "tampered": "sha256 differs"}
COMMANDS = {
    "report": lambda d, tmp: ["report", str(d), "--output-dir", str(tmp / "rep")],
    "compare": lambda d, tmp: ["compare", str(d / "result.json"), "--reference", str(tmp)],
    "whatif": lambda d, tmp: ["whatif", str(d / "result.json"), "--region", "europe-north1"],
    "package": lambda d, tmp: ["package", str(d), "--org", "acme", "--system", "vm", "--output-dir", str(tmp / "pkg")],
    "import-power": lambda d, tmp: ["import-power", str(d), str(tmp / "log.txt")],
}
# Readers that never touch the traces cannot see a tampered one; the packagers and importers check hashes.
HASH_CHECKING = {"package", "import-power"}


@pytest.mark.parametrize("kind", list(DAMAGE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_reader_names_the_damage_in_one_line(good_run, tmp_path, capsys, kind, command):
    if kind == "tampered" and command not in HASH_CHECKING:
        pytest.skip("this reader does not read the traces")
    run_dir = tmp_path / "run"
    shutil.copytree(good_run, run_dir)
    (tmp_path / "log.txt").write_text("Time,1.0,Watts,100\n")
    _damage(run_dir, kind)
    capsys.readouterr()
    assert main(COMMANDS[command](run_dir, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness: error:")
    assert DAMAGE[kind] in err[0] or (kind == "missing" and "result.json" in err[0]), err[0]


def test_check_fails_a_tampered_trace(good_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(good_run, run_dir)
    _damage(run_dir, "tampered")
    assert main(["check", str(run_dir)]) == 2  # the reader refuses to package a tampered run
    assert "sha256 differs" in capsys.readouterr().err


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
    assert main(["study", "--resume", str(campaign), "--seeds", "3"]) == 2  # a different study: refused
