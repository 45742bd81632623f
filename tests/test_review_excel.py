"""Excel round-trip: export (Chinese headers, masked IDs, drop-down, locked cells, no formulas,
hidden integrity column) and import (tampered rows, pairs not in the database, double import)."""
from __future__ import annotations

import sqlite3
import zipfile

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from cli import app
from reconcile.errors import ConfigError, InputError
from reconcile.report import open_report
from reconcile.review.excel import HEADERS, export_xlsx, import_xlsx
from reconcile.review.ledger import decided_pairs, record_decision
from review_testdata import build_report

runner = CliRunner()
FORMULA_NAME = '=HYPERLINK("http://x","y")'


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "report.db"
    build_report(path)
    d = open_report(path, create=False)
    yield d
    d.conn.close()


def _col(name: str) -> int:
    return HEADERS.index(name) + 1


def _rows(ws):
    """{(甲方编号, 乙方编号): sheet row number}"""
    return {(ws.cell(r, _col("甲方编号")).value, ws.cell(r, _col("乙方编号")).value): r for r in range(2, ws.max_row + 1)}


def test_export_layout_masking_locking(db, tmp_path):
    record_decision(db, "H001", "D101", "unsure", "李娟", reason="待电话核实")
    record_decision(db, "H003", "D103", "match", "李娟")
    out = tmp_path / "待审核.xlsx"
    res = export_xlsx(db, out)
    # to decide: 6 waiting review pairs + 1 unsure; not the decided one, not the model match.
    assert res.count == 6
    wb = load_workbook(out)
    ws = wb["待审核"]
    assert [c.value for c in ws[1]] == HEADERS
    rows = _rows(ws)
    # Most uncertain first; the decided pair (H003) and the model match (H004) are not exported.
    assert list(rows) == [("H001", "D101"), ("H006", "D106"), ("H005", "D105"), ("D108", "D109"), ("H007", "D107"), ("H002", "D102")]
    r = rows[("H002", "D102")]
    assert ws.cell(r, _col("甲方身份证号")).value == "431028********2046"
    assert ws.cell(r, _col("甲方性别")).value == "女"
    assert "公民身份号码:一位之差或相邻颠倒 +6.1" in ws.cell(r, _col("比对依据")).value
    assert "姓名:完全相同 +4.2" in ws.cell(r, _col("比对依据")).value
    # The unsure pair comes pre-filled so leaving it alone changes nothing.
    r1 = rows[("H001", "D101")]
    assert (ws.cell(r1, _col("判定")).value, ws.cell(r1, _col("理由")).value) == ("不确定", "待电话核实")
    # Protection: only 判定 and 理由 are editable; 校验 is hidden.
    assert ws.protection.sheet is True
    for name in HEADERS:
        locked = ws.cell(r, _col(name)).protection.locked
        assert locked is (name not in ("判定", "理由")), name
    integrity_letter = ws.cell(1, _col("校验")).column_letter
    assert ws.column_dimensions[integrity_letter].hidden
    dvs = ws.data_validations.dataValidation
    assert len(dvs) == 1 and dvs[0].formula1 == '"是,否,不确定"' and dvs[0].type == "list"
    assert str(dvs[0].sqref) == f"{ws.cell(2, _col('判定')).coordinate}:{ws.cell(ws.max_row, _col('判定')).coordinate}"
    assert "说明" in wb.sheetnames
    assert "431028198511022046" not in _all_text(out)


def _all_text(path) -> str:
    with zipfile.ZipFile(path) as z:
        return "".join(z.read(n).decode("utf-8", "replace") for n in z.namelist() if n.endswith(".xml"))


