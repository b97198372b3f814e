"""Errors that mean "the user asked for something invalid": the CLI prints them as one line, exit code 2.

Every such error derives from one base class (workloads.errors.InputError); nothing here needs to know
which modules raise them.
"""

from __future__ import annotations

from workloads.errors import InputError

__all__ = ["InputError", "UsageError"]


class UsageError(InputError):
    """A command line or option combination that cannot be done."""
