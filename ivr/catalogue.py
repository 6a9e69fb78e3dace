"""The prompt catalogue: every prompt's id and its Mandarin and English text."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ivr.errors import CatalogueError

DEFAULT_CATALOGUE = Path(__file__).resolve().parent.parent / "prompts" / "catalogue.toml"
LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Catalogue:
    texts: dict[str, dict[str, str]]  # id -> {lang: text}

    def has(self, prompt_id: str, lang: str) -> bool:
        return bool(self.texts.get(prompt_id, {}).get(lang))

    def text(self, prompt_id: str, lang: str) -> str:
        try:
            value = self.texts[prompt_id][lang]
        except KeyError:
            raise CatalogueError(f"prompt {prompt_id!r} has no {lang} text") from None
        if not value:
            raise CatalogueError(f"prompt {prompt_id!r} has no {lang} text")
        return value

    def items(self, lang: str) -> list[tuple[str, str]]:
        return [(pid, t[lang]) for pid, t in sorted(self.texts.items()) if t.get(lang)]


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> Catalogue:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    texts: dict[str, dict[str, str]] = {}
    for pid, entry in raw.get("prompts", {}).items():
        unknown = set(entry) - set(LANGUAGES)
        if unknown:
            raise CatalogueError(f"{path}: prompt {pid!r} has unknown keys {sorted(unknown)}")
        if not any(entry.get(lang) for lang in LANGUAGES):
            raise CatalogueError(f"{path}: prompt {pid!r} has no text")
        texts[pid] = {lang: str(entry.get(lang, "")) for lang in LANGUAGES}
    return Catalogue(texts)
