"""Benchmark: one Switch layer against the dense FFN it is matched to, T tokens a call, capacity and dropless.

Each variant is one jitted call on [1, T, d] (one routing group), timed in interleaved blocks (dense, capacity,
dropless, ...), the median over blocks; the figure is its time over the dense FFN's. Beside each, XLA's own FLOP
count of the compiled call over the dense FFN's (what ran, padding and capacity slots included). `--paths` adds
the dropless layer forced onto each grouped matmul (gather, block of b rows), to place the thresholds of
workloads/routing.py. `--profile` times the dropless layer's stages instead (each a jitted prefix of the layer,
the stage's cost the difference): the router, the counting sort (the sorted layout), the dispatch permutation,
the experts (weights gathered a block, the grouped matmul) and the combine. Goal on the 2-core CPU: dropless <=
1.5x the dense FFN at every T, at both shapes.

    python scripts/bench_switch_layer.py [--shapes small,base] [--tokens 1,2,4,...] [--paths | --profile]
                                         [--blocks 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
from benchlib import write_json

from workloads.jax_impl.dropless import (
    dropless_ffn,
    expert_blocks,
    permute_rows,
    plan_for,
    route_dropless,
    routing_facts,
    sorted_layout,
)
from workloads.jax_impl.models import DenseFFN
from workloads.jax_impl.switch import SwitchFFN
from workloads.registry import WORKLOADS
from workloads.routing import GroupedPlan

GOAL = 1.5
SHAPES = {"small": WORKLOADS["switch-small"].model, "base": WORKLOADS["switch-base"].model}
FORCED = [GroupedPlan("gather"), *(GroupedPlan("block", b) for b in (2, 4, 8, 16, 32, 64, 128))]


def seconds_per_call(fn: Any, args: tuple, budget_s: float = 0.15) -> float:
    """Mean seconds of one call over as many calls as fit ~budget_s (after one warm call)."""
    jax.block_until_ready(fn(*args))
    t0, n = time.perf_counter(), 0
    while n < 3 or time.perf_counter() - t0 < budget_s:
        out = fn(*args)
        n += 1
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / n


def xla_flops(compiled: Any) -> float:
    """XLA's FLOP count of a compiled call."""
    cost = compiled.cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def variants(cfg, tokens: int, forced: bool) -> dict[str, tuple[Any, tuple]]:
    """name -> (function, arguments) for one shape and token count; the inputs resident, float32."""
    d, f, e = cfg.d_model, cfg.d_ff, cfg.num_experts
    x = jax.random.normal(jax.random.PRNGKey(1), (1, tokens, d), jnp.float32)
    dense = DenseFFN(f, jnp.float32)
    dense_params = jax.jit(lambda k, x: dense.init(k, x, False))(jax.random.PRNGKey(0), x)  # jitted: eager is slow
    out: dict[str, tuple[Any, tuple]] = {"dense": (lambda p, x: dense.apply(p, x, False), (dense_params, x))}
    for routing in ("capacity", "dropless"):
        layer = SwitchFFN(num_experts=e, d_ff=f, capacity_factor_eval=cfg.capacity_factor_eval, routing=routing)
        params = jax.jit(lambda k, x, layer=layer: layer.init(k, x, False))(jax.random.PRNGKey(0), x)
        out[routing] = (lambda p, x, layer=layer: layer.apply(p, x, False, mutable=["losses", "metrics"])[0],
                        (params, x))
    if forced:
        p = out["dropless"][1][0]["params"]
        for plan in FORCED:
            if plan.path == "gather" and tokens > 256 or plan.path == "block" and plan.block > tokens:
                continue

            def call(p, x, plan=plan):
                tok = x[0]
                r = route_dropless(tok @ p["router"])
                return dropless_ffn(tok, r.expert, r.gate, p["w_in"], p["b_in"], p["w_out"], p["b_out"],
                                    jnp.float32, plan)

            out[f"dropless {plan}"] = (call, (p, x))
    return out


def stages(cfg, tokens: int) -> dict[str, tuple[Any, tuple]]:
    """The dropless layer on the path its plan picks, cut after each stage: name -> (prefix, arguments)."""
    d, f, e = cfg.d_model, cfg.d_ff, cfg.num_experts
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    w = {"router": jax.random.normal(keys[0], (d, e)), "w_in": jax.random.normal(keys[1], (e, d, f)),
         "b_in": jnp.zeros((e, 1, f)), "w_out": jax.random.normal(keys[2], (e, f, d)), "b_out": jnp.zeros((e, 1, d))}
    x = jax.random.normal(keys[3], (tokens, d))
    plan = plan_for(tokens, e)
    block = plan.block if plan.path == "block" else 1

    def upto(stage: int):
        def fn(w, x):
            r = route_dropless(x @ w["router"])
            if stage == 0:
                return r
            if plan.path == "gather":  # no layout: each token its own block
                return dropless_ffn(x, r.expert, r.gate, w["w_in"], w["b_in"], w["w_out"], w["b_out"], jnp.float32,
                                    plan)
            at = sorted_layout(r.expert, e, block)
            if stage == 1:
                return at
            rows = permute_rows(x, at.token_of_row, at.row_of_token).reshape(-1, block, d)
            if stage == 2:
                return rows
            out = expert_blocks(rows, at.block_expert, w["w_in"], w["b_in"], w["w_out"], w["b_out"]).reshape(-1, d)
            if stage == 3:
                return out
            return permute_rows(out, at.row_of_token, at.token_of_row) * r.gate[:, None]
        return fn

    names = ("router", "counting sort", "dispatch", "experts", "combine")
    if plan.path == "gather":
        names = ("router", "experts (gathered a token)")
    return {n: (upto(i if i < len(names) - 1 else 4), (w, x)) for i, n in enumerate(names)}


