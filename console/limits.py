"""What one user or one address may hold of the console at once, and the threads that
check passwords.

A password check is 16 MiB of scrypt for ~50 ms of a core: a few run at once, in threads
of their own, so a flood of sign-ins waits for those and never takes the threads the
rest of the console (or anything else in `hotline serve`) runs on. Sign-ins under way and
live pages open are counted per user and per address, in memory (they are this process's
own connections); over a cap the request is refused with 429 and says why.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from console.errors import TooBusy
from core.settings import WebSettings

T = TypeVar("T")


class Limits:
    def __init__(self, web: WebSettings) -> None:
        self.web = web
        self._checks = ThreadPoolExecutor(max_workers=web.sign_ins_at_once, thread_name_prefix="sign-in")
        self._gate = asyncio.Semaphore(web.sign_ins_at_once)
        self._sign_ins: Counter[tuple[str, str]] = Counter()
        self._streams: Counter[tuple[str, str]] = Counter()

    async def check_password(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn` (the scrypt of a sign-in) in the sign-in threads, a few at a time."""
        async with self._gate:
            return await asyncio.get_running_loop().run_in_executor(self._checks, functools.partial(fn, *args))

    @contextmanager
    def sign_in(self, address: str, username: str) -> Iterator[None]:
        with _held(
            self._sign_ins,
            (("all", ""), self.web.sign_ins_under_way, "sign-ins under way"),
            (("address", address), self.web.sign_ins_per_address_at_once, f"sign-ins from {address}"),
            (("user", username), self.web.sign_ins_per_user_at_once, f"sign-ins for {username[:32]!r}"),
        ):
            yield

    @contextmanager
    def stream(self, address: str, username: str) -> Iterator[None]:
        with _held(
            self._streams,
            (("address", address), self.web.streams_per_address, f"live pages open from {address}"),
            (("user", username), self.web.streams_per_user, f"live pages open for {username}"),
        ):
            yield

    def close(self) -> None:
        self._checks.shutdown(wait=False, cancel_futures=True)


@contextmanager
def _held(counts: Counter[tuple[str, str]], *caps: tuple[tuple[str, str], int, str]) -> Iterator[None]:
    for key, cap, what in caps:
        if counts[key] >= cap:
            raise TooBusy(f"too many {what} at once (at most {cap}): close one or try again shortly")
    for key, _, _ in caps:
        counts[key] += 1
    try:
        yield
    finally:
        for key, _, _ in caps:
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
