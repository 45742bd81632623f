"""Address comparators: the hukou address and the current residence below the county."""
from __future__ import annotations

import numpy as np
import pandas as pd

from matchers.address import ADDRESS, RESIDENCE
from matchers.base import MISSING
from reconcile.divisions import address_detail
from reconcile.keys import add_keys


def test_detail_drops_the_divisions_the_address_names():
    assert address_detail("湖南省郴州市安仁县永乐江镇江林村3组") == "永乐江镇江林村3组"
    assert address_detail("郴州市安仁县永乐江镇江林村3组") == "永乐江镇江林村3组"
    assert address_detail("湖南省永州市双牌县") == ""          # a destination's 户籍地: county only
    assert address_detail("东莞市虎门镇新安社区东纵路113号12栋802") == "虎门镇新安社区东纵路113号12栋802"
    assert address_detail("101 Elkington Street, Waterloo") == "101elkingtonstreetwaterloo"


def test_a_city_short_name_inside_a_township_name_is_not_a_city():
    # 永乐江镇江林村 holds 镇江 (a city in Jiangsu): it must not resolve there
    from reconcile.divisions import resolve_address

    assert resolve_address("永乐江镇江林村10组") == ("", "")
    assert address_detail("永乐江镇江林村10组") == "永乐江镇江林村10组"
    assert resolve_address("湖南安仁永乐江镇")[0] == "431028"


def _keyed(hukou: list[str], residence: list[str]) -> dict[str, np.ndarray]:
    std = pd.DataFrame({"hukou_address": hukou, "residence": residence, "birth_date": "", "birth_precision": "",
                        "id_birth_date": "", "sex": "", "id_sex": "", "name_pinyin": "", "name_script": "empty",
                        "surname": "", "id_clean": ""})
    df = add_keys(std)
    return {c: df[c].to_numpy(object) for c in ("k_address", "k_address_stem", "k_residence", "k_residence_stem")}


def test_address_levels_on_chinese_and_latin_addresses():
    left = _keyed(["湖南省郴州市安仁县永乐江镇江林村3组", "安仁县永乐江镇江林村3组", "安仁县永乐江镇江林村",
                   "郴州市安仁县牌楼乡大门村", "101 elkington street waterloo", "湖南省永州市双牌县", ""],
                  [""] * 7)
    right = _keyed(["安仁县永乐江镇江林村3组", "安仁县永乐江镇江林村5组", "安仁县永乐江镇江林村3组",
                    "安仁县灵官镇白塘村1组", "10 elkington street waterloo", "双牌县五里牌镇", "安仁县"],
                   [""] * 7)
    got = [ADDRESS.label(x) for x in ADDRESS.compare(left, right)]
    # the same village with another group, or written with less detail: same_place; one changed
    # digit of a house number in front: similar (a typo or a neighbour: EM weighs the level)
    assert got == ["exact", "same_place", "same_place", "different", "similar", "missing", "missing"]
    short = ADDRESS.compare(_keyed(["安仁县龙海镇北桥村3组"], [""]), _keyed(["安仁县龙海镇北桥村11组"], [""]))
    assert ADDRESS.label(short[0]) == "same_place"
    typo = ADDRESS.compare(_keyed(["7 jerrabomberra avenue smithfield"], [""]),
                           _keyed(["7 jerrabombera avenue smithifeld"], [""]))
    assert ADDRESS.label(typo[0]) == "similar"


def test_residence_compares_the_current_address_the_same_way():
    left = _keyed([""] * 3, ["广东省东莞市松山湖厚街大道48号", "东莞市虎门镇新安社区东纵路113号12栋802", "东莞市"])
    right = _keyed([""] * 3, ["东莞市松山湖厚街大道48号", "东莞市长安镇银湖路244号", "东莞市长安镇银湖路244号"])
    got = RESIDENCE.compare(left, right).tolist()
    assert got[0] == 0 and RESIDENCE.label(got[1]) == "different" and got[2] == MISSING


