"""Measured NVIDIA GPU energy through NVML (nvidia-ml-py, ``import pynvml``).

Primary figure: the board's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the
driver loaded, Volta and newer), differenced over the window. Alongside it, at every sample, the
instant-power field (``NVML_FI_DEV_POWER_INSTANT``) as a gauge: it gives the >= 10 Hz power trace and,
integrated, an independent cross-check of the counter. ``nvmlDeviceGetPowerUsage`` is only the fallback
for the gauge because on Ampere and newer (except GA100) it is a 1 s moving average, too smooth for a
trace. Cards without the counter are metered by integrating the gauge, and labelled so.

The NVML module is injectable so that tests can drive every path with a fake of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Availability, Meter, MeterUnavailable, Option
from harness.meters.integrate import trapezoid_step

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

# The energy counter advances about every 100 ms (NVIDIA does not document a figure; this is what
# Zeus and our own probes see), so a shorter window could read 0 J and must be flagged instead.
COUNTER_UPDATE_S = 0.1
# Checking for other GPU processes costs a driver call; once every few seconds is enough to catch a
# job that shares the card for a meaningful part of the run.
PROCESS_CHECK_EVERY_S = 5.0

POWER_USAGE_NOTE = "nvmlDeviceGetPowerUsage: a 1 s moving average on Ampere and newer except GA100"


def load_nvml() -> Any:
    """The pynvml module, or ImportError with a reason."""
    import pynvml

    return pynvml


def _error_code(nvml: Any, e: Exception) -> int | None:
    return getattr(e, "value", None)


def describe_error(nvml: Any, e: Exception) -> str:
    """A reason a user can act on, for the NVML errors that mean 'cannot meter here'."""
    code = _error_code(nvml, e)
    known = {
        getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", -1): "no NVIDIA driver (libnvidia-ml.so not found)",
        getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", -1): "NVIDIA driver not loaded",
        getattr(nvml, "NVML_ERROR_NO_PERMISSION", -1): "permission denied by the driver",
        getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", -1): "not supported on this GPU",
    }
    return known.get(code, str(e) or type(e).__name__)


def parse_visible_devices(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES entries in logical order; None when unset (all GPUs visible)."""
    if value is None:
        return None
    entries = [v.strip() for v in value.split(",")]
    out = []
    for v in entries:
        if not v:
            continue
        if v.startswith("MIG-"):
            # A MIG slice shares the physical GPU's energy counter with the other slices.
            raise ValueError(f"CUDA_VISIBLE_DEVICES entry {v!r} is a MIG slice: NVML energy is per physical GPU "
                             "and cannot be split between slices")
        if not (v.isdigit() or v.startswith("GPU-")):
            # CUDA itself stops at the first invalid entry, so the devices after it are not visible.
            break
        out.append(v)
    return out


