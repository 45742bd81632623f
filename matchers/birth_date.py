"""Birth-date comparator: exact, equal at the coarser precision, ±2 days, day/month swapped,
lunar-as-solar shift, same year. A full date against a year-month can be day/month swapped or
lunar-shifted too (the month is the one those errors give).

The effective date of a record is ``birth_date`` (ISO ``YYYY-MM-DD`` / ``YYYY-MM`` /
``YYYY``) when present, else the ID's ``id_birth_date``. Precision is read from the shape of
the ISO text itself, so ``birth_precision`` is not needed. Dates are parsed once into
year/month/day integer arrays from a fixed-width byte matrix; day differences use numpy
datetime64.
"""
from __future__ import annotations

import numpy as np

from matchers._vec import code_matrix, column
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = (
    "exact", "coarser_equal", "within_2_days", "day_month_swapped", "lunar_shift", "same_year",
    "exact_implied_by_id", "coarser_implied_by_id", "different",
)
(EXACT, COARSER_EQUAL, WITHIN_2_DAYS, DAY_MONTH_SWAPPED, LUNAR_SHIFT, SAME_YEAR, EXACT_IMPLIED, COARSER_IMPLIED,
 DIFFERENT) = range(len(LEVELS))

# precisions
NONE, YEAR, MONTH, DAY = 0, 1, 2, 3
# a lunar birthday written as a solar date lands 19-55 days before the solar one (55: leap months)
LUNAR_MIN_DAYS, LUNAR_MAX_DAYS = 19, 55


