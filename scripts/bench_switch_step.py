"""Benchmark: Switch / dense train-step time at matched activated FLOPs, and each model's MFU.

Both models of a pair have the same shapes, so a token activates the same FLOPs (the router's d x E aside).
Compiled steps on a resident batch are timed in interleaved blocks (dense, switch, dense, ...). MFU is model
FLOPs per second over the device's published dense peak (harness/results/peak_flops.csv); null on a CPU.
Goals: switch / dense <= 1.10 for the small pair on a CPU, <= 1.15 for the base pair on a GPU; dense-base
MFU >= 40 % on an H100/H200.

At `--steps-per-dispatch K` each compiled call runs K steps on a resident [K, batch, ...] block (`--steps` is
then calls a block); the figures stay per training step. `--dropless` adds the pair's dropless Switch twin
(switch-<pair>-dropless) and its step over the capacity-routed Switch step's; `--transposes` also the twin built
with JAX's own transposes where the dropless layer has custom VJPs (the token permutations, the experts' weight
gathers), to show what each custom backward buys.

    python scripts/bench_switch_step.py [--pair small|tiny|base] [--tiny-width] [--blocks 5] [--steps 20]
                                        [--steps-per-dispatch K] [--dropless [--transposes]] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from benchlib import add_timing_args, compiled, interleaved, line, ratio, seconds_per_step, spec_named, write_json

from harness.results.efficiency import device_peak
from workloads.flops import train_flops_per_token

GOALS = {"small": 1.10, "tiny": 1.10, "base": 1.15}


@contextlib.contextmanager
def jax_transposes() -> Iterator[None]:
    """While a trainer is built (traced and compiled): the dropless layer's permutations and weight gathers as
    plain gathers, differentiated by JAX's transpose (a scatter-add) instead of their custom VJPs."""
    import jax.numpy as jnp

    from workloads.jax_impl import dropless

    saved = dropless.permute_rows, dropless.take_experts
    dropless.permute_rows = lambda x, index, inverse: jnp.take(x, index, axis=0, mode="fill", fill_value=0)
    dropless.take_experts = lambda w, block_expert: w[block_expert]
    try:
        yield
    finally:
        dropless.permute_rows, dropless.take_experts = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="small", choices=sorted(GOALS))
    add_timing_args(ap, steps=20)
    ap.add_argument("--steps-per-dispatch", type=int, default=1, help="training steps a compiled call")
    ap.add_argument("--dropless", action="store_true", help="also the dropless Switch twin")
    ap.add_argument("--transposes", action="store_true", help="with --dropless: also the twin on JAX's transposes")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    names = (f"dense-{args.pair}", f"switch-{args.pair}", *([f"switch-{args.pair}-dropless"] if args.dropless else []))
    k = args.steps_per_dispatch
    runs = {n: compiled(spec_named(n, args.tiny_width), steps_per_dispatch=k) for n in names}
    transposed = f"{names[-1]} (JAX's transposes)"
    if args.dropless and args.transposes:
        with jax_transposes():
            runs[transposed] = compiled(spec_named(names[-1], args.tiny_width), steps_per_dispatch=k)
    times = interleaved(args.blocks, {n: (lambda t=t, b=b: seconds_per_step(t, lambda i: b, args.steps, k))
                                      for n, (t, _, b) in runs.items()})
    device = runs[names[0]][0].describe()["devices"][0]
    print(f"device: {device['kind']} ({device['platform']}); {k} step(s) a compiled call")
    figures = {"device": device["kind"], "platform": device["platform"], "steps_per_dispatch": k, "models": {}}
    for n, (trainer, _, _) in runs.items():
        spec = trainer.spec
        label = spec.name + (" (JAX's transposes)" if n == transposed else "")
        flops_per_step = train_flops_per_token(spec.model, spec.seq_len) * spec.batch_size * spec.seq_len
        step = min(times[n])  # the least disturbed block: MFU is a property of the hardware and the step
        peak = device_peak(device["kind"], device["platform"], spec.model.dtype)
        mfu = (f"MFU {100 * flops_per_step / step / peak['flops_per_s']:.1f} % of {peak['flops_per_s'] / 1e12:.0f} "
               f"TFLOP/s {peak['precision']}" if peak["flops_per_s"] else "MFU n/a (no published peak)")
        print(line(label, times[n], f"  {flops_per_step / step / 1e12:.2f} TFLOP/s, {mfu}"))
        figures["models"][label] = {
            "ms_per_step": 1000 * step, "blocks_ms": [1000 * t for t in times[n]],
            "model_tflops_per_s": flops_per_step / step / 1e12,
            "mfu": flops_per_step / step / peak["flops_per_s"] if peak["flops_per_s"] else None}
    r = ratio(times[names[1]], times[names[0]])
    per_block = ", ".join(f"{s / d:.3f}" for d, s in zip(times[names[0]], times[names[1]], strict=True))
    goal = GOALS[args.pair]
    print(f"switch / dense step time: {r:.3f}  (per block: {per_block})  goal <= {goal}: "
          f"{'MET' if r <= goal else 'NOT MET'}")
    figures.update(switch_over_dense_step=r, goal=goal)
    if args.dropless:
        d = {base: ratio(times[names[2]], times[base]) for base in names[:2]}
        print(f"dropless switch / capacity switch step time: {d[names[1]]:.3f}; dropless switch / dense: "
              f"{d[names[0]]:.3f}")
        figures.update(dropless_over_capacity_step=d[names[1]], dropless_over_dense_step=d[names[0]])
    if transposed in runs:
        t = ratio(times[names[2]], times[transposed])
        print(f"dropless with its custom VJPs / with JAX's transposes: {t:.3f}")
        figures["custom_vjp_over_jax_transposes"] = t
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
