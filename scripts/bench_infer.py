"""Inference benchmarks, each a ratio measured side by side in one run (interleaved blocks):

1. cached decode / full recompute, per generated token at --gen-len (default 64; goal >= 5x): the KV-cache decoder
   against rerunning the full forward over the growing sequence each step, greedy, same batch;
2. tokens/s under LoadGen (Offline, the harness's SUT and batcher) / the bare decoder loop over the same samples at
   the same batch (goal >= 0.95);
3. metered / unmetered: the LoadGen Offline test with the sampler reading the meters at 20 Hz, against none
   (goal >= 0.99).

The model is the workload's at its initial weights (speed does not depend on training), its context stretched
to prompt + gen-len (rotary positions have no learned table), routed as `harness infer` serves it (a Switch model
dropless). Usage: python scripts/bench_infer.py
[--workload switch-small] [--batch 16] [--blocks 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from benchlib import spec_named, write_json

from harness import meters
from harness.infer import loadgen as lgx
from harness.infer.sut import DecoderSUT
from harness.infer.trained import served_routing
from harness.session import Metering
from workloads.corpus import MarkovMixture
from workloads.jax_impl.weights import initial_weights
from workloads.trainers import build_decoder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="switch-small")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--gen-len", type=int, default=64)
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--duration-ms", type=int, default=3000)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    spec = served_routing(spec_named(args.workload), None, None)
    total = args.prompt_len + args.gen_len
    spec = replace(spec, model=replace(spec.model, max_len=max(spec.model.max_len, total)))
    data = MarkovMixture(spec.corpus)
    weights = initial_weights(spec, 0, data.train_batch(0, 0, 2))
    b = args.batch
    decoder = build_decoder(spec, weights, b, args.prompt_len, args.gen_len)
    decoder.warmup()
    rows = np.resize(data.eval_set()[:, :args.prompt_len], (args.samples, args.prompt_len)).astype(np.int32)
    batches = [np.resize(rows[i:i + b], (b, args.prompt_len)).astype(np.int32) for i in range(0, len(rows), b)]

    def cached() -> float:
        t = time.perf_counter()
        decoder.generate(batches[0])
        return (time.perf_counter() - t) / (b * args.gen_len)

    def recompute() -> float:
        t = time.perf_counter()
        decoder.full_recompute_generate(batches[0])
        return (time.perf_counter() - t) / (b * args.gen_len)

    def bare() -> float:
        t = time.perf_counter()
        for x in batches:
            decoder.generate(x)
        return len(batches) * b * args.gen_len / (time.perf_counter() - t)  # tokens/s

    def under_loadgen(metered: bool) -> float:
        chosen = Metering(meter="auto").choose([])[0] if metered else []
        sampler = meters.Sampler(chosen, hz=20.0)
        if metered:
            sampler.start()
        marks: dict[str, float] = {}

        def mark(label: str) -> None:
            marks[label] = time.perf_counter()

        sut = DecoderSUT({b: decoder}, rows, args.gen_len, 0.0, mark, ("start", "stop"), 0)
        qsl = lgx.loadgen().ConstructQSL(len(rows), len(rows), lambda _: None, lambda _: None)
        rate = bare_rate / args.gen_len * 1.5
        settings = lgx.test_settings(lgx.Settings("offline", args.duration_ms, 1, target_qps=rate), "performance",
                                     len(rows))
        with tempfile.TemporaryDirectory() as tmp:
            lgx.run_test(sut.handle, qsl, settings, Path(tmp))
        sut.close()
        lgx.loadgen().DestroyQSL(qsl)
        if metered:
            sampler.stop()
        return sut.tally.tokens / (marks["stop"] - marks["start"])

    bare_rate = statistics.median(bare() for _ in range(3))
    got: dict[str, list[float]] = {k: [] for k in ("cached", "recompute", "bare", "loadgen", "loadgen_metered")}
    for block in range(args.blocks):
        order = [("cached", cached), ("recompute", recompute), ("bare", bare),
                 ("loadgen", lambda: under_loadgen(False)), ("loadgen_metered", lambda: under_loadgen(True))]
        for name, fn in order if block % 2 == 0 else order[::-1]:
            got[name].append(fn())
        print(f"  block {block + 1}/{args.blocks}: " + ", ".join(f"{k} {v[-1]:.4g}" for k, v in got.items()),
              file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in got.items()}
    figures = {
        "workload": spec.name, "batch": b, "prompt_len": args.prompt_len, "gen_len": args.gen_len,
        "samples": args.samples, "duration_ms": args.duration_ms, "blocks": args.blocks, "raw": got,
        "cached_s_per_token": med["cached"], "recompute_s_per_token": med["recompute"],
        "cached_speedup": med["recompute"] / med["cached"], "bare_tokens_per_s": med["bare"],
        "loadgen_tokens_per_s": med["loadgen"], "loadgen_over_bare": med["loadgen"] / med["bare"],
        "metered_tokens_per_s": med["loadgen_metered"],
        "metered_over_unmetered": med["loadgen_metered"] / med["loadgen"],
    }
    print(f"{spec.name}, batch {b}, prompt {args.prompt_len} + {args.gen_len} tokens, {args.blocks} blocks:")
    print(f"  cached decode {1e6 * med['cached']:.2f} us/token, full recompute {1e6 * med['recompute']:.2f} us/token: "
          f"{figures['cached_speedup']:.1f}x (goal >= 5x)")
    print(f"  tokens/s: bare loop {med['bare']:,.0f}, under LoadGen {med['loadgen']:,.0f}: "
          f"{figures['loadgen_over_bare']:.3f} (goal >= 0.95)")
    print(f"  metered {med['loadgen_metered']:,.0f} tokens/s: {figures['metered_over_unmetered']:.3f} of unmetered "
          "(goal >= 0.99)")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
