"""What the review page shows for one pair: every field side by side with character-level
differences, the per-field evidence, staleness, the duplicate cluster and the decision history.

ID numbers leave this module masked (first 6, last 4) unless :func:`reveal` is called, which
logs the reveal with the reviewer's name.
"""
from __future__ import annotations

import difflib
import json
from typing import Any

import sqlite_utils

from reconcile.i18n import catalogue, t
from reconcile.privacy import mask_id, mask_ids_in_text
from reconcile.review.ledger import (
    SOURCE_PAIRS, _py, current_decision, decision_history, is_stale, log_reveal, pair_records, record_fp,
)
from reconcile.review.pairs import evidence

ID_FIELDS = ("id_number", "id_raw", "id_clean")
# Shown first, in this order; every other column of `records` follows.
MAIN_FIELDS = (
    "name", "sex", "birth_date", "id_number", "hukou_address", "hukou_region_name", "residence",
    "flow_status", "flow_place", "unit",
)
HIDDEN_FIELDS = {"run_id", "source", "fingerprint", "raw_json", "line"}
# record_key is in the column heading; a diff of two keys says nothing.
ROW_SKIP = HIDDEN_FIELDS | {"record_key"}
# Coded values shown in words (catalogue review.value.<field>.<code>).
CODED_FIELDS = {"sex": "sex", "id_sex": "sex", "flow_status": "flow_status"}

Segments = list[list]  # [[changed: bool, text], ...]


def char_diff(a: str, b: str) -> tuple[Segments, Segments]:
    """Character-level difference of two strings as segments [[changed, text], ...] per side.

    张伟 / 章伟 -> ([[True, '张'], [False, '伟']], [[True, '章'], [False, '伟']]).
    """
    a, b = a or "", b or ""
    left: Segments = []
    right: Segments = []

    def push(segs: Segments, changed: bool, text: str) -> None:
        if not text:
            return
        if segs and segs[-1][0] == changed:
            segs[-1][1] += text
        else:
            segs.append([changed, text])

    if a == b:
        push(left, False, a)
        push(right, False, b)
        return left, right
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        same = op == "equal"
        push(left, not same, a[i1:i2])
        push(right, not same, b[j1:j2])
    return left, right


def mask_segments(segs: Segments, masked: str) -> Segments:
    """Map segments of a full value onto its masked form (masking keeps the length)."""
    out: Segments = []
    pos = 0
    for changed, text in segs:
        piece = masked[pos:pos + len(text)]
        pos += len(text)
        if out and out[-1][0] == changed:
            out[-1][1] += piece
        else:
            out.append([changed, piece])
    return out


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def field_label(field: str, lang: str | None = None) -> str:
    key = f"review.field.{field}"
    return t(key, lang=lang) if key in catalogue() else field


def level_label(level: str, lang: str | None = None) -> str:
    """A comparator level in words (catalogue review.level.<label>), else the label itself."""
    key = f"review.level.{level}"
    return t(key, lang=lang) if level and key in catalogue() else level


def _coded(kind: str, code: str, lang: str | None) -> str:
    key = f"review.value.{kind}.{code}"
    return t(key, lang=lang) if code and key in catalogue() else code


def _field_rows(left: dict, right: dict, lang: str | None) -> list[dict]:
    cols = [c for c in MAIN_FIELDS if c in left or c in right]
    cols += [c for c in list(left) + [c for c in right if c not in left] if c not in cols and c not in ROW_SKIP]
    rows = []
    for c in cols:
        a, b = _text(left.get(c)), _text(right.get(c))
        if c in CODED_FIELDS:
            a, b = _coded(CODED_FIELDS[c], a, lang), _coded(CODED_FIELDS[c], b, lang)
        la, lb = char_diff(a, b)
        if c in ID_FIELDS:
            ma, mb = mask_id(a), mask_id(b)
            la, lb = mask_segments(la, ma), mask_segments(lb, mb)
            a, b = ma, mb
        else:
            ma, mb = mask_ids_in_text(a), mask_ids_in_text(b)
            if (ma, mb) != (a, b):
                a, b = ma, mb
                la, lb = char_diff(a, b)
        rows.append({
            "field": c, "label": field_label(c, lang), "left": a, "right": b, "left_segs": la, "right_segs": lb,
            "differs": a != b, "is_id": c in ID_FIELDS, "main": c in MAIN_FIELDS,
        })
    return rows


