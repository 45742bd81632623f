"""The verification-request ledger inside the report database.

Tables (documented in docs/report-schema.md):
- ``verification_requests``: one row per request (协查), keyed by a stable request ID;
- ``feedback_log``: every answer imported from a returned packet (audit trail).

A request ID depends only on the finding (kind + record keys), never on the run, so exporting
the same finding again gives the same ID and does not create a second request.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import sqlite_utils

REQUEST_COLUMNS: list[tuple[str, str]] = [
    ("request_id", "TEXT PRIMARY KEY"),
    ("run_id", "INTEGER"),           # run whose export first created the request
    ("last_run_id", "INTEGER"),      # newest run whose export contained it
    ("counterpart", "TEXT"),         # who must check (file grouping, --by unit|region)
    ("counterpart_unit", "TEXT"),    # the counterpart record's reporting unit ('' if none)
    ("own_unit", "TEXT"),            # the issuing side's reporting unit
    ("kind", "TEXT"),                # duplicate | untraceable | id_conflict | unregistered
    ("origin_key", "TEXT"),
    ("dest_key", "TEXT"),
    ("created_at", "TEXT"),
    ("exported_at", "TEXT"),
    ("status", "TEXT"),              # sent | answered | closed
    ("answer", "TEXT"),              # confirmed | corrected | not_found | other
    ("answer_note", "TEXT"),
    ("answered_at", "TEXT"),
    ("closed_at", "TEXT"),
    ("closed_reason", "TEXT"),
    ("packet_file", "TEXT"),
    ("integrity", "TEXT"),           # JSON list of hashes of the locked cells of every export
    ("row_json", "TEXT"),            # the locked cells as last exported (header -> text)
]

FEEDBACK_LOG_COLUMNS: list[tuple[str, str]] = [
    ("request_id", "TEXT"),
    ("imported_at", "TEXT"),
    ("file", "TEXT"),
    ("row", "INTEGER"),
    ("answer", "TEXT"),
    ("answer_note", "TEXT"),
    ("previous_answer", "TEXT"),
]

KINDS: tuple[str, ...] = ("duplicate", "untraceable", "id_conflict", "unregistered")
ANSWERS: tuple[str, ...] = ("confirmed", "corrected", "not_found", "other")


def ensure_ledger(db: sqlite_utils.Database) -> None:
    """Create (or extend) the ledger tables; columns are only ever added."""
    from reconcile.report import ensure_tables

    with db.atomic():
        ensure_tables(db, {"verification_requests": REQUEST_COLUMNS, "feedback_log": FEEDBACK_LOG_COLUMNS})
        db.execute("CREATE INDEX IF NOT EXISTS idx_vr_counterpart ON verification_requests (counterpart)")
        db.execute("CREATE INDEX IF NOT EXISTS idx_vr_status ON verification_requests (status)")
        db.execute("CREATE INDEX IF NOT EXISTS idx_feedback_log_request ON feedback_log (request_id)")


def request_id(kind: str, origin_key: str = "", dest_key: str = "") -> str:
    """Stable request ID: 'XC-' + 10 hex characters of sha256(kind|origin_key|dest_key).

    For untraceable requests pass only the origin key (the best candidate may change between
    runs); for unregistered ones only the destination key.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    digest = hashlib.sha256(f"{kind}|{origin_key}|{dest_key}".encode("utf-8")).hexdigest()
    return "XC-" + digest[:10].upper()


_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?: 00:00:00)?$")


def normalise_cell(text: str) -> str:
    """What a spreadsheet round trip may change without anyone editing: surrounding spaces,
    a date re-written as 1988/11/12, leading zeros of a digit-only cell."""
    s = (text or "").strip()
    m = _DATE.match(s)
    if m:
        return f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    if s.isdigit() and s.isascii():
        return s.lstrip("0") or "0"
    return s


def integrity_hash(values: list[str]) -> str:
    """Hash of a row's locked cells (normalised), to detect edits in a returned packet."""
    joined = "\x1f".join(normalise_cell(v) for v in values)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def load_requests(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    """All requests by ID."""
    ensure_ledger(db)
    cur = db.execute("SELECT * FROM verification_requests")
    cols = [d[0] for d in cur.description]
    return {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}


def hashes_of(req: dict[str, Any]) -> list[str]:
    try:
        return list(json.loads(req.get("integrity") or "[]"))
    except ValueError:
        return []
