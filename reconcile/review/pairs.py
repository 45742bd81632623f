"""The pairs of a run as a reviewer sees them: model opinion, decision in force, state, unit, outcomes.

One frame per run, shared by the web queue, `review status` and the Excel export, so all three
count the same pairs the same way.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import sqlite_utils

from reconcile.fingerprint import FINGERPRINT_FIELDS, record_fingerprints
from reconcile.review.ledger import SOURCE_PAIRS, canonical_pair, decided_pairs, ensure_ledger, is_stale

# state of a pair for the reviewer
WAITING, STALE, UNSURE, DECIDED, AUTO_MATCH = "waiting", "stale", "unsure", "decided", "auto_match"
STATES = (WAITING, STALE, UNSURE, DECIDED, AUTO_MATCH)
TO_DECIDE = (WAITING, STALE, UNSURE)
OUTCOMES = ("traced", "untraceable", "cross_region_duplicate", "unregistered", "id_conflict", "duplicate")
BANDS: dict[str, tuple[float, float]] = {
    "0-20": (0.0, 0.2), "20-50": (0.2, 0.5), "50-80": (0.5, 0.8), "80-95": (0.8, 0.95), "95-100": (0.95, 1.0001),
}

STATE_COLUMNS = [
    "source_pair", "origin_key", "dest_key", "match_probability", "match_weight", "model_decision",
    "decided_by", "in_links", "evidence_json", "decision_id", "review_decision", "reviewer", "decided_at",
    "reason", "channel", "decision_run_id", "stale", "changed", "state", "left_name", "right_name",
    "left_unit", "right_unit", "unit", "outcomes",
]


def _table_frame(db: sqlite_utils.Database, table: str, run_id: int, cols: list[str]) -> pd.DataFrame:
    """Selected columns of a run's table; missing table/columns come back empty / as ''."""
    if table not in db.table_names() and table not in db.view_names():   # dedupe: records is a view
        return pd.DataFrame(columns=cols)
    have = {c.name for c in db[table].columns}
    sel = ", ".join(f"[{c}]" if c in have else f"'' AS [{c}]" for c in cols)
    cur = db.execute(f"SELECT {sel} FROM [{table}] WHERE run_id = ?", (run_id,))
    return pd.DataFrame(cur.fetchall(), columns=cols)


def record_index(db: sqlite_utils.Database, run_id: int) -> pd.DataFrame:
    """source, record_key, name, unit, fp of every record of the run (fp computed when not stored)."""
    cols = ["source", "record_key", "name", "unit", "fingerprint", *[c for c in FINGERPRINT_FIELDS if c not in ("name", "unit")]]
    recs = _table_frame(db, "records", run_id, cols)
    for c in recs.columns:
        recs[c] = recs[c].where(recs[c].notna(), "").astype(str)
    fp = recs["fingerprint"]
    missing = fp == ""
    if missing.any():
        fp = fp.copy()
        fp[missing] = record_fingerprints(recs.loc[missing])
    recs["fp"] = fp
    return recs[["source", "record_key", "name", "unit", "fp"]]


def _outcome_tags(db: sqlite_utils.Database, run_id: int) -> dict[tuple[str, str, str], set[str]]:
    tags: dict[tuple[str, str, str], set[str]] = {}

    def add(sp: str, a: Any, b: Any, tag: str) -> None:
        if a is None or b is None or a == "" or b == "":
            return
        tags.setdefault(canonical_pair(sp, str(a), str(b)), set()).add(tag)

    for o, d in _table_frame(db, "traced", run_id, ["origin_key", "dest_key"]).itertuples(index=False):
        add("origin-dest", o, d, "traced")
    for o, d in _table_frame(db, "cross_region_duplicates", run_id, ["origin_key", "dest_key"]).itertuples(index=False):
        add("origin-dest", o, d, "cross_region_duplicate")
    for o, d in _table_frame(db, "untraceable", run_id, ["origin_key", "best_dest_key"]).itertuples(index=False):
        add("origin-dest", o, d, "untraceable")
    for d, o in _table_frame(db, "unregistered", run_id, ["dest_key", "best_origin_key"]).itertuples(index=False):
        add("origin-dest", o, d, "unregistered")
    return tags


