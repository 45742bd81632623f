"""fill_unit_hukou and mark_shared_ids on integer codes, against the pandas code they replaced."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.fields import USABLE_ID_STATUSES
from reconcile.keys import SHARED, fill_unit_hukou, mark_shared_ids


def reference_fill(std: pd.DataFrame, dominance: float = 0.9, min_resolved: int = 5) -> pd.DataFrame:
    """The groupby version (until the thirteenth session)."""
    df = std.copy(deep=False)
    source = np.array(["", "address"], dtype=object)[(df["hukou_region"] != "").to_numpy(np.int8)]
    df["hukou_region_source"] = source
    if "unit" not in df or not (df["unit"] != "").any():
        return df
    resolved = df[(df["hukou_region"] != "") & (df["unit"] != "")]
    if resolved.empty:
        return df
    counts = resolved.groupby(["unit", "hukou_region"]).size().rename("n").reset_index()
    totals = counts.groupby("unit")["n"].transform("sum")
    counts["share"] = counts["n"] / totals
    best = counts[(counts["share"] >= dominance) & (totals >= min_resolved)].drop_duplicates("unit")
    fill = dict(zip(best["unit"], best["hukou_region"]))
    names = dict(zip(resolved["hukou_region"], resolved["hukou_region_name"]))
    todo = ((df["hukou_region"] == "") & df["unit"].isin(list(fill))).to_numpy()
    if not todo.any():
        return df
    region = df["hukou_region"].to_numpy(object).copy()
    region[todo] = pd.Series(df["unit"].to_numpy(object)[todo]).map(fill).to_numpy(object)
    region_name = df["hukou_region_name"].to_numpy(object).copy()
    region_name[todo] = pd.Series(region[todo]).map(names).fillna("").to_numpy(object)
    source = source.copy()
    source[todo] = "unit"
    df["hukou_region"], df["hukou_region_name"], df["hukou_region_source"] = region, region_name, source
    return df


def reference_shared(df: pd.DataFrame) -> pd.DataFrame:
    """The groupby version (until the thirteenth session)."""
    usable = df["id_status"].isin(list(USABLE_ID_STATUSES)).to_numpy() & (df["id_clean"] != "").to_numpy()
    if not usable.any():
        return df
    sub = df.loc[usable, ["id_clean", "k_py_fold"]]
    names = sub.groupby("id_clean", sort=False)["k_py_fold"].nunique()
    shared_ids = names.index[names.to_numpy() > 1]
    if len(shared_ids) == 0:
        return df
    mask = usable & df["id_clean"].isin(shared_ids).to_numpy()
    shared = df["k_id_shared"].to_numpy(object).copy()
    shared[mask] = SHARED
    df["k_id_shared"] = shared
    unsure = df["k_id_unsure"].to_numpy(bool).copy()
    unsure[mask] = True
    df["k_id_unsure"] = unsure
    return df


_UNITS = ["", "牌楼乡", "永乐江镇", "安平镇", "龙海镇"]
_REGIONS = [("", ""), ("431028", "湖南省郴州市安仁县"), ("431002", "湖南省郴州市北湖区"),
            ("430000", "湖南省"), ("431028", "郴州市安仁县")]   # one county under two names: the last row's wins


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(_UNITS), st.sampled_from(_REGIONS)), max_size=60),
       dominance=st.sampled_from([0.3, 0.5, 0.6, 0.9, 1.0]), min_resolved=st.integers(1, 6))
def test_fill_unit_hukou_as_the_groupby_did(rows, dominance, min_resolved):
    std = pd.DataFrame({"unit": [u for u, _ in rows], "hukou_region": [r for _, (r, _) in rows],
                        "hukou_region_name": [n for _, (_, n) in rows]}, dtype=object)
    got = fill_unit_hukou(std, dominance, min_resolved)
    want = reference_fill(std, dominance, min_resolved)
    for c in ("hukou_region", "hukou_region_name", "hukou_region_source"):
        assert got[c].tolist() == want[c].tolist(), c


def test_fill_unit_hukou_fills_a_township_inside_one_county():
    rows = [("牌楼乡", "431028", "湖南省郴州市安仁县")] * 9 + [("牌楼乡", "431002", "湖南省郴州市北湖区")] \
        + [("牌楼乡", "", "")] * 2 + [("安平镇", "", "")]
    std = pd.DataFrame(rows, columns=["unit", "hukou_region", "hukou_region_name"], dtype=object)
    out = fill_unit_hukou(std)
    assert out["hukou_region"].tolist()[-3:] == ["431028", "431028", ""]
    assert out["hukou_region_name"].tolist()[-3:] == ["湖南省郴州市安仁县", "湖南省郴州市安仁县", ""]
    assert out["hukou_region_source"].tolist()[-4:] == ["address", "unit", "unit", ""]
    assert std["hukou_region"].tolist()[-3:] == ["", "", ""]   # the input is not written into


_IDS = ["", "43102819900506123X", "431028199005061257", "110101199001011234"]
_STATUSES = sorted(USABLE_ID_STATUSES) + ["invalid_checksum", "missing"]
_FOLDS = ["zhangwei", "zhangwei", "zanwei", "lina", ""]


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from(_IDS), st.sampled_from(_STATUSES), st.sampled_from(_FOLDS),
                               st.booleans()), max_size=40))
def test_mark_shared_ids_as_the_groupby_did(rows):
    def frame():
        return pd.DataFrame({"id_clean": [r[0] for r in rows], "id_status": [r[1] for r in rows],
                             "k_py_fold": [r[2] for r in rows], "k_id_shared": [""] * len(rows),
                             "k_id_unsure": [r[3] for r in rows]}).astype({"k_id_unsure": bool})
    got, want = mark_shared_ids(frame()), reference_shared(frame())
    assert got["k_id_shared"].tolist() == want["k_id_shared"].tolist()
    assert got["k_id_unsure"].tolist() == want["k_id_unsure"].tolist()
