"""Errors raised by the SMS room, named by what went wrong."""

from core.errors import HotlineError


class BatchError(HotlineError):
    """A batch file cannot be read as asked, or the batch named does not exist."""


class DispatcherFault(HotlineError):
    """A part of the dispatcher (its group commit, its batch intake) stopped on a fault."""
