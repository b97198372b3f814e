"""A fake `pynvml` for the GPU demonstration's CPU dry run (scripts/gpu_demo.sh with DEMO_TINY=1): put this
folder first on PYTHONPATH and the NVML meter reads one made-up GPU whose energy counter advances at a constant
300 W in real time. Every figure it yields is made up: the GPU is named so in every record it reaches."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nvml_fake import FakeGpu, FakeNvml, NVMLError  # noqa: E402,F401


class _ClockedGpu(FakeGpu):
    """Energy counter (mJ) = the watts times the seconds since the module was imported."""

    @property
    def energy_mj(self) -> int:
        return 1_000_000 + int((time.monotonic() - _START) * self.watts * 1000)

    @energy_mj.setter
    def energy_mj(self, value: int) -> None:  # the dataclass's __init__ sets it; the clock decides
        pass


_START = time.monotonic()
_NVML = FakeNvml([_ClockedGpu(name="FAKE GPU (dry run, not a measurement)", uuid="GPU-fake-dry-run")])


def __getattr__(name: str):
    return getattr(_NVML, name)
