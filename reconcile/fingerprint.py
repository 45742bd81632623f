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
    joined = std[cols[0]].astype(str).str.cat([std[c].astype(str) for c in cols[1:]], sep="\x1f")
    return joined.map(lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest()[:16])


def pair_fingerprint(left_fp: str, right_fp: str) -> str:
    """Evidence fingerprint of a pair: changes when either record's content changes."""
    return hashlib.sha256(f"{left_fp}|{right_fp}".encode()).hexdigest()[:16]
