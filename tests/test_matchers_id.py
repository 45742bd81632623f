"""ID comparator levels on the hard cases, and the vectorised path against a slow reference."""
from __future__ import annotations

import random

import numpy as np
import pytest

from matchers.base import MISSING
from matchers.id_number import ID_NUMBER

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def check_char(body: str) -> str:
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]


def valid_id(body17: str) -> str:
    return body17 + check_char(body17)


def status(idc: str) -> str:
    if not idc:
        return "missing"
    return "valid" if check_char(idc[:17]) == idc[17] else "bad_checksum"


def upgrade15(id15: str) -> str:
    """15-digit (old) number to 18: insert the century, append the check character."""
    return valid_id(id15[:6] + "19" + id15[6:])


def levels(pairs: list[tuple[tuple[str, str], tuple[str, str]]]) -> list[str]:
    left = {"id_clean": np.array([p[0][0] for p in pairs], dtype=object),
            "id_status": np.array([p[0][1] for p in pairs], dtype=object)}
    right = {"id_clean": np.array([p[1][0] for p in pairs], dtype=object),
             "id_status": np.array([p[1][1] for p in pairs], dtype=object)}
    return [ID_NUMBER.label(x) for x in ID_NUMBER.compare(left, right)]


def one(a: tuple[str, str], b: tuple[str, str]) -> str:
    return levels([(a, b)])[0]


BASE = valid_id("43102819900307123")  # 郴州 county code, born 1990-03-07


def test_equal_valid_ids_are_exact():
    assert status(BASE) == "valid"
    assert one((BASE, "valid"), (BASE, "valid")) == "exact"


def test_check_character_x_compares_after_normalisation():
    body = next(f"4310281990030712{i}" for i in range(10) if check_char(f"4310281990030712{i}") == "X")
    x_id = valid_id(body)
    assert x_id.endswith("X")
    # the standardiser upper-cases a trailing x; both sides then carry the same 18 chars
    assert one((x_id, "valid"), (x_id, "valid")) == "exact"
    assert one((x_id, "valid"), (body + "0", "bad_checksum")) == "typo"


def test_18_digit_against_upgraded_15_digit():
    old = "431028900307123"  # the same person's first-generation number
    up = upgrade15(old)
    assert up == BASE
    assert one((BASE, "valid"), (up, "upgraded_from_15")) == "exact_upgraded"
    assert one((up, "upgraded_from_15"), (BASE, "valid")) == "exact_upgraded"
    # both registries still hold the old number: identical inputs, plain exact
    assert one((up, "upgraded_from_15"), (up, "upgraded_from_15")) == "exact"


def test_one_wrong_digit_is_typo_and_fails_checksum():
    for pos in (0, 7, 13, 16, 17):
        wrong = BASE[:pos] + str((int(BASE[pos]) + 3) % 10) + BASE[pos + 1:]
        assert status(wrong) == "bad_checksum"
        assert one((BASE, "valid"), (wrong, "bad_checksum")) == "typo", pos


def test_adjacent_transposition_is_typo():
    # swap positions 10/11 (month digits 0 and 3)
    swapped = BASE[:10] + BASE[11] + BASE[10] + BASE[12:]
    assert swapped != BASE and status(swapped) == "bad_checksum"
    assert one((BASE, "valid"), (swapped, "bad_checksum")) == "typo"
    # a non-adjacent swap is two errors, not a typo
    far = BASE[:8] + BASE[12] + BASE[9:12] + BASE[8] + BASE[13:]
    assert far != BASE
    assert one((BASE, "valid"), (far, status(far))) != "typo"


def test_twins_share_region_and_birth_but_not_sequence():
    twin = valid_id("43102819900307125")
    assert twin[:14] == BASE[:14] and status(twin) == "valid"
    # both numbers pass the check: two people, however much else they share
    assert one((BASE, "valid"), (twin, "valid")) == "different_valid"
    # one garbled (bad checksum, more than one typo) in the sequence part: still weak evidence
    garbled = BASE[:14] + "990" + BASE[17]
    assert status(garbled) == "bad_checksum"
    assert one((BASE, "valid"), (garbled, "bad_checksum")) == "same_region_birth"


def test_two_valid_ids_are_never_one_substitution_apart():
    # why `typo` needs no status rule: the MOD 11-2 check catches every single substitution
    rng = random.Random(7)
    for _ in range(200):
        body = "".join(rng.choice("0123456789") for _ in range(17))
        pos = rng.randrange(17)
        other = body[:pos] + rng.choice([d for d in "0123456789" if d != body[pos]]) + body[pos + 1:]
        assert one((valid_id(body), "valid"), (valid_id(other), "valid")) != "typo"


