"""The FastAGI script `notice`: a notice call the resident answered (ivr/notice_calls.py).

They hear who calls (the hotline's name), then the notice, spoken from its rendered text
(ivr/notice_speech.py), then "1 to hear it again, 2 to confirm, 9 to stop notice calls".
Keys are taken while the notice plays too. What they did ends the call's step:

- 2: confirmed, the voice channel's "delivered";
- no key (played to its end, or hung up once it began, or an answering machine's
  greeting that outlasted it): heard;
- 9: the number goes on `voice_optouts`, and the notice moves to the next channel;
- hung up during the opening, before the notice began: an attempt like a no answer;
- its speech not there to play (Asterisk reads another directory): an attempt too, logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Final

from core.db import Store
from core.errors import StoreUnavailable
from core.masking import mask_phone
from core.settings import NoticeSettings
from core.states import VoiceState
from ivr import dialplan
from ivr.agi import interrupting_key, quote
from ivr.errors import CallerHungUp
from ivr.fastagi import AgiChannel, AgiVoice, Route
from ivr.notice_calls import NoticeCall, end_answered, opening, take_answered
from ivr.notice_speech import speech_name, spoken

log = logging.getLogger(__name__)
KEYS: Final = "129"
MAX_PLAYS: Final = 3  # the notice, and at most two repeats
MENU_TIMEOUT_MS: Final = 6000
MENU_TRIES: Final = 2  # a key that is not 1, 2 or 9 hears the menu once more


class SpeechNotPlayed(Exception):
    """Asterisk could not play a notice's speech (its file is not where Asterisk reads)."""


class NoticeOutcome:
    """What the call came to so far: a hang-up keeps the last thing decided."""

    def __init__(self) -> None:
        self.state = VoiceState.UNANSWERED
        self.word = "hung_up"  # the history's word for an attempt that ends unanswered
        self.detail = "hung up during the opening, before the notice"
        self.decided = False

    def began(self) -> None:
        self.state, self.detail = VoiceState.HEARD, "hung up while the notice played"

    def decide(self, state: VoiceState, detail: str) -> None:
        self.state, self.detail, self.decided = state, detail, True


async def _stream(channel: AgiChannel, path: str, keys: str) -> str | None:
    reply = await channel.command(f"STREAM FILE {quote(path)} {quote(keys)}")
    if reply.failed:
        await channel.probe()  # CallerHungUp if gone; else the file is missing
        log.error("notice call on %s: could not play %s", channel.env.channel, path)
        raise SpeechNotPlayed(path)
    return interrupting_key(reply, keys)


async def converse(voice: AgiVoice, call: NoticeCall, notices: NoticeSettings, outcome: NoticeOutcome) -> None:
    """The call after the answer, as the module doc says; `outcome` follows along."""
    lang = call.language
    ch = voice.ch
    base = notices.speech_asterisk_dir.rstrip("/")
    said = opening(notices, lang)
    await _stream(ch, f"{base}/{speech_name(said, lang)}", "")
    outcome.began()
    text_path = f"{base}/{speech_name(spoken(call.text, lang), lang)}"
    for play in range(1, MAX_PLAYS + 1):
        key = await _stream(ch, text_path, KEYS)
        for _ in range(MENU_TRIES):
            if key in tuple(KEYS):  # ("" is a `#` alone: no choice)
                break
            key = await voice.collect(["notice.menu"], lang, 1, MENU_TIMEOUT_MS)
            if key is None:  # no key within the menu's time: heard
                break
        heard = f"heard {play} time{'s' if play > 1 else ''}"
        if key == "2":
            outcome.decide(VoiceState.CONFIRMED, f"pressed 2, {heard}")
            await voice.play(["notice.thanks"], lang)
            return
        if key == "9":
            outcome.decide(VoiceState.OPTED_OUT, f"pressed 9 (no more notice calls), {heard}")
            await voice.play(["notice.optout"], lang)
            return
        if key != "1":
            outcome.decide(VoiceState.HEARD, f"no key, {heard}")
            await voice.play(["notice.goodbye"], lang)
            return
    outcome.decide(VoiceState.HEARD, f"heard {MAX_PLAYS} times, not confirmed")
    await voice.play(["notice.goodbye"], lang)


def notice_route(store: Store, notices: NoticeSettings) -> Route:
    async def route(channel: AgiChannel) -> None:
        reply = await channel.command(f"GET VARIABLE {dialplan.VAR_NOTICE_CALL}")
        raw = reply.data if reply.result == "1" else ""
        if not raw.isdigit():
            log.warning("notice script on %s without a notice call: hanging up", channel.env.channel)
            return
        try:
            call = await asyncio.to_thread(take_answered, store, int(raw))
        except StoreUnavailable as exc:
            log.error("notice call %s answered but its notice cannot be read (%s): hanging up", raw, exc)
            return
        if call is None:
            log.warning("notice call %s answered but not under way (ended already): hanging up", raw)
            return
        outcome = NoticeOutcome()
        try:
            await converse(AgiVoice(channel), call, notices, outcome)
        except CallerHungUp:
            if not outcome.decided:
                log.info("notice call %d: hung up (%s)", call.id, outcome.detail)
        except SpeechNotPlayed:
            # Nothing was said: an attempt, tried again (and after the last, the next channel).
            outcome.state, outcome.word = VoiceState.UNANSWERED, "not_played"
            outcome.detail = f"its speech could not be played (not in {notices.speech_asterisk_dir})"
        finally:
            try:
                end = functools.partial(end_answered, word=outcome.word)
                word = await asyncio.to_thread(end, store, call, outcome.state, outcome.detail, notices)
            except StoreUnavailable as exc:
                # The call stays `calling`: the dialler reclaims it later as an attempt.
                log.error("notice call %d: outcome %s not stored (%s)", call.id, outcome.state, exc)
            else:
                log.info("notice call %d to %s: %s (%s)", call.id, mask_phone(call.number), word, outcome.detail)

    return route
