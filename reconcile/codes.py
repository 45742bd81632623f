"""Integer codes of a column's values, computed once per array and shared by every stage that
groups records by value.

Blocking factorises its key columns over both registries, the comparators group a column's
distinct values, EM counts exact agreements: at 1,000,000 persons each factorised the same
columns again (factorize_array was 14.7 s of the 48 s cross-registry linkage in a py-spy
profile). Here a column is factorised once per side; the codes over two sides together come from
the two sides' distinct values, not their rows. The smaller registry's codes are computed by its
within-file blocking, while the larger one is still loading (reconcile.parallel).

Most columns are not factorised at all: a column computed once per distinct value of another (a
name's pinyin, an address's county) is made by ``spread``, whose codes are those of its source,
and the loader's text columns come with the codes Arrow's dictionary encoding gave them
(reconcile.loading); the loading worker sends such a column as its codes and distinct values
(reconcile.packing), which the receiving end remembers. Before, pandas.factorize took 6.0 s of
the main process's CPU and 4.6 s of the worker's at 300,000 persons (a third of it coding again
columns whose codes had been known when they were made); 4.6 and 2.9 s after.

A memo entry belongs to the memory an array views (its base array, held by a weak reference):
it goes when that does. The arrays are the standardised frames' columns, which nothing writes
into once built (columns are replaced whole); a spot check of a few rows on every use guards that.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Codes:
    """``uniques.take(codes)`` is the array; -1 codes a missing value (NaN/None), when ``missing``."""

    codes: np.ndarray     # one per row: uint8/uint16/int32 in the memo (narrow_codes: widen before arithmetic)
    uniques: np.ndarray   # object (or the array's dtype), in order of first appearance
    missing: bool         # whether some code is -1

    @property
    def n(self) -> int:
        return len(self.uniques)


# share of distinct values on the left from which joint_codes factorises the rows of both sides,
# not the sides' distinct values
DISTINCT_SHARE = 0.5

_MEMO: dict[tuple, tuple[weakref.ref, Codes]] = {}
# rows checked against the memo's codes on each use (an array written into since is computed afresh)
SPOT_CHECK = 64


def _root(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _key(arr: np.ndarray) -> tuple:
    return (id(_root(arr)), arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)


def _still_same(arr: np.ndarray, got: Codes) -> bool:
    n = len(arr)
    if n == 0:
        return True
    rows = np.linspace(0, n - 1, min(n, SPOT_CHECK)).astype(np.int64)
    c = got.codes[rows]
    seen = got.uniques.take(np.maximum(c, 0))
    vals = arr[rows]
    return all((ci < 0 and pd.isna(v)) or (ci >= 0 and v == s)
               for ci, v, s in zip(c.tolist(), vals.tolist(), seen.tolist()))


def narrow_codes(codes: np.ndarray, n: int, missing: bool) -> np.ndarray:
    """``codes`` (of ``n`` distinct values) in the smallest type that holds them: uint8 / uint16
    without a missing value (-1), int32 else. A registry's sexes, dates and counties need one or
    two bytes a row: at 1,856,076 rows 1.9 or 3.7 MB a column in the memo instead of 7.4."""
    if not missing and n <= 1 << 8:
        return codes.astype(np.uint8, copy=False)
    if not missing and n <= 1 << 16:
        return codes.astype(np.uint16, copy=False)
    return codes.astype(np.int32, copy=False)


def lookup(arr: np.ndarray) -> Codes | None:
    """``arr``'s memoised codes, or None (nothing is computed)."""
    arr = np.asarray(arr)
    if arr.ndim != 1:
        return None
    hit = _MEMO.get(_key(arr))
    if hit is not None and hit[0]() is not None and _still_same(arr, hit[1]):
        return hit[1]
    return None


def codes_of(arr: np.ndarray) -> Codes:
    """``arr``'s codes (pandas.factorize, appearance order), memoised while the memory it views lives."""
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise ValueError("codes_of takes one column")
    got = lookup(arr)
    if got is not None:
        return got
    codes, uniques = pd.factorize(arr, sort=False)
    missing = bool(codes.size) and int(codes.min()) < 0
    got = Codes(narrow_codes(codes, len(uniques), missing), np.asarray(uniques), missing)
    remember(arr, got)
    return got


# A column this long is first looked at in a sample of SAMPLE values spread over it
DISTINCT_SAMPLE_FROM = 200_000
DISTINCT_SAMPLE = 20_000
# distinct share in that sample from which the column counts as nearly all distinct: at 1,000,000
# persons ID numbers show 0.97-0.99 (0.96-0.97 of the whole column), names 0.81 (0.31-0.37)
NEARLY_ALL = 0.95


