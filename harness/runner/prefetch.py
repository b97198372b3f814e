"""Input ahead of the step: batches are made on a background thread and put on the device one step ahead.

The step for batch n+1 must never wait for the host to generate or transfer it: on a GPU a step of a
small model takes well under a millisecond, less than making its batch in numpy. A thread keeps batches
ready in host memory. It makes them a chunk at a time (the corpus walks a chunk's rows together), because
the thread shares the interpreter with the training loop: the less often it holds it, the less the loop waits.

The transfer is started by the training thread, for step n+1 as step n is dispatched (an asynchronous copy
that overlaps step n), never by the background thread: CUDA libraries capture work into graphs the first
time a program runs (cuDNN's fused attention does), and a transfer or a sync issued from another thread
during a capture breaks it. On an H100 (2026-11-27) transfers from the prefetch thread failed dense-base
runs with "capturing stream has unjoined work", CUDA_ERROR_INVALID_VALUE or a segfault.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

_STOP_POLL_S = 0.1
# Rows a chunk aims at: enough to pay the walk's per-position loop once for many small batches, few
# enough that a large batch is made one or two at a time (more rows than this walk no faster per row).
CHUNK_ROWS = 1024


def chunk_for(batch: int) -> int:
    """Batches per chunk for a batch of `batch` sequences."""
    return max(1, CHUNK_ROWS // max(1, batch))


class Prefetcher:
    """Batches for steps first..last, in order: `make(first_step, count)` returns [count, batch, ...], made
    `depth` chunks ahead on a thread; `to_device(batch)` places one batch, called on the consumer's thread
    one step ahead of the step asked for."""

    def __init__(self, make: Callable[[int, int], np.ndarray], to_device: Callable[[np.ndarray], Any], first: int,
                 last: int, chunk: int = 1, depth: int = 2) -> None:
        self._make, self._to_device = make, to_device
        self._next, self._first, self._last, self._chunk = first, first, last, max(1, chunk)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth) * self._chunk)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="input-prefetch", daemon=True)
        self._ahead: tuple[Any, BaseException | None] | None = None  # the next step's placed batch, or its error

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def get(self, step: int) -> Any:
        """The device batch of `step`; starts the next one's transfer if its batch is made already (else the
        next call makes it, while this step runs). Steps must be asked for in order; a producer's error is
        raised at the step it was making."""
        if step != self._next:
            raise ValueError(f"prefetcher serves steps in order: expected {self._next}, asked for {step}")
        batch, error = self._ahead if self._ahead is not None else self._place(self._queue.get(), step)
        self._ahead = None
        if error is None and step < self._last:
            try:
                self._ahead = self._place(self._queue.get_nowait(), step + 1)
            except queue.Empty:
                pass  # never wait here: the step asked for has not been dispatched yet
        if error is not None:
            raise error
        self._next += 1
        return batch

    def _place(self, item: tuple[int, Any, BaseException | None], step: int) -> tuple[Any, BaseException | None]:
        made_for, host, error = item
        if error is not None:
            return None, error
        assert made_for == step, (made_for, step)
        try:
            return self._to_device(host), None
        except Exception as e:  # noqa: BLE001 -- raised at its own step, like the producer's errors
            return None, e

    def _produce(self) -> None:
        for start in range(self._first, self._last + 1, self._chunk):
            count = min(self._chunk, self._last + 1 - start)
            try:
                made = self._make(start, count)
                items = [(start + i, made[i], None) for i in range(count)]
            except BaseException as e:  # handed to the training thread, which raises it at that step
                items = [(start, None, e)]
            for item in items:
                if not self._put(item):
                    return
            if items[0][2] is not None:
                return

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_STOP_POLL_S)
                return True
            except queue.Full:
                continue
        return False