def test_region_renumbered_since_issue_is_exact_recoded():
    # 安仁县: 432831 before 1994, 431028 after; the check character changes with the region
    old = valid_id("43283119800307123")
    new = valid_id("43102819800307123")
    assert one((old, "valid"), (new, "valid")) == "exact_recoded"
    # a county that was not renumbered into the other is a different person
    other = valid_id("43282219800307123")
    assert one((old, "valid"), (other, "valid")) == "different_valid"


def test_different_people():
    namesake = valid_id("43282219900307123")  # same birth date and sequence, other county
    assert one((BASE, "valid"), (namesake, "valid")) == "different_valid"
    assert one((BASE, "valid"), (valid_id("11010519851122004"), "valid")) == "different_valid"
    other = valid_id("11010519851122004")
    bad = other[:17] + ("0" if other[17] != "0" else "1")
    assert one((BASE, "valid"), (bad, "bad_checksum")) == "different"


@pytest.mark.parametrize("a,b", [
    (("", "missing"), (BASE, "valid")),
    ((BASE, "valid"), ("", "excel_damaged")),
    (("", "malformed"), ("", "missing")),
])
def test_missing_either_side(a, b):
    left = {"id_clean": np.array([a[0]], dtype=object), "id_status": np.array([a[1]], dtype=object)}
    right = {"id_clean": np.array([b[0]], dtype=object), "id_status": np.array([b[1]], dtype=object)}
    assert ID_NUMBER.compare(left, right).tolist() == [MISSING]


def slow_reference(a: str, sa: str, b: str, sb: str) -> int:
    """Per-pair rules written plainly, to check the vectorised code against."""
    if not a or not b:
        return -1
    if a == b:
        return 1 if (sa == "upgraded_from_15") != (sb == "upgraded_from_15") else 0

    def damaged(x: str) -> bool:
        return len(x) == 15 or (len(x) == 18 and x.endswith("000"))

    if (damaged(a) or damaged(b)) and min(len(a), len(b)) >= 15 and a[:15] == b[:15]:
        return 4   # excel_prefix
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return 3
        if len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]:
            return 3
        if len(a) == 18 and a[:14] == b[:14]:
            return 7 if valid(sa) and valid(sb) else 5
    return 7 if valid(sa) and valid(sb) else 6


def valid(s: str) -> bool:
    return s in ("valid", "upgraded_from_15")


def test_vectorised_matches_slow_reference():
    rng = random.Random(2024)
    lefts, rights = [], []
    for _ in range(1000):
        a = valid_id("".join(rng.choice("0123456789") for _ in range(17)))
        kind = rng.randrange(7)
        if kind == 0:
            b = a
        elif kind == 1:
            p = rng.randrange(18)
            b = a[:p] + rng.choice("0123456789X") + a[p + 1:]
        elif kind == 2:
            p = rng.randrange(17)
            b = a[:p] + a[p + 1] + a[p] + a[p + 2:]
        elif kind == 3:
            b = valid_id(a[:14] + "".join(rng.choice("0123456789") for _ in range(3)))
        elif kind == 4:
            b = "" if rng.random() < 0.5 else a
            a = "" if b else a
        elif kind == 5:
            p, q = sorted(rng.sample(range(18), 2))
            b = a[:p] + rng.choice("0123456789") + a[p + 1:q] + rng.choice("0123456789") + a[q + 1:]
        else:
            b = valid_id("".join(rng.choice("0123456789") for _ in range(17)))
        sa = rng.choice(["valid", "upgraded_from_15"]) if a else "missing"
        sb = rng.choice(["valid", "upgraded_from_15", "bad_checksum"]) if b else "missing"
        lefts.append((a, sa))
        rights.append((b, sb))
    got = ID_NUMBER.compare(
        {"id_clean": np.array([x[0] for x in lefts], dtype=object), "id_status": np.array([x[1] for x in lefts], dtype=object)},
        {"id_clean": np.array([x[0] for x in rights], dtype=object), "id_status": np.array([x[1] for x in rights], dtype=object)},
    )
    want = [slow_reference(a, sa, b, sb) for (a, sa), (b, sb) in zip(lefts, rights)]
    assert got.dtype == np.int8
    assert got.tolist() == want
    # every level but exact_recoded (tested above) and excel_prefix (its own test)
    assert set(want) == {-1, 0, 1, 3, 5, 6, 7}


