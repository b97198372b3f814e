"""Modelled CPU power from utilisation and a TDP figure, for machines without RAPL (VMs, containers).

power = idle_w + (tdp_w - idle_w) * busy_fraction, integrated over the intervals between read() calls.
This is an estimate and is labelled as such everywhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.machine import CPUINFO, cpu_model
from harness.meters.base import Availability, Meter, MeterUnavailable, Option, positive
from harness.tables import longest_match, read_table_file

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

TDP_TABLE = Path(__file__).with_name("cpu_tdp.csv")
# Linear server power models put idle draw at roughly a quarter to a third of full-load power; 0.3 is a
# middle value of that range, a documented assumption and not a measurement of this machine.
DEFAULT_IDLE_FRACTION = 0.3


@dataclass(frozen=True)
class TdpRow:
    pattern: str
    tdp_w: float
    threads_per_package: int
    source: str


def load_tdp_table(path: str | Path = TDP_TABLE) -> list[TdpRow]:
    return [TdpRow(r["pattern"], float(r["tdp_w"]), int(r["threads_per_package"]), r["source"])
            for r in read_table_file(path)]


def match_tdp(model: str, table: list[TdpRow]) -> TdpRow | None:
    """The row for a CPU model: whole words, case-insensitive; the longest pattern is the most specific."""
    return longest_match(model, table, lambda r: r.pattern)


def read_cpu_model(cpuinfo_path: str | Path = CPUINFO) -> str:
    """The CPU's model name, from /proc/cpuinfo read where the rest of the harness reads it (harness/machine.py)."""
    return cpu_model(cpuinfo_path)


def read_proc_stat(stat_path: str | Path = "/proc/stat") -> tuple[int, int, int]:
    """(busy jiffies, total jiffies, number of per-CPU lines) from /proc/stat."""
    with open(stat_path) as f:
        return parse_proc_stat(f.read(), stat_path)


def parse_proc_stat(text: str, stat_path: str | Path = "/proc/stat") -> tuple[int, int, int]:
    """(busy jiffies, total jiffies, number of per-CPU lines) from the text of /proc/stat."""
    busy = total = 0
    first, _, rest = text.partition("\n")
    fields = first.split()
    if fields and fields[0] == "cpu":
        # user nice system idle iowait irq softirq steal; guest/guest_nice are already counted in
        # user/nice, so including them would double count.
        vals = [int(v) for v in fields[1:9]]
        total = sum(vals)
        busy = total - vals[3] - (vals[4] if len(vals) > 4 else 0)
    ncpu = sum(1 for line in rest.splitlines() if line.startswith("cpu"))
    if total == 0:
        raise ValueError(f"no aggregate 'cpu' line in {stat_path}")
    return busy, total, ncpu


def resolve_tdp(
    tdp_w: float | None,
    threads_per_package: int | None,
    cpu_model: str,
    visible_cpus: int,
    table: list[TdpRow],
) -> dict[str, Any]:
    """Work out the package TDP and its share for the visible CPUs; ValueError with a reason if unknown."""
    if tdp_w is not None:
        if tdp_w <= 0:
            raise ValueError(f"cpu-model: --cpu-tdp must be positive, got {tdp_w}")
        # A user-given TDP is taken as the full-load watts of the CPUs this machine sees, unless they also
        # say how many threads that figure covers.
        pkg, threads, source = float(tdp_w), threads_per_package, "user: --cpu-tdp"
    else:
        row = match_tdp(cpu_model, table)
        if row is None:
            raise ValueError(f"cpu-model: no TDP known for CPU {cpu_model!r}; pass --cpu-tdp WATTS")
        pkg, threads, source = row.tdp_w, row.threads_per_package, row.source
    # VMs often see a few threads of a big package; they should be charged only their share of it.
    scale = min(1.0, visible_cpus / threads) if threads else 1.0
    return {
        "tdp_w_package": pkg,
        "threads_per_package": threads,
        "visible_cpus": visible_cpus,
        "tdp_w_modelled": pkg * scale,
        "tdp_scale": scale,
        "tdp_source": source,
    }


