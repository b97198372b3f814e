"""Data tables shipped as CSV with a source on every row, and the one rule for matching a device to a row.

Tables may carry '#' comment lines that document their columns for humans; csv has no comment syntax, so
they are dropped before parsing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import TypeVar

Row = TypeVar("Row")


def read_table(package: str, name: str) -> list[dict[str, str]]:
    """Rows of a CSV shipped in `package`, without its '#' lines, values stripped of surrounding spaces."""
    return parse_table(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def read_table_file(path: str | Path) -> list[dict[str, str]]:
    """The same for a table at a path (a user's or a test's copy)."""
    return parse_table(Path(path).read_text(encoding="utf-8"))


def parse_table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    return [{k.strip(): (v or "").strip() for k, v in row.items()} for row in reader]


def longest_match(name: str, rows: Iterable[Row], pattern: Callable[[Row], str]) -> Row | None:
    """The row whose pattern occurs in `name` as whole words (case-insensitive); the longest pattern wins.

    Whole words, so that "A10" does not match an "A100" and "TPU v2" not a "TPU v20"; the longest, because
    it is the most specific ("H200 NVL" before "H200").
    """
    hits = [r for r in rows if _occurs(pattern(r), name)]
    return max(hits, key=lambda r: len(pattern(r))) if hits else None


def _occurs(pattern: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(pattern)}(?![A-Za-z0-9])", name, re.IGNORECASE) is not None
