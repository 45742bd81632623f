"""One string object per distinct value in a column.

A million-record registry holds tens of millions of cells, and most columns repeat a few values
(a birth year, a surname, a county code). A column computed row by row, or by a numpy string
operation turned back into objects, holds a separate copy of "1985" in every row that has it:
about 50 bytes each, on both sides of a run and again in the pickle the loading worker sends
(reconcile.parallel; pickle writes an object it has seen once as a reference). Sharing one
object per value changes no value, only the memory. The columns made here have their codes
remembered (reconcile.codes.spread): blocking and the comparators group them without
factorising them again.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from reconcile.codes import lookup, spread


def shared_values(values) -> np.ndarray:
    """``values`` as an object array in which equal values are one object (factorised in C)."""
    arr = np.asarray(values, dtype=object)
    if arr.size == 0:
        return arr
    codes, uniques = factorised(arr)
    return spread(uniques, codes, distinct=True)


def take_shared(uniques, codes: np.ndarray) -> np.ndarray:
    """``uniques`` spread to rows by ``codes`` (from a factorisation), one object per value even
    where two distinct inputs gave one result (the surname 张 of every name 张...)."""
    return spread(uniques, codes) if len(codes) else shared_values(uniques)


def per_distinct_value(values, fn: Callable[[str], str]) -> np.ndarray:
    """``fn`` of every row's value (as str), computed once per distinct value; equal results are
    one object."""
    codes, uniques = factorised(np.asarray(values, dtype=object))
    return take_shared([fn(str(u)) for u in uniques], codes)


def factorised(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of an object array, a missing value (None/NaN) one of the values:
    its memoised codes when it has them (reconcile.codes), else pandas.factorize's."""
    got = lookup(arr)
    if got is not None and not got.missing:
        return got.codes, got.uniques
    codes, uniques = pd.factorize(arr, sort=False, use_na_sentinel=False)
    return codes, np.asarray(uniques, dtype=object)
