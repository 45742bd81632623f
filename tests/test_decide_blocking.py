"""Blocking passes and caps, one-to-one decisions, guarded clustering."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.blocking import BlockingPass, candidate_pairs
from reconcile.cluster import guarded_clusters
from reconcile.decide import MATCH, REVIEW, one_to_one, threshold_decisions


def frame(rows: list[dict]) -> pd.DataFrame:
    cols = ["id_clean", "k_py", "k_year", "k_no_id_no_birth", "name"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df:
            df[c] = "" if c != "k_no_id_no_birth" else False
    return df


def test_union_of_passes_and_pass_bits():
    left = frame([{"id_clean": "A1", "k_py": "zhangwei", "k_year": "1990"},
                  {"id_clean": "", "k_py": "lina", "k_year": "1985"}])
    right = frame([{"id_clean": "A1", "k_py": "zhangwei", "k_year": "1991"},
                   {"id_clean": "B2", "k_py": "lina", "k_year": "1985"}])
    passes = (BlockingPass("id", ("id_clean",), "ID"), BlockingPass("py_year", ("k_py", "k_year"), "pinyin + year"))
    c = candidate_pairs(left, right, passes)
    assert list(zip(c.left.tolist(), c.right.tolist())) == [(0, 0), (1, 1)]
    assert c.passes.tolist() == [1, 2]                   # which pass found each pair
    assert [s.pairs for s in c.stats] == [1, 1]
    # an empty key never blocks: record 1 has no ID and still got its candidate via the name


def test_block_over_the_cap_is_skipped_and_reported():
    left = frame([{"k_py": "wangwei", "k_year": "1990"} for _ in range(30)] + [{"k_py": "ouyangxiaotang", "k_year": "1990"}])
    right = frame([{"k_py": "wangwei", "k_year": "1990"} for _ in range(30)] + [{"k_py": "ouyangxiaotang", "k_year": "1990"}])
    c = candidate_pairs(left, right, (BlockingPass("py_year", ("k_py", "k_year"), "pinyin + year"),), block_cap=100)
    assert list(zip(c.left.tolist(), c.right.tolist())) == [(30, 30)]
    st = c.stats[0]
    assert st.skipped_blocks == 1 and st.skipped_records == 60
    assert "wangwei + 1990" in st.warnings[0] and "60 records" in st.warnings[0]


def test_each_skipped_block_names_its_own_key():
    # three blocks over the cap: one whose records are mostly on the right (its first record in
    # the left frame is the 5th), one only common on the left, one in both; plus a small one kept
    names = ["zhangwei"] * 4 + ["lina"] * 12 + ["wangfang"] * 11 + ["liuyang"]
    left = frame([{"k_py": n, "k_year": "1990"} for n in names])
    right = frame([{"k_py": n, "k_year": "1990"} for n in ["zhangwei"] * 15 + ["lina"] + ["wangfang"] * 9 + ["liuyang"]])
    c = candidate_pairs(left, right, (BlockingPass("py_year", ("k_py", "k_year"), "pinyin + year"),), block_cap=10)
    warned = {w.split("'")[1]: w for w in c.stats[0].warnings}
    assert set(warned) == {"zhangwei + 1990", "lina + 1990", "wangfang + 1990"}
    assert "19 records" in warned["zhangwei + 1990"] and "13 records" in warned["lina + 1990"]
    assert list(zip(c.left.tolist(), c.right.tolist())) == [(27, 25)]
    # one file with itself: the same keys, named from the one frame
    d = candidate_pairs(right, None, (BlockingPass("py_year", ("k_py", "k_year"), "pinyin + year"),), block_cap=40)
    assert [w.split("'")[1] for w in d.stats[0].warnings] == ["zhangwei + 1990"]


def test_dedupe_pairs_are_unordered_and_never_self():
    df = frame([{"id_clean": "X"}, {"id_clean": "X"}, {"id_clean": "X"}])
    c = candidate_pairs(df, None, (BlockingPass("id", ("id_clean",), "ID"),))
    assert list(zip(c.left.tolist(), c.right.tolist())) == [(0, 1), (0, 2), (1, 2)]


def test_one_to_one_keeps_the_best_and_allows_duplicates_on_the_other_side():
    li = np.array([0, 0, 1])
    ri = np.array([0, 1, 1])
    prob = np.array([0.999999, 0.97, 0.96])
    dec = threshold_decisions(prob, 0.95, 0.3)
    # right records 0 and 1 are different people: origin 0 keeps only its best
    out, demoted = one_to_one(li, ri, prob, dec, np.array([0, 1]), np.array([0, 1]))
    assert out.tolist() == [MATCH, REVIEW, MATCH] and demoted.tolist() == [False, True, False]
    # right 0 and 1 are one person recorded twice: both matches stand
    out, _ = one_to_one(li[:2], ri[:2], prob[:2], dec[:2], np.array([0, 1]), np.array([0, 0]))
    assert out.tolist() == [MATCH, MATCH]


def test_near_tie_sends_both_to_review():
    # two 张艳 born in March 1984 against one 张艳 1984-03: the data cannot tell which
    li, ri = np.array([0, 1]), np.array([0, 0])
    prob = np.array([0.993, 0.992])
    dec = threshold_decisions(prob, 0.95, 0.3)
    out, _ = one_to_one(li, ri, prob, dec, np.array([0, 1]), np.array([0]))
    assert out.tolist() == [REVIEW, REVIEW]


def test_guarded_clusters_refuse_chaining_different_valid_ids():
    # a -- b -- c with weak links; a and c carry different valid IDs
    ids = np.array(["ID_A", "", "ID_C"], dtype=object)
    res = guarded_clusters(3, np.array([0, 1]), np.array([1, 2]), np.array([0.97, 0.96]), ids)
    assert res.labels[0] == res.labels[1] != res.labels[2]
    assert res.refused == [(1, 2, "different_valid_ids")]
    # a strong direct edge between the two numbers is allowed (a typo'd but valid number)
    res = guarded_clusters(2, np.array([0]), np.array([1]), np.array([0.9999]), np.array(["ID_A", "ID_C"], dtype=object))
    assert res.labels[0] == res.labels[1]


def test_a_key_empty_everywhere_gives_no_pairs_and_no_error():
    # a registry exported without ID numbers: the ID passes find nothing, the others still work
    left = frame([{"id_clean": "", "k_py": "zhangwei", "k_year": "1990"}])
    right = frame([{"id_clean": "", "k_py": "zhangwei", "k_year": "1990"}])
    passes = (BlockingPass("id", ("id_clean",), "ID"), BlockingPass("py_year", ("k_py", "k_year"), "pinyin + year"))
    c = candidate_pairs(left, right, passes)
    assert list(zip(c.left.tolist(), c.right.tolist())) == [(0, 0)]
    assert [s.pairs for s in c.stats] == [0, 1]
