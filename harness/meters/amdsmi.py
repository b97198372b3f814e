"""Measured AMD GPU energy through AMD SMI (ROCm's Python bindings, ``import amdsmi``; the amd extra).

Primary figure: the GPU's energy accumulator (``amdsmi_get_energy_count``: a count of ``counter_resolution`` µJ
ticks, 15.259 µJ on Instinct parts per AMD SMI's ``amdsmi_gpu_metrics_t`` reference, with the reading's timestamp
in ns), differenced over the window. Beside it, at every sample, the socket power gauge (``amdsmi_get_power_info``,
whole watts): the power trace and, integrated, the independent cross-check. MI300 and newer fill
``current_socket_power``, MI200 and older only ``average_socket_power`` (AMD SMI's ``amdsmi_power_info_t``).

AMD SMI has shipped versions whose accumulator repeats one value while the GPU works (ROCm/amdsmi#38,
AMDResearch/hpcfund#21, ROCm/rocm_smi_lib#180). So a GPU's figure at each reading is the counter's energy up to
its last movement plus the gauge integrated since then: on a working counter (it moves at every reading) that is
the counter alone; on a stuck one it is the gauge, never 0 J. A counter that does not move for STALL_AFTER_S
while the gauge says the board draws power is declared stuck: from then on every GPU of the meter is metered by
its gauge, the method becomes ``measured:amdsmi-power-integrated`` and a warning says why.

The module is injectable (the ``amdsmi`` option) so that tests drive every path with a fake of it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Availability, Meter, MeterUnavailable, Option
from harness.meters.hip_devices import hip_order, ident
from harness.meters.integrate import trapezoid_step

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

COUNTER = "measured:amdsmi-energy-counter"
INTEGRATED = "measured:amdsmi-power-integrated"
# AMD documents no update period for the accumulator; ROCm SMI's maintainers say the driver reads the sensors at
# most once a millisecond (ROCm/legacy-rocm-build#1649). A counter still for a whole second, while the gauge reads
# power, is stuck, not slow: at 15.3 µJ a tick even 1 W moves it 65,000 ticks a second. The wait costs no energy,
# because the gauge bridges it.
STALL_AFTER_S = 1.0
MIN_DRAW_W = 1.0  # a board that reads less draws nothing we can see (the second die of an MI250X reads 0 W)
# When the power cap is unknown: more than any Instinct board's cap, to tell a counter reset from a wrap.
FALLBACK_MAX_W = 2000.0
GAUGES = {  # power_info key -> what it is (AMD SMI's amdsmi_power_info_t)
    "current_socket_power": "current_socket_power: the socket's current power, W (MI300 and newer)",
    "average_socket_power": "average_socket_power: the socket's averaged power, W (MI200 and older, Navi)",
    "socket_power": "socket_power: the socket's power, W (amd-smi 7 and newer)",
}
# amdsmi_status_t values (amdsmi.h; the same in every release): the errors that mean "cannot meter here".
STATUS = {2: "not supported on this GPU", 10: "permission denied (the user needs the render and video groups)",
          18: "AMD SMI could not initialise", 32: "AMD SMI could not initialise",
          34: "amdgpu driver not loaded", 51: "amdgpu driver not loaded"}
NOT_SUPPORTED = 2
GUEST = 3  # AMDSMI_VIRTUALIZATION_MODE_GUEST


def load_amdsmi() -> Any:
    """The amdsmi module. ImportError: not installed; OSError: installed, but its ROCm library is missing or does not
    match it."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):  # it prints its own complaint when libamd_smi.so is missing
            import amdsmi
    except ImportError:
        raise
    except (KeyError, OSError) as e:  # amd-smi 7 fails on a KeyError, older releases on an OSError
        raise OSError("libamd_smi.so not found (ROCm's amd-smi-lib not installed, or ROCM_PATH not set)") from e
    except AttributeError as e:
        raise OSError("the amdsmi module does not match this ROCm's libamd_smi.so (install the amdsmi release "
                      f"of the ROCm installed: {e})") from e
    return amdsmi


def describe_error(e: Exception) -> str:
    """A reason a user can act on, for the AMD SMI errors that mean 'cannot meter here'."""
    code = e.get_error_code() if callable(getattr(e, "get_error_code", None)) else None
    return STATUS.get(code, str(e).replace("\n\t", " ").strip() or type(e).__name__)


