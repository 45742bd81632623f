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


def test_common_prefix_length_reads_the_unicode_arrays_in_place():
    """The shared beginning the same_place level reads: characters equal from the start, up to
    24, for Chinese, Latin and mixed addresses of any lengths (numpy's own fixed-width code
    points, no second conversion)."""
    import numpy as np

    from matchers.address import _WIDTH, _common_prefix_length

    pairs = [
        ("永乐江镇江林村3组", "永乐江镇江林村5组"),          # 7 shared, then another group
        ("永乐江镇江林村", "永乐江镇江林村3组"),              # one is the start of the other
        ("金龙路326号", "银龙路326号"),                        # differ at once
        ("101elkingtonstreet", "101elkingtonst"),
        ("a", "b"),
        ("长沙市开福区伍家岭街道新河三角洲小区十二栋三单元1203室", "长沙市开福区伍家岭街道新河三角洲小区十二栋三单元1204室"),
        ("x" * 30, "x" * 30),
        ("短", "长地址" * 10),
    ]
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])

    def shared(x: str, y: str) -> int:
        k = 0
        while k < min(len(x), len(y), _WIDTH) and x[k] == y[k]:
            k += 1
        return k

    assert _common_prefix_length(a, b).tolist() == [shared(x, y) for x, y in pairs]
    assert _common_prefix_length(a, b).tolist()[:3] == [7, 7, 0]
    short_a, short_b = np.array(["ab", "abc"]), np.array(["ab", "abd"])   # narrower than the width
    assert _common_prefix_length(short_a, short_b).tolist() == [2, 2]
