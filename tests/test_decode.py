"""KV-cache decoding (workloads/jax_impl/decode.py) held to the full forward it must reproduce."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workloads.jax_impl.decode import JaxDecoder, params_from_flat
from workloads.jax_impl.models import TransformerLM
from workloads.jax_impl.weights import initial_weights
from workloads.registry import WORKLOADS

BATCH, PROMPT, GEN = 2, 5, 6


def _params(cfg):
    tokens = jnp.zeros((2, 8), jnp.int32)  # 2: the tiny Switch model routes groups of 2 sequences
    return jax.jit(lambda key: TransformerLM(cfg).init(key, tokens)["params"])(jax.random.PRNGKey(0))


def _no_drop(cfg):
    """Capacity factor E: an expert has a slot for every token, so no routing group drops, whatever its size."""
    return replace(cfg, capacity_factor_eval=float(cfg.num_experts)) if cfg.num_experts else cfg


def _tokens(cfg, shape, seed=0):
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, shape).astype(np.int32)


@pytest.fixture(scope="module", params=["dense-tiny", "switch-tiny"])
def decoder(request):
    # The cache against the full forward where they must agree: capacity routing at factor E (nothing drops).
    # Where they differ (capacity routing that drops) the served quality is scored through the cache (below);
    # dropless, with trained weights, is held to the full forward in test_dropless.py.
    cfg = _no_drop(WORKLOADS[request.param].model)
    return JaxDecoder(cfg, _params(cfg), BATCH, PROMPT, GEN)


def _full_forward(dec, sequences):
    """Logits of the unchanged full forward, and the fraction of tokens each Switch layer dropped."""
    logits, sown = jax.jit(lambda p, t: TransformerLM(dec.cfg).apply({"params": p}, t, mutable=["metrics"]))(
        dec.params, jnp.asarray(sequences))
    fractions = [float(v[0]) for k, v in jax.tree_util.tree_flatten_with_path(
        sown, is_leaf=lambda x: isinstance(x, tuple))[0] if k[-1].key == "dropped_fraction"]
    return np.asarray(logits), fractions


def test_cached_logits_equal_full_forward_at_every_position(decoder):
    sequences = _tokens(decoder.cfg, (BATCH, PROMPT + GEN))
    cached, dropped = decoder.cached_logits(sequences)
    full, fractions = _full_forward(decoder, sequences)
    assert cached.shape == full.shape == (BATCH, PROMPT + GEN, decoder.cfg.vocab_size)
    np.testing.assert_allclose(cached, full, rtol=0, atol=1e-4 * max(1.0, np.abs(full).max()))
    assert dropped == 0 and fractions == [0.0] * decoder.cfg.num_switch_layers


def test_greedy_generate_equals_full_recompute(decoder):
    prompts = _tokens(decoder.cfg, (BATCH, PROMPT), seed=1)
    tokens = decoder.generate(prompts)
    assert tokens.shape == (BATCH, GEN) and tokens.dtype == np.int32
    np.testing.assert_array_equal(tokens, decoder.full_recompute_generate(prompts))
    assert decoder.dropped.total == 0
    # Greedy tokens are the full forward's argmax: teacher forcing them scores every one.
    scored = decoder.teacher_forced(np.concatenate([prompts, tokens], axis=1))
    assert scored.log_probs.shape == (BATCH, GEN) and scored.accuracy == 1.0 and scored.dropped == 0
    assert scored.loss == pytest.approx(-scored.log_probs.mean())


def _log_probs(logits, targets):
    return np.take_along_axis(np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1)), targets[..., None],
                              axis=-1)[..., 0]


def _router_zeroed(params):
    """Every router logit 0: top-1 sends every token to expert 0, the most crowded routing there is."""
    return jax.tree_util.tree_map_with_path(
        lambda path, w: jnp.zeros_like(w) if any(getattr(k, "key", None) == "router" for k in path) else w, params)


def test_the_served_quality_is_scored_through_the_cache_as_served():
    # Capacity routing at the eval factor, batch 1, every token to one expert: serving routes the prompt at
    # prefill (2 slots for 5 tokens) and then one token a step (1 slot, never dropped); the full forward would
    # route all 11 tokens as one group (3 slots) and score continuations that skipped the Switch FFN.
    cfg = WORKLOADS["switch-tiny"].model
    dec = JaxDecoder(cfg, _router_zeroed(_params(cfg)), 1, PROMPT, GEN)
    sequences = _tokens(cfg, (1, PROMPT + GEN), seed=2)
    scored = dec.teacher_forced(sequences)
    cached, _ = dec.cached_logits(sequences)
    served = _log_probs(cached[:, PROMPT - 1:-1], sequences[:, PROMPT:])
    np.testing.assert_allclose(scored.log_probs, served, rtol=0, atol=1e-5)
    full, fractions = _full_forward(dec, sequences)
    assert max(fractions) > 0.5  # the full forward drops most of the continuation: not what was served
    assert np.abs(_log_probs(full[:, PROMPT - 1:-1], sequences[:, PROMPT:]) - scored.log_probs).max() > 1e-3


def test_dropless_scores_each_prompt_the_same_at_batch_1_and_16():
    cfg = WORKLOADS["switch-tiny-dropless"].model
    params = _params(cfg)
    sequences = _tokens(cfg, (16, PROMPT + GEN), seed=4)
    at_16 = JaxDecoder(cfg, params, 16, PROMPT, GEN).teacher_forced(sequences)
    alone = JaxDecoder(cfg, params, 1, PROMPT, GEN)
    at_1 = np.concatenate([alone.teacher_forced(sequences[i:i + 1]).log_probs for i in range(16)])
    np.testing.assert_allclose(at_16.log_probs, at_1, rtol=0, atol=1e-5)
    assert at_16.dropped == 0


def test_batch_of_one_never_drops_at_decode_with_the_eval_capacity():
    cfg = WORKLOADS["switch-tiny"].model  # default capacity_factor_eval: one slot per expert for one token
    dec = JaxDecoder(cfg, _params(cfg), 1, 4, 24)
    dec.generate(_tokens(cfg, (1, 4)))
    assert dec.dropped.decode == 0


def test_drop_count_is_token_slots_over_capacity():
    # Capacity 1 per expert in every call: prefill routes 16 * 4 tokens and keeps one per expert used, so it
    # drops between T - E and T - 1 of them; each decode step routes 16 tokens and drops at least 16 - E.
    cfg = replace(WORKLOADS["switch-tiny"].model, capacity_factor_eval=0.01)
    batch, prompt, gen, experts = 16, 4, 3, cfg.num_experts
    dec = JaxDecoder(cfg, _params(cfg), batch, prompt, gen)
    dec.generate(_tokens(cfg, (batch, prompt)))
    assert batch * prompt - experts <= dec.dropped.prefill <= batch * prompt - 1
    assert (gen - 1) * (batch - experts) <= dec.dropped.decode <= (gen - 1) * (batch - 1)


def test_sampling_is_reproducible_for_a_seed_and_differs_across_seeds():
    cfg = WORKLOADS["dense-tiny"].model
    dec = JaxDecoder(cfg, _params(cfg), 4, 4, 16, temperature=1.0, seed=3)
    prompts = _tokens(cfg, (4, 4))
    first = dec.generate(prompts)
    np.testing.assert_array_equal(first, dec.generate(prompts))
    np.testing.assert_array_equal(first, dec.generate(prompts, seed=3))
    assert not np.array_equal(first, dec.generate(prompts, seed=4))


def test_lengths_outside_the_model_are_refused():
    cfg = WORKLOADS["dense-tiny"].model
    params = _params(cfg)
    with pytest.raises(ValueError, match="gen_len"):
        JaxDecoder(cfg, params, 1, 4, 0)
    with pytest.raises(ValueError, match="max_len"):
        JaxDecoder(cfg, params, 1, cfg.max_len - 3, 4)


def test_params_from_flat_rebuilds_the_tree_of_weights_py():
    spec = WORKLOADS["switch-tiny"]
    flat = initial_weights(spec, 0, np.zeros((2, 9), np.int32))
    nested = params_from_flat(flat)
    assert jax.tree_util.tree_structure(nested) == jax.tree_util.tree_structure(jax.tree_util.tree_map(
        np.asarray, _params(spec.model)))
    assert set(nested["block_1"]["switch_ffn"]) == {"router", "w_in", "b_in", "w_out", "b_out"}
