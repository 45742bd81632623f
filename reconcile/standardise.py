"""standardise(): the loader's text frame -> canonical person fields (reconcile.fields.STANDARD_COLUMNS).

Every per-value function (names, ID numbers, dates, sexes, addresses) runs once per DISTINCT
raw value: a column is factorised (pandas hashes it in C), the function maps the uniques, and
the results are spread back with one numpy ``take``. Registries repeat names, dates, sexes and
addresses heavily, so the Python work is a fraction of the row count; ID numbers are mostly
distinct, which is why they go through ``id_columns`` (numpy for clean valid 18-digit numbers).
"""
from __future__ import annotations



from datetime import date
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from reconcile.codes import lookup, nearly_all_distinct, spread
from reconcile.dates import parse_birth_date
from reconcile.divisions import resolve_address, split_at_first_digit
from reconcile.fields import INPUT_FIELDS, STANDARD_COLUMNS
from reconcile.idnumbers import id_columns
from reconcile.interning import shared_values, take_shared
from reconcile.names import name_fields, normalise_name
from reconcile.sexes import parse_sex

__all__ = ["standardise", "parse_flow_status"]

def resolve_admin_part(text: str) -> tuple[str, str]:
    """resolve_address (cached) on the part of an address before its first digit
    (divisions.split_at_first_digit): a destination's residence column resolves once per
    street, not once per record."""
    return resolve_address(split_at_first_digit(text)[0])

_OUT_WORDS = ("流出", "外出", "离开", "外流", "out")
_RESIDENT_WORDS = ("常住", "在家", "户籍", "居住", "在册", "resident")


def parse_flow_status(raw: str) -> str:
    """流出/外出/离开 -> 'out'; 常住/在家/户籍/居住/在册 -> 'resident'; anything else ''.
    'out' words are checked first: 户籍流出 is an out-migrant."""
    s = (raw or "").strip().lower()
    if not s:
        return ""
    if any(w in s for w in _OUT_WORDS):
        return "out"
    if any(w in s for w in _RESIDENT_WORDS):
        return "resident"
    return ""


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A text column as an object array ('' for an absent column)."""
    if name not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    return frame[name].to_numpy(dtype=object)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[str], bool]:
    """(codes, distinct values, whether a missing cell was seen). A None/NaN cell (the loader
    never gives one) counts as ''; checked on the distinct values only, not per row. The codes
    the loader's column came with when it has them (reconcile.codes)."""
    got = lookup(values)
    if got is not None and not got.missing:
        return got.codes, got.uniques.tolist(), False
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=False)
    missing = pd.isna(uniques)
    if missing.any():
        return codes, ["" if m else u for u, m in zip(uniques, missing)], True
    return codes, uniques.tolist(), False


def _spread(codes: np.ndarray, results: Sequence, field: int | None = None, dtype=object) -> np.ndarray:
    """Per-distinct ``results`` (or their ``field``) spread to the rows; text one object per value
    where many distinct inputs give one result (the surname 张 of every 张 name), with its codes
    (reconcile.codes.spread: blocking and the comparators group these columns)."""
    if field is None:
        arr = np.array(results, dtype=dtype) if results else np.empty(0, dtype=dtype)
    else:
        arr = np.array([r[field] for r in results], dtype=dtype) if results else np.empty(0, dtype=dtype)
    if dtype is object:
        return take_shared(arr, codes)
    return arr.take(codes) if len(codes) else np.empty(0, dtype=dtype)


# ID columns with few distinct values (a region code per county): one object per value
_SHARED_ID_COLUMNS = frozenset({"id_region", "id_region_name", "id_sex", "id_status"})


def _raw(values: np.ndarray, had_missing: bool) -> np.ndarray:
    """A raw text column for the output, a stray None/NaN made ''."""
    if had_missing:
        return np.array([v if isinstance(v, str) else "" for v in values], dtype=object)
    return values


def _prefix_conflict(record: np.ndarray, from_id: np.ndarray) -> np.ndarray:
    """True where both dates exist and the ID's date does not start with the record's date
    (compared at the record's precision: 1990-05 agrees with 1990-05-06). Vectorised: ISO text
    has 4, 7 or 10 characters, and numpy truncates when casting to a shorter string type."""
    rec = record.astype("U10")
    idd = from_id.astype("U10")
    lengths = np.char.str_len(rec)
    conflict = np.zeros(len(rec), dtype=bool)
    has_id = idd != ""
    for width in (4, 7, 10):
        m = (lengths == width) & has_id
        if m.any():
            conflict[m] = idd[m].astype(f"U{width}") != rec[m]
    return conflict


