"""Derived columns used by blocking and comparison, computed once per standardised frame."""
from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from reconcile.codes import spread
from reconcile.divisions import address_detail
from reconcile.fields import USABLE_ID_STATUSES
from reconcile.interning import factorised, per_distinct_value, shared_values

# house, group and flat numbers with their unit words: what differs between neighbours
_NUMBERED = re.compile(r"[0-9]+[号组栋幢室楼单元弄巷户排]*")


def _per_distinct(a: pd.Series, b: pd.Series, fn: Callable[[Any, Any], str]) -> pd.Series:
    """``fn(a[i], b[i])`` for every row, computed once per distinct (a, b) pair: both columns'
    codes (memoised, or factorised in C) combined, and ``fn`` runs on one row per pair."""
    av, bv = a.to_numpy(object), b.to_numpy(object)
    ka, ua = factorised(av)
    kb, ub = factorised(bv)
    combo, uniq = pd.factorize(ka.astype(np.int64) * (len(ub) + 1) + kb, sort=False)
    rep = np.empty(len(uniq), dtype=np.int64)
    rep[combo[::-1]] = np.arange(len(combo))[::-1]     # the first row with each pair
    values = [fn(x, y) for x, y in zip(av[rep].tolist(), bv[rep].tolist())]
    return pd.Series(spread(values, combo) if len(combo) else shared_values(values), index=a.index, dtype=object)


def _text(std: pd.DataFrame, col: str) -> pd.Series:
    """A column as text: a standardised frame's own column when its values are all str (checked in
    C: its memoised codes then apply, reconcile.codes), else converted (astype(str) copies)."""
    s = std[col]
    if s.dtype == object and pd.api.types.infer_dtype(s.to_numpy(), skipna=False) == "string":
        return s
    return s.astype(str)


def _lengths(s: pd.Series) -> np.ndarray:
    """len() of every value of a text column (0 for a missing one), once per distinct value."""
    codes, uniq = factorised(s.to_numpy(object))
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    per_value = np.fromiter((len(u) if isinstance(u, str) else 0 for u in uniq.tolist()), dtype=np.int64,
                            count=len(uniq))
    return per_value.take(codes)


def _first_syllables(pinyin: pd.Series, n: pd.Series) -> pd.Series:
    """The first ``n`` syllables of each pinyin string."""
    return _per_distinct(pinyin, n, lambda p, k: "".join(p.split()[: max(k, 1)]) if p else "")


def folded_pinyin(names: pd.Series, pinyin: pd.Series) -> pd.Series:
    """Per name, its pinyin with what clerks confuse folded away: each shape-alike character
    (王/玉, 微/徽) read as its group's representative, and every syllable with the 模糊音
    distinctions folded (陈/程 chen/cheng, 林/凌). A blocking key: two ways of writing one name
    that the name comparator calls shape_alike or sound_alike land in one block. Computed once
    per distinct (name, pinyin)."""
    from matchers.shapes import SHAPE_CLASS
    from matchers.sounds import char_reading, fuzzy_syllable

    def fold(name: str, p: str) -> str:
        syl = p.split()
        han = [ch for ch in name if "\u4e00" <= ch <= "\u9fff"]
        if han and len(han) == len(syl):
            syl = [char_reading(SHAPE_CLASS[ch]) if ch in SHAPE_CLASS else s for ch, s in zip(han, syl)]
        return "".join(fuzzy_syllable(x) for x in syl if x)

    return _per_distinct(names, pinyin, fold)


