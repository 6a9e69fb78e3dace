"""A SIP password guesser, as the common tools are (sipvicious' svcrack: a Python script):
from one address, REGISTER as a phone, take the 401 challenge, answer it with the next
password of a list (RFC 2617/7616 MD5 digest, qop=auth), read the answer; many at once.

SIPp cannot do this: its [authentication] keyword takes one password for the whole run
(`-ap`), and a field cannot be nested in it. Each attempt's outcome is what came back to
the REGISTER with credentials: 401 (wrong password: checked and refused), 200 (found),
403, or None (nothing within `wait_s`: the address is banned and its packets dropped).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

_CHALLENGE: Final = re.compile(r'(\w+)="?([^",]*)"?')


@dataclass(frozen=True)
class Guesses:
    answers: tuple[int | None, ...]  # one per password, in order
    seconds: float

    def count(self, code: int | None) -> int:
        return sum(a == code for a in self.answers)

    @property
    def counted(self) -> Counter[int | None]:
        return Counter(self.answers)

    def first_unanswered(self) -> int | None:
        """How many guesses were sent before the first that got no answer."""
        return next((i for i, a in enumerate(self.answers) if a is None), None)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_authorization(user: str, password: str, challenge: str, uri: str) -> str:
    """An Authorization header's value answering a Digest challenge (MD5, qop=auth)."""
    params = dict(_CHALLENGE.findall(challenge.removeprefix("Digest").strip()))
    realm, nonce = params["realm"], params["nonce"]
    ha1, ha2 = _md5(f"{user}:{realm}:{password}"), _md5(f"REGISTER:{uri}")
    cnonce, nc = secrets.token_hex(8), "00000001"
    response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    value = (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}", '
        f'algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={nc}'
    )
    if "opaque" in params:
        value += f', opaque="{params["opaque"]}"'
    return value


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Queue[str]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        text = data.decode("utf-8", errors="replace")
        match = re.search(r"^Call-ID:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
        if match and match.group(1) in self.waiting:
            self.waiting[match.group(1)].put_nowait(text)


class _Guesser:
    def __init__(
        self, transport: asyncio.DatagramTransport, endpoint: _Endpoint, target: tuple[str, int], user: str
    ) -> None:
        self.transport, self.endpoint, self.target, self.user = transport, endpoint, target, user
        sockname = transport.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1]))
        self.uri = f"sip:{target[0]}:{target[1]}"

    def _register(self, call_id: str, cseq: int, authorization: str | None) -> bytes:
        host, port = self.local
        lines = [
            f"REGISTER {self.uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(8)}",
            f"From: <sip:{self.user}@{self.target[0]}>;tag={call_id[:8]}",
            f"To: <sip:{self.user}@{self.target[0]}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
            f"Contact: <sip:{self.user}@{host}:{port}>",
            "Max-Forwards: 70",
            "Expires: 60",
            "User-Agent: hotline-tests-guesser",
        ]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()

    async def _final(self, queue: asyncio.Queue[str], cseq: int, wait_s: float) -> str | None:
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                text = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                return None
            code = int(text.split(" ", 2)[1])
            if code >= 200 and re.search(rf"^CSeq:\s*{cseq} REGISTER", text, re.MULTILINE | re.IGNORECASE):
                return text
        return None

    async def attempt(self, password: str, wait_s: float) -> int | None:
        call_id = secrets.token_hex(12)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.endpoint.waiting[call_id] = queue
        try:
            self.transport.sendto(self._register(call_id, 1, None), self.target)
            first = await self._final(queue, 1, wait_s)
            if first is None or " 401 " not in first.split("\r\n", 1)[0]:
                return None if first is None else int(first.split(" ", 2)[1])
            challenges = re.findall(r"^WWW-Authenticate:\s*(.+?)\s*$", first, re.MULTILINE | re.IGNORECASE)
            challenge = next((c for c in challenges if "MD5" in c.upper()), challenges[0])
            authorization = digest_authorization(self.user, password, challenge, self.uri)
            self.transport.sendto(self._register(call_id, 2, authorization), self.target)
            second = await self._final(queue, 2, wait_s)
            return None if second is None else int(second.split(" ", 2)[1])
        finally:
            del self.endpoint.waiting[call_id]


async def _guess(
    target: tuple[str, int], user: str, passwords: Sequence[str], source: str, rate_per_s: float, wait_s: float
) -> Guesses:
    loop = asyncio.get_running_loop()
    transport, endpoint = await loop.create_datagram_endpoint(_Endpoint, local_addr=(source, 0))
    try:
        guesser = _Guesser(transport, endpoint, target, user)
        started = time.monotonic()
        tasks = []
        for n, password in enumerate(passwords):
            await asyncio.sleep(max(0.0, started + n / rate_per_s - time.monotonic()))
            tasks.append(asyncio.create_task(guesser.attempt(password, wait_s)))
        answers = await asyncio.gather(*tasks)
        return Guesses(tuple(answers), time.monotonic() - started)
    finally:
        transport.close()


def guess(
    target: tuple[str, int],
    user: str,
    passwords: Sequence[str],
    *,
    source: str,
    rate_per_s: float = 200.0,
    wait_s: float = 2.0,
) -> Guesses:
    """Try each password for `user` from `source`, starting `rate_per_s` a second."""
    return asyncio.run(_guess(target, user, passwords, source, rate_per_s, wait_s))
