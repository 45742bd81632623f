"""compare_pairs' shortcut (each distinct combination of values compared once) gives the levels
of comparing every pair directly, whichever way it takes for each field; and a column of nearly
all distinct values (ID numbers) is recognised from a sample, before it is coded in full."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reconcile.codes import DISTINCT_SAMPLE_FROM, nearly_all_distinct
from reconcile.compare import column_arrays, compare_pairs
from reconcile.match import default_comparators, load_side

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"


def _numbers(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    births = rng.integers(19400101, 20101231, n)
    seq = rng.integers(0, 10_000, n)
    return np.array([f"431028{b}{s:04d}" for b, s in zip(births.tolist(), seq.tolist())], dtype=object)


def test_nearly_all_distinct_is_told_from_a_sample():
    n = DISTINCT_SAMPLE_FROM + 20_000
    assert nearly_all_distinct(_numbers(n))
    rng = np.random.default_rng(7)
    names = np.array([f"张{i}" for i in rng.integers(0, 50_000, n).tolist()], dtype=object)   # 4.4 records a name
    assert not nearly_all_distinct(names)
    assert not nearly_all_distinct(_numbers(DISTINCT_SAMPLE_FROM - 1))   # short: coded in full


@pytest.fixture(scope="module")
def big_frame():
    """The sample registry repeated to 220,000 records, each repeat with a number of its own
    (every other field repeats)."""
    side = load_side("dest", SAMPLES / "dest_utf8bom.csv", {"key": "序号"})
    std = side.std
    reps = -(-220_000 // len(std))
    big = std.iloc[np.tile(np.arange(len(std)), reps)[:220_000]].reset_index(drop=True)
    ids = big["id_clean"].to_numpy(object).copy()
    fresh = _numbers(len(big), seed=5)
    keep = np.arange(len(big)) < len(std)          # the originals keep theirs (typos, Excel, 15-digit)
    ids[~keep] = fresh[~keep]
    big["id_clean"] = ids
    return big


def test_levels_are_those_of_every_pair_compared_directly(big_frame):
    comps = default_comparators()
    arr = column_arrays(big_frame, comps)
    assert nearly_all_distinct(arr["id_clean"]) and not nearly_all_distinct(arr["name"])
    rng = np.random.default_rng(11)
    n = 240_000                                     # more pairs than records: the shortcut is tried
    li = rng.integers(0, len(big_frame), n)
    ri = np.where(rng.random(n) < 0.5, li, rng.integers(0, len(big_frame), n))   # half are self-pairs
    got = compare_pairs(arr, arr, li, ri, comps)
    for f, comp in enumerate(comps):
        want = comp.compare({c: arr[c][li] for c in comp.columns}, {c: arr[c][ri] for c in comp.columns})
        assert (got[:, f] == want).all(), comp.field
    # the frame's own columns were read, not copied, and cannot be written through
    assert np.shares_memory(arr["name"], big_frame["name"].to_numpy()) and not arr["name"].flags.writeable
