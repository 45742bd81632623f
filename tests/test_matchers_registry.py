"""The default comparator set honours the Comparator contract on whole standardised records."""
from __future__ import annotations

import numpy as np

from matchers.base import MISSING
from matchers.registry import default_comparators
from reconcile.fields import STANDARD_COLUMNS

RECORD = {
    "id_clean": "43102819900307123X", "id_status": "valid",
    "name": "张伟", "name_pinyin": "zhang wei", "surname": "张", "given": "伟", "name_script": "han",
    "birth_date": "1990-03-07", "birth_precision": "day", "id_birth_date": "1990-03-07",
    "sex": "M", "id_sex": "M", "hukou_region": "431022",
    "k_address": "永乐江镇江林村3组", "k_address_stem": "永乐江镇江林村", "k_residence": "虎门镇东纵路113号",
    "k_residence_stem": "虎门镇东纵路",
}
EMPTY = {k: "" for k in RECORD} | {"id_status": "missing", "name_script": "empty"}


def frame(records: list[dict[str, str]]) -> dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in records], dtype=object) for k in RECORD}


def test_fixed_order_and_level_tuples():
    comps = default_comparators()
    assert [c.field for c in comps] == ["id_number", "name", "birth_date", "sex", "hukou", "address", "residence"]
    assert comps is not default_comparators()
    for c in comps:
        assert len(set(c.levels)) == len(c.levels) >= 2
        assert c.levels[-1].startswith("different")  # weakest last
        # standardised columns, or keys derived from them by reconcile.keys.add_keys
        assert {x for x in c.columns if not x.startswith("k_")} <= set(STANDARD_COLUMNS), c.field


def test_identical_records_reach_the_top_level_and_empty_sides_are_missing():
    left = frame([RECORD, EMPTY, RECORD, EMPTY])
    right = frame([RECORD, RECORD, EMPTY, EMPTY])
    for c in default_comparators():
        got = c.compare(left, right)
        assert got.dtype == np.int8
        # a birth date and sex both (equal) ID numbers state: their own, weight-0 level
        top = {"birth_date": "exact_implied_by_id", "sex": "implied_by_id"}.get(c.field, c.levels[0])
        assert got.tolist() == [c.levels.index(top), MISSING, MISSING, MISSING], c.field


def test_empty_batch():
    for c in default_comparators():
        assert c.compare(frame([]), frame([])).shape == (0,)


def test_levels_stay_in_range_on_mixed_records():
    rng = np.random.default_rng(0)
    other = {
        "id_clean": "11010519851122004X", "id_status": "bad_checksum", "name": "WEI ZHANG", "name_pinyin": "wei zhang",
        "surname": "WEI", "given": "ZHANG", "name_script": "latin", "birth_date": "1985-11", "birth_precision": "month",
        "id_birth_date": "1985-11-22", "sex": "", "id_sex": "F", "hukou_region": "110105",
        "k_address": "101elkingtonstreet", "k_address_stem": "elkingtonstreet", "k_residence": "",
        "k_residence_stem": "",
    }
    pool = [RECORD, EMPTY, other]
    left = frame([pool[i] for i in rng.integers(0, 3, 200)])
    right = frame([pool[i] for i in rng.integers(0, 3, 200)])
    for c in default_comparators():
        got = c.compare(left, right)
        assert got.min() >= MISSING and got.max() < len(c.levels), c.field
