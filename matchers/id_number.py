"""ID number comparator: equal, equal after 15->18 upgrade, one typo apart, same region+birth.

Reads ``id_clean`` (18 cleaned characters, filled even when the checksum fails, so a typo is
visible) and ``id_status``. Pairs are compared as ``(n, 18)`` character-code matrices.

Why no checksum rule in ``typo``: two *valid* 18-digit numbers can never be one substitution
or one adjacent transposition apart (ISO 7064 MOD 11-2 detects both), so a ``typo`` pair
always has a bad checksum on one side, or an ID upgraded from 15 digits (whose typo was
upgraded with a fresh check digit).
"""
from __future__ import annotations

import numpy as np

from matchers._vec import code_matrix, column, lengths
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = ("exact", "exact_upgraded", "typo", "same_region_birth", "different")
EXACT, EXACT_UPGRADED, TYPO, SAME_REGION_BIRTH, DIFFERENT = range(len(LEVELS))

ID_LENGTH = 18
REGION_BIRTH_CHARS = 14  # 6 region digits + 8 birth-date digits; then 3 sequence + 1 check


def compare_id(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either ``id_clean`` is empty.

    Equal numbers are ``exact`` (also when both have the same bad checksum: an identical
    wrong number copied between registries is still the same number) unless exactly one
    side was upgraded from 15 digits, which is ``exact_upgraded``. Numbers of another length
    than 18 (not expected from the standardiser) still compare for equality and typos.
    """
    a, b = column(left, "id_clean"), column(right, "id_clean")
    n = len(a)
    out = np.full(n, DIFFERENT, dtype=np.int8)
    if n == 0:
        return out
    missing = (a == "") | (b == "")
    equal = (a == b) & ~missing
    upgraded = (column(left, "id_status") == "upgraded_from_15") ^ (column(right, "id_status") == "upgraded_from_15")
    out[equal] = EXACT
    out[equal & upgraded] = EXACT_UPGRADED

    todo = np.flatnonzero(~equal & ~missing)
    if len(todo):
        ca, over_a = code_matrix(a[todo], ID_LENGTH)
        cb, over_b = code_matrix(b[todo], ID_LENGTH)
        out[todo] = _levels_fixed(ca, cb, over_a | over_b)
        long_rows = over_a | over_b
        if long_rows.any():  # not expected: compare overlong values at their own width
            idx = todo[long_rows]
            width = max(max(len(s) for s in a[idx]), max(len(s) for s in b[idx]))
            la, _ = code_matrix(a[idx], width)
            lb, _ = code_matrix(b[idx], width)
            out[idx] = _levels_fixed(la, lb, np.zeros(len(idx), dtype=bool))
    out[missing] = MISSING
    return out


def _levels_fixed(ca: np.ndarray, cb: np.ndarray, overflow: np.ndarray) -> np.ndarray:
    """Levels for unequal, non-missing pairs given their zero-padded code matrices."""
    out = np.full(len(ca), DIFFERENT, dtype=np.int8)
    same_len = lengths(ca) == lengths(cb)
    diff = ca != cb
    hamming = diff.sum(axis=1)
    typo = same_len & (hamming == 1)
    # adjacent transposition: exactly two differences, side by side, characters swapped
    two = np.flatnonzero(same_len & (hamming == 2))
    if len(two):
        first = diff[two].argmax(axis=1)
        nxt = np.minimum(first + 1, ca.shape[1] - 1)
        rows = two
        swapped = (
            diff[rows, nxt]
            & (ca[rows, first] == cb[rows, nxt])
            & (ca[rows, nxt] == cb[rows, first])
        )
        typo[two[swapped]] = True
    full = same_len & (lengths(ca) == ID_LENGTH) & ~overflow
    region_birth = full & ~diff[:, :REGION_BIRTH_CHARS].any(axis=1)
    out[region_birth] = SAME_REGION_BIRTH
    out[typo] = TYPO
    return out


ID_NUMBER = Comparator(field="id_number", levels=LEVELS, columns=("id_clean", "id_status"), fn=compare_id)
