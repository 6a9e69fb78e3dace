"""Articles as a centre already keeps them: Markdown and CSV files, parsed into checked
fields with the line each article starts on. Pure: no store, no files (cases/kb.py reads).

Markdown, either form, in UTF-8:

- front matter (one article per file): a `---` line, `key: value` lines, a `---` line, the body;
- `# title` headings (one article per heading), each followed by `key: value` lines, then the body.

Keys: title, category, tags (comma-separated), effective_date (YYYY-MM-DD), status (draft or
published); the Chinese 标题, 分类, 标签, 生效日期, 状态 too, with `:` or `：`.

CSV: a header naming title, category, tags, effective_date, body (any order; status optional).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass

from cases.errors import BadArticle

MAX_TITLE = 200
MAX_BODY = 6_000  # a form of this many Chinese characters fits the console's 64 KB request limit
MAX_CATEGORY = 40
MAX_TAGS = 200
IMPORT_STATUSES = ("draft", "published")
KEYS = {
    "title": "title",
    "标题": "title",
    "category": "category",
    "分类": "category",
    "类别": "category",
    "tags": "tags",
    "标签": "tags",
    "effective_date": "effective_date",
    "effective date": "effective_date",
    "effective": "effective_date",
    "生效日期": "effective_date",
    "status": "status",
    "状态": "status",
}
CSV_COLUMNS = ("title", "category", "tags", "effective_date", "body")
_META = re.compile(r"^\s*(?:[-*>]\s*)?([^:：]{1,20}?)\s*[:：]\s*(.*?)\s*$")
_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")


@dataclass(frozen=True)
class ArticleFields:
    """An article's text and metadata, checked (`checked` raises BadArticle)."""

    title: str
    body: str
    category: str
    tags: tuple[str, ...]
    effective_date: dt.date

    @property
    def tags_text(self) -> str:
        return ",".join(self.tags)


def parse_tags(text: str) -> tuple[str, ...]:
    parts = re.split(r"[,，、;；]", text)
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


def parse_date(text: str) -> dt.date:
    m = _DATE.match(text.strip())
    try:
        if m is None:
            raise ValueError
        return dt.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise BadArticle(f"effective date {text.strip()!r} is not a date (YYYY-MM-DD)") from None


def checked(title: str, body: str, category: str, tags: str, effective_date: str | dt.date) -> ArticleFields:
    title, body, category = title.strip(), body.strip(), category.strip()
    if not title:
        raise BadArticle("the title is empty")
    if len(title) > MAX_TITLE:
        raise BadArticle(f"the title is longer than {MAX_TITLE} characters")
    if not body:
        raise BadArticle(f"article {title!r} has no text")
    if len(body) > MAX_BODY:
        raise BadArticle(f"the text of {title!r} is longer than {MAX_BODY} characters")
    if not category:
        raise BadArticle(f"article {title!r} has no category")
    if len(category) > MAX_CATEGORY:
        raise BadArticle(f"the category is longer than {MAX_CATEGORY} characters")
    tag_list = parse_tags(tags)
    if len(",".join(tag_list)) > MAX_TAGS:
        raise BadArticle(f"the tags are longer than {MAX_TAGS} characters")
    if isinstance(effective_date, str):
        if not effective_date.strip():
            raise BadArticle(f"article {title!r} has no effective date")
        effective_date = parse_date(effective_date)
    return ArticleFields(title, body, category, tag_list, effective_date)


@dataclass(frozen=True)
class Parsed:
    """One article of a file: the line it starts on, its fields, the status the file gives."""

    line: int
    fields: ArticleFields
    status: str | None


@dataclass
class _Draft:
    line: int
    meta: dict[str, str]
    body: list[str]


def _take_meta(draft: _Draft, line: str) -> bool:
    m = _META.match(line)
    key = KEYS.get(m[1].strip().lower()) if m else None
    if m is None or key is None:
        return False
    draft.meta[key] = m[2]
    return True


