"""The review decisions ledger: append-only decisions that bind every later run.

Tables (created by :func:`ensure_ledger`, documented in docs/review.md):

- ``review_decisions``: one row per decision ever made. Nothing is updated or deleted (SQLite
  triggers raise). A new decision on a pair ``supersedes`` the pair's previous latest one; an
  undo is a new row restoring what the undone decision had superseded (or ``withdrawn``).
- ``current_decisions`` (view): the latest decision per (source_pair, origin_key, dest_key),
  leaving out pairs whose latest row is ``withdrawn``.
- ``reveal_log``: one row per full ID number shown to a person (web reveal, Excel --reveal-ids).
- ``review_settings``: the HMAC key that signs Excel exports.

For within-file pairs (``origin-origin``, ``dest-dest``) ``origin_key``/``dest_key`` hold the
left/right record keys; a decision on (a, b) also applies to (b, a).
"""
from __future__ import annotations

import json
import math
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import sqlite_utils

from reconcile.errors import ConfigError
from reconcile.fingerprint import pair_fingerprint, record_fingerprints
from reconcile.report import now_iso, resolve_run

DECISIONS: tuple[str, ...] = ("match", "non_match", "unsure")
WITHDRAWN = "withdrawn"  # written only by undo, when the undone decision superseded nothing
CHANNELS: tuple[str, ...] = ("web", "excel", "cli")
SOURCE_PAIRS: dict[str, tuple[str, str]] = {
    "origin-dest": ("origin", "dest"),
    "origin-origin": ("origin", "origin"),
    "dest-dest": ("dest", "dest"),
}

DECISION_COLUMNS: list[tuple[str, str]] = [
    ("decision_id", "INTEGER PRIMARY KEY"),
    ("origin_key", "TEXT"),
    ("dest_key", "TEXT"),
    ("source_pair", "TEXT"),
    ("decision", "TEXT"),
    ("reason", "TEXT"),
    ("reviewer", "TEXT"),
    ("decided_at", "TEXT"),
    ("run_id", "INTEGER"),
    ("match_probability", "REAL"),
    ("evidence_fingerprint", "TEXT"),
    ("supersedes", "INTEGER"),
    ("channel", "TEXT"),
    # Per-record fingerprints at decision time: the pair fingerprint says *that* something
    # changed, these say *which* record did.
    ("origin_fingerprint", "TEXT"),
    ("dest_fingerprint", "TEXT"),
]

REVEAL_COLUMNS: list[tuple[str, str]] = [
    ("reveal_id", "INTEGER PRIMARY KEY"),
    ("run_id", "INTEGER"),
    ("record_key", "TEXT"),
    ("source", "TEXT"),
    ("reviewer", "TEXT"),
    ("revealed_at", "TEXT"),
    ("channel", "TEXT"),
]

_APPEND_ONLY = ("review_decisions", "reveal_log")


def ensure_ledger(db: sqlite_utils.Database) -> None:
    """Create the ledger tables, triggers, view and indexes if missing (idempotent)."""
    from reconcile.report import ensure_tables

    names = set(db.table_names())
    with db.atomic():
        ensure_tables(db, {"review_decisions": DECISION_COLUMNS, "reveal_log": REVEAL_COLUMNS})
        for table in _APPEND_ONLY:
            for op in ("UPDATE", "DELETE"):
                db.execute(
                    f"CREATE TRIGGER IF NOT EXISTS [{table}_no_{op.lower()}] BEFORE {op} ON [{table}] "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} is not allowed'); END"
                )
        if "review_settings" not in names:
            db.execute("CREATE TABLE review_settings (key TEXT PRIMARY KEY, value TEXT)")
        db.execute(
            "CREATE INDEX IF NOT EXISTS idx_review_decisions_pair "
            "ON review_decisions (source_pair, origin_key, dest_key, decision_id)"
        )
        db.execute(
            """CREATE VIEW IF NOT EXISTS current_decisions AS
            SELECT d.* FROM review_decisions d
            JOIN (SELECT source_pair, origin_key, dest_key, max(decision_id) AS last_id
                  FROM review_decisions GROUP BY source_pair, origin_key, dest_key) m
              ON d.decision_id = m.last_id
            WHERE d.decision <> 'withdrawn'"""
        )


