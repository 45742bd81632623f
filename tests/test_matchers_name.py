"""Name comparator levels on the hard cases, and the vectorised path against a slow reference.

Inputs are standardised values built by hand (simplified Han, toneless pinyin with the
surname reading from the surname table, upper-case Latin, minority-name dots as ·).
"""
from __future__ import annotations

import re

import random

import numpy as np
import pytest

from matchers.base import MISSING
from matchers.name import NAME
from matchers.shapes import SHAPE_ALIKE_PAIRS, is_shape_alike
from matchers.sounds import sound_alike, sound_ids

Row = tuple[str, str, str, str, str]  # name, name_pinyin, surname, given, name_script


def han(name: str, pinyin: str, surname_len: int = 1) -> Row:
    plain = name.replace("·", "")
    return (name, pinyin, plain[:surname_len] if surname_len else "", plain[surname_len:], "han")


def minority(name: str, pinyin: str) -> Row:
    # transliterated names have no surname/given split
    return (name, pinyin, "", "", "han")


def latin(name: str, surname_first: bool = True) -> Row:
    toks = name.split()
    sur, giv = (toks[0], " ".join(toks[1:])) if surname_first else (toks[-1], " ".join(toks[:-1]))
    return (name, name.lower(), sur, giv, "latin")


def compare(pairs: list[tuple[Row, Row]]) -> np.ndarray:
    cols = NAME.columns
    left = {c: np.array([p[0][i] for p in pairs], dtype=object) for i, c in enumerate(cols)}
    right = {c: np.array([p[1][i] for p in pairs], dtype=object) for i, c in enumerate(cols)}
    return NAME.compare(left, right)


def one(a: Row, b: Row) -> str:
    return NAME.label(int(compare([(a, b)])[0]))


ZHANG_WEI = han("张伟", "zhang wei")


def test_exact_and_traditional_already_simplified():
    assert one(ZHANG_WEI, han("张伟", "zhang wei")) == "exact"
    # 張偉 reaches the comparator as 张伟 (name_raw keeps the traditional form)
    assert one(han("张伟", "zhang wei"), ZHANG_WEI) == "exact"


@pytest.mark.parametrize("a,b", [
    (ZHANG_WEI, han("章玮", "zhang wei")),
    (han("单雄", "shan xiong"), han("善雄", "shan xiong")),    # surname 单 read shàn
    (han("曾凡", "zeng fan"), han("增凡", "zeng fan")),         # surname 曾 read zēng
    (han("区永", "ou yong"), han("欧永", "ou yong")),           # surname 区 read ōu
    (han("覃丽", "qin li"), han("秦丽", "qin li")),
    (minority("买买提·艾力", "mai mai ti ai li"), minority("麦麦提·艾力", "mai mai ti ai li")),
])
def test_homophones_are_same_pinyin(a, b):
    assert one(a, b) == "same_pinyin"


def test_syllables_not_letters_make_a_homophone():
    # 西安 xi an / 先 xian: same letters, different syllables
    assert one(han("李西安", "li xi an"), han("李先", "li xian")) != "same_pinyin"


def test_one_character_apart():
    assert one(han("王丽华", "wang li hua"), han("王丽娟", "wang li juan")) == "one_char"
    assert one(han("张己", "zhang ji"), han("张已", "zhang yi")) == "shape_alike"
    # two different one-character names are not "one character apart"
    assert one(han("张", "zhang", 1), han("李", "li", 1)) == "different"


def test_shape_alike_characters():
    assert is_shape_alike("己", "已") and is_shape_alike("已", "己")
    assert is_shape_alike("未", "末") and is_shape_alike("戊", "戌") and is_shape_alike("土", "士")
    assert not is_shape_alike("张", "李")
    assert 60 <= len(SHAPE_ALIKE_PAIRS) <= 120
    # two differing characters, both shape-alike pairs: shape_alike
    assert one(han("王己未", "wang ji wei"), han("玉已末", "yu yi mo")) == "shape_alike"
    # two differing characters that merely differ: not one_char
    assert one(han("王己未", "wang ji wei"), han("李娜未", "li na wei")) == "different"


