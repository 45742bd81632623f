"""reconcile.codes: a column's integer codes computed once and shared by blocking, the
comparators and EM, equal to what pandas.factorize gives the rows."""
from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile import codes
from reconcile.codes import codes_of, joint_codes

NAMES = ["王伟", "王伟", "張偉", "张伟", "阿依古丽·买买提", "", "欧阳娜娜", "李娜", "李娜", ""]


def _plain(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, u = pd.factorize(values, sort=False)
    return c.astype(np.int64), np.asarray(u)


def test_codes_of_is_factorize_and_memoised():
    arr = np.array(NAMES, dtype=object)
    got = codes_of(arr)
    c, u = _plain(arr)
    assert got.codes.tolist() == c.tolist() and got.uniques.tolist() == u.tolist() and got.n == 7
    assert not got.missing
    assert codes_of(arr) is got                      # the same array: from the memo
    assert codes_of(arr[:]) is got                   # a view of the same memory too
    assert codes_of(arr[1:]) is not got              # another geometry: its own codes
    assert codes_of(arr[1:]).codes.tolist() == _plain(arr[1:])[0].tolist()


def test_missing_values_are_minus_one():
    arr = np.array(["431028", None, "431028", np.nan], dtype=object)
    got = codes_of(arr)
    assert got.missing and got.codes.tolist() == [0, -1, 0, -1]


def test_written_array_is_coded_again():
    arr = np.array(["a", "b"] * 50, dtype=object)
    first = codes_of(arr)
    arr[:] = "c"   # nothing in reconcile writes into a standardised column; the memo must not lie if it did
    again = codes_of(arr)
    assert again is not first and again.uniques.tolist() == ["c"] and set(again.codes.tolist()) == {0}


def test_entry_goes_with_the_array():
    arr = np.array([f"k{i % 7}" for i in range(1000)], dtype=object)
    codes_of(arr)
    key = codes._key(arr)
    assert key in codes._MEMO
    del arr
    gc.collect()
    assert key not in codes._MEMO


values = st.lists(st.sampled_from(NAMES + ["431028198909170188", "43102819890917018X", "1", "01"]), max_size=60)


@settings(max_examples=200, deadline=None)
@given(values, values, st.booleans())
def test_joint_codes_equal_factorising_the_concatenation(left, right, many):
    # ``many``: every value distinct on the left (ID numbers), the rows' way
    if many:
        left = [f"{v}{i}" for i, v in enumerate(left)]
    a, b = np.array(left, dtype=object), np.array(right, dtype=object)
    got = joint_codes(a, b)
    c, u = _plain(np.concatenate([a, b]))
    assert got.codes.dtype == np.int64
    assert got.codes.tolist() == c.tolist()
    assert got.uniques.tolist() == u.tolist()


def test_joint_codes_with_missing_values():
    a = np.array(["x", None, "y"], dtype=object)
    b = np.array(["y", "z", None], dtype=object)
    got = joint_codes(a, b)
    assert got.codes.tolist() == [0, -1, 1, 1, 2, -1] and got.missing


def test_exact_agreement_shares_from_codes():
    """EM's share of all pairs agreeing exactly, from the memoised codes, against counting pairs."""
    from reconcile.linkage import _exact_agreement_shares

    rng = np.random.default_rng(5)
    pool = np.array(NAMES + ["陈程", "程陈"], dtype=object)
    left = pd.DataFrame({"name": rng.choice(pool, 40), "id_clean": rng.choice(pool, 40), "k_address": rng.choice(pool, 40)})
    right = pd.DataFrame({"name": rng.choice(pool, 30), "id_clean": rng.choice(pool, 30), "k_address": rng.choice(pool, 30)})

    def brute(lcol, rcol, same):
        agree = present = 0
        for i, x in enumerate(lcol):
            for j, y in enumerate(rcol):
                if (same and j <= i) or x == "" or y == "":
                    continue
                present += 1
                agree += x == y
        return agree / present

    cross = _exact_agreement_shares(left, right, 1.0)
    within = _exact_agreement_shares(left, None, 1.0)
    for field, col in (("id_number", "id_clean"), ("name", "name"), ("address", "k_address")):
        assert cross[field] == pytest.approx(brute(left[col], right[col], False))
        assert within[field] == pytest.approx(brute(left[col], left[col], True))


def test_forget_lets_go_of_every_entry():
    arr = np.array(NAMES, dtype=object)
    codes_of(arr)
    codes.forget()
    assert not codes._MEMO
    assert codes_of(arr).n == 7   # and codes afresh


# ---- codes known when a column is made: spread, take_rows (no factorising again) ---------------

def _exactly_factorize(arr: np.ndarray) -> None:
    """``arr``'s memoised codes are what pandas.factorize gives its rows (appearance order)."""
    got = codes.lookup(arr)
    assert got is not None
    c, u = _plain(arr)
    assert got.codes.astype(np.int64).tolist() == c.tolist() and got.uniques.tolist() == u.tolist()
    assert not got.missing and got.n == len(u)


def test_spread_of_per_distinct_results_knows_its_codes():
    # names as a register spells them, and the surname of each: two spellings, one surname
    raw = np.array(["張偉", "王伟", "张伟", "張偉", "欧阳娜娜", "王伟", "阿依古丽·买买提"], dtype=object)
    src_codes, distinct = pd.factorize(raw, sort=False)
    surname = {"張偉": "张", "张伟": "张", "王伟": "王", "欧阳娜娜": "欧阳", "阿依古丽·买买提": "阿依古丽"}
    out = codes.spread([surname[v] for v in distinct], src_codes)
    assert out.tolist() == [surname[v] for v in raw]
    assert out[0] is out[2] is out[3]                      # one object per surname
    _exactly_factorize(out)


@given(st.lists(st.integers(0, 5), max_size=40), st.permutations(list(range(6))))
@settings(max_examples=60, deadline=None)
def test_spread_codes_in_appearance_order_whatever_order_the_values_come_in(rows, order):
    # values given in any order, some never used by a row, some equal: the codes are still
    # exactly pandas.factorize's of the rows
    values = np.array(["甲", "乙", "丙", "甲", "丁", "乙"], dtype=object)[order]
    idx = np.array(rows, dtype=np.int64)
    out = codes.spread(values, idx)
    assert out.tolist() == values[idx].tolist()
    if len(idx):
        _exactly_factorize(out)


def test_spread_leaves_missing_results_unremembered():
    out = codes.spread(np.array(["431028", None], dtype=object), np.array([0, 1, 0]))
    assert out.tolist() == ["431028", None, "431028"] and codes.lookup(out) is None
    assert codes_of(out).missing   # (codes_of then factorises it as before)


@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=50), st.data())
@settings(max_examples=60, deadline=None)
def test_take_rows_keeps_exact_codes(vals, data):
    arr = codes.spread(*reversed(pd.factorize(np.array(vals, dtype=object), sort=False)), distinct=True)
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, len(vals) - 1)))), dtype=np.int64)
    out = codes.take_rows(arr, rows)
    assert out.tolist() == [vals[i] for i in rows]
    if len(rows):
        _exactly_factorize(out)


