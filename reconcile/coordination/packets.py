"""Export verification packets (协查单) and the police roster (派出所核对名单).

One file per (own reporting unit, counterpart). Each row is one request with a stable request
ID; the clerk answers in the drop-down column 核查结果 and may add a 备注. Every other cell is
locked; a hash of the locked cells is kept in the ledger so a returned file that was edited
outside the answer columns is caught at import.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import sqlite_utils
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.utils import get_column_letter

from reconcile.coordination.findings import Finding, build_findings, police_roster
from reconcile.coordination.ledger import ensure_ledger, hashes_of, integrity_hash, load_requests
from reconcile.coordination.xlsx_safe import fit_columns, set_text, write_csv, write_table
from reconcile.errors import ConfigError, InputError
from reconcile.i18n import t
from reconcile.privacy import mask_id
from reconcile.report import now_iso, resolve_run

PACKET_LANG = "zh"  # packets go to Chinese clerks whatever the operator's --lang

# Column keys of a packet row, in order; headers come from the catalogue (coord.col.*).
ORIGIN_FIELDS = ("record_key", "name", "sex", "birth_date", "id", "hukou_address", "residence", "flow_place", "unit")
LOCKED_COLUMNS: tuple[str, ...] = (
    ("request_id", "kind", "reason", "probability")
    + tuple(f"o_{f}" for f in ORIGIN_FIELDS)
    + tuple(f"d_{f}" for f in ORIGIN_FIELDS)
)
ANSWER_COLUMNS: tuple[str, ...] = ("answer", "note")
ALL_COLUMNS: tuple[str, ...] = LOCKED_COLUMNS + ANSWER_COLUMNS

# Answer codes <-> the drop-down texts (and accepted English spellings on import).
ANSWER_CODES: dict[str, str] = {"confirmed": "属实", "corrected": "已更正", "not_found": "查无此人", "other": "其他"}
ANSWER_ALIASES: dict[str, str] = {
    **{v: k for k, v in ANSWER_CODES.items()},
    "confirmed": "confirmed", "corrected": "corrected", "not found": "not_found", "not_found": "not_found", "other": "other",
}

ROSTER_COLUMNS: tuple[str, ...] = (
    "group", "roster_kind", "id", "name", "sex", "birth_date", "source", "record_key", "hukou_address", "residence", "unit",
    "police_result", "note",
)

ROSTER_WHOLE_GROUP_MAX = 20
_BAD_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def header(col: str, lang: str = PACKET_LANG) -> str:
    return t(f"coord.col.{col}", lang=lang)


def _sex(v: Any) -> str:
    return {"M": "男", "F": "女"}.get(str(v or ""), str(v or ""))


def _id_text(rec: dict[str, Any] | None, reveal: bool) -> str:
    if not rec:
        return ""
    full = str(rec.get("id_number") or "") or str(rec.get("id_raw") or "").strip()
    return full if reveal else mask_id(full)


def _record_cells(rec: dict[str, Any] | None, reveal: bool) -> list[str]:
    if not rec:
        return [""] * len(ORIGIN_FIELDS)
    return [
        str(rec.get("record_key") or ""), str(rec.get("name_raw") or rec.get("name") or ""), _sex(rec.get("sex")),
        str(rec.get("birth_date") or ""), _id_text(rec, reveal), str(rec.get("hukou_address") or ""),
        str(rec.get("residence") or ""), str(rec.get("flow_place") or ""), str(rec.get("unit") or ""),
    ]


def locked_cells(f: Finding, reveal: bool) -> list[str]:
    """The locked cells of a finding's packet row, as text."""
    reason = t(f"coord.reason.{f.kind}", lang=PACKET_LANG)
    if f.kind == "untraceable" and f.dest:
        reason += t("coord.reason.untraceable_candidate", lang=PACKET_LANG)
    prob = "" if f.probability is None else f"{f.probability * 100:.1f}%"
    return [f.request_id, t(f"coord.kind.{f.kind}", lang=PACKET_LANG), reason, prob] + _record_cells(
        f.origin, reveal) + _record_cells(f.dest, reveal)


