"""Birth-date comparator levels on the hard cases, and the vectorised path against a slow reference."""
from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from lunardate import LunarDate

from matchers.base import MISSING
from matchers.birth_date import BIRTH_DATE, DIFFERENT, birth_agrees_with_id, parse_iso

LEVELS = BIRTH_DATE.levels


def compare(pairs: list[tuple[tuple[str, str], tuple[str, str]]]) -> np.ndarray:
    """pairs of ((birth_date, id_birth_date), (birth_date, id_birth_date))."""
    left = {"birth_date": np.array([p[0][0] for p in pairs], dtype=object),
            "id_birth_date": np.array([p[0][1] for p in pairs], dtype=object)}
    right = {"birth_date": np.array([p[1][0] for p in pairs], dtype=object),
             "id_birth_date": np.array([p[1][1] for p in pairs], dtype=object)}
    return BIRTH_DATE.compare(left, right)


def one(a: str, b: str, a_id: str = "", b_id: str = "") -> str:
    return BIRTH_DATE.label(int(compare([((a, a_id), (b, b_id))])[0]))


def test_parse_iso_shapes():
    y, m, d, p = parse_iso(np.array(["1990-03-07", "1990-03", "1990", "", "1990-13-01", "90-3-7", "1990-02-31"],
                                    dtype=object))
    assert y.tolist()[:3] == [1990, 1990, 1990]
    assert m.tolist()[:2] == [3, 3] and d.tolist()[0] == 7
    # day, month, year, missing, bad month, not ISO, day 31 passes the shape check
    assert p.tolist() == [3, 2, 1, 0, 0, 0, 3]


def test_exact():
    assert one("1990-03-07", "1990-03-07") == "exact"


def test_id_birth_date_fills_a_missing_birth_date():
    assert one("", "1990-03-07", a_id="1990-03-07") == "exact"
    assert one("", "1990-03-09", a_id="1990-03-07") == "within_2_days"
    # the record's own date wins over the ID's when both are present
    assert one("1990-03", "1990-03-07", a_id="1990-03-07") == "coarser_equal"
    # text that is not an ISO date counts as absent
    assert one("not a date", "1990-03-07", a_id="1990-03-07") == "exact"


@pytest.mark.parametrize("a,b", [
    ("1990-03", "1990-03-07"),     # 1990.03 month only
    ("1990", "1990-03-07"),        # year only
    ("1990", "1990-11"),
    ("1990-03", "1990-03"),
    ("1990-01-01", "1990-08-17"),  # 1 January placeholder for an unknown day
    ("1990-01-01", "1990-08"),
])
def test_equal_at_coarser_precision(a, b):
    assert one(a, b) == "coarser_equal"
    assert one(b, a) == "coarser_equal"


def test_month_only_with_another_month_is_same_year():
    assert one("1990-08", "1990-04-07") == "same_year"
    assert one("1990-11", "1990-04-07") == "same_year"


def test_a_full_date_against_a_month_shows_the_lunar_shift_and_the_swap():
    # 1979-03-09 read from a lunar calendar lands in February; 1945-01-08 swapped is 1945-08-01
    assert one("1979-03-09", "1979-02") == "lunar_shift"
    assert one("1979-02", "1979-03-09") == "lunar_shift"
    assert one("1990-04-07", "1990-05") == "lunar_shift"       # either side may hold the lunar date
    assert one("1945-01-08", "1945-08") == "day_month_swapped"
    assert one("1945-08", "1945-01-08") == "day_month_swapped"
    assert one("1945-01-08", "1946-08") == "different"
    assert one("1990-04-07", "1990-08") == "same_year"
    assert one("1990", "1991-03-07") == "different"


@pytest.mark.parametrize("a,b", [("1990-03-07", "1990-03-09"), ("1990-03-07", "1990-03-06"),
                                 ("1989-12-31", "1990-01-02")])
def test_within_two_days(a, b):
    assert one(a, b) == "within_2_days"


def test_day_month_swapped():
    assert one("1990-03-07", "1990-07-03") == "day_month_swapped"
    assert one("1990-12-11", "1990-11-12") == "day_month_swapped"
    assert one("1990-03-07", "1991-07-03") == "different"


