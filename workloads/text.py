"""A shipped real-text corpus: the King James Version of the Bible as byte tokens, split by whole books.

Why this text: natural English nobody designed for the harness, redistributable with an Apache-2.0 project
(its copyright expired; the Debian package it comes from says so, workloads/data/SOURCES.md), 4.4 MB, and read
with no network from the package's own data. Byte tokens (vocabulary 256): no tokenizer to ship or to disagree
about; the text is ASCII.

The split is by whole books, never overlapping: every tenth book from the fifth (Deuteronomy, Ezra,
Lamentations, Habakkuk, Romans, 2 Timothy, Jude: 276 kB, 6.7 % of the text) is held out, the rest is training
text. The eval set is fixed: `eval_sequences` windows of
seq_len + 1 bytes spread evenly over the held-out text, hashed like the procedural corpora's. Verse references are
stripped; a book is its verses joined by newlines, books by blank lines.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from workloads.errors import InputError
from workloads.user_data import ByteWindows

TEXT_VERSION = "kjv-bytes/1"  # the text, its split and its eval windows; a change to any is a new version
TEXT_FILE = "kjv.txt.gz"
# SHA-256 of the shipped file's uncompressed text (`bible -f "Gen1:1-Rev22:21"`, Debian bible-kjv 4.38).
TEXT_SHA256 = "cd45f0c9cedab8e4439bd6486c8952c77cc8b0ecc5d1f6ae3513f2039f47229d"
VERSE = re.compile(r"^(\d?[A-Za-z]+)\d+:\d+ (.*)$")
HELD_OUT_EVERY, HELD_OUT_FROM = 10, 4  # book indices 4, 14, 24, ...: 7 of the 66 books


class TextCorpusError(InputError):
    """The shipped text is missing or not the one the harness was built with."""


@dataclass(frozen=True)
class TextConfig:
    """Plain data naming the shipped text as a spec's corpus (workloads/specs.py): byte tokens, no entropy floor
    known, so a spec on it states its target in nats per byte outright."""

    name: str
    seq_len: int
    eval_sequences: int = 128
    file: str = TEXT_FILE
    text_sha256: str = TEXT_SHA256
    version: str = TEXT_VERSION

    @property
    def vocab_size(self) -> int:
        return 256


@cache
def books() -> tuple[tuple[str, str], ...]:
    """(book, text) in canonical order, from the shipped file, its hash checked."""
    try:
        raw = gzip.decompress(resources.files("workloads.data").joinpath(TEXT_FILE).read_bytes())
    except (FileNotFoundError, OSError) as e:
        raise TextCorpusError(f"workloads/data/{TEXT_FILE}: unreadable ({e}); reinstall harness") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TEXT_SHA256:
        raise TextCorpusError(f"workloads/data/{TEXT_FILE}: its text hashes {digest[:12]}…, not {TEXT_SHA256[:12]}…: "
                              "not the text this harness ships")
    order: list[str] = []
    verses: dict[str, list[str]] = {}
    for line in raw.decode("ascii").splitlines():
        m = VERSE.match(line)
        if m is None:
            raise TextCorpusError(f"workloads/data/{TEXT_FILE}: a line that is no verse: {line[:60]!r}")
        if m.group(1) not in verses:
            order.append(m.group(1))
            verses[m.group(1)] = []
        verses[m.group(1)].append(m.group(2))
    return tuple((b, "\n".join(verses[b])) for b in order)


def held_out_books() -> list[str]:
    return [b for i, (b, _) in enumerate(books()) if i % HELD_OUT_EVERY == HELD_OUT_FROM]


class TextCorpus(ByteWindows):
    """Byte windows of the training books, and the fixed eval windows of the held-out books."""

    vocab_size = 256

    @classmethod
    def of(cls, cfg: TextConfig) -> TextCorpus:
        if (cfg.file, cfg.text_sha256, cfg.version) != (TEXT_FILE, TEXT_SHA256, TEXT_VERSION):
            raise TextCorpusError(f"text corpus {cfg.name}: {cfg.file} {cfg.version} (sha256 {cfg.text_sha256[:12]}…) "
                                  f"is not the text this harness ships ({TEXT_FILE} {TEXT_VERSION})")
        return cls(cfg.seq_len, cfg.eval_sequences)

    def __init__(self, seq_len: int, eval_sequences: int = 128) -> None:
        held = set(held_out_books())
        train = "\n\n".join(t for b, t in books() if b not in held).encode("ascii")
        evalt = "\n\n".join(t for b, t in books() if b in held).encode("ascii")
        self.seq_len = seq_len
        self._train = np.frombuffer(train, np.uint8).astype(np.int32)
        held_out = np.frombuffer(evalt, np.uint8).astype(np.int32)
        window = seq_len + 1
        starts = np.linspace(0, held_out.size - window, eval_sequences).astype(np.int64)
        self._eval = held_out[starts[:, None] + np.arange(window)]
        self.train_bytes, self.held_out_bytes = int(self._train.size), int(held_out.size)
