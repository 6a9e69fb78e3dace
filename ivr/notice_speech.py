"""A notice's text as speech for its call: spoken words, then a WAV file kept by digest.

The text is the one the gateway rendered for the resident (sms/templates.py), written to be
read. Said aloud by espeak-ng as it stands, `3,456.78元` would be digits and a comma, so the
amounts, months, dates and times in it are first put in words with the IVR's own number
reader (ivr/speech.py): 三千四百五十六元七角八分, 二零二六年十一月. Other digit runs (a card's
last four, a phone number) are read digit by digit; the SMS signature is dropped, the call's
opening already says who calls.

Speech comes from pyttsx3 with espeak-ng, sentence by sentence, joined and resampled by sox
to 8 kHz mono (ivr/prompts.py's recipe and its quirks). Files are named by a digest of the
spoken words and their voice, so a text shared by many residents is made once, and a file
made is never made again. One worker thread owns the pyttsx3 engine (it is not thread-safe).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from ivr import speech
from ivr.errors import PromptBuildError
from ivr.prompts import RECIPE, VOICES, Synthesizer, check_wav, speak_into

log = logging.getLogger(__name__)

_SIGNATURE: Final = re.compile(r"【[^】]{0,20}】")
_MOMENT: Final = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日(\d{2}):(\d{2})")
_DATE: Final = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_PERIOD: Final = re.compile(r"(\d{4})年(\d{1,2})月")
_YUAN: Final = re.compile(r"(\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d{2}))?元")
_CNY: Final = re.compile(r"CNY (\d{1,3}(?:,\d{3})*|\d+)(?:\.(\d{2}))?")
_COUNT: Final = re.compile(r"(\d{1,6})(个月|个工作日|个|次|天|年|人)")
_DIGITS: Final = re.compile(r"\d+")
# A notice's speech is its opening plus the text; a text that long is no notice of ours.
MAX_CHARS: Final = 600


def _fen(whole: str, cents: str | None) -> int:
    return int(whole.replace(",", "")) * 100 + int(cents or 0)


def spoken(text: str, language: str) -> str:
    """The words to say for a rendered notice text.

    >>> spoken("您2026年11月养老金3,456.78元已发放。【安吉人社】", "zh")
    '您二零二六年十一月养老金三千四百五十六元七角八分已发放。'
    >>> spoken("请于2026年12月5日14:30前到窗口，尾号0371。", "zh")
    '请于二零二六年十二月五日十四点三十分前到窗口，尾号零三七一。'
    >>> spoken("Your pension of CNY 1,200.00 for November 2026 was paid.", "en")
    'Your pension of one thousand two hundred yuan for November 2026 was paid.'
    """
    words = _SIGNATURE.sub("", text).strip()
    if language != "zh":
        return _CNY.sub(lambda m: speech.text(speech.money(_fen(m[1], m[2]), "en"), "en"), words)

    def say(ids: list[str]) -> str:
        return speech.text(ids, "zh")

    def moment(m: re.Match[str]) -> str:
        day = say(speech.date(f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", "zh"))
        minute = int(m[5])
        clock = say(speech.number(int(m[4]), "zh")) + "点" + (say(speech.number(minute, "zh")) + "分" if minute else "")
        return day + clock

    words = _MOMENT.sub(moment, words)
    words = _DATE.sub(lambda m: say(speech.date(f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}", "zh")), words)
    words = _PERIOD.sub(lambda m: say(speech.period(f"{m[1]}-{int(m[2]):02d}", "zh")), words)
    words = _YUAN.sub(lambda m: say(speech.money(_fen(m[1], m[2]), "zh")), words)
    words = _COUNT.sub(lambda m: say(speech.number(int(m[1]), "zh", count=True)) + m[2], words)
    return _DIGITS.sub(lambda m: say(speech.digits(m[0], "zh")), words)


def digest(words: str, language: str) -> str:
    return hashlib.sha256(f"{RECIPE}|{VOICES[language]}|{words}".encode()).hexdigest()[:32]


def speech_name(words: str, language: str) -> str:
    """The file's name without its extension, as STREAM FILE wants it."""
    return f"{language}-{digest(words, language)}"


class NoticeSpeech:
    """Speech files of notices under `directory`, made on demand (see the module doc)."""

    def __init__(self, directory: Path, synthesizer: Callable[[], Synthesizer] = Synthesizer) -> None:
        self.directory = directory
        self._make_synthesizer = synthesizer
        self._synth: Synthesizer | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notice-speech")

    async def ensure(self, text: str, language: str, *, words: str | None = None) -> str:
        """The name of the speech for `text` (spoken() unless `words` are given), made if
        missing. PromptBuildError if espeak-ng or sox cannot make it."""
        said = words if words is not None else spoken(text, language)
        if not said.strip():
            raise PromptBuildError("a notice with nothing to say")
        if len(said) > MAX_CHARS:
            raise PromptBuildError(f"a notice of {len(said)} characters is too long to read out (at most {MAX_CHARS})")
        name = speech_name(said, language)
        target = self.directory / f"{name}.wav"
        if not target.exists():
            await asyncio.get_running_loop().run_in_executor(self._thread, self._make, said, language, target)
        return name

    def _make(self, words: str, language: str, target: Path) -> None:
        if target.exists():  # made while this request waited for the thread
            return
        if self._synth is None:
            self._synth = self._make_synthesizer()
        self.directory.mkdir(parents=True, exist_ok=True)
        # Made beside its place, then moved into it in one step (the same file system): a
        # call never plays half a file, nor one that failed its check.
        made = target.with_suffix(".part.wav")
        try:
            speak_into(self._synth, words, language, made)
            check_wav(made, words)
            made.chmod(0o644)
            made.replace(target)
        finally:
            made.unlink(missing_ok=True)
        log.info("notice speech made: %s (%d characters)", target.name, len(words))

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
