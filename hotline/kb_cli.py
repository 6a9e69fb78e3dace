"""`hotline kb ...`: search, show, list, import and seed the knowledge base."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from typing import Any

from cases import kb, kb_sample
from cases.errors import ImportFailed
from core.settings import Settings


def hotline_today(settings: Settings) -> dt.date:
    return kb.today_in(settings.queue.timezone)


def _jsonable(value: Any) -> dict[str, Any]:
    data: dict[str, Any] = dataclasses.asdict(value)
    for key, v in data.items():
        if isinstance(v, dt.date | dt.datetime):
            data[key] = v.isoformat()
        elif isinstance(v, tuple):
            data[key] = list(v)
    return data


# What `kb search --format json` gives of each article found (its body only as the snippet).
HIT_FIELDS = ("id", "title", "category", "tags", "effective_date", "version", "status", "sample")


def _hit(h: kb.Hit) -> dict[str, Any]:
    article = _jsonable(h.article)
    data = {name: article[name] for name in HIT_FIELDS}
    data["snippet"] = "".join(piece for piece, _ in h.snippet)
    return data


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def _search(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store

    hits = kb.search(
        open_store(settings),
        args.text,
        args.limit,
        include_drafts=args.drafts,
        include_future=args.drafts,
        today=hotline_today(settings),
    )
    if args.format == "json":
        _print([_hit(h) for h in hits])
        return 0
    if not hits:
        print(f"no article matches {args.text!r}")
    for h in hits:
        a = h.article
        mark = "" if a.status == "published" else f" [{a.status}]"
        print(f"{a.id:>5}  {a.title}{mark}  ({a.category}, {a.effective_date})")
        print(f"       {_hit(h)['snippet']}")
    return 0


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store

    store = open_store(settings)
    article = kb.get(store, args.id, include_drafts=True)
    if args.format == "json":
        data = _jsonable(article)
        data["versions"] = [_jsonable(v) | {"body": None} for v in kb.versions(store, args.id)]
        _print(data)
        return 0
    print(f"# {article.title}")
    print(
        f"id {article.id} · {article.category} · {', '.join(article.tags) or '-'} · effective {article.effective_date}"
    )
    print(
        f"version {article.version} · {article.status} · by {article.updated_by}"
        + (" · sample" if article.sample else "")
    )
    print()
    print(article.body)
    return 0


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store

    articles = kb.list_articles(open_store(settings), args.status)
    if args.format == "json":
        _print([_jsonable(a) | {"body": None} for a in articles])
        return 0
    for a in articles:
        print(f"{a.id:>5}  {a.status:<9}  v{a.version:<3} {a.effective_date}  {a.category}  {a.title}")
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store

    try:
        result = kb.import_file(open_store(settings), args.file, args.editor, status=args.status)
    except ImportFailed as exc:
        print(f"hotline kb import: {args.file}: nothing imported, {len(exc.errors)} error(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print(f"{args.file}: {result.added} added, {result.updated} updated, {result.unchanged} unchanged")
    return 0


def seed_samples(settings: Settings) -> str:
    from hotline.wiring import open_store

    result = kb_sample.seed(open_store(settings))
    return f"knowledge base: {result.added} sample articles added, {result.unchanged} already there"


def _seed(settings: Settings, args: argparse.Namespace) -> int:
    print(seed_samples(settings))
    return 0


def cmd_kb(settings: Settings, args: argparse.Namespace) -> int:
    handlers = {"search": _search, "show": _show, "list": _list, "import": _import, "seed": _seed}
    return handlers[args.kb_action](settings, args)  # a CasesError is reported by hotline.cli.main, as any command's


def add_parser(sub: Any) -> None:
    s = sub.add_parser("kb", help="the policy knowledge base (专家知识库)")
    kbs = s.add_subparsers(dest="kb_action", required=True)
    se = kbs.add_parser("search", help="published articles in effect matching every word of TEXT")
    se.add_argument("text")
    se.add_argument("--limit", type=int, default=10)
    se.add_argument("--drafts", action="store_true", help="drafts and articles not yet in effect too")
    se.add_argument("--format", choices=("text", "json"), default="text")
    sh = kbs.add_parser("show", help="one article (any status)")
    sh.add_argument("id", type=int)
    sh.add_argument("--format", choices=("text", "json"), default="text")
    ls = kbs.add_parser("list", help="every article with its status and version")
    ls.add_argument("--status", choices=kb.STATUSES)
    ls.add_argument("--format", choices=("text", "json"), default="text")
    im = kbs.add_parser("import", help="add or update articles from a Markdown or CSV file (all or nothing)")
    im.add_argument("file")
    im.add_argument("--status", choices=("published", "draft"), default="published", help="of new articles")
    im.add_argument("--editor", default="import", help="recorded as who made the versions")
    kbs.add_parser("seed", help="add the sample county's articles (marked as sample content)")
    s.set_defaults(func=cmd_kb)
