"""The policy knowledge base (专家知识库): search, read, edit with versions, publish,
import, and the articles agents used on their calls.

Search works for Chinese without a word splitter. The text is split at spaces into terms;
an article matches when every term occurs in its title or body (a substring, ASCII letters
in either case), and ranks by the number of terms in its title, then by newest effective
date, then by id. That definition is computed in SQL by `instr`/`strpos` on both databases,
so SQLite and PostgreSQL return the same rows in the same order; the trigram indexes only
narrow the rows it is computed on: FTS5 `MATCH` on SQLite, `ILIKE` over pg_trgm's GIN
indexes on PostgreSQL (migration 0023). Trigrams need three characters, so terms of one or
two (养老, 补缴) have no index help and are found by the same `instr`/`strpos` over every
article in effect (a centre has hundreds, not millions). Terms go to SQL only as bound
values, and to FTS5 only as quoted strings ("" for "), so quotes, NEAR, `*`, `-` or `:`
are text to find, never query syntax; `%` and `_` are escaped for ILIKE.
"""

from __future__ import annotations

import datetime as dt
import string
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, case, column, func, literal_column, or_, select, table, update
from sqlalchemy.orm import Session

from cases.errors import (
    ArticleNotFound,
    BadArticle,
    EditConflict,
    ImportFailed,
    NotAgentsCall,
)
from cases.kb_formats import ArticleFields, Parsed, checked, duplicates, parse_csv, parse_markdown
from cases.kb_text import MAX_QUERY, snippet, terms
from core.db import Store, upsert
from core.models import Agent, KbArticle, KbArticleVersion, KbUse, utcnow

MAX_LIMIT = 50
MAX_IMPORT_BYTES = 5 * 1024 * 1024
STATUSES = ("draft", "published", "retired")
_FTS = table("kb_fts", column("rowid"), column("kb_fts"))

__all__ = [
    "MAX_QUERY",
    "Article",
    "ArticleFields",
    "Hit",
    "ImportResult",
    "Version",
    "agents_call",
    "checked",
    "create",
    "edit",
    "get",
    "import_file",
    "list_articles",
    "mark_used",
    "search",
    "set_status",
    "today_in",
    "uses_on_call",
    "versions",
]


@dataclass(frozen=True)
class Article:
    id: int
    title: str
    body: str
    category: str
    tags: tuple[str, ...]
    effective_date: dt.date
    version: int
    status: str
    sample: bool
    updated_by: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class Hit:
    """An article found, with the piece of its body that shows why."""

    article: Article
    snippet: tuple[tuple[str, bool], ...]  # pieces of the body; True where a term matched


@dataclass(frozen=True)
class Version:
    version: int
    title: str
    body: str
    category: str
    tags: tuple[str, ...]
    effective_date: dt.date
    edited_by: str
    at: dt.datetime


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int


def _tags(text: str) -> tuple[str, ...]:
    return tuple(t for t in text.split(",") if t)


def _article(a: KbArticle) -> Article:
    return Article(
        a.id,
        a.title,
        a.body,
        a.category,
        _tags(a.tags),
        a.effective_date,
        a.version,
        a.status,
        a.sample,
        a.updated_by,
        a.updated_at,
    )


def today_in(zone: str) -> dt.date:
    """Today on the hotline's clock (queue.timezone): an article is in effect from its date there."""
    return dt.datetime.now(zoneinfo.ZoneInfo(zone)).date()


# --- search ----------------------------------------------------------------------------------


def _contains(dialect: str, col: Any, term: str) -> ColumnElement[bool]:
    """`term` (already folded) occurs in `col`, ASCII case folded alike on both databases
    (SQLite's lower() folds only ASCII; PostgreSQL's follows the locale, so translate())."""
    if dialect == "postgresql":
        folded = func.translate(col, string.ascii_uppercase, string.ascii_lowercase)
        return func.strpos(folded, term) > 0
    return func.instr(func.lower(col), term) > 0