def test_lunar_birthday_written_as_solar():
    # born on the 11th day of the 2nd lunar month of 1990: solar 1990-03-07
    lunar = LunarDate(1990, 2, 11)
    solar = lunar.to_solar_date()
    as_solar = dt.date(1990, 2, 11).isoformat()  # the lunar date copied into a solar field
    assert solar.isoformat() == "1990-03-07"
    assert one(as_solar, solar.isoformat()) == "lunar_shift"
    assert one(solar.isoformat(), as_solar) == "lunar_shift"


def test_lunar_shifts_across_the_years_land_in_the_level():
    rng = random.Random(3)
    pairs = []
    for _ in range(200):
        y, m, d = rng.randint(1940, 2010), rng.randint(1, 12), rng.randint(2, 28)
        if (m, d) in ((1, 1),) or m == d:
            continue
        solar = LunarDate(y, m, d).to_solar_date()
        pairs.append(((dt.date(y, m, d).isoformat(), ""), (solar.isoformat(), "")))
    got = compare(pairs)
    labels = {LEVELS[x] for x in got}
    # a few shifts are also a day/month swap of the other date; that level ranks higher
    assert labels <= {"lunar_shift", "day_month_swapped"}
    assert sum(LEVELS[x] == "lunar_shift" for x in got) >= 0.95 * len(pairs)


def test_same_year_and_different():
    assert one("1990-03-07", "1990-11-20") == "same_year"
    assert one("1990-03-07", "1985-03-07") == "different"


def test_missing_either_side():
    got = compare([(("", ""), ("1990-03-07", "")), (("1990-03-07", ""), ("", "")), (("", ""), ("", "")),
                   (("not a date", ""), ("1990-03-07", ""))])
    assert got.tolist() == [MISSING] * 4


def slow_reference(a: str, b: str) -> int:
    def parse(s: str):
        parts = s.split("-")
        if not s:
            return None
        return tuple(int(x) for x in parts)

    pa, pb = parse(a), parse(b)
    if pa is None or pb is None:
        return -1
    if len(pa) == 3 and len(pb) == 3 and pa == pb:
        return 0
    qa = pa[:1] if len(pa) == 3 and pa[1:] == (1, 1) else pa
    qb = pb[:1] if len(pb) == 3 and pb[1:] == (1, 1) else pb
    k = min(len(qa), len(qb))
    if k < 3 and qa[:k] == qb[:k]:
        return 1
    if len(pa) == 3 and len(pb) == 3:
        delta = abs((dt.date(*pa) - dt.date(*pb)).days)
        if 1 <= delta <= 2:
            return 2
        if pa[0] == pb[0] and pa[1] == pb[2] and pa[2] == pb[1] and pa[1] != pa[2]:
            return 3
        if 19 <= delta <= 55:
            return 4
    if sorted((len(pa), len(pb))) == [2, 3]:
        day, month = (pa, pb) if len(pa) == 3 else (pb, pa)
        if day[0] == month[0] and month[1] == day[2] and day[1] != day[2]:
            return 3
        first = dt.date(month[0], month[1], 1)
        days = [first + dt.timedelta(k) for k in range(31) if (first + dt.timedelta(k)).month == month[1]]
        if any(19 <= abs((x - dt.date(*day)).days) <= 55 for x in days):
            return 4
    if pa[0] == pb[0]:
        return 5
    return DIFFERENT


def _random_date(rng: random.Random) -> str:
    d = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(60 * 365))
    return d.isoformat()


def test_vectorised_matches_slow_reference():
    rng = random.Random(99)
    pairs = []
    for _ in range(1000):
        a = _random_date(rng)
        da = dt.date.fromisoformat(a)
        kind = rng.randrange(8)
        if kind == 0:
            b = a
        elif kind == 1:
            b = (da + dt.timedelta(days=rng.choice([-2, -1, 1, 2]))).isoformat()
        elif kind == 2 and da.day <= 12:
            b = dt.date(da.year, da.day, da.month).isoformat()
        elif kind == 3:
            b = (da + dt.timedelta(days=rng.randint(-60, 60))).isoformat()
        elif kind == 4:
            b = a[: rng.choice([4, 7])]
        elif kind == 5:
            b = f"{da.year}-01-01"
        elif kind == 6:
            b = rng.choice(["", _random_date(rng)[:7]])
        else:
            b = f"{da.year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    got = compare([((a, ""), (b, "")) for a, b in pairs]).tolist()
    want = [slow_reference(a, b) for a, b in pairs]
    assert got == want
    assert set(want) == {-1, 0, 1, 2, 3, 4, 5, DIFFERENT}


