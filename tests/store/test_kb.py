"""The knowledge base on SQLite and PostgreSQL: Chinese search by two and more characters,
the same ranking on both, query syntax that is only text, drafts, versions, imports, use
on calls, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from cases import kb, kb_sample
from cases.errors import ArticleNotFound, BadQuery, EditConflict, ImportFailed, NotAgentsCall
from core.db import Store
from core.models import Agent, KbArticle, KbArticleVersion, KbUse
from hotline.cli import main

TODAY = dt.date(2026, 12, 2)


def _add(store: Store, title: str, body: str, *, status: str = "published", date: str = "2025-01-01") -> int:
    return kb.create(store, kb.checked(title, body, "养老保险", "测试", date), "sup", status=status).id


def _titles(store: Store, query: str, **kw: object) -> list[str]:
    return [h.article.title for h in kb.search(store, query, today=TODAY, **kw)]  # type: ignore[arg-type]


def test_two_character_chinese_queries_find_articles_ranked_alike_on_both_databases(store: Store) -> None:
    seeded = kb_sample.seed(store)
    assert (seeded.added, seeded.unchanged) == (12, 0)
    assert kb_sample.seed(store).added == 0  # again: nothing new
    found = _titles(store, "补缴")
    assert found[0] == "养老保险补缴怎么办理（示例内容）"  # the one with 补缴 in its title first
    assert "灵活就业人员参加养老保险（示例内容）" in found  # 补缴 only in its body
    # Title hits before body hits (test_ranking_is_defined_and_the_same_on_both has the tie-breaks).
    ranked = kb.search(store, "养老", today=TODAY)
    in_title = [("养老" in h.article.title) for h in ranked]
    assert in_title == sorted(in_title, reverse=True) and in_title.count(False) >= 1
    assert all(h.article.sample for h in ranked)
    hit = next(h for h in kb.search(store, "医保", today=TODAY))
    assert any(piece == "医保" and marked for piece, marked in hit.snippet) or "医保" in hit.article.title
    assert _titles(store, "异地就医备案") == ["异地就医备案（示例内容）"]  # three and more: trigram index
    assert _titles(store, "社保卡 挂失") == ["社保卡补换（示例内容）"]  # every term must occur
    assert _titles(store, "12333")[0] == "社保卡补换（示例内容）"


def test_ranking_is_defined_and_the_same_on_both(store: Store) -> None:
    body_old = _add(store, "一篇旧文", "内容提到补缴。", date="2024-01-01")
    body_new = _add(store, "一篇新文", "内容也提到补缴。", date="2025-06-01")
    title_hit = _add(store, "补缴须知", "正文没有那个词。", date="2023-01-01")
    both = _add(store, "补缴 App 指南", "用 app 办理补缴。", date="2023-01-01")
    # Title hits first, then newest effective date, then id: the same list on both databases.
    assert [h.article.id for h in kb.search(store, "补缴", today=TODAY)] == [title_hit, both, body_new, body_old]
    # Two terms: the article with both in its title first. ASCII letters in either case.
    assert [h.article.id for h in kb.search(store, "APP 补缴", today=TODAY)] == [both]
    assert [h.article.id for h in kb.search(store, "补缴 app", today=TODAY, limit=1)] == [both]


SYNTAX = ('"补缴', '补缴"', "NEAR(养老 补缴)", "养老*", "-补缴", "title:补缴", "补缴 OR 养老", "^养老", '"养老')


def test_query_syntax_characters_are_text_to_find(store: Store) -> None:
    plain = _add(store, "养老保险补缴", "按规定补缴。")
    odd = _add(store, '写法 NEAR(养老 补缴) 与 "补缴" 与 title:补缴 养老* -补缴 ^养老 OR "养老', "说明。")
    for query in SYNTAX:  # FTS5 would read these as query syntax (and fail on the unbalanced quote)
        assert [h.article.id for h in kb.search(store, query, today=TODAY)] == [odd], query
    assert [h.article.id for h in kb.search(store, "补缴 养老", today=TODAY)] == [plain, odd]
    assert kb.search(store, "'; DROP TABLE kb_articles; --", today=TODAY) == []
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(KbArticle)) == 2


def test_like_wildcards_and_limits_on_both(store: Store) -> None:
    _add(store, "养老保险补缴", "按规定补缴。")
    _add(store, "折扣 100% 说明", "全额。")
    assert _titles(store, "%") == ["折扣 100% 说明"]
    assert _titles(store, "_") == []
    assert _titles(store, "100%") == ["折扣 100% 说明"]
    for bad in ("", "   ", "　", "长" * (kb.MAX_QUERY + 1), " ".join("abcdefghi")):
        with pytest.raises(BadQuery):
            kb.search(store, bad)


def test_drafts_retired_and_future_articles_are_hidden_from_agents(store: Store) -> None:
    draft = _add(store, "补缴草稿", "草稿。", status="draft")
    future = _add(store, "补缴新政", "明年生效。", date="2027-01-01")
    live = _add(store, "补缴现行", "现行。")
    assert _titles(store, "补缴") == ["补缴现行"]
    assert set(_titles(store, "补缴", include_drafts=True, include_future=True)) == {"补缴草稿", "补缴新政", "补缴现行"}
    with pytest.raises(ArticleNotFound):
        kb.get(store, draft, today=TODAY)
    with pytest.raises(ArticleNotFound):
        kb.get(store, future, today=TODAY)
    kb.set_status(store, live, "retired", "sup")
    assert _titles(store, "补缴", include_drafts=True) == ["补缴草稿"]
    kb.set_status(store, draft, "published", "sup")
    assert _titles(store, "补缴") == ["补缴草稿"]


def test_every_edit_is_a_version_and_the_index_follows(store: Store) -> None:
    a = _add(store, "社保卡挂失", "拨打 12333 挂失。")
    kb.edit(store, a, kb.checked("社保卡补换", "到银行网点即时制卡。", "社保卡", "补卡", "2025-02-01"), "sup2")
    same = kb.edit(store, a, kb.checked("社保卡补换", "到银行网点即时制卡。", "社保卡", "补卡", "2025-02-01"), "x")
    assert same.version == 2  # an unchanged save is no new version
    assert [(v.version, v.title, v.edited_by) for v in kb.versions(store, a)] == [
        (2, "社保卡补换", "sup2"),
        (1, "社保卡挂失", "sup"),
    ]
    with pytest.raises(EditConflict):
        kb.edit(store, a, kb.checked("社保卡补换", "改。", "社保卡", "", "2025-02-01"), "sup", expected_version=1)
    assert _titles(store, "即时制卡") == ["社保卡补换"]  # the new text is found (trigram index updated)
    assert _titles(store, "挂失") == []  # the old one no longer
    assert _titles(store, "12333") == []


def _agent_on(store: Store, agent: str, call_id: str) -> None:
    with store.session() as s:
        s.add(Agent(id=agent, name=agent, interface=f"PJSIP/{agent}", queues="q", current_call_id=call_id))


def test_an_agent_marks_an_article_used_only_on_their_own_call(store: Store) -> None:
    a = _add(store, "养老保险补缴", "按规定补缴。")
    draft = _add(store, "补缴草稿", "草稿。", status="draft")
    _agent_on(store, "1001", "call-1")
    _agent_on(store, "1002", "call-2")
    assert kb.mark_used(store, "call-1", a, "1001", today=TODAY) == 1
    assert kb.mark_used(store, "call-1", a, "1001", today=TODAY) == 1  # twice: kept once
    with pytest.raises(NotAgentsCall):
        kb.mark_used(store, "call-2", a, "1001", today=TODAY)
    with pytest.raises(ArticleNotFound):
        kb.mark_used(store, "call-1", draft, "1001", today=TODAY)
    assert kb.uses_on_call(store, "call-1") == {a: 1}
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(KbUse)) == 1


MARKDOWN = """# 养老保险补缴
分类：养老保险
标签：补缴, 养老
生效日期：2025-01-01