def standardise(frame: pd.DataFrame, today: date | None = None) -> pd.DataFrame:
    """Canonical person fields for a loaded registry.

    ``frame`` is the loader's output: ``record_key``, ``line`` and every field of
    reconcile.fields.INPUT_FIELDS as text ('' when unmapped or empty; an absent column is
    treated as empty). Returns exactly STANDARD_COLUMNS plus ``line``, same index and order.
    """
    n = len(frame)
    out: dict[str, np.ndarray] = {}
    raw = {f: _column(frame, f) for f in INPUT_FIELDS}
    # one factorisation per column: codes spread per-distinct results back to the rows
    fz = {f: _factorize(raw[f]) for f in ("name", "sex", "birth_date", "hukou", "residence", "flow_status")}
    # ID numbers are nearly all distinct: factorising 1.86 M of them took 1.6 s, to save id_columns
    # 3% of its work. Coded only when the loader's codes come with them, or they repeat.
    ids = raw["id_number"]
    ids_by_row = lookup(ids) is None and nearly_all_distinct(ids) and \
        pd.api.types.infer_dtype(ids, skipna=False) == "string"
    if not ids_by_row:
        fz["id_number"] = _factorize(ids)

    def distinct(field: str, fn: Callable[[str], object]) -> tuple[np.ndarray, list]:
        codes, uniques, _ = fz[field]
        return codes, [fn(u) for u in uniques]

    def passthrough(field: str) -> np.ndarray:
        if field in fz and lookup(raw[field]) is not None:   # the loader's, one object per value
            return raw[field]
        if field in fz:   # from the factorisation: one object per value, a stray None/NaN ''
            codes, uniques, had_missing = fz[field]
            # (a stray None/NaN made '' may repeat an '' already there)
            return spread(uniques, codes, distinct=not had_missing) if len(codes) else _raw(raw[field], False)
        return _raw(raw[field], bool(len(raw[field]) and pd.isna(raw[field]).any()))

    key = _column(frame, "record_key")
    out["record_key"] = _raw(key, bool(len(key) and pd.isna(key).any()))

    # names
    codes, infos = distinct("name", normalise_name)
    out["name"] = _spread(codes, infos, 0)
    out["name_raw"] = passthrough("name")
    out["name_script"] = _spread(codes, infos, 1)
    out["name_traditional"] = _spread(codes, infos, 2, bool)
    out["name_minority"] = _spread(codes, infos, 3, bool)
    derived = [name_fields(i.name) for i in infos]
    out["name_pinyin"] = _spread(codes, derived, 0)
    out["surname"] = _spread(codes, derived, 1)
    out["given"] = _spread(codes, derived, 2)

    # sex
    codes, sexes = distinct("sex", parse_sex)
    out["sex"] = _spread(codes, sexes)

    # birth date
    codes, dates = distinct("birth_date", lambda v: parse_birth_date(v, today))
    out["birth_date"] = _spread(codes, dates, 0)
    out["birth_precision"] = _spread(codes, dates, 1)
    out["birth_status"] = _spread(codes, dates, 2)

    # ID numbers: mostly distinct, so the column-wise function (numpy for clean valid numbers)
    if ids_by_row:
        for col, values in id_columns(ids, today).items():
            out[col] = shared_values(values) if col in _SHARED_ID_COLUMNS else values
        out["id_raw"] = ids
    else:
        codes, distinct_ids, _ = fz["id_number"]
        for col, values in id_columns(distinct_ids, today).items():
            out[col] = take_shared(values, codes) if col in _SHARED_ID_COLUMNS else (values.take(codes) if len(codes) else values)
        out["id_raw"] = passthrough("id_number")

    out["sex_conflict"] = (out["sex"] != "") & (out["id_sex"] != "") & (out["sex"] != out["id_sex"])
    out["birth_conflict"] = _prefix_conflict(out["birth_date"], out["id_birth_date"])

    # addresses
    out["hukou_address"] = passthrough("hukou")
    codes, places = distinct("hukou", resolve_admin_part)
    out["hukou_region"] = _spread(codes, places, 0)
    out["hukou_region_name"] = _spread(codes, places, 1)
    out["residence"] = passthrough("residence")
    codes, places = distinct("residence", resolve_admin_part)
    out["residence_region"] = _spread(codes, places, 0)

    codes, flows = distinct("flow_status", parse_flow_status)
    out["flow_status"] = _spread(codes, flows)
    out["flow_status_raw"] = passthrough("flow_status")
    out["flow_place"] = passthrough("flow_place")
    out["unit"] = passthrough("unit")

    # copy=False: the columns are not copied into one block (at 1,856,076 records that copy took 4 s)
    result = pd.DataFrame({c: out[c] for c in STANDARD_COLUMNS}, index=frame.index, copy=False)
    result["line"] = frame["line"].to_numpy() if "line" in frame.columns else np.arange(1, n + 1)
    return result
