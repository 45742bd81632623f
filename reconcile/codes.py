"""Integer codes of a column's values, computed once per array and shared by every stage that
groups records by value.

Blocking factorises its key columns over both registries, the comparators group a column's
distinct values, EM counts exact agreements: at 1,000,000 persons each factorised the same
columns again (factorize_array was 14.7 s of the 48 s cross-registry linkage in a py-spy
profile). Here a column is factorised once per side; the codes over two sides together come from
the two sides' distinct values, not their rows. The smaller registry's codes are computed by its
within-file blocking, while the larger one is still loading (reconcile.parallel).

A memo entry belongs to the memory an array views (its base array, held by a weak reference):
it goes when that does. The arrays are the standardised frames' columns, which nothing writes
into once built (columns are replaced whole); a spot check of a few rows on every use guards that.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Codes:
    """``uniques.take(codes)`` is the array; -1 codes a missing value (NaN/None), when ``missing``."""

    codes: np.ndarray     # one per row: int32 in the memo (half the memory; widen before arithmetic), int64 joint
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


def codes_of(arr: np.ndarray) -> Codes:
    """``arr``'s codes (pandas.factorize, appearance order), memoised while the memory it views lives."""
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise ValueError("codes_of takes one column")
    key = _key(arr)
    hit = _MEMO.get(key)
    if hit is not None and hit[0]() is not None and _still_same(arr, hit[1]):
        return hit[1]
    codes, uniques = pd.factorize(arr, sort=False)
    got = Codes(codes.astype(np.int32), np.asarray(uniques), bool(codes.size) and int(codes.min()) < 0)
    remember(arr, got)
    return got


def remember(arr: np.ndarray, got: Codes) -> None:
    """Keep ``got`` as ``arr``'s codes (computed elsewhere, e.g. with the array itself)."""
    key = _key(arr)
    # the entry goes with the memory (a blocking key column dropped once blocking is done)
    ref = weakref.ref(_root(arr), lambda _, key=key: _MEMO.pop(key, None))
    _MEMO[key] = (ref, got)


def joint_codes(left: np.ndarray, right: np.ndarray) -> Codes:
    """The codes of ``concatenate([left, right])`` as pandas.factorize gives them (appearance
    order), from each side's memoised codes: the sides' distinct values are factorised together,
    not their rows."""
    a = codes_of(left)
    # nearly all distinct on the left (ID numbers): then the right's distinct values are about
    # as many as its rows, and factorising the rows of both at once is the cheaper way (1.3 s
    # against 2.3 s for 2.9 M ID numbers)
    b = None if a.missing or a.n > DISTINCT_SHARE * len(a.codes) else codes_of(right)
    if b is None or b.missing:   # (no key column has missing values)
        codes, uniques = pd.factorize(np.concatenate([np.asarray(left), np.asarray(right)]), sort=False)
        return Codes(codes.astype(np.int64, copy=False), np.asarray(uniques), bool((codes < 0).any()))
    # left's distinct values come first in left's order, then right's new ones in right's: the
    # order of first appearance in the concatenation
    m, uniques = pd.factorize(np.concatenate([a.uniques, b.uniques]), sort=False)
    m = m.astype(np.int64, copy=False)
    codes = np.concatenate([m[: a.n].take(a.codes), m[a.n:].take(b.codes)])   # int64
    return Codes(codes, np.asarray(uniques), False)


def forget() -> None:
    """Let go of every memoised code (``match`` once its linkages are done: the comparators'
    columns live on to the report, their codes are not needed there; 225 MB at 1,000,000)."""
    _MEMO.clear()
