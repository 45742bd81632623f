"""Candidate pairs: the union of several blocking passes, with a cap on block size.

Each pass joins the two frames on equal, non-empty key columns. A block (one key value) whose
pair count exceeds ``block_cap`` is skipped and reported, never silently. Pairs are returned as
integer positions (numpy arrays), never as Python objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd

from reconcile.codes import codes_of, joint_codes
from reconcile.keys import EMPTY_PIECE, key_text
from reconcile.privacy import mask_ids_in_text


@dataclass(frozen=True)
class BlockingPass:
    name: str
    columns: tuple[str, ...]
    description: str
    only_sparse: bool = False   # only records lacking both ID and birth date (on at least one side)
    cap: int | None = None      # a tighter block cap for passes on weak keys (e.g. the name alone)
    only_unidentified: bool = False   # only pairs where at least one record has no usable ID number
    only_unsure_id: bool = False      # only pairs where at least one record has no number of its own
    # sorted window (restricted passes only): in a block larger than the window, a flagged record
    # is paired with the ``window`` records of the other side nearest to it in the order of these
    # columns (the first non-empty one), not with the whole block; see WINDOWED_PASSES
    window_by: tuple[str, ...] = ()
    # no candidate pairs: the pass only lends its key to an EM session that names it
    # (linkage.TRAINING_SESSIONS), which samples the whole key (see MATCH_PASSES)
    train_only: bool = False

    def block_cap(self, default: int) -> int:
        """The pass's block cap: its own ``cap`` when tighter than the run's ``default``."""
        return min(default, self.cap) if self.cap else default

    @property
    def flag_column(self) -> str | None:
        """The boolean key column a restricted pass requires on at least one side of a pair."""
        if self.only_sparse:
            return "k_no_id_no_birth"
        if self.only_unidentified:
            return "k_unidentified"
        if self.only_unsure_id:
            return "k_id_unsure"
        return None


def pass_columns(passes: Sequence[BlockingPass]) -> set[str]:
    """Every standardised column ``passes`` read: their keys, window orders and flags."""
    out: set[str] = set()
    for p in passes:
        out.update(p.columns, p.window_by)
        if p.flag_column is not None:
            out.add(p.flag_column)
    return out


DEFAULT_PASSES: tuple[BlockingPass, ...] = (
    BlockingPass("id", ("id_clean",), "ID number"),
    BlockingPass("id_region_birth", ("k_id14",), "region + birth date part of the ID"),
    BlockingPass("id_part_a", ("k_id_a",), "ID without its first part (typo in region/birth year)"),
    BlockingPass("id_part_b", ("k_id_b",), "ID without its birth month/day (typo there)"),
    BlockingPass("pinyin_year", ("k_py", "k_year"), "name pinyin + birth year"),
    BlockingPass("pinyin_sorted_year", ("k_py_sorted", "k_year"), "name syllables in any order + birth year"),
    BlockingPass("birth_sex", ("k_birth", "k_sex"), "birth date + sex"),
    BlockingPass("surname_month_county", ("k_surname_py", "k_month", "hukou_region"), "surname pinyin + birth month + hukou county"),
    BlockingPass("given_birth", ("k_given_py", "k_birth"), "given-name pinyin + birth date"),
    BlockingPass("given_month", ("k_given_py", "k_month"), "given-name pinyin + birth month (a misread surname, 王/玉)"),
    BlockingPass("birth_county", ("k_birth", "hukou_region"), "birth date + hukou county"),
    BlockingPass("pinyin_county", ("k_py_fold", "hukou_region"),
                 "name pinyin, 模糊音 and shape-alike characters folded (陈/程, 王/玉) + hukou county"),
    BlockingPass("surname_birth", ("k_surname_py", "k_birth"), "surname pinyin + birth date"),
    BlockingPass("name_rare", ("name",), "name alone, only where it is rare (small blocks)", cap=100),
    BlockingPass("address", ("k_address",), "address below the county, only where few share it", cap=100),
    BlockingPass("name_only", ("name",), "name alone, for records without ID and birth date", only_sparse=True),
)


# Passes keyed on birth date, sex, county or a name part only. Within one county the number of
# people sharing such a key grows with the county, so their pairs grow with the square of the
# registry (at 300,000 persons birth_sex alone gave 3.7 million new pairs). `match` runs them
# only for pairs where at least one record lacks a usable ID number: when both records carry one,
# the ID passes already pair them (a typo in one part of the number included), and the name
# passes (NAME_PASSES) pair a record with a number that is not its own. id_region_birth (region
# + birth date of the ID, 14 characters) is there for a typo in
# the sequence digits, id_part_b (the ID without its birth month and day) for a typo in those:
# such a typo fails the check character, so one side is unusable then too, while two usable
# numbers sharing those characters are twins, or people of one county and decade who happen to
# share a sequence number (at 1,000,000 persons id_part_b alone gave 3.3 million pairs).
# Measured (bench/accuracy.py, seeds 7 and 3): restricting these lost nothing; restricting the
# name passes pinyin_year or surname_birth too lost recall (numbers replaced by another valid one).
# A restricted pass grows with (records without a usable ID) x (records), not records².
DEMOGRAPHIC_PASSES: frozenset[str] = frozenset(
    {"birth_sex", "surname_month_county", "given_month", "birth_county", "pinyin_county", "id_region_birth",
     "id_part_b"})

# Passes keyed on the name (with a birth year or date, or alone), which `match` restricts to pairs
# where at least one record has no number of its own (k_id_unsure, reconcile.keys: none usable,
# one its birth date disagrees with, one shaped like Excel's damaged copy, one upgraded from 15
# digits, one carried under two names). Two records that both have a number of their own, and
# different numbers, are two people to the ID comparator (different_valid), and a typo in one
# of two numbers is paired by the ID passes (the typo fails the check character, or leaves
# id_part_a / id_part_b intact). These namesakes were most of a large linkage's pairs.
# Within one file first (fifth session; at 300,000 persons origin 0.77 -> 0.52 million pairs,
# destination 2.05 -> 1.23 million), then across the two registries too (sixth session; at
# 300,000 persons 2.16 -> 1.30 million cross pairs). Measured with bench/accuracy.py, seeds 7
# and 11, default, dirty and FEBRL4: nothing lost, and a little gained (seed 7 default link P
# 0.9989 -> 0.9992, untraceable R 0.9976 -> 0.9985: fewer namesakes competing for a record).
# The coarser flag, k_unidentified, did lose recall across the registries (a record carrying
# someone else's valid number): its birth date disagreeing with that number is what flags it.
NAME_PASSES: frozenset[str] = frozenset(
    {"pinyin_year", "pinyin_sorted_year", "surname_birth", "given_birth", "name_rare"})

# Passes whose pairs `match` does not compare at all: birth date + sex and birth date + county
# pair a record without a usable ID with every one of its birth date (and sex or county), and
# within one county that number grows with the county: at 1,000,000 persons they gave 3.56 of
# the 11.05 million cross pairs. Every true pair among them was also paired by another pass but
# 1 of 327,296 at 1,000,000 persons, 0 of 98,112 at 300,000: a record whose name is wrong
# beyond what the name passes fold (模糊音, shape-alike characters, swapped syllables, a misread
# surname, the given name alone) carries too little else to be a match. Measured with
# bench/accuracy.py (seventh session, docs/benchmarks.md). birth_sex still names an EM session,
# which trains on its whole key (sampled by block), as before.
TRAIN_ONLY_PASSES: frozenset[str] = frozenset({"birth_sex", "birth_county"})

# The order a restricted pass's large blocks are windowed in (BlockingPass.window_by): the field
# the pass's key leaves free. A name pass's block holds namesakes: their birth dates (the record's,
# else its ID's) tell them apart. A birth-date pass's block holds people of one day: their names.
_BIRTH_ORDER = ("birth_date", "id_birth_date")
WINDOWED_PASSES: dict[str, tuple[str, ...]] = {
    "id_region_birth": ("k_py_fold",), "id_part_b": ("k_py_fold",),
    "pinyin_year": _BIRTH_ORDER, "pinyin_sorted_year": _BIRTH_ORDER, "surname_month_county": _BIRTH_ORDER,
    "given_month": _BIRTH_ORDER, "pinyin_county": _BIRTH_ORDER,
    "surname_birth": ("k_given_py",), "given_birth": ("k_surname_py",),
}

# Partners per flagged record in a windowed block. Within one county the blocks of these passes
# grow with the registry (all the 王伟 of a county, everyone born in one month with one surname),
# and so did their pairs: per record 1.42 at 100,000 persons, 5.86 at 1,000,000. A window keeps
# a record's pairs per pass bounded, however large the county; a block no larger than the window
# is paired whole, as before, and no block is skipped for its size any more.
WINDOW = 20

MATCH_PASSES: tuple[BlockingPass, ...] = tuple(
    replace(p, only_unidentified=True, train_only=p.name in TRAIN_ONLY_PASSES,
            window_by=WINDOWED_PASSES.get(p.name, ())) if p.name in DEMOGRAPHIC_PASSES
    else replace(p, only_unsure_id=True, window_by=WINDOWED_PASSES.get(p.name, ())) if p.name in NAME_PASSES
    else p for p in DEFAULT_PASSES)

# The passes of `match`'s within-file linkages: the same as across the registries since the
# sixth session (kept apart so that an engine can still give the two kinds different passes).
WITHIN_PASSES: tuple[BlockingPass, ...] = MATCH_PASSES


@dataclass
class PassStats:
    name: str
    description: str
    pairs: int = 0
    new_pairs: int = 0
    skipped_blocks: int = 0
    skipped_records: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Candidates:
    left: np.ndarray          # int64 positions into the left frame
    right: np.ndarray         # int64 positions into the right frame
    passes: np.ndarray        # uint16 bit mask: which passes produced each pair
    stats: list[PassStats]


def _column_codes(left: pd.DataFrame, right: pd.DataFrame, c: str,
                  cache: dict | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """(codes over both frames, number of distinct values, empty mask) of one key column;
    memoised in ``cache`` (passes share columns: k_birth, hukou_region, k_py, ...). One file with
    itself (``right is left``): the codes of its records once."""
    if cache is not None and c in cache:
        return cache[c]
    # each side's codes memoised (reconcile.codes): the comparators and EM group the same columns,
    # and the smaller registry's were computed by its within-file blocking, while the larger loaded
    if right is left:   # one file with itself: its codes, once (the right side's are the same)
        got = codes_of(_key_values(left[c]))
        codes = got.codes.astype(np.int64)
    else:
        got = joint_codes(_key_values(left[c]), _key_values(right[c]))
        codes = got.codes
    uniq = got.uniques
    # empty cells from the (few) distinct values, not a string comparison per row: '' in a text
    # key, EMPTY_PIECE in an integer one (the ID pieces, reconcile.keys.ID_PIECES)
    uniq_arr = np.asarray(uniq)
    blank = np.flatnonzero(uniq_arr == EMPTY_PIECE) if uniq_arr.dtype.kind in "iu" else \
        np.flatnonzero(np.asarray(uniq, dtype=object) == "")
    empty = codes == blank[0] if blank.size else np.zeros(codes.size, dtype=bool)
    res = (codes, len(uniq), empty)
    if cache is not None:
        cache[c] = res
    return res


def _key_values(s: pd.Series) -> np.ndarray:
    """A key column's values for factorising, with the codes its text would give: flags (bool,
    integers) as they are (at 2.9 M records a text per row, 'True' / 'False', took 0.6-0.8 s a
    column), a column of text as it is, anything else as text."""
    arr = s.to_numpy()
    if arr.dtype.kind in "biu" or (arr.dtype == object and pd.api.types.infer_dtype(arr, skipna=False) == "string"):
        return arr
    return s.astype(str).to_numpy()


def _key_codes(left: pd.DataFrame, right: pd.DataFrame, cols: tuple[str, ...],
               cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Integer codes of the joint key over both frames; -1 where any key column is empty.

    Each column is factorised once over both frames and the codes are combined pairwise into one
    integer (re-factorised after each step so it never overflows): no per-row Python. One file
    with itself: its records' codes once, returned as both sides' (the same array: read only;
    at 1,856,076 records half the memory and the factorising of the doubled rows).
    """
    nl = len(left)
    same = right is left
    combined: np.ndarray | None = None
    empty = np.zeros(nl if same else nl + len(right), dtype=bool)
    for c in cols:
        codes, n_uniq, is_empty = _column_codes(left, right, c, cache)
        empty |= is_empty
        if combined is None:
            combined = codes
        else:
            combined, _ = pd.factorize(combined * (n_uniq + 1) + codes, sort=False)
            combined = combined.astype(np.int64)
    assert combined is not None
    combined = combined.copy()
    combined[empty] = -1
    # Human-readable key per code, only needed for the (rare) skipped-block warnings.
    n_codes = int(combined.max()) + 1 if combined.size else 0
    labels = _LazyLabels(left, right, cols, combined)
    if same:
        return combined, combined, labels if n_codes else []
    return combined[:nl], combined[nl:], labels if n_codes else []


