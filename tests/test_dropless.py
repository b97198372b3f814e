"""Dropless Switch routing (workloads/jax_impl/dropless.py): every grouped matmul equal to the all-experts
reference in outputs and gradients, a prompt's output independent of its batch-mates, cached decoding equal to the
full forward for trained weights, and the executed FLOPs held to XLA's own count."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workloads.flops import executed_forward_flops, executed_train_flops_per_token, forward_flops_per_token
from workloads.jax_impl.decode import JaxDecoder
from workloads.jax_impl.dropless import dropless_ffn, expert_positions, route_dropless
from workloads.jax_impl.models import TransformerLM
from workloads.jax_impl.switch import SwitchFFN
from workloads.registry import WORKLOADS
from workloads.routing import GroupedPlan, block_rows, grouped_plan

E, D, F = 6, 8, 12
PLANS = [GroupedPlan("gather"), GroupedPlan("block", 4), GroupedPlan("block", 16), GroupedPlan("ragged"), None]


def _weights(seed: int = 0) -> dict[str, jax.Array]:
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    return {"w_in": jax.random.normal(k[0], (E, D, F)) / D ** 0.5, "b_in": jax.random.normal(k[1], (E, 1, F)),
            "w_out": jax.random.normal(k[2], (E, F, D)) / F ** 0.5, "b_out": jax.random.normal(k[3], (E, 1, D)),
            "router": jax.random.normal(k[4], (D, E))}


def _reference(p: dict, x: jax.Array) -> jax.Array:
    """Every expert on every token, the chosen one kept by a one-hot combine, times its gate."""
    r = route_dropless(x @ p["router"])
    h = jax.nn.gelu(jnp.einsum("td,edf->tef", x, p["w_in"]) + p["b_in"][None, :, 0])
    out = jnp.einsum("tef,efd->ted", h, p["w_out"]) + p["b_out"][None, :, 0]
    return jnp.einsum("ted,te->td", out, jax.nn.one_hot(r.expert, E)) * r.gate[:, None]


def _dropless(plan: GroupedPlan | None):
    def f(p: dict, x: jax.Array) -> jax.Array:
        r = route_dropless(x @ p["router"])
        return dropless_ffn(x, r.expert, r.gate, p["w_in"], p["b_in"], p["w_out"], p["b_out"], jnp.float32, plan)
    return f


def _routed(case: str, tokens: int, p: dict) -> tuple[dict, jax.Array]:
    """Inputs routed as `case` says: random; onto two experts only (the others empty); or all onto one."""
    x = jax.random.normal(jax.random.PRNGKey(tokens), (tokens, D))
    if case == "random":
        return p, x
    x = jnp.abs(x) + 0.1  # positive: a router column of larger weights wins for every token
    router = np.asarray(p["router"]).copy()
    if case == "one expert":
        router[:] = 0.0
        router[:, 3] = 1.0
    else:  # experts 2.. never chosen: empty segments between and after the used ones
        router[:, 2:] = -10.0
    return {**p, "router": jnp.asarray(router)}, x


@pytest.mark.parametrize("case", ["random", "two experts", "one expert"])
@pytest.mark.parametrize("tokens", [1, 5, 64, 513])
def test_every_path_equals_the_all_experts_reference_in_outputs_and_gradients(tokens, case):
    p, x = _routed(case, tokens, _weights())
    experts = np.asarray(route_dropless(x @ p["router"]).expert)
    if case == "one expert":
        assert set(experts) == {3}
    elif case == "two experts":
        assert set(experts) <= {0, 1}

    def loss(f):
        return jax.jit(jax.value_and_grad(lambda p, x: jnp.sum(jnp.sin(f(p, x))), argnums=(0, 1)))

    want, want_grads = loss(_reference)(p, x)
    for plan in PLANS:
        got, got_grads = loss(_dropless(plan))(p, x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(plan))
        for g, w in zip(jax.tree_util.tree_leaves(got_grads), jax.tree_util.tree_leaves(want_grads), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=str(plan))


def test_the_counting_sort_is_stable_and_counts():
    expert = jnp.asarray([2, 0, 2, 2, 1, 0, 2] * 40, jnp.int32)  # 280 tokens: several chunks of 64
    position, counts = jax.jit(expert_positions, static_argnums=1)(expert, 4)
    e = np.asarray(expert)
    np.testing.assert_array_equal(counts, [np.sum(e == k) for k in range(4)])
    want = [int(np.sum(e[:i] == e[i])) for i in range(len(e))]  # earlier tokens of the same expert
    np.testing.assert_array_equal(position, want)


def test_the_layer_routes_dropless_and_drops_nothing():
    layer = SwitchFFN(num_experts=E, d_ff=F, routing="dropless", capacity_factor_eval=0.25)  # no capacity applies
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 40, D))
    params = layer.init(jax.random.PRNGKey(0), x, False)
    y, state = jax.jit(lambda p, x: layer.apply(p, x, False, mutable=["metrics"]))(params, x)
    assert float(state["metrics"]["dropped_fraction"][0]) == 0.0
    want = _reference(params["params"], x.reshape(-1, D)).reshape(x.shape)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_the_plan_by_tokens_and_backend():
    assert grouped_plan(1, 16, "cpu").path == "gather"
    assert grouped_plan(2048, 16, "cpu") == GroupedPlan("block", 32)  # padding bound 16 x 31 <= a quarter of 2048
    assert grouped_plan(2048, 16, "gpu", ragged=True).path == "ragged"
    assert grouped_plan(2048, 16, "gpu", ragged=False).path == "block"  # never the masked default lowering
    # The static buffer holds the worst routing: every expert's last block one row full.
    assert block_rows(64, 16, 4) == 64 + 16 * 3 and block_rows(513, 6, 16) % 16 == 0


# -- the model: batch-mates, the cache, trained weights -----------------------------------------------------------

def _logits(cfg, params, tokens):
    model = TransformerLM(cfg)
    return np.asarray(jax.jit(lambda p, t: model.apply({"params": p}, t, mutable=["metrics"])[0])(
        params, jnp.asarray(tokens)))


def test_a_prompt_answers_the_same_alone_and_among_64_others_in_any_row(trained_switch_small):
    spec, params, eval_set = trained_switch_small
    prompts = eval_set[:65, :32]
    dropless = replace(spec.model, routing="dropless", group_sequences=0)
    alone = _logits(dropless, params, prompts[:1])[0]
    tolerance = 1e-5 * np.abs(alone).max()  # float32 rounding of matmuls of other shapes, nothing more
    for row in (0, 17, 64):
        batch = np.roll(prompts, row, axis=0)  # prompt 0 at `row`
        among = _logits(dropless, params, batch)[row]
        np.testing.assert_allclose(among, alone, rtol=0, atol=tolerance)
        np.testing.assert_array_equal(among.argmax(-1), alone.argmax(-1))
    # Capacity routing, for contrast: the same prompt's logits move with its batch-mates (its tokens lose or win
    # slots), which is what the test above would catch.
    capacity = replace(spec.model, routing="capacity", group_sequences=0)
    moved = np.abs(_logits(capacity, params, np.roll(prompts, 17, axis=0))[17]
                   - _logits(capacity, params, prompts[:1])[0]).max()
    assert moved > 1e3 * tolerance


def test_cached_decoding_equals_the_full_forward_for_trained_weights(trained_switch_small):
    spec, params, eval_set = trained_switch_small
    cfg = replace(spec.model, routing="dropless")
    decoder = JaxDecoder(cfg, params, 4, 32, 32)
    sequences = eval_set[:4, :64]
    cached, dropped = decoder.cached_logits(sequences)
    full = _logits(decoder.cfg, params, sequences)
    np.testing.assert_allclose(cached, full, rtol=0, atol=1e-4 * max(1.0, np.abs(full).max()))
    assert dropped == 0
    # Greedy decoding from the cache and by recomputing the whole sequence agree token for token.
    np.testing.assert_array_equal(decoder.generate(sequences[:, :32]), decoder.full_recompute_generate(
        sequences[:, :32]))


# -- executed FLOPs, held to XLA's count ----------------------------------------------------------------------------

def _xla_flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


@pytest.mark.parametrize("routing, batch", [("capacity", 32), ("dropless", 32), ("dropless", 1)])
def test_executed_forward_flops_agree_with_xlas_count(routing, batch):
    """The executed count (workloads/flops.py) at the base width, f32 and plain attention (bf16 and fused
    attention change no FLOP count), held to XLA's cost analysis of the compiled forward: XLA also counts the
    elementwise work (layer norms, softmax, GELU), under 2 %; everything else it counts, capacity slots, block
    padding and the counting sort's matmul, the executed count has."""
    spec = WORKLOADS["switch-base"]
    cfg = replace(spec.model, dtype="float32", attention="plain", routing=routing, group_sequences=min(batch, 32))
    length = 8 if batch == 1 else spec.seq_len  # batch 1: 8 tokens, the gather path
    model = TransformerLM(cfg)
    tokens = jax.ShapeDtypeStruct((batch, length), jnp.int32)
    params = jax.eval_shape(lambda t: model.init(jax.random.PRNGKey(0), t), tokens)["params"]
    xla = _xla_flops(lambda p, t: model.apply({"params": p}, t, mutable=["metrics"])[0], params, tokens)
    ours = executed_forward_flops(cfg, batch, length)
    assert 1.0 <= xla / ours < 1.02, (xla, ours)
    if routing == "dropless" and batch == 1:  # the gather path executes exactly what the tokens activate
        assert ours == pytest.approx(forward_flops_per_token(cfg, length) * length)


