"""Which parts of a running `hotline serve` are up, for `/healthz` and `hotline status`.

The supervisor (hotline/supervise.py) and the group writer report here; the console only
reads. Thread-safe: the group writer reports from its own thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

ERROR_TEXT_MAX = 200


class State(StrEnum):
    UP = "up"
    RESTARTING = "restarting"  # it failed and waits for its next start
    DONE = "done"  # it finished its work (the AMI watcher once AMI answers)
    STOPPED = "stopped"  # shutdown


HEALTHY = (State.UP, State.DONE, State.STOPPED)


@dataclass(frozen=True)
class Component:
    name: str
    state: State
    since: dt.datetime
    restarts: int = 0
    last_error: str | None = None  # its kind only: error_text
    last_error_at: dt.datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": self.since.isoformat(timespec="seconds"),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat(timespec="seconds") if self.last_error_at else None,
        }


def error_text(exc: BaseException) -> str:
    """What /healthz may show of an error: its kind (the exception's type), never its text.

    /healthz answers without sign-in, and an error's text can carry host names, addresses,
    ports, user names or a resident's number (`connection to db.internal:5432 refused`);
    the serve log has the whole error. A type name comes from our code, not from outside.

    >>> error_text(ConnectionRefusedError(111, "Connect call failed ('10.1.2.3', 5432)"))
    'ConnectionRefusedError'
    """
    return type(exc).__name__[:ERROR_TEXT_MAX]


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, Component] = {}
        self._links: dict[str, dict[str, Any]] = {}  # the SMS gateway's SMPP links (sms.link_status)

    def _set(self, name: str, state: State, **changes: Any) -> None:
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            old = self._parts.get(name) or Component(name, state, now)
            since = old.since if old.state is state else now
            self._parts[name] = replace(old, state=state, since=since, **changes)

    def up(self, name: str) -> None:
        self._set(name, State.UP)

    def done(self, name: str) -> None:
        self._set(name, State.DONE)

    def stopped(self, name: str) -> None:
        self._set(name, State.STOPPED)

    def restarting(self, name: str, exc: BaseException) -> None:
        with self._lock:
            restarts = self._parts[name].restarts + 1 if name in self._parts else 1
        self._set(
            name, State.RESTARTING, restarts=restarts, last_error=error_text(exc), last_error_at=dt.datetime.now(dt.UTC)
        )

    def fault(self, name: str, exc: BaseException) -> None:
        """A fault the component survived by itself (it stays up): shown as its last error."""
        with self._lock:
            state = self._parts[name].state if name in self._parts else State.UP
        self._set(name, state, last_error=error_text(exc), last_error_at=dt.datetime.now(dt.UTC))

    def link(self, name: str, state: dict[str, Any]) -> None:
        """An SMPP link's state (bound, throttled, refusing, rebinding...): shown beside the
        components, without making `ok` false (a refusing SMSC is not this process down)."""
        with self._lock:
            self._links[name] = dict(state)

    def components(self) -> list[Component]:
        with self._lock:
            return sorted(self._parts.values(), key=lambda c: c.name)

    def as_json(self) -> dict[str, Any]:
        parts = self.components()
        with self._lock:
            links = {name: dict(state) for name, state in sorted(self._links.items())}
        return {
            "ok": all(c.state in HEALTHY for c in parts),
            "components": {c.name: c.as_json() for c in parts},
            "links": links,
        }
