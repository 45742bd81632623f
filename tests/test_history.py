"""`reconcile runs` and `reconcile diff`: two dedupe runs with known changes between them
(a record removed, one added, one edited, two persons merged), and two match runs where a traced
out-migrant becomes untraceable."""
from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from reconcile.dedupe import DedupeOptions, run_dedupe
from reconcile.history import diff_runs, format_diff, list_runs
from reconcile.i18n import set_lang
from reconcile.report import open_report
from tests._dedupe_data import ADDR, CHEN, HAND, rid, write_files

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
LIU = rid("43102819910708001")


def month_one() -> dict[str, list[list[str]]]:
    h = copy.deepcopy(HAND)
    # a second record of 刘洋 that does not look like him yet: former name, no ID, birth year only
    h["城关镇"].append(["H10", "刘阳春", "男", "1991", "", "安仁县城关镇石岭村", "常住", "", "城关镇", ""])
    h["龙海镇"].append(["H10", "刘洋", "男", "1991-07-08", LIU, ADDR + "龙海镇白寨村", "常住", "", "龙海镇", ""])
    return h


def month_two() -> dict[str, list[list[str]]]:
    """Month 2: 龙海镇 H1 (a 张伟 duplicate) removed, 城关镇 H3 edited, 城关镇 H9 added (a second
    record of 陈静, her number in its 15-digit form), 城关镇 H10 corrected so that it plainly is 龙海镇 H10 (two persons merge)."""
    h = month_one()
    h["龙海镇"] = [r for r in h["龙海镇"] if r[0] != "H1"]
    for r in h["城关镇"]:
        if r[0] == "H3":
            r[5] = "安仁县城关镇长塘村6组"
        if r[0] == "H10":
            r[1], r[3], r[4] = "刘洋", "1991-07-08", LIU
    h["城关镇"].append(["H9", "陈静", "女", "1983.06.02", CHEN[:6] + CHEN[8:17], ADDR + "城关镇长塘村2组", "常住", "", "城关镇",
                      "2024-02-01"])
    return h


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("hist")
    db = d / "h.db"
    r1 = run_dedupe(write_files(d / "m1", month_one(), pad=1500), db, DedupeOptions(load={"key": "编号"}))
    r2 = run_dedupe(write_files(d / "m2", month_two(), pad=1500), db, DedupeOptions(load={"key": "编号"}))
    rep = open_report(db, create=False)
    yield db, rep, r1, r2
    rep.conn.close()


def pid(db: Path, run_id: int, key: str) -> str:
    con = sqlite3.connect(db)
    row = con.execute("SELECT person_id FROM person_records WHERE run_id = ? AND record_key = ?", (run_id, key)).fetchone()
    con.close()
    return row[0]


def test_runs_lists_both_runs_with_counts(two_runs):
    db, rep, r1, r2 = two_runs
    runs = list_runs(rep)
    assert [r["run_id"] for r in runs] == [r1.run_id, r2.run_id]
    assert [r["command"] for r in runs] == ["dedupe", "dedupe"] and [r["mode"] for r in runs] == ["full", "incremental"]
    assert runs[0]["rows"] == {"origin": r1.summary["records"]}
    assert runs[1]["counts"]["duplicate_clusters"] == r2.summary["duplicate_clusters"]
    assert [Path(p).name for p in runs[0]["inputs"]] == ["城关镇.csv", "龙海镇.csv", "外地.csv"]


def test_diff_records_added_removed_changed(two_runs):
    db, rep, r1, r2 = two_runs
    d = diff_runs(rep)
    assert (d["run_a"], d["run_b"]) == (r1.run_id, r2.run_id)
    assert d["records"]["added"] == [["origin", "城关镇:H9"]]
    assert d["records"]["removed"] == [["origin", "龙海镇:H1"]]
    assert d["records"]["changed"] == [["origin", "城关镇:H10"], ["origin", "城关镇:H3"]]
    assert d["records"]["counts"] == {"added": 1, "removed": 1, "changed": 2}


def test_diff_duplicate_clusters_by_person(two_runs):
    db, rep, r1, r2 = two_runs
    d = diff_runs(rep, r1.run_id, r2.run_id)["duplicates"]
    resolved = {c["person_id"]: c["keys"] for c in d["resolved"]}
    assert resolved == {pid(db, r1.run_id, "城关镇:H1"): ["城关镇:H1", "龙海镇:H1"]}
    new = {c["person_id"]: c["keys"] for c in d["new"]}
    liu = pid(db, r1.run_id, "城关镇:H10")       # issued first (its file comes first): the older ID
    assert liu < pid(db, r1.run_id, "龙海镇:H10")
    assert new[liu] == ["城关镇:H10", "龙海镇:H10"]
    changed = {c["person_id"]: (c["before"], c["keys"]) for c in d["changed"]}
    chen = pid(db, r1.run_id, "城关镇:H8")
    assert changed == {chen: (["城关镇:H8", "外地:H3"], ["城关镇:H8", "城关镇:H9", "外地:H3"])}


