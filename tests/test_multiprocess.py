"""Several processes, one run (jax.distributed, gloo on CPU): the same losses as one process on the same
mesh, every host's energy merged once, and a process that dies leaves an `aborted` result from process 0."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import only_result, only_run_dir, start_processes, with_env

pytestmark = pytest.mark.e2e

# Four steps a compiled call on the two-process mesh (the lost-process runs below take one a call).
RUN = ("run", "--workload", "switch-tiny", "--meter", "fake", "--no-progress", "--steps-per-dispatch", "4")


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "steps.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """The two-process run's folder, and the output folder of one process on the same 2-device mesh: started
    together (the two are independent, and each spends most of its time starting and compiling)."""
    out, single = tmp_path_factory.mktemp("mp"), tmp_path_factory.mktemp("one")
    one = subprocess.Popen([sys.executable, "-m", "harness.cli", *RUN, "--mesh", "data=2", "--output-dir",
                            str(single)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=with_env({"JAX_NUM_CPU_DEVICES": "2"}))
    procs = start_processes(2, *RUN, "--output-dir", str(out))
    outputs = [p.communicate(timeout=300)[0] for p in [*procs, one]]
    assert [p.returncode for p in [*procs, one]] == [0, 0, 0], outputs
    (run_dir,) = [d for d in out.iterdir() if (d / "result.json").is_file()]
    return run_dir, single


@pytest.fixture(scope="module")
def two_process_run(runs) -> Path:
    return runs[0]


def test_two_processes_train_what_one_process_trains_on_the_same_mesh(runs):
    two_process_run, one_process_out = runs
    single = only_result(one_process_out)
    merged = json.loads((two_process_run / "result.json").read_text())
    assert merged["parallelism"]["processes"] == 2 and merged["parallelism"]["devices"] == 2
    assert merged["training"]["steps"] == single["training"]["steps"]
    assert merged["training"]["framework"]["steps_per_dispatch"] == 4
    a, b = _losses(two_process_run), _losses(only_run_dir(one_process_out))
    assert len(a) == len(b) and all(x == pytest.approx(y, rel=1e-5) for x, y in zip(a, b, strict=True))


def test_every_host_is_metered_once_and_the_total_is_their_sum(two_process_run):
    r = json.loads((two_process_run / "result.json").read_text())
    energy = r["energy"]
    hosts = {h["process"]: h for h in energy["hosts"]}
    # Both processes run on this machine: the host-level (here: fake) meter is read by process 0 only.
    assert hosts[0]["leader"] and not hosts[1]["leader"] and hosts[0]["host_id"] == hosts[1]["host_id"]
    assert list(energy["components"]) == ["p0:fake/cpu"]
    assert hosts[1]["total_j"] == 0.0
    assert energy["total_j"] == pytest.approx(hosts[0]["total_j"] + hosts[1]["total_j"])
    # The fake meter draws a constant 50 W: one host's worth over the window, not two.
    assert energy["total_j"] == pytest.approx(50.0 * r["timing"]["run_s"], rel=0.02)
    assert energy["complete"]
    for k in (0, 1):
        assert (two_process_run / f"host_{k}" / "power.csv").is_file()
        assert f"host_{k}/power.csv" in r["files"]
    assert (two_process_run / "host_0" / "power_mllog.txt").is_file()


def _wait_for_training(out: Path, timeout_s: float = 120) -> None:
    """Until process 0's running record says steps were taken (it is rewritten after every evaluation): past
    init, into training, however long init takes on a loaded machine."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for f in out.glob("*/result.json"):
            try:
                if json.loads(f.read_text())["training"]["steps"] > 0:
                    return
            except (ValueError, KeyError):
                pass  # replaced atomically, but read before the first write finished its rename: look again
        time.sleep(0.2)
    raise AssertionError("the run never started training")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP])
def test_a_lost_process_leaves_an_aborted_result_within_the_bound(tmp_path, how):
    # A target no run reaches within a step budget no test waits for: the run is mid-training when process 1 goes.
    procs = start_processes(2, "run", "--workload", "dense-tiny", "--max-steps", "100000", "--target-loss", "0.01",
                            "--meter", "fake", "--no-progress", "--peer-timeout", "5", "--output-dir", str(tmp_path))
    try:
        _wait_for_training(tmp_path)
        procs[1].send_signal(how)  # SIGKILL: connections reset; SIGSTOP: a hang, like a dead NCCL peer
        t0 = time.monotonic()
        out = procs[0].communicate(timeout=90)[0]
        elapsed = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
            p.communicate()
    assert procs[0].returncode == 1, out
    assert elapsed < 60, elapsed
    r = only_result(tmp_path)
    assert r["status"] == "aborted" and "process(es) 1 lost" in r["error"]
    assert not r["energy"]["complete"] and any("process 1" in f and "lower bound" in f for f in r["energy"]["flags"])
    assert r["training"]["steps"] > 0 and r["energy"]["total_j"] > 0
