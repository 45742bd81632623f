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
