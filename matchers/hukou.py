"""Hukou comparator: same county, same city, same province, different.

Reads ``hukou_region`` only: the current 6-digit county code resolved from the hukou
address. It deliberately does NOT fall back to ``id_region``: the ID's region is where the
birth was first registered (often before a re-coding, or before the family moved), so it
says nothing reliable about the hukou today, and the ID comparator already uses it.

A code the resolver could only place at city level (``431000``: last two digits ``00``) or
province level (``430000``) compares at that precision: it can at best be ``same_city``
(resp. ``same_province``), never ``same_county``.
"""
from __future__ import annotations

import numpy as np

from matchers._vec import code_matrix, column
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = ("same_county", "same_city", "same_province", "different")
SAME_COUNTY, SAME_CITY, SAME_PROVINCE, DIFFERENT = range(len(LEVELS))

_COUNTY, _CITY, _PROVINCE, _NONE = 3, 2, 1, 0


def _parse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code matrix (n, 6) and precision per code (0 when not a 6-digit code).

    Column-wise operations throughout: numpy reductions along a 6-wide axis are slow.
    """
    codes, overflow = code_matrix(values, 6)
    cols = [codes[:, j] for j in range(6)]
    ok = ~overflow
    for c in cols:
        ok &= (c >= 48) & (c <= 57)
    zero = [c == 48 for c in cols]
    prec = np.full(len(values), _COUNTY, dtype=np.int8)
    prec[zero[4] & zero[5]] = _CITY
    prec[zero[2] & zero[3] & zero[4] & zero[5]] = _PROVINCE
    prec[~ok | (zero[0] & zero[1])] = _NONE
    return codes, prec


def compare_hukou(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either ``hukou_region`` is not a usable code."""
    a, b = column(left, "hukou_region"), column(right, "hukou_region")
    n = len(a)
    out = np.full(n, DIFFERENT, dtype=np.int8)
    if n == 0:
        return out
    ca, pa = _parse(a)
    cb, pb = _parse(b)
    prec = np.minimum(pa, pb)
    eq = [ca[:, j] == cb[:, j] for j in range(6)]
    province = eq[0] & eq[1]
    city = province & eq[2] & eq[3]
    county = city & eq[4] & eq[5]
    out[province] = SAME_PROVINCE
    out[city & (prec >= _CITY)] = SAME_CITY
    out[county & (prec >= _COUNTY)] = SAME_COUNTY
    out[prec == _NONE] = MISSING
    return out


HUKOU = Comparator(field="hukou", levels=LEVELS, columns=("hukou_region",), fn=compare_hukou)
