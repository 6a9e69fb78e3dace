"""Reading numbers, money, months and dates aloud by composing prompt segments.

Each function returns prompt ids from the catalogue (`prompts/catalogue.toml`); the
transport plays them in order and the trail joins their texts. Mandarin follows the
usual reading rules: groups of four digits (万, 亿), a run of zeros inside a number is
read once as 零, a leading 一十 is read 十, and 2 before 千/万/亿 is 两 (两千, 两万).

>>> text(money(1230560, "zh"), "zh")
'一万二千三百零五元六角'
>>> text(number(2000, "zh"), "zh")
'两千'
>>> text(money(1230560, "en"), "en")
'twelve thousand three hundred five yuan sixty fen'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache

from ivr.catalogue import Catalogue, load_catalogue

ZH_DIGITS = "零一二三四五六七八九"
ZH_POWERS = ("", "shi", "bai", "qian")  # prompt ids num.shi etc. (十 百 千)
ZH_GROUPS = ("", "wan", "yi")  # 万 亿

MAX_NUMBER = 10**12 - 1


def _zh_digit(d: int) -> str:
    return f"num.{d}"


def _zh_group(group: int, *, leading: bool, liang_units: bool) -> list[str]:
    """Read 1..9999. When `leading` (first group of the number) a first digit 2 is 两
    before 千, or before 万/亿 and in counts (`liang_units`)."""
    out: list[str] = []
    pending_zero = False
    started = False
    for power in (3, 2, 1, 0):
        d = (group // 10**power) % 10
        if d == 0:
            pending_zero = started
            continue
        if pending_zero:
            out.append("num.0")
            pending_zero = False
        first = leading and not started
        if d == 2 and first and (power == 3 or (power == 0 and liang_units)):
            out.append("num.liang")
        else:
            out.append(_zh_digit(d))
        if power:
            out.append(f"num.{ZH_POWERS[power]}")
        started = True
    return out


def _zh_number(n: int, count: bool) -> list[str]:
    if n == 0:
        return ["num.0"]
    groups = []
    rest = n
    while rest:
        groups.append(rest % 10000)
        rest //= 10000
    out: list[str] = []
    need_zero = False
    for idx in range(len(groups) - 1, -1, -1):
        g = groups[idx]
        if g == 0:
            need_zero = bool(out)
            continue
        if out and (need_zero or g < 1000):
            out.append("num.0")
        need_zero = False
        out.extend(_zh_group(g, leading=not out, liang_units=idx > 0 or count))
        if idx:
            out.append(f"num.{ZH_GROUPS[idx]}")
    if out[:2] == ["num.1", "num.shi"]:
        out = out[1:]
    return out


EN_SMALL = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
EN_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))


def _en_below_1000(n: int) -> list[str]:
    out: list[str] = []
    if n >= 100:
        out += [f"num.{n // 100}", "num.hundred"]
        n %= 100
    if n >= 20:
        out.append(f"num.{n // 10 * 10}")
        n %= 10
    if n:
        out.append(f"num.{n}")
    return out


def _en_number(n: int) -> list[str]:
    if n == 0:
        return ["num.0"]
    out: list[str] = []
    for size, name in EN_SCALES:
        if n >= size:
            out += _en_below_1000(n // size) + [f"num.{name}"]
            n %= size
    return out + _en_below_1000(n)


def number(n: int, lang: str, *, count: bool = False) -> list[str]:
    """A whole number 0..10^12-1; `count` reads 2 as 两 (两个月) in Mandarin."""
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number out of range: {n}")
    return _zh_number(n, count) if lang == "zh" else _en_number(n)


def money(fen: int, lang: str) -> list[str]:
    """An amount in fen: 1230560 -> 一万二千三百零五元六角; negative amounts say 负."""
    out: list[str] = []
    if fen < 0:
        out.append("num.minus")
        fen = -fen
    yuan, jiao, cents = fen // 100, (fen // 10) % 10, fen % 10
    if lang == "en":
        out += _en_number(yuan) + ["unit.yuan"]
        if fen % 100:
            out += _en_number(fen % 100) + ["unit.fen"]
        return out
    if yuan or not (jiao or cents):
        out += _zh_number(yuan, count=False) + ["unit.yuan"]
    if jiao:
        out += [_zh_digit(jiao), "unit.jiao"]
    if cents:
        if yuan and not jiao:
            out.append("num.0")
        out += [_zh_digit(cents), "unit.fen"]
    return out


def months(n: int, lang: str) -> list[str]:
    """A count of months: 两个月 / two months (one month)."""
    if lang == "zh":
        return number(n, "zh", count=True) + ["unit.months"]
    return _en_number(n) + ["unit.month" if n == 1 else "unit.months"]


def count(n: int, lang: str, unit: str) -> list[str]:
    """A count with a measure word prompt, e.g. unit.times (次)."""
    return number(n, lang, count=True) + [f"unit.{unit}"]


def _zh_year(year: int) -> list[str]:
    return [_zh_digit(int(c)) for c in str(year)] + ["unit.year"]


def period(yyyymm: str, lang: str) -> list[str]:
    """A month of a year, `2024-05`: 二零二四年五月 / May 2024."""
    year, month = int(yyyymm[:4]), int(yyyymm[5:7])
    if lang == "zh":
        return _zh_year(year) + _zh_number(month, count=False) + ["unit.month_of_year"]
    return [f"month.{month}"] + _en_year(year)


def date(iso: str, lang: str) -> list[str]:
    """A calendar date, `2024-05-08`: 二零二四年五月八日 / May 8 2024."""
    year, month, day = int(iso[:4]), int(iso[5:7]), int(iso[8:10])
    if lang == "zh":
        return (
            _zh_year(year) + _zh_number(month, False) + ["unit.month_of_year"] + _zh_number(day, False) + ["unit.day"]
        )
    return [f"month.{month}"] + _en_number(day) + _en_year(year)


def _en_year(year: int) -> list[str]:
    if 2000 <= year < 2010 or year % 100 == 0:
        return _en_number(year)
    return _en_below_1000(year // 100) + _en_below_1000(year % 100)


def digits(s: str, lang: str) -> list[str]:
    """Read a digit string one digit at a time (card tails, phone numbers)."""
    return [f"num.{c}" if c.isdigit() else "num.x" for c in s]


@cache
def _catalogue() -> Catalogue:
    return load_catalogue()


def text(prompt_ids: Iterable[str], lang: str, catalogue: Catalogue | None = None) -> str:
    """The words a sequence of prompts says: joined without spaces in Mandarin."""
    cat = catalogue or _catalogue()
    words = [cat.text(pid, lang) for pid in prompt_ids]
    return ("" if lang == "zh" else " ").join(words)


def unknown_ids(prompt_ids: Sequence[str], lang: str, catalogue: Catalogue | None = None) -> list[str]:
    cat = catalogue or _catalogue()
    return [pid for pid in prompt_ids if not cat.has(pid, lang)]