def test_lookup_computes_nothing():
    arr = np.array(NAMES, dtype=object)
    assert codes.lookup(arr) is None
    got = codes_of(arr)
    assert codes.lookup(arr) is got


def test_narrow_codes_by_number_of_values():
    c = np.array([0, 1, 2], dtype=np.int64)
    assert codes.narrow_codes(c, 3, False).dtype == np.uint8
    assert codes.narrow_codes(c, 300, False).dtype == np.uint16
    assert codes.narrow_codes(c, 70_000, False).dtype == np.int32
    assert codes.narrow_codes(np.array([-1, 0]), 3, True).dtype == np.int32   # -1 for a missing value


def test_a_loaded_side_has_exact_codes_for_its_repeated_columns(tmp_path, monkeypatch):
    # read by Arrow (as a large file is), a total row rejected, GBK: every column that comes
    # with codes has exactly pandas.factorize's, and the ones blocking and the comparators group
    # most are among them
    import reconcile.loading as loading
    from reconcile.match import load_side

    monkeypatch.setattr(loading, "ARROW_MIN_BYTES", 0)
    names = ["王伟", "張偉", "张伟", "阿依古丽·买买提", "欧阳娜娜", "李娜"]
    addrs = ["湖南省郴州市资兴市唐洞街道1号", "广东省东莞市厚街镇鸿福路3号", "湖南省郴州市资兴市兴宁镇2组"]
    lines = ["序号,姓名,性别,出生日期,身份证号,户籍地址"]
    for i in range(60):
        lines.append(f"{i + 1},{names[i % 6]},{'男女'[i % 2]},{['1990-05-06', '1990年5月6日', '19900506'][i % 3]},"
                     f"43102819900506{i:03d}{i % 10},{addrs[i % 3]}")
    lines.append("合计,60人,,,,")
    path = tmp_path / "origin.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    side = load_side("origin", path, {"key": "序号"})
    assert len(side.std) == 60 and len(side.loaded.rejected) == 1
    known = [c for c in side.std.columns
             if side.std[c].dtype == object and codes.lookup(side.std[c].to_numpy()) is not None]
    for c in known:
        _exactly_factorize(side.std[c].to_numpy())
    assert {"name", "name_raw", "sex", "birth_date", "hukou_address", "hukou_region", "k_py",
            "k_py_fold", "k_year", "k_surname_py", "k_given_py", "k_address"} <= set(known)


def test_joint_codes_are_memoised_while_both_arrays_live():
    codes.forget()
    left = np.array([f"4310281990050612{i:02d}" for i in range(30)], dtype=object)   # nearly all distinct
    right = np.array(["43102819900506123X", "110101198001011234"] * 10, dtype=object)
    first = joint_codes(left, right)
    assert len(codes._JOINT) == 1
    again = joint_codes(left, right)
    assert again.codes.dtype == np.int64 and again.codes.tolist() == first.codes.tolist()
    assert again.uniques.tolist() == first.uniques.tolist()
    right[:] = "431028199005061234"   # written into: coded afresh, not from the memo
    c, u = _plain(np.concatenate([left, right]))
    assert joint_codes(left, right).codes.tolist() == c.tolist()
    del right
    gc.collect()
    assert not codes._JOINT
    codes.forget()