def test_diff_persons_merged(two_runs):
    db, rep, r1, r2 = two_runs
    p = diff_runs(rep)["persons"]
    survivor, absorbed = pid(db, r1.run_id, "城关镇:H10"), pid(db, r1.run_id, "龙海镇:H10")
    assert [(m["person_id"], m["absorbed"]) for m in p["merged"]] == [(survivor, absorbed)]
    assert p["merged"][0]["keys"] == ["龙海镇:H10"] and p["split"] == [] and p["gone"] == []
    assert pid(db, r2.run_id, "龙海镇:H10") == survivor


def test_diff_text_in_both_languages(two_runs):
    db, rep, r1, r2 = two_runs
    d = diff_runs(rep)
    try:
        set_lang("en")
        en = format_diff(d)
        set_lang("zh")
        zh = format_diff(d)
    finally:
        set_lang(None)
    assert f"Changes from run {r1.run_id} to run {r2.run_id}" in en
    assert "Records removed: 1: origin/龙海镇:H1" in en and "Persons merged: 1" in en
    assert "新增记录：1" in zh and "已解决重复组：1" in zh and "合并人员：1" in zh


def test_diff_limit_shortens_lists():
    d = {"run_a": 1, "run_b": 2,
         "records": {"added": [["origin", str(i)] for i in range(30)], "removed": [], "changed": []},
         "duplicates": {"new": [], "resolved": [], "changed": []}, "untraceable": {"new": [], "resolved": []},
         "persons": {"merged": [], "split": [], "new": 0, "gone": []}}
    try:
        set_lang("en")
        text = format_diff(d, limit=3)
    finally:
        set_lang(None)
    assert "origin/0, origin/1, origin/2 … and 27 more" in text


def test_cli_runs_and_diff_json(two_runs):
    db, rep, r1, r2 = two_runs
    r = runner.invoke(app, ["runs", str(db), "--json"])
    assert r.exit_code == 0 and [x["run_id"] for x in json.loads(r.stdout)] == [r1.run_id, r2.run_id]
    r = runner.invoke(app, ["diff", str(db), str(r2.run_id), str(r1.run_id), "--json"])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert (data["run_a"], data["run_b"]) == (r1.run_id, r2.run_id)          # given either way round
    assert data["records"]["counts"]["removed"] == 1
    r = runner.invoke(app, ["--lang", "en", "runs", str(db)])
    assert r.exit_code == 0 and "dedupe" in r.stdout and "incremental" in r.stdout


@pytest.mark.parametrize("args,code", [
    (["diff", "{db}", "1", "1"], 5),
    (["diff", "{db}", "1", "99"], 5),
    (["diff", "{missing}"], 5),
    (["runs", "{missing}"], 5),
])
def test_cli_errors(two_runs, tmp_path, args, code):
    db = two_runs[0]
    args = [a.format(db=db, missing=tmp_path / "none.db") for a in args]
    r = runner.invoke(app, args)
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output


def test_diff_needs_two_runs(tmp_path):
    from reconcile.match import MatchOptions, run_match

    out = tmp_path / "one.db"
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    r = runner.invoke(app, ["--lang", "en", "diff", str(out)])
    assert r.exit_code == 5 and "two complete runs" in r.output


def test_diff_of_match_runs_shows_new_untraceable(tmp_path):
    from reconcile.match import MatchOptions, run_match

    dest = pd.read_csv(SAMPLES / "tiny_dest.csv", dtype=str, keep_default_na=False)
    fewer = tmp_path / "dest_fewer.csv"
    dest[dest["序号"] != "1"].to_csv(fewer, index=False)               # 张伟 (origin 0001) no longer found
    out = tmp_path / "m.db"
    opts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    run_match(SAMPLES / "tiny_origin.csv", fewer, out, opts)
    rep = open_report(out, create=False)
    d = diff_runs(rep)
    rep.conn.close()
    assert d["untraceable"] == {"new": ["0001"], "resolved": []}
    assert d["records"]["removed"] == [["dest", "1"]]