def visible_gpus(nvml: Any = None, env: dict[str, str] | None = None) -> list[Accelerator]:
    """Every NVIDIA GPU this process can see (CUDA_VISIBLE_DEVICES applied), as logical indices, found
    through NVML alone: for code that runs in no framework the harness knows (`harness meter`)."""
    from harness.meters.request import Accelerator

    try:
        nv = nvml if nvml is not None else load_nvml()
        nv.nvmlInit()
    except Exception:  # no library, no driver: no GPU to meter, which the meter selection then says
        return []
    try:
        visible = parse_visible_devices((os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES"))
        count = nv.nvmlDeviceGetCount()
        entries = visible if visible is not None else [str(i) for i in range(count)]
        out = []
        for i, entry in enumerate(entries):
            handle = (nv.nvmlDeviceGetHandleByIndex(int(entry)) if entry.isdigit()
                      else nv.nvmlDeviceGetHandleByUUID(entry))
            out.append(Accelerator("gpu", i, _text(nv.nvmlDeviceGetName(handle))))
        return out
    except Exception:
        return []
    finally:
        nv.nvmlShutdown()


@dataclass
class _Gpu:
    logical: int
    handle: Any
    info: dict[str, Any]
    has_counter: bool
    gauge: str  # "field-instant" | "power-usage"
    has_memory_power: bool
    last_mj: int = 0
    joules: float = 0.0
    watts: float = float("nan")
    memory_watts: float = float("nan")
    last_t: float = 0.0
    resets: int = 0
    others: set[int] = field(default_factory=set)
    unattributed: int = 0


class NvmlMeter(Meter):
    name: ClassVar[str] = "nvml"
    part: ClassVar[str] = "accelerator"
    platforms: ClassVar[tuple[str, ...]] = ("gpu", "cuda")
    options: ClassVar[tuple[Option, ...]] = (Option("nvml", None, object),)  # a pynvml-like module (tests)
    in_auto: ClassVar[bool] = True
    description: ClassVar[tuple[str, str, str]] = (
        "each NVIDIA GPU board the run uses (GPU + HBM)", "measured",
        "energy counter (~10 Hz updates) read at the sampler rate, default 20 Hz; instant-power gauge beside it")

    def __init__(
        self,
        logical_indices: list[int] | None = None,
        nvml: Any = None,
        env: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pid: int | None = None,
    ) -> None:
        self.nvml = nvml if nvml is not None else load_nvml()
        self._clock = clock
        self._pid = os.getpid() if pid is None else pid
        env = os.environ if env is None else env
        self.nvml.nvmlInit()
        try:
            self.driver = _text(self.nvml.nvmlSystemGetDriverVersion())
            self.gpus = [self._open(i, h) for i, h in self._handles(logical_indices, env.get("CUDA_VISIBLE_DEVICES"))]
        except Exception:
            self.nvml.nvmlShutdown()
            raise
        if not self.gpus:
            self.nvml.nvmlShutdown()
            raise RuntimeError("NVML: no GPU to meter (CUDA_VISIBLE_DEVICES hides them all?)")
        self.counter = all(g.has_counter for g in self.gpus)
        # One method per meter: with one counter-less card in the set, all are integrated alike so the
        # per-GPU figures stay comparable.
        self.method = "measured:nvml-energy-counter" if self.counter else "measured:nvml-power-integrated"
        self.update_period_s = COUNTER_UPDATE_S if self.counter else 0.0
        self._next_process_check = 0.0
        self._started = False
        self._is_open = True

    # -- discovery ------------------------------------------------------------------------------------
    def _handles(self, logical: list[int] | None, visible_env: str | None) -> list[tuple[int, Any]]:
        n = self.nvml.nvmlDeviceGetCount()
        visible = parse_visible_devices(visible_env)
        if visible is None:
            visible = [str(i) for i in range(n)]
        wanted = list(range(len(visible))) if logical is None else logical
        out = []
        for i in wanted:
            if not 0 <= i < len(visible):
                raise RuntimeError(f"NVML: logical GPU {i} is not among the {len(visible)} visible GPUs")
            entry = visible[i]
            if entry.isdigit():
                if int(entry) >= n:
                    raise RuntimeError(f"NVML: CUDA_VISIBLE_DEVICES names GPU {entry}, but NVML sees {n}")
                out.append((i, self.nvml.nvmlDeviceGetHandleByIndex(int(entry))))
            else:
                out.append((i, self.nvml.nvmlDeviceGetHandleByUUID(entry)))
        return out

    def _open(self, logical: int, handle: Any) -> _Gpu:
        nv = self.nvml
        info: dict[str, Any] = {"logical_index": logical, "name": _text(nv.nvmlDeviceGetName(handle)),
                                "uuid": _text(nv.nvmlDeviceGetUUID(handle))}
        info["physical_index"] = _try(lambda: nv.nvmlDeviceGetIndex(handle))
        limit = _try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
        info["power_limit_w"] = limit / 1000.0 if limit is not None else None
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(handle)
            has_counter = True
        except nv.NVMLError as e:
            # Pre-Volta cards lack it; some drivers deny it. Either way the gauge is integrated instead.
            has_counter, info["energy_counter_error"] = False, describe_error(nv, e)
        gauge = "field-instant" if self._field_watts(handle, nv.NVML_POWER_SCOPE_GPU) is not None else "power-usage"
        has_memory = self._field_watts(handle, nv.NVML_POWER_SCOPE_MEMORY) is not None
        info.update(energy_counter=has_counter, power_gauge=gauge, memory_power=has_memory)
        return _Gpu(logical, handle, info, has_counter, gauge, has_memory)

    def _field_watts(self, handle: Any, scope: int) -> float | None:
        nv = self.nvml
        try:
            (value,) = nv.nvmlDeviceGetFieldValues(handle, [(nv.NVML_FI_DEV_POWER_INSTANT, scope)])
        except nv.NVMLError:
            return None
        if value.nvmlReturn != nv.NVML_SUCCESS:
            return None  # field unknown to this driver or card: a "missing field", not a failure
        return _field_number(value) / 1000.0  # milliwatts

    @classmethod
    def covers(cls, accel: Accelerator) -> bool:
        # An AMD card is AMD SMI's (harness/meters/amdsmi.py); a GPU whose name names no vendor stays NVML's.
        return accel.platform in cls.platforms and accel.vendor != "amd"

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> NvmlMeter:
        gpus = [a.index for a in accels if cls.covers(a)]
        if not gpus:
            if any(a.vendor == "amd" for a in accels):
                raise MeterUnavailable("NVML: no NVIDIA GPU among the run's devices (its AMD GPUs are amdsmi's)")
            platforms = sorted({a.platform for a in accels}) or ["cpu"]
            raise MeterUnavailable(f"NVML: no GPU among the run's devices (backend {', '.join(platforms)})")
        availability = cls.check(gpus, nvml=req.option("nvml"))
        if not availability.available:
            raise MeterUnavailable(availability.reason)
        return cls(gpus, nvml=req.option("nvml"))

    def ready(self) -> str:
        names = ", ".join(f"{g.logical}:{g.info['name']}" for g in self.gpus)
        how = "energy counter" if self.counter else "integrated power (no energy counter on this card)"
        return f"ok: {len(self.gpus)} GPU(s) ({names}), driver {self.driver}, {how}"

    @classmethod
    def check(cls, logical_indices: list[int] | None = None, nvml: Any = None,
              env: dict[str, str] | None = None) -> Availability:
        try:
            nv = nvml if nvml is not None else load_nvml()
        except ImportError:
            return Availability(False, "NVML: nvidia-ml-py (pynvml) not installed")
        try:
            meter = cls(logical_indices, nvml=nv, env=env)
        except ValueError as e:
            return Availability(False, f"NVML: {e}")
        except RuntimeError as e:
            return Availability(False, str(e))
        except nv.NVMLError as e:
            return Availability(False, f"NVML: {describe_error(nv, e)}")
        try:
            return Availability(True, meter.ready())
        finally:
            meter.stop()

    # -- measurement ---------------------------------------------------------------------------------
    def components(self) -> list[str]:
        return [f"gpu-{g.logical}" for g in self.gpus]

    def start(self) -> None:
        if not self._is_open:
            raise RuntimeError("NvmlMeter was stopped (NVML shut down); make a new meter")
        now = self._clock()
        for g in self.gpus:
            g.joules, g.resets, g.last_t = 0.0, 0, now
            if g.has_counter:
                g.last_mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(g.handle)
            self._read_gauges(g)
        self._check_processes(now)
        self._started = True

    def read(self) -> dict[str, float]:
        if not self._started:
            raise RuntimeError("NvmlMeter.start() has not been called")
        now = self._clock()
        for g in self.gpus:
            previous_w = g.watts
            self._read_gauges(g)
            if g.has_counter and self.counter:
                mj = self.nvml.nvmlDeviceGetTotalEnergyConsumption(g.handle)
                if mj < g.last_mj:
                    # The counter restarts from 0 when the driver reloads; what it shows now is energy
                    # since that reset, and the part before it in this interval is lost (and counted).
                    g.resets += 1
                    g.joules += mj / 1000.0
                else:
                    g.joules += (mj - g.last_mj) / 1000.0
                g.last_mj = mj
            else:
                g.joules += trapezoid_step(previous_w, g.watts, max(0.0, now - g.last_t))
            g.last_t = now
        if now >= self._next_process_check:
            self._check_processes(now)
        return {f"gpu-{g.logical}": g.joules for g in self.gpus}

    def _read_gauges(self, g: _Gpu) -> None:
        nv = self.nvml
        if g.gauge == "field-instant":
            watts = self._field_watts(g.handle, nv.NVML_POWER_SCOPE_GPU)
            if watts is None:
                raise RuntimeError(f"NVML gpu-{g.logical}: instant-power field stopped answering")
            g.watts = watts
        else:
            g.watts = nv.nvmlDeviceGetPowerUsage(g.handle) / 1000.0
        if g.has_memory_power:
            mem = self._field_watts(g.handle, nv.NVML_POWER_SCOPE_MEMORY)
            g.memory_watts = mem if mem is not None else float("nan")

    def _check_processes(self, now: float) -> None:
        self._next_process_check = now + PROCESS_CHECK_EVERY_S
        for g in self.gpus:
            procs = _try(lambda g=g: self.nvml.nvmlDeviceGetComputeRunningProcesses(g.handle))
            if procs is None:
                continue
            pids = {p.pid for p in procs}
            if self._pid in pids or not pids:
                g.others |= pids - {self._pid}
            else:
                # In a container NVML reports host PIDs, so ours is absent. Then one process is most likely
                # us; any beyond that are others we cannot name.
                g.unattributed = max(g.unattributed, len(pids) - 1)

    def gauges(self) -> dict[str, float]:
        out = {}
        for g in self.gpus:
            out[f"gpu-{g.logical}.instant"] = g.watts
            if g.has_memory_power:
                out[f"gpu-{g.logical}.memory"] = g.memory_watts
        return out

    def cross_checks(self) -> dict[str, str]:
        if not self.counter:
            return {}  # the gauge *is* the energy figure then: nothing independent to compare
        return {f"gpu-{g.logical}": f"gpu-{g.logical}.instant" for g in self.gpus}

    def power_limits_w(self) -> dict[str, float]:
        return {f"gpu-{g.logical}": g.info["power_limit_w"] for g in self.gpus if g.info.get("power_limit_w")}

    def warnings(self) -> list[str]:
        out = []
        for g in self.gpus:
            if g.others:
                out.append(f"nvml gpu-{g.logical}: other processes used this GPU during the run "
                           f"(pids {sorted(g.others)}); their energy is included")
            if g.unattributed:
                out.append(f"nvml gpu-{g.logical}: {g.unattributed + 1} processes on this GPU and ours is not "
                           "among their PIDs (container PID namespace?); others' energy may be included")
            if g.resets:
                out.append(f"nvml gpu-{g.logical}: energy counter reset {g.resets} time(s) (driver reload?); "
                           "energy in the reset interval(s) is undercounted")
        if not self.counter:
            why = "; ".join(sorted({g.info.get("energy_counter_error", "") for g in self.gpus} - {""}))
            out.append(f"nvml: energy counter unavailable ({why}); energy integrated from the power gauge")
        return out

    def stop(self) -> None:
        # NVML counts nvmlInit calls; shut down exactly once per meter.
        if self._is_open:
            self._is_open = False
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass

    def params(self) -> dict[str, Any]:
        gauge = {"field-instant": "NVML_FI_DEV_POWER_INSTANT via nvmlDeviceGetFieldValues",
                 "power-usage": POWER_USAGE_NOTE}
        return {
            "method": self.method,
            "driver": self.driver,
            "gpus": [g.info | {"power_gauge_source": gauge[g.gauge], "counter_resets": g.resets,
                               "other_pids": sorted(g.others), "unattributed_processes": g.unattributed}
                     for g in self.gpus],
            "counter_update_period_s": COUNTER_UPDATE_S,
            "note": "measured by the GPU board's NVML energy counter; covers the whole board (GPU and HBM)"
            if self.counter else "measured power gauge integrated by the trapezoid rule (no energy counter)",
        }


# nvmlValueType_t -> the member of the nvmlValue_t union that holds the number.
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def _field_number(value: Any) -> float:
    return float(getattr(value.value, _VALUE_MEMBERS.get(getattr(value, "valueType", 1), "uiVal")))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn: Callable[[], Any]) -> Any:
    """The call's value, or None when NVML says the card does not support it or denies it."""
    try:
        return fn()
    except Exception as e:  # pynvml raises a dynamically created NVMLError subclass per code
        if type(e).__name__.startswith("NVMLError"):
            return None
        raise
