"""Birth-date comparator: exact, equal at the coarser precision, ±2 days, day/month swapped,
lunar-as-solar shift, same year.

The effective date of a record is ``birth_date`` (ISO ``YYYY-MM-DD`` / ``YYYY-MM`` /
``YYYY``) when present, else the ID's ``id_birth_date``. Precision is read from the shape of
the ISO text itself, so ``birth_precision`` is not needed. Dates are parsed once into
year/month/day integer arrays from a fixed-width byte matrix; day differences use numpy
datetime64.
"""
from __future__ import annotations

import numpy as np

from matchers._vec import code_matrix, column, lengths
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = (
    "exact", "coarser_equal", "within_2_days", "day_month_swapped", "lunar_shift", "same_year", "different",
)
EXACT, COARSER_EQUAL, WITHIN_2_DAYS, DAY_MONTH_SWAPPED, LUNAR_SHIFT, SAME_YEAR, DIFFERENT = range(len(LEVELS))

# precisions
NONE, YEAR, MONTH, DAY = 0, 1, 2, 3
# a lunar birthday written as a solar date lands 19-54 days before the solar one
LUNAR_MIN_DAYS, LUNAR_MAX_DAYS = 19, 54


def parse_iso(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised ISO parse: ``(year, month, day, precision)`` int arrays.

    Anything not shaped ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` with a month in 1..12 and a
    day in 1..31 has precision NONE (treated as missing).
    """
    n = len(values)
    codes, overflow = code_matrix(values, 10)
    c = codes.astype(np.int64)
    digit = (c >= 48) & (c <= 57)
    dig = c - 48
    ln = lengths(codes)
    year_ok = digit[:, :4].all(axis=1) & ~overflow
    month_ok = year_ok & (c[:, 4] == 45) & digit[:, 5:7].all(axis=1)
    day_ok = month_ok & (c[:, 7] == 45) & digit[:, 8:10].all(axis=1)
    year = dig[:, 0] * 1000 + dig[:, 1] * 100 + dig[:, 2] * 10 + dig[:, 3]
    month = np.where(month_ok, dig[:, 5] * 10 + dig[:, 6], 0)
    day = np.where(day_ok, dig[:, 8] * 10 + dig[:, 9], 0)
    prec = np.full(n, NONE, dtype=np.int8)
    prec[year_ok & (ln == 4)] = YEAR
    prec[month_ok & (ln == 7) & (month >= 1) & (month <= 12)] = MONTH
    prec[day_ok & (ln == 10) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)] = DAY
    year = np.where(prec > NONE, year, 0)
    return year, month, day, prec


def _effective(cols: Columns) -> np.ndarray:
    bd = column(cols, "birth_date")
    return np.where(bd != "", bd, column(cols, "id_birth_date"))


def _days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 for valid day-precision dates."""
    months = (year - 1970) * 12 + (month - 1)
    return (months.astype("datetime64[M]").astype("datetime64[D]") + (day - 1)).astype(np.int64)


def compare_birth_date(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either side has no usable effective date.

    A 1 January date (a common placeholder for "year only") against another date of the
    same year is ``coarser_equal``: it is read as year precision unless both sides agree
    to the day.
    """
    ya, ma, da, pa = parse_iso(_effective(left))
    yb, mb, db, pb = parse_iso(_effective(right))
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

    # equal at the coarser precision; a 1 January date counts as year precision here
    qa = np.where((pa == DAY) & (ma == 1) & (da == 1), YEAR, pa)
    qb = np.where((pb == DAY) & (mb == 1) & (db == 1), YEAR, pb)
    coarse = np.minimum(qa, qb)
    coarser_equal = ((coarse == YEAR) & same_year) | ((coarse == MONTH) & same_month)
    out[coarser_equal] = COARSER_EQUAL
    out[both_day & same_month & (da == db)] = EXACT
    out[missing] = MISSING
    return out


BIRTH_DATE = Comparator(
    field="birth_date", levels=LEVELS, columns=("birth_date", "id_birth_date"), fn=compare_birth_date
)
