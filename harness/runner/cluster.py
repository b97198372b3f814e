"""Several processes, one run: which process meters what, heartbeats, and every host's figures gathered to
process 0, over the framework runtime's key-value store (for JAX, jax.distributed's coordinator), so that
no shared filesystem is needed.

Who meters what. Each process meters its own accelerators. A meter whose scope is the whole node or the CPU
package (RAPL, the CPU model, an external node meter) is read by one process per physical host only, the
lowest-numbered process on it, so that two processes on one machine never count a package twice.

A process that dies. Every process publishes a heartbeat (with its energy so far) every HEARTBEAT_S; a
watchdog in every process declares a peer lost when its heartbeat has not moved for LOST_AFTER_S, or when
the store itself is gone (process 0, which hosts it, died). The framework's own health check fires later
(RUNTIME_HEARTBEAT_TIMEOUT_S), so the harness acts first: process 0 writes an `aborted` result naming the
lost process, and every survivor exits instead of waiting in a collective that will never complete.
"""

from __future__ import annotations

import json
import platform
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the type only: importing the seam loads numpy, and `harness meter` starts without it
    from workloads.framework import Runtime

HEARTBEAT_S = 1.0
LOST_AFTER_S = 20.0
RUNTIME_HEARTBEAT_TIMEOUT_S = 60  # the framework's own detection, after ours
GATHER_TIMEOUT_S = 60.0  # how long process 0 waits for a live peer's final figures
_CHUNK = 256 * 1024  # bytes per key-value entry


@dataclass(frozen=True)
class HostInfo:
    process: int
    host: str  # the host name, for people
    host_id: str  # the physical host: host name and boot id, so that two containers on one machine match
    leader: bool  # the process that reads this host's node- and CPU-scope meters


def host_id() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown-boot"
    return f"{platform.node()}/{boot}"


class Cluster:
    """The processes of one multi-process run, seen from one of them."""

    def __init__(self, rt: Runtime, key: str, lost_after_s: float = LOST_AFTER_S) -> None:
        self.rt, self.key, self.lost_after_s = rt, key, lost_after_s
        self.process, self.processes = rt.process_index(), rt.process_count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_fn: Callable[[], dict[str, Any]] = dict
        self.lost: list[int] = []
        self._lost_event = threading.Event()

    # -- sharing values ------------------------------------------------------------------------------
    def put(self, name: str, value: Any) -> None:
        """Publish a JSON-able value under `name` for this process (any size: chunked, compressed)."""
        blob = zlib.compress(json.dumps(value).encode())
        chunks = [blob[i:i + _CHUNK] for i in range(0, len(blob), _CHUNK)] or [b""]
        base = f"{self.key}/{name}/{self.process}"
        for i, chunk in enumerate(chunks):
            self.rt.kv_set(f"{base}/{i}", chunk)
        self.rt.kv_set(base, str(len(chunks)).encode())  # last: a reader that sees the count sees every chunk

    def get(self, name: str, process: int, timeout_s: float) -> Any:
        base = f"{self.key}/{name}/{process}"
        count = int(self.rt.kv_get(base, timeout_s).decode())
        blob = b"".join(self.rt.kv_get(f"{base}/{i}", timeout_s) for i in range(count))
        return json.loads(zlib.decompress(blob).decode())

    def gather(self, name: str, timeout_s: float) -> dict[int, Any]:
        """Every other live process's value of `name`; a lost or silent process is absent."""
        out: dict[int, Any] = {}
        deadline = time.monotonic() + timeout_s
        for k in range(self.processes):
            if k in self.lost or k == self.process:
                continue
            try:
                out[k] = self.get(name, k, max(0.1, deadline - time.monotonic()))
            except (TimeoutError, RuntimeError):
                continue
        return out

    def hosts(self, timeout_s: float = GATHER_TIMEOUT_S) -> list[HostInfo]:
        """Every process's host; the lowest process index on each physical host leads it."""
        self.put("host", {"host": platform.node(), "host_id": host_id()})
        seen = {k: self.get("host", k, timeout_s) for k in range(self.processes)}
        leaders: dict[str, int] = {}
        for k, h in sorted(seen.items()):
            leaders.setdefault(h["host_id"], k)
        return [HostInfo(k, h["host"], h["host_id"], leaders[h["host_id"]] == k) for k, h in sorted(seen.items())]

    # -- liveness -----------------------------------------------------------------------------------
    def start_watch(self, on_lost: Callable[[list[int]], None], status: Callable[[], dict[str, Any]]) -> None:
        """Heartbeat every HEARTBEAT_S carrying status() (the step, energy so far: what is known of a process
        that is later lost), and call on_lost(processes) once, from a watchdog thread, when peers go silent
        for LOST_AFTER_S (or the store itself is gone)."""
        self._status_fn = status
        beat = threading.Thread(target=self._beat, name="cluster-heartbeat", daemon=True)
        watch = threading.Thread(target=self._watch, args=(on_lost,), name="cluster-watchdog", daemon=True)
        self._threads = [beat, watch]
        for t in self._threads:
            t.start()

    def stop_watch(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def wait_for_lost(self, timeout_s: float) -> list[int]:
        """After a failed collective: wait until the watchdog names who is lost (or the timeout passes)."""
        self._lost_event.wait(timeout_s)
        return list(self.lost)

    def _beat(self) -> None:
        count = 0
        while not self._stop.wait(HEARTBEAT_S if count else 0):
            count += 1
            try:
                self.put("heartbeat", {"count": count, "time_unix_s": time.time(), **self._status_fn()})
                self.rt.kv_set(f"{self.key}/alive/{self.process}", str(count).encode())
            except Exception:  # the store is gone: the watchdog will say so
                return

    def _watch(self, on_lost: Callable[[list[int]], None]) -> None:
        seen: dict[int, bytes | None] = {}
        changed = {k: time.monotonic() for k in range(self.processes)}
        while not self._stop.wait(HEARTBEAT_S):
            now, lost = time.monotonic(), set()
            for k in range(self.processes):
                if k == self.process:
                    continue
                try:
                    count = self.rt.kv_try_get(f"{self.key}/alive/{k}")
                except Exception:
                    lost.add(0)  # the store itself is gone, and it lives in process 0
                    continue
                if count != seen.get(k):
                    seen[k], changed[k] = count, now
                elif now - changed[k] > self.lost_after_s:
                    lost.add(k)
            if lost and not self._stop.is_set():
                self.lost = sorted(lost)
                self._lost_event.set()
                on_lost(self.lost)
                return

    def last_status(self, process: int) -> dict[str, Any] | None:
        """The last heartbeat a process published (for a lost one: what it had done when it went silent)."""
        try:
            return self.get("heartbeat", process, 1.0)
        except (TimeoutError, RuntimeError, ValueError):
            return None
