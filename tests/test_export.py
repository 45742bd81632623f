"""`reconcile export`: verification packets and the police roster, on hand-made report databases."""
from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from typer.testing import CliRunner

from cli import app
from reconcile.coordination import build_findings, export_packets, request_id
from reconcile.coordination.packets import ALL_COLUMNS, header
from reconcile.coordination.xlsx_safe import display_width
from reconcile.report import open_report
from tests._coord_data import build_db

FULL_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


@pytest.fixture()
def db(tmp_path):
    return build_db(tmp_path / "r.db")


def _cells(path: Path) -> list[str]:
    """Every cell value of every sheet of an xlsx or csv file, as text."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return [c for row in csv.reader(fh) for c in row]
    wb = load_workbook(path)
    return [str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]


def _units(db, run_id):
    return {(s, k): u for s, k, u in db.execute("SELECT source, record_key, unit FROM records WHERE run_id = ?", (run_id,))}


def test_one_file_per_own_unit_and_counterpart(db, tmp_path):
    res = export_packets(db, tmp_path / "p")
    units = _units(db, 3)
    # Cross-region duplicates go from the origin record's unit to the destination record's unit.
    for ok, dk in db.execute("SELECT origin_key, dest_key FROM cross_region_duplicates WHERE run_id = 3"):
        name = f"协查单_{units[('origin', ok)]}_致_{units[('dest', dk)]}.xlsx"
        assert (tmp_path / "p" / name).exists(), name
    # Unregistered people go from the destination unit to the origin side (candidate unit or hukou county).
    assert (tmp_path / "p" / "协查单_虎门镇_致_安仁县.xlsx").exists()
    total = sum(res.per_file.values())
    n_findings = sum(db.execute(f"SELECT count(*) FROM {t} WHERE run_id = 3").fetchone()[0]
                     for t in ("cross_region_duplicates", "untraceable", "unregistered"))
    # ID conflicts spanning both files: one request per (origin, dest) record pair of a group.
    n_conf = db.execute("""SELECT count(*) FROM id_conflicts a JOIN id_conflicts b ON a.run_id = b.run_id
        AND a.conflict_group = b.conflict_group AND a.source = 'origin' AND b.source = 'dest' WHERE a.run_id = 3""").fetchone()[0]
    assert total == res.requests == n_findings + n_conf == 13
    assert db.execute("SELECT count(*) FROM verification_requests").fetchone()[0] == total


def test_packet_xlsx_layout_locks_and_dropdown(db, tmp_path):
    res = export_packets(db, tmp_path / "p")
    path = tmp_path / "p" / "协查单_龙海镇_致_虎门镇.xlsx"
    wb = load_workbook(path)
    assert wb.sheetnames == ["说明", "协查清单"]
    cover = {r[0]: r[1] for r in wb["说明"].iter_rows(values_only=True)}
    assert cover["比对批次"].startswith("3")
    assert cover["协查条数"].startswith(str(res.per_file[path.name]))
    assert "属实" in cover["反馈方法"] and "已遮蔽" in cover["身份证号码"]
    ws = wb["协查清单"]
    assert [c.value for c in ws[1]] == [header(c) for c in ALL_COLUMNS]
    assert ws.freeze_panes == "A2"
    assert ws.protection.sheet
    ans, note = ALL_COLUMNS.index("answer") + 1, ALL_COLUMNS.index("note") + 1
    for row in range(2, ws.max_row + 1):
        for col in range(1, len(ALL_COLUMNS) + 1):
            assert ws.cell(row, col).protection.locked == (col not in (ans, note)), (row, col)
    dvs = ws.data_validations.dataValidation
    assert len(dvs) == 1 and dvs[0].type == "list"
    assert dvs[0].formula1 == '"属实,已更正,查无此人,其他"'
    letter = get_column_letter(ans)
    assert str(dvs[0].sqref) == f"{letter}2:{letter}{ws.max_row}"
    # Widths fit the headers and the longest cell (CJK counts double), within the cap.
    for j, col in enumerate(ws.iter_cols(min_row=1, max_row=ws.max_row), start=1):
        longest = max(display_width(str(c.value or "")) for c in col)
        width = ws.column_dimensions[col[0].column_letter].width
        assert width >= min(longest, 58), (j, width, longest)
    # Reasons are plain Chinese, by kind.
    kinds = {r[1]: r[2] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert kinds["重复人口"].startswith("两地均登记为常住")
    assert kinds["重号"].startswith("同一身份证号码对应不同人员")


def test_formula_looking_names_stay_text(db, tmp_path):
    export_packets(db, tmp_path / "x")
    export_packets(db, tmp_path / "c", fmt="csv")
    # 王小明 was typed as "-王小明" and is a cross-region duplicate: it must come out as the text "-王小明".
    xlsx = tmp_path / "x" / "协查单_龙海镇_致_虎门镇.xlsx"
    ws = load_workbook(xlsx)["协查清单"]
    cell = next(c for row in ws.iter_rows(min_row=2) for c in row if c.value == "-王小明")
    assert cell.data_type == "s"
    with zipfile.ZipFile(xlsx) as z:
        for name in z.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert "<f>" not in z.read(name).decode("utf-8") and "<f " not in z.read(name).decode("utf-8")
    rows = list(csv.reader(open(tmp_path / "c" / "协查单_龙海镇_致_虎门镇.csv", encoding="utf-8-sig", newline="")))
    assert "'-王小明" in [c for r in rows for c in r]
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in r)
    assert (tmp_path / "c" / "协查单_龙海镇_致_虎门镇.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_names_like_formulas_in_every_kind_stay_text(tmp_path):
    """Every name of the test registry that starts with = + - @ reaches the packets as text."""
    db = build_db(tmp_path / "r.db", runs=1)
    db.execute("UPDATE records SET unit = '长安镇', name_raw = '=HYPERLINK(\"http://x.example/\",\"点我\")' "
               "WHERE source = 'dest' AND record_key = 'D30'")
    db.conn.commit()
    export_packets(db, tmp_path / "p")
    cells = [c for p in (tmp_path / "p").iterdir() for c in _cells(p)]
    assert '=HYPERLINK("http://x.example/","点我")' in cells
    for p in (tmp_path / "p").iterdir():
        with zipfile.ZipFile(p) as z:
            assert not any("<f>" in z.read(n).decode() for n in z.namelist() if n.endswith(".xml") and "worksheets" in n)


def test_ids_masked_unless_revealed_and_reveal_logged(db, tmp_path):
    export_packets(db, tmp_path / "m", police=True)
    export_packets(db, tmp_path / "mc", fmt="csv", police=True)
    for p in list((tmp_path / "m").iterdir()) + list((tmp_path / "mc").iterdir()):
        hits = [c for c in _cells(p) if FULL_ID.search(c)]
        assert not hits, (p.name, hits[:3])
    assert not db.execute("SELECT log_json FROM runs WHERE run_id = 3").fetchone()[0]
    export_packets(db, tmp_path / "r", reveal_ids=True, police=True)
    export_packets(db, tmp_path / "rc", fmt="csv", reveal_ids=True)
    full = db.execute("SELECT id_number FROM records WHERE run_id = 3 AND record_key = 'O3'").fetchone()[0]
    assert any(full in c for c in _cells(tmp_path / "r" / "派出所核对_龙海镇.xlsx"))
    raw = (tmp_path / "rc" / "协查单_龙海镇_致_虎门镇.csv").read_text(encoding="utf-8-sig")
    assert f'"\t{full}"' in raw          # TAB keeps Excel from turning it into 4.31028E+17
    log = json.loads(db.execute("SELECT log_json FROM runs WHERE run_id = 3").fetchone()[0])
    assert [e["event"] for e in log] == ["reveal_ids", "reveal_ids"]


def test_request_ids_stable_and_not_duplicated(db, tmp_path):
    first = export_packets(db, tmp_path / "a")
    again = export_packets(db, tmp_path / "b")
    assert first.new == 13 and again.new == 0 and again.existing == 13
    assert db.execute("SELECT count(*) FROM verification_requests").fetchone()[0] == 13
    ids = {f.request_id for f in build_findings(db, 3)}
    assert ids == {r[0] for r in db.execute("SELECT request_id FROM verification_requests")}
    assert request_id("duplicate", "O2", "D6") in ids
    # Run-independent: the same finding in run 2 has the same ID.
    assert request_id("duplicate", "O2", "D6") in {f.request_id for f in build_findings(db, 2)}
    assert all(re.fullmatch(r"XC-[0-9A-F]{10}", i) for i in ids)


def test_findings_gone_in_a_newer_run_are_closed(db, tmp_path):
    export_packets(db, tmp_path / "r1", run=1)
    o6 = request_id("duplicate", "O6", "D11")      # 曾丽华: duplicate in run 1 only
    o17 = request_id("untraceable", "O17")          # 郑爽: untraceable in run 1, traced from run 2
    assert db.execute("SELECT status FROM verification_requests WHERE request_id = ?", (o6,)).fetchone()[0] == "sent"
    res = export_packets(db, tmp_path / "r3", run=3)
    status = dict(db.execute("SELECT request_id, status FROM verification_requests"))
    assert status[o6] == "closed" and status[o17] == "closed"
    assert res.closed == sum(1 for s in status.values() if s == "closed")
    # Exporting the older run again does not reopen what the newer run closed... it re-sends run 1's findings.
    export_packets(db, tmp_path / "r1b", run=1)
    assert db.execute("SELECT last_run_id FROM verification_requests WHERE request_id = ?",
                      (request_id("duplicate", "O2", "D6"),)).fetchone()[0] == 3


def test_police_roster_per_township(db, tmp_path):
    res = export_packets(db, tmp_path / "p", police=True)
    names = sorted(p.name for p in res.files if p.name.startswith("派出所核对_"))
    # 李建国(龙海镇)/李春花(龙海镇)/李红梅(虎门镇) share one number; 周杰 is entered twice (龙海镇, 安平镇);
    # 王伟 twice at the destination (长安镇, 虎门镇).
    assert names == ["派出所核对_安平镇.xlsx", "派出所核对_虎门镇.xlsx", "派出所核对_长安镇.xlsx", "派出所核对_龙海镇.xlsx"]
    ws = load_workbook(tmp_path / "p" / "派出所核对_虎门镇.xlsx")["核对名单"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    conflict = [r for r in rows if r[1].startswith("重号")]
    assert sorted(r[3] for r in conflict) == ["李建国", "李春花", "李红梅"]   # the whole group, other townships too
    assert {r[2] for r in conflict} == {"431028********0070"}
    dup = [r for r in rows if r[1].startswith("重复登记")]
    assert [r[3] for r in dup] == ["王伟", "王伟"]


def test_by_region_names_counties(db, tmp_path):
    res = export_packets(db, tmp_path / "p", by="region", fmt="csv")
    names = set(res.per_file)
    assert "协查单_龙海镇_致_东莞市.csv" in names          # residence county of the destination records
    assert "协查单_长安镇_致_安仁县.csv" in names          # hukou county of the origin candidate


def test_cli_export(db, tmp_path):
    r = CliRunner().invoke(app, ["--lang", "en", "export", str(tmp_path / "r.db"), "--out", str(tmp_path / "o"), "--police"])
    assert r.exit_code == 0, r.output
    listed = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(listed) == 14 and all(Path(p).exists() for p in listed)
    assert "13 requests in 10 file(s)" in r.stderr
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "r.db"), "--run", "9", "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 5
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "r.db"), "--format", "ods", "--out", str(tmp_path / "o3")])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "nope.db"), "--out", str(tmp_path / "o4")])
    assert missing.exit_code == 5 and not (tmp_path / "nope.db").exists()


def test_weak_candidates_below_the_review_threshold_are_not_routed(db, tmp_path):
    # 黄晓明's best origin candidate (朱红, 龙海镇) scored 0.55; make it 0.10 (< review threshold 0.5).
    db.execute("UPDATE unregistered SET best_probability = 0.10 WHERE run_id = 3 AND best_origin_key = 'O21'")
    db.conn.commit()
    [f] = [f for f in build_findings(db, 3) if f.kind == "unregistered" and f.dest_key == "D21"]
    assert f.counterpart == "安仁县" and f.origin is None and f.probability is None


# ---- end to end on a report written by the real `reconcile match` ----------------------------
E2E_ORIGIN = [  # 编号, 姓名, 性别, 出生日期, (birth, seq, sex) for the ID, 户籍地址, 流动状态, 流入地, 乡镇
    ("H001", "张伟", "男", "1990-03-07", ("19900307", 616, "M"), "湖南省郴州市安仁县永乐江镇新丰村1号", "流出", "广东省东莞市长安镇", "永乐江镇"),
    ("H002", "王芳", "女", "1985-11-02", ("19851102", 1022, "F"), "湖南省郴州市安仁县安平镇城关社区2号", "常住", "", "安平镇"),
    ("H003", "欧阳晓棠", "女", "1992-06-18", ("19920618", 1514, "F"), "湖南省郴州市安仁县永乐江镇大石村3号", "流出", "", "永乐江镇"),
    ("H004", "李娜", "女", "1988-01-25", ("19880125", 2010, "F"), "湖南省郴州市安仁县安平镇北门4号", "流出", "广东省东莞市虎门镇", "安平镇"),
    ("H005", "刘洋", "男", "1979-12-30", ("19791230", 3058, "M"), "湖南省郴州市安仁县龙海镇5号", "常住", "", "龙海镇"),
    ("H006", "-王小明", "男", "1996-04-20", ("19960420", 1505, "M"), "湖南省郴州市安仁县龙海镇6号", "常住", "", "龙海镇"),
    ("H007", "陈静", "女", "1993-08-08", ("19930808", 512, "F"), "湖南省郴州市安仁县永乐江镇7号", "流出", "", "永乐江镇"),
    ("H008", "李建国", "男", "1975-06-01", ("19750601", 3, "M"), "湖南省郴州市安仁县龙海镇8号", "常住", "", "龙海镇"),
]
E2E_DEST = [  # 序号, 姓名, 性别, 出生年月, ID of (origin person | own), 户籍地, 现居住地, 街道
    ("D101", "张伟", "男", "1990-03-07", "H001", "湖南省郴州市安仁县永乐江镇", "广东省东莞市长安镇振安路3号", "长安镇"),
    ("D102", "王芳", "女", "1985-11-02", "H002", "湖南省郴州市安仁县安平镇", "广东省东莞市长安镇", "长安镇"),
    ("D104", "李娜", "女", "1988-01-25", "H004", "湖南省郴州市安仁县安平镇", "广东省东莞市虎门镇", "虎门镇"),
    ("D106", "-王小明", "男", "1996-04-20", "H006", "湖南省郴州市安仁县龙海镇", "广东省东莞市虎门镇", "虎门镇"),
    ("D107", "黄晓明", "男", "1990-01-01", ("19900101", 2009, "M"), "湖南省郴州市安仁县永乐江镇", "广东省东莞市长安镇", "长安镇"),
    ("D108", "李红梅", "女", "1980-02-14", "H008", "湖南省郴州市安仁县安平镇", "广东省东莞市虎门镇", "虎门镇"),
]


@pytest.mark.slow
def test_end_to_end_on_a_real_match_report(tmp_path):
    from openpyxl import load_workbook as lw

    from tests._coord_data import make_id

    ids = {r[0]: make_id("431028", *r[4]) for r in E2E_ORIGIN}
    origin = "编号,姓名,性别,出生日期,公民身份号码,户籍地址,流动状态,流入地,乡镇\n" + "".join(
        ",".join([r[0], r[1], r[2], r[3], ids[r[0]], *r[5:]]) + "\n" for r in E2E_ORIGIN)
    dest = "序号,姓名,性别,出生年月,身份证号,户籍地,现居住地,街道\n" + "".join(
        ",".join([r[0], r[1], r[2], r[3], ids[r[4]] if isinstance(r[4], str) else make_id("431028", *r[4]), *r[5:]]) + "\n"
        for r in E2E_DEST)
    (tmp_path / "户籍人口.csv").write_bytes(origin.encode("gb18030"))
    (tmp_path / "流入人口.csv").write_bytes(dest.encode("utf-8-sig"))
    out = tmp_path / "比对.db"
    runner = CliRunner()
    r = runner.invoke(app, ["match", str(tmp_path / "户籍人口.csv"), str(tmp_path / "流入人口.csv"), "--origin-key", "编号",
                            "--dest-key", "序号", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    r = runner.invoke(app, ["--lang", "en", "export", str(out), "--out", str(tmp_path / "packets"), "--police"])
    assert r.exit_code == 0, r.output
    files = [Path(p) for p in r.stdout.split()]
    assert files and all(p.exists() for p in files)
    for p in files:
        assert not [c for c in _cells(p) if FULL_ID.search(c)], p.name
    db = open_report(out, create=False)
    kinds = dict(db.execute("SELECT kind, count(*) FROM verification_requests GROUP BY kind").fetchall())
    assert kinds.get("duplicate", 0) == summary["cross_region_duplicates"]
    assert kinds.get("untraceable", 0) == summary["untraceable"]
    assert kinds.get("unregistered", 0) == summary["unregistered"]
    # 王小明 (typed "-王小明") is a resident at home and registered in 虎门镇: a duplicate request, as text.
    packet = tmp_path / "packets" / "协查单_龙海镇_致_虎门镇.xlsx"
    ws = lw(packet)["协查清单"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert any(row[ALL_COLUMNS.index("o_name")] == "-王小明" and row[1] == "重复人口" for row in rows)
    ws.cell(2, ALL_COLUMNS.index("answer") + 1).value = "属实"
    ws.parent.save(tmp_path / "back.xlsx")
    r = runner.invoke(app, ["--lang", "en", "feedback", "import", str(out), str(tmp_path / "back.xlsx")])
    assert r.exit_code == 0 and "1 answer(s) recorded" in r.stdout, r.output
    r = runner.invoke(app, ["--lang", "en", "report", str(out), "--html", str(tmp_path / "b.html"), "--xlsx",
                            str(tmp_path / "b.xlsx")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "b.html").read_text(encoding="utf-8")
    for metric in ("traced", "untraceable", "cross_region_duplicates", "unregistered", "id_conflict_records", "links_match"):
        assert re.search(rf'data-metric="{metric}" data-value="{summary[metric]}"', html), metric
    assert not FULL_ID.search(html)
    assert 'data-unit="虎门镇"' in html and 'data-unit="永乐江镇"' in html


SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"


@pytest.mark.slow
@pytest.mark.skipif(not (SAMPLES / "origin_gb18030.csv").exists(), reason="fixtures/samples not generated")
def test_end_to_end_on_the_fixture_samples(tmp_path):
    """match -> export --police -> feedback import/status -> report on fixtures/samples (GBK origin, BOM dest)."""
    from openpyxl import load_workbook as lw

    runner = CliRunner()
    out = tmp_path / "samples.db"
    r = runner.invoke(app, ["match", str(SAMPLES / "origin_gb18030.csv"), str(SAMPLES / "dest_utf8bom.csv"),
                            "--origin-key", "编号", "--dest-key", "序号", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    r = runner.invoke(app, ["--lang", "en", "export", str(out), "--out", str(tmp_path / "packets"), "--police"])
    assert r.exit_code == 0, r.output
    files = [Path(p) for p in r.stdout.split()]
    packets = [p for p in files if p.name.startswith("协查单_")]
    rosters = [p for p in files if p.name.startswith("派出所核对_")]
    assert packets and (rosters or summary["id_conflict_records"] == 0)
    db = open_report(out, create=False)
    kinds = dict(db.execute("SELECT kind, count(*) FROM verification_requests GROUP BY kind").fetchall())
    assert kinds.get("duplicate", 0) == summary["cross_region_duplicates"]
    assert kinds.get("untraceable", 0) == summary["untraceable"]
    assert kinds.get("unregistered", 0) == summary["unregistered"]
    dest_units = {u for (u,) in db.execute("SELECT DISTINCT unit FROM records WHERE source = 'dest' AND unit != ''")}
    for (cp,) in db.execute("SELECT DISTINCT counterpart FROM verification_requests WHERE kind IN ('untraceable', 'duplicate')"):
        assert cp in dest_units or cp == "流入地不明", cp          # never a vague free text like 广东东莞
    for p in files:
        wb = lw(p)
        data = wb.worksheets[1]
        assert data.freeze_panes == "A2" and data.protection.sheet
        assert not [c.value for row in data.iter_rows() for c in row if FULL_ID.search(str(c.value or ""))], p.name
    # Answer a whole packet; the counterpart's feedback rate is then answered / sent.
    target = max(packets, key=lambda p: len(list(lw(p).worksheets[1].iter_rows(min_row=2))))
    wb = lw(target)
    ws = wb.worksheets[1]
    n = ws.max_row - 1
    for row in range(2, ws.max_row + 1):
        ws.cell(row, ALL_COLUMNS.index("answer") + 1).value = "已更正"
    wb.save(tmp_path / "back.xlsx")
    r = runner.invoke(app, ["--lang", "en", "feedback", "import", str(out), str(tmp_path / "back.xlsx")])
    assert r.exit_code == 0 and f"{n} answer(s) recorded" in r.stdout, r.output
    r = runner.invoke(app, ["feedback", "status", str(out), "--json"])
    status = json.loads(r.stdout)
    cp = db.execute("SELECT counterpart FROM verification_requests WHERE packet_file = ?", (target.name,)).fetchone()[0]
    row = next(c for c in status["counterparts"] if c["counterpart"] == cp)
    assert row["answered"] == n and row["feedback_rate"] == pytest.approx(n / row["sent"])
    r = runner.invoke(app, ["--lang", "zh", "report", str(out), "--html", str(tmp_path / "b.html"),
                            "--xlsx", str(tmp_path / "b.xlsx"), "--mask-names"])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "b.html").read_text(encoding="utf-8")
    for metric in ("traced", "untraceable", "cross_region_duplicates", "unregistered", "id_conflict_records",
                   "duplicate_clusters", "links_match"):
        assert re.search(rf'data-metric="{metric}" data-value="{summary[metric]}"', html), metric
    units = {u for (u,) in db.execute("SELECT DISTINCT unit FROM records WHERE unit != ''")}
    assert set(re.findall(r'<tr data-unit="([^"]*)"', html)) == units
    assert not FULL_ID.search(html)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html)