def test_given_name_contained_with_same_surname():
    assert one(han("张小伟", "zhang xiao wei"), ZHANG_WEI) == "contained"
    assert one(ZHANG_WEI, han("张小伟", "zhang xiao wei")) == "contained"
    # same given part but another surname is not containment
    assert one(han("李小伟", "li xiao wei"), ZHANG_WEI) == "different"


def test_compound_surname_missing_a_character():
    assert one(han("欧阳晓棠", "ou yang xiao tang", 2), han("欧晓棠", "ou xiao tang")) == "contained"
    # neighbours swapped in a 3-character name
    assert one(han("张明伟", "zhang ming wei"), han("张伟明", "zhang wei ming")) == "contained"
    # a 2-character name losing a character is too weak to say
    assert one(han("张伟", "zhang wei"), han("伟", "wei", 0)) == "different"


@pytest.mark.parametrize("latin_name", ["ZHANG WEI", "WEI ZHANG", "ZHANGWEI"])
def test_latin_pinyin_either_order(latin_name):
    assert one(latin(latin_name), ZHANG_WEI) == "latin_pinyin"
    assert one(ZHANG_WEI, latin(latin_name)) == "latin_pinyin"


def test_latin_pinyin_three_syllables_and_compound_surname():
    xw = han("张小伟", "zhang xiao wei")
    for name in ("ZHANG XIAOWEI", "XIAOWEI ZHANG", "ZHANG XIAO WEI", "XIAO WEI ZHANG"):
        assert one(latin(name), xw) == "latin_pinyin", name
    oy = han("欧阳晓棠", "ou yang xiao tang", 2)
    for name in ("OUYANG XIAOTANG", "XIAOTANG OUYANG", "XIAO TANG OU YANG"):
        assert one(latin(name), oy) == "latin_pinyin", name
    assert one(latin("LI WEI"), ZHANG_WEI) == "different"


def test_passport_lyu_spelling():
    assert one(latin("LYU YANG"), han("吕阳", "lv yang")) == "latin_pinyin"


def test_latin_against_latin():
    assert one(latin("ZHANG WEI"), latin("WEI ZHANG", surname_first=False)) == "latin_pinyin"
    assert one(latin("ZHANG WEI"), latin("ZHANGWEI")) == "exact"
    assert one(latin("ZHANG WEI"), latin("ZHANG WIE")) == "one_char"
    assert one(latin("ZHANG WEI"), latin("ZHANG XIAOWEI")) == "contained"
    assert one(latin("ZHANG WEI"), latin("LI NA")) == "different"


def test_minority_names_dots_and_latin():
    dotted = minority("买买提·艾力", "mai mai ti ai li")
    bare = minority("买买提艾力", "mai mai ti ai li")
    assert one(dotted, bare) == "exact"
    assert one(latin("MAIMAITI AILI"), dotted) == "latin_pinyin"
    assert one(latin("AILI MAIMAITI"), bare) == "latin_pinyin"
    assert one(latin("MAIMAITI AILI"), latin("MAIMAITI·AILI")) == "exact"
    # a long name (more than 8 characters) with one character changed
    long_a = minority("阿卜杜热合曼·买买提明", "a bu du re he man mai mai ti ming")
    long_b = minority("阿卜杜热合曼·买买提江", "a bu du re he man mai mai ti jiang")
    assert one(long_a, long_b) == "one_char"
    assert one(long_a, minority("阿卜杜热合曼买买提明", "a bu du re he man mai mai ti ming")) == "exact"


def test_missing_either_side():
    empty: Row = ("", "", "", "", "empty")
    got = compare([(empty, ZHANG_WEI), (ZHANG_WEI, empty), (empty, empty)])
    assert got.tolist() == [MISSING] * 3


