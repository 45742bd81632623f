"""Birth dates as typed into registries and Excel exports -> ISO text with a precision.

Understood (after NFKC, so full-width digits work; spaces ignored; a time part is dropped):

=========================================  ==========  =================================
input                                      precision   note
=========================================  ==========  =================================
1990-05-06, 1990/5/6, 1990.5.6             day
1990年5月6日, 1990年05月06号                day
19900506, 19900506.0                       day         ``.0``: a number cell saved as float
1990-05-06 00:00:00, 1990-05-06T00:00      day
1990.05, 1990-05, 1990/5, 1990年5月, 199005  month
1990, 1990年                                year
19900500, 1990-05-00 / 19900000            month/year  ``00`` for an unknown day or month
32999, 32999.0 (Excel serial, 1..60000)    day         serial 60 is Excel's 1900-02-29: impossible
=========================================  ==========  =================================

Two-digit years (90-05-06, 900506) are not guessed: ``unparsed``. Statuses: ``ok``,
``impossible`` (no such date, e.g. 1990-02-30, month 13, or before 1880; ``iso`` and
``precision`` are then ''), ``future`` (after today; ``iso`` kept), ``unparsed``, ``missing``.
"""
from __future__ import annotations

import re
import unicodedata
import warnings
from datetime import date, timedelta
from functools import lru_cache
from typing import NamedTuple

__all__ = ["DateInfo", "parse_birth_date", "lunar_to_solar", "excel_serial_to_date"]

MIN_YEAR = 1880  # nobody alive was born earlier; also the lower bound used for ID numbers
_SERIAL_MAX = 60000  # 2064-04-08: anything larger is not a date serial


class DateInfo(NamedTuple):
    """A parsed birth date: ISO text (YYYY-MM-DD / YYYY-MM / YYYY), precision, status."""

    iso: str
    precision: str  # day | month | year | ''
    status: str     # ok | impossible | future | unparsed | missing


_MISSING = DateInfo("", "", "missing")
_UNPARSED = DateInfo("", "", "unparsed")
_IMPOSSIBLE = DateInfo("", "", "impossible")
_MISSING_WORDS = frozenset({"", "无", "不详", "未知", "空", "-", "--", "—", "/", "null", "none", "nan", "nat", "na"})

_SPACE = re.compile(r"\s+")
_TIME = re.compile(r"^(.+?)[T\s]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?$")
_YMD = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})[日号]?$")
_YM = re.compile(r"^(\d{4})[-/.年](\d{1,2})月?$")
_Y = re.compile(r"^(\d{4})年$")
_NUMBER = re.compile(r"^(\d+)(?:\.0+)?$")
_SERIAL = re.compile(r"^(\d{1,5})(?:\.\d+)?$")


def excel_serial_to_date(serial: int) -> date | None:
    """Date of an Excel 1900-system serial; None for 60 (the non-existent 1900-02-29) and
    anything outside 1..60000. Excel counts 1900 as a leap year, so serials from 61 on are one
    day ahead of a plain count from 1899-12-31."""
    if serial < 1 or serial > _SERIAL_MAX or serial == 60:
        return None
    base = date(1899, 12, 31) if serial < 60 else date(1899, 12, 30)
    return base + timedelta(days=serial)


def _build(y: int, m: int, d: int, today: date) -> DateInfo:
    """Validate year/month/day (0 = unknown part) and render at the right precision."""
    if y < MIN_YEAR:
        return _IMPOSSIBLE
    if m == 0:
        if d != 0:
            return _IMPOSSIBLE
        iso, precision, last = f"{y:04d}", "year", date(y, 1, 1)
    elif m > 12:
        return _IMPOSSIBLE
    elif d == 0:
        iso, precision, last = f"{y:04d}-{m:02d}", "month", date(y, m, 1)
    else:
        try:
            last = date(y, m, d)
        except ValueError:
            return _IMPOSSIBLE
        iso, precision = last.isoformat(), "day"
    # future: the earliest day the value can denote is after today
    if last > today:
        return DateInfo(iso, precision, "future")
    return DateInfo(iso, precision, "ok")


def parse_birth_date(raw: str, today: date | None = None) -> DateInfo:
    """Parse one raw birth-date value (see the module docstring for formats and statuses)."""
    if today is None:
        today = _today()
    if raw is None:
        return _MISSING
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
        # the common case, ISO already: one set lookup instead of the regex cascade
        if raw in _iso_days():
            return DateInfo(raw, "day", "future" if raw > today.isoformat() else "ok")
    s = raw.strip()
    if not s.isascii():
        s = unicodedata.normalize("NFKC", s).strip()
    if s.lower() in _MISSING_WORDS:
        return _MISSING
    if " " in s or "\t" in s or ":" in s:
        t = _TIME.match(s)
        if t:
            s = t.group(1)
        s = _SPACE.sub("", s)
    m = _NUMBER.match(s)
    if m:
        digits = m.group(1)
        n = len(digits)
        # 8 and 6 digits only when they start with a 4-digit year: 05061990 and 900506 (two-digit
        # years, day-first) are not guessed
        if n == 8 and digits[0] in "12":
            return _build(int(digits[:4]), int(digits[4:6]), int(digits[6:]), today)
        if n == 6 and MIN_YEAR <= int(digits[:4]) <= 2100:
            return _build(int(digits[:4]), int(digits[4:]), 0, today)
        if n in (6, 8):
            return _UNPARSED
        if n == 4 and MIN_YEAR <= int(digits) <= 2100:
            return _build(int(digits), 0, 0, today)
    m = _YMD.match(s)
    if m:
        return _build(int(m.group(1)), int(m.group(2)), int(m.group(3)), today)
    m = _YM.match(s)
    if m:
        return _build(int(m.group(1)), int(m.group(2)), 0, today)
    m = _Y.match(s)
    if m:
        return _build(int(m.group(1)), 0, 0, today)
    m = _SERIAL.match(s)
    if m:
        n = int(m.group(1))
        if n == 60:
            return _IMPOSSIBLE
        d = excel_serial_to_date(n)
        if d is not None:
            return _build(d.year, d.month, d.day, today)
    return _UNPARSED


@lru_cache(maxsize=1)
def _iso_days() -> frozenset[str]:
    """Every real day MIN_YEAR-01-01 .. 2099-12-31 as ISO text."""
    d, end, one = date(MIN_YEAR, 1, 1), date(2099, 12, 31), timedelta(days=1)
    out = []
    while d <= end:
        out.append(d.isoformat())
        d += one
    return frozenset(out)


@lru_cache(maxsize=1)
def _today() -> date:
    return date.today()


def lunar_to_solar(iso: str) -> str:
    """Solar date of a lunar (农历) date written as ``YYYY-MM-DD`` (non-leap month); '' when the
    lunar date does not exist or is outside 1900..2099. For the matcher: a lunar birthday written
    down as if solar is 19-54 days earlier than the real solar date."""
    if len(iso) != 10 or iso[4] != "-" or iso[7] != "-":
        return ""
    try:
        y, m, d = int(iso[:4]), int(iso[5:7]), int(iso[8:])
    except ValueError:
        return ""
    return _lunar(y, m, d)


@lru_cache(maxsize=65536)
def _lunar(y: int, m: int, d: int) -> str:
    from lunardate import LunarDate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return LunarDate(y, m, d).to_solar_date().isoformat()
    except ValueError:
        return ""