def parse_iso(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised ISO parse: ``(year, month, day, precision)`` int arrays.

    Anything not shaped ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` with a month in 1..12 and a
    day in 1..31 has precision NONE (treated as missing).
    """
    n = len(values)
    codes, overflow = code_matrix(values, 10)
    # one small int16 vector per character position (no (n, 10) int64 temporaries)
    d = [codes[:, j].astype(np.int16) - 48 for j in range(10)]
    is_digit = [(x >= 0) & (x <= 9) for x in d]
    dash = -3  # ord("-") - 48
    year_ok = is_digit[0] & is_digit[1] & is_digit[2] & is_digit[3] & ~overflow
    month_ok = year_ok & (d[4] == dash) & is_digit[5] & is_digit[6]
    day_ok = month_ok & (d[7] == dash) & is_digit[8] & is_digit[9]
    year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]
    month = np.where(month_ok, d[5] * 10 + d[6], 0).astype(np.int16)
    day = np.where(day_ok, d[8] * 10 + d[9], 0).astype(np.int16)
    end4, end7 = codes[:, 4] == 0, codes[:, 7] == 0
    month_valid = (month >= 1) & (month <= 12)
    prec = np.full(n, NONE, dtype=np.int8)
    prec[year_ok & end4] = YEAR
    prec[month_ok & end7 & month_valid] = MONTH
    prec[day_ok & month_valid & (day >= 1) & (day <= 31)] = DAY  # width 10 + no overflow: length 10
    year = np.where(prec > NONE, year, 0).astype(np.int16)
    return year, month, day, prec


def _effective_parsed(cols: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parsed ``birth_date``; where it is empty (or not ISO), the parsed ``id_birth_date``."""
    ymdp = parse_iso(column(cols, "birth_date"))
    empty = np.flatnonzero(ymdp[3] == NONE)
    if len(empty):
        fill = parse_iso(column(cols, "id_birth_date")[empty])
        for arr, new in zip(ymdp, fill):
            arr[empty] = new
    return ymdp


def birth_agrees_with_id(cols: Columns) -> np.ndarray:
    """Per record (or pair side): True where ``birth_date`` is empty or agrees with
    ``id_birth_date`` at the birth date's own precision (1990-03 agrees with 1990-03-07).

    Vectorised: a record carrying someone else's ID number (a family member's, 重号) shows
    it by disagreeing; the ID comparator can use this without per-pair Python. Read from
    ``k_birth_differs`` (reconcile.keys, once per record) when the side has it.
    """
    if "k_birth_differs" in cols:
        return column(cols, "k_birth_differs") == ""
    bd, ib = column(cols, "birth_date"), column(cols, "id_birth_date")
    if len(bd) >= 10_000:
        # Pairs repeat each record's two dates many times: parse each distinct (date, ID date) once
        # (3x faster on candidate pairs; a missing cell (None/NaN) takes the direct path).
        import pandas as pd

        k1, _ = pd.factorize(bd, sort=False)
        k2, _ = pd.factorize(ib, sort=False)
        if not ((k1.size and k1.min() < 0) or (k2.size and k2.min() < 0)):
            combo, uniq = pd.factorize(k1.astype(np.int64) * (k2.max() + 1) + k2, sort=False)
            rep = np.empty(len(uniq), dtype=np.int64)
            rep[combo] = np.arange(len(combo))          # any pair with the combination represents it
            return _agrees_direct(bd[rep], ib[rep])[combo]
    return _agrees_direct(bd, ib)


def _agrees_direct(bd: np.ndarray, ib: np.ndarray) -> np.ndarray:
    y, m, d, p = parse_iso(bd)
    iy, im, idd, ip = parse_iso(ib)
    agree = (ip == DAY) & (p > NONE) & (y == iy)
    agree &= (p < MONTH) | (m == im)
    agree &= (p < DAY) | (d == idd)
    empty = (p == NONE) & (bd == "")
    return empty | agree


def _days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 for valid day-precision dates."""
    months = (year.astype(np.int64) - 1970) * 12 + (month - 1)
    return (months.astype("datetime64[M]").astype("datetime64[D]") + (day.astype(np.int64) - 1)).astype(np.int64)


def _date_levels(ya, ma, da, pa, yb, mb, db, pb) -> np.ndarray:
    """The date levels (exact .. different) of parsed dates; missing sides are left DIFFERENT."""
    n = len(ya)
    out = np.full(n, DIFFERENT, dtype=np.int8)
    if n == 0:
        return out
    missing = (pa == NONE) | (pb == NONE)
    both_day = (pa == DAY) & (pb == DAY)
    same_year = ya == yb
    same_month = same_year & (ma == mb)

    out[same_year] = SAME_YEAR
    idx = np.flatnonzero(both_day & ~missing)
    if len(idx):
        delta = np.abs(_days(ya[idx], ma[idx], da[idx]) - _days(yb[idx], mb[idx], db[idx]))
        lunar = (delta >= LUNAR_MIN_DAYS) & (delta <= LUNAR_MAX_DAYS)
        out[idx[lunar]] = LUNAR_SHIFT
        swapped = same_year[idx] & (ma[idx] == db[idx]) & (da[idx] == mb[idx]) & (ma[idx] != da[idx])
        out[idx[swapped]] = DAY_MONTH_SWAPPED
        out[idx[(delta >= 1) & (delta <= 2)]] = WITHIN_2_DAYS

    # one full date against a year-month (the other registry keeps only the month): the month can
    # still show the two errors that move a month. A lunar birthday written as solar lands 19-55
    # days off, so the month holds such a day (1979-03-09 against 1979-02); day and month swapped
    # before the day was dropped leaves the day as the month (1945-01-08 against 1945-08).
    idx = np.flatnonzero((((pa == DAY) & (pb == MONTH)) | ((pa == MONTH) & (pb == DAY))) & ~missing)
    if len(idx):
        a_day = pa[idx] == DAY
        y, m, d = (np.where(a_day, x, z) for x, z in ((ya[idx], yb[idx]), (ma[idx], mb[idx]), (da[idx], db[idx])))
        my, mm = np.where(a_day, yb[idx], ya[idx]), np.where(a_day, mb[idx], ma[idx])
        day = _days(y, m, d)
        first = _days(my, mm, np.ones_like(mm))
        last = _days(my + (mm == 12), np.where(mm == 12, 1, mm + 1), np.ones_like(mm)) - 1
        lunar = ((first <= day - LUNAR_MIN_DAYS) & (last >= day - LUNAR_MAX_DAYS)) | (
            (first <= day + LUNAR_MAX_DAYS) & (last >= day + LUNAR_MIN_DAYS))
        out[idx[lunar]] = LUNAR_SHIFT
        out[idx[(y == my) & (mm == d) & (m != d)]] = DAY_MONTH_SWAPPED

    # equal at the coarser precision; a 1 January date counts as year precision here
    qa = np.where((pa == DAY) & (ma == 1) & (da == 1), YEAR, pa)
    qb = np.where((pb == DAY) & (mb == 1) & (db == 1), YEAR, pb)
    coarse = np.minimum(qa, qb)
    coarser_equal = ((coarse == YEAR) & same_year) | ((coarse == MONTH) & same_month)
    out[coarser_equal] = COARSER_EQUAL
    out[both_day & same_month & (da == db)] = EXACT
    out[missing] = DIFFERENT
    return out


def compare_birth_date(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either side has no usable effective date.

    A 1 January date (a common placeholder for "year only") against another date of the
    same year is ``coarser_equal``: it is read as year precision unless both sides agree
    to the day.
    """
    ya, ma, da, pa = _effective_parsed(left)
    yb, mb, db, pb = _effective_parsed(right)
    out = _date_levels(ya, ma, da, pa, yb, mb, db, pb)
    missing = (pa == NONE) | (pb == NONE)
    if len(out) and "id_clean" in left and "id_clean" in right:
        # A record whose own birth date disagrees with its ID's has two readings (a swapped day and
        # month, a lunar date, a clerk's slip). Against a record WITHOUT a usable ID number the
        # ID's reading is the only way to see that date again: take the better of the two. (Where
        # both have numbers, the ID comparator already weighs the ID's date.)
        # (the date levels are symmetric, so which side is read by its ID does not matter)
        for mine, other, other_dates in ((left, right, (yb, mb, db, pb)), (right, left, (ya, ma, da, pa))):
            rows = np.flatnonzero((column(other, "id_clean") == "") & (column(mine, "id_birth_date") != "")
                                  & ~birth_agrees_with_id(mine))
            if not len(rows):
                continue
            iy, im, idd, ip = parse_iso(column(mine, "id_birth_date")[rows])
            oy, om, od, op = (x[rows] for x in other_dates)
            alt = _date_levels(iy, im, idd, ip, oy, om, od, op)
            ok = (ip != NONE) & (op != NONE)
            better = ok & ((alt < out[rows]) | missing[rows])
            out[rows[better]] = alt[better]
            missing[rows[better]] = False
    # Agreement the two ID numbers already state (both encode this birth date): clerks copy the
    # date from the ID, so it is no second piece of evidence, and counting it again made two people
    # carrying one ID number (重号: born the same day, often in one family) look like one person.
    # Its weight is 0 (reconcile.model.NEUTRAL_LEVELS); disagreement still counts.
    # Only where the ID comparator sees both numbers (an Excel-damaged or missing number does not
    # count there, so its birth part still counts here).
    from matchers.id_number import id_counts_agreement

    implied = id_counts_agreement(left, right, "id_birth_date", only=(out == EXACT) | (out == COARSER_EQUAL))
    out[implied & (out == EXACT)] = EXACT_IMPLIED
    out[implied & (out == COARSER_EQUAL)] = COARSER_IMPLIED
    out[missing] = MISSING
    return out


BIRTH_DATE = Comparator(
    field="birth_date", levels=LEVELS,
    columns=("birth_date", "id_birth_date", "id_clean", "id_status", "k_id_excel", "k_birth_differs"),
    fn=compare_birth_date, unshown=("k_id_excel", "k_birth_differs")
)