def test_empty_input():
    assert compare([]).tolist() == []


# ------------------------------------------------------------------ slow reference

SEP = "· "


def _strip(s: str) -> str:
    return "".join(ch for ch in s if ch not in SEP)


def _letters(s: str) -> str:
    return "".join(ch for ch in s if ch.isalnum())


def _osa(a: str, b: str) -> int:
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _sound_keys(s: str) -> list:
    """Each character as its sound (模糊音) where it has one: the edit tests compare by sound."""
    return [("sound", int(sound_ids(np.array([ord(c)]))[0])) if sound_ids(np.array([ord(c)]))[0] >= 0 else c
            for c in s]


def _contained(a: Row, b: Row) -> bool:
    return bool(a[2]) and a[2] == b[2] and bool(a[3]) and bool(b[3]) and a[3] != b[3] and (a[3] in b[3] or b[3] in a[3])


def _orders(r: Row) -> tuple[str, str, str, str]:
    toks = [t.replace("ü", "v") for t in r[1].lower().split() if t.isalnum()]
    k = len(r[2]) if r[4] == "han" else 1
    if r[4] == "han":
        given_first = toks[k:] + toks[:k]
    else:
        given_first = toks[-1:] + toks[:-1]
    return ("".join(toks), "".join(given_first), "".join(toks[1:] + toks[:1]), "".join(reversed(toks)))


def slow_reference(a: Row, b: Row) -> int:
    if not a[0] or not b[0]:
        return -1
    if a[0] == b[0]:
        return 0
    sa, sb = a[4], b[4]
    if sa == "han" and sb == "han":
        x, y = _strip(a[0]), _strip(b[0])
        sep = x != a[0] or y != b[0]
        if sep and x == y:
            return 0
        if a[1] and (_letters(a[1]) == _letters(b[1]) if sep else a[1] == b[1]):
            return 1
        if len(x) == len(y) >= 2:
            diffs = [(p, q) for p, q in zip(x, y) if p != q]
            if all(is_shape_alike(p, q) for p, q in diffs):
                return 2
            if all(is_shape_alike(p, q) or sound_alike(p, q) for p, q in diffs):
                return 3
            if len(diffs) == 1 and len(x) >= 3:
                return 4
        kx, ky = _sound_keys(x), _sound_keys(y)
        # one edit by sound, but not a substitution (one different character is `one_char` or nothing)
        one_sub = len(x) == len(y) and sum(p != q for p, q in zip(kx, ky)) == 1
        if _contained(a, b) or (max(len(x), len(y)) >= 3 and _osa(kx, ky) == 1 and not one_sub):
            return 5
        return 7
    if "latin" in (sa, sb) and sa in ("latin", "han") and sb in ("latin", "han"):
        oa, ob = _orders(a), _orders(b)
        if sa == sb == "latin":
            if oa[0] and oa[0] == ob[0]:
                return 0
            if oa[0] and _osa(oa[0], ob[0]) <= 1:
                return 4
            if _contained(a, b):
                return 5
        # a Latin side in any of its orders against the other side's natural orders
        na = oa[:1] if sa == "latin" else oa[:2]
        nb = ob[:1] if sb == "latin" else ob[:2]
        la = oa if sa == "latin" else oa[:2]
        lb = ob if sb == "latin" else ob[:2]
        if oa[0] and ob[0] and (any(v in nb for v in la) or any(v in na for v in lb)):
            return 6
        if sa == sb == "latin" and oa[0] and ob[0]:
            # another order and one letter wrong: one edit apart once the tokens are sorted
            sort_a = "".join(sorted(re.findall(r"[^\W_]+", a[1].lower())))
            sort_b = "".join(sorted(re.findall(r"[^\W_]+", b[1].lower())))
            if sort_a and _osa(sort_a, sort_b) <= 1:
                return 4
        return 7
    return 7


