"""Compare candidate pairs field by field, in chunks, into a small-int level matrix."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from matchers.base import Comparator
from reconcile.codes import codes_of, nearly_all_distinct

DEFAULT_CHUNK = 500_000


def column_arrays(df: pd.DataFrame, comparators: Sequence[Comparator]) -> dict[str, np.ndarray]:
    """The columns the comparators read, as numpy object arrays (indexed by position)."""
    cols = sorted({c for comp in comparators for c in comp.columns})
    return {c: _text_array(df[c]) for c in cols}


def _text_array(s: pd.Series) -> np.ndarray:
    """One column as an object array of str: the column's own values when they are all str (a
    standardised frame: checked in C, half the time of converting 1.86 M values, and no copy of
    its pointers), read-only; else converted."""
    arr = s.to_numpy()
    if arr.dtype == object and pd.api.types.infer_dtype(arr, skipna=False) == "string":
        view = arr.view()
        view.flags.writeable = False   # the frame's own column: a comparator writing to it fails loudly
        return view
    return s.astype(str).to_numpy(dtype=object)


def compare_pairs(
    left: dict[str, np.ndarray],
    right: dict[str, np.ndarray],
    li: np.ndarray,
    ri: np.ndarray,
    comparators: Sequence[Comparator],
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Levels (int8, shape pairs x fields) for the pairs (li[k], ri[k]).

    A comparator's level depends only on the values of its columns in the two records, so where
    a field has few distinct values on a side (sex, hukou county, birth date) each distinct
    (left values, right values) combination is compared once and its level spread to every pair
    that has it: the same levels, a fraction of the work.
    """
    n = len(li)
    out = np.empty((n, len(comparators)), dtype=np.int8)
    direct: list[int] = []
    # Coding a column costs a pass over every record; it pays when the pairs outnumber the records
    # (a full linkage), not when a few new pairs meet a large population (an incremental run).
    rows = max(len(left[comparators[0].columns[0]]), len(right[comparators[0].columns[0]])) if comparators else 0
    worth_it = n > chunk // 50 and n >= rows
    for f, comp in enumerate(comparators):
        plan = _distinct_plan(left, right, li, ri, comp.columns) if worth_it else None
        if plan is None:
            direct.append(f)
        else:
            rep, inv = plan
            out[:, f] = _compare_chunked(left, right, li[rep], ri[rep], comp, chunk)[inv]
    # The other fields pair by pair, chunk by chunk; a column several comparators read (id_clean,
    # id_status, birth_date, ...) is gathered once per chunk and handed to them read-only.
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lsel, rsel = li[start:stop], ri[start:stop]
        lcache: dict[str, np.ndarray] = {}
        rcache: dict[str, np.ndarray] = {}
        for f in direct:
            comp = comparators[f]
            out[start:stop, f] = comp.compare({c: _gather(left, c, lsel, lcache) for c in comp.columns},
                                              {c: _gather(right, c, rsel, rcache) for c in comp.columns})
    return out


def _gather(arrs: dict[str, np.ndarray], c: str, sel: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
    got = cache.get(c)
    if got is None:
        got = arrs[c][sel]
        if isinstance(got, np.ndarray):
            got.flags.writeable = False   # shared by comparators: one writing to it would fail loudly
        cache[c] = got
    return got


def _compare_chunked(left, right, li: np.ndarray, ri: np.ndarray, comp: Comparator, chunk: int) -> np.ndarray:
    n = len(li)
    out = np.empty(n, dtype=np.int8)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lsel, rsel = li[start:stop], ri[start:stop]
        lcols = {c: left[c][lsel] for c in comp.columns}
        rcols = {c: right[c][rsel] for c in comp.columns}
        out[start:stop] = comp.compare(lcols, rcols)
    return out


# Compare distinct value combinations only when a side has at most this share of distinct values
# (ID numbers are nearly all distinct: there the bookkeeping would cost more than it saves).
DISTINCT_SHARE = 0.5


def _codes_of(arr: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Integer codes of one column's values (memoised per array while it lives, reconcile.codes:
    a linkage's candidate pairs and its u sample compare the same arrays, blocking grouped them
    before); None when a value is missing (NaN/None), which this shortcut does not try to group."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 1:   # (a list: factorised as it is, not kept)
        codes, uniq = pd.factorize(arr, sort=False)
        return None if codes.size and codes.min() < 0 else (codes.astype(np.int64), len(uniq))
    got = codes_of(arr)
    if got.missing:
        return None
    return got.codes.astype(np.int64), got.n


def _value_codes(arrs: dict[str, np.ndarray], cols: Sequence[str], limit: float) -> tuple[np.ndarray, int] | None:
    """One integer per record for its tuple of values in ``cols`` (equal tuples, equal codes);
    None as soon as one column alone has more than ``limit`` distinct values (the tuple can only
    have more), or a value is missing."""
    codes: np.ndarray | None = None
    n_codes = 1
    for c in cols:
        if limit < np.inf and nearly_all_distinct(arrs[c]):
            return None
        got = _codes_of(arrs[c])
        if got is None:
            return None
        k, n_uniq = got
        if n_uniq > limit:
            return None
        if codes is None:
            codes, n_codes = k, n_uniq
        else:
            codes, uniq2 = pd.factorize(codes * n_uniq + k, sort=False)
            codes, n_codes = codes.astype(np.int64), len(uniq2)
        if n_codes > limit:
            return None
    assert codes is not None
    return codes, n_codes


def _distinct_plan(left, right, li: np.ndarray, ri: np.ndarray, cols: Sequence[str]):
    """(representative pair per distinct value combination, combination of every pair), or None
    when the field's values are mostly distinct on both sides."""
    # one side with few distinct values is enough: try the smaller-looking side first
    lv = _value_codes(left, cols, DISTINCT_SHARE * len(left[cols[0]]))
    if right is left:
        rv = lv
    elif lv is None:
        rv = _value_codes(right, cols, DISTINCT_SHARE * len(right[cols[0]]))
        if rv is None:
            return None
        lv = _value_codes(left, cols, np.inf)
    else:
        rv = _value_codes(right, cols, np.inf)
    if lv is None or rv is None:
        return None
    lcode, nl = lv
    rcode, nr = rv
    pair = lcode[li] * nr + rcode[ri]
    n = pair.size
    if nl * nr <= 4 * n:   # few combinations: a dense table, no sort
        first = np.full(nl * nr, -1, dtype=np.int64)
        first[pair[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)   # the first pair of each
        present = first >= 0
        rep = first[present]
        inv = (np.cumsum(present) - 1)[pair]
    else:
        order = np.argsort(pair, kind="stable")
        ps = pair[order]
        head = np.ones(n, dtype=bool)
        head[1:] = ps[1:] != ps[:-1]
        rep = order[head]
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.cumsum(head) - 1
    return rep, inv


def random_pairs(n_left: int, n_right: int | None, size: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random record pairs (for u estimation); within one frame (n_right None) i != j."""
    rng = np.random.default_rng(seed)
    same = n_right is None
    nr = n_left if same else n_right
    if n_left == 0 or nr == 0:
        e = np.empty(0, np.int64)
        return e, e
    i = rng.integers(0, n_left, size)
    j = rng.integers(0, nr, size)
    if same:
        keep = i != j
        i, j = i[keep], j[keep]
    return i.astype(np.int64), j.astype(np.int64)
