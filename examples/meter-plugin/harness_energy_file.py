"""An example harness meter plugin: a cumulative energy counter that a driver or a vendor's tool keeps in a file.

Linux hwmon drivers expose such counters as `energyN_input`, in microjoules (the kernel's
Documentation/hwmon/sysfs-interface.rst); a vendor's daemon can write one the same way. The figure over a window
is the counter's difference, so it is measured, whatever the sampling rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Meter, MeterUnavailable, Option

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest


def read_microjoules(path: Path) -> int:
    return int(path.read_text().split()[0])  # one integer and a newline, as hwmon writes it


class EnergyFileMeter(Meter):
    name: ClassVar[str] = "energy-file"  # the entry point's name too
    part: ClassVar[str] = "cpu"  # host-level: one process per host reads it, so it is never counted twice
    options: ClassVar[tuple[Option, ...]] = (
        Option("energy_file", "--energy-file", str,
               "with --meter energy-file: a file holding a cumulative energy counter in microjoules "
               "(e.g. /sys/class/hwmon/hwmon2/energy1_input)"),
    )
    description: ClassVar[tuple[str, str, str]] = (
        "what the counter in --energy-file counts", "measured", "as often as the counter moves")
    request_hint: ClassVar[str] = "needs --meter energy-file --energy-file PATH"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.method = "measured:energy-counter-file"  # says how the figure was obtained: required
        self._start_uj = self._last_uj = 0

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> EnergyFileMeter:
        path = req.option("energy_file")
        if not path:
            raise MeterUnavailable("energy-file: no --energy-file given")
        try:
            read_microjoules(Path(path))
        except (OSError, ValueError, IndexError) as e:
            raise MeterUnavailable(f"energy-file: no counter in {path}: {e}") from None
        return cls(path)

    def ready(self) -> str:
        return f"ok: {self.path} counts {read_microjoules(self.path) / 1e6:,.3f} J so far"

    def components(self) -> list[str]:
        return ["counter"]

    def start(self) -> None:
        self._start_uj = self._last_uj = read_microjoules(self.path)

    def read(self) -> dict[str, float]:
        now = read_microjoules(self.path)
        if now < self._last_uj:  # the harness records the failed reading and flags the figure incomplete
            raise RuntimeError(f"{self.path} went back from {self._last_uj} to {now} uJ (reset?)")
        self._last_uj = now
        return {"counter": (now - self._start_uj) / 1e6}

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "file": str(self.path), "unit": "microjoule",
                "note": "difference of a cumulative energy counter read from a file"}