def _number(value: Any) -> bool:
    # AMD SMI writes an unsupported field as 0xFFFF ("N/A" in newer bindings) or UINT32_MAX: neither is a reading.
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 0xFFFF


@dataclass
class _Gpu:
    logical: int
    handle: Any
    info: dict[str, Any]
    resolution_uj: float  # one tick of the accumulator
    gauge: str | None  # the power_info key read, None: no gauge
    counter: bool  # energy from the accumulator; False: from the gauge (none, or no longer trusted)
    max_w: float  # no real board draws more: a larger jump of the counter is a reset
    ticks: int = 0
    stamp_ns: int = 0
    counter_j: float = 0.0  # J since start, up to the counter's last movement
    bridge_j: float = 0.0  # J from the gauge since then (since the switch to the gauge, when counter is False)
    moved_t: float = 0.0  # when the counter last moved (our clock)
    moved: bool = False  # whether it moved at all since start
    last_t: float = 0.0
    watts: float = math.nan
    resets: int = 0
    wraps: int = 0
    stall: dict[str, Any] | None = None
    dark_from: float | None = None  # since when neither the counter nor the gauge shows energy
    dark_s: float = 0.0  # the longest such stretch

    def draws(self) -> bool:
        return self.watts >= MIN_DRAW_W


class AmdSmiMeter(Meter):
    name: ClassVar[str] = "amdsmi"
    part: ClassVar[str] = "accelerator"
    platforms: ClassVar[tuple[str, ...]] = ("gpu", "rocm")
    options: ClassVar[tuple[Option, ...]] = (Option("amdsmi", None, object),)  # an amdsmi-like module (tests)
    in_auto: ClassVar[bool] = True
    description: ClassVar[tuple[str, str, str]] = (
        "each AMD GPU the run uses (its socket: GPU + HBM)", "measured",
        "energy accumulator read at the sampler rate, default 20 Hz; socket power gauge beside it")

    def __init__(self, logical_indices: list[int] | None = None, amdsmi: Any = None,
                 env: dict[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.smi = amdsmi if amdsmi is not None else load_amdsmi()
        self._clock = clock
        self.smi.amdsmi_init()
        try:
            self.lib_version = _lib_version(self.smi)
            self.rocm_version = _rocm_version(self.smi)
            handles = list(self.smi.amdsmi_get_processor_handles())
            if not handles:
                raise RuntimeError("AMD SMI: no AMD GPU here (amdgpu sees none)")
            order = hip_order(os.environ if env is None else env, len(handles), lambda p: _ids(self.smi, handles[p]))
            wanted = list(range(len(order))) if logical_indices is None else logical_indices
            for i in wanted:
                if not 0 <= i < len(order):
                    raise RuntimeError(f"AMD SMI: logical GPU {i} is not among the {len(order)} visible GPUs")
            self.gpus = [self._open(i, order[i], handles[order[i]]) for i in wanted]
            if not self.gpus:
                raise RuntimeError("AMD SMI: no GPU to meter (the visible-devices variables hide them all?)")
        except BaseException:
            self.smi.amdsmi_shut_down()
            raise
        # One method per meter: with one counter-less GPU in the set, all are integrated alike so that the per-GPU
        # figures stay comparable.
        if not all(g.counter for g in self.gpus):
            for g in self.gpus:
                g.counter = False
        self.method = COUNTER if self.gpus[0].counter else INTEGRATED
        self._started, self._t0 = False, 0.0
        self._is_open = True

    # -- discovery ------------------------------------------------------------------------------------
    def _open(self, logical: int, physical: int, handle: Any) -> _Gpu:
        smi = self.smi
        asic = _try(smi, lambda: smi.amdsmi_get_gpu_asic_info(handle)) or {}
        name = asic.get("market_name") if asic.get("market_name") not in (None, "", "N/A") else "AMD GPU"
        driver = _try(smi, lambda: smi.amdsmi_get_gpu_driver_info(handle)) or {}
        mode = _try(smi, lambda: smi.amdsmi_get_gpu_virtualization_mode(handle)) or {}
        cap = _try(smi, lambda: smi.amdsmi_get_power_cap_info(handle)) or {}
        power = _try(smi, lambda: smi.amdsmi_get_power_info(handle)) or {}
        cap_w = _cap_watts(cap.get("power_cap"), power.get("power_limit"))
        info: dict[str, Any] = {
            "logical_index": logical, "physical_index": physical, "name": name,
            "uuid": _try(smi, lambda: smi.amdsmi_get_gpu_device_uuid(handle)),
            "asic_serial": asic.get("asic_serial"), "driver": driver.get("driver_name"),
            "driver_version": driver.get("driver_version"), "power_cap_w": cap_w,
            "virtualization": getattr(mode.get("mode"), "name", mode.get("mode"))}
        try:
            count = smi.amdsmi_get_energy_count(handle)
            counter, resolution = True, float(count["counter_resolution"])
            if not resolution > 0:
                counter, info["energy_counter_error"] = False, f"counter resolution {resolution:g} µJ"
        except smi.AmdSmiException as e:
            # Not supported in a VM guest (amdsmi_get_energy_count's documentation), nor on some older cards.
            counter, resolution = False, 0.0
            guest = mode.get("mode") == GUEST or "guest" in str(info["virtualization"]).lower()
            info["energy_counter_error"] = ("unsupported in a VM guest" if guest else describe_error(e))
        gauge = _choose_gauge(power)
        if not counter and gauge is None:
            raise RuntimeError(f"AMD SMI gpu-{logical} ({name}): no energy counter ({info['energy_counter_error']}) "
                               "and no socket power gauge: nothing to meter it by")
        info.update(energy_counter=counter, counter_resolution_uj=resolution or None, power_gauge=gauge)
        max_w = 1.5 * cap_w if cap_w else FALLBACK_MAX_W
        return _Gpu(logical, handle, info, resolution, gauge, counter, max_w)

    @classmethod
    def covers(cls, accel: Accelerator) -> bool:
        # Only cards whose name says AMD: NVML keeps NVIDIA's, and a GPU whose name names no vendor.
        return accel.platform in cls.platforms and accel.vendor == "amd"

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> AmdSmiMeter:
        gpus = [a.index for a in accels if cls.covers(a)]
        if not gpus:
            others = sorted({a.kind for a in accels if a.platform in ("gpu", "cuda")})
            where = (f"its GPUs are not AMD's: {', '.join(others)}" if others
                     else f"backend {', '.join(sorted({a.platform for a in accels}) or ['cpu'])}")
            reason = f"AMD SMI: no AMD GPU among the run's devices ({where})"
            if req.option("amdsmi") is None:
                installed = cls.check_module()
                reason += "" if installed.available else f"; {installed.reason.removeprefix('AMD SMI: ')}"
            raise MeterUnavailable(reason)
        availability = cls.check(gpus, amdsmi=req.option("amdsmi"))
        if not availability.available:
            raise MeterUnavailable(availability.reason)
        return cls(gpus, amdsmi=req.option("amdsmi"))

    @classmethod
    def check_module(cls) -> Availability:
        try:
            load_amdsmi()
        except ImportError:
            return Availability(False, "AMD SMI: the amdsmi module is not installed (install the amd extra; it "
                                       "needs ROCm's libamd_smi.so too)")
        except OSError as e:
            return Availability(False, f"AMD SMI: {e}")
        return Availability(True, "AMD SMI: the amdsmi module loads")

    @classmethod
    def check(cls, logical_indices: list[int] | None = None, amdsmi: Any = None,
              env: dict[str, str] | None = None) -> Availability:
        if amdsmi is None:
            module = cls.check_module()
            if not module.available:
                return module
        smi = amdsmi if amdsmi is not None else load_amdsmi()
        try:
            meter = cls(logical_indices, amdsmi=smi, env=env)
        except ValueError as e:
            return Availability(False, f"AMD SMI: {e}")
        except RuntimeError as e:
            return Availability(False, str(e))
        except smi.AmdSmiException as e:
            return Availability(False, f"AMD SMI: {describe_error(e)}")
        try:
            return Availability(True, meter.ready())
        finally:
            meter.stop()

    def ready(self) -> str:
        names = ", ".join(f"{g.logical}:{g.info['name']}" for g in self.gpus)
        if self.method == COUNTER:
            how = f"energy counter ({self.gpus[0].resolution_uj:g} µJ ticks), socket power gauge beside it"
        else:
            why = "; ".join(sorted({g.info.get("energy_counter_error", "") for g in self.gpus} - {""}))
            how = f"integrated socket power (no energy counter: {why})"
        return (f"ok: {len(self.gpus)} AMD GPU(s) ({names}), amd-smi {self.lib_version or '?'}, "
                f"ROCm {self.rocm_version or '?'}, {how}")

    # -- measurement ---------------------------------------------------------------------------------
    def components(self) -> list[str]:
        return [f"gpu-{g.logical}" for g in self.gpus]

    def start(self) -> None:
        if not self._is_open:
            raise RuntimeError("AmdSmiMeter was stopped (AMD SMI shut down); make a new meter")
        now = self._t0 = self._clock()
        for g in self.gpus:
            g.counter_j = g.bridge_j = g.dark_s = 0.0
            g.resets = g.wraps = 0
            g.last_t = g.moved_t = now
            g.moved, g.dark_from = False, None
            g.watts = self._watts(g)
            if g.counter:
                g.ticks, g.stamp_ns = self._count(g)
        self._started = True

    def read(self) -> dict[str, float]:
        if not self._started:
            raise RuntimeError("AmdSmiMeter.start() has not been called")
        now = self._clock()
        out = {f"gpu-{g.logical}": self._advance(g, now) for g in self.gpus}
        if self.method == COUNTER and any(g.stall for g in self.gpus):
            self._to_gauge()
        return out

    def _advance(self, g: _Gpu, now: float) -> float:
        """J since start for one GPU: the counter up to its last movement, plus the gauge since then."""
        previous_t, previous_w, g.watts = g.last_t, g.watts, self._watts(g)
        step = _gauge_step(previous_w, g.watts, now - previous_t)
        g.last_t = now
        if g.counter:
            ticks, stamp = self._count(g)
            if ticks != g.ticks:
                g.counter_j += self._delta_j(g, ticks, stamp, now)
                g.ticks, g.stamp_ns, g.moved_t, g.moved, g.bridge_j, g.dark_from = ticks, stamp, now, True, 0.0, None
                return g.counter_j
            if now - g.moved_t >= STALL_AFTER_S and g.draws() and g.stall is None:
                g.stall = {"ticks": ticks, "last_moved_s": g.moved_t - self._t0, "noticed_s": now - self._t0,
                           "watts": g.watts, "timestamp_still": stamp == g.stamp_ns}
        g.bridge_j += step
        if g.draws():
            g.dark_from = None
            return g.counter_j + g.bridge_j
        # Neither the counter nor the gauge shows energy (a still counter and a gauge at 0 W, or none): no figure
        # rather than 0 J.
        if g.dark_from is None:
            g.dark_from = g.moved_t if g.counter else previous_t
        g.dark_s = max(g.dark_s, now - g.dark_from)
        return math.nan

    def _delta_j(self, g: _Gpu, ticks: int, stamp: int, now: float) -> float:
        delta = ticks - g.ticks
        if delta < 0:
            # Back: a wrap (current parts count in 64 bits, older firmware in 32), or a reset (driver reload,
            # GPU reset), told apart by the power a wrap would imply over the counter's own interval.
            width = 32 if g.ticks < 2**32 else 64
            wrapped = delta + 2**width
            seconds = (stamp - g.stamp_ns) * 1e-9 if stamp > g.stamp_ns else now - g.moved_t
            if wrapped * g.resolution_uj * 1e-6 <= g.max_w * max(seconds, 1e-3):
                g.wraps += 1
                delta = wrapped
            else:
                # What it shows now is energy since the reset; the part before it in this interval is lost.
                g.resets += 1
                delta = ticks
        return delta * g.resolution_uj * 1e-6

    def _to_gauge(self) -> None:
        """A counter is stuck: from now on every GPU with a gauge is metered by it (one method per meter)."""
        self.method = INTEGRATED
        for g in self.gpus:
            # The figure goes on from where it is: the counter's energy plus what the gauge added since it moved.
            g.counter = g.counter and g.gauge is None

    def _count(self, g: _Gpu) -> tuple[int, int]:
        count = self.smi.amdsmi_get_energy_count(g.handle)
        # "energy_accumulator" since amd-smi 6.2.1; "power" (the same number) before.
        ticks = count["energy_accumulator"] if "energy_accumulator" in count else count["power"]
        return int(ticks), int(count.get("timestamp") or 0)

    def _watts(self, g: _Gpu) -> float:
        if g.gauge is None:
            return math.nan
        value = self.smi.amdsmi_get_power_info(g.handle).get(g.gauge)
        return float(value) if _number(value) else math.nan

    def gauges(self) -> dict[str, float]:
        return {f"gpu-{g.logical}.power": g.watts for g in self.gpus if g.gauge is not None}

    def cross_checks(self) -> dict[str, str]:
        if self.method != COUNTER:
            return {}  # the gauge *is* the energy figure then: nothing independent to compare
        return {f"gpu-{g.logical}": f"gpu-{g.logical}.power" for g in self.gpus if g.gauge is not None}

    def power_limits_w(self) -> dict[str, float]:
        return {f"gpu-{g.logical}": g.info["power_cap_w"] for g in self.gpus if g.info.get("power_cap_w")}

    def stop(self) -> None:
        # AMD SMI counts amdsmi_init calls; shut down exactly once per meter.
        if not self._is_open:
            return
        self._is_open = False
        if self._started and self.method == COUNTER:
            for g in self.gpus:
                if g.counter and not g.moved and g.bridge_j > 0:
                    # Too short to call the counter stuck, but it never moved: the figure is the gauge's alone.
                    g.stall = {"ticks": g.ticks, "last_moved_s": 0.0, "noticed_s": g.last_t - self._t0,
                               "watts": g.watts, "timestamp_still": None, "short": True}
            if any(g.stall for g in self.gpus):
                self.method = INTEGRATED
        with contextlib.suppress(Exception):
            self.smi.amdsmi_shut_down()

    def warnings(self) -> list[str]:
        out = []
        for g in self.gpus:
            s = g.stall
            if s and s.get("short"):
                out.append(f"amdsmi gpu-{g.logical}: energy counter did not move in the {s['noticed_s']:.2f} s the "
                           f"meter ran while the socket gauge read {s['watts']:.0f} W; the energy is the integrated "
                           "gauge, not the counter")
            elif s:
                stamp = " (its timestamp too)" if s["timestamp_still"] else ""
                out.append(f"amdsmi gpu-{g.logical}: energy counter stuck at {s['ticks']}{stamp} from "
                           f"{s['last_moved_s']:.2f} s after the meter started while the socket gauge read "
                           f"{s['watts']:.0f} W (an AMD SMI fault, e.g. ROCm/amdsmi#38); from then on every GPU's "
                           "energy is its integrated socket gauge, not its counter")
            if g.dark_s >= STALL_AFTER_S:
                out.append(f"amdsmi gpu-{g.logical}: neither the energy counter nor the socket gauge showed any "
                           f"energy for {g.dark_s:.1f} s, so it has no figure then (the second die of an MI250X, "
                           "or a partition of a GPU, reports through its first)")
            if g.resets:
                out.append(f"amdsmi gpu-{g.logical}: energy counter reset {g.resets} time(s) (driver reload or GPU "
                           "reset?); energy in the reset interval(s) is undercounted")
        if not any(g.counter or g.stall for g in self.gpus) and self.method == INTEGRATED:
            why = "; ".join(sorted({g.info.get("energy_counter_error", "") for g in self.gpus} - {""}))
            if why:
                out.append(f"amdsmi: energy counter unavailable ({why}); energy integrated from the socket gauge")
        return out

    def params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "amdsmi_lib_version": self.lib_version,
            "rocm_version": self.rocm_version,
            "gpus": [g.info | {"power_gauge_source": GAUGES.get(g.gauge or "", None), "counter_resets": g.resets,
                               "counter_wraps": g.wraps, "counter_stall": g.stall,
                               "energy_from_gauge_j": None if g.counter else g.bridge_j}
                     for g in self.gpus],
            "stall_after_s": STALL_AFTER_S,
            "note": _NOTES[self.method if self.method == COUNTER or not any(g.stall for g in self.gpus) else "stall"],
        }


_NOTES = {
    COUNTER: "measured by the GPU's AMD SMI energy accumulator (the socket: GPU and HBM), bridged by the socket "
             "power gauge where the counter had not moved yet",
    INTEGRATED: "measured socket power gauge integrated by the trapezoid rule (no energy counter)",
    "stall": "measured by the AMD SMI energy accumulator until it stalled, then by the socket power gauge integrated "
             "by the trapezoid rule (from the counter's last movement on)",
}


def visible_gpus(amdsmi: Any = None, env: dict[str, str] | None = None) -> list[Accelerator]:
    """Every AMD GPU a HIP program started now would see (the visible-devices variables applied), as logical
    indices, found through AMD SMI alone: for code that runs in no framework the harness knows (`harness meter`)."""
    from harness.meters.request import Accelerator

    try:
        smi = amdsmi if amdsmi is not None else load_amdsmi()
        smi.amdsmi_init()
    except Exception:  # no module, no library, no driver: no AMD GPU to meter, which the meter selection says
        return []
    try:
        handles = list(smi.amdsmi_get_processor_handles())
        order = hip_order(os.environ if env is None else env, len(handles), lambda p: _ids(smi, handles[p]))
        out = []
        for i, physical in enumerate(order):
            name = str((_try(smi, lambda p=physical: smi.amdsmi_get_gpu_asic_info(handles[p])) or {})
                       .get("market_name") or "")
            kind = name if Accelerator("gpu", i, name).vendor == "amd" else f"AMD GPU {name}".strip()
            out.append(Accelerator("gpu", i, kind))
        return out
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            smi.amdsmi_shut_down()


def _ids(smi: Any, handle: Any) -> set[str]:
    """What a GPU-<uuid> entry of a visible-devices variable can name: the GPU's ASIC serial (ROCm's unique id), AMD
    SMI's uuid, and HIP's own uuid where the bindings give it."""
    found = {_try(smi, lambda: smi.amdsmi_get_gpu_asic_info(handle).get("asic_serial")),
             _try(smi, lambda: smi.amdsmi_get_gpu_device_uuid(handle)),
             _try(smi, lambda: smi.amdsmi_get_gpu_enumeration_info(handle).get("hip_uuid"))}
    return {ident(str(v)) for v in found if v and v != "N/A"}


def _choose_gauge(power: dict[str, Any]) -> str | None:
    """The power_info field to read: the first that reads power, else the first that reads at all."""
    readable = [k for k in GAUGES if _number(power.get(k))]
    return next((k for k in readable if power[k] > 0), readable[0] if readable else None)


def _cap_watts(cap_uw: Any, limit_w: Any) -> float | None:
    """The board's power cap in W: amdsmi_get_power_cap_info's power_cap (µW), else power_info's power_limit (W)."""
    if isinstance(cap_uw, int | float) and 0 < cap_uw / 1e6 < 0xFFFF:
        return cap_uw / 1e6
    return float(limit_w) if _number(limit_w) and limit_w > 0 else None


def _gauge_step(w0: float, w1: float, dt: float) -> float:
    """J over one interval from the gauge's readings at its ends; one missing end: the other held."""
    if math.isfinite(w0) and math.isfinite(w1):
        return trapezoid_step(w0, w1, max(0.0, dt))
    known = w1 if math.isfinite(w1) else w0
    return known * max(0.0, dt) if math.isfinite(known) else 0.0


def _lib_version(smi: Any) -> str | None:
    v = _try(smi, smi.amdsmi_get_lib_version)
    if not isinstance(v, dict):
        return None if v is None else str(v)
    # {"year", "major", "minor", "release", "build"} before amd-smi 7, no "year" since.
    return ".".join(str(v[k]) for k in ("year", "major", "minor", "release") if k in v) or None


def _rocm_version(smi: Any) -> str | None:
    v = _try(smi, smi.amdsmi_get_rocm_version) if hasattr(smi, "amdsmi_get_rocm_version") else None
    if isinstance(v, tuple):  # (found, version or why not), amd-smi 6.4 and newer
        return v[1] if v and v[0] else None
    return None if v is None else str(v)


def _try(smi: Any, fn: Callable[[], Any]) -> Any:
    """The call's value, or None where the GPU or these bindings do not support it."""
    try:
        return fn()
    except (AttributeError, smi.AmdSmiException):
        return None
