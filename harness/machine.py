"""This machine as software sees it: /proc/cpuinfo, sysfs and os-release, read in one place.

The meters read the CPU model from here (the CPU power model needs it), and every run records the rest in
its result (environment.hardware), so that a system description written later from that result says what the
run's machine was instead of guessing from the machine that writes it. Nothing here imports the rest of the
harness.
"""

from __future__ import annotations

import platform
import re
from functools import cache
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
SYS_CPU = Path("/sys/devices/system/cpu")
OS_RELEASE = Path("/etc/os-release")


def cpuinfo(path: str | Path = CPUINFO) -> list[dict[str, str]]:
    """One dict per processor entry of /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if blocks[-1]:
                blocks.append({})
            continue
        blocks[-1][key.strip()] = value.strip()
    return [b for b in blocks if b]


def cpu_model(path: str | Path = CPUINFO) -> str:
    """The CPU's model name ("" where /proc/cpuinfo does not say)."""
    return next((p["model name"] for p in cpuinfo(path) if "model name" in p), "")


def memory_gib(path: str | Path = MEMINFO) -> float | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


@cache
def host_facts() -> dict[str, Any]:
    """What a system description asks of the host (read once a process): sockets and physical cores per
    socket (from the (physical id, core id) pairs; some kernels, e.g. many ARM ones, omit them), whether it is
    a virtual machine, the cpufreq maximum, cpu0's caches and the distribution."""
    return read_host_facts()


def read_host_facts(cpuinfo_path: str | Path = CPUINFO, sys_cpu: str | Path = SYS_CPU,
                    os_release: str | Path = OS_RELEASE) -> dict[str, Any]:
    procs = cpuinfo(cpuinfo_path)
    out: dict[str, Any] = {"source": "/proc/cpuinfo, /sys/devices/system/cpu and /etc/os-release, during the run"}
    if procs and all("physical id" in p and "core id" in p for p in procs):
        sockets = {p["physical id"] for p in procs}
        cores = {(p["physical id"], p["core id"]) for p in procs}
        out["sockets"] = len(sockets)
        if len(cores) % len(sockets) == 0:
            out["cores_per_socket"] = len(cores) // len(sockets)
    if procs:
        out["virtual_machine"] = "hypervisor" in procs[0].get("flags", "").split()
    try:
        khz = int((Path(sys_cpu) / "cpu0" / "cpufreq" / "cpuinfo_max_freq").read_text())
        out["max_mhz"] = round(khz / 1000)
    except (OSError, ValueError):
        pass
    caches = _caches(Path(sys_cpu))
    if caches:
        out["caches"] = caches
    distro = _distro(Path(os_release))
    if distro:
        out["distro"] = distro
    return out


def _caches(sys_cpu: Path) -> str | None:
    """Cache sizes as cpu0 sees them in sysfs; /proc/cpuinfo's single 'cache size' is L2 on AMD, L3 on Intel."""
    parts = []
    for index in sorted((sys_cpu / "cpu0" / "cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        parts.append(f"L{level}{suffix} {_size_text(size)}")
    return ", ".join(parts) + " (as seen by cpu0)" if parts else None


def _size_text(size: str) -> str:
    m = re.fullmatch(r"(\d+)K", size)
    if not m:
        return size
    kib = int(m.group(1))
    return f"{kib // 1024} MiB" if kib >= 1024 and kib % 1024 == 0 else f"{kib} KiB"


def _distro(os_release: Path) -> str | None:
    try:
        for line in os_release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def describe() -> dict[str, Any]:
    """This host: platform string, machine, host name, CPU model and count, memory, and the host facts."""
    import os

    return {"platform": platform.platform(), "machine": platform.machine(), "host": platform.node(),
            "cpu_model": cpu_model() or platform.processor() or "unknown", "logical_cpus": os.cpu_count(),
            "memory_gib": memory_gib(), "cpu": host_facts()}
