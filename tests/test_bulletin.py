"""`reconcile report`: the bulletin's numbers equal the database's; nothing external; no full IDs."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from cli import app
from reconcile.bulletin import compute_bulletin, load_targets, parse_targets, render_html, write_bulletin
from reconcile.coordination import export_packets, import_feedback
from reconcile.coordination.packets import ALL_COLUMNS
from reconcile.errors import ConfigError
from tests._coord_data import build_db

FULL_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
USABLE = "('valid', 'upgraded_from_15')"


class Cells(HTMLParser):
    """Collects every element's attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[tuple[str, dict[str, str], list[str]]] = []
        self.stack: list[int] = []

    def handle_starttag(self, tag, attrs):
        self.items.append((tag, dict((k, v or "") for k, v in attrs), []))
        if tag not in ("br", "meta", "line", "rect", "circle", "polyline"):
            self.stack.append(len(self.items) - 1)

    def handle_endtag(self, tag):
        while self.stack:
            i = self.stack.pop()
            if self.items[i][0] == tag:
                break

    def handle_data(self, data):
        for i in self.stack:
            self.items[i][2].append(data)

    def find(self, **attrs) -> list[tuple[str, dict[str, str], str]]:
        return [(tg, a, "".join(txt)) for tg, a, txt in self.items
                if all((a.get(k.replace("_", "-")) == v) if v is not None else k.replace("_", "-") in a for k, v in attrs.items())]


def parse(html: str) -> Cells:
    p = Cells()
    p.feed(html)
    return p


@pytest.fixture()
def db(tmp_path):
    return build_db(tmp_path / "r.db")


def q(db, sql, *params):
    return db.execute(sql, params).fetchone()[0]


def test_headline_and_change_equal_the_database(db):
    page = parse(render_html(compute_bulletin(db)))
    expected = {
        "records_origin": q(db, "SELECT count(*) FROM records WHERE run_id = 3 AND source = 'origin'"),
        "records_dest": q(db, "SELECT count(*) FROM records WHERE run_id = 3 AND source = 'dest'"),
        "traced": q(db, "SELECT count(*) FROM traced WHERE run_id = 3"),
        "untraceable": q(db, "SELECT count(*) FROM untraceable WHERE run_id = 3"),
        "cross_region_duplicates": q(db, "SELECT count(*) FROM cross_region_duplicates WHERE run_id = 3"),
        "unregistered": q(db, "SELECT count(*) FROM unregistered WHERE run_id = 3"),
        "id_conflict_records": q(db, "SELECT count(*) FROM id_conflicts WHERE run_id = 3"),
        "duplicate_clusters": q(db, "SELECT count(DISTINCT cluster_id) FROM duplicates WHERE run_id = 3"),
        "links_match": q(db, "SELECT count(*) FROM links WHERE run_id = 3 AND decision = 'match'"),
        "links_review": q(db, "SELECT count(*) FROM links WHERE run_id = 3 AND decision = 'review'"),
    }
    for metric, value in expected.items():
        [(_, attrs, text)] = page.find(data_metric=metric)
        assert int(attrs["data-value"]) == int(text) == value, metric
        [(_, pattrs, _t)] = page.find(data_metric_prev=metric)
        prev = q(db, f"SELECT count(*) FROM {metric if metric in ('traced', 'untraceable', 'unregistered') else 'cross_region_duplicates'} WHERE run_id = 2") \
            if metric in ("traced", "untraceable", "unregistered", "cross_region_duplicates") else None
        if prev is not None:
            assert int(pattrs["data-value"]) == prev, metric
            [(_, _c, change)] = page.find(data_metric_change=metric)
            assert change == (f"{value - prev:+d}" if value != prev else "0")
    # In these runs: untraceable fell 7 -> 6 and unregistered 3 -> 2 (two people were found).
    assert page.find(data_metric_change="untraceable")[0][2] == "-1"


