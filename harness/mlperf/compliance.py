"""Run MLCommons' compliance checker with our rules on a :::MLLOG file, and read MLLOG files back."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import yaml
from mlperf_logging.compliance_checker import mlp_compliance
from mlperf_logging.compliance_checker.mlp_parser import ruleset_600

from harness.mlperf import rules
from harness.mlperf.rules import RULESET


class _ParsedOnce:
    """PyYAML as the compliance checker calls it, with each rule file parsed once a process.

    The checker parses every rule file again for every log (`configured_checks`): ~90 of the ~100 ms it takes
    on one log here. A package of ten runs, or a claim over two sets, checks the same few files many times.
    Each call still gets its own copy of the parsed rules.
    """

    def __init__(self) -> None:
        self._parsed: dict[tuple[Any, str], Any] = {}

    def load(self, stream: Any, Loader: Any = yaml.SafeLoader) -> Any:  # noqa: N803 (PyYAML's own name)
        text = stream.read() if hasattr(stream, "read") else stream
        key = (Loader, text)
        if key not in self._parsed:
            self._parsed[key] = yaml.load(text, Loader=Loader)
        return copy.deepcopy(self._parsed[key])

    def __getattr__(self, name: str) -> Any:  # BaseLoader and everything else, as PyYAML has them
        return getattr(yaml, name)


mlp_compliance.yaml = _ParsedOnce()


def _one_line(message: str) -> str:
    """The checker's messages span lines (line dump, state dump); keep what names the problem."""
    lines = [x.strip() for x in message.strip().splitlines() if x.strip()]
    head = lines[0] if lines else "unknown problem"
    test = next((x for x in lines if x.startswith("failed test:")), "")
    return f"{head} {test}".strip() if test and test != head else head


def check_log(path: str | Path, config: str | None = None) -> list[str]:
    """Problems the compliance checker finds with our rules (common.yaml and what it enqueues); [] = pass."""
    checker = mlp_compliance.make_checker("training", RULESET, quiet=True, werror=False)
    mlp_compliance.enqueued_configs.clear()  # module-level queue: a failed earlier check may leave entries
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the checker logs every step; we report its findings ourselves
    try:
        checker.check_file(str(path), config or rules.common())
    except Exception as e:  # a log the parser cannot read is a finding, not a crash
        return [f"{path}: compliance checker could not run: {e}"]
    finally:
        logging.disable(previous)
    found = [*checker.overwritable.values(), *checker.not_overwritable]
    return [f"{path}: {_one_line(m)}" for m in found]


def read_log(path: str | Path) -> list:
    """Parsed :::MLLOG lines (mlperf_logging's LogLine records: key, value dict, timestamp in ms).

    Each line goes through the parser's own string_to_logline, as its parse_file does; only its first pass is
    ours. That pass cuts whatever precedes the last ':::MLLOG ' on a line with an unanchored `.*` regex, which
    costs ~45 us a line: ~20 of the ~40 s a site of 200 runs took, most of it on power logs with a reading per
    sample. rfind gives the same cut."""
    token = ruleset_600.TOKEN
    lines = []
    with open(path, encoding="latin-1") as f:  # the parser's own encoding
        for lineno, line in enumerate(x[x.rfind(token):].strip() for x in f if token in x):
            try:
                lines.append(ruleset_600.string_to_logline(lineno, line))
            except (ValueError, KeyError, TypeError):
                continue  # a line it cannot read is left out, as parse_file does (the compliance checker says so)
    return lines
