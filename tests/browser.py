"""Debian's chromium driven by Playwright (no browser download), for the console tests."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psutil
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"


async def sign_in(page: Page, base: str, username: str, password: str, lands_on: str | None = None) -> None:
    """The sign-in form, as a person fills it; waits for `base/lands_on`, or for whichever
    page the role lands on."""
    await page.goto(f"{base}/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_url(f"{base}/{lands_on}" if lands_on else re.compile(r".*/(agent|orders|wallboard|audit)$"))


# The softphone's: grant the microphone without asking and feed it a test tone, and accept
# the demo's self-signed certificate on Asterisk's WSS (ivr/webrtc_config.py).
SOFTPHONE_FLAGS = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--ignore-certificate-errors",
)


@asynccontextmanager
async def chromium(extra_args: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        raise AssertionError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    try:
        async with async_playwright() as p:
            # --no-sandbox: the tests run as root, where chromium's sandbox refuses to start.
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage", *extra_args]
            )
            try:
                yield browser
            finally:
                await browser.close()
    finally:
        await _driver_gone()


async def _driver_gone(limit_s: float = 5.0) -> None:
    """Wait for Playwright's driver process to exit. Its reader task reaps it, but
    asyncio.run() may cancel that task first and leave the process to Popen.__del__,
    which warns (an error under our warning filter)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        drivers = [c for c in psutil.Process().children() if "run-driver" in " ".join(_cmdline(c))]
        if not drivers:
            return
        await asyncio.sleep(0.05)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return list(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []
