"""Birth dates in the formats Chinese registries and Excel exports carry."""
from __future__ import annotations

from datetime import date

import pytest

from reconcile.dates import DateInfo, excel_serial_to_date, lunar_to_solar, parse_birth_date

TODAY = date(2025, 6, 1)


@pytest.mark.parametrize("raw", [
    "1990-05-06", "1990/5/6", "1990.5.6", "1990/05/06", "1990-5-6",
    "19900506", "19900506.0",
    "1990年5月6日", "1990年05月06日", "1990年5月6号", "1990 年 5 月 6 日",
    "１９９０年５月６日", "１９９０－０５－０６",
    "1990-05-06 00:00:00", "1990-05-06T00:00:00", "1990/5/6 0:00", " 1990-05-06 ",
    "32999", "32999.0",   # Excel serial of 1990-05-06
])
def test_day_precision(raw: str) -> None:
    assert parse_birth_date(raw, TODAY) == DateInfo("1990-05-06", "day", "ok")


@pytest.mark.parametrize("raw", ["1990.05", "1990-05", "1990/5", "1990年5月", "1990年05月", "199005", "19900500"])
def test_month_precision(raw: str) -> None:
    assert parse_birth_date(raw, TODAY) == DateInfo("1990-05", "month", "ok")


@pytest.mark.parametrize("raw", ["1990", "1990年", "19900000", "1990.0"])
def test_year_precision(raw: str) -> None:
    assert parse_birth_date(raw, TODAY) == DateInfo("1990", "year", "ok")


def test_excel_serial_matches_excel_epoch() -> None:
    # Excel's 1900 system: serial 61 is 1900-03-01, serial 60 the non-existent 1900-02-29
    assert (date(1990, 5, 6) - date(1899, 12, 30)).days == 32999
    assert excel_serial_to_date(32999) == date(1990, 5, 6)
    assert excel_serial_to_date(61) == date(1900, 3, 1)
    assert excel_serial_to_date(59) == date(1900, 2, 28)
    assert excel_serial_to_date(1) == date(1900, 1, 1)
    assert excel_serial_to_date(60) is None
    assert excel_serial_to_date(60001) is None
    assert parse_birth_date("60", TODAY) == DateInfo("", "", "impossible")
    assert parse_birth_date("36526", TODAY) == DateInfo("2000-01-01", "day", "ok")


@pytest.mark.parametrize("raw", ["1990-02-30", "19900230", "1990年2月30日", "1990-13-01", "1990.13", "199013",
                                 "1990-00-06", "1850-01-01", "1990-04-31"])
def test_impossible(raw: str) -> None:
    assert parse_birth_date(raw, TODAY) == DateInfo("", "", "impossible")


def test_leap_day() -> None:
    assert parse_birth_date("2000-02-29", TODAY) == DateInfo("2000-02-29", "day", "ok")
    assert parse_birth_date("1900-02-29", TODAY).status == "impossible"


@pytest.mark.parametrize("raw,expected", [
    ("2030-01-01", DateInfo("2030-01-01", "day", "future")),
    ("2025-06-02", DateInfo("2025-06-02", "day", "future")),
    ("2025-07", DateInfo("2025-07", "month", "future")),
    ("2026", DateInfo("2026", "year", "future")),
    # today, this month and this year are not future
    ("2025-06-01", DateInfo("2025-06-01", "day", "ok")),
    ("2025-06", DateInfo("2025-06", "month", "ok")),
    ("2025", DateInfo("2025", "year", "ok")),
])
def test_future_is_flagged_not_dropped(raw: str, expected: DateInfo) -> None:
    assert parse_birth_date(raw, TODAY) == expected


@pytest.mark.parametrize("raw", ["90-05-06", "900506", "05061990", "6/5/90", "May 6, 1990", "abc", "1990-05-06-07"])
def test_unparsed(raw: str) -> None:
    assert parse_birth_date(raw, TODAY) == DateInfo("", "", "unparsed")


@pytest.mark.parametrize("raw", ["", "   ", "无", "不详", "NaT", "-"])
def test_missing(raw: str) -> None:
    assert parse_birth_date(raw, TODAY) == DateInfo("", "", "missing")


def test_jan_1_placeholder_is_kept_as_given() -> None:
    # the placeholder is a comparator concern; the standardiser must not invent precision
    assert parse_birth_date("1990-01-01", TODAY) == DateInfo("1990-01-01", "day", "ok")


def test_lunar_to_solar() -> None:
    assert lunar_to_solar("2000-01-01") == "2000-02-05"   # Spring Festival 2000
    assert lunar_to_solar("1990-04-12") == "1990-05-06"
    assert lunar_to_solar("1990-01-30") == ""             # first lunar month of 1990 has 29 days
    assert lunar_to_solar("1899-01-01") == ""             # outside lunardate's range
    assert lunar_to_solar("1990-05") == ""
    assert lunar_to_solar("") == ""


def test_lunar_written_as_solar_is_weeks_early() -> None:
    # someone born on lunar 1990-04-12 writes 1990-04-12; the real solar date is 24 days later
    solar = date.fromisoformat(lunar_to_solar("1990-04-12"))
    assert 19 <= (solar - date(1990, 4, 12)).days <= 54