def _finish(draft: _Draft, errors: list[str]) -> Parsed | None:
    meta = draft.meta
    try:
        status = meta.get("status", "").strip().lower() or None
        if status is not None and status not in IMPORT_STATUSES:
            raise BadArticle(f"status {status!r} is not one of {', '.join(IMPORT_STATUSES)}")
        fields = checked(
            meta.get("title", ""),
            "\n".join(draft.body),
            meta.get("category", ""),
            meta.get("tags", ""),
            meta.get("effective_date", ""),
        )
    except BadArticle as exc:
        errors.append(f"line {draft.line}: {exc}")
        return None
    return Parsed(draft.line, fields, status)


def _front_matter(lines: list[str], errors: list[str]) -> list[_Draft]:
    draft = _Draft(1, {}, [])
    for n, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            draft.body = lines[n:]
            return [draft]
        if line.strip() and not _take_meta(draft, line):
            errors.append(f"line {n}: {line.strip()[:40]!r} is not a `key: value` line of the front matter")
    errors.append("line 1: the front matter has no closing `---` line")
    return []


def _headings(lines: list[str], errors: list[str]) -> list[_Draft]:
    drafts: list[_Draft] = []
    in_meta = False
    for n, line in enumerate(lines, start=1):
        if line.startswith("# "):
            drafts.append(_Draft(n, {"title": line[2:].strip()}, []))
            in_meta = True
        elif not drafts:
            if line.strip():
                errors.append(f"line {n}: text before the first `# title` heading")
        elif in_meta and (not line.strip() or _take_meta(drafts[-1], line)):
            continue  # the metadata block under the heading, and blank lines around it
        else:
            in_meta = False
            drafts[-1].body.append(line)
    if not drafts and not errors:
        errors.append("line 1: no article (a `# title` heading or front matter) in the file")
    return drafts


def parse_markdown(text: str) -> tuple[list[Parsed], list[str]]:
    """The articles of a Markdown file and the errors found, each naming its line."""
    lines = text.splitlines()
    errors: list[str] = []
    drafts = _front_matter(lines, errors) if lines and lines[0].strip() == "---" else _headings(lines, errors)
    parsed = [p for p in (_finish(d, errors) for d in drafts) if p is not None]
    return parsed, errors


def parse_csv(text: str) -> tuple[list[Parsed], list[str]]:
    """The articles of a CSV file (RFC 4180: a body may span lines inside quotes) and the
    errors found, each naming the line its record starts on."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return [], ["line 1: the file is empty"]
    except csv.Error as exc:
        return [], [f"line 1: {exc}"]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [h for h in header if h not in (*CSV_COLUMNS, "status")]
    if missing or unknown:
        wrong = ", ".join([f"missing {c}" for c in missing] + [f"unknown {h!r}" for h in unknown])
        return [], [f"line 1: the header must name {', '.join(CSV_COLUMNS)} ({wrong})"]
    parsed: list[Parsed] = []
    errors: list[str] = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(f"line {start}: {exc}")
            break
        if any(cell.strip() for cell in row):
            if len(row) != len(header):
                errors.append(f"line {start}: {len(row)} fields where the header has {len(header)}")
            else:
                record = dict(zip(header, row, strict=True))
                body = record.pop("body")
                item = _finish(_Draft(start, record, [body]), errors)
                if item is not None:
                    parsed.append(item)
        start = reader.line_num + 1
    return parsed, errors


def duplicates(parsed: list[Parsed]) -> list[str]:
    """Errors for titles given twice in one file (imports match articles by title)."""
    first: dict[str, int] = {}
    errors = []
    for p in parsed:
        if p.fields.title in first:
            errors.append(f"line {p.line}: title {p.fields.title!r} also on line {first[p.fields.title]}")
        first.setdefault(p.fields.title, p.line)
    return errors
