"""The name passes pair a record only with records that lack a number of their own
(reconcile.blocking.NAME_PASSES, key k_id_unsure): within one registry (WITHIN_PASSES) and, since
the sixth session, across the two registries (MATCH_PASSES)."""
from __future__ import annotations

import pandas as pd

from dataclasses import replace

from reconcile.blocking import DEFAULT_PASSES, MATCH_PASSES, NAME_PASSES, WITHIN_PASSES, candidate_pairs
from reconcile.idnumbers import check_char
from reconcile.keys import add_keys, fill_unit_hukou, mark_shared_ids
from reconcile.standardise import standardise


def valid_id(body17: str) -> str:
    return body17 + check_char(body17)


def excel_shaped_valid(region: str, year_month: str) -> str:
    """An 18-digit number ending in 000 that passes the check: Excel's damaged copy of a number
    (15 digits kept: region, birth date, first sequence digit), as one in eleven of them happens
    to be. Born on some day of ``year_month``."""
    for day in range(10, 29):
        for seq in range(10):
            head = f"{region}{year_month}{day:02d}{seq}"
            if check_char(head + "00") == "0":
                return head + "000"
    raise AssertionError("no number found")


def registry(rows: list[tuple[str, str, str, str]], village: str = "江林村") -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=["name", "sex", "birth_date", "id_number"])
    raw.insert(0, "record_key", [f"{k + 1:04d}" for k in range(len(raw))])
    raw["line"] = range(2, len(raw) + 2)
    raw["hukou"] = [f"湖南省郴州市安仁县永乐江镇{village}{k + 1}组" for k in range(len(raw))]
    for f in ("residence", "flow_status", "flow_place", "unit"):
        raw[f] = ""
    std = standardise(raw).reset_index(drop=True)
    return mark_shared_ids(add_keys(fill_unit_hukou(std)))


def pairs(std: pd.DataFrame, passes) -> set[tuple[int, int]]:
    c = candidate_pairs(std, None, passes, block_cap=2000)
    return set(zip(c.left.tolist(), c.right.tolist()))


def test_namesakes_with_numbers_of_their_own_are_not_paired_within_one_file():
    damaged = excel_shaped_valid("431028", "197911")
    born = f"1979-11-{damaged[12:14]}"
    std = registry([
        ("张伟", "男", "1985-03-02", valid_id("43102819850302101")),   # 0: two 张伟 born one day,
        ("张伟", "男", "1985-03-02", valid_id("43102819850302153")),   # 1: two numbers: two people
        ("李娜", "女", "1990-07-15", valid_id("43102819900715202")),   # 2
        ("李娜", "女", "1990-07-15", valid_id("43102819880101204")),   # 3: someone else's number
        ("王芳", "女", born, valid_id(damaged[:15] + "20")),         # 4
        ("王芳", "女", born, damaged),                                 # 5: Excel's copy, passes the check
        ("刘洋", "男", "1995-05-05", valid_id("43102819950505301")),   # 6: its number is also ...
        ("刘涛", "男", "1995-05-05", valid_id("43102819950505301")),   # 7: ... a twin's (重号)
        ("刘洋", "男", "1995-05-05", valid_id("43102819950505355")),   # 8
        ("陈静", "女", "1992-12-01", ""),                             # 9: no number
        ("陈静", "女", "1992-12-01", valid_id("43102819921201406")),   # 10
        ("赵敏", "女", "1968-04-09", "431028680409123"),                # 11: 15 digits, no check of its own
        ("赵敏", "女", "1968-04-09", valid_id("43102819680409128")),   # 12
    ])
    assert std["id_status"].tolist()[5] == "valid"
    assert std["id_status"].tolist()[11] == "upgraded_from_15"
    assert std["k_id_unsure"].tolist() == [False, False, False, True, False, True, True, True, False, True, False,
                                           True, False]
    whole, within = pairs(std, WHOLE_NAME_PASSES), pairs(std, WITHIN_PASSES)
    assert (0, 1) in whole and (0, 1) not in within       # different_valid: two people anyway
    for pair in ((2, 3), (4, 5), (6, 8), (9, 10), (6, 7), (11, 12)):
        assert pair in within, pair
    assert within <= whole


