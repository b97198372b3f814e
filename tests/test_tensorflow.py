"""The TensorFlow implementation against the JAX one: with the same weights the same logits, routing
decisions, dropped tokens and auxiliary losses; from the same start the same training; and `harness run
--framework tensorflow` end to end. oneDNN is off for these tests (tests/conftest.py): its kernels round
differently from XLA's."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import with_env

from workloads.corpus import MarkovMixture
from workloads.jax_impl.models import TransformerLM as JaxLM
from workloads.jax_impl.weights import initial_weights
from workloads.registry import WORKLOADS
from workloads.trainers import build_trainer


@pytest.fixture(scope="module")
def tf():
    """TensorFlow, imported by the first test here that needs it: imported at collection it would cost every
    pytest worker ~7 s, whichever tests it runs."""
    import tensorflow

    return tensorflow


def _tree(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return tree


def _sown(tree: dict, name: str) -> list:
    found = []
    for key, value in tree.items():
        if key == name:
            found.extend(value)
        elif isinstance(value, dict):
            found.extend(_sown(value, name))
    return found


@pytest.mark.parametrize("name", ["dense-tiny", "switch-tiny"])
def test_same_weights_same_logits_routing_and_aux_losses(tf, name):
    from workloads.tf_impl.models import TransformerLM as TfLM

    spec = WORKLOADS[name]
    data = MarkovMixture(spec.corpus)
    batch = data.train_batch(0, 3, spec.batch_size)
    weights = initial_weights(spec, 0, batch)
    forward = jax.jit(lambda p, t: JaxLM(spec.model).apply({"params": p}, t, train=True,
                                                          mutable=["losses", "metrics", "intermediates"]))
    logits_j, sown = forward(_tree(weights), jnp.asarray(batch[:, :-1]))  # jitted, as the trainer runs it
    logits_t, stats = TfLM(spec.model, weights)(tf.constant(batch[:, :-1]), train=True)
    np.testing.assert_allclose(logits_t.numpy(), np.asarray(logits_j), rtol=1e-5, atol=1e-5)
    aux_j = sum(float(a) for a in _sown(sown.get("losses", {}), "aux_loss"))
    assert float(stats["aux_loss"]) == pytest.approx(aux_j, rel=1e-5, abs=1e-9)
    if spec.model.num_experts:
        np.testing.assert_array_equal(stats["expert"].numpy(), np.stack(_sown(sown["intermediates"], "expert")))
        dropped = np.mean([float(d) for d in _sown(sown["metrics"], "dropped_fraction")])
        assert float(stats["dropped_fraction"]) == pytest.approx(dropped, abs=1e-7)
        np.testing.assert_allclose(stats["expert_load"].numpy(), np.stack(_sown(sown["metrics"], "expert_load")),
                                   atol=1e-7)
        assert 0 < dropped < 1 and aux_j > 0


def _losses(run_dir: Path) -> list[float]:
    with open(run_dir / "steps.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["dense-tiny", "switch-tiny"])
def test_fifty_steps_from_the_same_start_give_the_same_losses(tiny_run, name):
    # A run to the target in each framework, from the same weights and the same batches (the session's runs,
    # tests/conftest.py; switch-tiny's are test_harness_run_with_tensorflow's too): every step's loss and every
    # evaluation alike.
    runs = [tiny_run(name, framework) for framework in ("jax", "tensorflow")]
    losses = [_losses(run) for run in runs]
    assert len(losses[0]) == len(losses[1]) >= 50
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-3)
    assert losses[0][49] < 0.7 * losses[0][0]  # and they did train
    evals = [[p["eval_loss"] for p in json.loads((run / "result.json").read_text())["eval_trace"]] for run in runs]
    assert len(evals[0]) == len(evals[1]) >= 2
    np.testing.assert_allclose(evals[1], evals[0], rtol=1e-3)


@pytest.mark.e2e
def test_harness_run_with_tensorflow(tiny_run, tf):
    # The session's `harness run --workload switch-tiny --framework tensorflow` (tests/conftest.py, in-process: a
    # fresh process adds nothing here; the missing-TensorFlow test needs one), against its JAX run with the same flags.
    tf_run = tiny_run("switch-tiny", "tensorflow")
    r = json.loads((tf_run / "result.json").read_text())
    assert r["status"] == "converged"
    fw = r["training"]["framework"]
    assert fw["framework"] == "tensorflow" and fw["version"] == tf.__version__
    log = (tf_run / "mllog.txt").read_text()
    assert '"key": "framework", "value": "tensorflow"' in log
    # Same weights, same batches: the same number of steps to the target (a difference would be the framework's),
    # and the same model, counted alike.
    j = json.loads((tiny_run("switch-tiny", "jax") / "result.json").read_text())
    assert j["training"]["framework"]["framework"] == "jax"
    assert r["training"]["steps"] == j["training"]["steps"]
    assert r["training"]["params_total"] == j["training"]["params_total"] > r["training"]["params_activated"]


@pytest.mark.e2e
def test_tensorflow_missing_is_one_line_naming_the_extra(tmp_path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text("raise ImportError('No module named tensorflow')\n")
    env = with_env({"PYTHONPATH": f"{blocker}:{':'.join(sys.path)}"})
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--workload", "dense-tiny", "--framework",
                           "tensorflow", "--meter", "fake"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "pip install -e '.[tensorflow]'" in proc.stderr


def test_tensorflow_refuses_what_only_jax_does():
    from workloads.mesh import MeshShape
    from workloads.trainers import FrameworkUnavailableError, runtime

    spec = WORKLOADS["dense-tiny"]
    data = MarkovMixture(spec.corpus)
    with pytest.raises(FrameworkUnavailableError, match="meshes are JAX only"):
        build_trainer("tensorflow", spec, 0, 10, data.train_batch(0, 0, 16), data.eval_set(), MeshShape(2, 1))
    dropless = WORKLOADS["switch-tiny-dropless"]
    with pytest.raises(FrameworkUnavailableError, match="routes dropless, which only the JAX implementation has"):
        build_trainer("tensorflow", dropless, 0, 10, data.train_batch(0, 0, 16), data.eval_set())
    with pytest.raises(FrameworkUnavailableError, match="multi-process runs are JAX only"):
        runtime("tensorflow").initialize("127.0.0.1:1234", 2, 0, 60)
    assert json.dumps(runtime("tensorflow").devices()[0].platform) == '"cpu"'
    assert jax.devices()[0].platform == "cpu"
