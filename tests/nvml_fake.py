"""A stand-in for the pynvml module: the same names the NVML meter calls, backed by plain attributes.

Error codes and field ids are the real NVML values, so the meter cannot depend on a fake-only detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    energy_mj: int = 1_000_000
    watts: float = 300.0
    memory_watts: float | None = None  # None: the card does not report a memory rail
    has_counter: bool = True
    has_instant_field: bool = True
    power_limit_mw: int = 700_000
    pids: list[int] = field(default_factory=list)


class FakeNvml:
    NVML_SUCCESS = 0
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_ERROR_NO_PERMISSION = 4
    NVML_ERROR_DRIVER_NOT_LOADED = 9
    NVML_ERROR_LIBRARY_NOT_FOUND = 12
    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_POWER_SCOPE_GPU = 0
    NVML_POWER_SCOPE_MEMORY = 2
    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.inits = 0
        self.process_queries = 0

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.inits -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> FakeGpu:
        return self.gpus[i]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        raise NVMLError(2)  # NVML_ERROR_INVALID_ARGUMENT

    def nvmlDeviceGetName(self, g: FakeGpu) -> bytes:
        return g.name.encode()  # older pynvml returns bytes

    def nvmlDeviceGetUUID(self, g: FakeGpu) -> str:
        return g.uuid

    def nvmlDeviceGetIndex(self, g: FakeGpu) -> int:
        return self.gpus.index(g)

    def nvmlDeviceGetEnforcedPowerLimit(self, g: FakeGpu) -> int:
        return g.power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, g: FakeGpu) -> int:
        if not g.has_counter:
            raise NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
        return g.energy_mj

    def nvmlDeviceGetFieldValues(self, g: FakeGpu, ids: list[tuple[int, int]]) -> list[SimpleNamespace]:
        out = []
        for field_id, scope in ids:
            watts = None
            if field_id == self.NVML_FI_DEV_POWER_INSTANT and g.has_instant_field:
                watts = g.watts if scope == self.NVML_POWER_SCOPE_GPU else g.memory_watts
            ret = self.NVML_SUCCESS if watts is not None else self.NVML_ERROR_NOT_SUPPORTED
            milliwatts = SimpleNamespace(ullVal=int(round((watts or 0) * 1000)))  # valueType 3: unsigned long long
            out.append(SimpleNamespace(nvmlReturn=ret, valueType=3, value=milliwatts))
        return out

    def nvmlDeviceGetPowerUsage(self, g: FakeGpu) -> int:
        return int(round(g.watts * 1000))

    def nvmlDeviceGetComputeRunningProcesses(self, g: FakeGpu) -> list[SimpleNamespace]:
        self.process_queries += 1
        return [SimpleNamespace(pid=p, usedGpuMemory=0) for p in g.pids]
