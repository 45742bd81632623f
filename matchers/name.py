"""Name comparator: exact, homophone, shape- or sound-alike, one character apart, contained, Latin pinyin.

Reads standardised columns only (simplified Han or upper-case Latin ``name``, toneless
space-separated ``name_pinyin``, ``surname``, ``given``, ``name_script``). Han pairs are
compared as character-code matrices (no per-pair Python); Latin keys are derived once per
*distinct* value. Separators (the minority-name dot ``·`` and spaces) are ignored, so
买买提·艾力 and 买买提艾力 are ``exact``.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from numpy.dtypes import StringDType
from rapidfuzz.distance import OSA
from rapidfuzz.process import cpdist

from matchers._vec import code_matrix, column, lengths, row_sums
from matchers.base import MISSING, Columns, Comparator
from matchers.shapes import SHAPE_CHARS, shape_alike
from matchers.sounds import sound_ids

LEVELS: tuple[str, ...] = ("exact", "same_pinyin", "shape_alike", "sound_alike", "one_char", "contained",
                           "latin_pinyin", "different")
EXACT, SAME_PINYIN, SHAPE_ALIKE, SOUND_ALIKE, ONE_CHAR, CONTAINED, LATIN_PINYIN, DIFFERENT = range(len(LEVELS))

COLUMNS: tuple[str, ...] = ("name", "name_pinyin", "surname", "given", "name_script")

_SEPARATORS = (ord("·"), ord(" "))
_HAN_WIDTH = 8  # nearly all Han names fit; longer ones (minority names) get their own pass
_TOKEN = re.compile(r"[^\W_]+")


def compare_name(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either ``name`` is empty.

    Han-Han pairs can reach every level except ``latin_pinyin``; Latin-Han pairs are
    ``latin_pinyin`` or ``different``; Latin-Latin pairs are ``exact`` (ignoring spaces),
    ``one_char`` (one letter edit), ``contained`` or ``latin_pinyin`` (tokens reordered).
    Other script combinations (``mixed``) are only ``exact`` or ``different``.
    """
    a, b = column(left, "name"), column(right, "name")
    n = len(a)
    out = np.full(n, DIFFERENT, dtype=np.int8)
    if n == 0:
        return out
    # one code matrix per side serves the missing and exact tests too (cheaper than
    # comparing the object arrays) and then the Han levels
    ca, over_a = code_matrix(a, _HAN_WIDTH)
    cb, over_b = code_matrix(b, _HAN_WIDTH)
    over = over_a | over_b
    missing = (ca[:, 0] == 0) | (cb[:, 0] == 0)
    exact = (row_sums(ca != cb) == 0) & ~over
    longs = np.flatnonzero(over)
    exact[longs] = a[longs] == b[longs]
    exact &= ~missing
    out[exact] = EXACT
    rest = ~exact & ~missing
    han_a, han_b = column(left, "name_script") == "han", column(right, "name_script") == "han"

    han2 = rest & han_a & han_b
    short = np.flatnonzero(han2 & ~over)
    if len(short):
        out[short] = _han_code_levels(ca[short], cb[short], left, right, short)
    long_han = np.flatnonzero(han2 & over)
    if len(long_han):  # rare: minority names; their own, wider matrices
        width = max(max(map(len, a[long_han])), max(map(len, b[long_han])))
        la, _ = code_matrix(a[long_han], width)
        lb, _ = code_matrix(b[long_han], width)
        out[long_han] = _han_code_levels(la, lb, left, right, long_han)

    other = np.flatnonzero(rest & ~(han_a & han_b))
    if len(other):
        lat_a = column(left, "name_script")[other] == "latin"
        lat_b = column(right, "name_script")[other] == "latin"
        latin = other[(lat_a & (lat_b | han_b[other])) | (han_a[other] & lat_b)]
        if len(latin):
            out[latin] = _latin_levels(_take(left, latin), _take(right, latin))
    out[missing] = MISSING
    return out


