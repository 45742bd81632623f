"""The folded name key: the pinyin_county blocking pass joins the ways clerks write one name."""
from __future__ import annotations

import pandas as pd
import pytest

from matchers.shapes import SHAPE_CLASS
from reconcile.keys import folded_pinyin


@pytest.mark.parametrize("a, pa, b, pb", [
    ("王思丽", "wang si li", "玉思丽", "yu si li"),          # shape-alike surname
    ("尚红微", "shang hong wei", "尚红徽", "shang hong hui"),  # shape-alike given name
    ("陈强伟", "chen qiang wei", "程强伟", "cheng qiang wei"),  # 模糊音 en/eng, ch
    ("林玲", "lin ling", "凌琳", "ling lin"),                 # in/ing
    ("张伟", "zhang wei", "ZHANG WEI", "zhang wei"),          # Latin pinyin
])
def test_folded_key_joins_what_clerks_confuse(a, pa, b, pb):
    k = folded_pinyin(pd.Series([a, b]), pd.Series([pa, pb])).tolist()
    assert k[0] == k[1]


def test_folded_key_keeps_different_names_apart():
    k = folded_pinyin(pd.Series(["张伟", "李伟", "王芳", "陈静"]),
                      pd.Series(["zhang wei", "li wei", "wang fang", "chen jing"])).tolist()
    assert len(set(k)) == 4


def test_a_shape_group_is_represented_by_its_common_name_character():
    # the representative keeps its own reading, so 李 still meets 黎/礼 (li) and 陈 meets 程
    assert SHAPE_CLASS["玉"] == "王" and SHAPE_CLASS["季"] == "李" and SHAPE_CLASS["阵"] == "陈"
    assert SHAPE_CLASS["干"] == "于" and SHAPE_CLASS["自"] == "白"