HAN_PINYIN = {
    "张": "zhang", "章": "zhang", "伟": "wei", "玮": "wei", "未": "wei", "末": "mo", "李": "li",
    "力": "li", "娜": "na", "己": "ji", "已": "yi", "王": "wang", "玉": "yu", "小": "xiao",
    "晓": "xiao", "明": "ming", "欧": "ou", "阳": "yang", "买": "mai", "麦": "mai", "提": "ti",
    "艾": "ai", "土": "tu", "士": "shi",
}
CHARS = list(HAN_PINYIN)
HOMOPHONES = {c: [d for d in CHARS if d != c and HAN_PINYIN[d] == HAN_PINYIN[c]] for c in CHARS}
SHAPES = {c: [p[1] if p[0] == c else p[0] for p in SHAPE_ALIKE_PAIRS if c in p and all(x in HAN_PINYIN for x in p)]
          for c in CHARS}


def _han_row(chars: list[str], surname_len: int, dot_at: int | None = None) -> Row:
    name = "".join(chars)
    pinyin = " ".join(HAN_PINYIN[c] for c in chars)
    sur, giv = name[:surname_len], name[surname_len:]
    if dot_at is not None and 0 < dot_at < len(name):
        name = name[:dot_at] + "·" + name[dot_at:]
    return (name, pinyin, sur, giv, "han")


def _latin_row(chars: list[str], rng: random.Random) -> Row:
    syl = [HAN_PINYIN[c] for c in chars]
    toks = [syl[0], "".join(syl[1:])] if len(syl) > 1 else syl
    if rng.random() < 0.4:
        toks = toks[::-1]
    if rng.random() < 0.2:
        toks = syl
    return latin(" ".join(toks).upper())


def _mutate(chars: list[str], rng: random.Random) -> list[str]:
    c = list(chars)
    kind = rng.randrange(7)
    p = rng.randrange(len(c))
    if kind == 0 and HOMOPHONES[c[p]]:
        c[p] = rng.choice(HOMOPHONES[c[p]])
    elif kind == 1 and SHAPES[c[p]]:
        c[p] = rng.choice(SHAPES[c[p]])
    elif kind == 2 and len(c) > 1:
        del c[p]
    elif kind == 3:
        c.insert(p, rng.choice(CHARS))
    elif kind == 4 and len(c) > 1:
        q = min(p + 1, len(c) - 1)
        c[p], c[q] = c[q], c[p]
    elif kind == 5:
        c[p] = rng.choice(CHARS)
    return c