def test_league_indicators_equal_records(db):
    b = compute_bulletin(db)
    page = parse(render_html(b))
    units = [u for (u,) in db.execute("SELECT DISTINCT unit FROM records WHERE run_id = 3 ORDER BY unit")]
    assert sorted(a["data-unit"] for tg, a, _ in page.find(data_unit=None) if tg == "tr") == sorted(units)
    for unit in units:
        n = q(db, "SELECT count(*) FROM records WHERE run_id = 3 AND unit = ?", unit)
        usable = q(db, f"SELECT count(*) FROM records WHERE run_id = 3 AND unit = ? AND id_status IN {USABLE}", unit)
        good = q(db, f"SELECT count(*) FROM records WHERE run_id = 3 AND unit = ? AND id_status IN {USABLE} "
                     "AND birth_conflict = 0 AND sex_conflict = 0", unit)
        outm = q(db, "SELECT count(*) FROM records WHERE run_id = 3 AND unit = ? AND source = 'origin' AND flow_status = 'out'", unit)
        untr = q(db, "SELECT count(*) FROM untraceable u JOIN records r ON r.run_id = u.run_id AND r.source = 'origin' "
                     "AND r.record_key = u.origin_key WHERE u.run_id = 3 AND r.unit = ?", unit)
        dup = q(db, """SELECT count(*) FROM records r WHERE r.run_id = 3 AND r.unit = ? AND (
              (r.source = 'origin' AND r.record_key IN (SELECT origin_key FROM cross_region_duplicates WHERE run_id = 3))
           OR (r.source = 'dest' AND r.record_key IN (SELECT dest_key FROM cross_region_duplicates WHERE run_id = 3))
           OR (r.source || '|' || r.record_key IN (SELECT source || '|' || record_key FROM duplicates WHERE run_id = 3 AND survivor = 0)))""", unit)
        cells = _row_cells(page, unit)
        assert float(cells["id_entry_rate"]) == pytest.approx(usable / n, abs=1e-6)
        assert float(cells["id_accuracy"]) == pytest.approx(good / usable, abs=1e-6)
        assert float(cells["duplicate_rate"]) == pytest.approx(dup / n, abs=1e-6)
        if outm:
            assert float(cells["untraceable_rate"]) == pytest.approx(untr / outm, abs=1e-6)
        else:
            assert cells["untraceable_rate"] == ""
    # 安平镇 enters bad ID numbers: lowest ID entry rate, named as the worst.
    [(_, a, text)] = page.find(data_indicator="id_entry_rate", data_best=None)
    assert a["data-worst"] == "安平镇" and "安平镇" in text
    ranks = [int(a["data-rank"]) for _, a, _ in page.find(data_rank=None)]
    assert ranks == list(range(1, len(units) + 1))
    [(_, top, _)] = page.find(data_top=None)
    assert top["data-top"] == b.units[0].unit and top["data-bottom"] == b.units[-1].unit == "安平镇"


def _row_cells(page: Cells, unit: str) -> dict[str, str]:
    """data-indicator -> data-value of the league row of one unit."""
    out, inside = {}, False
    for tg, a, _ in page.items:
        if tg == "tr":
            inside = a.get("data-unit") == unit
        elif inside and tg == "td" and "data-indicator" in a:
            out[a["data-indicator"]] = a["data-value"]
        elif inside and tg == "td" and a.get("data-field") == "met":
            out["met"] = a["data-value"]
    return out


def test_targets_pass_fail_and_metrics_take_precedence(db, tmp_path):
    (tmp_path / "t.toml").write_text('[targets]\nid_entry_rate = ">= 0.9"\nuntraceable_rate = "<= 50%"\n'
                                     'id_accuracy = 0.95\n', encoding="utf-8")
    targets = load_targets(tmp_path / "t.toml")
    assert set(targets) == {"id_entry_rate", "untraceable_rate", "id_accuracy"}
    db.execute("INSERT INTO metrics (run_id, scope, metric, value) VALUES (3, 'unit:永乐江镇', 'id_accuracy', 0.5)")
    db.conn.commit()
    b = compute_bulletin(db, targets=targets)
    html = render_html(b)
    page = parse(html)
    for r in b.units:
        cells = _row_cells(page, r.unit)
        for k, tgt in targets.items():
            v = cells[k]
            want = None if v == "" else tgt.check(float(v))
            assert r.passes[k] == want
        assert int(cells["met"]) == sum(1 for k in targets if r.passes[k])
    assert float(_row_cells(page, "永乐江镇")["id_accuracy"]) == 0.5       # from metrics, not recomputed
    assert "50.0%</td>" not in html and "50.0% <span" in html             # no '*' on a metric value
    assert "&lt;= 50%" in html or "<= 50%" in html
    # Ranked by targets met first.
    mets = [r.met for r in b.units]
    assert mets == sorted(mets, reverse=True)


