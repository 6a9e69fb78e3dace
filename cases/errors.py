"""What can go wrong in casework, named by what went wrong."""

from __future__ import annotations


class CasesError(Exception):
    """Base of the errors casework raises."""