# The ID number's blocking pieces (k_id14, k_id_a, k_id_b) are int64 codes, not text: a blocking
# key is only compared for equality, and at 1,000,000 persons the pieces as text were three
# nearly distinct Python strings per record (0.33 GB in each process that held the destination),
# hashed again by every factorisation (1.1-1.3 s per piece and side pair, 0.4 s as integers).
# A piece of at most PIECE_DIGITS characters of 0-9 and X (every piece of a well-formed number)
# is its characters as hexadecimal digits (X = 10) under its length in the top bits: equal codes
# exactly when the texts are equal. Any other text (a malformed number's letters) gets a 62-bit
# BLAKE2 hash above those codes: a collision could only add a candidate pair, which the ID
# comparator then judges on the numbers themselves. No piece: EMPTY_PIECE (blocking skips it).
ID_PIECES: tuple[str, ...] = ("k_id14", "k_id_a", "k_id_b")
# The form of the blocking keys, in an incremental dedupe's stored signature: a state whose keys
# were hashed in another form (before 2: the ID pieces as text) is recomputed once, not reused
KEY_FORMAT = 2
EMPTY_PIECE = -1
PIECE_DIGITS = 14
_LENGTH_SHIFT = 56
_HASHED = 1 << 62
_X = ord("X")


def id_piece_texts(s: str) -> tuple[str, str, str]:
    """(k_id14, k_id_a, k_id_b) of one cleaned ID number as text: k_id14 the first 14 characters
    of a number of 15 or more; k_id_a / k_id_b two complementary pieces, so that a one-character
    typo leaves at least one of them intact together with k_id14: for 18 characters [9:] and
    [:9]+[14:], for other lengths the two halves; '' under 6 characters."""
    if len(s) == 18:
        return s[:14], s[9:], s[:9] + s[14:]
    if len(s) < 6:
        return "", "", ""
    h = len(s) // 2
    return (s[:14] if len(s) >= 15 else ""), s[h:], s[:h]


def piece_code(text: str) -> int:
    """The int64 blocking code of one ID piece (see ID_PIECES): what ``id_piece_codes`` gives it."""
    if not text:
        return EMPTY_PIECE
    if len(text) <= PIECE_DIGITS and all(ch == "X" or "0" <= ch <= "9" for ch in text):
        v = 0
        for ch in text:
            v = (v << 4) | (10 if ch == "X" else ord(ch) - 48)
        return (len(text) << _LENGTH_SHIFT) | v
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return _HASHED | (int.from_bytes(digest, "little") & (_HASHED - 1))


def _digit_rows(chars: np.ndarray) -> np.ndarray:
    """A character matrix (uint32 code points, rows x L, every character 0-9 or X) as its digit
    values (X = 10), transposed: one contiguous uint8 row per character position."""
    digits = (chars - 48).astype(np.uint8)
    digits[chars == _X] = 10
    return np.ascontiguousarray(digits.T)


def _piece_of(digits: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    """``piece_code`` of the piece made of character ``positions`` of every number (``digits``
    from _digit_rows), position by position on contiguous rows (a numpy integer matrix product,
    or strided columns, took 3-5x as long at 1.86 M numbers)."""
    out = np.zeros(digits.shape[1], dtype=np.int64)
    for k in positions:
        out <<= 4
        out |= digits[k]
    return out | (np.int64(len(positions)) << _LENGTH_SHIFT)


def id_piece_codes(idc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k_id14, k_id_a, k_id_b) of cleaned ID numbers (object arrays of str) as int64 codes
    (``piece_code`` of ``id_piece_texts``). The 18-character numbers of digits and X (nearly all)
    are coded as a character matrix in numpy, the rest one by one."""
    n = idc.size
    out = tuple(np.full(n, EMPTY_PIECE, dtype=np.int64) for _ in ID_PIECES)
    if n == 0:
        return out
    lengths = np.fromiter(map(len, idc.tolist()), dtype=np.int64, count=n)
    full = np.flatnonzero(lengths == 18)
    if full.size:
        chars = np.asarray(idc[full].tolist(), dtype="U18").view(np.uint32).reshape(-1, 18)
        plain = (((chars >= 48) & (chars <= 57)) | (chars == _X)).all(axis=1)
        rows, digits = full[plain], _digit_rows(chars[plain])
        for arr, positions in zip(out, (range(14), range(9, 18), [*range(9), *range(14, 18)])):
            arr[rows] = _piece_of(digits, positions)
        full = full[~plain]
    rest = np.union1d(full, np.flatnonzero((lengths != 18) & (lengths >= 6)))
    for k in rest.tolist():
        for arr, text in zip(out, id_piece_texts(idc[k])):
            arr[k] = piece_code(text)
    return out


def id_piece_text(column: str, number: str) -> str:
    """The text of ID piece ``column`` (one of ID_PIECES) of one cleaned ID number."""
    return id_piece_texts(number)[ID_PIECES.index(column)]


def key_text(std: pd.DataFrame, column: str, row: int) -> str:
    """A blocking key column's value of one record as text (a skipped block's warning): an ID
    piece from the record's number, any other key as it is."""
    if column in ID_PIECES and "id_clean" in std:
        return id_piece_text(column, str(std["id_clean"].iat[row]))
    return str(std[column].iat[row])