def test_bad_targets():
    with pytest.raises(ConfigError):
        parse_targets({"happiness": ">= 0.9"})
    with pytest.raises(ConfigError):
        parse_targets({"coverage": "about 95"})
    with pytest.raises(ConfigError):
        parse_targets({"coverage": "120%"})
    assert parse_targets({"coverage": "95%"})["coverage"].value == pytest.approx(0.95)
    assert parse_targets({"duplicate_rate": "< 0.02"})["duplicate_rate"].check(0.02) is False


def test_histogram_thresholds_matrix_and_trends(db):
    b = compute_bulletin(db)
    html = render_html(b)
    page = parse(html)
    for _, a, _ in page.find(data_lo=None):
        lo = float(a["data-lo"])
        hi = lo + 0.05
        n = q(db, "SELECT count(*) FROM links WHERE run_id = 3 AND match_probability >= ? AND "
                  "(match_probability < ? OR (? >= 1 AND match_probability <= 1))", lo - 1e-9, hi - 1e-9, hi)
        assert int(a["data-value"]) == n, lo
    assert sum(int(a["data-value"]) for _, a, _ in page.find(data_lo=None)) == q(db, "SELECT count(*) FROM links WHERE run_id = 3")
    th = {a["data-threshold"]: float(a["data-value"]) for _, a, _ in page.find(data_threshold=None)}
    assert th == {"match_threshold": 0.9, "review_threshold": 0.5}
    # Cross-region matrix: origin unit x destination unit.
    for (ou, du, n) in db.execute("""SELECT o.unit, d.unit, count(*) FROM cross_region_duplicates c
            JOIN records o ON o.run_id = c.run_id AND o.source = 'origin' AND o.record_key = c.origin_key
            JOIN records d ON d.run_id = c.run_id AND d.source = 'dest' AND d.record_key = c.dest_key
            WHERE c.run_id = 3 GROUP BY 1, 2"""):
        [(_, a, _)] = page.find(data_m="cross", data_row=ou, data_col=du)
        assert int(a["data-value"]) == n
    cells = [(a["data-row"], a["data-col"], int(a["data-value"])) for _, a, _ in page.find(data_m="within")]
    # 王伟 twice at the destination (长安镇 / 虎门镇), 周杰 twice at the origin (龙海镇 / 安平镇): both symmetric.
    assert ("长安镇", "虎门镇", 1) in cells and ("虎门镇", "长安镇", 1) in cells
    assert ("安平镇", "龙海镇", 1) in cells
    # Trend points: one per run per series, values equal each run's counts.
    pts = [a for _, a, _ in page.find(data_series=None) if "cx" in a]
    assert len(pts) == 3 * 6
    traced = [int(a["data-value"]) for a in pts if a["data-series"] == "流向明确"]
    assert traced == [q(db, "SELECT count(*) FROM traced WHERE run_id = ?", r) for r in (1, 2, 3)] == [7, 8, 9]
    # Outcome bars: the segments of a unit add up to that unit's counts.
    segs = [a for _, a, _ in page.find(data_series=None) if "width" in a]
    assert sum(int(a["data-value"]) for a in segs if a["data-series"] == "流向不明") == b.headline["untraceable"]


def test_self_contained_no_external_resources(db):
    html = render_html(compute_bulletin(db))
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert html.count("<svg") == 3 and "@page{size:A4" in html


def test_no_full_ids_and_names_masked(db, tmp_path):
    # Put the formula-looking name on an untraceable person: it must show as text, escaped.
    db.execute("UPDATE records SET name_raw = '<b>=HYPERLINK(\"http://x.example/\",\"点我\")' WHERE run_id = 3 AND record_key = 'O21'")
    db.conn.commit()
    b, paths = write_bulletin(db, html=tmp_path / "b.html", xlsx=tmp_path / "b.xlsx")
    html = (tmp_path / "b.html").read_text(encoding="utf-8")
    assert not FULL_ID.search(html)
    assert "&lt;b&gt;=HYPERLINK(&quot;http://x.example/&quot;" in html     # text, never markup or a link
    assert "431028********0070" in html                                     # the ID conflict, masked
    wb = load_workbook(tmp_path / "b.xlsx")
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f"
                assert not FULL_ID.search(str(c.value or ""))
    assert "李建国" in html
    write_bulletin(db, html=tmp_path / "m.html", xlsx=tmp_path / "m.xlsx", mask_names=True)
    masked = (tmp_path / "m.html").read_text(encoding="utf-8")
    for name in ("李建国", "李春花", "李红梅", "周杰"):
        assert name not in masked
    assert "李*国" in masked and "周*" in masked
    cells = [str(c.value) for ws in load_workbook(tmp_path / "m.xlsx").worksheets for r in ws.iter_rows() for c in r]
    assert "李*国" in cells and "李建国" not in cells


