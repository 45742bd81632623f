"""Derived columns used by blocking and comparison, computed once per standardised frame."""
from __future__ import annotations

import re
from typing import Any, Callable

import numpy as np
import pandas as pd

from reconcile.divisions import address_detail
from reconcile.fields import USABLE_ID_STATUSES

# house, group and flat numbers with their unit words: what differs between neighbours
_NUMBERED = re.compile(r"[0-9]+[号组栋幢室楼单元弄巷户排]*")


def _per_distinct(a: pd.Series, b: pd.Series, fn: Callable[[Any, Any], str]) -> pd.Series:
    """``fn(a[i], b[i])`` for every row, computed once per distinct (a, b) pair."""
    cache: dict[tuple[Any, Any], str] = {}
    out = []
    for x, y in zip(a.tolist(), b.tolist()):
        v = cache.get((x, y))
        if v is None:
            v = cache[(x, y)] = fn(x, y)
        out.append(v)
    return pd.Series(out, index=a.index, dtype=object)


def _first_syllables(pinyin: pd.Series, n: pd.Series) -> pd.Series:
    """The first ``n`` syllables of each pinyin string."""
    return _per_distinct(pinyin, n, lambda p, k: "".join(p.split()[: max(k, 1)]) if p else "")


def folded_pinyin(names: pd.Series, pinyin: pd.Series) -> pd.Series:
    """Per name, its pinyin with what clerks confuse folded away: each shape-alike character
    (王/玉, 微/徽) read as its group's representative, and every syllable with the 模糊音
    distinctions folded (陈/程 chen/cheng, 林/凌). A blocking key: two ways of writing one name
    that the name comparator calls shape_alike or sound_alike land in one block. Computed once
    per distinct (name, pinyin)."""
    from matchers.shapes import SHAPE_CLASS
    from matchers.sounds import char_reading, fuzzy_syllable

    def fold(name: str, p: str) -> str:
        syl = p.split()
        han = [ch for ch in name if "\u4e00" <= ch <= "\u9fff"]
        if han and len(han) == len(syl):
            syl = [char_reading(SHAPE_CLASS[ch]) if ch in SHAPE_CLASS else s for ch, s in zip(han, syl)]
        return "".join(fuzzy_syllable(x) for x in syl if x)

    return _per_distinct(names, pinyin, fold)