def safe_filename(text: str) -> str:
    """A file-name-safe version of a unit name (Windows rules), never empty."""
    s = _BAD_FILENAME.sub("_", text).strip(" .")
    return (s or "_")[:80]


@dataclass
class ExportResult:
    run_id: int
    files: list[Path] = field(default_factory=list)
    requests: int = 0
    new: int = 0
    existing: int = 0
    closed: int = 0
    roster_rows: int = 0
    per_file: dict[str, int] = field(default_factory=dict)


def _unique_path(out_dir: Path, stem: str, ext: str, used: set[str]) -> Path:
    name = f"{stem}.{ext}"
    i = 2
    while name.lower() in used:
        name = f"{stem}_{i}.{ext}"
        i += 1
    used.add(name.lower())
    return out_dir / name


def export_packets(
    db: sqlite_utils.Database,
    out_dir: str | Path,
    *,
    run: int | None = None,
    fmt: str = "xlsx",
    by: str = "unit",
    reveal_ids: bool = False,
    police: bool = False,
    now: str | None = None,
) -> ExportResult:
    """Write one packet per (own unit, counterpart) for a run and record the requests.

    Re-exporting the same finding keeps its request ID, status and answer; requests still open
    whose finding no longer appears in this (newer) run are closed as resolved.
    """
    if fmt not in ("xlsx", "csv"):
        raise ConfigError("coord.err.bad_format", fmt=fmt)
    if by not in ("unit", "region"):
        raise ConfigError("coord.err.bad_by", by=by)
    run_id = resolve_run(db, run)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("coord.err.out_not_dir", path=str(out))
    out.mkdir(parents=True, exist_ok=True)
    now = now or now_iso()
    ensure_ledger(db)
    findings = build_findings(db, run_id, by)
    existing = load_requests(db)
    run_row = db.execute("SELECT finished_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    res = ExportResult(run_id=run_id)

    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.own_unit, f.counterpart), []).append(f)

    used: set[str] = set()
    db_rows: list[dict[str, Any]] = []
    for (own, cp), items in sorted(groups.items()):
        stem = t("coord.file_stem", lang=PACKET_LANG, own=safe_filename(own), counterpart=safe_filename(cp))
        path = _unique_path(out, stem, fmt, used)
        rows = []
        for f in items:
            locked = locked_cells(f, reveal_ids)
            prev = existing.get(f.request_id)
            answer = ANSWER_CODES.get(str(prev.get("answer") or ""), "") if prev else ""
            note = str(prev.get("answer_note") or "") if prev else ""
            rows.append(locked + [answer, note])
            h = integrity_hash(locked)
            hashes = hashes_of(prev) if prev else []
            if h not in hashes:
                hashes.append(h)
            rec = {
                "request_id": f.request_id, "last_run_id": run_id, "counterpart": cp,
                "counterpart_unit": f.counterpart_unit, "own_unit": own, "kind": f.kind,
                "origin_key": f.origin_key, "dest_key": f.dest_key, "exported_at": now,
                "packet_file": path.name, "integrity": json.dumps(hashes),
                "row_json": json.dumps(dict(zip(LOCKED_COLUMNS, locked)), ensure_ascii=False),
            }
            if prev is None:
                rec.update({"run_id": run_id, "created_at": now, "status": "sent"})
                res.new += 1
            else:
                res.existing += 1
                if prev.get("status") == "closed" and not prev.get("answer"):
                    rec.update({"status": "sent", "closed_at": None, "closed_reason": None})  # finding is back
                if prev.get("last_run_id") and int(prev["last_run_id"]) > run_id:
                    rec["last_run_id"] = int(prev["last_run_id"])  # exporting an older run never rewinds
            db_rows.append(rec)
        if fmt == "xlsx":
            _write_packet_xlsx(path, own, cp, items, rows, run_id, run_row[0] if run_row else "", now, reveal_ids)
        else:
            write_csv(path, [header(c) for c in ALL_COLUMNS], rows)
        res.files.append(path)
        res.per_file[path.name] = len(rows)
        res.requests += len(rows)

    current = {r["request_id"] for r in db_rows}
    with db.atomic():
        # Upsert per key set: sqlite-utils would write NULL into a column a row does not carry.
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in db_rows:
            by_keys.setdefault(tuple(sorted(r)), []).append(r)
        for batch in by_keys.values():
            db["verification_requests"].upsert_all(batch, pk="request_id", alter=False)
        # Open requests of older runs whose finding is gone: resolved upstream, close them.
        for rid, prev in existing.items():
            if rid in current or prev.get("status") != "sent":
                continue
            if prev.get("last_run_id") is not None and int(prev["last_run_id"]) < run_id:
                db.execute(
                    "UPDATE verification_requests SET status = 'closed', closed_at = ?, closed_reason = ? WHERE request_id = ?",
                    (now, f"not_in_run:{run_id}", rid),
                )
                res.closed += 1
        if reveal_ids:
            log_event(db, run_id, {"event": "reveal_ids", "command": "export", "at": now, "out": str(out),
                                   "files": len(res.files) + (1 if police else 0)})

    if police:
        roster = police_roster(db, run_id)
        res.roster_rows = len(roster)
        for path in _write_roster(roster, out, fmt, reveal_ids, run_id, now, used):
            res.files.append(path)
    return res


