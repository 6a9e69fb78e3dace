"""Errors raised by the entry points."""

from core.errors import HotlineError


class WorkerFailed(HotlineError):
    """A FastAGI worker process of `hotline serve` did not start."""