按规定补缴。

## 材料
- 身份证

# 失业保险金申领
category: 就业
effective_date: 2025-13-01

正文。

# 没有分类
effective_date: 2025-01-01

正文。
"""


def test_an_endless_file_is_refused_after_the_limit_not_read_whole(store: Store, tmp_path: Path) -> None:
    endless = tmp_path / "articles.md"
    endless.symlink_to("/dev/zero")
    with pytest.raises(ImportFailed) as failed:
        kb.import_file(store, endless)
    assert failed.value.errors == ["larger than 5 MB"]


def test_imports_name_the_wrong_lines_and_import_nothing_then(store: Store, tmp_path: Path) -> None:
    md = tmp_path / "articles.md"
    md.write_text(MARKDOWN, encoding="utf-8")
    with pytest.raises(ImportFailed) as failed:
        kb.import_file(store, md)
    assert failed.value.errors == [
        "line 11: effective date '2025-13-01' is not a date (YYYY-MM-DD)",
        "line 17: article '没有分类' has no category",
    ]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(KbArticle)) == 0  # the good one neither
    md.write_text(MARKDOWN.split("# 失业")[0], encoding="utf-8")
    assert kb.import_file(store, md) == kb.ImportResult(1, 0, 0)
    article = kb.search(store, "补缴", today=TODAY)[0].article
    assert (article.category, article.tags) == ("养老保险", ("补缴", "养老"))
    assert "## 材料" in kb.get(store, article.id, today=TODAY).body
    csv_path = tmp_path / "articles.csv"
    csv_path.write_text(
        "title,category,tags,effective_date,body\n"
        '养老保险补缴,养老保险,补缴,2025-01-01,"改过的正文，\n两行。"\n'
        "社保卡补换,社保卡,补卡,2025-01-01,到网点补卡。\n",
        encoding="utf-8",
    )
    assert kb.import_file(store, csv_path) == kb.ImportResult(1, 1, 0)
    assert kb.import_file(store, csv_path) == kb.ImportResult(0, 0, 2)
    assert [v.version for v in kb.versions(store, article.id)] == [2, 1]
    csv_path.write_text(
        "title,category,tags,effective_date,body\n"
        "新文章,养老保险,,2025-01-01,正文。\n"
        '第二篇,养老保险,,2025-01-01,"多行\n正文"\n'
        ",养老保险,,2025-01-01,没有标题。\n"
        "新文章,养老保险,,2025-01-01,同名。\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportFailed) as failed:
        kb.import_file(store, csv_path)
    assert failed.value.errors == ["line 5: the title is empty", "line 6: title '新文章' also on line 2"]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(KbArticle)) == 2
        assert s.scalar(select(func.count()).select_from(KbArticleVersion)) == 3


# `hotline kb search --format json`: what scripts read.
SEARCH_JSON_KEYS = ("id", "title", "category", "tags", "effective_date", "version", "status", "sample", "snippet")


def test_cli_search_json_show_and_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    assert main(["kb", "seed"]) == 0
    capsys.readouterr()
    assert main(["kb", "search", "补缴", "--format", "json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results[0]["title"] == "养老保险补缴怎么办理（示例内容）"
    assert results[0]["sample"] is True and results[0]["effective_date"] == "2025-01-01"
    assert "补缴" in results[0]["snippet"]
    assert [list(r) for r in results] == [list(SEARCH_JSON_KEYS)] * len(results)  # the keys and their order
    assert isinstance(results[0]["tags"], list) and isinstance(results[0]["snippet"], str)
    assert isinstance(results[0]["version"], int) and results[0]["status"] == "published"
    assert main(["kb", "show", str(results[0]["id"]), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "published" and "## 所需材料" in shown["body"]
    assert main(["kb", "search", "没有这个词"]) == 0
    assert "no article" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("title,category,tags,effective_date,body\nA,B,,2025-02-30,x\n", encoding="utf-8")
    assert main(["kb", "import", str(bad)]) == 1
    assert "line 2: effective date '2025-02-30' is not a date" in capsys.readouterr().err
    good = tmp_path / "good.md"
    good.write_text("---\ntitle: 新政策\ncategory: 就业\neffective_date: 2025-03-01\n---\n正文。\n", encoding="utf-8")
    assert main(["kb", "import", str(good)]) == 0
    assert "1 added, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert main(["kb", "search", ""]) == 1
    assert "hotline: the search text is empty\n" in capsys.readouterr().err  # as every command reports an error
    assert main(["kb", "show", "999"]) == 1
    assert "hotline: no article 999\n" in capsys.readouterr().err
    store = Store(f"sqlite:///{tmp_path}/cli.db")
    with store.engine.connect() as c:  # the trigram FTS5 table is what answers 3+ characters
        assert c.execute(text("SELECT count(*) FROM kb_fts WHERE kb_fts MATCH '\"新政策\"'")).scalar() == 1
    store.dispose()