def test_formula_looking_name_stays_text(db, tmp_path):
    out = tmp_path / "review.xlsx"
    export_xlsx(db, out)
    with zipfile.ZipFile(out) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "<f>" not in sheet and "<f " not in sheet   # no formula anywhere
    wb = load_workbook(out)
    ws = wb["待审核"]
    r = _rows(ws)[("H007", "D107")]
    cell = ws.cell(r, _col("甲方姓名"))
    assert cell.value == FORMULA_NAME and cell.data_type == "s"
    assert cell.quotePrefix
    # Fill the row and import it: the name is still the same text in the database.
    ws.cell(r, _col("判定")).value = "是"
    wb.save(out)
    res = import_xlsx(db, out, "李娟")
    assert (res.recorded, res.rejected) == (1, [])
    assert db.execute("SELECT name FROM records WHERE record_key = 'H007'").fetchone()[0] == FORMULA_NAME


def test_import_records_rejects_and_is_idempotent(db, tmp_path):
    out = tmp_path / "review.xlsx"
    export_xlsx(db, out)
    wb = load_workbook(out)
    ws = wb["待审核"]
    rows = _rows(ws)
    ws.cell(rows[("H005", "D105")], _col("判定")).value = "是"
    ws.cell(rows[("H005", "D105")], _col("理由")).value = "维吾尔族姓名，点号缺失"
    ws.cell(rows[("H006", "D106")], _col("判定")).value = "否"
    ws.cell(rows[("D108", "D109")], _col("判定")).value = "不确定"
    # Tampering: a locked name changed, an integrity value changed, a key pointing elsewhere,
    # and a decision outside the list.
    tampered_name = rows[("H002", "D102")]
    ws.cell(tampered_name, _col("乙方姓名")).value = "王芳芳"
    ws.cell(tampered_name, _col("判定")).value = "是"
    tampered_sig = rows[("H001", "D101")]
    ws.cell(tampered_sig, _col("校验")).value = "0" * 32
    ws.cell(tampered_sig, _col("判定")).value = "是"
    foreign = rows[("H007", "D107")]
    ws.cell(foreign, _col("乙方编号")).value = "D999"
    ws.cell(foreign, _col("判定")).value = "是"
    bad_value = rows[("H003", "D103")]
    ws.cell(bad_value, _col("判定")).value = "同一人"
    wb.save(out)

    res = import_xlsx(db, out, "李娟")
    assert (res.recorded, res.unchanged, res.blank) == (3, 0, 0)
    rejected = {(r.row, r.key) for r in res.rejected}
    assert rejected == {
        (tampered_name, "review.import.reason_locked"),
        (tampered_sig, "review.import.reason_locked"),
        (foreign, "review.import.reason_not_in_db"),
        (foreign, "review.import.reason_locked"),
        (bad_value, "review.import.reason_bad_decision"),
    }
    cur = decided_pairs(db).set_index(["origin_key", "dest_key"])
    assert cur.loc[("H005", "D105"), ["decision", "reason", "channel", "reviewer"]].tolist() == [
        "match", "维吾尔族姓名，点号缺失", "excel", "李娟"]
    assert cur.loc[("H006", "D106"), "decision"] == "non_match"
    assert cur.loc[("D108", "D109"), ["decision", "source_pair"]].tolist() == ["unsure", "dest-dest"]
    assert ("H002", "D102") not in cur.index and ("H001", "D101") not in cur.index

    before = db.execute("SELECT count(*) FROM review_decisions").fetchone()[0]
    again = import_xlsx(db, out, "王强")
    assert (again.recorded, again.unchanged) == (0, 3)
    assert db.execute("SELECT count(*) FROM review_decisions").fetchone()[0] == before == 3