def test_number_that_disagrees_with_its_own_record_is_not_proof_of_two_people():
    # 重号: a record carries a family member's (valid) number; its own birth date gives it away
    mine = valid_id("43102819900307123")
    family = valid_id("43102819620511004")
    cols = lambda idc, bd, idb: {"id_clean": np.array([idc], dtype=object), "id_status": np.array(["valid"], dtype=object),
                                 "birth_date": np.array([bd], dtype=object), "id_birth_date": np.array([idb], dtype=object)}
    consistent = ID_NUMBER.label(ID_NUMBER.compare(cols(mine, "1990-03-07", "1990-03-07"),
                                                   cols(family, "1962-05-11", "1962-05-11"))[0])
    carrier = ID_NUMBER.label(ID_NUMBER.compare(cols(mine, "1990-03-07", "1990-03-07"),
                                                cols(family, "1990-03", "1962-05-11"))[0])
    assert consistent == "different_valid"
    assert carrier == "different"


def test_excel_damaged_number_against_the_full_one():
    """Excel kept 15 digits (…182000 or 4.31028201001182E+17), or the 000 tail happens to pass the
    check: the other record's number starting with those 15 is `excel_prefix`, not a different number."""
    from reconcile.idnumbers import clean_id
    from matchers.id_number import ID_NUMBER

    full = "431028201001182167"
    damaged = [clean_id("431028201001182000"), clean_id("4.31028201001182E+17"), clean_id("431028198309288000")]
    others = [full, full, "431028198309288131"]
    left = {"id_clean": np.array([d.id_clean for d in damaged], dtype=object),
            "id_status": np.array([d.status for d in damaged], dtype=object),
            "birth_date": np.array(["", "", ""], dtype=object),
            "id_birth_date": np.array([d.birth_date for d in damaged], dtype=object)}
    right = {"id_clean": np.array(others, dtype=object), "id_status": np.array(["valid"] * 3, dtype=object),
             "birth_date": np.array(["", "", ""], dtype=object),
             "id_birth_date": np.array(["2010-01-18", "2010-01-18", "1983-09-28"], dtype=object)}
    assert [ID_NUMBER.label(x) for x in ID_NUMBER.compare(left, right)] == ["excel_prefix"] * 3
    # another person's number with the same region and birth date is not a damaged copy
    right["id_clean"] = np.array(["431028201001189999", "431028201001189999", "431028198309281234"], dtype=object)
    assert "excel_prefix" not in [ID_NUMBER.label(x) for x in ID_NUMBER.compare(left, right)]


def test_the_excel_flag_of_each_record_gives_the_levels_reading_every_number_gives():
    """k_id_excel (reconcile.keys: which numbers are shaped like Excel's damaged copies) lets the
    ID, sex and birth-date comparators read only the pairs with such a number; on the standardised
    samples, every origin record against every destination record, the levels are those of
    measuring every pair's numbers, Excel-damaged pairs and garbled numbers among them."""
    from pathlib import Path

    from matchers.birth_date import BIRTH_DATE
    from matchers.id_number import excel_shaped
    from matchers.sex import SEX
    from reconcile.compare import column_arrays
    from reconcile.match import load_side

    samples = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
    origin = load_side("origin", samples / "origin_gb18030.csv", {"key": "编号"}).std
    dest = load_side("dest", samples / "dest_utf8bom.csv", {"key": "序号"}).std
    for std in (origin, dest):
        ids = std["id_clean"].to_numpy(object)
        assert ((std["k_id_excel"] != "").to_numpy() == excel_shaped(ids)).all() and excel_shaped(ids).any()
    larr, rarr = (column_arrays(std, [ID_NUMBER, SEX, BIRTH_DATE]) for std in (origin, dest))
    li, ri = (x.ravel() for x in np.meshgrid(np.arange(len(origin)), np.arange(len(dest)), indexing="ij"))
    seen = set()
    for comp in (ID_NUMBER, SEX, BIRTH_DATE):
        left = {c: larr[c][li] for c in comp.columns}
        right = {c: rarr[c][ri] for c in comp.columns}
        with_flag = comp.compare(left, right)
        without = comp.compare(*({c: v for c, v in side.items() if c != "k_id_excel"} for side in (left, right)))
        assert (with_flag == without).all(), comp.field
        seen |= {comp.label(x) for x in with_flag if x >= 0}
    assert {"excel_prefix", "implied_by_id", "exact_implied_by_id"} <= seen


