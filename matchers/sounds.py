"""Characters that sound alike: one fuzzy syllable id per Han character (模糊音).

Clerks write a name they hear. Besides true homophones (彬/斌, bin), the sounds most of southern
and central China does not tell apart are confused: the initials z/zh, c/ch, s/sh and n/l, and
the finals an/ang, en/eng, in/ing (陈/程 chen/cheng, 林/凌 lin/ling). Input methods call these
模糊音 and offer the same switches. A character's id is its toneless pinyin (pypinyin's default
reading) with those distinctions folded; ids are computed once per distinct character and kept in
a table indexed by code point, so a whole code matrix is looked up in one numpy step.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

UNKNOWN = -1          # no reading: padding (code 0), separators, Latin letters, digits
_UNSET = -2           # not looked up yet
_TABLE: np.ndarray = np.full(0x110000, _UNSET, dtype=np.int32)
_TABLE[0] = UNKNOWN
_IDS: dict[str, int] = {}

_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


@lru_cache(maxsize=65536)   # a few thousand syllables, asked for once per name of a registry
def fuzzy_syllable(syllable: str) -> str:
    """A toneless pinyin syllable with the 模糊音 distinctions folded: zh/ch/sh -> z/c/s,
    initial n -> l, final -ng -> -n (ang/eng/ing/ong; ong has no -n partner, so nothing merges)."""
    s = syllable.lower().replace("ü", "v")
    for a, b in _INITIALS:
        if s.startswith(a):
            s = b + s[len(a):]
            break
    if s.startswith("n") and len(s) > 1:
        s = "l" + s[1:]
    if s.endswith("ng") and len(s) > 2:
        s = s[:-1]
    return s


def _reading(code: int) -> str:
    from pypinyin import Style, lazy_pinyin

    ch = chr(code)
    out = lazy_pinyin(ch, style=Style.NORMAL, errors="ignore")
    return out[0] if out and out[0].isalpha() and out[0] != ch else ""


def sound_ids(codes: np.ndarray) -> np.ndarray:
    """Fuzzy syllable id per code point (same shape as ``codes``); UNKNOWN where none."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return np.zeros(codes.shape, dtype=np.int32)
    ids = _TABLE[codes]
    unset = ids == _UNSET
    if unset.any():   # characters not seen before (a few thousand in a registry): read them once
        for c in np.unique(codes[unset]).tolist():
            r = _reading(int(c))
            _TABLE[c] = _IDS.setdefault(fuzzy_syllable(r), len(_IDS)) if r else UNKNOWN
        ids = _TABLE[codes]
    return ids


def sound_alike(a: str, b: str) -> bool:
    """Whether two characters sound alike (tests and documentation; matrices use sound_ids)."""
    ia, ib = sound_ids(np.array([ord(a), ord(b)]))
    return bool(ia >= 0 and ia == ib)


@lru_cache(maxsize=65536)   # pypinyin takes tens of microseconds a call; characters repeat
def char_reading(ch: str) -> str:
    """A character's toneless default pinyin reading ('' when it has none)."""
    return _reading(ord(ch)) if len(ch) == 1 else ""
