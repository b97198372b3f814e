"""A mesh computes what one device computes: the same losses, routing and eval loss over 20 steps on 8
simulated CPU devices (one step a call, and four), with every parameter and the batch sharded as intended; and
`harness run --mesh`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import MESH_ENV, only_result, only_run_dir, with_env

PROBE = Path(__file__).with_name("mesh_probe.py")


def probe(workload: str, *meshes: str) -> dict:
    proc = subprocess.run([sys.executable, str(PROBE), workload, *meshes], capture_output=True, text=True,
                          timeout=300, env=with_env(MESH_ENV))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def switch_runs() -> dict:
    return probe("switch-tiny", "8x1", "2x4", "1x8", "2x4k4")


@pytest.mark.e2e
@pytest.mark.parametrize("mesh", ["8x1", "2x4", "1x8", "2x4k4"])  # 2x4k4: four steps a compiled call
def test_switch_on_a_mesh_computes_the_one_device_function(switch_runs, mesh):
    one, sharded = switch_runs["1"], switch_runs[mesh]
    assert sharded["devices"] == 8
    np.testing.assert_allclose(sharded["loss"], one["loss"], rtol=1e-5)
    assert sharded["eval"] == pytest.approx(one["eval"], rel=1e-5)
    # Routing is the same decision for every token: the same dropped fraction and the same expert loads.
    np.testing.assert_allclose(sharded["dropped"], one["dropped"], atol=1e-7)
    np.testing.assert_allclose(sharded["load"], one["load"], atol=1e-7)


@pytest.mark.e2e
@pytest.mark.parametrize("mesh", ["8x1", "2x4", "1x8"])
def test_shardings_are_as_intended(switch_runs, mesh):
    run = switch_runs[mesh]
    assert run["batch"] == "P(('data', 'expert'),)"  # the batch over every device
    for name, spec in run["params"].items():
        expert = "switch_ffn" in name and name.rsplit("/", 1)[-1] in ("w_in", "b_in", "w_out", "b_out")
        assert spec == ("P('expert',)" if expert else "P()"), name  # experts over "expert", the rest replicated
    assert any("switch_ffn/w_in" in n for n in run["params"])


@pytest.fixture(scope="module")
def data_parallel_runs() -> dict:
    return probe("switch-tiny-dropless,dense-tiny", "8x1")  # one process for both: its start-up is the cost


@pytest.mark.e2e
def test_dropless_data_parallel_computes_the_one_device_function(data_parallel_runs):
    """Dropless routing keeps every expert on every device: the batch split over 8 devices trains as one."""
    runs = data_parallel_runs["switch-tiny-dropless"]
    np.testing.assert_allclose(runs["8x1"]["loss"], runs["1"]["loss"], rtol=1e-5)
    assert runs["8x1"]["eval"] == pytest.approx(runs["1"]["eval"], rel=1e-5)
    np.testing.assert_allclose(runs["8x1"]["load"], runs["1"]["load"], atol=1e-7)
    assert set(runs["8x1"]["dropped"]) == {0.0} and runs["8x1"]["devices"] == 8


@pytest.mark.e2e
def test_dense_data_parallel_computes_the_one_device_function(data_parallel_runs):
    runs = data_parallel_runs["dense-tiny"]
    np.testing.assert_allclose(runs["8x1"]["loss"], runs["1"]["loss"], rtol=1e-5)
    assert runs["8x1"]["eval"] == pytest.approx(runs["1"]["eval"], rel=1e-5)
    assert set(runs["8x1"]["params"].values()) == {"P()"}


@pytest.mark.e2e
def test_harness_run_on_a_mesh_records_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--workload", "switch-tiny", "--mesh",
                           "data=2,expert=4", "--meter", "fake", "--no-progress", "--output-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=with_env(MESH_ENV))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = only_result(tmp_path)
    assert r["status"] == "converged"
    par = r["parallelism"]
    assert (par["data"], par["expert"], par["devices"], par["processes"]) == (2, 4, 8, 1)
    assert len(r["environment"]["hardware"]["devices"]) == 8
    log = (only_run_dir(tmp_path) / "mllog.txt").read_text()
    assert '"key": "expert_parallelism", "value": 4' in log and '"key": "data_parallelism", "value": 2' in log


@pytest.mark.e2e
@pytest.mark.parametrize("mesh, message", [
    ("data=3", "data x expert must equal 8"),
    ("data=1,expert=8,pipeline=2", "--mesh must look like data=D,expert=E"),
    ("data=4,expert=two", "--mesh must look like"),
])
def test_a_bad_mesh_is_one_line_exit_2(mesh, message):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--workload", "switch-tiny", "--mesh", mesh,
                           "--meter", "fake"], capture_output=True, text=True, timeout=120, env=with_env(MESH_ENV))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr


def test_meshes_a_workload_cannot_use_are_refused_before_any_work():
    from workloads.mesh import MeshError, MeshShape, check_mesh, default_mesh
    from workloads.registry import WORKLOADS

    with pytest.raises(MeshError, match="dense and has no experts"):
        check_mesh(WORKLOADS["dense-tiny"], MeshShape(1, 8), 8)
    with pytest.raises(MeshError, match="routes dropless, which keeps every expert on every device"):
        check_mesh(WORKLOADS["switch-tiny-dropless"], MeshShape(2, 4), 8)
    with pytest.raises(MeshError, match="routes its batch of 32 in groups of 32"):
        check_mesh(WORKLOADS["switch-small"], MeshShape(2, 1), 2)  # calibrated as one routing group
    assert default_mesh(WORKLOADS["switch-small"], 8) == MeshShape(1, 1)
    assert default_mesh(WORKLOADS["dense-small"], 8) == MeshShape(8, 1)
    assert default_mesh(WORKLOADS["switch-base"], 8) == MeshShape(8, 1)


@pytest.mark.e2e
def test_harness_run_default_mesh_puts_every_device_on_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--workload", "dense-tiny", "--meter", "fake",
                           "--no-progress", "--output-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env=with_env(MESH_ENV))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    par = only_result(tmp_path)["parallelism"]
    assert (par["data"], par["expert"], par["devices"]) == (8, 1, 8)