def profile(cfg, tokens: int, blocks: int) -> dict[str, float]:
    """Microseconds each stage adds, and the dense FFN's, interleaved over blocks (medians)."""
    calls = {"dense": variants(cfg, tokens, False)["dense"], **stages(cfg, tokens)}
    jitted = {n: (jax.jit(fn), a) for n, (fn, a) in calls.items()}
    times: dict[str, list[float]] = {n: [] for n in jitted}
    for block in range(blocks):
        for n, (fn, a) in (list(jitted.items()) if block % 2 == 0 else list(jitted.items())[::-1]):
            times[n].append(seconds_per_call(fn, a))
    med = {n: 1e6 * statistics.median(t) for n, t in times.items()}
    out, before = {"dense FFN": med.pop("dense")}, 0.0
    for n, us in med.items():
        out[n] = us - before
        before = us
    return out | {"dropless layer": before}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="small,base")
    ap.add_argument("--tokens", default="1,2,4,8,16,32,64,128,256,512")
    ap.add_argument("--paths", action="store_true", help="also each grouped matmul forced")
    ap.add_argument("--profile", action="store_true", help="the dropless layer's stages instead")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    # Before anything is traced: the Triton lowering of ragged_dot on an NVIDIA GPU where JAX has it (as a trainer
    # or a decoder of a dropless model turns it on), else the block path; which one, in the figures.
    grouped = routing_facts(replace(SHAPES["small"], routing="dropless"))["grouped_matmul"]
    figures: dict[str, Any] = {"device": jax.devices()[0].device_kind, "goal": GOAL, "grouped_matmul": grouped,
                               "shapes": {}}
    print(f"device: {figures['device']} ({jax.default_backend()}); float32; time and XLA FLOPs over the dense FFN's; "
          f"dropless grouped matmul: {grouped}")
    for shape in args.shapes.split(","):
        cfg = SHAPES[shape]
        print(f"{shape}: d {cfg.d_model}, d_ff {cfg.d_ff}, {cfg.num_experts} experts, eval capacity factor "
              f"{cfg.capacity_factor_eval}")
        rows = figures["shapes"][shape] = {}
        for tokens in (int(t) for t in args.tokens.split(",")):
            if args.profile:
                us = rows[str(tokens)] = profile(cfg, tokens, args.blocks)
                print(f"  T {tokens:5d} [{plan_for(tokens, cfg.num_experts)}]: "
                      + "  ".join(f"{n} {v:.1f} us" for n, v in us.items()), flush=True)
                continue
            calls = variants(cfg, tokens, args.paths)
            # Compiled once each: the call timed is the one XLA counted.
            jitted = {n: (jax.jit(fn).lower(*a).compile(), a) for n, (fn, a) in calls.items()}
            times: dict[str, list[float]] = {n: [] for n in jitted}
            for block in range(args.blocks):
                for n, (fn, a) in (list(jitted.items()) if block % 2 == 0 else list(jitted.items())[::-1]):
                    times[n].append(seconds_per_call(fn, a))
            med = {n: statistics.median(t) for n, t in times.items()}
            flops = {n: xla_flops(fn) for n, (fn, _) in jitted.items()}
            plan = plan_for(tokens, cfg.num_experts)
            row = {n: {"us": 1e6 * med[n], "over_dense": med[n] / med["dense"],
                       "xla_flops_over_dense": flops[n] / flops["dense"]} for n in med}
            rows[str(tokens)] = {"plan": str(plan), **row}
            cells = "  ".join(f"{n} {r['over_dense']:.2f}x ({r['xla_flops_over_dense']:.2f})"
                              for n, r in row.items() if n != "dense")
            verdict = "MET" if row["dropless"]["over_dense"] <= GOAL else "NOT MET"
            print(f"  T {tokens:5d}: dense {row['dense']['us']:9.1f} us  {cells}  [dropless: {plan}; goal {verdict}]",
                  flush=True)
    write_json(args.json, figures)


if __name__ == "__main__":
    sys.exit(main())