@pytest.mark.parametrize("routing", ["capacity", "dropless"])
def test_executed_train_flops_agree_with_xlas_count_of_the_gradient(routing):
    """Forward and backward (3x the forward, the PaLM convention) plus, for dropless, the backward's sum of the
    gathered expert weights' gradients by expert: XLA's count of the compiled gradient, at the base width."""
    import optax

    spec = WORKLOADS["switch-base"]
    cfg = replace(spec.model, dtype="float32", attention="plain", routing=routing)
    batch = cfg.group_sequences  # one routing group: 8,192 tokens
    model = TransformerLM(cfg)
    tokens = jax.ShapeDtypeStruct((batch, spec.seq_len + 1), jnp.int32)
    params = jax.eval_shape(lambda t: model.init(jax.random.PRNGKey(0), t[:, :-1]), tokens)["params"]

    def loss(p, t):
        logits, state = model.apply({"params": p}, t[:, :-1], train=True, mutable=["losses", "metrics"])
        aux = sum(jax.tree_util.tree_leaves(state["losses"]))
        return optax.softmax_cross_entropy_with_integer_labels(logits, t[:, 1:]).mean() + aux

    xla = _xla_flops(jax.grad(loss), params, tokens)
    ours = executed_train_flops_per_token(cfg, batch, spec.seq_len) * batch * spec.seq_len
    assert 1.0 <= xla / ours < 1.02, (xla, ours)


