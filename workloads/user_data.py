"""A user's own corpus: UTF-8 text read as byte tokens, or a .npy array of integer token ids.

The last `eval_fraction` of the tokens is the fixed held-out set; training windows are drawn from the rest
with a generator seeded by (run seed, step), so a run is reproducible and never sees its eval tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workloads.errors import InputError


class UserDataError(InputError):
    """Bad --data input; the message is one line naming what is wrong and what is valid."""


class ByteWindows:
    """Training windows of seq_len + 1 tokens drawn at random from a token stream, seeded by (run seed, step), and a
    fixed held-out set: the DataSource the runner reads (harness/runner/loop.py), for any token stream."""

    seq_len: int
    _train: np.ndarray  # int32 [tokens]
    _eval: np.ndarray  # int32 [sequences, seq_len + 1]

    def train_batch(self, run_seed: int, step: int, batch: int) -> np.ndarray:
        rng = np.random.default_rng([run_seed, step, 11])
        starts = rng.integers(0, self._train.size - self.seq_len - 1, size=batch)
        return self._train[starts[:, None] + np.arange(self.seq_len + 1)]

    def train_batches(self, run_seed: int, first_step: int, count: int, batch: int) -> np.ndarray:
        """[count, batch, seq_len + 1]: train_batch of steps first_step.. (slicing is cheap; no walk to share)."""
        return np.stack([self.train_batch(run_seed, first_step + i, batch) for i in range(count)])

    def eval_set(self) -> np.ndarray:
        return self._eval


class TokenFile(ByteWindows):
    def __init__(self, path: str | Path, seq_len: int, eval_fraction: float = 0.1, eval_sequences: int = 64):
        path = Path(path)
        if not path.is_file():
            raise UserDataError(f"--data {path}: no such file (give UTF-8 text or a .npy of int token ids)")
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise UserDataError(f"--data {path}: not a .npy file (no NumPy header); give a .npy of a 1-D "
                                        "integer array, or UTF-8 text under another suffix")
            try:
                ids = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise UserDataError(f"--data {path}: a damaged .npy file ({str(e).splitlines()[0][:120]}); give a "
                                    ".npy of a 1-D integer array") from None
            if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu" or ids.ndim != 1:
                got = f"{ids.dtype} {ids.shape}" if isinstance(ids, np.ndarray) else type(ids).__name__
                raise UserDataError(f"--data {path}: .npy must hold a 1-D integer array, got {got}")
            if ids.size and ids.min() < 0:
                raise UserDataError(f"--data {path}: token ids must be >= 0")
            self.vocab_size = int(ids.max()) + 1 if ids.size else 0
        else:
            try:
                path.read_bytes().decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserDataError(f"--data {path}: not UTF-8 text ({e.reason}); use UTF-8 or a .npy") from None
            ids = np.frombuffer(path.read_bytes(), dtype=np.uint8)
            self.vocab_size = 256
        window = seq_len + 1
        n_eval = max(window * 4, int(ids.size * eval_fraction))
        if ids.size < n_eval + window * 4:
            raise UserDataError(f"--data {path}: {ids.size} tokens is too short; need at least {n_eval + window * 4}")
        self.path = path
        self.seq_len = seq_len
        self._train = ids[:-n_eval].astype(np.int32)
        held_out = ids[-n_eval:].astype(np.int32)
        count = min(eval_sequences, held_out.size // window)
        self._eval = held_out[: count * window].reshape(count, window)
