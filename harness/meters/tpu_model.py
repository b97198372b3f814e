"""Modelled TPU energy: chips x published average system power per chip x time.

Cloud TPUs expose no energy counter to the user, so this is the seed paper's own method (Patterson et al.
2021 multiply chips x hours x measured average system watts per chip). It is labelled modelled everywhere.
The published figures are per chip *including its share of the host*, so the CPU meter's figure overlaps
this one; the runner reports both but the CPU is part of the TPU figure's scope.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Availability, Meter, MeterUnavailable, Option, positive
from harness.tables import longest_match, read_table_file

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

POWER_TABLE = Path(__file__).with_name("tpu_power.csv")


@dataclass(frozen=True)
class TpuPowerRow:
    pattern: str
    watts: float
    source: str


def load_power_table(path: str | Path = POWER_TABLE) -> list[TpuPowerRow]:
    return [TpuPowerRow(r["pattern"], float(r["avg_system_w_per_chip"]), r["source"]) for r in read_table_file(path)]


def match_power(device_kind: str, table: list[TpuPowerRow]) -> TpuPowerRow | None:
    """The row for a device kind ("TPU v3", "TPU v5 lite"...): whole words, the longest pattern wins, so that
    "TPU v2" cannot match a "TPU v20"."""
    return longest_match(device_kind, table, lambda r: r.pattern)


class TpuModelMeter(Meter):
    name: ClassVar[str] = "tpu-model"
    part: ClassVar[str] = "accelerator"
    platforms: ClassVar[tuple[str, ...]] = ("tpu",)
    options: ClassVar[tuple[Option, ...]] = (
        Option("tpu_watts", "--tpu-watts", float, "average system W per TPU chip (overrides the table)",
               positive("watts")),)
    in_auto: ClassVar[bool] = True
    description: ClassVar[tuple[str, str, str]] = (
        "each TPU chip incl. its host share", "modelled", "chips x published W/chip x time")

    def __init__(
        self,
        device_kinds: list[str],
        watts_per_chip: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        table_path: str | Path = POWER_TABLE,
    ) -> None:
        if not device_kinds:
            raise ValueError("tpu-model: no TPU among the run's devices")
        kinds = sorted(set(device_kinds))
        if len(kinds) > 1:
            raise ValueError(f"tpu-model: mixed TPU generations {kinds} are not supported")
        self.kind = kinds[0]
        if watts_per_chip is not None:
            if not watts_per_chip > 0:
                raise ValueError(f"tpu-model: --tpu-watts must be positive, got {watts_per_chip}")
            self.watts, self.source = float(watts_per_chip), "user: --tpu-watts"
        else:
            row = match_power(self.kind, load_power_table(table_path))
            if row is None:
                raise ValueError(f"tpu-model: no published average system power for {self.kind!r} in "
                                 f"{Path(table_path).name}; pass --tpu-watts W (and keep its source)")
            self.watts, self.source = row.watts, row.source
        self.chips = len(device_kinds)
        self.method = "modelled:tpu-published-avg-power"
        self._clock = clock
        self._t0: float | None = None

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> TpuModelMeter:
        try:
            return cls([a.kind for a in accels if a.platform == "tpu"], req.option("tpu_watts"))
        except ValueError as e:
            raise MeterUnavailable(str(e)) from None

    def ready(self) -> str:
        return f"ok: modelled, {self.chips} x {self.kind} at {self.watts:g} W/chip ({self.source})"

    @classmethod
    def check(cls, device_kinds: list[str] | None = None, watts_per_chip: float | None = None) -> Availability:
        try:
            m = cls(device_kinds or [], watts_per_chip)
        except ValueError as e:
            return Availability(False, str(e))
        return Availability(True, f"ok: modelled, {m.chips} x {m.kind} at {m.watts:g} W/chip ({m.source})")

    def components(self) -> list[str]:
        return [f"tpu-{i}" for i in range(self.chips)]

    def start(self) -> None:
        self._t0 = self._clock()

    def read(self) -> dict[str, float]:
        if self._t0 is None:
            raise RuntimeError("TpuModelMeter.start() has not been called")
        joules = self.watts * (self._clock() - self._t0)
        return {c: joules for c in self.components()}

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "device_kind": self.kind, "chips": self.chips, "watts_per_chip": self.watts,
                "source": self.source, "formula": "chips x average system W per chip x seconds",
                "note": "modelled, not measured; the published figure includes each chip's share of the host"}
