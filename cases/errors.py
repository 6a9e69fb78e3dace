"""What can go wrong in casework, named by what went wrong."""

from __future__ import annotations


class CasesError(Exception):
    """Base of the errors casework raises."""


class RecordingNotFound(CasesError):
    """No recording with that id (or it was never one of an agent call)."""


class BadScore(CasesError):
    """A quality score that does not fit the form: an unknown or missing item, or points
    outside 0..the item's maximum."""
