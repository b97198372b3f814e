"""The base pair's code path on a CPU: bf16 mixed precision, fused attention, batched eval, input prefetch,
the refusal to start an accelerator-sized run on a CPU, and the efficiency figures every result carries."""

from __future__ import annotations

import threading
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import harness, make_run, only_result, only_run_dir

from harness.results.efficiency import device_peak, devices_peak
from harness.results.schema import Device
from harness.runner.execute import execute
from harness.runner.plan import RunOptions, plan
from harness.runner.prefetch import Prefetcher
from harness.tables import longest_match
from workloads.corpus import MarkovMixture
from workloads.flops import forward_flops_per_token
from workloads.jax_impl.models import TransformerLM
from workloads.registry import WORKLOADS, at_tiny_width
from workloads.trainers import build_trainer


def test_base_pair_matches_activated_flops_and_is_mixed_precision():
    dense, switch = WORKLOADS["dense-base"], WORKLOADS["switch-base"]
    assert dense.sized_for == switch.sized_for == "accelerator"
    assert dense.model.dtype == switch.model.dtype == "bfloat16"
    assert 16 <= switch.model.num_experts <= 64 and 384 <= dense.model.d_model <= 1024
    router = 2 * switch.model.d_model * switch.model.num_experts * switch.model.num_switch_layers
    assert forward_flops_per_token(switch.model, switch.seq_len) - forward_flops_per_token(dense.model,
                                                                                          dense.seq_len) == router
    # The eval set does not fit one call, and its last batch is full (nothing padded at this size).
    assert dense.eval_batch < dense.corpus.eval_sequences


def test_the_earlier_8_layer_base_records_still_read_as_another_benchmark():
    from pathlib import Path

    from harness.results.identity import identity
    from harness.results.reader import read_record
    from workloads.specs import spec_sha256

    old = read_record(Path(__file__).parents[1] / "reference_results/nvidia-h100/base/failed-prefetch-thread-1.json")
    assert old.workload == "dense-base" and old.spec["model"]["num_layers"] == 8
    assert WORKLOADS["dense-base"].model.num_layers == 2
    # Read as recorded, hashed as recorded: never mistaken for a run of today's dense-base.
    assert spec_sha256(old.spec) != spec_sha256(WORKLOADS["dense-base"].to_dict())
    assert identity(old).spec_sha256 == spec_sha256(old.spec) != identity(make_run("dense-base")).spec_sha256


@pytest.mark.parametrize("name", [n for n, s in WORKLOADS.items() if s.target_eval_loss is None])
def test_eval_set_standard_error_is_far_below_the_target_margin(name):
    # The exact per-sequence Bayes loss on the fixed eval set: a model near the target scatters about as much.
    # (The text pairs' eval set is held to its targets in tests/test_text.py.)
    spec = WORKLOADS[name]
    corpus = MarkovMixture(spec.corpus)
    per_sequence = corpus.true_nll(corpus.eval_set()).mean(axis=1)
    stderr = per_sequence.std(ddof=1) / np.sqrt(len(per_sequence))
    assert stderr < spec.target_margin / 20


def _dots(jaxpr) -> list[tuple[str, str, str]]:
    """(lhs dtype, rhs dtype, out dtype) of every dot_general in a jaxpr, sub-jaxprs included."""
    out = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            out.append((eqn.invars[0].aval.dtype.name, eqn.invars[1].aval.dtype.name, eqn.outvars[0].aval.dtype.name))
        for value in eqn.params.values():  # pjit, custom_vjp and friends carry sub-jaxprs as parameters
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    out.extend(_dots(inner))
    return out


def test_bf16_matmuls_with_float32_parameters_router_and_logits():
    cfg = at_tiny_width(WORKLOADS["switch-base"]).model
    model = TransformerLM(cfg)
    tokens = jnp.zeros((2, cfg.max_len), jnp.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), tokens)["params"]  # jitted: op by op takes 5x longer
    assert {x.dtype for x in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
    jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, tokens, train=True,
                                                 mutable=["losses", "metrics"])[0])(params).jaxpr
    dots = _dots(jaxpr)
    f32 = [d for d in dots if d[0] == "float32"]
    # The router's product is the only float32 matmul (one per Switch layer); the tied output projection
    # takes bf16 inputs and accumulates into float32 logits.
    assert f32 == [("float32", "float32", "float32")] * cfg.num_switch_layers
    assert ("bfloat16", "bfloat16", "float32") in dots
    assert sum(d[0] == "bfloat16" for d in dots) >= 6
    logits = jax.jit(lambda p: model.apply({"params": p}, tokens, train=True, mutable=["losses", "metrics"])[0])(params)
    assert logits.dtype == jnp.float32