def _group_members(db: sqlite_utils.Database, run_id: int, table: str, group_col: str) -> dict[tuple[str, str], set]:
    frame = _table_frame(db, table, run_id, ["source", "record_key", group_col])
    out: dict[tuple[str, str], set] = {}
    for s, k, g in frame.itertuples(index=False):
        out.setdefault((str(s), str(k)), set()).add(str(g))
    return out


def pair_states(db: sqlite_utils.Database, run_id: int) -> pd.DataFrame:
    """Every reviewable pair of the run with its state (see STATES), one row per pair.

    Pairs are the run's links plus pairs with a decision in force whose two records are in the
    run (a reviewer may have bound a pair the model did not propose).
    """
    ensure_ledger(db)
    links = _table_frame(db, "links", run_id, [
        "source_pair", "origin_key", "dest_key", "match_probability", "match_weight", "decision", "decided_by", "evidence_json",
    ])
    links["source_pair"] = links["source_pair"].where(links["source_pair"].astype(str) != "", "origin-dest").fillna("origin-dest")
    for c in ("origin_key", "dest_key"):
        links[c] = links[c].astype(str)
    recs = record_index(db, run_id)
    fp = dict(zip(zip(recs["source"], recs["record_key"]), recs["fp"]))
    names = dict(zip(zip(recs["source"], recs["record_key"]), recs["name"]))
    units = dict(zip(zip(recs["source"], recs["record_key"]), recs["unit"]))

    current = {}
    for rec in decided_pairs(db).to_dict("records"):
        current[canonical_pair(rec["source_pair"], str(rec["origin_key"]), str(rec["dest_key"]))] = rec

    rows: list[dict] = []
    seen: set[tuple[str, str, str]] = set()
    for link in links.to_dict("records"):
        key = canonical_pair(link["source_pair"], link["origin_key"], link["dest_key"])
        if key in seen:
            continue
        seen.add(key)
        rows.append(_row(link, current.get(key), fp, names, units, in_links=True))
    for key, dec in current.items():
        if key in seen:
            continue
        sp = dec["source_pair"]
        ls, rs = SOURCE_PAIRS.get(sp, ("origin", "dest"))
        if (ls, str(dec["origin_key"])) in fp and (rs, str(dec["dest_key"])) in fp:
            link = {"source_pair": sp, "origin_key": str(dec["origin_key"]), "dest_key": str(dec["dest_key"]),
                    "match_probability": None, "match_weight": None, "decision": None, "decided_by": None, "evidence_json": None}
            row = _row(link, dec, fp, names, units, in_links=False)
            # Same rule as apply_decisions: a stale non_match the model no longer proposes is dropped.
            if not (row["state"] == STALE and dec["decision"] == "non_match"):
                rows.append(row)
    frame = pd.DataFrame(rows, columns=STATE_COLUMNS)
    if frame.empty:
        return frame

    tags = _outcome_tags(db, run_id)
    dup = _group_members(db, run_id, "duplicates", "cluster_id")
    conflict = _group_members(db, run_id, "id_conflicts", "conflict_group")
    outcomes = []
    for sp, ok, dk in zip(frame["source_pair"], frame["origin_key"], frame["dest_key"]):
        ls, rs = SOURCE_PAIRS.get(sp, ("origin", "dest"))
        t = set(tags.get(canonical_pair(sp, ok, dk), set()))
        if ls == rs or dup.get((ls, ok)) or dup.get((rs, dk)):
            t.add("duplicate")
        if conflict.get((ls, ok), set()) & conflict.get((rs, dk), set()):
            t.add("id_conflict")
        outcomes.append(sorted(t))
    frame["outcomes"] = outcomes
    return frame