def add_keys(std: pd.DataFrame) -> pd.DataFrame:
    """Return ``std`` plus helper columns (prefixed ``k_``) for blocking.

    k_birth: day-precision birth date, from the record or else from the ID;
    k_year / k_month: birth year / year-month from either; k_sex: record's sex or the ID's;
    k_py: pinyin without spaces; k_py_sorted: syllables sorted (Latin names in either order);
    k_surname_py: pinyin of the surname; k_given_py: pinyin of the given name; k_id14, k_id_a, k_id_b:
    pieces of the ID number as int64 codes (ID_PIECES; k_id14 its region + birth date part);
    k_py_fold: pinyin with 模糊音 and shape-alike characters folded (see ``folded_pinyin``).
    """
    idx = std.index
    new: dict[str, Any] = {}   # built apart and joined once (one column at a time copies blocks)
    bd, prec, idb = _text(std, "birth_date"), _text(std, "birth_precision"), _text(std, "id_birth_date")
    new["k_birth"] = np.where(prec == "day", bd, idb)
    either = np.where(bd != "", bd, idb)
    # per distinct value, each result one object (reconcile.interning)
    new["k_year"] = per_distinct_value(either, lambda d: d[:4])
    month_src = np.where((prec == "day") | (prec == "month"), bd, idb)
    new["k_month"] = per_distinct_value(month_src, lambda d: d[:7] if len(d) >= 7 else "")
    new["k_sex"] = np.where(std["sex"] != "", std["sex"], std["id_sex"])
    py = _text(std, "name_pinyin")
    k_py = pd.Series(per_distinct_value(py.to_numpy(object), lambda p: p.replace(" ", "")), index=idx)
    new["k_py"] = k_py
    new["k_py_sorted"] = per_distinct_value(py.to_numpy(object), lambda p: "".join(sorted(p.split())))
    new["k_py_fold"] = folded_pinyin(_text(std, "name") if "name" in std else py, py)
    is_han = std["name_script"] == "han"
    n_sur = np.where(is_han, _lengths(std["surname"]), 1)
    k_surname = _first_syllables(py, pd.Series(n_sur, index=idx))
    new["k_surname_py"] = k_surname
    new["k_given_py"] = _per_distinct(k_py, pd.Series(_lengths(k_surname), index=idx), lambda p, n: p[n:])
    idc = _text(std, "id_clean")
    # (an Excel-damaged number keeps 15 digits: its region + birth date part still blocks)
    new["k_id14"], new["k_id_a"], new["k_id_b"] = id_piece_codes(idc.to_numpy(object))
    new["k_no_id_no_birth"] = (idc == "") & (new["k_year"] == "")
    # no usable ID number (missing, malformed, failed check digit, cut by Excel): the records
    # the demographic blocking passes exist for (see reconcile.blocking.MATCH_PASSES)
    status = _text(std, "id_status") if "id_status" in std else pd.Series("", index=idx)
    new["k_unidentified"] = ~status.isin(list(USABLE_ID_STATUSES)).to_numpy()
    # no number of its own to vouch for the record: unusable, one its birth date disagrees with
    # (someone else's number), one shaped like Excel's damaged copy of a number (it may pass the
    # check), or one upgraded from 15 digits (its check character is ours: a typo in it passes);
    # mark_shared_ids adds numbers carried under two names. Two records that both have a number
    # of their own, and different ones, are two people to the ID comparator (different_valid):
    # the pairs the name passes leave out (reconcile.blocking.NAME_PASSES)
    from matchers.birth_date import birth_agrees_with_id
    from matchers.id_number import excel_shaped

    if "birth_date" in std and "id_birth_date" in std:
        agrees = birth_agrees_with_id({"birth_date": bd.to_numpy(object), "id_birth_date": idb.to_numpy(object)})
    else:
        agrees = np.ones(len(std), dtype=bool)
    excel = excel_shaped(idc.to_numpy(object))
    new["k_id_unsure"] = new["k_unidentified"] | ~agrees | excel | (status == "upgraded_from_15").to_numpy()
    # for the ID comparators (matchers.id_number.excel_flags): text, as their columns are read
    new["k_id_excel"] = np.array(["", "excel"], dtype=object)[excel.astype(np.int8)]
    # and for the ID and birth date comparators (matchers.birth_date.birth_agrees_with_id), which
    # asked it of every pair's two records: once per record here (at 1,000,000 persons 7 s of the
    # 10.7 M pairs' comparisons, parsing each chunk's distinct dates again)
    new["k_birth_differs"] = np.array(["", "differs"], dtype=object)[(~agrees).astype(np.int8)]
    if "k_id_shared" not in std:
        new["k_id_shared"] = np.full(len(std), "", dtype=object)   # set file-wide by mark_shared_ids
    # the address below the divisions it names, and that without its numbers (same village/street)
    for src, key in (("hukou_address", "k_address"), ("residence", "k_residence")):
        addr = _text(std, src) if src in std else pd.Series("", index=idx)
        codes, uniq = factorised(addr.to_numpy(object))
        detail = [address_detail(a) for a in uniq.tolist()]
        stem = [_NUMBERED.sub("", d) for d in detail]
        new[key] = spread(detail, codes) if len(codes) else np.array([], dtype=object)
        new[key + "_stem"] = spread(stem, codes) if len(codes) else np.array([], dtype=object)
    arrays = {k: (v.to_numpy() if isinstance(v, pd.Series) else v) for k, v in new.items()}
    # one frame of std's columns (a key computed again keeps its place) and the new ones, none copied:
    # pd.concat copied and consolidated them all (6 s for the 1M destination). The result shares
    # std's arrays; nothing writes into them (mark_shared_ids replaces its columns whole).
    cols = {c: (arrays[c] if c in arrays else std[c].to_numpy()) for c in std.columns}
    cols.update((k, v) for k, v in arrays.items() if k not in cols)
    return pd.DataFrame(cols, index=idx, copy=False)