def nearly_all_distinct(arr: np.ndarray) -> bool:
    """Whether a long column's values are nearly all distinct (ID numbers), judged from an even
    sample: then coding the whole column (0.7 s for 1.86 M numbers) would only show it has too
    many distinct values (reconcile.compare), or save a few repeats of a per-value function
    (standardise's ID numbers). A guess: either answer gives the same result, only the way differs."""
    n = len(arr)
    if n < DISTINCT_SAMPLE_FROM:
        return False
    sample = arr[:: n // DISTINCT_SAMPLE]
    try:
        return len(pd.unique(sample)) >= NEARLY_ALL * len(sample)
    except TypeError:   # unhashable values: the full path decides
        return False


def _in_appearance_order(codes: np.ndarray, uniques: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) renumbered as pandas.factorize numbers them: in the order the rows first
    show each value, values no row shows left out. Unchanged (no copy) when they already are."""
    n = len(codes)
    first = np.full(len(uniques), n, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)   # each value's first row
    if bool((first[1:] > first[:-1]).all()) and (not len(first) or first[-1] < n):
        return codes, uniques
    order = np.argsort(first, kind="stable")
    order = order[first[order] < n]
    renumber = np.empty(len(uniques), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return renumber.take(codes), uniques.take(order)


def spread(values, codes: np.ndarray, distinct: bool = False) -> np.ndarray:
    """``values[codes]``: a column computed once per distinct value of another (``values``, one per
    code) spread to its rows, one object per distinct result (two inputs may give one: the
    surname 张 of every name 张...), and its codes remembered, derived from ``codes`` instead of
    factorising the rows again. ``distinct``: the values are known distinct (a factorisation's
    own). A result that is missing (None/NaN) leaves the codes unremembered."""
    vals = np.asarray(values, dtype=object)
    if vals.ndim != 1:   # (a list of sequences would make a matrix)
        vals = np.empty(len(values), dtype=object)
        vals[:] = list(values)
    if distinct:
        m, uniq = None, vals
        # (all str, checked in C: no missing value; pd.isna scans slower)
        missing = pd.api.types.infer_dtype(vals, skipna=False) != "string" and bool(pd.isna(vals).any())
    else:
        m, uniq = pd.factorize(vals, sort=False)
        uniq = np.asarray(uniq, dtype=object)
        missing = bool(len(m)) and int(m.min()) < 0
    if missing:   # as they are (factorising would make a None NaN)
        return vals.take(codes) if len(codes) else vals[:0]
    if not len(codes):
        return uniq[:0]
    rows = codes if m is None else m.take(codes)
    out = uniq.take(rows)
    rows, uniq = _in_appearance_order(rows, uniq)
    remember(out, Codes(narrow_codes(rows, len(uniq), False), uniq, False))
    return out


def take_rows(arr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``arr[rows]``, with its codes remembered when ``arr``'s are (a loader's columns without the
    rows it rejected)."""
    got = lookup(arr)
    out = np.asarray(arr)[rows]
    if got is not None and not got.missing and len(out):
        codes, uniq = _in_appearance_order(got.codes[rows], got.uniques)
        remember(out, Codes(narrow_codes(codes, len(uniq), False), uniq, False))
    return out


def remember(arr: np.ndarray, got: Codes) -> None:
    """Keep ``got`` as ``arr``'s codes (computed elsewhere, e.g. with the array itself)."""
    key = _key(arr)
    # the entry goes with the memory (a blocking key column dropped once blocking is done)
    ref = weakref.ref(_root(arr), lambda _, key=key: _MEMO.pop(key, None))
    _MEMO[key] = (ref, got)


# joint codes of two nearly distinct arrays (ID numbers: their rows factorised together), kept
# while both live (narrowed): blocking, EM's exact agreement shares and the ID conflicts read the
# same ID numbers of both registries (at 1,000,000 persons EM coded the 2.9 M numbers again: 1.4 s).
# Codes made from the sides' distinct values are cheap to make again, and not kept (at that size
# every key column's would have held the main process's peak 0.4 GB higher).
_JOINT: dict[tuple, tuple[weakref.ref, weakref.ref, Codes]] = {}


def joint_codes(left: np.ndarray, right: np.ndarray) -> Codes:
    """The codes (int64) of ``concatenate([left, right])`` as pandas.factorize gives them
    (appearance order), from each side's memoised codes: the sides' distinct values are
    factorised together, not their rows. Memoised while both arrays' memory lives."""
    left, right = np.asarray(left), np.asarray(right)
    key = (_key(left), _key(right))
    hit = _JOINT.get(key)
    if hit is not None and hit[0]() is not None and hit[1]() is not None:
        got, nl = hit[2], len(left)
        if _still_same(left, replace(got, codes=got.codes[:nl])) and \
                _still_same(right, replace(got, codes=got.codes[nl:])):
            return replace(got, codes=got.codes.astype(np.int64))
    got, by_rows = _joint_codes(left, right)
    if by_rows:
        forget_key = lambda _, key=key: _JOINT.pop(key, None)   # noqa: E731 - either side's memory going
        _JOINT[key] = (weakref.ref(_root(left), forget_key), weakref.ref(_root(right), forget_key),
                       replace(got, codes=narrow_codes(got.codes, got.n, got.missing)))
    return got


def _joint_codes(left: np.ndarray, right: np.ndarray) -> tuple[Codes, bool]:
    """(joint codes, whether the rows of both were factorised)."""
    a = codes_of(left)
    # nearly all distinct on the left (ID numbers): then the right's distinct values are about
    # as many as its rows, and factorising the rows of both at once is the cheaper way (1.3 s
    # against 2.3 s for 2.9 M ID numbers)
    b = None if a.missing or a.n > DISTINCT_SHARE * len(a.codes) else codes_of(right)
    if b is None or b.missing:   # (no key column has missing values)
        codes, uniques = pd.factorize(np.concatenate([np.asarray(left), np.asarray(right)]), sort=False)
        return Codes(codes.astype(np.int64, copy=False), np.asarray(uniques), bool((codes < 0).any())), True
    # left's distinct values come first in left's order, then right's new ones in right's: the
    # order of first appearance in the concatenation
    m, uniques = pd.factorize(np.concatenate([a.uniques, b.uniques]), sort=False)
    m = m.astype(np.int64, copy=False)
    codes = np.concatenate([m[: a.n].take(a.codes), m[a.n:].take(b.codes)])   # int64
    return Codes(codes, np.asarray(uniques), False), False


def forget() -> None:
    """Let go of every memoised code (``match`` once its linkages are done: the comparators'
    columns live on to the report, their codes are not needed there; 225 MB at 1,000,000)."""
    _MEMO.clear()
    _JOINT.clear()
