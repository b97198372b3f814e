"""The one base class of every "bad input" error, at the bottom of the import graph so that workloads and
harness both derive from it. The CLI prints such an error as one line and exits 2."""

from __future__ import annotations


class InputError(ValueError):
    """Something the user asked for is invalid; the message is one line naming it and what is valid."""
