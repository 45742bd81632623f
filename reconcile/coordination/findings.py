"""Turn a run's outcome tables into verification requests: who must check what, and why.

Direction of each request (who issues it, who must check it):

| kind | from (own unit) | to (counterpart) |
|---|---|---|
| duplicate (重复人口) | origin record's unit | destination record's unit / residence |
| untraceable (流向不明) | origin record's unit | best candidate's unit, else the origin's 流入地 text, else 流入地不明 |
| id_conflict (重号) | origin record's unit | destination record's unit (only conflicts spanning both files) |
| unregistered (漏统) | destination record's unit | best origin candidate's unit, else the hukou county / address |

``by='region'`` names the counterpart by county (hukou county for the origin side, the
residence county for the destination side) instead of by reporting unit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd
import sqlite_utils

from reconcile.coordination.ledger import request_id
from reconcile.report import read_table

UNKNOWN_PLACE = "流入地不明"
UNKNOWN_UNIT = "未填单位"


@dataclass
class Finding:
    """One verification request before it is written."""

    request_id: str
    kind: str
    own_unit: str
    counterpart: str
    counterpart_unit: str
    origin: dict[str, Any] | None
    dest: dict[str, Any] | None
    probability: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def origin_key(self) -> str:
        return (self.origin or {}).get("record_key", "") or ""

    @property
    def dest_key(self) -> str:
        return (self.dest or {}).get("record_key", "") or ""


@lru_cache(maxsize=4096)
def region_name(code: str) -> str:
    """County name of a 6-digit division code ('' when unknown), via python-stdnum's table."""
    if not code or len(code) != 6 or not code.isdigit():
        return ""
    try:
        from stdnum import numdb

        parts = numdb.get("cn/loc").info(code)
    except Exception:  # the table is advisory only
        return ""
    county = ""
    for _prefix, props in parts:
        if "county" in props:
            county = props["county"].split("]")[-1]
    return county


