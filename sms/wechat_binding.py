"""Binding a resident's WeChat account (the official account's openid for them) to their ID
number, proved by a code sent by SMS to the phone the business system holds for them.

The code goes as a `wechat_bind_code` business event (the gateway texts it like any
security notice) and is kept here only as an HMAC under `security.pin_pepper`, with the
tries made. A code lasts `wechat.bind_code_minutes`; `wechat.bind_code_tries` wrong entries
end it. Every request counts, whatever its outcome, against three limits over the last
hour: per WeChat account (nobody looks up many ID numbers), per ID number (nobody floods one
phone with codes, from however many accounts) and for the whole hotline (nobody spends the
SMS budget on codes, from however many accounts; `wechat.bind_codes_per_hour`).

The page answers an ID number with a registered phone, one without a phone and one nobody
holds the same way (as the IVR does: who holds which ID number is not told to whoever
types one): "a code went to the phone registered for it, if any", and a code to enter. For
a number without a phone that code is one nobody was sent (a random hash no code matches),
so entering codes goes the same way too: wrong, tries left, spent.

Binding, unbinding and unfollowing are audited (`change:wechat_binding`, actor
`wechat:<masked openid>`). Openids, ID numbers and phones reach logs only masked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Final, cast

from sqlalchemy import Connection, Table, delete, func, insert, select, true, update

from core import audit, idnumber
from core.business import BusinessPort
from core.db import Store, pg_lock, upsert
from core.masking import mask_id, mask_openid, mask_phone
from core.models import BusinessEvent, WeChatBindCode, WeChatBinding, WeChatBindRequest, utcnow
from core.settings import WeChatSettings
from sms.errors import BadIdNumber, CodesForAllSpent, NoCodePending, TooManyCodes, WrongCode

log = logging.getLogger(__name__)
EVENT_TYPE: Final = "wechat_bind_code"
ACTION: Final = "change:wechat_binding"
HOUR: Final = dt.timedelta(hours=1)
KEEP_REQUESTS: Final = dt.timedelta(days=1)
# pg_advisory_xact_lock's key for "counting bind-code requests" (no other lock uses it).
REQUESTS_LOCK: Final = 0x12333_B1D0
CODES = cast(Table, WeChatBindCode.__table__)
BINDINGS = cast(Table, WeChatBinding.__table__)
REQUESTS = cast(Table, WeChatBindRequest.__table__)
EVENTS = cast(Table, BusinessEvent.__table__)


def actor(openid: str) -> str:
    """How a resident acting through WeChat is named in the audit log."""
    return f"wechat:{mask_openid(openid)}"


def code_hash(pepper: str, openid: str, subject_id: str, code: str) -> str:
    """The code as kept: tied to the account and the ID number it was sent for."""
    return hmac.new(pepper.encode(), f"wechat-bind:{openid}:{subject_id}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Binder:
    store: Store
    port: BusinessPort
    settings: WeChatSettings
    pepper: str

    def request_code(self, openid: str, id_number: str, now: dt.datetime | None = None) -> None:
        """Send a code to the registered phone of `id_number`, if it has one; either way this
        account now waits for a code (BadIdNumber, TooManyCodes before anything is sent)."""
        now = now or utcnow()
        id_number = id_number.strip().upper()
        problem = idnumber.problem(id_number)
        if problem is not None:
            raise BadIdNumber(problem.value)
        request_id = self._count_request(openid, id_number, now)
        phones = self.port.recipients("person", [id_number]).get(id_number, [])
        resident_id = self.port.resident_of(id_number) if phones else None
        code = f"{secrets.randbelow(10**6):06d}"
        sent = bool(phones) and resident_id is not None
        # Without a phone: a hash no code has (a random one), so the page goes on the same way.
        kept = code_hash(self.pepper, openid, id_number, code) if sent else secrets.token_hex(32)
        with self.store.transaction() as c:
            audit.lock_chain(c)
            values = {"openid": openid, "subject_id": id_number, "code_hash": kept, "requested_at": now, "tries": 0}
            c.execute(upsert(c, CODES).values(values).on_conflict_do_update(index_elements=["openid"], set_=values))
            c.execute(update(REQUESTS).where(REQUESTS.c.id == request_id).values(sent=sent))
            if sent:
                self._send_code(c, openid, id_number, code, request_id, now)
                detail = f"code sent to {mask_phone(phones[0])} for {mask_openid(openid)}"
                audit.record(
                    c, actor=actor(openid), action="send:wechat_bind_code", resident_id=resident_id, detail=detail
                )
        if sent:
            log.info("wechat bind: code sent for %s to %s", mask_id(id_number), mask_phone(phones[0]))
        else:
            log.info(
                "wechat bind: no phone for %s (asked by %s), no code sent", mask_id(id_number), mask_openid(openid)
            )

    def _send_code(
        self, c: Connection, openid: str, id_number: str, code: str, request_id: int, now: dt.datetime
    ) -> None:
        payload = {"code": code, "minutes": self.settings.bind_code_minutes}
        c.execute(
            insert(EVENTS).values(
                event_type=EVENT_TYPE,
                subject_kind="person",
                subject_id=id_number,
                payload=payload,
                idempotency_key=f"wechat_bind:{request_id}",
                created_at=now,
                status="pending",
            )
        )

    def _count_request(self, openid: str, id_number: str, now: dt.datetime) -> int:
        """Record the request, or TooManyCodes if this account or this ID number had its fill."""
        since = now - HOUR
        with self.store.transaction() as c:
            # Counted and recorded under one lock, so two requests at once cannot both pass
            # the limit's last place: PostgreSQL's advisory lock for bind requests, SQLite's
            # write lock (taken by this first write: the sweep of old requests).
            pg_lock(c, REQUESTS_LOCK)
            c.execute(delete(REQUESTS).where(REQUESTS.c.requested_at < now - KEEP_REQUESTS))
            by_openid = _count(c, REQUESTS.c.openid == openid, since)
            by_id = _count(c, REQUESTS.c.subject_id == id_number, since)
            in_all = _count(c, true(), since)
            if in_all >= self.settings.bind_codes_per_hour:
                log.warning(
                    "wechat bind: %d codes asked for across the hotline this hour (wechat.bind_codes_per_hour), "
                    "refused",
                    in_all,
                )
                raise CodesForAllSpent("the hotline")
            if by_openid >= self.settings.bind_codes_per_openid_per_hour:
                log.warning("wechat bind: %s asked for %d codes this hour, refused", mask_openid(openid), by_openid)
                raise TooManyCodes("this WeChat account")
            if by_id >= self.settings.bind_codes_per_id_per_hour:
                log.warning("wechat bind: %d codes for %s this hour, refused", by_id, mask_id(id_number))
                raise TooManyCodes("this ID number")
            row = c.execute(
                insert(REQUESTS)
                .values(openid=openid, subject_id=id_number, requested_at=now, sent=False)
                .returning(REQUESTS.c.id)
            ).one()
        return int(row.id)

    def confirm(self, openid: str, code: str, now: dt.datetime | None = None) -> str:
        """Bind `openid` to the ID number its pending code was sent for; returns that number.
        WrongCode (tries left) or NoCodePending (expired, out of tries, none asked for)."""
        now = now or utcnow()
        code = code.strip()
        with self.store.transaction() as c:
            pending = c.execute(select(CODES).where(CODES.c.openid == openid)).first()
            live = pending is not None and now - pending.requested_at < self._lifetime
            spent = pending is None or not live or pending.tries >= self.settings.bind_code_tries
            counted = 0
            if spent or pending is None:
                c.execute(delete(CODES).where(CODES.c.openid == openid))
            else:
                # Counted before it is compared, under a condition: two tries at once both count.
                counted = c.execute(
                    update(CODES)
                    .where(CODES.c.openid == openid, CODES.c.tries == pending.tries)
                    .values(tries=CODES.c.tries + 1)
                ).rowcount
        if spent or pending is None:
            raise NoCodePending("no code pending")
        right = hmac.compare_digest(code_hash(self.pepper, openid, pending.subject_id, code), pending.code_hash)
        if not counted:
            raise WrongCode(max(0, self.settings.bind_code_tries - pending.tries - 1))
        if not right:
            left = self.settings.bind_code_tries - pending.tries - 1
            log.info("wechat bind: wrong code from %s, %d tries left", mask_openid(openid), left)
            raise WrongCode(left)
        self._bind(openid, pending.subject_id, pending.code_hash, now)
        return str(pending.subject_id)

    @property
    def _lifetime(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.bind_code_minutes)

    def _bind(self, openid: str, subject_id: str, used_hash: str, now: dt.datetime) -> None:
        resident_id = self.port.resident_of(subject_id)
        with self.store.transaction() as c:
            audit.lock_chain(c)
            # The code is spent once: a second confirm racing this one finds it gone.
            spent = c.execute(delete(CODES).where(CODES.c.openid == openid, CODES.c.code_hash == used_hash)).rowcount
            if not spent:
                raise NoCodePending("the code was used already")
            before = c.execute(
                select(BINDINGS).where((BINDINGS.c.openid == openid) | (BINDINGS.c.subject_id == subject_id))
            ).all()
            c.execute(delete(BINDINGS).where((BINDINGS.c.openid == openid) | (BINDINGS.c.subject_id == subject_id)))
            c.execute(insert(BINDINGS).values(subject_id=subject_id, openid=openid, bound_at=now))
            notes = [f"bound {mask_openid(openid)} to {mask_id(subject_id)}"]
            notes += [f"replaced {mask_openid(b.openid)} of {mask_id(b.subject_id)}" for b in before]
            audit.record(c, actor=actor(openid), action=ACTION, resident_id=resident_id, detail="; ".join(notes))
        log.info("wechat bind: %s", "; ".join(notes))

    def waiting(self, openid: str, now: dt.datetime | None = None) -> bool:
        """Whether a code sent for this WeChat account can still be entered."""
        since = (now or utcnow()) - self._lifetime
        with self.store.transaction() as c:
            row = c.execute(select(CODES.c.tries).where(CODES.c.openid == openid, CODES.c.requested_at > since)).first()
        return row is not None and row.tries < self.settings.bind_code_tries

    def bound_to(self, openid: str) -> str | None:
        """The ID number this WeChat account is bound to, if any."""
        with self.store.transaction() as c:
            row = c.execute(select(BINDINGS.c.subject_id).where(BINDINGS.c.openid == openid)).first()
        return None if row is None else str(row.subject_id)

    def unbind(self, openid: str, why: str) -> bool:
        """Drop the binding of this WeChat account (and any code it waits for); audited.
        False if it had none."""
        subject_id = self.bound_to(openid)
        resident_id = self.port.resident_of(subject_id) if subject_id else None
        with self.store.transaction() as c:
            audit.lock_chain(c)
            c.execute(delete(CODES).where(CODES.c.openid == openid))
            gone = c.execute(
                delete(BINDINGS).where(BINDINGS.c.openid == openid).returning(BINDINGS.c.subject_id)
            ).first()
            if gone is None:
                return False
            detail = f"unbound {mask_openid(openid)} from {mask_id(gone.subject_id)} ({why})"
            audit.record(c, actor=actor(openid), action=ACTION, resident_id=resident_id, detail=detail)
        log.info("wechat bind: %s", detail)
        return True


def _count(c: Connection, who: object, since: dt.datetime) -> int:
    """Requests since `since` matching `who` (a condition on REQUESTS; `true()` for all)."""
    query = select(func.count()).select_from(REQUESTS).where(who, REQUESTS.c.requested_at >= since)  # type: ignore[arg-type]
    return int(c.execute(query).scalar_one())
