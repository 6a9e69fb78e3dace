"""Knowledge-base files as a centre keeps them, parsed without a store, and article text
shown as HTML that can carry no markup of its own."""

from __future__ import annotations

import datetime as dt

from cases.kb_formats import parse_csv, parse_markdown
from console.markdown import to_html


def test_front_matter_and_headings_give_the_fields_and_lines() -> None:
    parsed, errors = parse_markdown(
        "---\n标题：社保卡补换\n分类: 社保卡\n标签：补卡、挂失\n生效日期: 2025/3/1\n---\n正文\n"
    )
    assert errors == []
    [p] = parsed
    assert (p.line, p.fields.title, p.fields.tags, p.fields.effective_date) == (
        1,
        "社保卡补换",
        ("补卡", "挂失"),
        dt.date(2025, 3, 1),
    )
    parsed, errors = parse_markdown(
        "# 甲\n分类：A\n生效日期：2025-01-01\n\n注意：正文第一行\n\n# 乙\n分类：B\n生效日期：2025-01-02\n正文\n"
    )
    assert errors == [] and [(p.line, p.fields.body) for p in parsed] == [(1, "注意：正文第一行"), (7, "正文")]


def test_wrong_files_name_their_lines() -> None:
    assert parse_markdown("---\ntitle: 甲\n正文没有结束线\n")[1] == [
        "line 3: '正文没有结束线' is not a `key: value` line of the front matter",
        "line 1: the front matter has no closing `---` line",
    ]
    assert parse_markdown("前言\n# 甲\n分类：A\n生效日期：2025-01-01\n正文\n")[1] == [
        "line 1: text before the first `# title` heading"
    ]
    assert parse_markdown("# 甲\n分类：A\n生效日期：2025-01-01\n状态：gone\n正文\n")[1] == [
        "line 1: status 'gone' is not one of draft, published"
    ]
    assert parse_csv("title,category,body\n")[1] == [
        "line 1: the header must name title, category, tags, effective_date, body "
        "(missing tags, missing effective_date)"
    ]
    csv = 'title,category,tags,effective_date,body\n甲,A,,2025-01-01,"两\n行"\n乙,B,,2025-01-01\n'
    assert parse_csv(csv)[1] == ["line 4: 4 fields where the header has 5"]


def test_article_text_is_escaped_before_it_becomes_html() -> None:
    shown = str(to_html('## 材料 <img src=x onerror=alert(1)>\n- **身份证** "原件"\n\n<script>x</script>'))
    assert "<img" not in shown and "<script>" not in shown
    assert "<h4>材料 &lt;img src=x onerror=alert(1)&gt;</h4>" in shown
    assert "<li><strong>身份证</strong> &quot;原件&quot;</li>" in shown
