"""`reconcile export`: verification packets and the police roster, on hand-made report databases."""
from __future__ import annotations

import csv
import json
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook
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
    assert str(dvs[0].sqref) == f"U2:U{ws.max_row}"
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