class CpuModelMeter(Meter):
    name: ClassVar[str] = "cpu-model"
    options: ClassVar[tuple[Option, ...]] = (
        Option("cpu_tdp", "--cpu-tdp", float, "CPU watts at full load for the modelled CPU meter", positive("watts")),)
    in_auto: ClassVar[bool] = True
    instead_of: ClassVar[str | None] = "rapl"
    description: ClassVar[tuple[str, str, str]] = (
        "CPUs visible to this process", "modelled", "/proc/stat utilisation at the sampler rate x TDP")

    def __init__(
        self,
        tdp_w: float | None = None,
        threads_per_package: int | None = None,
        idle_fraction: float = DEFAULT_IDLE_FRACTION,
        stat_path: str | Path = "/proc/stat",
        cpuinfo_path: str | Path = CPUINFO,
        visible_cpus: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        table_path: str | Path = TDP_TABLE,
    ) -> None:
        if not 0.0 <= idle_fraction <= 1.0:
            raise ValueError(f"idle_fraction must be in [0, 1], got {idle_fraction}")
        self.method = "modelled:cpu-tdp-utilization"
        self.stat_path = Path(stat_path)
        self.cpu_model = read_cpu_model(cpuinfo_path)
        # Count CPUs from the same file the busy fraction comes from, so both describe the same CPUs.
        ncpu = visible_cpus or read_proc_stat(stat_path)[2] or os.cpu_count() or 1
        self.tdp = resolve_tdp(tdp_w, threads_per_package, self.cpu_model, ncpu, load_tdp_table(table_path))
        self.idle_fraction = idle_fraction
        self.tdp_w = float(self.tdp["tdp_w_modelled"])
        self.idle_w = idle_fraction * self.tdp_w
        self._clock = clock
        self._prev: tuple[int, int, float] | None = None
        self._joules = 0.0
        self._busy = 0.0
        self._stat_fd: int | None = None

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> CpuModelMeter:
        try:
            return cls(tdp_w=req.option("cpu_tdp"))
        except (OSError, ValueError) as e:
            raise MeterUnavailable(str(e) if str(e).startswith("cpu-model") else f"cpu-model: {e}") from None

    def ready(self) -> str:
        return f"ok: modelled from /proc/stat, {self.tdp_w:.1f} W at full load ({self.tdp['tdp_source']})"

    @classmethod
    def check(
        cls,
        tdp_w: float | None = None,
        stat_path: str | Path = "/proc/stat",
        cpuinfo_path: str | Path = CPUINFO,
        table_path: str | Path = TDP_TABLE,
    ) -> Availability:
        try:
            m = cls(tdp_w=tdp_w, stat_path=stat_path, cpuinfo_path=cpuinfo_path, table_path=table_path)
        except (OSError, ValueError) as e:
            return Availability(False, str(e) if str(e).startswith("cpu-model") else f"cpu-model: {e}")
        full = f"{m.tdp_w:.1f} W at full load"
        return Availability(True, f"ok: modelled from /proc/stat, {full} ({m.tdp['tdp_source']})")

    def components(self) -> list[str]:
        return ["cpu"]

    def _read_stat(self) -> tuple[int, int]:
        # The file stays open between reads: opening /proc/stat costs about as much as reading it,
        # and EnergyMonitor reads at every window edge, inside the loop it is timing.
        if self._stat_fd is None:
            self._stat_fd = os.open(self.stat_path, os.O_RDONLY)
        busy, total, _ = parse_proc_stat(os.pread(self._stat_fd, 1 << 16, 0).decode(), self.stat_path)
        return busy, total

    def start(self) -> None:
        busy, total = self._read_stat()
        self._prev = (busy, total, self._clock())
        self._joules = 0.0

    def watts(self, busy_fraction: float) -> float:
        return self.idle_w + (self.tdp_w - self.idle_w) * busy_fraction

    def read(self) -> dict[str, float]:
        if self._prev is None:
            raise RuntimeError("CpuModelMeter.start() has not been called")
        busy, total = self._read_stat()
        now = self._clock()
        p_busy, p_total, p_t = self._prev
        if total > p_total:
            # Clamped because some hypervisors let idle/iowait counters step backwards slightly.
            self._busy = min(1.0, max(0.0, (busy - p_busy) / (total - p_total)))
        # else: no jiffy elapsed since the last read (100 Hz ticks); keep the previous busy fraction.
        self._joules += self.watts(self._busy) * max(0.0, now - p_t)
        self._prev = (busy, total, now)
        return {"cpu": self._joules}

    def stop(self) -> None:
        if self._stat_fd is not None:
            os.close(self._stat_fd)
            self._stat_fd = None

    def params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "cpu_model": self.cpu_model,
            **self.tdp,
            "idle_w": self.idle_w,
            "idle_fraction": self.idle_fraction,
            "formula": "idle_w + (tdp_w_modelled - idle_w) * busy_fraction; busy from /proc/stat",
            "note": "modelled, not measured",
        }
