"""Errors raised by the entry points."""

from core.errors import HotlineError


class WorkerFailed(HotlineError):
    """A FastAGI worker process of `hotline serve` did not start."""


class AgiUnavailable(HotlineError):
    """The FastAGI server could not listen on its address (port taken, address not here)."""


class WebUnavailable(HotlineError):
    """The web console could not listen on its address (port taken, address not here)."""


class UsageError(HotlineError):
    """The command was given something it cannot use (two different passwords)."""


class NoDatabase(HotlineError):
    """The settings name a SQLite file that is not there (`hotline doctor` makes none)."""


class BackupRefused(HotlineError):
    """A backup or restore is not started as asked: the restore target already holds data
    (tables or recordings) and `--force` was not given, the backup's database is of another
    kind than the target's, or the backup directory is not new."""


class BackupCorrupt(HotlineError):
    """A backup's files do not match its manifest (missing, another size, another sha256),
    or it has no readable manifest: nothing was restored from it."""


class BackupToolFailed(HotlineError):
    """pg_dump or pg_restore is missing or exited with an error (its message is carried)."""