def test_executed_flops_of_a_decode_step_agree_with_xlas_count():
    cfg = replace(WORKLOADS["switch-base"].model, dtype="float32", attention="plain", routing="dropless",
                  group_sequences=0)
    decoder_cfg, batch, total = cfg, 4, 64
    model = TransformerLM(decoder_cfg)
    params = jax.eval_shape(lambda t: model.init(jax.random.PRNGKey(0), t),
                            jax.ShapeDtypeStruct((batch, total), jnp.int32))["params"]
    from workloads.jax_impl.models import init_cache

    cache = jax.eval_shape(lambda: init_cache(decoder_cfg, batch, total))
    step = jax.ShapeDtypeStruct((batch, 1), jnp.int32)
    xla = _xla_flops(lambda p, t, c: model.apply({"params": p}, t, cache=c, start=40, mutable=["metrics"])[0][0],
                     params, step, cache)
    ours = executed_forward_flops(decoder_cfg, batch, 1, total)
    assert 1.0 <= xla / ours < 1.02, (xla, ours)


# -- records ---------------------------------------------------------------------------------------------------

def test_records_say_executed_and_activated_flops_and_old_capacity_records_still_read(tiny_run):
    from harness.results.reader import read_record

    root = Path(__file__).resolve().parents[1] / "reference_results/cpu-2core"
    old_run = read_record(next((root / "study/default/runs").glob("*switch-small*")))
    assert old_run.training.executed_flops_per_token is None and old_run.training.executed_over_activated is None
    old_served = read_record(next((root / "inference/default/records").glob("*switch-small*")))
    assert old_served.serving.routing is None and old_served.serving.switch_routing == "capacity"
    assert old_served.serving.executed_over_activated is None
    # A run now: both counts, and how it routed. Dropless training pads its blocks (the bound over every
    # routing); capacity training computes capacity_factor_train x the tokens' expert rows; dense neither.
    ratios = {}
    for name in ("switch-tiny-dropless", "switch-tiny", "dense-tiny"):
        spec, training = WORKLOADS[name], read_record(tiny_run(name)).training
        assert training.train_flops_per_token == pytest.approx(3 * forward_flops_per_token(spec.model, spec.seq_len))
        executed = executed_train_flops_per_token(spec.model, spec.batch_size, spec.seq_len)
        assert training.executed_flops_per_token == pytest.approx(executed)
        assert training.framework.get("switch_routing") == (spec.model.routing if spec.model.num_experts else None)
        ratios[name] = training.executed_over_activated
    assert ratios["dense-tiny"] == pytest.approx(1.0) and ratios["switch-tiny-dropless"] > 1.0
