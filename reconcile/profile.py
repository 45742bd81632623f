"""`reconcile profile`: the data-quality profile of one registry (the seeds' monthly indicators)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from reconcile.fields import ID_STATUSES, INPUT_FIELDS, USABLE_ID_STATUSES
from reconcile.privacy import mask_id
from reconcile.report import now_iso

MAX_LISTED = 50   # conflicts / duplicate IDs listed in full; the counts are always complete


def _indicators(std: pd.DataFrame, present: list[str]) -> dict[str, Any]:
    n = len(std)
    usable = std["id_status"].isin(USABLE_ID_STATUSES)
    conflict = usable & (std["birth_conflict"].astype(bool) | std["sex_conflict"].astype(bool))
    completeness = {}
    for f in present:
        col = {"name": "name", "id_number": "id_raw", "birth_date": "birth_date", "sex": "sex",
               "hukou": "hukou_address", "residence": "residence", "flow_status": "flow_status_raw",
               "flow_place": "flow_place", "unit": "unit"}.get(f)
        if col and col in std:
            completeness[f] = round(float((std[col].astype(str) != "").mean()) if n else 0.0, 4)
    return {
        "records": n,
        "completeness": completeness,
        "id_status": {s: int((std["id_status"] == s).sum()) for s in ID_STATUSES},
        "id_entry_rate": round(float(usable.mean()) if n else 0.0, 4),
        "id_accuracy": round(float((usable & ~conflict).sum() / usable.sum()) if usable.sum() else 0.0, 4),
        "id_birth_conflicts": int((usable & std["birth_conflict"].astype(bool)).sum()),
        "id_sex_conflicts": int((usable & std["sex_conflict"].astype(bool)).sum()),
        "birth_precision": {p or "missing": int(c) for p, c in std["birth_precision"].value_counts().items()},
        "birth_status": {p: int(c) for p, c in std["birth_status"].value_counts().items()},
        "names_latin": int((std["name_script"] == "latin").sum()),
        "names_traditional": int(std["name_traditional"].astype(bool).sum()),
        "names_minority": int(std["name_minority"].astype(bool).sum()),
        "hukou_resolved": round(float((std["hukou_region"] != "").mean()) if n else 0.0, 4),
    }


def profile_registry(path: str | Path, **load_options: Any) -> dict[str, Any]:
    """Load and standardise ``path``; return the profile as a JSON-ready dict (IDs masked)."""
    from reconcile.loading import read_registry
    from reconcile.standardise import standardise

    loaded = read_registry(path, **load_options)
    std = standardise(loaded.frame).reset_index(drop=True)
    present = sorted(set(loaded.columns.values()), key=list(INPUT_FIELDS).index)
    prof: dict[str, Any] = {
        "file": str(path),
        "rows_read": loaded.rows_read,
        "rows_loaded": len(loaded.frame),
        "rows_rejected": len(loaded.rejected),
        "encoding": loaded.encoding,
        "delimiter": loaded.delimiter,
        "columns": dict(loaded.columns),
        "key_column": loaded.key_column,
        "rejected": [{"line": r.line, "reason": r.reason} for r in loaded.rejected[:MAX_LISTED]],
    }
    prof.update(_indicators(std, present))
    usable = std["id_status"].isin(USABLE_ID_STATUSES)
    conf = std[usable & (std["birth_conflict"].astype(bool) | std["sex_conflict"].astype(bool))]
    prof["conflicts"] = [
        {"record_key": r.record_key, "id": mask_id(r.id_number),
         "kind": "+".join(k for k, v in (("birth_date", r.birth_conflict), ("sex", r.sex_conflict)) if v),
         "birth_date": r.birth_date, "id_birth_date": r.id_birth_date, "sex": r.sex, "id_sex": r.id_sex}
        for r in conf.head(MAX_LISTED).itertuples()
    ]
    dup = std[usable & std.duplicated("id_number", keep=False)]
    groups = dup.groupby("id_number")["record_key"].apply(list)
    prof["duplicate_ids_count"] = int(len(groups))
    prof["duplicate_ids"] = [{"id": mask_id(i), "record_keys": keys} for i, keys in list(groups.items())[:MAX_LISTED]]
    if "unit" in present:
        prof["units"] = {
            str(u): _indicators(g, present) for u, g in std.groupby("unit", sort=True) if u != ""
        }
    return prof


def write_profile(profile: dict[str, Any], out: str | Path) -> int:
    """Store a profile in SQLite (tables profiles, profile_metrics), in one transaction."""
    import sqlite3

    import sqlite_utils

    db = sqlite_utils.Database(sqlite3.connect(str(out)))
    with db.atomic():
        db.execute("CREATE TABLE IF NOT EXISTS profiles (profile_id INTEGER PRIMARY KEY, created_at TEXT, file TEXT, profile_json TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS profile_metrics (profile_id INTEGER, scope TEXT, metric TEXT, value REAL)")
        cur = db.conn.execute("INSERT INTO profiles (created_at, file, profile_json) VALUES (?, ?, ?)",
                              (now_iso(), profile["file"], json.dumps(profile, ensure_ascii=False)))
        pid = int(cur.lastrowid)
        rows = list(_flat_metrics("all", profile))
        for unit, ind in profile.get("units", {}).items():
            rows += list(_flat_metrics(f"unit:{unit}", ind))
        db.conn.executemany("INSERT INTO profile_metrics VALUES (?, ?, ?, ?)", [(pid, *r) for r in rows])
    db.close()
    return pid


def _flat_metrics(scope: str, d: dict[str, Any], prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            yield scope, prefix + k, float(v)
        elif isinstance(v, dict) and k not in ("columns", "units"):
            yield from _flat_metrics(scope, v, prefix + k + ".")
