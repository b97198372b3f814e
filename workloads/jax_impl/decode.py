"""Cached autoregressive decoding for TransformerLM: prefill the prompt once, then one token a step.

A JaxDecoder (the `workloads.framework.Decoder` protocol, in JAX) is built for one (batch, prompt_len, gen_len)
bucket and compiles on construction, so that the first timed call compiles nothing: `prefill` (the prompt in one
forward, filling a key/value cache of prompt_len + gen_len positions) and `generate_rest` (the remaining
gen_len - 1 steps as one lax.scan, one dispatch). Greedy at temperature 0; otherwise sampled at a temperature,
the token at absolute position p drawn with fold_in(key(seed), p), so that a seed and a prompt fix the output.

Switch routing at inference is the model config's. Dropless (what `harness infer` serves by default): every token
through its expert, so a prompt's output is the same alone or in any batch, in any row, and cached decoding
equals the full forward at every position. Capacity (the paper's eval setting): the decoder's model has
group_sequences = 0, so every call routes its tokens as ONE group, with the eval capacity factor. Prefill routes
B * prompt_len tokens; each decode step routes the B tokens of that step, capacity = expert_capacity(B, E,
capacity_factor_eval): a batch of 1 gets capacity 1 and never drops, a larger batch can drop where a step's tokens
crowd one expert. The full forward (full_recompute_generate, the benchmarks' baseline) routes all B * length
tokens of a call as one group, so under capacity routing it agrees with cached decoding only where neither drops:
the served quality (`teacher_forced`) is therefore scored through the cache, as served. `dropped` counts the
token-slots the Switch layers dropped (sown dropped_fraction x tokens routed, summed over the Switch layers; 0
under dropless routing). `executed_flops` is what one prefill and one generate_rest compute (workloads/flops.py),
capacity slots, block padding and every row of the batch included.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.core import unfreeze

from workloads.flops import executed_forward_flops
from workloads.jax_impl.dropless import routing_facts
from workloads.jax_impl.models import KVCache, TransformerLM, init_cache
from workloads.specs import ModelConfig

__all__ = ["DecodeState", "JaxDecoder", "Dropped", "TeacherForced", "params_from_flat"]


class DecodeState(NamedTuple):
    cache: KVCache
    token: jax.Array  # [B] int32: the last token chosen, the next one fed
    position: jax.Array  # int32 scalar: where `token` sits in the sequence (and goes in the cache)
    key: jax.Array  # typed PRNG key from the seed
    dropped: jax.Array  # int32 scalar: token-slots dropped so far


class Dropped(NamedTuple):
    prefill: int
    decode: int

    @property
    def total(self) -> int:
        return self.prefill + self.decode


class TeacherForced(NamedTuple):
    log_probs: np.ndarray  # [B, G]: log p(continuation token | everything before it)
    loss: float  # mean negative log-probability of the continuation tokens
    accuracy: float  # fraction of continuation tokens that are the argmax of the logits before them
    dropped: int
    correct: np.ndarray  # [B, G] bool: each continuation token the argmax of the logits before it


def params_from_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """{"block_1/attn/qkv/kernel": array, ...} (workloads/jax_impl/weights.py's naming) -> the nested params."""
    return traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def _dropped_slots(metrics: Any, tokens_routed: int) -> jax.Array:
    """Token-slots dropped in one apply: each Switch layer's sown fraction times the tokens it routed."""
    total = jnp.zeros((), jnp.int32)
    for path, sown in traverse_util.flatten_dict(unfreeze(metrics)).items():
        if path[-1] == "dropped_fraction":
            for fraction in sown:  # sow keeps a tuple, one entry per call of the layer
                total += jnp.round(fraction * tokens_routed).astype(jnp.int32)
    return total


class JaxDecoder:
    """Cached decoding of `batch` prompts of `prompt_len` tokens into `gen_len` tokens each."""

    def __init__(self, cfg: ModelConfig, params: Any, batch: int, prompt_len: int, gen_len: int, *,
                 temperature: float = 0.0, seed: int = 0) -> None:
        if gen_len < 1:
            raise ValueError(f"gen_len must be at least 1, got {gen_len}")
        if prompt_len < 1:
            raise ValueError(f"prompt_len must be at least 1, got {prompt_len}")
        if prompt_len + gen_len > cfg.max_len:
            raise ValueError(f"prompt_len + gen_len = {prompt_len + gen_len} exceeds max_len {cfg.max_len}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.cfg = dataclasses.replace(cfg, group_sequences=0)  # each call's tokens are one routing group
        self.routing = routing_facts(self.cfg)  # before anything is traced (the GPU's grouped matmul)
        self.model = TransformerLM(self.cfg)
        self.batch, self.prompt_len, self.gen_len = batch, prompt_len, gen_len
        self.temperature, self.seed = float(temperature), int(seed)
        params = unfreeze(params)
        if set(params) == {"params"}:  # the whole variables dict from init
            params = params["params"]
        self.params = jax.device_put(jax.tree_util.tree_map(jnp.asarray, params))
        self._compiled: dict[str, Any] = {}
        # The last calls' drop counts, on the device until read: reading them would wait for the call.
        self._dropped_prefill: jax.Array | None = None
        self._dropped_decode: jax.Array | None = None
        self._compile("prefill")
        self._compile("generate_rest")

    # -- public calls -------------------------------------------------------------------------------------

    def prefill(self, prompts: Any, seed: int | None = None) -> tuple[jax.Array, DecodeState]:
        """The first generated token of each row [B] and the state to decode the rest from."""
        first, state = self._compile("prefill")(self.params, self._tokens(prompts, self.prompt_len), self._seed(seed))
        self._dropped_prefill, self._dropped_decode = state.dropped, None
        return first, state

    def generate_rest(self, state: DecodeState) -> jax.Array:
        """The remaining gen_len - 1 tokens of each row, [B, gen_len - 1], in one dispatch."""
        tokens, decode_dropped = self._compile("generate_rest")(self.params, state)
        self._dropped_prefill, self._dropped_decode = state.dropped, decode_dropped
        return tokens

    def generate(self, prompts: Any, seed: int | None = None) -> np.ndarray:
        """prefill + generate_rest: [B, gen_len] generated tokens (numpy: joined on the host, nothing compiled)."""
        first, state = self.prefill(prompts, seed)
        rest = self.generate_rest(state)
        return np.concatenate([np.asarray(first)[:, None], np.asarray(rest)], axis=1)

    @property
    def executed_flops(self) -> dict[str, float]:
        """Matmul FLOPs one `prefill` and one `generate_rest` call execute, every row of the batch counted."""
        total, backend = self._total, jax.default_backend()
        ragged = bool(self.routing.get("ragged_dot_triton"))
        step = executed_forward_flops(self.cfg, self.batch, 1, total, backend=backend, ragged=ragged)
        return {"prefill": executed_forward_flops(self.cfg, self.batch, self.prompt_len, total, backend=backend,
                                                  ragged=ragged),
                "generate_rest": (self.gen_len - 1) * step}

    @property
    def dropped(self) -> Dropped:
        """Token-slots the Switch layers dropped in the last prefill and generate_rest (0 for a dense model)."""
        return Dropped(*(0 if n is None else int(n) for n in (self._dropped_prefill, self._dropped_decode)))

    def cached_logits(self, sequences: Any) -> tuple[np.ndarray, int]:
        """Logits [B, P+G, vocab] of given sequences [B, P+G] through the cache (prefill, then one position a
        step, each fed the given token), and the token-slots dropped: to hold the cache to the full forward."""
        logits, dropped = self._compile("cached_logits")(self.params, self._tokens(sequences, self._total))
        return np.asarray(logits), int(dropped)

    def teacher_forced(self, sequences: Any) -> TeacherForced:
        """How well the served model predicts the continuations of [B, P+G] prompts and continuations, scored on
        the computation serving runs: the prompt prefilled, then the continuation fed one token a step through
        the cache (each step routing its B tokens, as a decode step does). Under capacity routing the full
        forward would route all B (P+G) tokens as one group and drop where serving does not."""
        log_probs, correct, dropped = self._compile("teacher_forced")(
            self.params, self._tokens(sequences, self._total))
        log_probs, correct = np.asarray(log_probs), np.asarray(correct)
        return TeacherForced(log_probs, float(-log_probs.mean()), float(correct.mean()), int(dropped), correct)

    def full_recompute_generate(self, prompts: Any) -> np.ndarray:
        """Greedy [B, gen_len] without a cache: each step reruns the full forward over the whole sequence,
        padded to P+G (causal: the padding after position t does not reach its logits; for a Switch model it
        does take routing slots), in one dispatch. The baseline cached decoding is measured against."""
        return np.asarray(self._compile("full_recompute")(self.params, self._tokens(prompts, self.prompt_len)))

    def warmup(self) -> None:
        """Compile every call, so that none of them compiles when timed (prefill and generate_rest already are)."""
        for name in self._builders():
            self._compile(name)

    # -- the compiled functions ----------------------------------------------------------------------------

    @property
    def _total(self) -> int:
        return self.prompt_len + self.gen_len

    def _builders(self) -> dict[str, tuple[Any, tuple]]:
        b, p = self.batch, self.prompt_len
        prompts = jax.ShapeDtypeStruct((b, p), jnp.int32)
        sequences = jax.ShapeDtypeStruct((b, self._total), jnp.int32)
        seed = jax.ShapeDtypeStruct((), jnp.int32)
        state = jax.eval_shape(self._prefill, self.params, prompts, seed)[1]
        return {"prefill": (self._prefill, (prompts, seed)), "generate_rest": (self._generate_rest, (state,)),
                "cached_logits": (self._cached_logits, (sequences,)),
                "teacher_forced": (self._teacher_forced, (sequences,)),
                "full_recompute": (self._full_recompute, (prompts,))}

    def _compile(self, name: str) -> Any:
        if name not in self._compiled:
            fn, args = self._builders()[name]
            self._compiled[name] = jax.jit(fn).lower(self.params, *args).compile()
        return self._compiled[name]

    def _apply(self, params: Any, tokens: jax.Array, cache: KVCache | None = None,
               start: int | jax.Array = 0) -> tuple[Any, jax.Array]:
        """The model on `tokens`, and the token-slots its Switch layers dropped."""
        if cache is None:
            out, sown = self.model.apply({"params": params}, tokens, train=False, mutable=["metrics", "losses"])
        else:
            out, sown = self.model.apply({"params": params}, tokens, train=False, cache=cache, start=start,
                                         mutable=["metrics", "losses"])
        return out, _dropped_slots(sown.get("metrics", {}), tokens.size)

    def _choose(self, logits: jax.Array, key: jax.Array, position: jax.Array) -> jax.Array:
        """The token at `position` from the logits [B, vocab] before it."""
        if self.temperature == 0:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(jax.random.fold_in(key, position), logits / self.temperature).astype(jnp.int32)

    def _prefill(self, params: Any, prompts: jax.Array, seed: jax.Array) -> tuple[jax.Array, DecodeState]:
        cache = init_cache(self.cfg, self.batch, self._total)
        (logits, cache), dropped = self._apply(params, prompts, cache, 0)
        key, position = jax.random.key(seed), jnp.asarray(self.prompt_len, jnp.int32)
        first = self._choose(logits[:, -1], key, position)
        return first, DecodeState(cache, first, position, key, dropped)

    def _step(self, params: Any, state: DecodeState, token: jax.Array) -> tuple[DecodeState, jax.Array]:
        """Feed `token` at state.position; the logits [B, vocab] for the position after it."""
        (logits, cache), dropped = self._apply(params, token[:, None], state.cache, state.position)
        return state._replace(cache=cache, position=state.position + 1, dropped=state.dropped + dropped), logits[:, 0]

    def _generate_rest(self, params: Any, state: DecodeState) -> tuple[jax.Array, jax.Array]:
        def body(state: DecodeState, _: None) -> tuple[DecodeState, jax.Array]:
            state, logits = self._step(params, state, state.token)
            token = self._choose(logits, state.key, state.position)
            return state._replace(token=token), token

        final, tokens = jax.lax.scan(body, state, None, length=self.gen_len - 1)
        return tokens.T, final.dropped - state.dropped

    def _cached_logits(self, params: Any, sequences: jax.Array) -> tuple[jax.Array, jax.Array]:
        p = self.prompt_len
        cache = init_cache(self.cfg, self.batch, self._total)
        (prompt_logits, cache), dropped = self._apply(params, sequences[:, :p], cache, 0)
        fed = sequences[:, min(p, sequences.shape[1] - 1)]  # state.token: unread, the scan feeds each token itself
        state = DecodeState(cache, fed, jnp.asarray(p, jnp.int32), jax.random.key(0), dropped)

        def body(state: DecodeState, token: jax.Array) -> tuple[DecodeState, jax.Array]:
            return self._step(params, state, token)

        final, step_logits = jax.lax.scan(body, state, sequences[:, p:].T)
        return jnp.concatenate([prompt_logits, step_logits.transpose(1, 0, 2)], axis=1), final.dropped

    def _teacher_forced(self, params: Any, sequences: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        # Logits at position t predict the token at t + 1: those of positions P-1 .. P+G-2 score the continuation,
        # so the last continuation token is never fed (as generation never feeds its last token).
        logits, dropped = self._cached_logits(params, sequences[:, :-1])
        before = logits[:, self.prompt_len - 1:]
        targets = sequences[:, self.prompt_len:]
        log_probs = jnp.take_along_axis(jax.nn.log_softmax(before, axis=-1), targets[..., None], axis=-1)[..., 0]
        return log_probs, jnp.argmax(before, axis=-1) == targets, dropped

    def _full_recompute(self, params: Any, prompts: jax.Array) -> jax.Array:
        p = self.prompt_len
        buffer = jnp.zeros((self.batch, self._total), jnp.int32).at[:, :p].set(prompts)

        def body(t: jax.Array, buffer: jax.Array) -> jax.Array:
            logits, _ = self._apply(params, buffer)
            token = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, p + t - 1, axis=1, keepdims=False), axis=-1)
            return jax.lax.dynamic_update_index_in_dim(buffer, token.astype(jnp.int32), p + t, axis=1)

        return jax.lax.fori_loop(0, self.gen_len, body, buffer)[:, p:]

    # -- inputs ----------------------------------------------------------------------------------------------

    def _tokens(self, tokens: Any, length: int) -> jax.Array:
        tokens = jnp.asarray(tokens, jnp.int32)
        if tokens.shape != (self.batch, length):
            raise ValueError(f"expected tokens of shape {(self.batch, length)}, got {tuple(tokens.shape)}")
        return tokens

    def _seed(self, seed: int | None) -> np.ndarray:
        return np.asarray(self.seed if seed is None else seed, np.int32)
