"""Benchmark: NVML energy counter vs integrated instant power on one GPU, idle and under a steady matmul load.

Goal: the two independent figures agree within 2% over the loaded window. Also measures how often the
energy counter actually moves (the meter assumes ~100 ms), and the sampler rate reached.

    python scripts/bench_nvml_agreement.py [--seconds 20] [--idle 5] [--hz 20] [--size 8192]

On a machine without an NVIDIA GPU it says so and exits 0, so the device check can run anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from harness.meters import Sampler
from harness.meters.nvml import NvmlMeter
from harness.meters.window import measure_window


def counter_update_period(meter: NvmlMeter, seconds: float = 1.0) -> tuple[float, int]:
    """Median seconds between changes of the raw energy counter, polled as fast as Python can."""
    nv, handle = meter.nvml, meter.gpus[0].handle
    changes, last, polls = [], nv.nvmlDeviceGetTotalEnergyConsumption(handle), 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        value = nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        polls += 1
        if value != last:
            changes.append(time.perf_counter())
            last = value
    gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
    return (statistics.median(gaps) if gaps else float("nan")), polls


def windows(sampler: Sampler, meter: NvmlMeter, labels: list[str]) -> list[float]:
    out = []
    for a, b in zip(labels, labels[1:], strict=False):
        (check,) = measure_window(sampler, [meter], a, b)["cross_checks"]
        out.append(check["disagreement_pct"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="loaded window")
    ap.add_argument("--idle", type=float, default=5.0, help="idle window before the load")
    ap.add_argument("--hz", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=8192, help="square bf16 matmul size")
    args = ap.parse_args()

    gpus = [d for d in jax.local_devices() if d.platform == "gpu"]
    if not gpus:
        print(f"no NVIDIA GPU here (jax backend {jax.default_backend()}): nothing to compare; skipped")
        return 0
    probe = NvmlMeter.check([0])
    if not probe.available:
        print(f"GPU present but NVML unusable: {probe.reason}")
        return 1
    meter = NvmlMeter([0])
    info = meter.params()["gpus"][0]
    print(f"card {info['name']}, driver {meter.driver}, limit {info['power_limit_w']} W, "
          f"method {meter.method}, gauge {info['power_gauge_source']}, memory rail {info['memory_power']}")
    if meter.counter:
        period, polls = counter_update_period(meter)
        print(f"energy counter moves every {1000 * period:.1f} ms (median, {polls} polls in 1 s); "
              f"the meter assumes ~{1000 * meter.update_period_s:.0f} ms")

    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (args.size, args.size), jnp.bfloat16)

    @jax.jit
    def burn(x):
        # 20 chained matmuls per call keep the GPU busy between the host's dispatches.
        def body(_, y):
            return (y @ x) * jnp.bfloat16(1.0 / args.size**0.5)
        return jax.lax.fori_loop(0, 20, body, x)

    jax.block_until_ready(burn(a))
    sampler = Sampler([meter], hz=args.hz)
    sampler.start()
    time.sleep(0.5)
    sampler.mark("idle_start")
    time.sleep(args.idle)
    sampler.mark("idle_stop")
    warm_end = time.perf_counter() + 3.0  # clocks and power settle before the measured window
    y = a
    while time.perf_counter() < warm_end:
        y = jax.block_until_ready(burn(y))
    labels = ["load_0"]
    sampler.mark(labels[0])
    start = time.perf_counter()
    flops = 0
    while (elapsed := time.perf_counter() - start) < args.seconds:
        y = jax.block_until_ready(burn(y))
        flops += 20 * 2 * args.size**3
        if elapsed >= 5.0 * len(labels):
            labels.append(f"load_{len(labels)}")
            sampler.mark(labels[-1])
    labels.append("load_end")
    sampler.mark(labels[-1])
    seconds = sampler.window_seconds(labels[0], labels[-1])
    sampler.stop()

    for name, (a_label, b_label) in (("idle", ("idle_start", "idle_stop")), ("load", (labels[0], labels[-1]))):
        w = measure_window(sampler, [meter], a_label, b_label)
        (check,) = w["cross_checks"]
        pct = check["disagreement_pct"]
        print(f"{name:4s}: {w['seconds']:.1f} s, counter {check['a']['joules']:.1f} J "
              f"({check['a']['joules'] / w['seconds']:.1f} W), integrated instant {check['b']['joules']:.1f} J "
              f"({check['b']['joules'] / w['seconds']:.1f} W), disagreement {pct:+.2f} %")
    per = windows(sampler, meter, labels[:-1]) if len(labels) > 2 else []
    if per:
        print(f"5 s windows under load: disagreement {', '.join(f'{p:+.2f}' for p in per)} %")
    memory = [g.get("nvml/gpu-0.memory") for g in sampler.gauge_values if "nvml/gpu-0.memory" in g]
    if memory:
        print(f"memory rail gauge: mean {statistics.fmean(memory):.1f} W over the whole trace")
    print(f"matmul throughput {flops / seconds / 1e12:.0f} TFLOP/s; sampler {sampler.achieved_hz():.1f} Hz, "
          f"{len(sampler.gaps(2.0))} gaps over 2 s, {len(sampler.errors)} read errors")
    load = measure_window(sampler, [meter], labels[0], labels[-1])["cross_checks"][0]["disagreement_pct"]
    print(f"counter vs integrated instant power under load: {load:+.2f} %  goal within 2%: "
          f"{'MET' if abs(load) <= 2.0 else 'NOT MET'}")
    for w in meter.warnings():
        print("warning:", w)
    return 0


if __name__ == "__main__":
    sys.exit(main())
