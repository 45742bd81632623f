"""`reconcile feedback import|status`: answers from returned packets, tamper rejection, 反馈率."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from cli import app
from reconcile.coordination import export_packets, feedback_status, import_feedback, request_id
from reconcile.coordination.packets import ALL_COLUMNS
from reconcile.errors import InputError, ReportError
from reconcile.i18n import set_lang
from tests._coord_data import build_db

ANS = ALL_COLUMNS.index("answer") + 1
NOTE = ALL_COLUMNS.index("note") + 1
NAME = ALL_COLUMNS.index("o_name") + 1


@pytest.fixture(autouse=True)
def _english():
    set_lang("en")
    yield
    set_lang(None)


@pytest.fixture()
def exported(tmp_path):
    db = build_db(tmp_path / "r.db")
    res = export_packets(db, tmp_path / "p", now="2025-06-01T09:00:00+08:00")
    return db, res, tmp_path / "p"


def _fill(src: Path, dst: Path, answers: dict[int, tuple[str, str]], edits: dict[tuple[int, int], str] = {}) -> None:
    """What a clerk does: choose answers (row -> (answer, note)), maybe (wrongly) edit other cells."""
    wb = load_workbook(src)
    ws = wb["协查清单"]
    for row, (a, n) in answers.items():
        ws.cell(row, ANS).value = a or None
        ws.cell(row, NOTE).value = n or None
    for (row, col), v in edits.items():
        ws.cell(row, col).value = v
    wb.save(dst)


def _table(db) -> list[tuple]:
    return db.execute("SELECT * FROM verification_requests ORDER BY request_id").fetchall()


def test_answers_recorded_and_second_import_changes_nothing(exported, tmp_path):
    db, res, folder = exported
    src = folder / "协查单_龙海镇_致_虎门镇.xlsx"
    rids = [r[0] for r in load_workbook(src)["协查清单"].iter_rows(min_row=2, values_only=True)]
    _fill(src, tmp_path / "back.xlsx", {2: ("属实", ""), 3: ("已更正", "已改正为 431028********0071"), 4: ("", "")})
    [r] = import_feedback(db, [tmp_path / "back.xlsx"], now="2025-06-10T09:00:00+08:00")
    assert (r.answered, r.unchanged, r.blank, r.rejected) == (2, 0, len(rids) - 2, [])
    got = {k: (s, a, n) for k, s, a, n in db.execute(
        "SELECT request_id, status, answer, answer_note FROM verification_requests WHERE request_id IN (?, ?)", rids[:2])}
    assert got[rids[0]] == ("answered", "confirmed", "")
    assert got[rids[1]] == ("answered", "corrected", "已改正为 431028********0071")
    before, log_before = _table(db), db.execute("SELECT count(*) FROM feedback_log").fetchone()[0]
    [again] = import_feedback(db, [tmp_path / "back.xlsx"], now="2025-06-11T09:00:00+08:00")
    assert (again.answered, again.unchanged) == (0, 2)
    assert _table(db) == before
    assert db.execute("SELECT count(*) FROM feedback_log").fetchone()[0] == log_before == 2


def test_changed_locked_cells_unknown_ids_and_bad_answers_rejected_with_rows(exported, tmp_path):
    db, res, folder = exported
    src = folder / "协查单_龙海镇_致_虎门镇.xlsx"
    _fill(src, tmp_path / "back.xlsx",
          {2: ("属实", ""), 3: ("查无此人", ""), 4: ("大概是", ""), 5: ("属实", "")},
          {(3, NAME): "李建国国", (5, 1): "XC-FFFFFFFFFF"})
    [r] = import_feedback(db, [tmp_path / "back.xlsx"])
    rejected = {x.row: x.reason for x in r.rejected}
    assert set(rejected) == {3, 4, 5}
    assert "locked cells changed" in rejected[3] and "户籍地·姓名" in rejected[3]
    assert "not one of" in rejected[4]
    assert "unknown request ID XC-FFFFFFFFFF" in rejected[5]
    assert r.answered == 1          # row 2 is still recorded
    answered = [a for (a,) in db.execute("SELECT answer FROM verification_requests WHERE answer IS NOT NULL")]
    assert answered == ["confirmed"]


def test_cleared_answer_in_an_old_copy_does_not_erase(exported, tmp_path):
    db, res, folder = exported
    src = folder / "协查单_安平镇_致_长安镇.xlsx"
    _fill(src, tmp_path / "new.xlsx", {2: ("其他", "本人已回原籍")})
    import_feedback(db, [tmp_path / "new.xlsx"])
    [r] = import_feedback(db, [src])          # the untouched original comes back later
    assert r.answered == 0 and r.blank >= 1
    rid = load_workbook(src)["协查清单"].cell(2, 1).value
    assert db.execute("SELECT answer, answer_note FROM verification_requests WHERE request_id = ?",
                      (rid,)).fetchone() == ("other", "本人已回原籍")


def test_csv_round_trip_through_excel_gbk_and_reformatted_dates(tmp_path):
    db = build_db(tmp_path / "r.db")
    export_packets(db, tmp_path / "p", fmt="csv")
    src = tmp_path / "p" / "协查单_龙海镇_致_虎门镇.csv"
    rows = list(csv.reader(open(src, encoding="utf-8-sig", newline="")))
    head = rows[0]
    a, bd = head.index("核查结果"), head.index("户籍地·出生日期")
    # Excel on a Chinese Windows: saves as GBK, rewrites 1996-04-20 as 1996/4/20, keeps the apostrophe text.
    rows[1][a] = "属实"
    y, m, d = rows[1][bd].split("-")
    rows[1][bd] = f"{y}/{int(m)}/{int(d)}"
    rows[2][a] = "查无此人"
    out = tmp_path / "back.csv"
    with open(out, "w", encoding="gb18030", newline="") as fh:
        csv.writer(fh).writerows(rows)
    [r] = import_feedback(db, [out])
    assert r.rejected == [] and r.answered == 2
    assert rows[1][ALL_COLUMNS.index("o_name")] == "'-王小明"     # the formula guard survives the trip
    # The same file with a changed name is rejected.
    rows[1][ALL_COLUMNS.index("o_name")] = "'-王小名"
    rows[1][a] = "其他"
    with open(out, "w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)
    [r2] = import_feedback(db, [out])
    assert [x.row for x in r2.rejected] == [2]


def test_status_counts_rate_oldest_and_overdue(exported, tmp_path):
    db, res, folder = exported
    src = folder / "协查单_龙海镇_致_虎门镇.xlsx"
    n_rows = res.per_file[src.name]
    _fill(src, tmp_path / "b1.xlsx", {2: ("属实", ""), 3: ("已更正", "")})
    import_feedback(db, [tmp_path / "b1.xlsx"], now="2025-06-05T09:00:00+08:00")
    # A second packet to 虎门镇 was exported ten days later.
    db.execute("UPDATE verification_requests SET created_at = '2025-06-11T09:00:00+08:00' "
               "WHERE packet_file = '协查单_安平镇_致_虎门镇.xlsx'")
    db.conn.commit()
    st = feedback_status(db, days=30, now="2025-07-06T10:00:00+08:00")
    rows = {r.counterpart: r for r in st.rows}
    expected_sent = db.execute("SELECT count(*) FROM verification_requests WHERE counterpart = '虎门镇'").fetchone()[0]
    hm = rows["虎门镇"]
    assert (hm.sent, hm.answered, hm.open, hm.closed) == (expected_sent, 2, expected_sent - 2, 0)
    assert hm.feedback_rate == pytest.approx(2 / expected_sent)
    assert hm.oldest_open_days == 35          # 2025-06-01 09:00+08 -> 2025-07-06 10:00+08
    assert st.total.sent == res.requests and st.total.answered == 2
    assert st.total.feedback_rate == pytest.approx(2 / res.requests)
    over = {o.request_id for o in st.overdue}
    late = {r for (r,) in db.execute("SELECT request_id FROM verification_requests WHERE answer IS NULL "
                                     "AND packet_file != '协查单_安平镇_致_虎门镇.xlsx'")}
    assert over == late                        # the packet of 06-11 is 25 days old: not overdue yet
    assert n_rows - 2 + 0 == len([o for o in st.overdue if o.packet_file == src.name])
    assert feedback_status(db, days=20, now="2025-07-06T10:00:00+08:00").overdue.__len__() == res.requests - 2


def test_closed_requests_count_as_sent_not_open(tmp_path):
    db = build_db(tmp_path / "r.db")
    export_packets(db, tmp_path / "a", run=1, now="2025-04-01T09:00:00+08:00")
    export_packets(db, tmp_path / "b", run=3, now="2025-06-01T09:00:00+08:00")
    st = feedback_status(db, now="2025-06-02T09:00:00+08:00")
    closed = db.execute("SELECT count(*) FROM verification_requests WHERE status = 'closed'").fetchone()[0]
    assert closed >= 2 and st.total.closed == closed
    assert st.total.sent == st.total.open + st.total.closed + st.total.answered


def test_errors(tmp_path):
    db = build_db(tmp_path / "r.db", runs=1)
    with pytest.raises(ReportError):
        import_feedback(db, [tmp_path / "x.xlsx"])          # nothing exported yet
    export_packets(db, tmp_path / "p")
    with pytest.raises(InputError):
        import_feedback(db, [tmp_path / "missing.xlsx"])
    (tmp_path / "other.csv").write_text("姓名,性别\n张伟,男\n", encoding="utf-8")
    with pytest.raises(InputError, match="no sheet"):
        import_feedback(db, [tmp_path / "other.csv"])


def test_cli_import_and_status(exported, tmp_path):
    db, res, folder = exported
    src = folder / "协查单_龙海镇_致_虎门镇.xlsx"
    _fill(src, tmp_path / "ok.xlsx", {2: ("属实", "")})
    _fill(src, tmp_path / "bad.xlsx", {3: ("属实", "")}, {(3, NAME): "张三"})
    runner = CliRunner()
    r = runner.invoke(app, ["--lang", "en", "feedback", "import", str(tmp_path / "r.db"), str(tmp_path / "ok.xlsx")])
    assert r.exit_code == 0, r.output
    assert "1 answer(s) recorded" in r.stdout
    r = runner.invoke(app, ["--lang", "en", "feedback", "import", str(tmp_path / "r.db"), str(tmp_path / "bad.xlsx")])
    assert r.exit_code == 4 and "row 3:" in r.stderr
    r = runner.invoke(app, ["feedback", "status", str(tmp_path / "r.db"), "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["total"]["answered"] == 1 and data["total"]["sent"] == res.requests
    hm = next(c for c in data["counterparts"] if c["counterpart"] == "虎门镇")
    assert hm["feedback_rate"] == pytest.approx(1 / hm["sent"])
    r = runner.invoke(app, ["--lang", "zh", "feedback", "status", str(tmp_path / "r.db")])
    assert r.exit_code == 0 and "反馈率" in r.stdout and "虎门镇" in r.stdout
    assert request_id("duplicate", "O12", "D9") in {c for (c,) in db.execute("SELECT request_id FROM verification_requests")}
