"""Input ahead of the step: batches are made and put on the device on a background thread.

The step for batch n+1 must never wait for the host to generate or transfer it: on a GPU a step of a
small model takes well under a millisecond, less than making its batch in numpy. A thread keeps batches
ready, already transferred. It makes them a chunk at a time (the corpus walks a chunk's rows together),
because the thread shares the interpreter with the training loop: the less often it holds it, the less the
loop waits.
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
    """Batches for steps first..last, in order: `make(first_step, count)` returns [count, batch, ...] and
    `to_device(batch)` places one batch. `depth` chunks are kept ready."""

    def __init__(self, make: Callable[[int, int], np.ndarray], to_device: Callable[[np.ndarray], Any], first: int,
                 last: int, chunk: int = 1, depth: int = 2) -> None:
        self._make, self._to_device = make, to_device
        self._next, self._first, self._last, self._chunk = first, first, last, max(1, chunk)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth) * self._chunk)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="input-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def get(self, step: int) -> Any:
        """The device batch of `step`; steps must be asked for in order."""
        if step != self._next:
            raise ValueError(f"prefetcher serves steps in order: expected {self._next}, asked for {step}")
        made_for, batch, error = self._queue.get()
        if error is not None:
            raise error
        assert made_for == step, (made_for, step)
        self._next += 1
        return batch

    def _produce(self) -> None:
        for start in range(self._first, self._last + 1, self._chunk):
            count = min(self._chunk, self._last + 1 - start)
            try:
                made = self._make(start, count)
                items = [(start + i, self._to_device(made[i]), None) for i in range(count)]
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