def _reference_levels(a, b, sa, sb):
    """compare_address as it was until the eighteenth session: prefixes read from numpy's
    fixed-width strings (startswith, str_len, the code points of the first 24 characters)."""
    from rapidfuzz import fuzz
    from rapidfuzz.process import cpdist

    from matchers.address import DIFFERENT, EXACT, SAME_PLACE, SIMILAR

    def common_prefix(x, y):
        width = min(24, x.dtype.itemsize // 4, y.dtype.itemsize // 4)
        cx = x.view(np.uint32).reshape(len(x), -1)[:, :width]
        cy = y.view(np.uint32).reshape(len(y), -1)[:, :width]
        same = (cx == cy) & (cx != 0)
        return np.where(same.all(axis=1), width, np.argmin(same, axis=1))

    out = np.full(len(a), DIFFERENT, dtype=np.int8)
    missing = (a == "") | (b == "")
    exact = (a == b) & ~missing
    out[(sa == sb) & (sa != "") & ~missing] = SAME_PLACE
    rest = np.flatnonzero(~missing & ~exact)
    if len(rest):
        ra, rb = a[rest].astype(str), b[rest].astype(str)
        prefix = np.strings.startswith(ra, rb) | np.strings.startswith(rb, ra)
        shorter = np.minimum(np.strings.str_len(ra), np.strings.str_len(rb))
        common = common_prefix(ra, rb)
        prefix |= (common >= 6) & (common >= 0.7 * shorter)
        out[rest[prefix]] = SAME_PLACE
        sim = cpdist(a[rest].tolist(), b[rest].tolist(), scorer=fuzz.ratio, score_cutoff=85.0, workers=1)
        out[rest[(sim >= 85.0) & ~prefix]] = SIMILAR
    out[exact] = EXACT
    out[missing] = MISSING
    return out


ADDRESS_PAIRS = [
    ("永乐江镇江林村3组", "永乐江镇江林村5组"),          # 7 shared, then another group
    ("永乐江镇江林村", "永乐江镇江林村3组"),              # one is the start of the other
    ("金龙路326号", "银龙路326号"),                        # differ at once
    ("101elkingtonstreet", "101elkingtonst"),
    ("a", "b"),
    ("长沙市开福区伍家岭街道新河三角洲小区十二栋三单元1203室", "长沙市开福区伍家岭街道新河三角洲小区十二栋三单元1204室"),
    ("长沙市开福区伍家岭街道新河三角洲小区十二栋三单元1203室", "长沙市开福区伍家岭街道新河三角洲小区十二栋"),
    ("x" * 30, "x" * 30 + "y"), ("x" * 40, "x" * 24 + "y" * 16), ("x" * 40, "x" * 23 + "y" * 17),
    ("x" * 30 + "a" * 10, "x" * 30 + "b" * 10),
    ("短", "长地址" * 10), ("", "永乐江镇"), ("永乐江镇", ""), ("ab", "abd"), ("abcdefg", "abcdefh"),
]


def test_the_levels_are_those_of_the_fixed_width_comparison():
    """The shared beginning read by rapidfuzz (Prefix) gives the levels the numpy fixed-width
    strings gave: one address the start of the other, a long shared beginning (counted over the
    first 24 characters), for Chinese, Latin and mixed addresses of any length."""
    from matchers.address import DIFFERENT, SAME_PLACE, SIMILAR, compare_address

    rng = np.random.default_rng(5)
    pairs = list(ADDRESS_PAIRS)
    parts = ["永乐江镇", "江林村", "3组", "5组", "金龙路", "326号", "12栋", "x", "厚街", "大道48号", ""]
    for _ in range(3000):
        base = "".join(rng.choice(parts, rng.integers(0, 9)))
        other = base[: rng.integers(0, len(base) + 1)] + "".join(rng.choice(parts, rng.integers(0, 4)))
        pairs.append((base, other) if rng.random() < 0.5 else (other, base))
    a = np.array([p[0] for p in pairs], dtype=object)
    b = np.array([p[1] for p in pairs], dtype=object)
    stem = np.vectorize(lambda t: "".join(ch for ch in t if not ch.isdigit()), otypes=[object])
    sa, sb = stem(a), stem(b)
    got = compare_address({"k_address": a, "k_address_stem": sa}, {"k_address": b, "k_address_stem": sb})
    want = _reference_levels(a, b, sa, sb)
    assert got.tolist() == want.tolist()
    assert got[:3].tolist() == [SAME_PLACE, SAME_PLACE, SIMILAR]   # the first three pairs, by name
    # 30 shared characters of 40: the share counts the first 24 only
    assert got[pairs.index(("x" * 30 + "a" * 10, "x" * 30 + "b" * 10))] == DIFFERENT
