"""Errors that mean "the user asked for something invalid": the CLI prints them as one line, exit code 2."""

from __future__ import annotations


class UsageError(ValueError):
    pass


def input_errors() -> tuple[type[Exception], ...]:
    """Every exception type that carries a one-line message about bad user input."""
    from harness.carbon import CarbonInputError, UnknownRegionError
    from harness.meters import MeterSelectionError
    from harness.meters.ptdaemon import PowerLogError
    from harness.results.reader import ResultReadError
    from workloads.registry import UnknownWorkloadError
    from workloads.trainers import FrameworkUnavailableError
    from workloads.user_data import UserDataError

    return (UsageError, CarbonInputError, UnknownRegionError, UnknownWorkloadError, UserDataError,
            MeterSelectionError, PowerLogError, FrameworkUnavailableError, ResultReadError)
