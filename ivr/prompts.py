"""`hotline prompts build`: the catalogue's texts to 8 kHz mono 16-bit WAV files.

Speech comes from pyttsx3 with the espeak-ng driver (voice `sit/cmn` for Mandarin). Two
quirks seen here shape the code: pyttsx3 2.99 writes no file for text of two or more
sentences, and a file may appear only after `runAndWait()` has returned. So each text
is spoken sentence by sentence, each file is awaited, and the pieces are joined and
resampled with sox. A manifest of text hashes means only changed prompts are rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ivr.catalogue import Catalogue
from ivr.dialplan import MOH_DIR
from ivr.errors import PromptBuildError
from ivr.hold_music import write_hold_music

log = logging.getLogger(__name__)
VOICES = {"zh": "sit/cmn", "en": "en"}
SAMPLE_RATE = 8000
RECIPE = "pyttsx3-espeak-ng/8k-mono-16/v1"  # change to force a rebuild of everything
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s")
# Plausible length: at least 0.15 s of audio, at most 0.5 s per character plus 2 s.
MIN_SECONDS = 0.15
SILENCE_ID = "sys.silence"


@dataclass(frozen=True)
class BuildReport:
    built: int
    unchanged: int
    files: int


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def check_wav(path: Path, text: str) -> None:
    """Raise PromptBuildError unless the file is 8 kHz mono 16-bit with a plausible length."""
    try:
        with wave.open(str(path), "rb") as w:
            fmt = (w.getframerate(), w.getnchannels(), w.getsampwidth())
            seconds = w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error, EOFError) as exc:
        raise PromptBuildError(f"{path}: not a readable WAV file: {exc}") from exc
    if fmt != (SAMPLE_RATE, 1, 2):
        raise PromptBuildError(f"{path}: format {fmt}, expected (8000 Hz, mono, 16-bit)")
    longest = 2.0 + 0.5 * len(text)
    if not MIN_SECONDS <= seconds <= longest:
        raise PromptBuildError(f"{path}: {seconds:.2f} s of audio for {len(text)} characters is implausible")


class Synthesizer:
    """pyttsx3 with one engine per process; speaks one sentence into one file."""

    def __init__(self) -> None:
        import pyttsx3  # imported late: the serving path never needs it

        try:
            self.engine: Any = pyttsx3.init("espeak")
            # The espeak driver print()s "Audio saved to ..." from espeak's callback, on its
            # own schedule; send that to our debug log instead of the terminal.
            from pyttsx3.drivers import espeak as espeak_driver

            espeak_driver.print = lambda *a, **_k: log.debug("pyttsx3: %s", " ".join(map(str, a)))
        except (RuntimeError, OSError, ImportError) as exc:
            raise PromptBuildError(f"pyttsx3 could not start espeak-ng ({exc}); apt-get install espeak-ng") from exc

    def speak(self, text: str, voice: str, out: Path, attempts: int = 3) -> None:
        self.engine.setProperty("voice", voice)
        for _ in range(attempts):
            out.unlink(missing_ok=True)
            self.engine.save_to_file(text, str(out))
            self.engine.runAndWait()
            if _wait_for_file(out, timeout_s=5.0):
                return
        raise PromptBuildError(f"espeak-ng wrote no audio for {text!r}")


def _wait_for_file(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size > 44 and size == last:
            return True
        last = size
        time.sleep(0.05)
    return False


def _convert(pieces: list[Path], out: Path) -> None:
    sox = shutil.which("sox")
    if sox is None:
        raise PromptBuildError("sox is not installed: apt-get install sox")
    tmp = out.with_suffix(".tmp.wav")
    cmd = [sox, *map(str, pieces), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PromptBuildError(f"sox failed for {out.name}: {done.stderr.strip()}")
    tmp.replace(out)


def write_silence(path: Path, seconds: float = 0.1) -> None:
    """A short silence: GET DATA needs a file to play while it reads the rest of an entry
    whose first key interrupted a prompt (the Debian root ships no core sounds)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(b"\x00\x00" * int(SAMPLE_RATE * seconds))


def fingerprint(text: str, lang: str) -> str:
    return hashlib.sha256(f"{RECIPE}|{VOICES[lang]}|{text}".encode()).hexdigest()[:16]


def build(catalogue: Catalogue, out_dir: Path, *, force: bool = False) -> BuildReport:
    """Build every prompt whose text (or recipe) changed; check every file after."""
    manifest_path = out_dir / "manifest.json"
    manifest: dict[str, str] = {}
    if manifest_path.exists() and not force:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    synth: Synthesizer | None = None
    built = unchanged = 0
    for lang in VOICES:
        (out_dir / lang).mkdir(parents=True, exist_ok=True)
        for pid, text in catalogue.items(lang):
            target = out_dir / lang / f"{pid}.wav"
            key = f"{lang}/{pid}"
            if manifest.get(key) == fingerprint(text, lang) and target.exists():
                unchanged += 1
                continue
            synth = synth or Synthesizer()
            speak_into(synth, text, lang, target)
            manifest[key] = fingerprint(text, lang)
            built += 1
            manifest_path.write_text(json.dumps(manifest, indent=0, sort_keys=True), encoding="utf-8")
    for lang in VOICES:
        write_silence(out_dir / lang / f"{SILENCE_ID}.wav")
    write_hold_music(out_dir / MOH_DIR / "hold.wav")
    files = 0
    for lang in VOICES:
        for pid, text in catalogue.items(lang):
            check_wav(out_dir / lang / f"{pid}.wav", text)
            files += 1
    log.info("prompts: %d built, %d unchanged, %d checked", built, unchanged, files)
    return BuildReport(built, unchanged, files)


def speak_into(synth: Synthesizer, text: str, lang: str, target: Path) -> None:
    """`text` sentence by sentence (pyttsx3 writes nothing for two at once), joined into
    `target` at 8 kHz (prompts here, notices' speech in ivr/notice_speech.py)."""
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmp:
        pieces = []
        for i, sentence in enumerate(sentences(text)):
            piece = Path(tmp) / f"{i}.wav"
            synth.speak(sentence, VOICES[lang], piece)
            pieces.append(piece)
        _convert(pieces, target)