def secret_key(db: sqlite_utils.Database) -> bytes:
    """The database's HMAC key for Excel integrity values (created on first use)."""
    ensure_ledger(db)
    row = db.execute("SELECT value FROM review_settings WHERE key = 'hmac_key'").fetchone()
    if row:
        return bytes.fromhex(row[0])
    key = secrets.token_hex(32)
    with db.atomic():
        db.execute("INSERT OR IGNORE INTO review_settings (key, value) VALUES ('hmac_key', ?)", (key,))
    row = db.execute("SELECT value FROM review_settings WHERE key = 'hmac_key'").fetchone()
    return bytes.fromhex(row[0])


def _frame(cur: sqlite3.Cursor) -> pd.DataFrame:
    cols = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def decided_pairs(db: sqlite_utils.Database) -> pd.DataFrame:
    """Current decisions (one row per decided pair, `withdrawn` left out), oldest first.

    Columns are those of ``review_decisions``; used by ``--learn-from-reviews``.
    """
    ensure_ledger(db)
    return _frame(db.execute("SELECT * FROM current_decisions ORDER BY decision_id"))


def decision_history(db: sqlite_utils.Database, source_pair: str, origin_key: str, dest_key: str) -> pd.DataFrame:
    """Every ledger row of one pair (both orientations for within-file pairs), oldest first."""
    ensure_ledger(db)
    keys = _orientations(source_pair, str(origin_key), str(dest_key))
    where = " OR ".join("(origin_key = ? AND dest_key = ?)" for _ in keys)
    params = [k for pair in keys for k in pair]
    return _frame(db.execute(
        f"SELECT * FROM review_decisions WHERE source_pair = ? AND ({where}) ORDER BY decision_id",
        (source_pair, *params),
    ))


def _orientations(source_pair: str, a: str, b: str) -> list[tuple[str, str]]:
    left, right = SOURCE_PAIRS.get(source_pair, ("origin", "dest"))
    return [(a, b), (b, a)] if left == right and a != b else [(a, b)]


def current_decision(db: sqlite_utils.Database, source_pair: str, origin_key: str, dest_key: str) -> dict | None:
    """The decision in force for one pair (a dict of the ledger row), or None."""
    hist = decision_history(db, source_pair, origin_key, dest_key)
    if hist.empty:
        return None
    last = hist.iloc[-1].to_dict()
    return None if last["decision"] == WITHDRAWN else _py(last)


def _latest_row(db: sqlite_utils.Database, source_pair: str, origin_key: str, dest_key: str) -> dict | None:
    hist = decision_history(db, source_pair, origin_key, dest_key)
    return None if hist.empty else _py(hist.iloc[-1].to_dict())


def _py(d: Mapping[str, Any]) -> dict:
    """numpy scalars / NaN -> plain Python / None."""
    out = {}
    for k, v in d.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out


@dataclass(frozen=True)
class PairRecords:
    """The two records of a pair in one run (dicts of `records` rows), and their fingerprints."""

    left: dict
    right: dict
    left_fp: str
    right_fp: str

    @property
    def evidence_fingerprint(self) -> str:
        return pair_fingerprint(self.left_fp, self.right_fp)


def _record(db: sqlite_utils.Database, run_id: int, source: str, key: str) -> dict | None:
    cur = db.execute("SELECT * FROM records WHERE run_id = ? AND source = ? AND record_key = ?", (run_id, source, key))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row))


def record_fp(rec: Mapping[str, Any]) -> str:
    """A record's fingerprint: the stored one, else computed from its fields like the pipeline does."""
    fp = rec.get("fingerprint")
    if fp:
        return str(fp)
    frame = pd.DataFrame([{k: ("" if v is None else str(v)) for k, v in rec.items()}])
    return str(record_fingerprints(frame).iloc[0])


def pair_records(db: sqlite_utils.Database, run_id: int, source_pair: str, origin_key: str, dest_key: str) -> PairRecords | None:
    """Both records of a pair in a run, or None when either is not in the run."""
    if source_pair not in SOURCE_PAIRS:
        return None
    ls, rs = SOURCE_PAIRS[source_pair]
    left = _record(db, run_id, ls, str(origin_key))
    right = _record(db, run_id, rs, str(dest_key))
    if left is None or right is None:
        return None
    return PairRecords(left, right, record_fp(left), record_fp(right))


def _link(db: sqlite_utils.Database, run_id: int, source_pair: str, origin_key: str, dest_key: str) -> dict | None:
    if "links" not in db.table_names():
        return None
    for a, b in _orientations(source_pair, origin_key, dest_key):
        cur = db.execute(
            "SELECT * FROM links WHERE run_id = ? AND coalesce(source_pair, 'origin-dest') = ? AND origin_key = ? AND dest_key = ?",
            (run_id, source_pair, a, b),
        )
        row = cur.fetchone()
        if row is not None:
            return dict(zip([d[0] for d in cur.description], row))
    return None