def test_birth_agrees_with_id():
    bd = ["", "1990-03-07", "1990-03", "1990", "1990-03-08", "1990-04", "1990-03-07", "garbage"]
    idb = ["1990-03-07", "1990-03-07", "1990-03-07", "1990-03-07", "1990-03-07", "1990-03-07", "", "1990-03-07"]
    got = birth_agrees_with_id({"birth_date": np.array(bd, dtype=object),
                                "id_birth_date": np.array(idb, dtype=object)})
    # the same rule written plainly: the ID's date starts with the record's
    want = [b == "" or (i != "" and i[:len(b)] == b) for b, i in zip(bd, idb)]
    assert got.tolist() == want == [True, True, True, True, False, False, False, False]


def test_agreement_both_ids_state_is_its_own_neutral_level():
    """重号: two records carrying one ID number agree on the birth date the number states; that
    agreement is the ID's, not a second piece of evidence (weight 0). Two different valid numbers
    sharing a birth date (twins) keep the plain level: the ID comparator counted no agreement."""
    from reconcile.model import Model, FieldParams, NEUTRAL_LEVELS

    def side(birth, idc, status, idb):
        return {"birth_date": np.array(birth, dtype=object), "id_clean": np.array(idc, dtype=object),
                "id_status": np.array(status, dtype=object), "id_birth_date": np.array(idb, dtype=object)}

    one = "43102819900307123X"
    twin = "431028199003071257"
    left = side(["1990-03-07", "1990-03", "1990-03-07", "1990-03-07"], [one, one, one, one],
                ["valid"] * 4, ["1990-03-07"] * 4)
    right = side(["1990-03-07", "1990-03-07", "1990-03-07", "1990-03-07"], [one, one, twin, ""],
                 ["valid", "valid", "valid", "excel_damaged"], ["1990-03-07"] * 4)
    got = [BIRTH_DATE.label(x) for x in BIRTH_DATE.compare(left, right)]
    assert got == ["exact_implied_by_id", "coarser_implied_by_id", "exact", "exact"]
    assert ("birth_date", "exact_implied_by_id") in NEUTRAL_LEVELS
    params = FieldParams("birth_date", BIRTH_DATE.levels, [0.1] * len(BIRTH_DATE.levels), [0.001] * len(BIRTH_DATE.levels))
    w = params.weights()
    assert w[BIRTH_DATE.levels.index("exact_implied_by_id")] == 0.0 and w[0] > 0


def test_a_record_at_odds_with_its_own_id_is_also_read_by_its_id_date():
    """柳辉 19791106 carries 431028197906112877 (the ID says 1979-06-11: day and month swapped by a
    clerk); the destination record has no ID number and says 1979-06. Read by the ID, they agree
    at the month. With an ID number on the other side too, the ID comparator weighs that date, so
    the record's own date alone is compared."""
    def side(birth, idb, idc, status):
        return {"birth_date": np.array(birth, dtype=object), "id_birth_date": np.array(idb, dtype=object),
                "id_clean": np.array(idc, dtype=object), "id_status": np.array(status, dtype=object)}

    own = "431028197906112877"
    left = side(["1979-11-06", "1979-11-06", "1979-06-11"], ["1979-06-11"] * 3, [own] * 3, ["valid"] * 3)
    right = side(["1979-06", "1979-06", "1980-02"], ["", "1979-06-30", ""], ["", "431028197906303334", ""],
                 ["missing", "valid", "missing"])
    got = [BIRTH_DATE.label(x) for x in BIRTH_DATE.compare(left, right)]
    # (the second pair by the record's own date: 1979-11-06 against 1979-06 is its day/month swap)
    assert got == ["coarser_equal", "day_month_swapped", "different"]