def _take(cols: Columns, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {c: column(cols, c)[idx] for c in COLUMNS}


# ---------------------------------------------------------------- Han pairs


def _han_code_levels(ca: np.ndarray, cb: np.ndarray, left: Columns, right: Columns, idx: np.ndarray) -> np.ndarray:
    """Levels from code matrices; stronger levels are assigned last and overwrite."""
    out = np.full(len(ca), DIFFERENT, dtype=np.int8)
    ca, sep_a = _strip_separators(ca)
    cb, sep_b = _strip_separators(cb)
    sep = sep_a | sep_b
    la, lb = lengths(ca), lengths(cb)
    same_len = la == lb
    diff = ca != cb
    n_diff = row_sums(diff)
    # characters compared by sound (模糊音, matchers.sounds): a sound-alike character counts as the
    # same one for the edit tests below, so 扬鹏文/杨鹏 and 黄明/皇德明 are one character apart
    sa, sb = sound_ids(ca), sound_ids(cb)
    sound_eq = diff & (sa == sb) & (sa >= 0)
    ka = np.where(sa >= 0, sa.astype(np.int64) + _SOUND_KEY_BASE, ca)
    kb = np.where(sb >= 0, sb.astype(np.int64) + _SOUND_KEY_BASE, cb)

    # contained: same surname and one given name inside the other (with the same surname
    # the given names differ in length exactly when the names do) ...
    cand = np.flatnonzero(la != lb)
    if len(cand):
        out[cand[_given_contained(left, right, idx[cand])]] = CONTAINED
    # ... or one OSA edit on names of 3+ characters: a dropped compound-surname character
    # (欧阳晓棠/欧晓棠), a dropped or added character, two neighbours swapped.
    long_enough = np.maximum(la, lb) >= 3
    kdiff = ka != kb
    out[long_enough & same_len & _adjacent_swap(ka, kb, kdiff, row_sums(kdiff))] = CONTAINED
    one_off = np.flatnonzero(long_enough & (np.abs(la - lb) == 1))
    if len(one_off):
        out[one_off[_one_deletion(ka[one_off], kb[one_off], la[one_off] > lb[one_off])]] = CONTAINED

    # one character apart on names of 3+ characters, or every differing character is a
    # shape-alike pair (己/已). On a two-character Han name one differing character is a
    # different given name (王伟/王芳): that is no evidence of a typo, so it stays `different`.
    two_plus = same_len & (la >= 2)
    out[same_len & (la >= 3) & (n_diff == 1)] = ONE_CHAR
    multi = np.flatnonzero(two_plus & (n_diff >= 1))
    if len(multi):
        d = diff[multi]
        # cheap gate first: every differing character sounds alike or is on the shape list at all
        on_list = SHAPE_CHARS[ca[multi]] & SHAPE_CHARS[cb[multi]]
        gate = np.all(~d | on_list | sound_eq[multi], axis=1)
        multi, d, on_list = multi[gate], d[gate], on_list[gate]
        if len(multi):
            shaped = on_list & shape_alike(ca[multi], cb[multi])
            # every differing character sounds alike (陈/程, 彬/斌, 则/泽) or looks alike (王/玉),
            # mixed: the name as heard and misread (王惠/玉辉). Its own level: common surnames
            # sound alike (陈/程), so two people differ this way far more often than by shape alone
            out[multi[np.all(~d | shaped | sound_eq[multi], axis=1)]] = SOUND_ALIKE
            # every differing character a shape-alike pair (己/已, 由/田): a misread, strong evidence;
            # its own level, for random names rarely differ that way while they often differ by one
            out[multi[np.all(~d | shaped, axis=1)]] = SHAPE_ALIKE

    # homophones have one syllable per character: only same-length names (separators
    # removed) can be; dotted names compare pinyin letters-only (it may carry the separator)
    plain = np.flatnonzero(same_len & ~sep)
    if len(plain):
        pa, pb = column(left, "name_pinyin")[idx[plain]], column(right, "name_pinyin")[idx[plain]]
        out[plain[(pa == pb) & (pa != "")]] = SAME_PINYIN
    dotted = np.flatnonzero(sep & same_len)
    if len(dotted):
        pa = _letters_only(column(left, "name_pinyin")[idx[dotted]])
        pb = _letters_only(column(right, "name_pinyin")[idx[dotted]])
        out[dotted[(pa == pb) & (pa != "")]] = SAME_PINYIN

    out[sep & (n_diff == 0)] = EXACT  # equal once separators are ignored
    return out


# sound ids are shifted above every code point, so a character with no reading keeps its code
_SOUND_KEY_BASE = 0x110000


def _strip_separators(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove ``·`` and spaces (shift the rest left); also return which rows had any."""
    is_sep = (codes == _SEPARATORS[0]) | (codes == _SEPARATORS[1])
    has = is_sep.any(axis=1)
    rows = np.flatnonzero(has)
    if len(rows):
        codes = codes.copy()
        sub = codes[rows]
        keep = ~is_sep[rows] & (sub != 0)
        target = np.cumsum(keep, axis=1) - 1
        r, c = np.nonzero(keep)
        packed = np.zeros_like(sub)
        packed[r, target[r, c]] = sub[r, c]
        codes[rows] = packed
    return codes, has


def _letters_only(values: np.ndarray) -> np.ndarray:
    """Letters and digits only, computed once per distinct value."""
    codes, uniq = pd.factorize(values)
    keys = np.array(["".join(_TOKEN.findall(u)) for u in uniq] + [""], dtype=object)
    return keys[codes]  # code -1 (never produced for str input) would map to ""


def _adjacent_swap(ca: np.ndarray, cb: np.ndarray, diff: np.ndarray, n_diff: np.ndarray) -> np.ndarray:
    """Rows whose only two differences are neighbours with their characters swapped."""
    out = np.zeros(len(ca), dtype=bool)
    two = np.flatnonzero(n_diff == 2)
    if len(two) == 0 or ca.shape[1] < 2:
        return out
    first = diff[two].argmax(axis=1)
    nxt = np.minimum(first + 1, ca.shape[1] - 1)
    out[two] = (
        diff[two, nxt]
        & (ca[two, first] == cb[two, nxt])
        & (ca[two, nxt] == cb[two, first])
    )
    return out


def _one_deletion(ca: np.ndarray, cb: np.ndarray, a_longer: np.ndarray) -> np.ndarray:
    """Rows where deleting one character of the longer string gives the shorter one.

    Rows must differ in length by exactly one. Deleting position j works when the prefixes
    before j agree and the longer string's tail after j equals the shorter's tail from j.
    """
    long_ = np.where(a_longer[:, None], ca, cb)
    short = np.where(a_longer[:, None], cb, ca)
    k, w = long_.shape
    prefix_ok = np.ones((k, w), dtype=bool)
    prefix_ok[:, 1:] = np.logical_and.accumulate(long_[:, :-1] == short[:, :-1], axis=1)
    suffix_ok = np.ones((k, w), dtype=bool)
    if w > 1:
        tail_eq = long_[:, 1:] == short[:, :-1]
        suffix_ok[:, :-1] = np.logical_and.accumulate(tail_eq[:, ::-1], axis=1)[:, ::-1]
    return np.any(prefix_ok & suffix_ok, axis=1)


def _given_contained(left: Columns, right: Columns, idx: np.ndarray) -> np.ndarray:
    """For pairs ``idx``: same non-empty surname, different non-empty given names, one
    inside the other."""
    out = np.zeros(len(idx), dtype=bool)
    sa = column(left, "surname")[idx]
    same = np.flatnonzero((sa == column(right, "surname")[idx]) & (sa != ""))
    if len(same) == 0:
        return out
    ga, gb = column(left, "given")[idx[same]], column(right, "given")[idx[same]]
    cand = np.flatnonzero((ga != "") & (gb != "") & (ga != gb))
    if len(cand):
        xa, xb = ga[cand].astype(StringDType()), gb[cand].astype(StringDType())
        out[same[cand]] = (np.strings.find(xa, xb) >= 0) | (np.strings.find(xb, xa) >= 0)
    return out


# ---------------------------------------------------------------- pairs with a Latin side


def _latin_levels(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> np.ndarray:
    """Pairs where one side is Latin and the other Latin or Han.

    Token orders: a Latin side may be written in any of four orders (as given, last token
    first, first token last, reversed); it matches when one of them equals the other side's
    natural order (Han: surname syllables first, or given-name syllables first; Latin: as
    given). ZHANG WEI, WEI ZHANG, XIAOWEI ZHANG, XIAO TANG OU YANG all match their Han name.
    """
    m = len(left["name"])
    out = np.full(m, DIFFERENT, dtype=np.int8)
    lat_a, lat_b = left["name_script"] == "latin", right["name_script"] == "latin"
    vocab: dict[str, int] = {"": -1}  # shared key ids: the pair tests compare small ints
    va, na, plain_a = _order_keys(left, lat_a, vocab)
    vb, nb, plain_b = _order_keys(right, lat_b, vocab)
    reordered = np.zeros(m, dtype=bool)
    for x in va:
        for y in nb:
            reordered |= x == y
    for x in vb:
        for y in na:
            reordered |= x == y
    reordered &= (va[0] >= 0) & (vb[0] >= 0)
    out[reordered] = LATIN_PINYIN

    ll = np.flatnonzero(lat_a & lat_b)
    if len(ll):
        sub_out = out[ll]
        sub_out[_given_contained(left, right, ll)] = CONTAINED
        nonempty = (va[0][ll] >= 0) & (vb[0][ll] >= 0)
        # one letter edit: only keys whose lengths differ by at most one need OSA
        near = np.flatnonzero(nonempty & (np.abs(plain_a[1][ll] - plain_b[1][ll]) <= 1))
        if len(near):
            xa, xb = plain_a[0][ll[near]], plain_b[0][ll[near]]
            typo = cpdist(xa.tolist(), xb.tolist(), scorer=OSA.distance, score_cutoff=1, workers=1) <= 1
            sub_out[near[typo]] = ONE_CHAR
        # written in another order AND with one letter wrong (RYNA CHLOE / CHLOE RYAN): one edit
        # apart once each side's tokens are sorted
        rest = np.flatnonzero(nonempty & (sub_out == DIFFERENT))
        if len(rest):
            sa = _sorted_letters(left["name_pinyin"][ll[rest]])
            sb = _sorted_letters(right["name_pinyin"][ll[rest]])
            close = cpdist(sa.tolist(), sb.tolist(), scorer=OSA.distance, score_cutoff=1, workers=1) <= 1
            sub_out[rest[close & (sa != "")]] = ONE_CHAR
        sub_out[(va[0][ll] == vb[0][ll]) & nonempty] = EXACT  # equal once spaces are ignored
        out[ll] = sub_out
    return out


def _order_keys(
    cols: dict[str, np.ndarray], is_latin: np.ndarray, vocab: dict[str, int]
) -> tuple[list[np.ndarray], list[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Letters-only pinyin keys as ids in ``vocab``, computed once per distinct value.

    Returns ``(orders, natural, (plain, plain_len))``: four id arrays of the orders a value
    may have been written in, two of its natural orders, and the plain key as text with its
    length. Latin: orders = as given, last token first, first token last, reversed;
    natural = as given. Han: orders = natural = surname syllables first, given-name
    syllables first (one syllable per surname character). Empty keys get id -1.
    """
    n = len(is_latin)
    ids = np.full((n, 4), -1, dtype=np.int64)
    plain = np.empty(n, dtype=object)
    plain_len = np.zeros(n, dtype=np.int64)
    pinyin = cols["name_pinyin"]

    def fill(rows: np.ndarray, codes: np.ndarray, table: list[tuple[str, ...]]) -> None:
        tid = np.array([[vocab.setdefault(k, len(vocab)) for k in t] for t in table], dtype=np.int64)
        if tid.shape[1] == 2:  # Han: its two natural orders stand for all four
            tid = tid[:, [0, 1, 0, 1]]
        ids[rows] = tid[codes]
        texts = np.array([t[0] for t in table], dtype=object)
        plain[rows] = texts[codes]
        plain_len[rows] = np.array([len(t[0]) for t in table], dtype=np.int64)[codes]

    li = np.flatnonzero(is_latin)
    if len(li):
        codes, uniq = pd.factorize(pinyin[li])
        fill(li, codes, [_latin_orders(u) for u in uniq])
    hi = np.flatnonzero(~is_latin)
    if len(hi):
        codes_s, uniq_s = pd.factorize(cols["surname"][hi])
        slen = np.array([str(len(u)) for u in uniq_s] or ["0"], dtype=object)[codes_s]
        codes, uniq = pd.factorize(pinyin[hi] + "\x1f" + slen)
        fill(hi, codes, [_han_orders(u) for u in uniq])
    orders = [ids[:, j] for j in range(4)]
    natural = [orders[0], np.where(is_latin, orders[0], orders[1])]
    return orders, natural, (plain, plain_len)


def _sorted_letters(pinyin: np.ndarray) -> np.ndarray:
    """Tokens sorted and joined (letters only), once per distinct value."""
    codes, uniq = pd.factorize(pinyin)
    keys = np.array(["".join(sorted(_canon_token(t) for t in _TOKEN.findall(str(u).lower()))) for u in uniq] or [""],
                    dtype=object)
    return keys.take(codes) if len(codes) else np.array([], dtype=object)


def _latin_orders(pinyin: str) -> tuple[str, str, str, str]:
    toks = [_canon_token(t) for t in _TOKEN.findall(pinyin.lower())]
    return ("".join(toks), "".join(toks[-1:] + toks[:-1]), "".join(toks[1:] + toks[:1]), "".join(reversed(toks)))


def _han_orders(keyed: str) -> tuple[str, str]:
    pinyin, _, slen = keyed.partition("\x1f")
    pinyin = pinyin.replace("ü", "v")
    toks = pinyin.split() if pinyin.replace(" ", "").isalpha() else _TOKEN.findall(pinyin)
    k = int(slen)
    return "".join(toks), "".join(toks[k:] + toks[:k])


def _canon_token(tok: str) -> str:
    """Unify ü spellings: pinyin lü/lv and passport LYU are the same syllable."""
    tok = tok.replace("ü", "v")
    if tok.startswith(("lyu", "nyu")):  # no pinyin syllable starts with ly/ny
        tok = tok[0] + "v" + tok[3:]
    return tok


NAME = Comparator(field="name", levels=LEVELS, columns=COLUMNS, fn=compare_name)