def random_pairs(n: int, seed: int) -> list[tuple[Row, Row]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        chars = [rng.choice(CHARS) for _ in range(rng.randint(1, 5))]
        other = _mutate(_mutate(chars, rng), rng) if rng.random() < 0.5 else _mutate(chars, rng)
        sl_a, sl_b = rng.choice([1, 1, 2]), rng.choice([1, 1, 2])
        a = _han_row(chars, sl_a, rng.randrange(1, 5) if rng.random() < 0.1 else None)
        r = rng.random()
        if r < 0.15:
            b = _latin_row(other, rng)
        elif r < 0.2:
            a, b = _latin_row(chars, rng), _latin_row(other, rng)
        elif r < 0.25:
            b = ("", "", "", "", "empty")
        else:
            b = _han_row(other, sl_b, rng.randrange(1, 5) if rng.random() < 0.1 else None)
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    return pairs


def test_vectorised_matches_slow_reference():
    pairs = random_pairs(1000, seed=11)
    got = compare(pairs).tolist()
    want = [slow_reference(a, b) for a, b in pairs]
    bad = [(pairs[i], got[i], want[i]) for i in range(len(pairs)) if got[i] != want[i]]
    assert not bad, bad[:5]
    assert set(want) == {-1, 0, 1, 2, 3, 4, 5, 6, 7}  # every level exercised


def test_vectorised_long_names_match_slow_reference():
    rng = random.Random(5)
    pairs = []
    for _ in range(300):
        chars = [rng.choice(CHARS) for _ in range(rng.randint(7, 12))]
        pairs.append((_han_row(chars, 1, 3), _han_row(_mutate(chars, rng), 1, rng.choice([None, 3, 4]))))
    got = compare(pairs).tolist()
    want = [slow_reference(a, b) for a, b in pairs]
    assert got == want


def _han_level(a: tuple[str, str, str, str], b: tuple[str, str, str, str]) -> str:
    """Level of two Han names given as (name, pinyin, surname, given)."""
    from matchers.name import NAME

    def cols(n, py, s, g):
        return {"name": np.array([n], dtype=object), "name_pinyin": np.array([py], dtype=object),
                "surname": np.array([s], dtype=object), "given": np.array([g], dtype=object),
                "name_script": np.array(["han"], dtype=object)}
    return NAME.label(NAME.compare(cols(*a), cols(*b))[0])


def test_one_differing_character_on_a_two_character_name_is_a_different_name():
    lvl = _han_level
    assert lvl(("王伟", "wang wei", "王", "伟"), ("王芳", "wang fang", "王", "芳")) == "different"
    assert lvl(("李己", "li ji", "李", "己"), ("李已", "li yi", "李", "已")) == "shape_alike"
    assert lvl(("张小伟", "zhang xiao wei", "张", "小伟"), ("张小为", "zhang xiao wei", "张", "小为")) == "same_pinyin"
    assert lvl(("张小伟", "zhang xiao wei", "张", "小伟"), ("张晓明", "zhang xiao ming", "张", "晓明")) == "different"
    assert lvl(("张小伟", "zhang xiao wei", "张", "小伟"), ("张小明", "zhang xiao ming", "张", "小明")) == "one_char"


def test_latin_name_in_another_order_with_one_letter_wrong():
    from matchers.name import NAME

    def side(name: str) -> dict[str, np.ndarray]:
        toks = name.split()
        return {"name": np.array([name], dtype=object), "name_pinyin": np.array([name.lower()], dtype=object),
                "surname": np.array([toks[-1]], dtype=object), "given": np.array([" ".join(toks[:-1])], dtype=object),
                "name_script": np.array(["latin"], dtype=object)}

    assert NAME.label(NAME.compare(side("CHLOE RYAN"), side("RYNA CHLOE"))[0]) == "one_char"
    assert NAME.label(NAME.compare(side("CHLOE RYAN"), side("MAISIE RYAN"))[0]) == "different"


def test_sound_alike_names():
    """模糊音: characters heard alike (陈/程 chen/cheng, 彬/斌, 则/泽), also mixed with a shape-alike
    misreading (王/玉); with one character dropped or added they are one edit apart."""
    lvl = _han_level
    assert lvl(("陈嘉", "chen jia", "陈", "嘉"), ("程嘉", "cheng jia", "程", "嘉")) == "sound_alike"
    assert lvl(("玉斌", "yu bin", "玉", "斌"), ("王彬", "wang bin", "王", "彬")) == "sound_alike"
    assert lvl(("刘宇则", "liu yu ze", "刘", "宇则"), ("刘字泽", "liu zi ze", "刘", "字泽")) == "sound_alike"
    assert lvl(("扬鹏文", "yang peng wen", "扬", "鹏文"), ("杨鹏", "yang peng", "杨", "鹏")) == "contained"
    assert lvl(("黄明", "huang ming", "黄", "明"), ("皇德明", "huang de ming", "皇", "德明")) == "contained"
    # not everything: a different given name stays different, a pure homophone stays same_pinyin
    assert lvl(("王伟", "wang wei", "王", "伟"), ("王芳", "wang fang", "王", "芳")) == "different"
    assert lvl(("张伟", "zhang wei", "张", "伟"), ("章玮", "zhang wei", "章", "玮")) == "same_pinyin"
    assert lvl(("张伟", "zhang wei", "张", "伟"), ("李伟", "li wei", "李", "伟")) == "different"
