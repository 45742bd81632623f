"""standardise(): the loader's text frame -> canonical person fields (reconcile.fields.STANDARD_COLUMNS).

Every per-value function (names, ID numbers, dates, sexes, addresses) runs once per DISTINCT
raw value: a column is factorised (pandas hashes it in C), the function maps the uniques, and
the results are spread back with one numpy ``take``. Registries repeat names, dates, sexes and
addresses heavily, so the Python work is a fraction of the row count; ID numbers are mostly
distinct, which is why ``clean_id`` has a cheap path for already-clean 18-digit numbers.
"""
from __future__ import annotations

from datetime import date
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from reconcile.dates import parse_birth_date
from reconcile.divisions import resolve_address
from reconcile.fields import INPUT_FIELDS, STANDARD_COLUMNS
from reconcile.idnumbers import clean_id
from reconcile.names import name_pinyin, normalise_name, split_name
from reconcile.sexes import parse_sex

__all__ = ["standardise", "parse_flow_status"]

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
    """A text column as an object array ('' for an absent column or a missing cell)."""
    if name not in frame.columns:
        return np.full(len(frame), "", dtype=object)
    col = frame[name]
    if col.isna().any():
        col = col.fillna("")
    return col.astype(str).to_numpy(dtype=object)


def _per_distinct(values: np.ndarray, fn: Callable[[str], object]) -> tuple[np.ndarray, list]:
    """(codes, results): fn applied once per distinct value; results[codes] spreads them back."""
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=False)
    return codes, [fn(u) for u in uniques]


def _spread(codes: np.ndarray, results: Sequence, field: int | None = None, dtype=object) -> np.ndarray:
    if field is None:
        arr = np.array(results, dtype=dtype) if results else np.empty(0, dtype=dtype)
    else:
        arr = np.array([r[field] for r in results], dtype=dtype) if results else np.empty(0, dtype=dtype)
    return arr.take(codes) if len(codes) else np.empty(0, dtype=dtype)


def _prefix_conflict(record: np.ndarray, from_id: np.ndarray) -> np.ndarray:
    """True where both dates exist and the ID's date does not start with the record's date
    (compared at the record's precision: 1990-05 agrees with 1990-05-06)."""
    return np.fromiter(
        (bool(a) and bool(b) and not b.startswith(a) for a, b in zip(record, from_id)),
        dtype=bool, count=len(record),
    )


def standardise(frame: pd.DataFrame, today: date | None = None) -> pd.DataFrame:
    """Canonical person fields for a loaded registry.

    ``frame`` is the loader's output: ``record_key``, ``line`` and every field of
    reconcile.fields.INPUT_FIELDS as text ('' when unmapped or empty; an absent column is
    treated as empty). Returns exactly STANDARD_COLUMNS plus ``line``, same index and order.
    """
    n = len(frame)
    out: dict[str, np.ndarray] = {}
    cols = {f: _column(frame, f) for f in INPUT_FIELDS}
    out["record_key"] = _column(frame, "record_key")

    # names
    raw_names = cols["name"]
    codes, infos = _per_distinct(raw_names, normalise_name)
    out["name"] = _spread(codes, infos, 0)
    out["name_raw"] = raw_names
    out["name_script"] = _spread(codes, infos, 1)
    out["name_traditional"] = _spread(codes, infos, 2, bool)
    out["name_minority"] = _spread(codes, infos, 3, bool)
    derived = [(name_pinyin(i.name),) + split_name(i.name) for i in infos]
    out["name_pinyin"] = _spread(codes, derived, 0)
    out["surname"] = _spread(codes, derived, 1)
    out["given"] = _spread(codes, derived, 2)

    # sex
    codes, sexes = _per_distinct(cols["sex"], parse_sex)
    out["sex"] = _spread(codes, sexes)

    # birth date
    codes, dates = _per_distinct(cols["birth_date"], lambda v: parse_birth_date(v, today))
    out["birth_date"] = _spread(codes, dates, 0)
    out["birth_precision"] = _spread(codes, dates, 1)
    out["birth_status"] = _spread(codes, dates, 2)

    # ID numbers
    raw_ids = cols["id_number"]
    codes, ids = _per_distinct(raw_ids, lambda v: clean_id(v, today))
    out["id_number"] = _spread(codes, ids, 0)
    out["id_raw"] = raw_ids
    out["id_clean"] = _spread(codes, ids, 1)
    out["id_status"] = _spread(codes, ids, 2)
    out["id_birth_date"] = _spread(codes, ids, 3)
    out["id_sex"] = _spread(codes, ids, 4)
    out["id_region"] = _spread(codes, ids, 5)
    out["id_region_name"] = _spread(codes, ids, 6)

    out["sex_conflict"] = (out["sex"] != "") & (out["id_sex"] != "") & (out["sex"] != out["id_sex"])
    out["birth_conflict"] = _prefix_conflict(out["birth_date"], out["id_birth_date"])

    # addresses
    out["hukou_address"] = cols["hukou"]
    codes, places = _per_distinct(cols["hukou"], resolve_address)
    out["hukou_region"] = _spread(codes, places, 0)
    out["hukou_region_name"] = _spread(codes, places, 1)
    out["residence"] = cols["residence"]
    codes, places = _per_distinct(cols["residence"], resolve_address)
    out["residence_region"] = _spread(codes, places, 0)

    codes, flows = _per_distinct(cols["flow_status"], parse_flow_status)
    out["flow_status"] = _spread(codes, flows)
    out["flow_status_raw"] = cols["flow_status"]
    out["flow_place"] = cols["flow_place"]
    out["unit"] = cols["unit"]

    result = pd.DataFrame({c: out[c] for c in STANDARD_COLUMNS}, index=frame.index)
    result["line"] = frame["line"].to_numpy() if "line" in frame.columns else np.arange(1, n + 1)
    return result
