"""Sex and hukou comparator levels, and the hukou path against a slow reference."""
from __future__ import annotations

import random

import numpy as np

from matchers.base import MISSING
from matchers.hukou import HUKOU
from matchers.sex import SEX


def obj(*values: str) -> np.ndarray:
    return np.array(values, dtype=object)


def test_sex_levels_and_id_fallback():
    left = {"sex": obj("M", "F", "", "M", "", ""), "id_sex": obj("M", "F", "F", "", "", "M")}
    right = {"sex": obj("M", "M", "F", "", "F", ""), "id_sex": obj("", "", "", "", "", "M")}
    got = [SEX.label(x) for x in SEX.compare(left, right)]
    # last pair: neither record states a sex, both IDs do
    assert got == ["equal", "different", "equal", "missing", "missing", "equal"]


def test_sex_record_value_wins_over_the_id_digit():
    # a sex conflict inside a record: the comparator uses what the record says
    left = {"sex": obj("F"), "id_sex": obj("M")}
    right = {"sex": obj(""), "id_sex": obj("M")}
    assert [SEX.label(x) for x in SEX.compare(left, right)] == ["different"]


def hukou(a: list[str], b: list[str]) -> list[str]:
    return [HUKOU.label(x) for x in HUKOU.compare({"hukou_region": obj(*a)}, {"hukou_region": obj(*b)})]


def test_hukou_levels():
    assert hukou(
        ["431022", "431022", "431022", "431022", "110105"],
        ["431022", "431023", "430104", "110105", "110108"],
    ) == ["same_county", "same_city", "same_province", "different", "same_city"]


def test_hukou_code_resolved_only_to_city_or_province():
    assert hukou(["431000", "431000", "430000", "430000"], ["431022", "431000", "431022", "440300"]) == [
        "same_city", "same_city", "same_province", "different"]


def test_hukou_missing_or_unusable_either_side():
    got = HUKOU.compare({"hukou_region": obj("", "431022", "43102", "000000")},
                        {"hukou_region": obj("431022", "", "431022", "431022")})
    assert got.tolist() == [MISSING] * 4


def test_hukou_does_not_fall_back_to_id_region():
    assert HUKOU.columns == ("hukou_region",)


def slow_hukou(a: str, b: str) -> int:
    def prec(c: str) -> int:
        if len(c) != 6 or not c.isdigit() or c[:2] == "00":
            return 0
        return 1 if c[2:] == "0000" else 2 if c[4:] == "00" else 3
    p = min(prec(a), prec(b))
    if p == 0:
        return -1
    if p == 3 and a == b:
        return 0
    if p >= 2 and a[:4] == b[:4]:
        return 1
    if a[:2] == b[:2]:
        return 2
    return 3


def test_hukou_vectorised_matches_slow_reference():
    rng = random.Random(1)
    counties = ["431022", "431023", "431002", "430104", "430100", "431000", "430000", "110105", "440305", "", "4310"]
    pairs = [(rng.choice(counties), rng.choice(counties)) for _ in range(1000)]
    got = HUKOU.compare({"hukou_region": obj(*[p[0] for p in pairs])}, {"hukou_region": obj(*[p[1] for p in pairs])})
    want = [slow_hukou(a, b) for a, b in pairs]
    assert got.tolist() == want
    assert set(want) == {-1, 0, 1, 2, 3}