def test_workbook_of_another_database_is_rejected(tmp_path):
    """Rows of a workbook exported from another report: pairs unknown here, signatures invalid."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    build_report(a)
    build_report(b)
    da, dbb = open_report(a, create=False), open_report(b, create=False)
    out = tmp_path / "a.xlsx"
    export_xlsx(da, out)
    wb = load_workbook(out)
    ws = wb["待审核"]
    rows = _rows(ws)
    ws.cell(rows[("H006", "D106")], _col("判定")).value = "否"
    ws.cell(rows[("H005", "D105")], _col("判定")).value = "是"
    ws.cell(rows[("H005", "D105")], _col("甲方编号")).value = "H404"
    wb.save(out)
    res = import_xlsx(dbb, out, "李娟")
    assert res.recorded == 0
    got = {(x.row, x.key) for x in res.rejected}
    # b holds the same records, but under its own key every signature of a's workbook fails.
    assert (rows[("H006", "D106")], "review.import.reason_locked") in got
    assert (rows[("H005", "D105")], "review.import.reason_not_in_db") in got
    assert "H404" in [x for x in res.rejected if x.key == "review.import.reason_not_in_db"][0].render("en")
    assert dbb.execute("SELECT count(*) FROM review_decisions").fetchone()[0] == 0
    da.conn.close()
    dbb.conn.close()


def test_reveal_ids_is_logged(db, tmp_path):
    out = tmp_path / "full.xlsx"
    res = export_xlsx(db, out, reveal_ids=True, reviewer="李娟", unit="城关镇")
    ws = load_workbook(out)["待审核"]
    rows = _rows(ws)
    assert set(rows) == {("H001", "D101"), ("H003", "D103"), ("H005", "D105")}
    assert ws.cell(rows[("H001", "D101")], _col("甲方身份证号")).value == "431028199003071233"
    log = db.execute("SELECT source, record_key, reviewer, channel FROM reveal_log ORDER BY source, record_key").fetchall()
    assert log == [("dest", "D101", "李娟", "excel"), ("dest", "D103", "李娟", "excel"), ("dest", "D105", "李娟", "excel"),
                   ("origin", "H001", "李娟", "excel"), ("origin", "H003", "李娟", "excel"), ("origin", "H005", "李娟", "excel")]
    assert res.revealed == 6
    with pytest.raises(ConfigError):
        export_xlsx(db, tmp_path / "x.xlsx", unit="不存在镇")


def test_import_rejects_other_files(db, tmp_path):
    other = tmp_path / "other.xlsx"
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["姓名", "身份证号"])
    wb.save(other)
    with pytest.raises(InputError) as e:
        import_xlsx(db, other, "李娟")
    assert e.value.key == "review.xlsx_not_export"
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError) as e:
        import_xlsx(db, junk, "李娟")
    assert e.value.key == "review.xlsx_unreadable"


def test_cli_export_import_exit_codes(tmp_path):
    path = tmp_path / "比对.db"
    build_report(path)
    out = tmp_path / "待审核.xlsx"
    r = runner.invoke(app, ["--lang", "zh", "review", "export", str(path), "--xlsx", str(out)])
    assert r.exit_code == 0, r.output
    assert "已将 7 对待判定记录写入" in r.stdout and "已遮蔽" in r.stdout
    wb = load_workbook(out)
    ws = wb["待审核"]
    rows = _rows(ws)
    ws.cell(rows[("H005", "D105")], _col("判定")).value = "是"
    ws.cell(rows[("H006", "D106")], _col("甲方姓名")).value = "刘洋洋"
    ws.cell(rows[("H006", "D106")], _col("判定")).value = "否"
    wb.save(out)
    r = runner.invoke(app, ["--lang", "en", "review", "import", str(path), str(out), "--reviewer", "李娟"])
    assert r.exit_code == 4
    assert "1 decision(s) recorded" in r.stdout
    assert f"row {rows[('H006', 'D106')]}: locked cells or the integrity value were changed" in r.stderr
    r = runner.invoke(app, ["--lang", "zh", "review", "import", str(path), str(out), "--reviewer", "李娟"])
    assert r.exit_code == 4
    assert "记录判定 0 条，未变化 1 条" in r.stdout
    assert f"第 {rows[('H006', 'D106')]} 行：锁定单元格或校验值被改动" in r.stderr
    con = sqlite3.connect(path)
    assert con.execute("SELECT origin_key, decision, channel FROM review_decisions").fetchall() == [("H005", "match", "excel")]
    con.close()
    r = runner.invoke(app, ["review", "export", str(path), "--xlsx", str(out), "--unit", "不存在镇"])
    assert r.exit_code == 2
