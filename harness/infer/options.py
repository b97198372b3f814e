"""What `harness infer` is asked (InferOptions, the flags as data), and what of it can be checked before any run
is read or anything compiled (one-line usage errors, exit 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UsageError
from harness.infer import loadgen as lgx
from harness.results.files import check_writable
from harness.results.inference import SCENARIOS
from harness.session import Metering
from workloads.routing import ROUTINGS


@dataclass(frozen=True)
class InferOptions:
    run_dir: str
    scenario: str = "offline"
    batch: int = 16
    prompt_len: int | None = None  # None: half the workload's context
    gen_len: int | None = None  # None: the other half
    samples: int | None = None  # None: every held-out context
    duration_ms: int = 5000  # LoadGen's min_duration_ms; MLPerf's is 600000
    min_queries: int = 1
    target_qps: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    max_wait_ms: float = 2.0  # Server: how long a batch waits for more queries after its first
    samples_per_query: int = 8  # MultiStream
    user_conf: str | None = None
    temperature: float = 0.0
    seed: int = 0
    # Switch: how tokens reach the experts when served: "dropless" (the default, as serving systems route) or
    # "capacity" (the paper's eval setting); None: dropless, or capacity where a capacity factor is given.
    routing: str | None = None
    capacity_factor: float | None = None  # capacity routing: slots per expert over tokens per expert; None: the spec's
    accuracy: bool = True
    output_dir: str = "results"
    # Where MLPerf Power's client (its -L) finds LoadGen's logs of the performance run, written there when done.
    loadgen_log_dir: str | None = None
    metering: Metering = field(default_factory=Metering)


def check(o: InferOptions) -> None:
    """What needs no run and no device, checked now (one-line errors, exit 2)."""
    if o.scenario not in SCENARIOS:
        raise UsageError(f"--scenario must be one of {', '.join(SCENARIOS)}, got {o.scenario!r}")
    for flag, value in (("--batch", o.batch), ("--duration-ms", o.duration_ms), ("--min-queries", o.min_queries),
                        ("--samples-per-query", o.samples_per_query)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if o.gen_len is not None and o.gen_len < 1:
        raise UsageError(f"--gen-len must be at least 1, got {o.gen_len}")
    for flag, value in (("--target-qps", o.target_qps), ("--latency-ms", o.latency_ms), ("--ttft-ms", o.ttft_ms),
                        ("--tpot-ms", o.tpot_ms)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{flag} must be a positive number, got {value}")
    if o.latency_ms is not None and (o.ttft_ms is not None or o.tpot_ms is not None):
        raise UsageError("--latency-ms bounds whole queries, --ttft-ms and --tpot-ms tokens: LoadGen judges one or "
                         "the other; give --latency-ms alone, or --ttft-ms / --tpot-ms")
    if not o.max_wait_ms >= 0:
        raise UsageError(f"--max-wait-ms must be >= 0, got {o.max_wait_ms}")
    if o.routing is not None and o.routing not in ROUTINGS:
        raise UsageError(f"--routing must be one of {', '.join(ROUTINGS)}, got {o.routing!r}")
    if o.capacity_factor is not None and not o.capacity_factor > 0:
        raise UsageError(f"--capacity-factor must be positive, got {o.capacity_factor}")
    if o.capacity_factor is not None and o.routing == "dropless":
        raise UsageError("--capacity-factor sets capacity routing's slots; dropless routing has none: give "
                         "--routing capacity with it, or leave it out")
    if not o.temperature >= 0:
        raise UsageError(f"--temperature must be >= 0 (0: greedy), got {o.temperature}")
    if o.user_conf is not None:
        lgx.check_user_conf(o.user_conf)
    lgx.loadgen()
    o.metering.check()
    check_writable(Path(o.output_dir), "--output-dir")
    if o.loadgen_log_dir is not None:
        check_writable(Path(o.loadgen_log_dir), "--loadgen-log-dir")


def buckets(batch: int) -> list[int]:
    """The batch sizes compiled: powers of two below `batch`, and `batch`."""
    out, b = [], 1
    while b < batch:
        out.append(b)
        b *= 2
    return out + [batch]
