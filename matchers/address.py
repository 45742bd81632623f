"""Address comparator: the hukou address below the divisions it names.

Reads ``k_address`` (the address after its province/city/county, without spaces or
punctuation; reconcile.keys) and ``k_address_stem`` (the same without house, group and flat
numbers). The county itself is the hukou comparator's: this one only looks at what is left
(township, village, street, number), so a record whose address names nothing below the county
(a destination's 户籍地 "湖南省永州市双牌县") is missing here, not different.

Levels: ``exact``; ``similar`` (normalised Indel similarity >= 0.85: typos, a dropped or
doubled character, one digit of a house or group number in a long address: a typo and a
neighbour cannot be told apart there, EM weighs the level); ``same_place`` (equal once the numbers are
dropped: the same village or street, another group or house; or one address is the start of
the other: written with less detail; or they share a long beginning — 70% of the shorter, at
least 6 characters — and end differently); ``different``.
"""
from __future__ import annotations

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import Prefix
from rapidfuzz.process import cpdist

from matchers._vec import column
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = ("exact", "similar", "same_place", "different")
EXACT, SIMILAR, SAME_PLACE, DIFFERENT = range(len(LEVELS))
SIMILAR_CUTOFF = 85.0
SAME_PLACE_MIN_CHARS, SAME_PLACE_SHARE = 6, 0.7
_WIDTH = 24   # characters of a shared beginning counted (same_place)


def compare_address(left: Columns, right: Columns, key: str = "k_address") -> np.ndarray:
    """Level per aligned pair; MISSING when either side has no address below its county."""
    if key not in left or key not in right:   # frames without derived keys (reconcile.keys.add_keys)
        return np.full(len(next(iter(left.values()))) if left else 0, MISSING, dtype=np.int8)
    a, b = column(left, key), column(right, key)
    n = len(a)
    out = np.full(n, DIFFERENT, dtype=np.int8)
    if n == 0:
        return out
    missing = (a == "") | (b == "")
    exact = (a == b) & ~missing
    sa, sb = column(left, key + "_stem"), column(right, key + "_stem")
    out[(sa == sb) & (sa != "") & ~missing] = SAME_PLACE
    rest = np.flatnonzero(~missing & ~exact)
    if len(rest):
        ra, rb = a[rest].tolist(), b[rest].tolist()
        # the common beginning of each pair in C (rapidfuzz's Prefix): fixed-width numpy strings
        # of every pair took twice as long at 4.4 M within-file pairs
        common = cpdist(ra, rb, scorer=Prefix.similarity, workers=1, dtype=np.int64)
        shorter = np.minimum(np.fromiter(map(len, ra), dtype=np.int64, count=len(ra)),
                             np.fromiter(map(len, rb), dtype=np.int64, count=len(rb)))
        # one side written with less detail (village without its group, street without suburb)
        prefix = common >= shorter
        # ... or the same beginning (township + village, number + street) with another ending,
        # counted over the first _WIDTH characters
        common = np.minimum(common, _WIDTH)
        prefix |= (common >= SAME_PLACE_MIN_CHARS) & (common >= SAME_PLACE_SHARE * shorter)
        out[rest[prefix]] = SAME_PLACE
        sim = cpdist(ra, rb, scorer=fuzz.ratio, score_cutoff=SIMILAR_CUTOFF, workers=1)
        out[rest[(sim >= SIMILAR_CUTOFF) & ~prefix]] = SIMILAR
    out[exact] = EXACT
    out[missing] = MISSING
    return out


ADDRESS = Comparator(field="address", levels=LEVELS, columns=("k_address", "k_address_stem"), fn=compare_address)


def compare_residence(left: Columns, right: Columns) -> np.ndarray:
    """The same levels on the current residence (现居住地) below its county."""
    return compare_address(left, right, "k_residence")


RESIDENCE = Comparator(field="residence", levels=LEVELS, columns=("k_residence", "k_residence_stem"),
                       fn=compare_residence)
