"""Excel round-trip for reviewers who work in Excel/WPS.

`export_xlsx` writes one row per pair to decide (Chinese headers, masked IDs unless revealed and
logged), a 判定 drop-down (是/否/不确定) and a 理由 column; every other cell is locked under sheet
protection and no cell is ever a formula (text starting with = + - @ is stored as text with a
quote prefix). A hidden 校验 column holds, per row, an HMAC of the row's locked cells under a
key kept in the report database, so `import_xlsx` can reject rows whose locked content changed.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from reconcile.errors import ConfigError, InputError
from reconcile.i18n import t
from reconcile.privacy import mask_id
from reconcile.report import resolve_run
from reconcile.review.ledger import SOURCE_PAIRS, ensure_ledger, log_reveal, pair_records, record_decision, secret_key
from reconcile.review.pairs import STALE, TO_DECIDE, UNSURE, evidence, filter_pairs, order_queue, pair_states
from reconcile.review.view import field_label, level_label

SHEET = "待审核"
HELP_SHEET = "说明"
# (column id, header). 甲 = left record (户籍地 for 户籍地—现居住地 pairs), 乙 = right record.
COLUMNS: list[tuple[str, str]] = [
    ("row_no", "序号"), ("run_id", "批次"), ("kind", "比对类型"), ("origin_key", "甲方编号"), ("dest_key", "乙方编号"),
    ("probability", "匹配概率"), ("state", "状态"),
    ("left_name", "甲方姓名"), ("right_name", "乙方姓名"), ("left_sex", "甲方性别"), ("right_sex", "乙方性别"),
    ("left_birth", "甲方出生日期"), ("right_birth", "乙方出生日期"), ("left_id", "甲方身份证号"), ("right_id", "乙方身份证号"),
    ("left_hukou", "甲方户籍地址"), ("right_hukou", "乙方户籍地址"), ("left_residence", "甲方现居住地"),
    ("right_residence", "乙方现居住地"), ("left_unit", "甲方单位"), ("right_unit", "乙方单位"),
    ("evidence", "比对依据"), ("decision", "判定"), ("reason", "理由"), ("integrity", "校验"),
]
HEADERS = [h for _, h in COLUMNS]
EDITABLE = ("decision", "reason")
LOCKED = [c for c, _ in COLUMNS if c not in EDITABLE and c != "integrity"]
KIND_LABELS = {"origin-dest": "户籍地(甲)—现居住地(乙)", "origin-origin": "户籍地内部重复", "dest-dest": "现居住地内部重复"}
KIND_CODES = {v: k for k, v in KIND_LABELS.items()}
DECISION_LABELS = {"match": "是", "non_match": "否", "unsure": "不确定"}
DECISION_VALUES = {**{v: k for k, v in DECISION_LABELS.items()}, **{k: k for k in DECISION_LABELS}}
STATE_LABELS = {"waiting": "待审", "stale": "已过期", "unsure": "不确定"}
_FORMULA_START = ("=", "+", "-", "@")
SEX_LABELS = {"M": "男", "F": "女"}


def _sign(key: bytes, values: list[str]) -> str:
    msg = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _set_text(cell, value: str) -> None:
    """Write a value as text, never as a formula (openpyxl types '=...' as a formula)."""
    cell.value = value
    cell.data_type = "s"
    cell.number_format = "@"
    if value.startswith(_FORMULA_START):
        # quotePrefix keeps Excel/WPS from turning it into a formula when the cell is edited.
        cell.quotePrefix = True


def _evidence_text(ev_json: Any) -> str:
    ev = evidence(ev_json)
    parts = []
    for name, f in (ev.get("fields") or {}).items():
        if not isinstance(f, dict):
            continue
        w = f.get("weight")
        ws = f"{w:+.1f}" if isinstance(w, (int, float)) else "–"
        parts.append(f"{field_label(name, 'zh')}:{level_label(str(f.get('level', '')), 'zh')} {ws}")
    return "；".join(parts)


@dataclass
class ExportResult:
    path: Path
    run_id: int
    count: int
    revealed: int = 0


def export_xlsx(
    db: sqlite_utils.Database,
    path: str | Path,
    *,
    run: int | None = None,
    unit: str | None = None,
    reveal_ids: bool = False,
    reviewer: str | None = None,
) -> ExportResult:
    """Write the run's pairs to decide (waiting, stale, unsure) to an xlsx file.

    With ``reveal_ids`` the full ID numbers are written and every shown record is logged in
    reveal_log (channel excel) under ``reviewer`` (default: the OS user).
    """
    ensure_ledger(db)
    rid = resolve_run(db, run)
    st = pair_states(db, rid)
    if unit:
        units = set(st.get("left_unit", [])) | set(st.get("right_unit", [])) if not st.empty else set()
        if unit not in units:
            raise ConfigError("review.unknown_unit", unit=unit, run=rid)
    todo = order_queue(filter_pairs(st, unit=unit or None, state="todo"))
    key = secret_key(db)
    reviewer = reviewer or getpass.getuser()

    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    edit_fill = PatternFill("solid", fgColor="FFF2CC")
    for j, h in enumerate(HEADERS, start=1):
        c = ws.cell(row=1, column=j)
        _set_text(c, h)
        c.font, c.fill = bold, head_fill
    shown: dict[str, set[str]] = {"origin": set(), "dest": set()}
    col_of = {cid: j for j, (cid, _) in enumerate(COLUMNS, start=1)}
    for i, row in enumerate(todo.to_dict("records"), start=1):
        sp = row["source_pair"]
        recs = pair_records(db, rid, sp, row["origin_key"], row["dest_key"])
        if recs is None:
            continue
        ls, rs = SOURCE_PAIRS[sp]
        left, right = recs.left, recs.right
        if reveal_ids:
            shown[ls].add(str(left["record_key"]))
            shown[rs].add(str(right["record_key"]))

        def idv(rec: dict) -> str:
            v = _text(rec.get("id_number")) or _text(rec.get("id_raw"))
            return v if reveal_ids else mask_id(v)

        p = row["match_probability"]
        state = STATE_LABELS.get(row["state"], row["state"])
        if row["state"] == STALE and row.get("review_decision"):
            state += f"（原判定：{DECISION_LABELS.get(row['review_decision'], row['review_decision'])}）"
        values = {
            "row_no": str(i), "run_id": str(rid), "kind": KIND_LABELS[sp],
            "origin_key": str(row["origin_key"]), "dest_key": str(row["dest_key"]),
            "probability": "" if p is None or p != p else f"{float(p) * 100:.1f}%", "state": state,
            "left_name": _text(left.get("name")), "right_name": _text(right.get("name")),
            "left_sex": SEX_LABELS.get(_text(left.get("sex")), _text(left.get("sex"))),
            "right_sex": SEX_LABELS.get(_text(right.get("sex")), _text(right.get("sex"))),
            "left_birth": _text(left.get("birth_date")), "right_birth": _text(right.get("birth_date")),
            "left_id": idv(left), "right_id": idv(right),
            "left_hukou": _text(left.get("hukou_address")), "right_hukou": _text(right.get("hukou_address")),
            "left_residence": _text(left.get("residence")), "right_residence": _text(right.get("residence")),
            "left_unit": _text(left.get("unit")), "right_unit": _text(right.get("unit")),
            "evidence": _evidence_text(row.get("evidence_json")),
            # An unsure pair comes back pre-filled: leaving it as is changes nothing on import.
            "decision": DECISION_LABELS["unsure"] if row["state"] == UNSURE else "",
            "reason": (row.get("reason") or "") if row["state"] == UNSURE else "",
        }
        values["integrity"] = _sign(key, [values[c] for c in LOCKED])
        r = i + 1
        for cid, j in col_of.items():
            c = ws.cell(row=r, column=j)
            _set_text(c, values[cid])
            if cid in EDITABLE:
                c.protection = Protection(locked=False)
                c.fill = edit_fill
    n = len(todo)
    last = ws.max_row
    dcol, rcol = get_column_letter(col_of["decision"]), get_column_letter(col_of["reason"])
    dv = DataValidation(
        type="list", formula1='"是,否,不确定"', allow_blank=True, showErrorMessage=True,
        errorTitle="判定", error="请从下拉列表选择：是 / 否 / 不确定", promptTitle="判定", prompt="是 / 否 / 不确定",
    )
    ws.add_data_validation(dv)
    if last >= 2:
        dv.add(f"{dcol}2:{dcol}{last}")
    widths = {"row_no": 6, "run_id": 6, "kind": 20, "probability": 9, "state": 16, "evidence": 48, "decision": 10, "reason": 30}
    for cid, j in col_of.items():
        ws.column_dimensions[get_column_letter(j)].width = widths.get(cid, 22 if "id" in cid or "hukou" in cid or "residence" in cid else 12)
    ws.column_dimensions[get_column_letter(col_of["integrity"])].hidden = True
    ws.freeze_panes = "H2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{max(last, 1)}"
    ws.protection.sheet = True
    # Reviewers may filter, sort and widen columns; the locked content itself stays protected.
    ws.protection.autoFilter = False
    ws.protection.sort = False
    ws.protection.formatColumns = False
    _help_sheet(wb, rid, dcol, rcol)
    out = Path(path)
    wb.save(out)
    revealed = 0
    if reveal_ids:
        for source, keys in shown.items():
            if keys:
                revealed += log_reveal(db, rid, source, sorted(keys), reviewer, "excel")
    return ExportResult(out, rid, n, revealed)


def _help_sheet(wb: Workbook, rid: int, dcol: str, rcol: str) -> None:
    hs = wb.create_sheet(HELP_SHEET)
    lines = [
        f"比对批次 {rid} 的待审核记录。每行一对记录：甲方、乙方。",
        "“户籍地(甲)—现居住地(乙)”：甲方为户籍地记录，乙方为现居住地记录；“内部重复”：甲乙为同一文件中的两条记录。",
        f"请在“判定”列（{dcol} 列）从下拉列表选择：是（同一人）/ 否（不是同一人）/ 不确定；可在“理由”列（{rcol} 列）填写理由。",
        "其他单元格已锁定，请勿修改、增删行内容；被改动的行在导入时会被拒绝。",
        "身份证号默认只显示前 6 位和后 4 位。本文件含个人信息，请妥善保管，用完删除。",
        "填写完成后运行：reconcile review import 报告.db 本文件.xlsx --reviewer 姓名",
    ]
    for i, line in enumerate(lines, start=1):
        c = hs.cell(row=i, column=1)
        _set_text(c, line)
        c.alignment = Alignment(wrap_text=True)
    hs.column_dimensions["A"].width = 110
    hs.protection.sheet = True


@dataclass
class Rejected:
    row: int
    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, lang: str | None = None) -> str:
        return t(self.key, lang=lang, **self.params)


@dataclass
class ImportResult:
    path: Path
    recorded: int = 0
    unchanged: int = 0
    blank: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def import_xlsx(db: sqlite_utils.Database, path: str | Path, reviewer: str) -> ImportResult:
    """Record the decisions filled in an exported workbook (channel excel).

    Rows whose locked cells or integrity value changed, rows naming a pair that is not in this
    database and rows with an unknown decision are rejected, each with its sheet row number;
    the other rows are recorded in one transaction. Importing the same file twice changes
    nothing (a decision equal to the one in force is not written again).
    """
    ensure_ledger(db)
    p = Path(path)
    if not p.exists():
        raise InputError("review.xlsx_unreadable", path=str(p), detail="file not found")
    try:
        wb = load_workbook(p, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged or non-xlsx file
        raise InputError("review.xlsx_unreadable", path=str(p), detail=type(exc).__name__) from None
    ws = wb[SHEET] if SHEET in wb.sheetnames else wb.worksheets[0]
    header = [_text(c.value) for c in next(ws.iter_rows(min_row=1, max_row=1), ())]
    if header[: len(HEADERS)] != HEADERS:
        raise InputError("review.xlsx_not_export", path=str(p))
    key = secret_key(db)
    res = ImportResult(p)
    idx = {cid: j for j, (cid, _) in enumerate(COLUMNS)}
    with db.atomic():
        for r, cells in enumerate(ws.iter_rows(min_row=2), start=2):
            cells = list(cells)[: len(COLUMNS)]
            cells += [None] * (len(COLUMNS) - len(cells))
            # A formula in a cell is tampering too: keep its text, it will not match the signature.
            values = {cid: (_text(cells[j].value) if cells[j] is not None else "") for cid, j in idx.items()}
            if not any(values.values()):
                continue
            reasons = _check_row(db, key, values)
            if reasons:
                res.rejected.extend(Rejected(r, k, prm) for k, prm in reasons)
                continue
            raw = values["decision"].strip()
            if not raw:
                res.blank += 1
                continue
            decision = DECISION_VALUES.get(raw)
            if decision is None:
                res.rejected.append(Rejected(r, "review.import.reason_bad_decision", {"value": raw}))
                continue
            rec = record_decision(
                db, values["origin_key"], values["dest_key"], decision, reviewer,
                source_pair=KIND_CODES[values["kind"]], reason=values["reason"], run_id=int(values["run_id"]),
                channel="excel",
            )
            if rec.created:
                res.recorded += 1
            else:
                res.unchanged += 1
    return res


def _check_row(db: sqlite_utils.Database, key: bytes, values: dict[str, str]) -> list[tuple[str, dict]]:
    reasons: list[tuple[str, dict]] = []
    sp = KIND_CODES.get(values["kind"])
    in_db = False
    if sp is not None and values["run_id"].isdigit():
        row = db.execute("SELECT status FROM runs WHERE run_id = ?", (int(values["run_id"]),)).fetchone()
        if row and row[0] == "complete":
            in_db = pair_records(db, int(values["run_id"]), sp, values["origin_key"], values["dest_key"]) is not None
    if not in_db:
        reasons.append(("review.import.reason_not_in_db", {"origin_key": values["origin_key"], "dest_key": values["dest_key"]}))
    expected = _sign(key, [values[c] for c in LOCKED])
    if not hmac.compare_digest(expected, values["integrity"]):
        reasons.append(("review.import.reason_locked", {}))
    return reasons