def test_fused_attention_computes_what_plain_attention_does():
    cfg = replace(WORKLOADS["dense-tiny"].model, dtype="float32")
    tokens = jnp.asarray(MarkovMixture(WORKLOADS["dense-tiny"].corpus).train_batch(0, 1, 4))[:, :-1]
    plain, fused = TransformerLM(cfg), TransformerLM(replace(cfg, attention="fused"))
    params = jax.jit(plain.init)(jax.random.PRNGKey(1), tokens)
    np.testing.assert_allclose(jax.jit(plain.apply)(params, tokens), jax.jit(fused.apply)(params, tokens),
                               rtol=1e-5, atol=1e-5)


def test_batched_eval_with_a_padded_last_batch_equals_one_call():
    one_call = replace(WORKLOADS["switch-tiny"], eval_batch_size=0)
    batched = replace(one_call, eval_batch_size=24)  # 64 sequences: 24 + 24 + 16 real rows and 8 padded
    data = MarkovMixture(one_call.corpus)
    results = []
    for spec in (one_call, batched):
        trainer = build_trainer("jax", spec, 0, 10, data.train_batch(0, 0, spec.batch_size), data.eval_set())
        for step in range(1, 4):
            trainer.step(trainer.to_device(data.train_batch(0, step, spec.batch_size)))
        results.append(trainer.evaluate())
    a, b = results
    assert a.sequences == b.sequences == 64 and a.tokens == b.tokens == 64 * one_call.seq_len
    assert b.loss == pytest.approx(a.loss, rel=1e-6)
    assert b.stderr == pytest.approx(a.stderr, rel=1e-4) and 0 < a.stderr < 0.1


@pytest.mark.e2e
def test_base_code_path_at_tiny_width_trains_to_target(tmp_path):
    spec = at_tiny_width(WORKLOADS["switch-base"])
    opts = RunOptions(workload=spec.name, spec=spec, meter="fake", allow_cpu=True, output_dir=str(tmp_path),
                      progress=False)
    _, r = execute(opts, plan(opts))
    assert r.status == "converged"
    assert r.training.precision["matmuls"] == "bfloat16"
    assert r.training.precision["router"] == "float32"
    fw = r.training.framework
    assert fw["framework"] == "jax" and fw["attention_implementation"] == "xla"  # fused, on a CPU
    assert all(p.eval_loss_stderr > 0 for p in r.eval_trace)
    assert r.mfu is None and "CPU" in r.mfu_reason
    assert r.work.model_flops > r.training.train_flops  # evaluations count too
    assert r.model_flops_per_s == pytest.approx(r.work.model_flops / r.timing.run_s)
    assert r.tokens_per_j == pytest.approx(r.training.tokens / r.energy.total_j)
    assert r.j_per_token == pytest.approx(1 / r.tokens_per_j)
    assert r.accelerators is None  # the fake meter is not an accelerator
    eff = only_result(tmp_path)["efficiency"]  # the JSON carries the same derived figures
    assert eff["tokens_per_j"] == pytest.approx(r.tokens_per_j) and eff["mfu"] is None
    log = (only_run_dir(tmp_path) / "mllog.txt").read_text()
    assert '"lowest_numerical_precision_in_linear", "value": "bfloat16"' in log


@pytest.mark.e2e
def test_an_accelerator_sized_workload_refuses_a_cpu_in_one_line(tmp_path):
    # dense-base: the cheaper of the base pair to probe (no experts to compile); the path is the same for both.
    proc = harness("run", "--workload", "dense-base", "--meter", "fake", "--output-dir", str(tmp_path),
                   "--no-progress")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "sized for an accelerator" in lines[0] and "--allow-cpu" in lines[0] and "would take about" in lines[0]
    assert not list(tmp_path.iterdir())  # refused before any run directory exists


def test_prefetcher_serves_steps_in_order_ahead_of_the_consumer():
    made: list[tuple[int, int]] = []
    lock = threading.Lock()

    def make(first: int, count: int) -> np.ndarray:
        with lock:
            made.append((first, count))
        return np.stack([np.full((2, 3), first + i) for i in range(count)])

    with Prefetcher(make, lambda b: b * 10, 1, 7, chunk=3, depth=2) as p:
        assert [int(p.get(s)[0, 0]) for s in range(1, 8)] == [10, 20, 30, 40, 50, 60, 70]
        with pytest.raises(ValueError, match="in order"):
            p.get(3)
    assert made == [(1, 3), (4, 3), (7, 1)]  # chunks of 3, the last one short


def test_prefetcher_places_batches_only_on_the_consumers_thread():
    # On a GPU a transfer from another thread breaks the graph capture of a program's first run (cuDNN).
    placed_on: list[str] = []

    def to_device(batch: np.ndarray) -> np.ndarray:
        placed_on.append(threading.current_thread().name)
        if int(batch[0, 0]) == 5:
            raise RuntimeError("device gone")
        return batch

    with Prefetcher(lambda first, count: np.stack([np.full((1, 1), first + i) for i in range(count)]), to_device,
                    1, 9, chunk=2) as p:
        assert [int(p.get(s)[0, 0]) for s in range(1, 5)] == [1, 2, 3, 4]
        with pytest.raises(RuntimeError, match="device gone"):
            p.get(5)  # a placement's error surfaces at the step it was for
    assert placed_on and set(placed_on) == {threading.current_thread().name}