def test_workbook_sheets_equal_html(db, tmp_path):
    b, _ = write_bulletin(db, xlsx=tmp_path / "b.xlsx", lang="en")
    wb = load_workbook(tmp_path / "b.xlsx")
    assert wb.sheetnames == ["Overview", "League table", "Outcomes per unit", "Trends", "Match probability",
                             "Cross-region matrix", "Within-registry matrix", "ID conflicts", "Untraceable"]
    over = {r[0]: r[1] for r in wb["Overview"].iter_rows(min_row=2, values_only=True)}
    assert over["Untraceable out-migrants"] == b.headline["untraceable"] == 6
    league = list(wb["League table"].iter_rows(values_only=True))
    head = list(league[0])
    col = head.index("ID accuracy %")
    for r in league[1:]:
        unit = r[1]
        ur = next(u for u in b.units if u.unit == unit)
        assert r[col] == pytest.approx(ur.values["id_accuracy"], abs=1e-6)
        assert r[0] == ur.rank
    assert wb["League table"].freeze_panes == "A2"


def test_feedback_rate_in_league(db, tmp_path):
    export_packets(db, tmp_path / "p")
    src = tmp_path / "p" / "协查单_龙海镇_致_虎门镇.xlsx"
    wb = load_workbook(src)
    ws = wb["协查清单"]
    ws.cell(2, ALL_COLUMNS.index("answer") + 1).value = "属实"
    wb.save(tmp_path / "back.xlsx")
    import_feedback(db, [tmp_path / "back.xlsx"])
    page = parse(render_html(compute_bulletin(db)))
    sent = q(db, "SELECT count(*) FROM verification_requests WHERE counterpart_unit = '虎门镇'")
    assert float(_row_cells(page, "虎门镇")["feedback_rate"]) == pytest.approx(1 / sent, abs=1e-6)
    assert float(_row_cells(page, "长安镇")["feedback_rate"]) == 0.0
    assert _row_cells(page, "安平镇")["feedback_rate"] == ""               # nothing addressed to it


def test_english_and_cli(db, tmp_path):
    r = CliRunner().invoke(app, ["report", str(tmp_path / "r.db"), "--html", str(tmp_path / "en.html"), "--lang", "en",
                                 "--run", "2"])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "en.html").read_text(encoding="utf-8")
    assert '<html lang="en">' in html and "Population registry reconciliation bulletin" in html and "Run #2" in html
    assert int(parse(html).find(data_metric="untraceable")[0][1]["data-value"]) == 7
    r = CliRunner().invoke(app, ["report", str(tmp_path / "r.db")])
    assert r.exit_code == 2
    (tmp_path / "bad.toml").write_text("[targets]\nhappiness = 1\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["report", str(tmp_path / "r.db"), "--html", str(tmp_path / "x.html"),
                                 "--targets", str(tmp_path / "bad.toml")])
    assert r.exit_code == 2 and not (tmp_path / "x.html").exists()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "r.db"), "--run", "1", "--html", str(tmp_path / "zh.html"),
                                 "--xlsx", str(tmp_path / "zh.xlsx"), "--lang", "zh"])
    assert r.exit_code == 0 and (tmp_path / "zh.xlsx").exists()
    zh = (tmp_path / "zh.html").read_text(encoding="utf-8")
    assert "人口信息比对通报" in zh and "无上期数据可比较" in zh


def test_single_run_without_units_or_links(tmp_path):
    """A bare run: no unit column, no links, no thresholds — the page still renders with notes."""
    import pandas as pd

    from reconcile.report import RunOutput, now_iso, open_report, write_run
    from tests._coord_data import rec

    db = open_report(tmp_path / "bare.db")
    rows = [rec("origin", "1", "张伟", "M", "19900307", "", flow="out"), rec("dest", "1", "章玮", "M", "19900307")]
    write_run(db, RunOutput("match", now_iso(), {}, {"records": pd.DataFrame(rows),
                                                       "untraceable": pd.DataFrame([{"origin_key": "1"}])}))
    html = render_html(compute_bulletin(db), lang="en")
    assert "No scored pairs" in html and "Thresholds not recorded" in html
    page = parse(html)
    assert page.find(data_metric="untraceable")[0][1]["data-value"] == "1"
    assert "No reporting units" in html and not page.find(data_unit=None)
