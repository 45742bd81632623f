"""Record fingerprints: a short hash of a record's content, to tell unchanged from edited records
across runs (review staleness, incremental runs, diff)."""
from __future__ import annotations

import hashlib

import pandas as pd

# The standardised fields that define "the same record content".
FINGERPRINT_FIELDS: tuple[str, ...] = (
    "name", "sex", "birth_date", "id_clean", "id_raw", "hukou_address", "residence", "flow_status", "flow_place", "unit",
)


def record_fingerprints(std: pd.DataFrame) -> pd.Series:
    """sha256 (first 16 hex chars) of the record's FINGERPRINT_FIELDS, one per row."""
    cols = [c for c in FINGERPRINT_FIELDS if c in std.columns]
    if not len(std):
        return pd.Series([], dtype=str)
    # plain lists joined per row and hashed in one comprehension: 2-3x faster than str.cat + map
    values = [std[c].astype(str).to_numpy(object).tolist() for c in cols]
    sha = hashlib.sha256
    return pd.Series([sha("\x1f".join(row).encode("utf-8")).hexdigest()[:16] for row in zip(*values)],
                     index=std.index, dtype=object)


def pair_fingerprint(left_fp: str, right_fp: str) -> str:
    """Evidence fingerprint of a pair: changes when either record's content changes."""
    return hashlib.sha256(f"{left_fp}|{right_fp}".encode()).hexdigest()[:16]