def test_prefetcher_raises_the_producers_error_at_its_step_and_stops_cleanly():
    def make(first: int, count: int) -> np.ndarray:
        if first == 3:
            raise OSError("disk gone")
        return np.zeros((count, 1))

    p = Prefetcher(make, lambda b: b, 1, 100, depth=1)
    with p:
        p.get(1)
        p.get(2)
        with pytest.raises(OSError, match="disk gone"):
            p.get(3)
    stopped = Prefetcher(lambda first, count: np.zeros((count, 1)), lambda b: b, 1, 10**9, chunk=4, depth=1)
    with stopped:
        stopped.get(1)
    assert not stopped._thread.is_alive()  # closing an unfinished stream ends its thread


def test_peak_table_matches_whole_words_and_prefers_the_longest_pattern():
    assert device_peak("NVIDIA H200", "gpu", "bfloat16")["flops_per_s"] == pytest.approx(989.5e12)
    assert device_peak("NVIDIA H200 NVL", "gpu", "bfloat16")["flops_per_s"] == pytest.approx(835.5e12)
    assert device_peak("NVIDIA H100 80GB HBM3", "gpu", "float32")["precision"] == "tf32"
    assert device_peak("NVIDIA A100-SXM4-80GB", "gpu", "bfloat16")["matched"] == "A100"
    unknown = device_peak("NVIDIA A10G", "gpu", "bfloat16")  # "A10G" is not "A100", and not in the table
    assert unknown["flops_per_s"] is None and "peak_flops.csv" in unknown["reason"]
    assert device_peak("Tesla V100-SXM2-16GB", "gpu", "bfloat16")["flops_per_s"] is None
    assert device_peak("AMD EPYC 7B13", "cpu", "float32")["flops_per_s"] is None
    rows = [{"p": "TPU v2"}, {"p": "TPU v20"}]
    assert longest_match("TPU v20", rows, lambda r: r["p"])["p"] == "TPU v20"
    assert longest_match("TPU v2", rows, lambda r: r["p"])["p"] == "TPU v2"


def test_efficiency_figures_for_a_metered_accelerator():
    peak, row = devices_peak([Device(kind="NVIDIA H200", platform="gpu")], "bfloat16")
    r = make_run("switch-base", device="NVIDIA H200", energy_j=55_000.0, accelerator_j=50_000.0, run_s=100.0,
                 method="measured:nvml-energy-counter+modelled:cpu-tdp-utilization")
    r = replace(r, work=replace(r.work, tokens=10_000_000, model_flops=4e16, peak_flops_per_s=peak, peak=row))
    assert r.model_flops_per_s == pytest.approx(4e14)
    assert r.mfu == pytest.approx(4e14 / 989.5e12)
    assert r.tokens_per_j == pytest.approx(10_000_000 / 55_000)
    acc = r.accelerators
    assert acc.joules == 50_000.0 and acc.tokens_per_j == pytest.approx(200.0)
    assert acc.model_flops_per_j == pytest.approx(8e11)
    assert acc.avg_w == pytest.approx(500.0) and acc.avg_fraction_of_limit == pytest.approx(500 / 700)
    assert acc.peak_fraction_of_limit == pytest.approx(600 / 700)
    peak, row = devices_peak([Device(kind="Mystery X1", platform="gpu")], "bfloat16")
    unknown = replace(r, work=replace(r.work, peak_flops_per_s=peak, peak=row),
                      energy=replace(r.energy, total_j=None, complete=False))
    assert unknown.mfu is None and "Mystery X1" in unknown.mfu_reason and unknown.tokens_per_j is None
    # No figure above what the device can do: a window whose work was not all done inside it says so.
    impossible = replace(r, work=replace(r.work, model_flops=1e18))
    assert impossible.mfu is None and "above the devices' peak" in impossible.mfu_reason


def test_the_proxy_fit_uses_only_default_corpus_runs_at_the_asked_bits_per_parameter():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from base_proxies import fit

    def row(params: float, steps: int | None, bits: float = 1.0, corpus: str = "proxy-32x15") -> dict:
        return {"model": "dense", "non_embedding_params": params, "steps_to_target": steps,
                "bits_per_param": bits, "corpus": corpus}

    # steps = 1e6 / params on the asked ratio; the other ratio, the control and the run out of time would bend it.
    rows = [row(1e3, 1000), row(1e4, 100), row(1e5, 10, bits=1.05), row(1e4, 5, bits=4.0),
            row(1e4, 3, corpus="proxy-control-4x15"), row(1e5, None)]
    f = fit(rows, "dense", 1e6, bits_per_param=1.0)
    assert f["n"] == 3 and f["slope"] == pytest.approx(-1.0) and f["steps"] == pytest.approx(1.0)
    with pytest.raises(SystemExit, match="a fit needs 2"):
        fit(rows, "dense", 1e6, bits_per_param=4.0)
