"""The system under test: our decoder behind a batcher, answering LoadGen's queries from one worker thread.

LoadGen calls `issue` from its own threads; the worker takes samples in arrival order and runs them in batches
of at most `batch`: everything that has arrived (Offline hands over all its samples at once; a MultiStream
query its N), waiting at most `max_wait_s` after the first of a batch for more to come (Server's dynamic
batching; 0 elsewhere). A batch is padded to the next compiled bucket (1, 2, 4, ... up to `batch`), so that no
call compiles in the timed window. Each sample's first token is reported as it exists (LoadGen's
FirstTokenComplete: time to first token), its whole continuation at the end (QuerySamplesComplete with
n_tokens).

The energy window's edges are marked here: at the first query's arrival and at the last response after
LoadGen's flush (it has issued everything), so that the window lies inside LoadGen's own power window.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.infer.loadgen import loadgen
from workloads.framework import Decoder


@dataclass
class Tally:
    """What the SUT did, timed by itself (time.perf_counter), for the record."""

    queries: int = 0
    samples: int = 0
    tokens: int = 0
    batches: int = 0
    padded_rows: int = 0
    calls: dict[int, int] = field(default_factory=dict)  # bucket -> prefill + generate_rest calls at it
    ttft_s: list[float] = field(default_factory=list)
    tpot_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    routed: int = 0  # Switch: token-slots routed, every row computed (the padding rows' too)
    padding_routed: int = 0  # of those, the padding rows'
    dropped: int = 0  # token-slots dropped, every row computed (a padding row competes for capacity slots too)
    error: str | None = None


class DecoderSUT:
    """LoadGen's SUT around `decoders` (bucket size -> a compiled decoder) and the QSL's `prompts` [N, P]."""

    def __init__(self, decoders: dict[int, Decoder], prompts: np.ndarray, gen_len: int, max_wait_s: float,
                 mark: Callable[[str], Any], labels: tuple[str, str], switch_layers: int):
        self.decoders, self.buckets = decoders, sorted(decoders)
        self.batch = self.buckets[-1]
        self.prompts, self.gen_len, self.max_wait_s = prompts, gen_len, max_wait_s
        self.mark, self.labels, self.switch_layers = mark, labels, switch_layers
        self.tally = Tally()
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._outstanding = 0
        self._flushed = False
        self._stopped_marked = False
        self._worker = threading.Thread(target=self._work, name="harness-sut", daemon=True)
        self._worker.start()
        self._keep: list[np.ndarray] = []  # response buffers, alive until LoadGen has copied them
        lg = loadgen()
        self.handle = lg.ConstructSUT(self.issue, self.flush)

    # -- LoadGen's callbacks (its threads) --------------------------------------------------------------------
    def issue(self, samples) -> None:
        now = time.perf_counter()
        with self._lock:
            first = self.tally.queries == 0
            self.tally.queries += 1
            self._outstanding += len(samples)
        if first:
            self.mark(self.labels[0])
        for s in samples:
            self._queue.put((s.id, s.index, now))

    def flush(self) -> None:
        with self._lock:
            self._flushed = True
            done = self._outstanding == 0
        if done:
            self._mark_stop()

    # -- the worker ---------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            deadline = time.perf_counter() + self.max_wait_s
            while len(batch) < self.batch:
                try:
                    wait = deadline - time.perf_counter()
                    nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._run(batch)
            except Exception as e:  # answer LoadGen anyway (it would wait for ever); the record says what failed
                self.tally.error = f"{type(e).__name__}: {e}"
                self._answer_empty(batch)

    def _run(self, batch: list[tuple[int, int, float]]) -> None:
        lg = loadgen()
        n = len(batch)
        bucket = next(b for b in self.buckets if b >= n)
        rows = self.prompts[[index for _, index, _ in batch]]
        if bucket > n:  # padded with copies of the first prompt; their outputs are dropped
            rows = np.concatenate([rows, np.repeat(rows[:1], bucket - n, axis=0)])
        decoder = self.decoders[bucket]
        first, state = decoder.prefill(rows)
        first = np.asarray(first, np.int32)
        t_first = time.perf_counter()
        heads = [np.ascontiguousarray(first[i:i + 1]) for i in range(n)]
        lg.FirstTokenComplete([lg.QuerySampleResponse(sid, h.ctypes.data, h.nbytes)
                               for (sid, _, _), h in zip(batch, heads, strict=True)])
        rest = np.asarray(decoder.generate_rest(state), np.int32) if self.gen_len > 1 else np.zeros((bucket, 0),
                                                                                                     np.int32)
        t_done = time.perf_counter()
        outs = [np.ascontiguousarray(np.concatenate([first[i:i + 1], rest[i]])) for i in range(n)]
        self._keep = heads + outs
        with self._lock:
            last = self._flushed and self._outstanding == n
        if last:  # the window closes before the last response, so that it lies inside LoadGen's power_end
            self._mark_stop()
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sid, o.ctypes.data, o.nbytes, self.gen_len)
                                 for (sid, _, _), o in zip(batch, outs, strict=True)])
        s = self.tally
        s.samples += n
        s.tokens += n * self.gen_len
        s.batches += 1
        s.padded_rows += bucket - n
        s.calls[bucket] = s.calls.get(bucket, 0) + 1
        if self.switch_layers:  # prefill routes the prompts; each decode step the token it feeds
            per_row = (rows.shape[1] + self.gen_len - 1) * self.switch_layers
            s.routed += bucket * per_row
            s.padding_routed += (bucket - n) * per_row
            s.dropped += decoder.dropped.total
        for _, _, issued in batch:
            s.ttft_s.append(t_first - issued)
            s.latency_s.append(t_done - issued)
            if self.gen_len > 1:
                s.tpot_s.append((t_done - t_first) / (self.gen_len - 1))
        self._settle(n)

    def _answer_empty(self, batch: list[tuple[int, int, float]]) -> None:
        lg = loadgen()
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sid, 0, 0, 0) for sid, _, _ in batch])
        self._settle(len(batch))

    def _settle(self, n: int) -> None:
        with self._lock:
            self._outstanding -= n
            done = self._flushed and self._outstanding == 0
        if done:
            self._mark_stop()

    def _mark_stop(self) -> None:
        with self._lock:
            if self._stopped_marked:
                return
            self._stopped_marked = True
        self.mark(self.labels[1])

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)
        loadgen().DestroySUT(self.handle)


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 (and the mean), in ms; empty without values."""
    if not seconds:
        return {}
    a = 1e3 * np.asarray(seconds)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}
