"""The exceptions posecli raises for problems a user can fix.

The CLI turns each into one line on stderr and the exit code it carries; the
Python API lets them propagate.
"""

from __future__ import annotations


class PoseCliError(Exception):
    """A user-facing error: its message is one clear line."""

    exit_code = 1


class InputError(PoseCliError):
    """An input file or stream that cannot be used (missing, empty, not a video)."""


class WeightsError(PoseCliError):
    """A weights file that is malformed or does not fit the model."""


class NoWeightsError(WeightsError):
    """No weights were given and none are installed."""

    exit_code = 2


class UsageError(PoseCliError):
    """An option value that cannot be used (bad --frames, bad --device...)."""

    exit_code = 2


class Interrupted(PoseCliError):
    """The run was stopped by Ctrl-C or SIGTERM (the message says what was kept)."""

    exit_code = 130


def error_reason(exc: BaseException) -> str:
    """A short reason from an OS or PyAV error, on one line, without the errno and path."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(reason).split())