def _row(link: dict, dec: dict | None, fp: dict, names: dict, units: dict, *, in_links: bool) -> dict:
    sp = link["source_pair"]
    ls, rs = SOURCE_PAIRS.get(sp, ("origin", "dest"))
    ok, dk = link["origin_key"], link["dest_key"]
    row = {
        "source_pair": sp, "origin_key": ok, "dest_key": dk,
        "match_probability": link.get("match_probability"), "match_weight": link.get("match_weight"),
        "model_decision": link.get("decision"), "decided_by": link.get("decided_by"), "in_links": in_links,
        "evidence_json": link.get("evidence_json"), "decision_id": None, "review_decision": None, "reviewer": None,
        "decided_at": None, "reason": None, "channel": None, "decision_run_id": None, "stale": 0, "changed": [],
        "left_name": names.get((ls, ok), ""), "right_name": names.get((rs, dk), ""),
        "left_unit": units.get((ls, ok), ""), "right_unit": units.get((rs, dk), ""), "outcomes": [],
    }
    row["unit"] = row["left_unit"] or row["right_unit"]
    if dec is not None:
        # The ledger may hold a within-file pair the other way round.
        if (str(dec["origin_key"]), str(dec["dest_key"])) == (ok, dk):
            lfp, rfp = fp.get((ls, ok)), fp.get((rs, dk))
        else:
            lfp, rfp = fp.get((ls, dk)), fp.get((rs, ok))
        stale, changed = is_stale(dec, lfp, rfp)
        row.update(
            decision_id=int(dec["decision_id"]), review_decision=dec["decision"], reviewer=dec.get("reviewer"),
            decided_at=dec.get("decided_at"), reason=dec.get("reason") or "", channel=dec.get("channel"),
            decision_run_id=dec.get("run_id"), stale=int(stale), changed=changed,
        )
        row["state"] = STALE if stale else (UNSURE if dec["decision"] == "unsure" else DECIDED)
    else:
        row["state"] = AUTO_MATCH if link.get("decision") == "match" else WAITING
    return row


def order_queue(frame: pd.DataFrame) -> pd.DataFrame:
    """Pairs to decide first (highest uncertainty |p - 0.5| first), then model matches, then decided."""
    if frame.empty:
        return frame
    group = frame["state"].map({WAITING: 0, STALE: 0, UNSURE: 0, AUTO_MATCH: 1, DECIDED: 2}).fillna(3)
    p = pd.to_numeric(frame["match_probability"], errors="coerce")
    unc = (p - 0.5).abs().fillna(1.0)
    key = pd.DataFrame({"g": group, "u": unc, "o": frame["origin_key"], "d": frame["dest_key"]})
    return frame.loc[key.sort_values(["g", "u", "o", "d"], kind="mergesort").index].reset_index(drop=True)


def filter_pairs(
    frame: pd.DataFrame,
    *,
    band: str | None = None,
    unit: str | None = None,
    outcome: str | None = None,
    state: str | None = None,
) -> pd.DataFrame:
    """Filter by score band (a BANDS key), reporting unit (either record), outcome tag, state.

    ``state`` may be a STATES value or ``todo`` (waiting, stale, unsure).
    """
    if frame.empty:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if band:
        lo, hi = BANDS[band]
        p = pd.to_numeric(frame["match_probability"], errors="coerce")
        keep &= ((p >= lo) & (p < hi)).to_numpy()
    if unit:
        keep &= ((frame["left_unit"] == unit) | (frame["right_unit"] == unit)).to_numpy()
    if outcome:
        keep &= frame["outcomes"].map(lambda t: outcome in t).to_numpy()
    if state:
        wanted = set(TO_DECIDE) if state == "todo" else {state}
        keep &= frame["state"].isin(wanted).to_numpy()
    return frame[keep].reset_index(drop=True)


def evidence(evidence_json: Any) -> dict:
    """Parsed evidence_json (empty dict when absent or unreadable)."""
    if not evidence_json:
        return {}
    try:
        ev = json.loads(evidence_json)
    except (TypeError, json.JSONDecodeError):
        return {}
    return ev if isinstance(ev, dict) else {}