def test_the_name_passes_are_the_only_ones_restricted_to_numbers_not_their_own():
    assert [p.name for p in MATCH_PASSES] == [p.name for p in DEFAULT_PASSES]
    unsure = {p.name for p in MATCH_PASSES if p.flag_column == "k_id_unsure"}
    assert unsure == NAME_PASSES == {"pinyin_year", "pinyin_sorted_year", "surname_birth", "given_birth",
                                     "name_rare"}
    assert WITHIN_PASSES == MATCH_PASSES


def test_across_two_registries_namesakes_with_numbers_of_their_own_are_not_paired():
    """The same rule between an origin and a destination registry: two 张伟 of one birth day with
    two valid numbers of their own are not paired by a name pass; a 李娜 whose destination record
    carries someone else's valid number (its birth date disagrees) still is, and so is a record
    without a number, and a number with a typo (the ID passes)."""
    origin = registry([
        ("张伟", "男", "1985-03-02", valid_id("43102819850302101")),   # 0
        ("李娜", "女", "1990-07-15", valid_id("43102819900715202")),   # 1
        ("陈静", "女", "1992-12-01", valid_id("43102819921201406")),   # 2
        ("赵敏", "女", "1968-04-09", valid_id("43102819680409128")),   # 3
    ])
    typo = valid_id("43102819680409128")
    typo = typo[:16] + ("3" if typo[16] != "3" else "4") + typo[17]      # fails the check
    dest = registry([
        ("张伟", "男", "1985-03-02", valid_id("43102819850302153")),   # 0: another 张伟
        ("李娜", "女", "1990-07-15", valid_id("43102819880101204")),   # 1: someone else's number
        ("陈静", "女", "1992-12-01", ""),                             # 2: no number
        ("赵敏", "女", "1968-04-09", typo),                            # 3
    ], village="沙冲村")   # (not one address: the address pass would pair them)
    got = candidate_pairs(origin, dest, MATCH_PASSES, block_cap=2000)
    found = set(zip(got.left.tolist(), got.right.tolist()))
    whole = candidate_pairs(origin, dest, WHOLE_NAME_PASSES, block_cap=2000)
    assert (0, 0) in set(zip(whole.left.tolist(), whole.right.tolist()))
    assert (0, 0) not in found
    assert {(1, 1), (2, 2), (3, 3)} <= found


# match's passes with the name passes unrestricted (the form before the restriction)
WHOLE_NAME_PASSES = tuple(replace(p, only_unsure_id=False) for p in MATCH_PASSES)


def test_birth_date_passes_train_but_pair_nothing_in_match(tmp_path):
    """birth_sex and birth_county pair nothing in `match` (seventh session: their pairs grew with
    the square of a county and held almost no match another pass missed); they stay listed, with no
    pairs, and birth_sex's EM session still trains on its whole key."""
    from reconcile.linkage import link
    from reconcile.match import default_comparators

    origin = registry([("张伟", "男", "1985-03-02", ""), ("李娜", "女", "1990-07-15", "")])
    dest = registry([("周强", "男", "1985-03-02", ""), ("黄敏", "女", "1990-07-15", "")], village="沙冲村")
    both = {p.name: p for p in MATCH_PASSES}
    assert both["birth_sex"].train_only and both["birth_county"].train_only
    assert not any(p.train_only for p in DEFAULT_PASSES)
    default = candidate_pairs(origin, dest, DEFAULT_PASSES, block_cap=2000)
    assert (0, 0) in set(zip(default.left.tolist(), default.right.tolist()))   # birth date + sex
    got = candidate_pairs(origin, dest, MATCH_PASSES, block_cap=2000)
    assert (0, 0) not in set(zip(got.left.tolist(), got.right.tolist()))
    stats = {s.name: s for s in got.stats}
    assert stats["birth_sex"].pairs == stats["birth_county"].pairs == 0
    assert [s.name for s in got.stats] == [p.name for p in MATCH_PASSES]

    import fixtures.generate as gm
    from reconcile.match import load_side

    paths = gm.write(gm.generate(300, seed=5, dirt=1.0), tmp_path)
    o = load_side("origin", paths["origin"], {"key": "编号"}).std
    d = load_side("dest", paths["dest"], {"key": "序号"}).std
    lk = link(o, d, default_comparators(), passes=MATCH_PASSES, block_cap=20_000)
    sessions = lk.model.trained_on["sessions"]
    assert sessions["birth_sex"]["pairs"] > 0, sessions
    bit = [p.name for p in MATCH_PASSES].index("birth_sex")
    assert lk.candidates.passes.size and not (lk.candidates.passes & (1 << bit)).any()
