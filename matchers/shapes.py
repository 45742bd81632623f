"""Shape-alike (形近字) simplified characters that clerks and OCR confuse in names.

No ready confusion list exists (four-corner codes are only a rough proxy), so this is a
curated list of well-known pairs, one pair per entry. Homophones are not needed here (the
pinyin level catches them); the list is for characters that look alike but read
differently, e.g. 己 jǐ / 已 yǐ, 未 wèi / 末 mò.
"""
from __future__ import annotations

import numpy as np

# Pair order does not matter for matching. For blocking (``SHAPE_CLASS``) it does: a group's
# representative is its character that comes first in this list, so the character more common in
# names (a frequent surname: 王, 李, 陈, 于, 白) comes first and keeps its own reading.
SHAPE_ALIKE_PAIRS: tuple[str, ...] = (
    "己已", "已巳", "己巳", "未末", "戊戌", "戌戍", "戊戍", "戎戒", "士土", "日曰",
    "王玉", "王主", "玉主", "天夭", "天夫", "夫失", "失矢", "大太", "太犬", "大犬",
    "人入", "入八", "力刀", "于干", "千干", "田由", "由甲", "甲申", "田甲", "目且",
    "白自", "白百", "贝见", "师帅", "折拆", "折析", "侯候", "免兔", "鸟乌", "延廷",
    "拔拨", "崇祟", "汩汨", "冶治", "茶荼", "斤斥", "兵乒", "乒乓", "今令", "凤风",
    "晴睛", "辨辩", "辩辫", "徒徙", "扬杨", "场扬", "栗粟", "亨享", "子孑", "毛手",
    "牛午", "历厉", "勿匆", "仑仓", "乘乖", "衷哀", "哀衰", "衷衰", "代伐", "颖颍",
    "洒酒", "茵菌", "准淮", "佳住", "住往", "宇字", "字子", "办为", "冬东", "思恩",
    "余佘", "苟荀", "陈阵", "肖宵", "孟盂", "郄郗", "李季", "幸辛", "瑞端", "券卷",
    "祝视", "梁粱", "汪注", "查杏",
    # more pairs seen in given names (the sound differs, so the pinyin level cannot catch them)
    "微徽", "媛嫒", "姝妹", "怡恰", "丙内", "贞员", "浩诰", "幼幻", "宫官", "即既", "秉乘", "茉莱",
)


def _key(x: int, y: int) -> int:
    lo, hi = (x, y) if x < y else (y, x)
    return (lo << 21) | hi


SHAPE_KEYS: np.ndarray = np.unique(
    np.array([_key(ord(p[0]), ord(p[1])) for p in SHAPE_ALIKE_PAIRS], dtype=np.int64)
)


# lookup table over all code points: is this character in any shape-alike pair? (a cheap
# gate before the exact pair lookup)
SHAPE_CHARS: np.ndarray = np.zeros(0x110000, dtype=bool)
SHAPE_CHARS[[ord(ch) for p in SHAPE_ALIKE_PAIRS for ch in p]] = True


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Order-free int64 keys of code-point pairs (arrays of equal shape)."""
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    return (np.minimum(a, b) << 21) | np.maximum(a, b)


def shape_alike(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise: are code points ``a[i]`` and ``b[i]`` a curated shape-alike pair?"""
    return np.isin(pair_keys(a, b), SHAPE_KEYS)


def is_shape_alike(x: str, y: str) -> bool:
    """Scalar form, for tests and explanations."""
    return len(x) == 1 and len(y) == 1 and _key(ord(x), ord(y)) in set(SHAPE_KEYS.tolist())


def _shape_classes() -> dict[str, str]:
    """Character -> the representative of its group of shape-alike characters (the pairs above
    joined transitively: 王/玉/主 is one group, represented by 王)."""
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.setdefault(c, c) != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    first = {}
    for k, ch in enumerate("".join(SHAPE_ALIKE_PAIRS)):
        first.setdefault(ch, k)
    for a, b in SHAPE_ALIKE_PAIRS:
        ra, rb = find(a), find(b)
        if ra != rb:   # the root is always the group's earliest-listed character
            lo, hi = (ra, rb) if first[ra] < first[rb] else (rb, ra)
            parent[hi] = lo
    return {c: find(c) for c in list(parent)}


SHAPE_CLASS: dict[str, str] = _shape_classes()


def fold_shapes(text: str) -> str:
    """``text`` with every character replaced by its shape-alike group's representative."""
    return "".join(SHAPE_CLASS.get(ch, ch) for ch in text)