@dataclass(frozen=True)
class Recorded:
    """Result of :func:`record_decision`: the decision in force and whether a row was added."""

    decision_id: int
    created: bool


def record_decision(
    db: sqlite_utils.Database,
    origin_key: str,
    dest_key: str,
    decision: str,
    reviewer: str,
    *,
    source_pair: str = "origin-dest",
    reason: str = "",
    run_id: int | None = None,
    channel: str = "cli",
    skip_if_same: bool = True,
) -> Recorded:
    """Append a reviewer's decision on a pair of the run (default: the latest run).

    Both records must be in the run (the pair itself need not be a candidate: a reviewer may
    bind a pair that blocking missed). Probability and evidence fingerprint are taken from the
    run. When ``skip_if_same`` and the decision in force already says the same (decision and
    reason, and not stale), nothing is written: repeating an import or a key press changes
    nothing.
    """
    if decision not in DECISIONS:
        raise ConfigError("review.bad_decision", value=decision, allowed=", ".join(DECISIONS))
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ConfigError("review.no_reviewer")
    if source_pair not in SOURCE_PAIRS:
        raise ConfigError("review.bad_source_pair", value=source_pair, allowed=", ".join(SOURCE_PAIRS))
    ensure_ledger(db)
    rid = resolve_run(db, run_id)
    origin_key, dest_key = str(origin_key), str(dest_key)
    reason = (reason or "").strip()
    with db.atomic():
        last = _latest_row(db, source_pair, origin_key, dest_key)
        if last is not None:  # keep the orientation the ledger already uses for this pair
            origin_key, dest_key = str(last["origin_key"]), str(last["dest_key"])
        recs = pair_records(db, rid, source_pair, origin_key, dest_key)
        if recs is None:
            raise ConfigError("review.unknown_pair", origin_key=origin_key, dest_key=dest_key, run=rid)
        link = _link(db, rid, source_pair, origin_key, dest_key)
        prob = link.get("match_probability") if link else None
        efp = recs.evidence_fingerprint
        if (
            skip_if_same and last is not None and last["decision"] == decision
            and (last.get("reason") or "") == reason and last.get("evidence_fingerprint") in (efp, None)
        ):
            return Recorded(int(last["decision_id"]), False)
        cur = db.execute(
            "INSERT INTO review_decisions (origin_key, dest_key, source_pair, decision, reason, reviewer, decided_at,"
            " run_id, match_probability, evidence_fingerprint, supersedes, channel, origin_fingerprint, dest_fingerprint)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (origin_key, dest_key, source_pair, decision, reason, reviewer, now_iso(), rid, prob, efp,
             last["decision_id"] if last else None, channel, recs.left_fp, recs.right_fp),
        )
        return Recorded(int(cur.lastrowid), True)


def undo_decision(
    db: sqlite_utils.Database,
    origin_key: str,
    dest_key: str,
    reviewer: str,
    *,
    source_pair: str = "origin-dest",
    run_id: int | None = None,
    channel: str = "web",
) -> Recorded | None:
    """Undo the pair's latest decision with a new row that supersedes it.

    The new row restores the decision the undone one had superseded, or is ``withdrawn`` (the
    pair waits again) when it superseded nothing. Returns None when there is nothing to undo.
    """
    ensure_ledger(db)
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ConfigError("review.no_reviewer")
    rid = resolve_run(db, run_id)
    origin_key, dest_key = str(origin_key), str(dest_key)
    with db.atomic():
        last = _latest_row(db, source_pair, origin_key, dest_key)
        if last is None or last["decision"] == WITHDRAWN:
            return None
        # The state before `last`: the row it superseded, as it stood then.
        prev = None
        if last.get("supersedes") is not None:
            cur = db.execute("SELECT * FROM review_decisions WHERE decision_id = ?", (last["supersedes"],))
            row = cur.fetchone()
            prev = dict(zip([d[0] for d in cur.description], row)) if row else None
        recs = pair_records(db, rid, source_pair, origin_key, dest_key)
        decision = prev["decision"] if prev else WITHDRAWN
        reason = (prev.get("reason") or "") if prev else ""
        efp = prev["evidence_fingerprint"] if prev else (recs.evidence_fingerprint if recs else None)
        ofp = prev["origin_fingerprint"] if prev else (recs.left_fp if recs else None)
        dfp = prev["dest_fingerprint"] if prev else (recs.right_fp if recs else None)
        cur = db.execute(
            "INSERT INTO review_decisions (origin_key, dest_key, source_pair, decision, reason, reviewer, decided_at,"
            " run_id, match_probability, evidence_fingerprint, supersedes, channel, origin_fingerprint, dest_fingerprint)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (last["origin_key"], last["dest_key"], source_pair, decision, reason, reviewer, now_iso(), rid,
             last.get("match_probability"), efp, last["decision_id"], channel, ofp, dfp),
        )
        return Recorded(int(cur.lastrowid), True)