def load_records(db: sqlite_utils.Database, run_id: int,
                 keys: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """A run's records by (source, record_key), every value as text; only ``keys`` when given
    (a run may hold hundreds of thousands of records, a packet needs a few thousand)."""
    if keys is None:
        cursors = [db.execute("SELECT * FROM records WHERE run_id = ?", (run_id,))]
    else:
        cursors = [db.execute(f"SELECT * FROM records WHERE run_id = ? AND source = ? AND record_key IN ({', '.join('?' * len(chunk))})",
                              (run_id, src, *chunk)) for src, chunk in _chunks(keys)]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for cur in cursors:
        cols = [c[0] for c in cur.description]
        for row in cur:
            rec = {c: ("" if v is None else v) for c, v in zip(cols, row)}
            rec["record_key"] = str(rec["record_key"])
            out[(rec["source"], rec["record_key"])] = rec
    return out


def _chunks(pairs: set[tuple[str, str]], size: int = 500):
    """(source, [values...]) in chunks small enough for SQLite's parameter limit (indexed IN lookups)."""
    by_source: dict[str, list[str]] = {}
    for s, v in sorted(pairs):
        by_source.setdefault(s, []).append(v)
    for s, values in by_source.items():
        for i in range(0, len(values), size):
            yield s, values[i:i + size]


def _outcome_keys(db: sqlite_utils.Database, run_id: int) -> set[tuple[str, str]]:
    """Every (source, record_key) the outcome tables of a run refer to."""
    sql = """SELECT 'origin', origin_key FROM cross_region_duplicates WHERE run_id = :r
       UNION SELECT 'dest', dest_key FROM cross_region_duplicates WHERE run_id = :r
       UNION SELECT 'origin', origin_key FROM untraceable WHERE run_id = :r
       UNION SELECT 'dest', best_dest_key FROM untraceable WHERE run_id = :r AND best_dest_key IS NOT NULL
       UNION SELECT 'dest', dest_key FROM unregistered WHERE run_id = :r
       UNION SELECT 'origin', best_origin_key FROM unregistered WHERE run_id = :r AND best_origin_key IS NOT NULL
       UNION SELECT source, record_key FROM id_conflicts WHERE run_id = :r"""
    return {(str(s), str(k)) for s, k in db.execute(sql, {"r": run_id})}


def _dest_units(db: sqlite_utils.Database, run_id: int) -> list[str]:
    rows = db.execute("SELECT DISTINCT unit FROM records WHERE run_id = ? AND source = 'dest' AND unit IS NOT NULL "
                      "AND unit != ''", (run_id,)).fetchall()
    return sorted({str(u).strip() for (u,) in rows if str(u).strip()}, key=len, reverse=True)


def _s(rec: dict[str, Any] | None, col: str) -> str:
    if not rec:
        return ""
    v = rec.get(col, "")
    return "" if v is None else str(v).strip()


def origin_party(rec: dict[str, Any] | None, by: str) -> str:
    """The origin-side party: township (unit) or county (region)."""
    if by == "region":
        return _s(rec, "hukou_region_name") or region_name(_s(rec, "hukou_region")) or _s(rec, "unit") or UNKNOWN_UNIT
    return _s(rec, "unit") or _s(rec, "hukou_region_name") or _s(rec, "hukou_address") or UNKNOWN_UNIT


def dest_party(rec: dict[str, Any] | None, by: str) -> str:
    """The destination-side party: township/street (unit, else residence text) or county."""
    if by == "region":
        return region_name(_s(rec, "residence_region")) or _s(rec, "residence") or _s(rec, "unit") or UNKNOWN_UNIT
    return _s(rec, "unit") or _s(rec, "residence") or UNKNOWN_UNIT


def _prob(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def candidate_floor(db: sqlite_utils.Database, run_id: int) -> float:
    """The run's review threshold: a best candidate below it is noise, not worth another unit's time."""
    row = db.execute("SELECT settings_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    try:
        v = json.loads(row[0] or "{}").get("review_threshold") if row else None
    except (ValueError, AttributeError):
        v = None
    return float(v) if isinstance(v, (int, float)) else 0.0


def build_findings(db: sqlite_utils.Database, run_id: int, by: str = "unit") -> list[Finding]:
    """Every verification request a run implies, in a stable order."""
    if by not in ("unit", "region"):
        raise ValueError("by must be 'unit' or 'region'")
    recs = load_records(db, run_id, _outcome_keys(db, run_id))
    out: list[Finding] = []
    floor = candidate_floor(db, run_id)
    dest_units = _dest_units(db, run_id)

    def place_party(text: str) -> str:
        """A free-text 流入地 that names a destination unit of this run goes to that unit; vaguer
        text (广东东莞, 东莞市 ...) names nobody who could answer: the origin follows it up itself."""
        for u in dest_units:
            if u in text:
                return u
        return ""

    def o(key: Any) -> dict[str, Any] | None:
        return recs.get(("origin", str(key))) if key not in (None, "") else None

    def d(key: Any) -> dict[str, Any] | None:
        return recs.get(("dest", str(key))) if key not in (None, "") else None

    for r in read_table(db, "cross_region_duplicates", run_id).to_dict("records"):
        orec, drec = o(r["origin_key"]), d(r["dest_key"])
        out.append(Finding(
            request_id("duplicate", str(r["origin_key"]), str(r["dest_key"])), "duplicate",
            _s(orec, "unit") or origin_party(orec, by), dest_party(drec, by), _s(drec, "unit"),
            orec or {"record_key": str(r["origin_key"])}, drec or {"record_key": str(r["dest_key"])},
            _prob(r.get("match_probability")),
        ))

    for r in read_table(db, "untraceable", run_id).to_dict("records"):
        orec = o(r["origin_key"]) or {"record_key": str(r["origin_key"])}
        drec = d(r.get("best_dest_key")) if (_prob(r.get("best_probability")) or 0.0) >= floor else None
        if drec:
            cp = dest_party(drec, by)
        else:
            cp = place_party(_s(orec, "flow_place")) or UNKNOWN_PLACE
        cp_unit = _s(drec, "unit") if drec else (cp if cp in dest_units else "")
        out.append(Finding(
            request_id("untraceable", str(r["origin_key"])), "untraceable",
            _s(orec, "unit") or origin_party(orec, by), cp, cp_unit, orec, drec,
            _prob(r.get("best_probability")) if drec else None,
        ))

    conf = read_table(db, "id_conflicts", run_id)
    if len(conf):
        conf = conf.astype(object).where(pd.notna(conf), "")
        group_col = "conflict_group" if conf["conflict_group"].astype(str).str.len().gt(0).any() else "id_number"
        for _g, grp in conf.groupby(conf[group_col].astype(str), sort=True):
            okeys = sorted({str(k) for k in grp.loc[grp["source"] == "origin", "record_key"]})
            dkeys = sorted({str(k) for k in grp.loc[grp["source"] == "dest", "record_key"]})
            for ok in okeys:
                for dk in dkeys:
                    orec, drec = o(ok) or {"record_key": ok}, d(dk) or {"record_key": dk}
                    out.append(Finding(
                        request_id("id_conflict", ok, dk), "id_conflict",
                        _s(orec, "unit") or origin_party(orec, by), dest_party(drec, by), _s(drec, "unit"),
                        orec, drec, None, {"group_size": len(grp)},
                    ))

    for r in read_table(db, "unregistered", run_id).to_dict("records"):
        drec = d(r["dest_key"]) or {"record_key": str(r["dest_key"])}
        orec = o(r.get("best_origin_key")) if (_prob(r.get("best_probability")) or 0.0) >= floor else None
        if orec:
            cp = origin_party(orec, by)
        else:
            cp = (_s(drec, "hukou_region_name") or region_name(_s(drec, "hukou_region") or str(r.get("hukou_region") or ""))
                  or _s(drec, "hukou_address") or UNKNOWN_UNIT)
        out.append(Finding(
            request_id("unregistered", "", str(r["dest_key"])), "unregistered",
            _s(drec, "unit") or dest_party(drec, by), cp, _s(orec, "unit"), orec, drec,
            _prob(r.get("best_probability")) if orec else None,
        ))

    # One request per ID even if a table lists a pair twice.
    seen: set[str] = set()
    unique = []
    for f in out:
        if f.request_id not in seen:
            seen.add(f.request_id)
            unique.append(f)
    return unique


def police_roster(db: sqlite_utils.Database, run_id: int) -> pd.DataFrame:
    """ID conflicts (同号不同人) and duplicate IDs (同一登记库内同号重复登记) with each record's unit.

    Columns: group, kind ('id_conflict' | 'duplicate_id'), id_number, source, record_key, unit
    plus the record fields. A group spanning several units appears under each of them.
    """
    dup_ids = db.execute("SELECT source, id_number FROM records WHERE run_id = ? AND id_number IS NOT NULL AND id_number != '' "
                         "GROUP BY source, id_number HAVING count(*) > 1", (run_id,)).fetchall()
    keys = {(str(s), str(k)) for s, k in db.execute("SELECT source, record_key FROM id_conflicts WHERE run_id = ?", (run_id,))}
    for src, chunk in _chunks({(str(a), str(b)) for a, b in dup_ids}):
        keys |= {(str(a), str(b)) for a, b in db.execute(
            f"SELECT source, record_key FROM records WHERE run_id = ? AND source = ? AND id_number IN ({', '.join('?' * len(chunk))})",
            (run_id, src, *chunk))}
    recs = load_records(db, run_id, keys)
    rows: list[dict[str, Any]] = []
    conf = read_table(db, "id_conflicts", run_id)
    conflict_keys: set[tuple[str, str]] = set()
    if len(conf):
        conf = conf.astype(object).where(pd.notna(conf), "")
        for r in conf.to_dict("records"):
            key = (str(r["source"]), str(r["record_key"]))
            conflict_keys.add(key)
            rec = recs.get(key, {"record_key": key[1]})
            rows.append({"group": f"C{r['conflict_group'] or r['id_number']}", "kind": "id_conflict",
                         "id_number": str(r["id_number"]), "source": key[0], **{k: v for k, v in rec.items() if k != "source"}})
    # Duplicate IDs: one usable ID on several records of the same file that are not conflicts.
    dup: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (src, _k), rec in recs.items():
        idn = _s(rec, "id_number")
        if idn and (src, _k) not in conflict_keys:
            dup.setdefault((src, idn), []).append(rec)
    n = 0
    for (src, idn), members in sorted(dup.items()):
        if len(members) < 2:
            continue
        n += 1
        for rec in members:
            rows.append({"group": f"D{n}", "kind": "duplicate_id", "id_number": idn, "source": src,
                         **{k: v for k, v in rec.items() if k not in ("source", "id_number")}})
    return pd.DataFrame(rows)
