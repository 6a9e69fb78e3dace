"""`hotline prompts build` with the real pyttsx3/espeak-ng: files exist, sound plausible,
and only changed texts are rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.catalogue import load_catalogue
from ivr.errors import PromptBuildError
from ivr.prompts import build, check_wav, sentences, wav_seconds, write_silence


def _catalogue(tmp_path: Path, welcome: str) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(
        f'[prompts."welcome"]\nzh = "{welcome}"\nen = "Welcome. Press one."\n[prompts."num.wan"]\nzh = "万"\n',
        encoding="utf-8",
    )
    return path


def test_build_checks_and_rebuilds_only_what_changed(tmp_path: Path) -> None:
    out = tmp_path / "build"
    first = build(load_catalogue(_catalogue(tmp_path, "您好。欢迎致电12333。")), out)
    assert (first.built, first.files) == (3, 3)
    zh = out / "zh" / "welcome.wav"
    # Two sentences (pyttsx3 alone would write nothing) give more audio than one.
    assert wav_seconds(zh) > wav_seconds(out / "zh" / "num.wan.wav") + 0.5
    assert not (out / "en" / "num.wan.wav").exists()
    again = build(load_catalogue(_catalogue(tmp_path, "您好。欢迎致电12333。")), out)
    assert (again.built, again.unchanged) == (0, 3)
    changed = build(load_catalogue(_catalogue(tmp_path, "您好，欢迎。")), out)
    assert (changed.built, changed.unchanged) == (1, 2)


def test_implausible_files_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    write_silence(short, seconds=0.01)
    with pytest.raises(PromptBuildError, match="implausible"):
        check_wav(short, "一段很长的提示语")
    (tmp_path / "junk.wav").write_bytes(b"not audio")
    with pytest.raises(PromptBuildError, match="not a readable WAV"):
        check_wav(tmp_path / "junk.wav", "x")


def test_sentences() -> None:
    assert sentences("您好。欢迎，再见！") == ["您好。", "欢迎，再见！"]
    assert sentences("Welcome. Press 1.") == ["Welcome.", "Press 1."]
