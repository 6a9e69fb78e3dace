"""Errors raised by the entry points."""

from core.errors import HotlineError


class WorkerFailed(HotlineError):
    """A FastAGI worker process of `hotline serve` did not start."""


class WebUnavailable(HotlineError):
    """The web console could not listen on its address (port taken, address not here)."""


class UsageError(HotlineError):
    """The command was given something it cannot use (two different passwords)."""


class NoDatabase(HotlineError):
    """The settings name a SQLite file that is not there (`hotline doctor` makes none)."""
