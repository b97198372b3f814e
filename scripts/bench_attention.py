"""Benchmark: fused attention (jax.nn.dot_product_attention, cuDNN flash attention on an NVIDIA GPU in bf16)
against the plain einsum-softmax form, in the whole compiled train step of a workload.

The spec's `attention` field chooses; this is the measurement behind that choice. On a CPU both forms run
through XLA, so only the GPU figure decides anything.

    python scripts/bench_attention.py [--workload dense-base] [--tiny-width] [--blocks 5] [--steps 20]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from benchlib import add_timing_args, compiled, interleaved, line, ratio, seconds_per_step, spec_named


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="dense-base")
    add_timing_args(ap, steps=20)
    args = ap.parse_args()
    spec = spec_named(args.workload, args.tiny_width)
    runs = {kind: compiled(replace(spec, model=replace(spec.model, attention=kind))) for kind in ("plain", "fused")}
    times = interleaved(args.blocks, {k: (lambda t=t, b=b: seconds_per_step(t, lambda i: b, args.steps))
                                      for k, (t, _, b) in runs.items()})
    info = runs["fused"][0].describe()
    print(f"workload {spec.name} ({spec.model.dtype}), device {info['devices'][0]['kind']}; fused runs as "
          f"{info['attention_implementation']}")
    for kind, t in times.items():
        print(line(kind, t))
    r = ratio(times["fused"], times["plain"])
    print(f"fused / plain step time: {r:.3f}: {'fused is faster' if r < 1 else 'plain is as fast or faster'}; "
          f"the spec uses {spec.model.attention!r}")


if __name__ == "__main__":
    main()
