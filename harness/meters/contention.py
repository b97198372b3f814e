"""CPU time on this host, read at window edges: the run's own against every process's.

A CPU meter (RAPL, or the CPU model on a machine without it) charges the whole package to the run, so work
of other processes on the machine is counted as the run's. These readings let a record say how much of the
machine others used over its window. /proc/stat's busy jiffies count every process (and, in a VM, time the
hypervisor stole); os.times() counts this process's threads and the children it has waited for.
"""

from __future__ import annotations

import os
import time

from harness.meters.cpu_model import read_proc_stat

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot() -> dict[str, float] | None:
    """{"time_s", "own_cpu_s", "busy_cpu_s", "cpus"} now (CPU times in s); None where /proc/stat is not there."""
    own = os.times()
    try:
        busy, _, cpus = read_proc_stat()
    except (OSError, ValueError):
        return None
    return {"time_s": time.monotonic(), "own_cpu_s": own.user + own.system + own.children_user + own.children_system,
            "busy_cpu_s": busy / _TICKS_PER_S, "cpus": cpus}


def cpu_between(a: dict[str, float] | None, b: dict[str, float] | None) -> dict[str, float] | None:
    """CPU time over the window between two snapshots: {"seconds", "cpus", "own_cpu_s", "machine_busy_cpu_s"}."""
    if a is None or b is None:
        return None
    return {"seconds": b["time_s"] - a["time_s"], "cpus": int(b["cpus"]), "own_cpu_s": b["own_cpu_s"] - a["own_cpu_s"],
            "machine_busy_cpu_s": b["busy_cpu_s"] - a["busy_cpu_s"]}