def _like_pattern(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _narrowed(dialect: str, found: list[str]) -> list[ColumnElement[bool]]:
    """Conditions the trigram indexes answer; each holds for every row that matches."""
    long = [t for t in found if len(t) >= 3]
    if not long:
        return []
    if dialect == "postgresql":
        return [
            or_(
                KbArticle.title.ilike(_like_pattern(t), escape="\\"),
                KbArticle.body.ilike(_like_pattern(t), escape="\\"),
            )
            for t in long
        ]
    phrases = " ".join('"' + t.replace('"', '""') + '"' for t in long)  # FTS5: strings, implicit AND
    matching = select(_FTS.c.rowid).where(literal_column("kb_fts").op("MATCH")(phrases))
    return [KbArticle.id.in_(matching)]


def _visible(include_drafts: bool, include_future: bool, today: dt.date | None) -> list[ColumnElement[bool]]:
    shown = ("draft", "published") if include_drafts else ("published",)
    where: list[ColumnElement[bool]] = [KbArticle.status.in_(shown)]
    if not include_future:
        where.append(KbArticle.effective_date <= (today or dt.date.today()))
    return where


def search(
    store: Store,
    text: str,
    limit: int = 10,
    include_drafts: bool = False,
    *,
    include_future: bool = False,
    today: dt.date | None = None,
) -> list[Hit]:
    """Articles matching every term of `text`, best first (module docstring). Agents see
    published articles in effect on `today` (the hotline's date: pass it); editors may ask
    for drafts and articles not yet in effect. Retired articles are never found."""
    found = terms(text)
    limit = max(1, min(limit, MAX_LIMIT))
    dialect = store.engine.dialect.name
    in_title = [case((_contains(dialect, KbArticle.title, t), 1), else_=0) for t in found]
    matches = [or_(_contains(dialect, KbArticle.title, t), _contains(dialect, KbArticle.body, t)) for t in found]
    stmt = (
        select(KbArticle)
        .where(*_visible(include_drafts, include_future, today), *_narrowed(dialect, found), and_(*matches))
        .order_by(sum(in_title[1:], in_title[0]).desc(), KbArticle.effective_date.desc(), KbArticle.id)
        .limit(limit)
    )
    with store.session() as s:
        return [Hit(_article(a), snippet(a.body, found)) for a in s.scalars(stmt)]


# --- reading -----------------------------------------------------------------------------------


def get(store: Store, article_id: int, *, include_drafts: bool = False, today: dt.date | None = None) -> Article:
    """One article. Without include_drafts (agents) only a published one in effect."""
    with store.session() as s:
        a = s.get(KbArticle, article_id)
        if a is None:
            raise ArticleNotFound(f"no article {article_id}")
        if not include_drafts and (a.status != "published" or a.effective_date > (today or dt.date.today())):
            raise ArticleNotFound(f"article {article_id} is not published")
        return _article(a)


def list_articles(store: Store, status: str | None = None) -> list[Article]:
    """Every article (or those of one status), by category and title."""
    stmt = select(KbArticle).order_by(KbArticle.category, KbArticle.title)
    if status is not None:
        stmt = stmt.where(KbArticle.status == status)
    with store.session() as s:
        return [_article(a) for a in s.scalars(stmt)]


def versions(store: Store, article_id: int) -> list[Version]:
    """Every version of the article, newest first."""
    stmt = (
        select(KbArticleVersion)
        .where(KbArticleVersion.article_id == article_id)
        .order_by(KbArticleVersion.version.desc())
    )
    with store.session() as s:
        return [
            Version(v.version, v.title, v.body, v.category, _tags(v.tags), v.effective_date, v.edited_by, v.at)
            for v in s.scalars(stmt)
        ]


# --- writing -----------------------------------------------------------------------------------


def _keep_version(s: Session, article_id: int, version: int, f: ArticleFields, editor: str) -> None:
    s.add(
        KbArticleVersion(
            article_id=article_id,
            version=version,
            title=f.title,
            body=f.body,
            category=f.category,
            tags=f.tags_text,
            effective_date=f.effective_date,
            edited_by=editor,
            at=utcnow(),
        )
    )


def _title_free(s: Session, title: str, article_id: int | None) -> None:
    other = s.scalar(select(KbArticle.id).where(KbArticle.title == title))
    if other is not None and other != article_id:
        raise BadArticle(f"article {other} already has the title {title!r}")


def _create(s: Session, f: ArticleFields, editor: str, status: str, sample: bool) -> KbArticle:
    _title_free(s, f.title, None)
    a = KbArticle(
        title=f.title,
        body=f.body,
        category=f.category,
        tags=f.tags_text,
        effective_date=f.effective_date,
        version=1,
        status=status,
        sample=sample,
        updated_by=editor,
        updated_at=utcnow(),
    )
    s.add(a)
    s.flush()
    _keep_version(s, a.id, 1, f, editor)
    return a


def create(store: Store, fields: ArticleFields, editor: str, *, status: str = "draft", sample: bool = False) -> Article:
    """A new article at version 1 (a draft unless `status` says otherwise)."""
    if status not in STATUSES:
        raise BadArticle(f"status must be one of {', '.join(STATUSES)}")
    with store.session() as s:
        return _article(_create(s, fields, editor, status, sample))


def _same(a: KbArticle, f: ArticleFields) -> bool:
    return (a.title, a.body, a.category, a.tags, a.effective_date) == (
        f.title,
        f.body,
        f.category,
        f.tags_text,
        f.effective_date,
    )


def _edit(s: Session, a: KbArticle, f: ArticleFields, editor: str, expected_version: int | None) -> bool:
    if expected_version is not None and expected_version != a.version:
        raise EditConflict(f"article {a.id} is at version {a.version}, not {expected_version}: reload it")
    if _same(a, f):
        return False
    _title_free(s, f.title, a.id)
    was = a.version
    values = {
        "title": f.title,
        "body": f.body,
        "category": f.category,
        "tags": f.tags_text,
        "effective_date": f.effective_date,
        "version": was + 1,
        "updated_by": editor,
        "updated_at": utcnow(),
    }
    # Conditional on the version read: of two editors saving at once, one wins.
    done = s.execute(update(KbArticle).where(KbArticle.id == a.id, KbArticle.version == was).values(**values)).rowcount  # type: ignore[attr-defined]
    if not done:
        raise EditConflict(f"article {a.id} changed while it was saved: reload it")
    _keep_version(s, a.id, was + 1, f, editor)
    s.refresh(a)
    return True


def edit(
    store: Store, article_id: int, fields: ArticleFields, editor: str, *, expected_version: int | None = None
) -> Article:
    """Save a new version (the old one is kept); nothing changes when the fields are the
    same. `expected_version`: the version the editor opened, or EditConflict."""
    with store.session() as s:
        a = s.get(KbArticle, article_id)
        if a is None:
            raise ArticleNotFound(f"no article {article_id}")
        _edit(s, a, fields, editor, expected_version)
        return _article(a)


def set_status(store: Store, article_id: int, status: str, editor: str) -> Article:
    """Publish (from draft or retired), retire, or send back to draft."""
    if status not in STATUSES:
        raise BadArticle(f"status must be one of {', '.join(STATUSES)}")
    with store.session() as s:
        a = s.get(KbArticle, article_id)
        if a is None:
            raise ArticleNotFound(f"no article {article_id}")
        if a.status != status:
            a.status, a.updated_by, a.updated_at = status, editor, utcnow()
        return _article(a)


# --- imports and samples -------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        with path.open("rb") as f:  # at most one byte past the limit: /dev/zero is not read whole
            raw = f.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise ImportFailed(str(path), [f"cannot read it: {exc.strerror}"]) from exc
    if len(raw) > MAX_IMPORT_BYTES:
        raise ImportFailed(str(path), [f"larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("gb18030", errors="strict")  # what Excel saves as "CSV" on a Chinese Windows


def parse_file(path: Path) -> list[Parsed]:
    """The articles of a Markdown (.md, .markdown) or CSV (.csv) file, or ImportFailed
    naming every wrong line."""
    suffix = path.suffix.lower()
    if suffix not in (".md", ".markdown", ".csv"):
        raise ImportFailed(str(path), ["only Markdown (.md) and CSV (.csv) files are imported"])
    try:
        text = _read(path)
    except UnicodeDecodeError as exc:
        raise ImportFailed(str(path), ["neither UTF-8 nor GB 18030 text"]) from exc
    parsed, errors = parse_csv(text) if suffix == ".csv" else parse_markdown(text)
    errors += duplicates(parsed)
    if errors:
        raise ImportFailed(str(path), errors)
    return parsed


def save_all(
    store: Store, parsed: list[Parsed], editor: str, *, status: str = "published", sample: bool = False
) -> ImportResult:
    """Add or update (matched by title, a new version when changed) every article, in one
    transaction: all or nothing."""
    added = updated = 0
    with store.session() as s:
        for p in parsed:
            a = s.scalar(select(KbArticle).where(KbArticle.title == p.fields.title))
            if a is None:
                _create(s, p.fields, editor, p.status or status, sample)
                added += 1
                continue
            changed = _edit(s, a, p.fields, editor, None)
            if p.status is not None and p.status != a.status:
                a.status, changed = p.status, True
            updated += changed
    return ImportResult(added, updated, len(parsed) - added - updated)


def import_file(store: Store, path: Path | str, editor: str = "import", *, status: str = "published") -> ImportResult:
    """Import a centre's articles from Markdown or CSV (cases/kb_formats.py). Every line
    is checked before anything is written; an error anywhere imports nothing."""
    return save_all(store, parse_file(Path(path)), editor, status=status)


# --- use on calls ------------------------------------------------------------------------------


def mark_used(store: Store, call_id: str, article_id: int, agent: str, *, today: dt.date | None = None) -> int:
    """Record that `agent` answered `call_id` from the article (its current version, which
    is returned). Only for the agent's current or last call and a published article;
    marking twice keeps the first."""
    with store.session() as s:
        me = s.get(Agent, agent)
        if me is None or call_id not in (me.current_call_id, me.last_call_id):
            raise NotAgentsCall(f"call {call_id} is not agent {agent}'s current or last call")
        a = s.get(KbArticle, article_id)
        if a is None or a.status != "published" or a.effective_date > (today or dt.date.today()):
            raise ArticleNotFound(f"article {article_id} is not published")
        row = {"call_id": call_id, "article_id": article_id, "version": a.version, "agent": agent, "at": utcnow()}
        s.execute(upsert(s.connection(), KbUse.__table__).values(**row).on_conflict_do_nothing())
        kept = s.scalar(select(KbUse.version).where(KbUse.call_id == call_id, KbUse.article_id == article_id))
        return int(kept if kept is not None else a.version)


def agents_call(store: Store, agent: str) -> str | None:
    """The call an agent marks articles for by default: their current call, else their last."""
    with store.session() as s:
        me = s.get(Agent, agent)
        return None if me is None else me.current_call_id or me.last_call_id


def uses_on_call(store: Store, call_id: str) -> dict[int, int]:
    """The articles marked used on a call: article id → the version read."""
    with store.session() as s:
        rows = s.execute(select(KbUse.article_id, KbUse.version).where(KbUse.call_id == call_id))
        return {a: v for a, v in rows}
