"""Sorted windows in the restricted passes (reconcile.blocking.WINDOW, BlockingPass.window_by):
in a large block a record without a number of its own is paired with its nearest records in the
pass's order (birth date for the name passes), so its pairs stay bounded however many namesakes a
county holds; a block no larger than the window is paired whole, as before."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.blocking import MATCH_PASSES, WINDOW, candidate_pairs
from tests.test_within_passes import registry, valid_id


def namesakes(n: int, extra: list[tuple[str, str, str, str]] = ()) -> pd.DataFrame:
    """``n`` 王伟 of one county, each with a valid number of his own and a birth date in 1980-1989
    (one every 20 days), then ``extra``."""
    rows = []
    for k in range(n):
        day = pd.Timestamp("1980-01-05") + pd.Timedelta(days=20 * k)
        born = day.strftime("%Y-%m-%d")
        rows.append(("王伟", "男", born, valid_id(f"431028{day:%Y%m%d}{k % 1000:03d}")))
    return registry(rows + list(extra))


def born(k: int) -> str:
    """The birth date of ``namesakes``' k-th 王伟."""
    return (pd.Timestamp("1980-01-05") + pd.Timedelta(days=20 * k)).strftime("%Y-%m-%d")


def by_pass(left: pd.DataFrame, right: pd.DataFrame | None, name: str, window: int) -> set[tuple[int, int]]:
    passes = tuple(p for p in MATCH_PASSES if p.name == name)
    c = candidate_pairs(left, right, passes, window=window)
    return set(zip(c.left.tolist(), c.right.tolist()))


def test_a_record_without_a_number_meets_its_nearest_namesakes_by_birth_date():
    # the destination's 王伟 without an ID number, born the day the 77th was: among 150
    # namesakes of the county, the window holds the 20 born nearest to that day, the 77th among them
    origin = namesakes(150)
    dest = registry([("王伟", "男", born(77), "")], village="安平村")
    got = by_pass(origin, dest, "pinyin_county", WINDOW)
    assert len(got) == WINDOW and (77, 0) in got
    gap = (pd.to_datetime(origin["birth_date"]) - pd.Timestamp(born(77))).abs()
    partners = sorted(i for i, _ in got)
    assert gap.iloc[partners].max() <= gap.drop(index=partners).min()   # the nearest, none skipped
    # the whole block without the window: every namesake
    assert len(by_pass(origin, dest, "pinyin_county", 0)) == 150


def test_pairs_per_record_stay_bounded_as_the_county_grows():
    dest = registry([("王伟", "男", "1984-03-09", ""), ("王伟", "男", "1986-11-20", "")], village="安平村")
    small, large = (len(by_pass(namesakes(n), dest, "pinyin_county", WINDOW)) for n in (100, 400))
    assert small == large == 2 * WINDOW
    # the unwindowed pass grows with the block (and a block over the cap would be skipped whole)
    assert len(by_pass(namesakes(400), dest, "pinyin_county", 0)) == 2 * 400


def test_a_block_no_larger_than_the_window_is_paired_whole():
    origin = namesakes(WINDOW - 3)
    dest = registry([("王伟", "男", "1984-03-09", "")], village="安平村")
    assert by_pass(origin, dest, "pinyin_county", WINDOW) == by_pass(origin, dest, "pinyin_county", 0)
    both = candidate_pairs(origin, dest, MATCH_PASSES)
    whole = candidate_pairs(origin, dest, MATCH_PASSES, window=0)
    assert np.array_equal(both.left, whole.left) and np.array_equal(both.passes, whole.passes)


def test_one_file_pairs_its_record_without_a_number_with_its_nearest_namesakes():
    # within one file: no pair of a record with itself, i < j, and the same-day namesake found
    std = namesakes(120, extra=[("王伟", "男", born(61), "")])
    me = len(std) - 1
    got = by_pass(std, None, "pinyin_county", WINDOW)
    assert len(got) == WINDOW and all(i < j for i, j in got) and all(me in p for p in got)
    assert (61, me) in got


def test_namesakes_born_the_same_day_sit_in_the_middle_of_the_window():
    # 30 namesakes born on one day, 60 others before and after it: the window is centred on the
    # day, so the 20 partners are all of that day (not the 10 before it and 10 of the day)
    rows = [("王伟", "男", "1984-03-09", valid_id(f"43102819840309{k:03d}")) for k in range(30)]
    rows += [("王伟", "男", f"1984-02-{d:02d}", valid_id(f"431028198402{d:02d}{k:03d}")) for d in range(1, 29) for k in (1,)]
    rows += [("王伟", "男", f"1984-04-{d:02d}", valid_id(f"431028198404{d:02d}{k:03d}")) for d in range(1, 29) for k in (1,)]
    origin = registry(rows)
    dest = registry([("王伟", "男", "1984-03-09", "")], village="安平村")
    got = by_pass(origin, dest, "pinyin_county", WINDOW)
    assert len(got) == WINDOW and all(origin["birth_date"].iloc[i] == "1984-03-09" for i, _ in got)


def test_key_codes_are_those_of_the_key_text_for_flags_and_text():
    """A flag column (bool, integers) and a column of text are factorised as they are; their codes
    and empty cells are those of their text, as a mixed column's are."""
    from reconcile.blocking import _column_codes

    n = 10_000
    rng = np.random.default_rng(3)
    left = pd.DataFrame({
        "flag": rng.random(n) < 0.2,
        "count": rng.integers(0, 4, n),
        "text": rng.choice(np.array(["", "wang", "王伟", "li"], dtype=object), n),
        "mixed": rng.choice(np.array(["", "1990", None, 7], dtype=object), n),
    })
    right = left.sample(frac=0.7, random_state=1).reset_index(drop=True)
    for c in left.columns:
        for r in (left, right):
            codes, n_distinct, empty = _column_codes(left, r, c)
            both = left[c] if r is left else pd.concat([left[c], r[c]], ignore_index=True)
            want, uniq = pd.factorize(both.astype(str), sort=False)   # (one file with itself: once)
            assert (codes == want).all() and n_distinct == len(uniq), c
            blank = (both.astype(str) == "").to_numpy()
            assert (empty == blank).all(), c
