"""The little Markdown the knowledge base's articles use, as HTML: headings (## and ###),
bulleted and numbered lists, paragraphs and **bold**. Every character of the text is
escaped first, so an article can never carry markup or script of its own."""

from __future__ import annotations

import html
import re

from markupsafe import Markup

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_NUMBERED = re.compile(r"^\d+[.、)]\s+")


def _inline(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=True))


def _kind(line: str) -> tuple[str, str]:
    stripped = line.strip()
    if stripped.startswith("#"):
        return "h", stripped.lstrip("#").strip()
    if stripped[:2] in ("- ", "* ", "+ "):
        return "ul", stripped[2:].strip()
    if _NUMBERED.match(stripped):
        return "ol", _NUMBERED.sub("", stripped, count=1)
    return ("p" if stripped else ""), stripped


def to_html(text: str) -> Markup:
    """Article Markdown as safe HTML (headings become h4, below the page's own)."""
    out: list[str] = []
    open_list = ""
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>".join(_inline(p) for p in paragraph) + "</p>")
            paragraph.clear()

    for line in text.splitlines():
        kind, content = _kind(line)
        if kind != "p":
            flush()
        if open_list and kind != open_list:
            out.append(f"</{open_list}>")
            open_list = ""
        if kind == "h":
            out.append(f"<h4>{_inline(content)}</h4>")
        elif kind in ("ul", "ol"):
            if not open_list:
                out.append(f"<{kind}>")
                open_list = kind
            out.append(f"<li>{_inline(content)}</li>")
        elif kind == "p":
            paragraph.append(content)
    flush()
    if open_list:
        out.append(f"</{open_list}>")
    return Markup("\n".join(out))
