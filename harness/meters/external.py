"""Node-level power from an external command that prints watts (a BMC via ipmitool, a PDU CLI).

The command is polled at a fixed rate; energy is the trapezoid integral of the successful readings.
Such a meter sees the whole node (CPUs, GPUs, fans, PSU losses), so its scope is "node".
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from harness.meters.base import Availability, Meter, MeterUnavailable, Option, run_periodically
from harness.meters.integrate import trapezoid_step

if TYPE_CHECKING:
    from harness.meters.request import Accelerator, MeterRequest

Runner = Callable[[list[str], float], str]

MAX_HZ = 50.0
# No left neighbour that is a word character or a dot, so "PSU1" or "v2.5" do not yield stray numbers.
_NUMBER = r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# "kW" is accepted and scaled because some PDUs print it; "Wh"/"Watt-hours" are energy and must not match.
_WITH_UNIT = re.compile(rf"({_NUMBER})\s*(k|kilo)?(?:watts?|w)(?![\w-])", re.IGNORECASE)
_ANY_NUMBER = re.compile(rf"{_NUMBER}(?![\w.])")
_INTEGRATION = "trapezoid over successful samples, linear across gaps, last reading held to the read time"


def parse_watts(text: str) -> float:
    """Watts in a command's output: the first number with a W unit, else the output's only number."""
    m = _WITH_UNIT.search(text)
    if m:
        value = float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
    else:
        numbers = _ANY_NUMBER.findall(text)
        if len(numbers) != 1:
            # Several unitless numbers (a timestamp, a sensor id) cannot be told apart safely.
            raise ValueError(f"cannot find watts in command output: {text[:80]!r}")
        value = float(numbers[0])
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"implausible power {value} W in command output: {text[:80]!r}")
    return value


def _run_command(argv: list[str], timeout_s: float) -> str:
    """stdout of argv; CalledProcessError on a non-zero exit, TimeoutExpired after timeout_s."""
    # Own session, so a timeout kills the whole group: subprocess.run kills only the direct child, and a
    # wrapper script's hung grandchild would keep the pipe open and block us far past the timeout.
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
    return out


def _describe(exc: BaseException, argv: list[str]) -> str:
    """One line saying why a sample failed; command stderr can be long and multi-line."""
    if isinstance(exc, subprocess.CalledProcessError):
        err = (exc.stderr or "").strip().splitlines()
        why = f"{argv[0]} exited with status {exc.returncode}" + (f": {err[0]}" if err else "")
    elif isinstance(exc, subprocess.TimeoutExpired):
        why = f"{argv[0]} timed out after {exc.timeout:g} s"
    else:
        why = " ".join(str(exc).split()) or type(exc).__name__
    return why[:200]


def _hz(value: float) -> str | None:
    return None if math.isfinite(value) and 0 < value <= MAX_HZ else f"must be in (0, {MAX_HZ:g}] samples per second"


class ExternalMeter(Meter):
    name: ClassVar[str] = "external"
    part: ClassVar[str] = "node"
    scope: ClassVar[str] = "node"
    options: ClassVar[tuple[Option, ...]] = (
        Option("external_command", "--meter-command", str,
               "with --meter external: a command printing watts, e.g. 'ipmitool dcmi power reading'"),
        Option("external_hz", "--meter-hz", float, "how often the external command runs (default 1)", _hz),
    )
    description: ClassVar[tuple[str, str, str]] = (
        "the whole node (BMC, PDU or wall meter)", "measured", "--meter-hz, default 1 Hz")
    request_hint: ClassVar[str] = "needs --meter external --meter-command 'CMD' (a command printing watts)"

    def __init__(
        self,
        command: str,
        hz: float = 1.0,
        timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        runner: Runner | None = None,
    ) -> None:
        if not (math.isfinite(hz) and 0 < hz <= MAX_HZ):
            # Above ~50 Hz the process spawn alone dominates; BMCs update far slower anyway.
            raise ValueError(f"external meter hz must be in (0, {MAX_HZ:g}], got {hz}")
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("external meter needs a non-empty command")
        # Twice the period leaves room for a slow BMC without letting one hung call stall sampling for long.
        self.timeout_s = max(1.0, 2.0 / hz) if timeout_s is None else timeout_s
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.command = command
        self.hz = hz
        self.method = "measured:external-command"
        self.update_period_s = 1.0 / hz
        self.max_gap_s = max(2.0, 2.5 / hz)
        self._clock, self._wall, self._runner = clock, wall, runner or _run_command
        self._lock = threading.Lock()
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        self._t0: float | None = None  # clock time of the first successful sample: energy counts from here
        self._wall0 = 0.0
        self._last_t = self._last_w = 0.0
        self._joules = 0.0  # integral up to _last_t
        self._returned = 0.0
        self._ok = self._attempts = self._failed = 0
        self._last_attempt_t = 0.0
        self._last_error = ""
        self._gaps: list[dict[str, float]] = []
        self._stop_t: float | None = None

    @classmethod
    def from_request(cls, req: MeterRequest, accels: list[Accelerator]) -> ExternalMeter:
        command = req.option("external_command")
        if not command:
            raise MeterUnavailable("not used: needs --meter external --meter-command 'CMD' (a command printing "
                                   "watts)")
        try:
            return cls(command, hz=req.option("external_hz", 1.0))
        except ValueError as e:
            raise MeterUnavailable(f"external: {e}") from None

    @classmethod
    def probe(cls, req: MeterRequest, accels: list[Accelerator]) -> Availability:
        return cls.check(req.option("external_command"))

    @classmethod
    def check(cls, command: str | None = None, runner: Runner | None = None, timeout_s: float = 10.0) -> Availability:
        if not command or not command.strip():
            return Availability(False, "external: no --meter-command given (e.g. 'ipmitool dcmi power reading')")
        try:
            argv = shlex.split(command)
        except ValueError as e:
            return Availability(False, f"external: cannot split --meter-command {command!r}: {e}")
        if shutil.which(argv[0]) is None:
            return Availability(False, f"external: {argv[0]!r} not found or not executable")
        try:
            watts = parse_watts((runner or _run_command)(argv, timeout_s))
        except Exception as e:  # any failure means "not usable", with the reason shown to the user
            return Availability(False, f"external: {command!r} failed: {_describe(e, argv)}")
        return Availability(True, f"ok: {command} printed {watts:g} W")

    def components(self) -> list[str]:
        return ["node"]

    def sample_once(self) -> bool:
        """Run the command once and fold the reading into the integral; a failure is counted, never raised."""
        before = self._clock()
        try:
            watts = parse_watts(self._runner(self.argv, self.timeout_s))
            error = ""
        except Exception as e:  # a sampling thread must survive any runner or parse failure
            watts, error = math.nan, _describe(e, self.argv)
        # The meter's reading is from somewhere inside the command's run; the midpoint is the best guess.
        t = (before + self._clock()) / 2
        with self._lock:
            self._attempts += 1
            self._last_attempt_t = max(self._last_attempt_t, t)
            if error:
                self._failed += 1
                self._last_error = error
                return False
            self._ok += 1
            if self._t0 is None:
                self._t0 = self._last_t = t
                self._wall0 = self._wall() - (self._clock() - t)
            else:
                dt = max(0.0, t - self._last_t)
                # A trapezoid over a long interval is a linear bridge across failed samples.
                self._joules += trapezoid_step(self._last_w, watts, dt)
                if dt > self.max_gap_s:
                    self._gaps.append(self._gap(self._last_t, t))
                self._last_t = max(self._last_t, t)
            self._last_w = watts
            return True

    def _gap(self, a: float, b: float) -> dict[str, float]:
        assert self._t0 is not None
        return {
            "start_unix_s": self._wall0 + (a - self._t0),
            "stop_unix_s": self._wall0 + (b - self._t0),
            "seconds": b - a,
        }

    def start(self, background: bool = True) -> None:
        """Take the first reading synchronously; background=False lets tests drive sample_once()."""
        if self._t0 is not None:
            raise RuntimeError("ExternalMeter already started")
        self._reset()
        self._stop_evt.clear()
        if not self.sample_once():
            error = self._last_error
            self._reset()
            raise RuntimeError(f"external: first reading from {self.command!r} failed: {error}")
        if background:
            self._thread = threading.Thread(target=self._run, name="external-meter", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        run_periodically(self.hz, self._clock, self._stop_evt, self.sample_once)

    def read(self) -> dict[str, float]:
        with self._lock:
            if self._t0 is None:
                raise RuntimeError("ExternalMeter.start() has not been called")
            now = self._clock() if self._stop_t is None else self._stop_t
            joules = self._joules + self._last_w * max(0.0, now - self._last_t)
            # Holding the last reading can overshoot the trapezoid once the next sample lands (power fell);
            # cumulative energy must never go backwards, so the held excess is absorbed, not subtracted.
            self._returned = max(self._returned, joules)
            return {"node": self._returned}

    def stop(self) -> None:
        self._stop_evt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._t0 is None or self._stop_t is not None:
                return
            self._stop_t = self._clock()
            if self._stop_t - self._last_t > self.max_gap_s:
                # No reading at all near the end: the held stretch is as unmeasured as a gap in the middle.
                self._gaps.append(self._gap(self._last_t, self._stop_t))

    def unmeasured_s(self, start_unix_s: float, stop_unix_s: float) -> float:
        """The window's overlap with the sampling gaps, the one still open now included."""
        with self._lock:
            if self._t0 is None:
                return max(0.0, stop_unix_s - start_unix_s)
            gaps = [(g["start_unix_s"], g["stop_unix_s"]) for g in self._gaps]
            now = self._clock() if self._stop_t is None else self._stop_t
            if self._stop_t is None and now - self._last_t > self.max_gap_s:
                gap = self._gap(self._last_t, now)
                gaps.append((gap["start_unix_s"], gap["stop_unix_s"]))
        return sum(max(0.0, min(b, stop_unix_s) - max(a, start_unix_s)) for a, b in gaps)

    def gauges(self) -> dict[str, float]:
        with self._lock:
            # ".instant", not "node": the power.csv column "node_w" is the interval average of the energy.
            return {"node.instant": self._last_w} if self._ok else {}

    def cross_checks(self) -> dict[str, str]:
        return {}

    def warnings(self) -> list[str]:
        with self._lock:
            out = []
            if self._failed:
                out.append(
                    f"external: {self._failed} of {self._attempts} samples failed (last error: {self._last_error})"
                )
            if self._gaps:
                n, longest = len(self._gaps), max(g["seconds"] for g in self._gaps)
                out.append(
                    f"external: {n} sampling gap{'s' if n != 1 else ''} over {self.max_gap_s:.1f} s "
                    f"(longest {longest:.1f} s), energy bridged linearly"
                )
            return out

    def params(self) -> dict[str, Any]:
        with self._lock:
            # Successful readings per second over the whole sampled span, so trailing failures lower it.
            end = self._stop_t if self._stop_t is not None else self._last_attempt_t
            span = end - self._t0 if self._t0 is not None else 0.0
            achieved = (self._ok - 1) / span if span > 0 else None
            return {
                "method": self.method,
                "command": self.command,
                "target_hz": self.hz,
                "achieved_hz": achieved,
                "samples": self._attempts,
                "failed_samples": self._failed,
                "gaps": [dict(g) for g in self._gaps],
                "integration": _INTEGRATION,
                "note": "node-level power from an external meter; includes every component in the node",
            }
