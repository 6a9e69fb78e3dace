"""Number reading: the issue's examples, and properties checked by reading the words back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ivr import speech
from ivr.catalogue import load_catalogue

CAT = load_catalogue()
ZH_DIGIT = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"两": 2}
ZH_UNIT = {"十": 10, "百": 100, "千": 1000}
ZH_BIG = {"万": 10**4, "亿": 10**8}


def zh(ids: list[str]) -> str:
    return speech.text(ids, "zh", CAT)


def parse_zh(words: str) -> int:
    """An independent reader of Mandarin numerals, to check the writer against."""
    total, section, digit = 0, 0, None
    for ch in words:
        if ch in ZH_DIGIT:
            digit = ZH_DIGIT[ch]
        elif ch in ZH_UNIT:
            section += (1 if digit is None else digit) * ZH_UNIT[ch]
            digit = None
        elif ch in ZH_BIG:
            section += digit or 0
            big = ZH_BIG[ch]
            total = (total + section) * big if big > 10**4 else total + section * big
            section, digit = 0, None
    return total + section + (digit or 0)


def test_issue_examples() -> None:
    assert zh(speech.money(1_230_560, "zh")) == "一万二千三百零五元六角"
    assert zh(speech.number(2000, "zh")) == "两千"
    assert zh(speech.number(10, "zh")) == "十"
    assert zh(speech.number(1001, "zh")) == "一千零一"
    assert zh(speech.number(100_100, "zh")) == "十万零一百"
    assert zh(speech.number(20_000, "zh")) == "两万"
    assert zh(speech.months(2, "zh")) == "两个月"
    assert zh(speech.money(1_230_506, "zh")) == "一万二千三百零五元零六分"
    assert zh(speech.money(50, "zh")) == "五角"
    assert zh(speech.money(0, "zh")) == "零元"
    assert speech.text(speech.money(1_230_560, "en"), "en", CAT) == "twelve thousand three hundred five yuan sixty fen"
    assert zh(speech.period("2024-05", "zh")) == "二零二四年五月"


@given(st.integers(0, speech.MAX_NUMBER))
def test_mandarin_reads_back_and_zeros_are_read_once(n: int) -> None:
    words = zh(speech.number(n, "zh"))
    assert parse_zh(words) == n
    assert "零零" not in words
    assert n == 0 or not words.endswith("零")
    assert not words.startswith("一十")


@given(st.integers(0, 10**10))
def test_money_reads_back(fen: int) -> None:
    words = zh(speech.money(fen, "zh"))
    yuan_part, found, rest = words.partition("元")
    yuan = parse_zh(yuan_part) if found else 0
    rest = rest if found else words
    jiao = parse_zh(rest.split("角")[0]) if "角" in words else 0
    cents = parse_zh(words.split("分")[0][-1]) if "分" in words else 0
    assert yuan * 100 + jiao * 10 + cents == fen


ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
TEENS_AND_TENS = "seventeen eighteen nineteen"
TENS = "twenty thirty forty fifty sixty seventy eighty ninety"
EN_WORDS = {w: i for i, w in enumerate(f"{ONES} {TEENS_AND_TENS}".split())} | {
    w: 10 * (i + 2) for i, w in enumerate(TENS.split())
}
EN_SCALE = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def parse_en(words: str) -> int:
    total, current = 0, 0
    for w in words.split():
        if w in EN_WORDS:
            current += EN_WORDS[w]
        elif w == "hundred":
            current *= 100
        else:
            total += current * EN_SCALE[w]
            current = 0
    return total + current


@given(st.integers(0, speech.MAX_NUMBER))
def test_english_reads_back(n: int) -> None:
    assert parse_en(speech.text(speech.number(n, "en"), "en", CAT)) == n


@given(st.integers(0, speech.MAX_NUMBER), st.sampled_from(["zh", "en"]))
def test_every_segment_has_a_prompt_in_its_language(n: int, lang: str) -> None:
    ids = speech.number(n, lang) + speech.money(n, lang) + speech.months(n % 1000, lang)
    assert speech.unknown_ids(ids, lang, CAT) == []


def test_dates_have_prompts_in_both_languages() -> None:
    for lang in ("zh", "en"):
        for iso in ("2024-05-08", "2000-12-31", "1999-01-01"):
            assert speech.unknown_ids(speech.date(iso, lang) + speech.period(iso[:7], lang), lang, CAT) == []