def add_keys(std: pd.DataFrame) -> pd.DataFrame:
    """Return ``std`` plus helper columns (prefixed ``k_``) for blocking.

    k_birth: day-precision birth date, from the record or else from the ID;
    k_year / k_month: birth year / year-month from either; k_sex: record's sex or the ID's;
    k_py: pinyin without spaces; k_py_sorted: syllables sorted (Latin names in either order);
    k_surname_py: pinyin of the surname; k_given_py: pinyin of the given name; k_id14: region+birth part of the ID;
    k_py_fold: pinyin with 模糊音 and shape-alike characters folded (see ``folded_pinyin``).
    """
    df = std.copy()
    bd = df["birth_date"].astype(str)
    prec = df["birth_precision"].astype(str)
    idb = df["id_birth_date"].astype(str)
    df["k_birth"] = np.where(prec == "day", bd, idb)
    either = np.where(bd != "", bd, idb)
    df["k_year"] = pd.Series(either, index=df.index).str.slice(0, 4)
    month_src = np.where((prec == "day") | (prec == "month"), bd, idb)
    df["k_month"] = pd.Series(month_src, index=df.index).str.slice(0, 7)
    df.loc[df["k_month"].str.len() < 7, "k_month"] = ""
    df["k_sex"] = np.where(df["sex"] != "", df["sex"], df["id_sex"])
    py = df["name_pinyin"].astype(str)
    df["k_py"] = py.str.replace(" ", "", regex=False)
    uniq = pd.unique(py)
    sorted_map = {p: "".join(sorted(p.split())) for p in uniq}
    df["k_py_sorted"] = py.map(sorted_map)
    df["k_py_fold"] = folded_pinyin(df["name"].astype(str) if "name" in df else py, py)
    is_han = df["name_script"] == "han"
    n_sur = np.where(is_han, df["surname"].str.len(), 1)
    df["k_surname_py"] = _first_syllables(py, pd.Series(n_sur, index=df.index))
    surname_len = df["k_surname_py"].str.len()
    df["k_given_py"] = [p[n:] for p, n in zip(df["k_py"].tolist(), surname_len.tolist())]
    idc = df["id_clean"].astype(str)
    # (an Excel-damaged number keeps 15 digits: its region + birth date part still blocks)
    df["k_id14"] = np.where(idc.str.len() >= 15, idc.str.slice(0, 14), "")
    # Two complementary pieces of the ID: a one-character typo leaves at least one of them intact
    # together with k_id14 (18 chars: [9:] and [:9]+[14:]; other lengths: the two halves).
    n = idc.str.len()
    half = n // 2
    df["k_id_a"] = np.where(n == 18, idc.str.slice(9), [s[h:] for s, h in zip(idc.tolist(), half.tolist())])
    df["k_id_b"] = np.where(n == 18, idc.str.slice(0, 9) + idc.str.slice(14), [s[:h] for s, h in zip(idc.tolist(), half.tolist())])
    short = n < 6
    df.loc[short, "k_id_a"] = ""
    df.loc[short, "k_id_b"] = ""
    df["k_no_id_no_birth"] = (idc == "") & (df["k_year"] == "")
    # no usable ID number (missing, malformed, failed check digit, cut by Excel): the records
    # the demographic blocking passes exist for (see reconcile.blocking.MATCH_PASSES)
    status = df["id_status"].astype(str) if "id_status" in df else pd.Series("", index=df.index)
    df["k_unidentified"] = ~status.isin(list(USABLE_ID_STATUSES)).to_numpy()
    # no number of its own to vouch for the record: unusable, one its birth date disagrees with
    # (someone else's number), one shaped like Excel's damaged copy of a number (it may pass the
    # check), or one upgraded from 15 digits (its check character is ours: a typo in it passes);
    # mark_shared_ids adds numbers carried under two names. Two records that both have a number
    # of their own, and different ones, are two people to the ID comparator (different_valid):
    # the pairs reconcile.blocking.WITHIN_PASSES leave out
    from matchers.birth_date import birth_agrees_with_id
    from matchers.id_number import excel_shaped

    if "birth_date" in df and "id_birth_date" in df:
        agrees = birth_agrees_with_id({"birth_date": df["birth_date"].astype(str).to_numpy(object),
                                       "id_birth_date": df["id_birth_date"].astype(str).to_numpy(object)})
    else:
        agrees = np.ones(len(df), dtype=bool)
    df["k_id_unsure"] = (df["k_unidentified"].to_numpy() | ~agrees | excel_shaped(idc.to_numpy(object))
                         | (status == "upgraded_from_15").to_numpy())
    if "k_id_shared" not in df:
        df["k_id_shared"] = ""        # set file-wide by mark_shared_ids
    # the address below the divisions it names, and that without its numbers (same village/street)
    for src, key in (("hukou_address", "k_address"), ("residence", "k_residence")):
        addr = df[src].astype(str) if src in df else pd.Series("", index=df.index)
        codes, uniq = pd.factorize(addr)
        detail = np.array([address_detail(a) for a in uniq], dtype=object)
        stem = np.array([_NUMBERED.sub("", d) for d in detail], dtype=object)
        df[key] = detail.take(codes) if len(codes) else np.array([], dtype=object)
        df[key + "_stem"] = stem.take(codes) if len(codes) else np.array([], dtype=object)
    return df


SHARED = "shared"


def mark_shared_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Mark (``k_id_shared`` = "shared") every record whose usable ID number another record of the
    same file carries under another name (the folded pinyin differs): 重号, most often a twin's or
    a family member's number typed in. Such a number cannot tell which of its carriers a record
    is: a twin's number against the record's own (same region + birth date, another sequence) is
    then not the evidence of two people it otherwise is (matchers.id_number). File-wide: run on
    the whole frame."""
    usable = df["id_status"].isin(list(USABLE_ID_STATUSES)).to_numpy() & (df["id_clean"] != "").to_numpy()
    if not usable.any():
        return df
    sub = df.loc[usable, ["id_clean", "k_py_fold"]]
    names = sub.groupby("id_clean", sort=False)["k_py_fold"].nunique()
    shared_ids = names.index[names.to_numpy() > 1]
    if len(shared_ids) == 0:
        return df
    mask = usable & df["id_clean"].isin(shared_ids).to_numpy()
    df.loc[mask, "k_id_shared"] = SHARED
    if "k_id_unsure" in df:
        df.loc[mask, "k_id_unsure"] = True
    return df


def fill_unit_hukou(std: pd.DataFrame, dominance: float = 0.9, min_resolved: int = 5) -> pd.DataFrame:
    """Fill unresolved hukou counties from the record's reporting unit, where that unit is plainly
    inside one county: a household registry's township lists "牌楼乡大门村6组" without naming the
    county. Only when >= ``dominance`` of the unit's resolved addresses (at least ``min_resolved``)
    name one county; the filled county is marked in ``hukou_region_source``.
    """
    df = std.copy()
    df["hukou_region_source"] = np.where(df["hukou_region"] != "", "address", "")
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
    todo = (df["hukou_region"] == "") & df["unit"].isin(list(fill))
    df.loc[todo, "hukou_region"] = df.loc[todo, "unit"].map(fill)
    df.loc[todo, "hukou_region_name"] = df.loc[todo, "hukou_region"].map(names).fillna("")
    df.loc[todo, "hukou_region_source"] = "unit"
    return df