def _raw(rec: dict) -> list[list[str]]:
    try:
        raw = json.loads(rec.get("raw_json") or "{}")
    except json.JSONDecodeError:
        return []
    if not isinstance(raw, dict):
        return []
    return [[mask_ids_in_text(str(k)), mask_ids_in_text(_text(v))] for k, v in raw.items()]


def _evidence_view(ev: dict, lang: str | None) -> dict:
    fields = []
    for name, f in (ev.get("fields") or {}).items():
        if not isinstance(f, dict):
            continue
        w = f.get("weight")
        fields.append({
            "field": name, "label": field_label(name, lang), "level": _text(f.get("level")),
            "level_label": level_label(_text(f.get("level")), lang),
            "weight": float(w) if isinstance(w, (int, float)) else None,
            "left": mask_ids_in_text(_text(f.get("left"))), "right": mask_ids_in_text(_text(f.get("right"))),
        })
    prior = ev.get("prior")
    one = ev.get("one_person")
    return {"prior": float(prior) if isinstance(prior, (int, float)) else None, "fields": fields,
            "tf": ev.get("tf") if isinstance(ev.get("tf"), dict) else None,
            # the one-person adjustment (reconcile.decide): the record's other candidates
            "one_person": float(one) if isinstance(one, (int, float)) else None}


def _old_record(db: sqlite_utils.Database, run_id: Any, source: str, key: str) -> dict | None:
    if run_id is None:
        return None
    cur = db.execute("SELECT * FROM records WHERE run_id = ? AND source = ? AND record_key = ?", (run_id, source, key))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def _changes(old: dict | None, new: dict, lang: str | None) -> list[dict]:
    """Fields that differ between the record at decision time and now (masked)."""
    if old is None:
        return []
    out = []
    for c in new:
        if c in HIDDEN_FIELDS or c == "record_key":
            continue
        a, b = _text(old.get(c)), _text(new.get(c))
        if a != b:
            if c in ID_FIELDS:
                a, b = mask_id(a), mask_id(b)
            else:
                a, b = mask_ids_in_text(a), mask_ids_in_text(b)
            out.append({"field": c, "label": field_label(c, lang), "before": a, "after": b})
    return out


def _cluster(db: sqlite_utils.Database, run_id: int, keys: list[tuple[str, str]]) -> list[dict]:
    if "duplicates" not in db.table_names():
        return []
    clusters: set[tuple[str, str]] = set()
    for source, key in keys:
        for (cid,) in db.execute(
            "SELECT cluster_id FROM duplicates WHERE run_id = ? AND source = ? AND record_key = ?", (run_id, source, key)
        ).fetchall():
            clusters.add((source, str(cid)))
    members = []
    for source, cid in sorted(clusters):
        cur = db.execute(
            "SELECT d.cluster_id, d.record_key, d.survivor, d.scope, d.reason, r.name, r.sex, r.birth_date, r.id_number,"
            " r.id_raw, r.unit, r.hukou_address, r.residence FROM duplicates d JOIN records r"   # records may be a view: a LEFT JOIN would materialise it
            " ON r.run_id = d.run_id AND r.source = d.source AND r.record_key = d.record_key"
            " WHERE d.run_id = ? AND d.source = ? AND d.cluster_id = ? ORDER BY d.record_key",
            (run_id, source, cid),
        )
        cols = [d[0] for d in cur.description]
        for row in cur.fetchall():
            m = dict(zip(cols, row))
            m["id_number"] = mask_id(_text(m.get("id_number")) or _text(m.get("id_raw")))
            m.pop("id_raw", None)
            m["source"] = source
            members.append({k: _text(v) if k != "survivor" else v for k, v in m.items()})
    return members


