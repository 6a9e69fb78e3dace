"""Errors raised by the console room, named by what went wrong. HTTP statuses are chosen
in `console.app` only."""

import datetime as dt

from core.errors import HotlineError


class ConsoleError(HotlineError):
    """Something the console was asked to do cannot be done."""


class AccountError(ConsoleError):
    """An account cannot be created as asked (bad role, short password, missing agent id)."""


class BadCredentials(ConsoleError):
    """Wrong user name or password, or a disabled account."""


class NotAllowed(ConsoleError):
    """The signed-in user may not do this (wrong role, not their call, not their callback)."""


class NotFound(ConsoleError):
    """No such thing, or not one the user may see: the two look the same (an id cannot be probed)."""


class BadRequest(ConsoleError):
    """The request is malformed: a missing field, an unknown code, a note too long."""


class AddressBlocked(ConsoleError):
    """Too many failed sign-ins from this network address: refused until `until`."""

    def __init__(self, address: str, until: dt.datetime) -> None:
        super().__init__(f"too many failed sign-ins from {address}; refused until {until:%Y-%m-%d %H:%M} UTC")
        self.until = until


class TooBusy(ConsoleError):
    """More sign-ins or live pages at once than one user or one address may have."""