def log_event(db: sqlite_utils.Database, run_id: int, event: dict[str, Any]) -> None:
    """Append an audit event to runs.log_json (a JSON list)."""
    row = db.execute("SELECT log_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    try:
        log = json.loads(row[0]) if row and row[0] else []
    except ValueError:
        log = []
    if isinstance(log, dict):
        log = [log]
    log.append(event)
    db.execute("UPDATE runs SET log_json = ? WHERE run_id = ?", (json.dumps(log, ensure_ascii=False), run_id))


def _cover(ws, lines: Iterable[tuple[str, str]]) -> None:
    ws.title = t("coord.sheet.cover", lang=PACKET_LANG)
    rows = list(lines)
    for i, (k, v) in enumerate(rows, start=1):
        c = set_text(ws, i, 1, k)
        c.font = Font(bold=True)
        c2 = set_text(ws, i, 2, v)
        c2.alignment = Alignment(wrap_text=True, vertical="top")
    fit_columns(ws, rows, maximum=90)
    ws.protection.sheet = True


def _write_packet_xlsx(path: Path, own: str, cp: str, items: list[Finding], rows: list[list[str]],
                       run_id: int, run_finished: str, now: str, reveal: bool) -> None:
    L = PACKET_LANG
    wb = Workbook()
    counts: dict[str, int] = {}
    for f in items:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    kinds = "；".join(f"{t('coord.kind.' + k, lang=L)} {n}" for k, n in counts.items())
    _cover(wb.active, [
        (t("coord.cover.title", lang=L), t("coord.cover.title_text", lang=L, own=own, counterpart=cp)),
        (t("coord.cover.from", lang=L), own),
        (t("coord.cover.to", lang=L), cp),
        (t("coord.cover.run", lang=L), f"{run_id}（{run_finished}）"),
        (t("coord.cover.exported", lang=L), now),
        (t("coord.cover.count", lang=L), f"{len(rows)}（{kinds}）"),
        (t("coord.cover.ids", lang=L), t("coord.cover.ids_full" if reveal else "coord.cover.ids_masked", lang=L)),
        (t("coord.cover.how", lang=L), t("coord.cover.how_text", lang=L)),
        (t("coord.cover.deadline", lang=L), t("coord.cover.deadline_text", lang=L)),
    ])
    ws = wb.create_sheet(t("coord.sheet.requests", lang=L))
    answer_idx = [ALL_COLUMNS.index(c) for c in ANSWER_COLUMNS]
    write_table(ws, [header(c) for c in ALL_COLUMNS], rows, unlocked_columns=answer_idx)
    n = len(rows)
    letter = get_column_letter(ALL_COLUMNS.index("answer") + 1)
    dv = DataValidation(type="list", formula1='"' + ",".join(ANSWER_CODES.values()) + '"', allow_blank=True,
                        showErrorMessage=True, errorTitle=t("coord.dv.title", lang=L), error=t("coord.dv.error", lang=L),
                        promptTitle=t("coord.dv.title", lang=L), prompt=t("coord.dv.prompt", lang=L), showInputMessage=True)
    dv.add(f"{letter}2:{letter}{max(n, 1) + 1}")
    ws.add_data_validation(dv)
    ws.auto_filter.ref = f"A1:{get_column_letter(len(ALL_COLUMNS))}{n + 1}"
    ws.protection.sheet = True
    ws.protection.formatColumns = False   # clerks may widen columns
    ws.protection.formatRows = False
    ws.protection.autoFilter = False
    wb.active = 1
    wb.save(path)


def _roster_rows(roster, reveal: bool) -> list[list[str]]:
    rows = []
    for r in roster.to_dict("records"):
        idn = str(r.get("id_number") or "")
        rows.append([
            str(r.get("group", "")), t(f"coord.roster_kind.{r['kind']}", lang=PACKET_LANG), idn if reveal else mask_id(idn),
            str(r.get("name_raw") or r.get("name") or ""), _sex(r.get("sex")), str(r.get("birth_date") or ""),
            t(f"coord.source.{r['source']}", lang=PACKET_LANG), str(r.get("record_key") or ""),
            str(r.get("hukou_address") or ""), str(r.get("residence") or ""), str(r.get("unit") or ""), "", "",
        ])
    return rows


def _write_roster(roster, out: Path, fmt: str, reveal: bool, run_id: int, now: str, used: set[str]) -> list[Path]:
    if roster is None or not len(roster):
        return []
    roster = roster.copy()
    roster["unit"] = roster["unit"].fillna("").astype(str).replace("", "未填单位")
    groups_by_unit: dict[str, set[str]] = {}
    for r in roster.to_dict("records"):
        groups_by_unit.setdefault(r["unit"], set()).add(str(r["group"]))
    paths = []
    headers = [t(f"coord.roster.{c}", lang=PACKET_LANG) for c in ROSTER_COLUMNS]
    size = roster.groupby(roster["group"].astype(str))["record_key"].transform("size")
    for unit in sorted(groups_by_unit):
        # The whole group, even members in other townships: the police compare them side by side.
        # A huge group (a placeholder number) is listed only with the township's own members.
        in_group = roster["group"].astype(str).isin(groups_by_unit[unit])
        keep = in_group & ((size <= ROSTER_WHOLE_GROUP_MAX) | (roster["unit"] == unit))
        sub = roster[keep].sort_values(["group", "source", "record_key"])
        rows = _roster_rows(sub, reveal)
        stem = t("coord.roster_stem", lang=PACKET_LANG, unit=safe_filename(unit))
        path = _unique_path(out, stem, fmt, used)
        if fmt == "csv":
            write_csv(path, headers, rows)
        else:
            wb = Workbook()
            _cover(wb.active, [
                (t("coord.cover.title", lang=PACKET_LANG), t("coord.roster.title", lang=PACKET_LANG, unit=unit)),
                (t("coord.cover.run", lang=PACKET_LANG), str(run_id)),
                (t("coord.cover.exported", lang=PACKET_LANG), now),
                (t("coord.cover.count", lang=PACKET_LANG), str(len(rows))),
                (t("coord.cover.ids", lang=PACKET_LANG),
                 t("coord.cover.ids_full" if reveal else "coord.cover.ids_masked", lang=PACKET_LANG)),
                (t("coord.cover.how", lang=PACKET_LANG), t("coord.roster.how", lang=PACKET_LANG)),
            ])
            ws = wb.create_sheet(t("coord.sheet.roster", lang=PACKET_LANG))
            write_table(ws, headers, rows, unlocked_columns=[len(ROSTER_COLUMNS) - 2, len(ROSTER_COLUMNS) - 1])
            ws.protection.sheet = True
            ws.protection.formatColumns = False
            wb.active = 1
            wb.save(path)
        paths.append(path)
    return paths