class _LazyLabels(list):
    """Looks up a key's text on demand (warnings for skipped blocks), without building all of them."""

    def __init__(self, left: pd.DataFrame, right: pd.DataFrame, cols: tuple[str, ...], codes: np.ndarray) -> None:
        super().__init__()
        self._left, self._right, self._cols, self._codes = left, right, cols, codes
        self._n = int(codes.max()) + 1 if codes.size else 0

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, code):  # type: ignore[override]
        return self.many(np.array([code]))[0]

    def many(self, codes: np.ndarray) -> list[str]:
        """The texts of several keys with one pass over the codes (a million-record linkage
        skips thousands of blocks: one scan each took most of its blocking time)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size == 0:
            return []
        wanted = np.zeros(self._n, dtype=bool)
        wanted[codes] = True
        hit = np.flatnonzero((self._codes >= 0) & wanted[np.maximum(self._codes, 0)])
        found, first = np.unique(self._codes[hit], return_index=True)
        pos = hit[first][np.searchsorted(found, codes)]   # first record carrying each key
        nl = len(self._left)
        parts = []
        for c in self._cols:
            parts.append([key_text(self._left, c, k) if k < nl else key_text(self._right, c, k - nl)
                          for k in pos.tolist()])
        return ["\x1f".join(vals) for vals in zip(*parts)]


def _join(lc: np.ndarray, rc: np.ndarray, n_codes: int, cap: int, same: bool) -> tuple[np.ndarray, ...]:
    """All (i, j) with lc[i] == rc[j] >= 0, skipping blocks larger than ``cap`` pairs.

    Sort-based join in numpy: memory is proportional to the output, not to len(lc) * len(rc).
    Returns (i, j, skipped_codes, skipped_pair_counts, skipped_record_counts).
    """
    if n_codes == 0:   # the key is empty on every record (e.g. a file without ID numbers)
        e = np.empty(0, dtype=np.int64)
        return e, e, e, e, e
    lcount = np.bincount(lc[lc >= 0], minlength=n_codes)
    rcount = np.bincount(rc[rc >= 0], minlength=n_codes)
    size = lcount * rcount
    if same:
        size = lcount * (lcount - 1) // 2
    too_big = size > cap
    skipped = np.nonzero(too_big)[0]
    ok_l = (lc >= 0) & ~too_big[np.maximum(lc, 0)]
    ok_r = (rc >= 0) & ~too_big[np.maximum(rc, 0)]
    li = np.nonzero(ok_l)[0]
    ri = np.nonzero(ok_r)[0]
    li = li[np.argsort(lc[li], kind="stable")]
    ri = ri[np.argsort(rc[ri], kind="stable")]
    lcodes, rcodes = lc[li], rc[ri]
    # per code: start offsets in li and ri
    lstart = np.searchsorted(lcodes, np.arange(n_codes))
    rstart = np.searchsorted(rcodes, np.arange(n_codes))
    lcnt = np.where(too_big, 0, lcount)
    rcnt = np.where(too_big, 0, rcount)
    pair_counts = lcnt * rcnt
    total = int(pair_counts.sum())
    if total == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, skipped, size[skipped], (lcount + rcount)[skipped]
    # Expand: for each code c with lcnt*rcnt pairs, enumerate the cartesian product.
    code_of_pair = np.repeat(np.arange(n_codes), pair_counts)
    offset = np.arange(total) - np.repeat(np.cumsum(pair_counts) - pair_counts, pair_counts)
    rc_n = rcnt[code_of_pair]
    a = offset // rc_n
    b = offset % rc_n
    i = li[lstart[code_of_pair] + a]
    j = ri[rstart[code_of_pair] + b]
    if same:
        keep = i < j
        i, j = i[keep], j[keep]
    return i.astype(np.int64), j.astype(np.int64), skipped, size[skipped], (lcount + rcount)[skipped]


def _order_ranks(left: pd.DataFrame, right: pd.DataFrame, cols: tuple[str, ...],
                 cache: dict | None = None) -> np.ndarray:
    """Per record of both frames (left first; one file with itself: its records once): the rank
    of its first non-empty value of ``cols`` in sorted order (0 = every one empty). Memoised in
    ``cache`` like the key columns."""
    key = ("order", cols)
    if cache is not None and key in cache:
        return cache[key]
    frames = (left,) if right is left else (left, right)
    vals = None
    for c in (c for c in cols if c in left):
        col = np.concatenate([f[c].to_numpy(object) for f in frames])
        vals = col if vals is None else np.where(vals == "", col, vals)
    if vals is None:
        vals = np.full(sum(len(f) for f in frames), "", dtype=object)
    # factorised unsorted, then the few distinct values sorted (a sort of millions of strings is not needed)
    codes, uniq = pd.factorize(vals, sort=False)
    order = np.argsort(np.asarray(uniq, dtype=str), kind="stable")
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    ranks = rank[codes]
    if cache is not None:
        cache[key] = ranks
    return ranks


def _window(fcodes: np.ndarray, franks: np.ndarray, ocodes: np.ndarray, oranks: np.ndarray,
            n_codes: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For each record with ``fcodes >= 0``: the ``width`` records with ``ocodes`` of the same
    code nearest to it in rank (a block of at most ``width`` whole). Returns (f positions, o
    positions). Vectorised: one sort of the other side, one searchsorted, one expansion."""
    fpos = np.flatnonzero(fcodes >= 0)
    opos = np.flatnonzero(ocodes >= 0)
    if not fpos.size or not opos.size:
        e = np.empty(0, dtype=np.int64)
        return e, e
    span = int(max(oranks.max(initial=0), franks.max(initial=0))) + 1
    okey = ocodes[opos] * span + oranks[opos]
    order = np.argsort(okey, kind="stable")
    opos, okey = opos[order], okey[order]
    count = np.bincount(ocodes[opos], minlength=n_codes)
    first = np.cumsum(count) - count
    c = fcodes[fpos]
    start, end = first[c], first[c] + count[c]
    fkey = c * span + franks[fpos]
    # the middle of the records sharing its rank (namesakes of one birth date sit together)
    at = (np.searchsorted(okey, fkey, "left") + np.searchsorted(okey, fkey, "right")) // 2
    lo = np.clip(at - width // 2, start, np.maximum(start, end - width))
    n = np.minimum(lo + width, end) - lo
    rep = np.repeat(np.arange(fpos.size), n)
    off = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    return fpos[rep], opos[lo[rep] + off]


def _window_join(lc: np.ndarray, rc: np.ndarray, n_codes: int, lflag: np.ndarray, rflag: np.ndarray,
                 lrank: np.ndarray, rrank: np.ndarray, width: int, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of a restricted pass with a sorted window (BlockingPass.window_by): every flagged
    record with the ``width`` records of the other side (of its own file for ``same``, itself
    left out) nearest to it in its block. Pairs i < j for ``same``."""
    if n_codes == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e
    if same:
        f, o = _window(np.where(lflag, lc, -1), lrank, lc, lrank, n_codes, width + 1)
        keep = f != o
        f, o = f[keep], o[keep]
        return np.minimum(f, o), np.maximum(f, o)
    i1, j1 = _window(np.where(lflag, lc, -1), lrank, rc, rrank, n_codes, width)
    j2, i2 = _window(np.where(rflag, rc, -1), rrank, lc, lrank, n_codes, width)
    return np.concatenate([i1, i2]), np.concatenate([j1, j2])


def candidate_pairs(
    left: pd.DataFrame,
    right: pd.DataFrame | None = None,
    passes: tuple[BlockingPass, ...] = DEFAULT_PASSES,
    block_cap: int = 20_000,
    window: int = WINDOW,
) -> Candidates:
    """Union of blocking passes between ``left`` and ``right`` (frames from reconcile.keys.add_keys).

    With ``right=None`` the left frame is deduplicated against itself (pairs i < j). A restricted
    pass with ``window_by`` pairs a flagged record with its ``window`` nearest records of each
    block (0: the whole block, up to ``block_cap``).
    """
    same = right is None
    right_df = left if same else right
    n_right = len(right_df)
    all_codes: list[np.ndarray] = []
    stats: list[PassStats] = []
    seen = np.empty(0, dtype=np.int64)
    column_cache: dict = {}
    for bit, p in enumerate(passes):
        st = PassStats(p.name, p.description)
        if p.train_only:   # listed with no pairs (the report's blocking table shows it unused)
            all_codes.append(np.empty(0, dtype=np.int64))
            stats.append(st)
            continue
        lc, rc, uniques = _key_codes(left, right_df, p.columns, column_cache)
        pass_cap = p.block_cap(block_cap)
        if p.flag_column and p.window_by and window > 0:
            ranks = _order_ranks(left, right_df, p.window_by, column_cache)
            i, j = _window_join(lc, rc, len(uniques), left[p.flag_column].to_numpy(bool),
                                right_df[p.flag_column].to_numpy(bool), ranks[:len(left)],
                                ranks if same else ranks[len(left):], window, same)
        elif p.flag_column:
            lsparse = left[p.flag_column].to_numpy(bool)
            rsparse = right_df[p.flag_column].to_numpy(bool)
            # a pair qualifies when either side is flagged: run the join twice and union.
            parts = []
            for lmask, rmask in ((lsparse, np.ones(n_right, bool)), (np.ones(len(left), bool), rsparse)):
                lcc = np.where(lmask, lc, -1)
                rcc = np.where(rmask, rc, -1)
                i, j, sk, sz, sr = _join(lcc, rcc, len(uniques), pass_cap, same)
                parts.append((i, j))
                _note_skips(st, p, uniques, sk, sz, sr)
            i = np.concatenate([parts[0][0], parts[1][0]])
            j = np.concatenate([parts[0][1], parts[1][1]])
        else:
            i, j, sk, sz, sr = _join(lc, rc, len(uniques), pass_cap, same)
            if p.cap is None:
                _note_skips(st, p, uniques, sk, sz, sr)
            else:   # blocks over a pass's own cap are expected (common names): count, don't warn each
                st.skipped_blocks += int(len(sk))
                st.skipped_records += int(sr.sum())
        code = _sorted_unique(i * n_right + j)
        st.pairs = int(code.size)
        if seen.size:
            pos = np.searchsorted(seen, code)
            known = (pos < seen.size) & (seen[np.minimum(pos, seen.size - 1)] == code)
            st.new_pairs = int((~known).sum())
            # the new codes are distinct, sorted and not in seen: insert them in place (no re-sort)
            seen = np.insert(seen, pos[~known], code[~known])
        else:
            st.new_pairs = int(code.size)
            seen = code
        all_codes.append(code)
        stats.append(st)
    # seen is the sorted union of every pass's pairs; each pass's codes are distinct, so its bit
    # is set by one fancy assignment (no sort of the concatenated passes)
    uniq = seen.astype(np.int64)
    mask = np.zeros(uniq.size, dtype=np.uint16)
    for bit, code in enumerate(all_codes):
        if code.size:
            mask[np.searchsorted(uniq, code)] |= np.uint16(1 << bit)
    return Candidates(left=uniq // max(n_right, 1), right=uniq % max(n_right, 1), passes=mask, stats=stats)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array. (numpy 2.4's hash-based np.unique is an order of
    magnitude slower than a sort on millions of pair codes.)"""
    if a.size == 0:
        return a.astype(np.int64)
    s = np.sort(a)
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    keep[1:] = s[1:] != s[:-1]
    return s[keep]


def _note_skips(st: PassStats, p: BlockingPass, uniques: list, skipped: np.ndarray, sizes: np.ndarray, records: np.ndarray) -> None:
    texts = uniques.many(skipped) if isinstance(uniques, _LazyLabels) else [uniques[c] for c in skipped.tolist()]
    for text, size, nrec in zip(texts, sizes.tolist(), records.tolist()):
        st.skipped_blocks += 1
        st.skipped_records += int(nrec)
        key = mask_ids_in_text(str(text).replace("\x1f", " + "))
        st.warnings.append(f"{p.name}: block '{key}' skipped: {nrec} records, {size} pairs over the cap")


def sample_pass_pairs(
    left: pd.DataFrame,
    right: pd.DataFrame | None,
    p: BlockingPass,
    block_cap: int = 20_000,
    max_pairs: int = 200_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of pass ``p`` *without* its restriction (its flag_column), for EM training:
    every pair when there are at most ``max_pairs``, else the pairs of a seeded random subset of
    its blocks (whole blocks, so each sampled block keeps its mix of matches and non-matches).

    A restricted pass holds only pairs where a record lacks a usable ID: a biased set to learn how
    often a name or an address agrees for one person. Its whole pass is the training set the
    model was built on; the sample keeps that set's cost fixed however large the registries grow.
    """
    same = right is None
    right_df = left if same else right
    lc, rc, uniques = _key_codes(left, right_df, p.columns)   # every record, flagged or not
    n_codes = len(uniques)
    cap = p.block_cap(block_cap)
    if n_codes == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e
    lcount = np.bincount(lc[lc >= 0], minlength=n_codes)
    rcount = np.bincount(rc[rc >= 0], minlength=n_codes)
    size = lcount * (lcount - 1) // 2 if same else lcount * rcount
    size = np.where(size > cap, 0, size)
    if int(size.sum()) > max_pairs:
        order = np.random.default_rng(seed).permutation(n_codes)
        keep_sorted = np.cumsum(size[order]) <= max_pairs
        chosen = np.zeros(n_codes, dtype=bool)
        chosen[order[keep_sorted]] = True
        lc = np.where((lc >= 0) & chosen[np.maximum(lc, 0)], lc, -1)
        rc = np.where((rc >= 0) & chosen[np.maximum(rc, 0)], rc, -1)
    i, j, *_ = _join(lc, rc, n_codes, cap, same)
    code = _sorted_unique(i * len(right_df) + j)
    return code // max(len(right_df), 1), code % max(len(right_df), 1)
