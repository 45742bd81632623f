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

LEVELS: tuple[str, ...] = (
    "exact", "exact_upgraded", "exact_recoded", "typo", "excel_prefix", "same_region_birth", "different",
    "different_valid",
)
(EXACT, EXACT_UPGRADED, EXACT_RECODED, TYPO, EXCEL_PREFIX, SAME_REGION_BIRTH, DIFFERENT,
 DIFFERENT_VALID) = range(len(LEVELS))

# `excel_prefix`: one number lost its tail to Excel (15 significant digits kept, the rest printed as
# 0: ...182000, or 4.31028201001182E+17) and the other number starts with the 15 that are left.
# A damaged number whose 000 tail happens to pass the check counts too: a real number ends in
# 000 about once in 1,100, and must then also share 15 digits with the other one.
EXCEL_DIGITS = 15

# `exact_recoded`: the same number but for a region code renumbered since (郴州 4328xx before 1994,
# 4310xx after; the check character is then recomputed too). People keep the number they were
# issued, so one registry may hold the old form and the other the new.

# Why `different_valid` is its own, weakest level: two numbers that both pass the MOD 11-2 check
# and differ belong to two people (twins share region + birth date and still get different
# valid numbers). Only a wrong-but-valid number typed for someone (rare) gives it to a true
# match, while a garbled number (bad checksum, not a typo) says much less. Fellegi-Sunter
# assumes fields are independent; twins and same-day namesakes agree on birth date, sex, county
# and often a generation character, so this level must be able to carry a strong negative weight.
_VALID = ("valid", "upgraded_from_15")
# ...but only when each number also agrees with its own record's birth date: a record carrying
# someone else's number (重号, a family member's number typed in) shows it by disagreeing. Nor
# when a number is carried under two names in one file (a twin's number: the birth date agrees).

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
    pre = None
    if len(todo):
        ca, over_a = code_matrix(a[todo], ID_LENGTH)
        cb, over_b = code_matrix(b[todo], ID_LENGTH)
        out[todo] = _levels_fixed(ca, cb, over_a | over_b)
        pre = (todo, ca, cb, over_a, over_b)
        long_rows = over_a | over_b
        if long_rows.any():  # not expected: compare overlong values at their own width
            idx = todo[long_rows]
            width = max(max(len(s) for s in a[idx]), max(len(s) for s in b[idx]))
            la, _ = code_matrix(a[idx], width)
            lb, _ = code_matrix(b[idx], width)
            out[idx] = _levels_fixed(la, lb, np.zeros(len(idx), dtype=bool))
    out[_recoded(a, b, out, pre)] = EXACT_RECODED
    both_valid = (_usable(column(left, "id_status")) & _usable(column(right, "id_status"))
                  & _agrees(left) & _agrees(right))
    # a twin's number typed in: the file carries one side's number under two names, and the two
    # numbers share region + birth date; that pair stays same_region_birth
    twin_typed = (out == SAME_REGION_BIRTH) & (_shared(left) | _shared(right))
    out[both_valid & ~twin_typed & ((out == SAME_REGION_BIRTH) | (out == DIFFERENT))] = DIFFERENT_VALID
    out[excel_prefix(a, b, ~equal & ~missing, (excel_flags(left, a), excel_flags(right, b)))] = EXCEL_PREFIX
    out[missing] = MISSING
    return out


def excel_shaped(ids: np.ndarray) -> np.ndarray:
    """Per number: it may be Excel's damaged copy of one (see EXCEL_PREFIX): the 15 surviving
    digits, or 18 digits ending in 000 (about one damaged number in eleven passes the check)."""
    s = np.asarray(ids).astype(str)
    n = np.strings.str_len(s)
    return (n == EXCEL_DIGITS) | ((n == ID_LENGTH) & np.strings.endswith(s, "000"))


def excel_flags(side: Columns, ids: np.ndarray) -> np.ndarray:
    """Per record of ``side``: its number is shaped like Excel's damaged copy of one
    (``excel_shaped``), read from ``k_id_excel`` (reconcile.keys, once per record) when the side
    has it, else from ``ids`` (its ``id_clean``)."""
    if "k_id_excel" in side:
        return column(side, "k_id_excel") != ""
    return excel_shaped(ids)