def test_the_birth_flag_of_each_record_gives_the_levels_of_reading_both_dates_per_pair():
    """k_birth_differs (reconcile.keys: a record's birth date disagrees with its ID's) stands in for
    parsing both dates of every pair's records (birth_agrees_with_id); on the standardised samples,
    every origin record against every destination record, the ID and birth-date levels are those
    of reading the dates per pair, with records of someone else's number among them."""
    from pathlib import Path

    from matchers.birth_date import BIRTH_DATE, birth_agrees_with_id
    from reconcile.compare import column_arrays
    from reconcile.match import load_side

    samples = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
    origin = load_side("origin", samples / "origin_gb18030.csv", {"key": "编号"}).std
    dest = load_side("dest", samples / "dest_utf8bom.csv", {"key": "序号"}).std
    for std in (origin, dest):
        direct = birth_agrees_with_id({c: std[c].to_numpy(object) for c in ("birth_date", "id_birth_date")})
        assert ((std["k_birth_differs"] == "").to_numpy() == direct).all() and not direct.all()
    larr, rarr = (column_arrays(std, [ID_NUMBER, BIRTH_DATE]) for std in (origin, dest))
    li, ri = (x.ravel() for x in np.meshgrid(np.arange(len(origin)), np.arange(len(dest)), indexing="ij"))
    for comp in (ID_NUMBER, BIRTH_DATE):
        left = {c: larr[c][li] for c in comp.columns}
        right = {c: rarr[c][ri] for c in comp.columns}
        with_flag = comp.compare(left, right)
        without = comp.compare(*({c: v for c, v in side.items() if c != "k_birth_differs"} for side in (left, right)))
        assert (with_flag == without).all(), comp.field
        assert len(set(with_flag.tolist())) > 3, comp.field


def test_a_number_carried_under_two_names_is_no_evidence_against():
    """重号 within one file: twin B's record carries twin A's number. B's record and B's own record
    in the other registry hold two valid numbers with one region + birth date: different_valid
    (two people) unless the file showed that number under two names (k_id_shared)."""
    twin_a, twin_b = valid_id(BASE[:14] + "201"), valid_id(BASE[:14] + "203")
    left = {"id_clean": np.array([twin_a, twin_a], dtype=object), "id_status": np.array(["valid"] * 2, dtype=object),
            "k_id_shared": np.array(["", "shared"], dtype=object)}
    right = {"id_clean": np.array([twin_b, twin_b], dtype=object), "id_status": np.array(["valid"] * 2, dtype=object),
             "k_id_shared": np.array(["", ""], dtype=object)}
    got = [ID_NUMBER.label(x) for x in ID_NUMBER.compare(left, right)]
    assert got == ["different_valid", "same_region_birth"]


def test_mark_shared_ids_finds_numbers_under_two_names_only():
    import pandas as pd

    from reconcile.keys import mark_shared_ids

    a, c = valid_id("43102819810312201"), valid_id("43102819900101123")
    df = pd.DataFrame({
        "id_clean": [a, a, c, c, c, ""],
        "id_status": ["valid"] * 5 + ["missing"],
        # twins 杨俊杰 / 杨俊涛 on one number; 张伟 twice and as 章伟 (a homophone) on another
        "k_py_fold": ["yanjunjie", "yanjuntao", "zanwei", "zanwei", "zanwei", "liu"],
        "k_id_shared": [""] * 6,
    })
    out = mark_shared_ids(df)
    assert out["k_id_shared"].tolist() == ["shared", "shared", "", "", "", ""]


def test_a_shared_number_against_an_unrelated_valid_number_is_still_two_people():
    # relaxed only where the numbers share region + birth date (the twin's number); a random
    # other valid number on a shared-number record still says: another person
    other = valid_id("11010519851122004")
    left = {"id_clean": np.array([BASE], dtype=object), "id_status": np.array(["valid"], dtype=object),
            "k_id_shared": np.array(["shared"], dtype=object)}
    right = {"id_clean": np.array([other], dtype=object), "id_status": np.array(["valid"], dtype=object),
             "k_id_shared": np.array([""], dtype=object)}
    assert ID_NUMBER.label(ID_NUMBER.compare(left, right)[0]) == "different_valid"
