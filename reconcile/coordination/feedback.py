"""Import answers from returned packets, and report feedback status per counterpart.

Import rules: rows are matched by request ID; a row whose locked cells differ from every
version we exported is rejected (with the changed columns), as is a row with an unknown
request ID or an answer outside the drop-down list. Rows whose answer and note equal what is
recorded are ignored, so importing the same file twice changes nothing. An answer that is
cleared in a returned file does not erase a recorded one (an old copy must not undo news).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from reconcile.coordination.ledger import ensure_ledger, hashes_of, integrity_hash, load_requests, normalise_cell
from reconcile.coordination.packets import ANSWER_ALIASES, ANSWER_COLUMNS, LOCKED_COLUMNS, header
from reconcile.coordination.xlsx_safe import read_cell_text
from reconcile.errors import InputError, ReportError
from reconcile.i18n import t
from reconcile.report import now_iso


@dataclass
class Rejection:
    row: int
    request_id: str
    reason: str          # rendered message (operator's language)


@dataclass
class FileImport:
    file: str
    answered: int = 0     # new or changed answers recorded
    unchanged: int = 0
    blank: int = 0        # no answer given yet
    rejected: list[Rejection] = field(default_factory=list)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], bool]:
    """Header and (row number, cells) of the request sheet of an xlsx or csv packet."""
    if not path.exists():
        raise InputError("coord.err.feedback_missing", path=str(path))
    want = header("request_id")
    if path.suffix.lower() == ".csv":
        raw = path.read_bytes()
        for enc in ("utf-8-sig", "gb18030"):   # Excel on Chinese Windows saves CSV as GBK
            try:
                text = raw.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise InputError("coord.err.feedback_unreadable", path=str(path), detail="encoding")
        rows = list(csv.reader(io.StringIO(text)))
        if not rows or want not in [read_cell_text(c, from_csv=True).strip() for c in rows[0]]:
            raise InputError("coord.err.feedback_no_sheet", path=str(path))
        head = [read_cell_text(c, from_csv=True).strip() for c in rows[0]]
        body = [(i, [read_cell_text(c, from_csv=True) for c in r]) for i, r in enumerate(rows[1:], start=2)]
        return head, body, True
    try:
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zip/xml errors: not an xlsx we can read
        raise InputError("coord.err.feedback_unreadable", path=str(path), detail=type(exc).__name__) from None
    try:
        for ws in wb.worksheets:
            it = ws.iter_rows(values_only=True)
            first = next(it, None)
            if not first:
                continue
            head = [read_cell_text(c).strip() for c in first]
            if want in head:
                body = [(i, [read_cell_text(c) for c in r]) for i, r in enumerate(it, start=2)]
                return head, body, False
    finally:
        wb.close()
    raise InputError("coord.err.feedback_no_sheet", path=str(path))


def import_feedback(db: sqlite_utils.Database, files: list[str | Path], *, now: str | None = None) -> list[FileImport]:
    """Record the answers of returned packets; returns one FileImport per file."""
    ensure_ledger(db)
    requests = load_requests(db)
    if not requests:
        raise ReportError("coord.err.feedback_no_requests")
    now = now or now_iso()
    results = []
    for f in files:
        path = Path(f)
        head, body, _is_csv = _read_rows(path)
        col = {h: i for i, h in enumerate(head) if h}
        locked_headers = [header(c) for c in LOCKED_COLUMNS]
        res = FileImport(file=path.name)
        seen: dict[str, int] = {}
        updates: list[tuple[str, dict[str, Any], int]] = []
        for rowno, cells in body:
            def cell(h: str) -> str:
                i = col.get(h)
                return cells[i] if i is not None and i < len(cells) else ""

            if not any(str(c).strip() for c in cells):
                continue
            rid = cell(header("request_id")).strip()
            if not rid:
                res.rejected.append(Rejection(rowno, "", t("coord.reject.missing_id")))
                continue
            req = requests.get(rid)
            if req is None:
                res.rejected.append(Rejection(rowno, rid, t("coord.reject.unknown_id", request_id=rid)))
                continue
            locked = [cell(h) for h in locked_headers]
            if integrity_hash(locked) not in hashes_of(req):
                try:
                    last = json.loads(req.get("row_json") or "{}")
                except ValueError:
                    last = {}
                changed = [header(c) for c, v in zip(LOCKED_COLUMNS, locked)
                           if normalise_cell(v) != normalise_cell(str(last.get(c, "")))]
                res.rejected.append(Rejection(rowno, rid, t(
                    "coord.reject.locked_changed", request_id=rid, columns="、".join(changed) or "?")))
                continue
            if rid in seen:
                res.rejected.append(Rejection(rowno, rid, t("coord.reject.duplicate_row", request_id=rid, first=seen[rid])))
                continue
            seen[rid] = rowno
            answer_text = cell(header("answer")).strip()
            note = cell(header("note")).strip()
            if not answer_text and not note:
                res.blank += 1
                continue
            if answer_text:
                code = ANSWER_ALIASES.get(answer_text) or ANSWER_ALIASES.get(answer_text.lower())
                if code is None:
                    res.rejected.append(Rejection(rowno, rid, t("coord.reject.bad_answer", answer=answer_text)))
                    continue
            else:
                code = "other"   # a note without a choice is still an answer
            if (req.get("answer") or "") == code and (req.get("answer_note") or "") == note:
                res.unchanged += 1
                continue
            updates.append((rid, {"answer": code, "answer_note": note, "prev": req.get("answer")}, rowno))
        with db.atomic():
            for rid, u, rowno in updates:
                db.execute(
                    "UPDATE verification_requests SET status = 'answered', answer = ?, answer_note = ?, answered_at = ? "
                    "WHERE request_id = ?", (u["answer"], u["answer_note"], now, rid))
                db["feedback_log"].insert({"request_id": rid, "imported_at": now, "file": path.name, "row": rowno,
                                           "answer": u["answer"], "answer_note": u["answer_note"],
                                           "previous_answer": u["prev"]})
                requests[rid].update(answer=u["answer"], answer_note=u["answer_note"], status="answered", answered_at=now)
        res.answered = len(updates)
        results.append(res)
    return results


@dataclass
class CounterpartStatus:
    counterpart: str
    sent: int
    answered: int
    open: int
    closed: int
    feedback_rate: float | None          # answered / sent
    oldest_open_days: int | None


@dataclass
class OverdueRequest:
    request_id: str
    counterpart: str
    kind: str
    created_at: str
    age_days: int
    packet_file: str


@dataclass
class FeedbackStatus:
    days: int
    rows: list[CounterpartStatus]
    total: CounterpartStatus
    overdue: list[OverdueRequest]


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        d = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def feedback_status(db: sqlite_utils.Database, *, days: int = 30, now: str | datetime | None = None,
                    column: str = "counterpart") -> FeedbackStatus:
    """Per counterpart: sent, answered, open, closed, 反馈率 = answered / sent, oldest open age.

    ``column='counterpart_unit'`` groups by the counterpart's reporting unit instead.
    """
    ensure_ledger(db)
    ref = now if isinstance(now, datetime) else (_parse(now) if now else datetime.now(timezone.utc).astimezone())
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in load_requests(db).values():
        groups.setdefault(str(r.get(column) or ""), []).append(r)

    def summarise(name: str, reqs: list[dict[str, Any]]) -> CounterpartStatus:
        answered = sum(1 for r in reqs if r.get("answer"))
        opened = [r for r in reqs if r.get("status") == "sent" and not r.get("answer")]
        closed = sum(1 for r in reqs if r.get("status") == "closed" and not r.get("answer"))
        ages = [(ref - c).total_seconds() / 86400 for c in (_parse(r.get("created_at")) for r in opened) if c]
        return CounterpartStatus(name, len(reqs), answered, len(opened), closed,
                                 answered / len(reqs) if reqs else None, int(max(ages)) if ages else None)

    rows = [summarise(k, v) for k, v in sorted(groups.items())]
    total = summarise(t("coord.msg.total"), [r for v in groups.values() for r in v])
    overdue = []
    for v in groups.values():
        for r in v:
            created = _parse(r.get("created_at"))
            if r.get("status") == "sent" and not r.get("answer") and created is not None:
                age = (ref - created).total_seconds() / 86400
                if age > days:
                    overdue.append(OverdueRequest(r["request_id"], str(r.get("counterpart") or ""), r.get("kind") or "",
                                                  r.get("created_at") or "", int(age), r.get("packet_file") or ""))
    overdue.sort(key=lambda o: (-o.age_days, o.counterpart, o.request_id))
    return FeedbackStatus(days, rows, total, overdue)


def status_tables(st: FeedbackStatus, lang: str | None = None):
    """Rich tables for the terminal: per counterpart, then the overdue requests."""
    from rich.table import Table

    tab = Table(title=t("coord.msg.status_title", lang=lang, days=st.days))
    for key in ("counterpart", "sent", "answered", "open", "closed", "rate", "oldest"):
        tab.add_column(t(f"coord.status.{key}", lang=lang), justify="left" if key == "counterpart" else "right")

    def add(r: CounterpartStatus, style: str | None = None) -> None:
        tab.add_row(r.counterpart, str(r.sent), str(r.answered), str(r.open), str(r.closed),
                    "" if r.feedback_rate is None else f"{r.feedback_rate * 100:.1f}%",
                    "" if r.oldest_open_days is None else str(r.oldest_open_days), style=style)

    for r in st.rows:
        add(r)
    add(st.total, "bold")
    over = Table(title=t("coord.msg.overdue_title", lang=lang, count=len(st.overdue)))
    for key in ("request_id", "counterpart", "kind", "age", "file"):
        over.add_column(t(f"coord.status.{key}", lang=lang), justify="right" if key == "age" else "left")
    for o in st.overdue:
        over.add_row(o.request_id, o.counterpart, t(f"coord.kind.{o.kind}", lang=lang) if o.kind else "", str(o.age_days),
                     o.packet_file)
    return tab, over


def status_json(st: FeedbackStatus) -> dict[str, Any]:
    """The status as plain data (for --json)."""
    from dataclasses import asdict

    return {"days": st.days, "counterparts": [asdict(r) for r in st.rows], "total": asdict(st.total),
            "overdue": [asdict(o) for o in st.overdue]}
