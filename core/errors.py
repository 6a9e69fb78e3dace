"""Errors raised by the ground floor, named by what went wrong."""


class HotlineError(Exception):
    """Base of every error this platform raises on purpose."""


class SettingsError(HotlineError):
    """The configuration file or the environment holds an invalid value."""


class StoreUnavailable(HotlineError):
    """The database cannot be reached or refused the operation."""


class MigrationBlocked(HotlineError):
    """A schema upgrade could not get a table's lock in time, however often it was tried:
    rolled back, nothing changed."""


class IdentifyRefused(HotlineError):
    """Identification is not attempted: this call tried too many ID numbers, or this calling
    number failed too often today (`reason`: `ids_per_call` | `caller_budget`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"identification refused ({reason})")
        self.reason = reason


class IdentityLocked(HotlineError):
    """Too many wrong PINs: the ID number is locked until `until`."""

    def __init__(self, until: object) -> None:
        super().__init__(f"locked until {until}")
        self.until = until


class WrongPin(HotlineError):
    """The ID number and PIN identify nobody: the PIN does not match, or no resident holds
    that ID number (the caller is told the same either way); `failures` counts consecutive
    failures for the ID number."""

    def __init__(self, failures: int) -> None:
        super().__init__(f"identification failed ({failures} consecutive failures)")
        self.failures = failures


class SampleInUse(HotlineError):
    """The sample dataset cannot be replaced: recorded calls refer to its residents."""


class PhoneRefused(HotlineError):
    """An agent's SIP phone cannot be added or removed as asked (bad agent id, weak
    password, no softphone secret, no such phone)."""


class AuditLockOrder(HotlineError):
    """An audit entry was to join a PostgreSQL transaction that had written before it took
    the chain's lock (core.audit.lock_chain): a fault of ours, refused because waiting for
    the lock while holding rows others may want can deadlock."""


class AuditQueryRefused(HotlineError):
    """An audit search cannot be run as asked: an ID number that is not one (GB 11643), an
    unknown channel or user, a date that is not a date."""


class AuditTailBroken(HotlineError):
    """The audit rows after the last seal do not link onto it: the head is not sealed."""


class BlockRefused(HotlineError, ValueError):
    """A nuisance-list change that cannot be made: a withheld or malformed caller id, no
    reason, an expiry that is not in the future, a number that is not listed. The message
    says what is wrong (and never holds the number unmasked)."""
