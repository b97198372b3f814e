"""A stand-in for the amdsmi module (ROCm's AMD SMI bindings): the functions the AMD SMI meter calls, with the
real names, return shapes and error types, backed by plain attributes a test scripts.

Status codes, virtualization modes and dictionary keys are AMD SMI's own (amd-smi 7.0.2's amdsmi_interface.py and
amdsmi_wrapper.py; `api="6.1"` gives the older shapes: the accumulator under "power", a lib version with "year",
no ROCm version, no virtualization mode), so the meter cannot depend on a fake-only detail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from types import SimpleNamespace

# amdsmi_status_t (amdsmi_wrapper.py)
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = abs(err_code)
        self.err_info = {2: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
                         10: "AMDSMI_STATUS_NO_PERM - Permission Denied",
                         34: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded"}.get(
            self.err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred")

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self, detailed: bool = True) -> str:
        return self.err_info

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiVirtualizationMode(IntEnum):
    UNKNOWN = 0
    BAREMETAL = 1
    HOST = 2
    GUEST = 3
    PASSTHROUGH = 4


@dataclass(eq=False)
class FakeAmdGpu:
    """One GPU: tests move `ticks`, `stamp_ns` and the power fields between reads. `current_w` / `average_w` of
    "N/A" or 0xFFFF: the field is unsupported (MI200 has no current_socket_power, MI300 no average)."""

    market_name: str = "AMD Instinct MI300X"
    asic_serial: str = "0xCF1182F2988C0A4C"
    uuid: str = "a5ff74a1-0000-1000-8048-cf1182f2988c"
    ticks: int = 10_000_000
    resolution_uj: float = 15.300000190734863  # what the bindings give for the float 15.3 (AMDResearch/hpcfund#21)
    stamp_ns: int = 3_824_190_842_400_799
    current_w: int | str = 300
    average_w: int | str = "N/A"
    power_cap_uw: int = 750_000_000
    counter_error: int | None = None  # a status code: amdsmi_get_energy_count fails with it
    mode: AmdSmiVirtualizationMode = AmdSmiVirtualizationMode.BAREMETAL

    def add_joules(self, joules: float, seconds: float = 0.0) -> None:
        """Advance the accumulator by `joules` (in whole ticks) and its timestamp by `seconds`."""
        self.ticks += int(round(joules / (self.resolution_uj * 1e-6)))
        self.stamp_ns += int(seconds * 1e9)


class ClockedAmdGpu(FakeAmdGpu):
    """An accumulator that advances at `current_w` in real time from the GPU's making (for runs a test does not
    drive tick by tick), its timestamp the monotonic clock's."""

    def __init__(self, **fields) -> None:
        super().__init__(**fields)
        self.start = time.monotonic()

    @property
    def ticks(self) -> int:
        return 10_000_000 + int((time.monotonic() - self.start) * self.current_w / (self.resolution_uj * 1e-6))

    @ticks.setter
    def ticks(self, value: int) -> None:  # the dataclass's __init__ sets it; the clock decides
        pass

    @property
    def stamp_ns(self) -> int:
        return time.monotonic_ns()

    @stamp_ns.setter
    def stamp_ns(self, value: int) -> None:
        pass


class FakeAmdSmi:
    """The amdsmi module's surface that the meter uses."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiVirtualizationMode = AmdSmiVirtualizationMode
    amdsmi_wrapper = SimpleNamespace(AMDSMI_STATUS_NOT_SUPPORTED=2, AMDSMI_STATUS_NO_PERM=10,
                                     AMDSMI_STATUS_DRIVER_NOT_LOADED=34)

    def __init__(self, gpus: list[FakeAmdGpu], init_error: int | None = None, api: str = "7.0") -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.api = api
        self.inits = 0

    def amdsmi_init(self, flag: int = 2) -> None:  # AmdSmiInitFlags.INIT_AMD_GPUS
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.inits += 1

    def amdsmi_shut_down(self) -> None:
        self.inits -= 1

    def amdsmi_get_processor_handles(self) -> list[FakeAmdGpu]:
        return list(self.gpus)

    def amdsmi_get_lib_version(self) -> dict:
        if self.api == "6.1":
            return {"year": 24, "major": 5, "minor": 1, "release": 0, "build": "6.1.0"}
        return {"major": 25, "minor": 5, "release": 1, "build": "7.0.2"}

    def __getattr__(self, name: str):
        # Functions that older bindings lack: absent, as on the real module.
        if name in ("amdsmi_get_rocm_version", "amdsmi_get_gpu_virtualization_mode",
                    "amdsmi_get_gpu_enumeration_info") and self.api != "6.1":
            return getattr(self, "_" + name)
        raise AttributeError(name)

    def _amdsmi_get_rocm_version(self) -> tuple[bool, str]:
        return True, "7.0.2"

    def _amdsmi_get_gpu_virtualization_mode(self, g: FakeAmdGpu) -> dict:
        return {"mode": g.mode}

    def _amdsmi_get_gpu_enumeration_info(self, g: FakeAmdGpu) -> dict:
        i = self.gpus.index(g)
        return {"drm_render": 128 + i, "drm_card": i, "hsa_id": i + 1, "hip_id": i,
                "hip_uuid": "GPU-" + g.asic_serial.removeprefix("0x").lower()}

    def amdsmi_get_gpu_asic_info(self, g: FakeAmdGpu) -> dict:
        return {"market_name": g.market_name, "vendor_id": "0x1002",
                "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]", "subvendor_id": "0x1002",
                "device_id": "0x74a1", "rev_id": "0x00", "asic_serial": g.asic_serial,
                "oam_id": self.gpus.index(g), "num_compute_units": 304, "target_graphics_version": "gfx942"}

    def amdsmi_get_gpu_device_uuid(self, g: FakeAmdGpu) -> str:
        return g.uuid

    def amdsmi_get_gpu_driver_info(self, g: FakeAmdGpu) -> dict:
        return {"driver_name": "amdgpu", "driver_version": "6.12.12", "driver_date": "2015/01/01 00:00"}

    def amdsmi_get_power_cap_info(self, g: FakeAmdGpu) -> dict:
        return {"power_cap": g.power_cap_uw, "default_power_cap": g.power_cap_uw, "dpm_cap": 2100,
                "min_power_cap": 0, "max_power_cap": g.power_cap_uw}

    def amdsmi_get_power_info(self, g: FakeAmdGpu) -> dict:
        info = {"current_socket_power": g.current_w, "average_socket_power": g.average_w, "gfx_voltage": "N/A",
                "soc_voltage": "N/A", "mem_voltage": "N/A", "power_limit": g.power_cap_uw // 1_000_000}
        if self.api != "6.1":
            info = {"socket_power": "N/A", **info}
        else:  # before amd-smi 6.2 the bindings passed the raw 0xFFFF through
            info = {k: 0xFFFF if v == "N/A" else v for k, v in info.items()}
        return info

    def amdsmi_get_energy_count(self, g: FakeAmdGpu) -> dict:
        if g.counter_error is not None:
            raise AmdSmiLibraryException(g.counter_error)
        key = "power" if self.api == "6.1" else "energy_accumulator"
        return {key: g.ticks, "counter_resolution": g.resolution_uj, "timestamp": g.stamp_ns}
