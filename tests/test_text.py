"""The shipped real-text corpus: its hash checked, split by whole books, a fixed and hashed eval set."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

import numpy as np

from workloads.corpus import dataset_sha256
from workloads.text import TEXT_SHA256, TextCorpus, books, held_out_books


def test_the_shipped_text_is_the_recorded_one():
    raw = gzip.decompress(resources.files("workloads.data").joinpath("kjv.txt.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == TEXT_SHA256 and len(raw) == 4_404_412
    assert len(books()) == 66 and books()[0][0] == "Ge" and books()[-1][0] == "Rev"
    assert books()[0][1].startswith("In the beginning God created the heaven and the earth.\n")


def test_held_out_books_are_whole_books_never_in_training():
    held = held_out_books()
    assert held == ["Deu", "Ezra", "Lam", "Hab", "Rom", "2Tim", "Jude"]
    c = TextCorpus(64, eval_sequences=32)
    text = {b: t for b, t in books()}
    held_text = "\n\n".join(text[b] for b in held).encode()
    train_text = "\n\n".join(t for b, t in books() if b not in held).encode()
    assert c.train_bytes == len(train_text) and c.held_out_bytes == len(held_text)
    assert bytes(c._train.astype(np.uint8)) == train_text  # the training stream is exactly the other books
    for row in c.eval_set():
        assert bytes(row.astype(np.uint8)) in held_text  # every eval window is held-out text
    batch = c.train_batch(3, 7, 8)
    assert batch.shape == (8, 65) and (batch == c.train_batch(3, 7, 8)).all() and batch.max() < 128


def test_the_eval_set_is_fixed():
    a, b = TextCorpus(64).eval_set(), TextCorpus(64).eval_set()
    assert a.shape == (128, 65) and dataset_sha256(a) == dataset_sha256(b)
    starts = [bytes(r[:8].astype(np.uint8)) for r in a]
    assert len(set(starts)) == len(starts)  # spread over the held-out text, no window twice