def log_reveal(db: sqlite_utils.Database, run_id: int, source: str, record_keys: Iterable[str], reviewer: str, channel: str) -> int:
    """Append one reveal_log row per record whose full ID number is shown; returns the count."""
    ensure_ledger(db)
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ConfigError("review.no_reviewer")
    at = now_iso()
    rows = [(run_id, str(k), source, reviewer, at, channel) for k in record_keys]
    with db.atomic():
        db.conn.executemany(
            "INSERT INTO reveal_log (run_id, record_key, source, reviewer, revealed_at, channel) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


# ---- applying decisions to a new run ------------------------------------------------------------

_LINK_COLUMNS = ("source_pair", "origin_key", "dest_key", "match_probability", "match_weight", "decision", "evidence_json")


def canonical_pair(source_pair: str, a: str, b: str) -> tuple[str, str, str]:
    left, right = SOURCE_PAIRS.get(source_pair, ("origin", "dest"))
    if left == right and b < a:
        a, b = b, a
    return source_pair, a, b


def is_stale(dec: Mapping[str, Any], left_fp: str | None, right_fp: str | None) -> tuple[bool, list[str]]:
    """Whether a decision no longer fits the records; and which sides changed ('origin'/'dest').

    A decision without a stored fingerprint cannot go stale. A record without a fingerprint now
    counts as changed.
    """
    stored = dec.get("evidence_fingerprint")
    if not stored:
        return False, []
    if left_fp and right_fp and pair_fingerprint(left_fp, right_fp) == stored:
        return False, []
    changed = []
    ofp, dfp = dec.get("origin_fingerprint"), dec.get("dest_fingerprint")
    if ofp or dfp:
        if left_fp != ofp:
            changed.append("origin")
        if right_fp != dfp:
            changed.append("dest")
    if not changed:  # fingerprints of the sides unknown: say both may have changed
        changed = ["origin", "dest"]
    return True, changed


def apply_decisions(
    db: sqlite_utils.Database,
    links: pd.DataFrame,
    fingerprints: Mapping[tuple[str, str], str],
) -> pd.DataFrame:
    """Apply the current review decisions to a new run's scored candidate pairs.

    ``links`` has columns source_pair, origin_key, dest_key, match_probability, match_weight,
    decision ('match'|'review'|'non_match'), evidence_json; ``fingerprints`` maps
    (source, record_key) of the new run's records to their fingerprints.

    Returns the links with ``decided_by`` ('model'|'review'), ``stale`` (0/1),
    ``review_decision`` and ``review_decision_id`` added:

    - decided ``match`` -> 'match'; ``non_match`` -> 'non_match'; ``unsure`` -> 'review';
    - when either record changed since the decision -> 'review', stale=1, and evidence_json
      gains ``"stale": {"changed": [...], "decision": ..., "decision_id": ..., "run_id": ...}``;
    - decided pairs absent from ``links`` whose two records are in the new run are appended
      (match_probability / match_weight NaN): a decided match binds even if blocking missed it.
      Decisions on records that are not in the new run are left out, and so are stale
      ``non_match`` decisions on pairs the model no longer proposes.
    """
    ensure_ledger(db)
    out = links.copy()
    for c in _LINK_COLUMNS:
        if c not in out.columns:
            out[c] = None if c != "source_pair" else "origin-dest"
    out["source_pair"] = out["source_pair"].fillna("origin-dest").astype(str)
    out["origin_key"] = out["origin_key"].astype(str)
    out["dest_key"] = out["dest_key"].astype(str)
    out["decided_by"] = "model"
    out["stale"] = 0
    out["review_decision"] = None
    out["review_decision_id"] = pd.array([pd.NA] * len(out), dtype="Int64")

    current = decided_pairs(db)
    if current.empty:
        return out
    by_pair: dict[tuple[str, str, str], dict] = {}
    for rec in current.to_dict("records"):
        by_pair[canonical_pair(rec["source_pair"], str(rec["origin_key"]), str(rec["dest_key"]))] = _py(rec)

    seen: set[tuple[str, str, str]] = set()
    # Only rows with a decision need Python work: find them with one vectorised lookup.
    sp_s, ok_s, dk_s = out["source_pair"], out["origin_key"], out["dest_key"]
    flip = (sp_s.isin(["origin-origin", "dest-dest"]) & (dk_s < ok_s)).to_numpy()
    a = np.where(flip, dk_s.to_numpy(dtype=object), ok_s.to_numpy(dtype=object))
    b = np.where(flip, ok_s.to_numpy(dtype=object), dk_s.to_numpy(dtype=object))
    joined = sp_s.to_numpy(dtype=object) + "\x1f" + a + "\x1f" + b
    wanted = {"\x1f".join(k) for k in by_pair}
    hits = np.flatnonzero(pd.Series(joined).isin(wanted).to_numpy())
    cols = {c: out.columns.get_loc(c) for c in ("decision", "decided_by", "stale", "review_decision", "evidence_json")}
    rev_id = out["review_decision_id"].copy()
    for i in hits:
        sp, ok, dk = sp_s.iat[i], ok_s.iat[i], dk_s.iat[i]
        key = canonical_pair(sp, ok, dk)
        dec = by_pair[key]
        seen.add(key)
        ls, rs = SOURCE_PAIRS.get(sp, ("origin", "dest"))
        # The ledger may store the within-file pair the other way round.
        if (dec["origin_key"], dec["dest_key"]) == (ok, dk):
            lfp, rfp = fingerprints.get((ls, ok)), fingerprints.get((rs, dk))
        else:
            lfp, rfp = fingerprints.get((ls, dk)), fingerprints.get((rs, ok))
        d, st, ev = _apply_one(dec, lfp, rfp, out.iat[i, cols["evidence_json"]])
        out.iat[i, cols["decision"]] = d
        out.iat[i, cols["decided_by"]] = "review"
        out.iat[i, cols["stale"]] = st
        out.iat[i, cols["review_decision"]] = dec["decision"]
        out.iat[i, cols["evidence_json"]] = ev
        rev_id.iat[i] = dec["decision_id"]
    out["review_decision_id"] = rev_id

    extra = []
    for key, dec in by_pair.items():
        if key in seen:
            continue
        sp = dec["source_pair"]
        ls, rs = SOURCE_PAIRS.get(sp, ("origin", "dest"))
        ok, dk = str(dec["origin_key"]), str(dec["dest_key"])
        lfp, rfp = fingerprints.get((ls, ok)), fingerprints.get((rs, dk))
        if lfp is None or rfp is None:
            continue  # a record of the pair is not in this run
        d, s, ev = _apply_one(dec, lfp, rfp, None)
        if s and dec["decision"] == "non_match":
            continue  # neither the model nor the reviewer thinks they match: not worth a review
        extra.append({
            "source_pair": sp, "origin_key": ok, "dest_key": dk, "match_probability": float("nan"),
            "match_weight": float("nan"), "decision": d, "evidence_json": ev, "decided_by": "review",
            "stale": s, "review_decision": dec["decision"], "review_decision_id": dec["decision_id"],
        })
    if extra:
        add = pd.DataFrame(extra)
        add["review_decision_id"] = add["review_decision_id"].astype("Int64")
        out = pd.concat([out, add], ignore_index=True)
    return out


def _apply_one(dec: dict, lfp: str | None, rfp: str | None, evidence_json: Any) -> tuple[str, int, str]:
    try:
        ev = json.loads(evidence_json) if isinstance(evidence_json, str) and evidence_json else {}
    except json.JSONDecodeError:
        ev = {}
    if not isinstance(ev, dict):
        ev = {"model": ev}
    ev["review"] = {
        "decision_id": dec["decision_id"], "decision": dec["decision"], "reviewer": dec.get("reviewer"),
        "decided_at": dec.get("decided_at"), "run_id": dec.get("run_id"), "reason": dec.get("reason") or "",
    }
    stale, changed = is_stale(dec, lfp, rfp)
    if stale:
        ev["stale"] = {
            "changed": changed, "decision": dec["decision"], "decision_id": dec["decision_id"],
            "run_id": dec.get("run_id"), "decided_at": dec.get("decided_at"),
        }
        return "review", 1, json.dumps(ev, ensure_ascii=False)
    decision = {"match": "match", "non_match": "non_match"}.get(dec["decision"], "review")
    return decision, 0, json.dumps(ev, ensure_ascii=False)
