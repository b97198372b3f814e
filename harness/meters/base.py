"""The meter interface every energy backend implements.

A meter reports cumulative joules per component since ``start()``. Every meter carries a ``method``
label ("measured:...", "modelled:...", "fake:...") so no figure can lose track of how it was obtained.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and always a human-readable reason either way."""

    available: bool
    reason: str


class Meter(abc.ABC):
    name: ClassVar[str]
    method: str

    @classmethod
    @abc.abstractmethod
    def probe(cls, **kwargs: Any) -> Availability:
        """Check, without side effects, whether this backend works on this machine."""

    @abc.abstractmethod
    def components(self) -> list[str]:
        """Component names this meter reports, e.g. ["cpu-package-0", "dram-0"]."""

    @abc.abstractmethod
    def start(self) -> None:
        """Take the baseline; cumulative energy is 0 at this point."""

    @abc.abstractmethod
    def read(self) -> dict[str, float]:
        """Cumulative joules per component since start()."""

    def stop(self) -> None:  # noqa: B027 - deliberately optional hook, not abstract
        """Release resources; most meters hold none."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """JSON-able description of method, parameters and data sources."""
