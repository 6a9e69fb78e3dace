"""Errors raised by the ground floor, named by what went wrong."""


class HotlineError(Exception):
    """Base of every error this platform raises on purpose."""


class SettingsError(HotlineError):
    """The configuration file or the environment holds an invalid value."""


class StoreUnavailable(HotlineError):
    """The database cannot be reached or refused the operation."""


class UnknownResident(HotlineError):
    """No resident holds the given citizen ID number."""


class IdentityLocked(HotlineError):
    """Too many wrong PINs: the ID number is locked until `until`."""

    def __init__(self, until: object) -> None:
        super().__init__(f"locked until {until}")
        self.until = until


class WrongPin(HotlineError):
    """The PIN does not match; `failures` counts consecutive failures."""

    def __init__(self, failures: int) -> None:
        super().__init__(f"wrong PIN ({failures} consecutive failures)")
        self.failures = failures


class SampleInUse(HotlineError):
    """The sample dataset cannot be replaced: recorded calls refer to its residents."""