def pair_detail(
    db: sqlite_utils.Database, run_id: int, source_pair: str, origin_key: str, dest_key: str, lang: str | None = None,
) -> dict | None:
    """Everything the page shows for one pair (IDs masked), or None when the pair is not in the run."""
    recs = pair_records(db, run_id, source_pair, origin_key, dest_key)
    if recs is None:
        return None
    ls, rs = SOURCE_PAIRS[source_pair]
    link = None
    if "links" in db.table_names():
        for a, b in ((origin_key, dest_key), (dest_key, origin_key)) if ls == rs else ((origin_key, dest_key),):
            cur = db.execute(
                "SELECT * FROM links WHERE run_id = ? AND coalesce(source_pair, 'origin-dest') = ? AND origin_key = ? AND dest_key = ?",
                (run_id, source_pair, a, b),
            )
            row = cur.fetchone()
            if row:
                link = dict(zip([d[0] for d in cur.description], row))
                break
    ev = evidence(link.get("evidence_json") if link else None)
    cur_dec = current_decision(db, source_pair, origin_key, dest_key)
    stale, changed = (False, [])
    changes: dict[str, list] = {}
    if cur_dec is not None:
        # Side fingerprints follow the ledger's orientation of the pair.
        flipped = (str(cur_dec["origin_key"]), str(cur_dec["dest_key"])) != (str(origin_key), str(dest_key))
        lfp, rfp = (recs.right_fp, recs.left_fp) if flipped else (recs.left_fp, recs.right_fp)
        stale, changed = is_stale(cur_dec, lfp, rfp)
        if stale:
            sides = {"origin": (ls, recs.left), "dest": (rs, recs.right)}
            if flipped:
                sides = {"origin": (rs, recs.right), "dest": (ls, recs.left)}
            for side in changed:
                src, new = sides[side]
                old = _old_record(db, cur_dec.get("run_id"), src, new["record_key"])
                changes["left" if new is recs.left else "right"] = _changes(old, new, lang)
    hist = decision_history(db, source_pair, origin_key, dest_key)
    history = [
        {k: _py(h).get(k) for k in ("decision_id", "decision", "reviewer", "decided_at", "reason", "channel", "supersedes", "run_id")}
        for h in hist.to_dict("records")
    ]
    prob = link.get("match_probability") if link else None
    return {
        "source_pair": source_pair, "origin_key": str(origin_key), "dest_key": str(dest_key),
        "left_source": ls, "right_source": rs,
        "match_probability": prob, "match_weight": link.get("match_weight") if link else None,
        "model_decision": link.get("decision") if link else None, "in_links": link is not None,
        "fields": _field_rows(recs.left, recs.right, lang),
        "raw": {"left": _raw(recs.left), "right": _raw(recs.right)},
        "evidence": _evidence_view(ev, lang),
        "decision": None if cur_dec is None else {
            k: cur_dec.get(k) for k in ("decision_id", "decision", "reviewer", "decided_at", "reason", "channel")
        },
        "stale": bool(stale), "stale_sides": changed, "stale_changes": changes,
        "history": history,
        "cluster": _cluster(db, run_id, [(ls, str(origin_key)), (rs, str(dest_key))]),
        "fingerprints": {"left": record_fp(recs.left), "right": record_fp(recs.right)},
    }


def reveal(
    db: sqlite_utils.Database, run_id: int, source_pair: str, origin_key: str, dest_key: str, side: str,
    reviewer: str, channel: str = "web",
) -> dict | None:
    """Full ID fields of one side of a pair (logged in reveal_log with the reviewer's name).

    Returns {field: {"value": full, "segs": segments against the other side}} or None when the
    pair is not in the run.
    """
    if side not in ("left", "right"):
        raise ValueError("side must be left or right")
    recs = pair_records(db, run_id, source_pair, origin_key, dest_key)
    if recs is None:
        return None
    ls, rs = SOURCE_PAIRS[source_pair]
    rec, other, source = (recs.left, recs.right, ls) if side == "left" else (recs.right, recs.left, rs)
    log_reveal(db, run_id, source, [rec["record_key"]], reviewer, channel)
    out = {}
    for c in ID_FIELDS:
        if c not in rec:
            continue
        a, b = _text(rec.get(c)), _text(other.get(c))
        segs, _ = char_diff(a, b)
        out[c] = {"value": a, "segs": segs}
    return out