def excel_prefix(a: np.ndarray, b: np.ndarray, todo: np.ndarray | None = None,
                 shaped: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per pair: one number is an Excel-damaged form of the other (see EXCEL_PREFIX): it is the
    15 surviving digits, or 18 digits ending in 000, and the other number starts with its first 15.
    ``shaped``: ``excel_flags`` of both sides' records, when known: only the pairs with such a
    number are read (at 1,000,000 persons, a few among millions; every pair's numbers were
    converted and measured, twice per pair in three comparators)."""
    out = np.zeros(len(a), dtype=bool)
    if shaped is not None:
        maybe = shaped[0] | shaped[1]
        todo = maybe if todo is None else (todo & maybe)
    rows = np.flatnonzero(todo) if todo is not None else np.arange(len(a))
    if not len(rows):
        return out
    sa, sb = a[rows].astype(str), b[rows].astype(str)
    la, lb = np.strings.str_len(sa), np.strings.str_len(sb)
    cand = (excel_shaped(sa) | excel_shaped(sb)) & (la >= EXCEL_DIGITS) & (lb >= EXCEL_DIGITS)
    if cand.any():
        pa = np.strings.slice(sa[cand], 0, EXCEL_DIGITS)
        pb = np.strings.slice(sb[cand], 0, EXCEL_DIGITS)
        hit = np.flatnonzero(cand)[pa == pb]
        out[rows[hit]] = True
    return out


def id_counts_agreement(left: Columns, right: Columns, part: str, only: np.ndarray | None = None) -> np.ndarray:
    """Per pair: the ID comparator's level already holds the agreement on ``part`` (``id_birth_date``
    or ``id_sex``): both numbers are seen (not missing), they state the same value, and they are
    one number (equal, garbled but agreeing on region + birth date, or Excel's damaged copy).
    Garbled numbers differing there (level ``different``) and two different valid numbers (two
    people's, ``different_valid``) hold no agreement in the ID's weight, so the birth-date field
    still counts a shared birth date."""
    if not all(c in side for side in (left, right) for c in ("id_clean", "id_status", part)):
        return np.zeros(len(column(left, part) if part in left else next(iter(left.values()))), dtype=bool)
    ia, ib = column(left, "id_clean"), column(right, "id_clean")
    pa, pb = column(left, part), column(right, part)
    # ``only``: the caller needs the answer on these pairs only (False elsewhere)
    idx = np.flatnonzero(only) if only is not None else np.arange(len(ia))
    out = np.zeros(len(ia), dtype=bool)
    out[idx] = (ia[idx] != "") & (ib[idx] != "") & (pa[idx] == pb[idx]) & (pa[idx] != "")
    rows = np.flatnonzero(out)
    rows = rows[ia[rows] != ib[rows]]                # equal numbers: counted, nothing to check
    if len(rows):
        both_valid = _usable(column(left, "id_status")[rows]) & _usable(column(right, "id_status")[rows])
        # garbled numbers agreeing on region + birth date (same_region_birth, or a typo after them);
        # only those pairs' numbers are read as strings (two valid numbers: most pairs)
        same = np.zeros(len(rows), dtype=bool)
        garbled = np.flatnonzero(~both_valid)
        if len(garbled):
            sa, sb = ia[rows[garbled]].astype(str), ib[rows[garbled]].astype(str)
            same[garbled] = (np.strings.slice(sa, 0, REGION_BIRTH_CHARS)
                             == np.strings.slice(sb, 0, REGION_BIRTH_CHARS))
        same |= excel_prefix(ia[rows], ib[rows], shaped=(excel_flags(left, ia)[rows], excel_flags(right, ib)[rows]))
        out[rows[~same]] = False
    return out


def _agrees(side: Columns) -> np.ndarray:
    """Each record's own birth date agrees with its ID's (or is missing): see DIFFERENT_VALID."""
    if "birth_date" not in side or "id_birth_date" not in side:
        return np.ones(len(column(side, "id_clean")), dtype=bool)
    from matchers.birth_date import birth_agrees_with_id

    return birth_agrees_with_id(side)


def _shared(side: Columns) -> np.ndarray:
    """The record's number is carried by another person of its file too (``k_id_shared``, set by
    reconcile.keys.mark_shared_ids): it cannot say which of them the record is."""
    if "k_id_shared" not in side:
        return np.zeros(len(column(side, "id_clean")), dtype=bool)
    return column(side, "k_id_shared") != ""


def _usable(status: np.ndarray) -> np.ndarray:
    # two scalar compares: np.isin on object arrays sorts, several times slower
    return (status == _VALID[0]) | (status == _VALID[1])


def _recoded(a: np.ndarray, b: np.ndarray, out: np.ndarray, pre: tuple | None = None) -> np.ndarray:
    """Unequal 18-character numbers with the same birth date and sequence (chars 6..16) whose
    region codes are one county before and after a renumbering. Vectorised; the division table is
    asked once per distinct region code. ``pre``: compare_id's (rows, code matrices, overflow
    flags) of the unequal non-missing pairs, reused instead of encoding the numbers again (the
    other rows, equal or missing, can never be recoded)."""
    res = np.zeros(len(a), dtype=bool)
    if pre is not None:
        rows, ca, cb, over_a, over_b = pre
        keep = (out[rows] == DIFFERENT) | (out[rows] == SAME_REGION_BIRTH)
        cand, ca, cb, over_a, over_b = rows[keep], ca[keep], cb[keep], over_a[keep], over_b[keep]
        if not len(cand):
            return res
    else:
        cand = np.flatnonzero((out == DIFFERENT) | (out == SAME_REGION_BIRTH))
        if not len(cand):
            return res
        ca, over_a = code_matrix(a[cand], ID_LENGTH)
        cb, over_b = code_matrix(b[cand], ID_LENGTH)
    full = ~over_a & ~over_b & (ca[:, 17] != 0) & (cb[:, 17] != 0)
    sel = full & ~(ca[:, 6:17] != cb[:, 6:17]).any(axis=1) & (ca[:, :6] != cb[:, :6]).any(axis=1)
    idx = np.flatnonzero(sel)
    if not len(idx):
        return res
    from reconcile.divisions import current_code  # old county code -> its present successor

    weights = 10 ** np.arange(5, -1, -1)
    ra = (ca[idx, :6].astype(np.int64) - 48) @ weights
    rb = (cb[idx, :6].astype(np.int64) - 48) @ weights
    uniq, inv = np.unique(np.concatenate([ra, rb]), return_inverse=True)
    cur = np.array([current_code(f"{u:06d}") or f"{u:06d}" for u in uniq.tolist()], dtype=object)
    mapped = cur[inv]
    res[cand[idx[mapped[: len(idx)] == mapped[len(idx):]]]] = True
    return res


def _levels_fixed(ca: np.ndarray, cb: np.ndarray, overflow: np.ndarray) -> np.ndarray:
    """Levels for unequal, non-missing pairs given their zero-padded code matrices."""
    out = np.full(len(ca), DIFFERENT, dtype=np.int8)
    w = ca.shape[1]
    if ((ca[:, -1] != 0) & (cb[:, -1] != 0)).all():  # the usual case: all exactly `w` long
        same_len = np.ones(len(ca), dtype=bool)
        full = ~overflow & (w == ID_LENGTH)
    else:
        la = lengths(ca)
        same_len = la == lengths(cb)
        full = same_len & (la == ID_LENGTH) & ~overflow
    diff = ca != cb
    # one uint8 product gives the Hamming distance and the differences in region + birth
    weights = np.zeros((w, 2), dtype=np.uint8 if w < 256 else np.int64)
    weights[:, 0] = 1
    weights[:REGION_BIRTH_CHARS, 1] = 1
    counts = diff.view(np.uint8) @ weights
    hamming, head = counts[:, 0], counts[:, 1]
    typo = same_len & (hamming == 1)
    # adjacent transposition: exactly two differences, side by side, characters swapped
    two = np.flatnonzero(same_len & (hamming == 2))
    if len(two):
        first = diff[two].argmax(axis=1)
        nxt = np.minimum(first + 1, w - 1)
        swapped = (
            diff[two, nxt]
            & (ca[two, first] == cb[two, nxt])
            & (ca[two, nxt] == cb[two, first])
        )
        typo[two[swapped]] = True
    out[full & (head == 0)] = SAME_REGION_BIRTH
    out[typo] = TYPO
    return out


ID_NUMBER = Comparator(field="id_number", levels=LEVELS,
                       columns=("id_clean", "id_status", "birth_date", "id_birth_date", "k_id_shared", "k_id_excel",
                                "k_birth_differs"),
                       fn=compare_id, unshown=("k_id_excel", "k_birth_differs"))