# Key columns only blocking reads (reconcile.blocking's passes and EM sessions): `match` drops
# them once both registries are blocked, before the outcomes and the report, its memory's peak
# (at 1,000,000 persons about 1.5 GB of the 2.9 M records' strings). The comparators' columns
# (k_address, k_residence and their stems, k_id_shared), k_birth (term frequencies) and the
# flags stay.
BLOCKING_ONLY_KEYS: tuple[str, ...] = ("k_year", "k_month", "k_sex", "k_py", "k_py_sorted", "k_py_fold",
                                       "k_surname_py", "k_given_py", "k_id14", "k_id_a", "k_id_b")


def drop_blocking_keys(std: pd.DataFrame) -> pd.DataFrame:
    """``std`` without BLOCKING_ONLY_KEYS (a copy of the rest: a view would keep them alive)."""
    return std.drop(columns=[c for c in BLOCKING_ONLY_KEYS if c in std.columns])


SHARED = "shared"


def mark_shared_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Mark (``k_id_shared`` = "shared") every record whose usable ID number another record of the
    same file carries under another name (the folded pinyin differs): 重号, most often a twin's or
    a family member's number typed in. Such a number cannot tell which of its carriers a record
    is: a twin's number against the record's own (same region + birth date, another sequence) is
    then not the evidence of two people it otherwise is (matchers.id_number). File-wide: run on
    the whole frame."""
    usable = df["id_status"].isin(list(USABLE_ID_STATUSES)).to_numpy() & (df["id_clean"] != "").to_numpy()
    if not usable.any():
        return df
    rows = np.flatnonzero(usable)
    # on integer codes, and the names only of the numbers carried more than once: one hashing of
    # the numbers, not a groupby and then an isin over them
    ids, _ = pd.factorize(df["id_clean"].to_numpy(object)[rows], sort=False, use_na_sentinel=False)
    again = np.bincount(ids)[ids] > 1
    rows, ids = rows[again], ids[again]
    if not rows.size:
        return df
    names, uniq_names = pd.factorize(df["k_py_fold"].to_numpy(object)[rows], sort=False, use_na_sentinel=False)
    id_name = np.unique(ids.astype(np.int64) * len(uniq_names) + names)
    name_count = np.bincount(id_name // len(uniq_names), minlength=int(ids.max()) + 1)
    shared_row = name_count[ids] > 1
    if not shared_row.any():
        return df
    mask = np.zeros(len(df), dtype=bool)
    mask[rows[shared_row]] = True
    # whole columns replaced, not written into: add_keys' frame shares arrays with its input
    shared = df["k_id_shared"].to_numpy(object).copy()
    shared[mask] = SHARED
    df["k_id_shared"] = shared
    if "k_id_unsure" in df:
        unsure = df["k_id_unsure"].to_numpy(bool).copy()
        unsure[mask] = True
        df["k_id_unsure"] = unsure
    return df


def fill_unit_hukou(std: pd.DataFrame, dominance: float = 0.9, min_resolved: int = 5) -> pd.DataFrame:
    """Fill unresolved hukou counties from the record's reporting unit, where that unit is plainly
    inside one county: a household registry's township lists "牌楼乡大门村6组" without naming the
    county. Only when >= ``dominance`` of the unit's resolved addresses (at least ``min_resolved``)
    name one county (of several, the first in code order); the filled county is marked in
    ``hukou_region_source``.
    """
    # a shallow copy: the changed columns are replaced whole, never written into (``std`` stays
    # as it was without copying every column)
    df = std.copy(deep=False)
    region = df["hukou_region"].to_numpy(object)
    has_region = region != ""
    source = np.array(["", "address"], dtype=object)[has_region.astype(np.int8)]
    df["hukou_region_source"] = source
    if "unit" not in df:
        return df
    unit = df["unit"].to_numpy(object)
    has_unit = unit != ""
    resolved = np.flatnonzero(has_region & has_unit)
    if not resolved.size:
        return df
    # counties per unit on integer codes (sorted: the order a groupby gives), not a groupby over
    # the frame's rows (at 1,000,000 persons that copied every column of the resolved rows)
    ucode, units = pd.factorize(unit[resolved], sort=True, use_na_sentinel=False)
    rcode, regions = pd.factorize(region[resolved], sort=True, use_na_sentinel=False)
    pairs, counts = np.unique(ucode.astype(np.int64) * len(regions) + rcode, return_counts=True)
    pair_unit, pair_region = pairs // len(regions), pairs % len(regions)
    totals = np.bincount(pair_unit, weights=counts)[pair_unit]
    ok = (counts / totals >= dominance) & (totals >= min_resolved)
    best_unit, first = np.unique(pair_unit[ok], return_index=True)   # per unit its first county
    if not best_unit.size:
        return df
    fill = dict(zip(np.asarray(units, dtype=object)[best_unit].tolist(),
                    np.asarray(regions, dtype=object)[pair_region[ok][first]].tolist()))
    todo = ~has_region & has_unit & pd.Series(unit).isin(list(fill)).to_numpy()
    if not todo.any():
        return df
    # the name each county has on the last resolved row carrying it (as a dict built from the rows)
    last = len(rcode) - 1 - np.unique(rcode[::-1], return_index=True)[1]
    names = dict(zip(np.asarray(regions, dtype=object).tolist(),
                     df["hukou_region_name"].to_numpy(object)[resolved[last]].tolist()))
    region = region.copy()
    region[todo] = [fill[u] for u in unit[todo].tolist()]
    region_name = df["hukou_region_name"].to_numpy(object).copy()
    region_name[todo] = [names.get(r, "") for r in region[todo].tolist()]
    source = source.copy()
    source[todo] = "unit"
    df["hukou_region"], df["hukou_region_name"], df["hukou_region_source"] = region, region_name, source
    return df
