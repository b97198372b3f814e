"""Benchmark: a served Switch token against a dense one, capacity routing against dropless, per batch.

For each batch B, three decoders of the small pair's shape (dense-small; switch-small at its eval capacity factor;
switch-small dropless), each compiled for B prompts of 32 tokens and 32 generated tokens, time `prefill` (the
prompts in one call: B x 32 tokens routed) and `generate_rest` (31 decode steps of B tokens) in interleaved blocks.
Per generated token, Switch / dense: the prefill, the decode step and the whole served token (prefill + decode).
Beside them, the executed FLOPs per served token over the dense model's (workloads/flops.py: capacity slots, block
padding). The weights are each model's initial ones: speed does not depend on training, and dropless work does not
depend on the routing (a static buffer). Goal on the 2-core CPU: a dropless served token <= 1.10x a dense one at
every batch.

    python scripts/bench_switch_serving.py [--batches 1,4,16,64] [--blocks 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
from benchlib import spec_named, write_json

from workloads.corpus import MarkovMixture
from workloads.jax_impl.weights import initial_weights
from workloads.trainers import build_decoder

GOAL = 1.10
PROMPT, GEN = 32, 32


def variants() -> dict[str, Any]:
    dense, switch = spec_named("dense-small"), spec_named("switch-small")
    return {"dense": dense, "capacity": switch,
            "dropless": replace(switch, model=replace(switch.model, routing="dropless"))}


def time_calls(decoder: Any, prompts: np.ndarray, calls: int) -> tuple[float, float]:
    """Mean seconds of one prefill and one generate_rest, over `calls` of each, each waited for."""
    prefill = rest = 0.0
    for _ in range(calls):
        t0 = time.perf_counter()
        first, state = decoder.prefill(prompts)
        np.asarray(first)
        t1 = time.perf_counter()
        np.asarray(decoder.generate_rest(state))
        prefill, rest = prefill + t1 - t0, rest + time.perf_counter() - t1
    return prefill / calls, rest / calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    specs = variants()
    data = MarkovMixture(specs["dense"].corpus)
    eval_set = data.eval_set()
    weights = {n: initial_weights(s, 0, data.train_batch(0, 0, 2)) for n, s in specs.items()}
    figures: dict[str, Any] = {"goal": GOAL, "prompt_len": PROMPT, "gen_len": GEN, "batches": {}}
    print(f"prompt {PROMPT} + {GEN} generated tokens, greedy; Switch / dense per generated token (executed FLOPs "
          "per served token over the dense model's in brackets)")
    for batch in (int(b) for b in args.batches.split(",")):
        decoders = {n: build_decoder(s, weights[n], batch, PROMPT, GEN) for n, s in specs.items()}
        prompts = np.resize(eval_set[:, :PROMPT], (batch, PROMPT)).astype(np.int32)
        calls = max(2, 64 // batch)
        times: dict[str, list[tuple[float, float]]] = {n: [] for n in decoders}
        for block in range(args.blocks):
            order = list(decoders.items()) if block % 2 == 0 else list(decoders.items())[::-1]
            for n, d in order:
                times[n].append(time_calls(d, prompts, calls))
        med = {n: {"prefill": statistics.median(p for p, _ in t), "decode": statistics.median(r for _, r in t)}
               for n, t in times.items()}
        executed = {n: sum(d.executed_flops.values()) for n, d in decoders.items()}
        row: dict[str, Any] = {"dense_ms": {k: 1e3 * v for k, v in med["dense"].items()}}
        cells = []
        for n in ("capacity", "dropless"):
            total = (med[n]["prefill"] + med[n]["decode"]) / (med["dense"]["prefill"] + med["dense"]["decode"])
            row[n] = {"prefill": med[n]["prefill"] / med["dense"]["prefill"],
                      "decode_step": med[n]["decode"] / med["dense"]["decode"], "served_token": total,
                      "executed_flops": executed[n] / executed["dense"]}
            r = row[n]
            cells.append(f"{n}: prefill {r['prefill']:.3f}, decode step {r['decode_step']:.3f}, served token "
                         f"{r['served_token']:.3f} [{r['executed_flops']:.2f}]")
        verdict = "MET" if row["dropless"]["served_token"] <= GOAL else "NOT MET"
        print(f"  batch {batch:3d} (dense: prefill {row['dense_ms']['prefill']:.2f} ms, decode "
              f"{row['dense_ms']['decode']:.2f} ms):  " + ";  ".join(cells) + f"  [goal {verdict}]", flush=True)
        figures["batches"][str(batch)] = row
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
