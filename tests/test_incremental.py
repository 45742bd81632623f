"""Incremental dedupe runs equal full runs with the same model, on generated monthly exports
(additions, edits, deletions, a merge and a split), also with tiny block caps (blocks crossing
the cap), reordered rows, and a hukou county newly filled from a township; fallbacks to full runs;
a failed run leaves the previous state usable."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from fixtures.months import generate_months, write_months
from reconcile import incremental
from reconcile.dedupe import DedupeOptions, run_dedupe

TABLES = [("records", "record_key"), ("links", "origin_key, dest_key"), ("duplicates", "cluster_id, record_key"),
          ("blocking", "pass_name"), ("metrics", "scope, metric"), ("warnings", "stage, message"),
          ("person_records", "record_key"), ("person_events", "event, person_id, other_person_id"),
          ("rejected_rows", "line")]


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    d = tmp_path_factory.mktemp("inc")
    exports = generate_months(persons=3000, seed=5, months=3)
    write_months(exports, d)
    return d, exports


def table(db: Path, name: str, run_id: int, order: str) -> pd.DataFrame:
    con = sqlite3.connect(db)
    df = pd.read_sql(f"SELECT * FROM [{name}] WHERE run_id = ? ORDER BY {order}", con, params=(run_id,))
    con.close()
    return df.drop(columns=["run_id"]).reset_index(drop=True)


def assert_same_run(db_a: Path, run_a: int, db_b: Path, run_b: int) -> None:
    for name, order in TABLES:
        a, b = table(db_a, name, run_a, order), table(db_b, name, run_b, order)
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, obj=name)
    con_a, con_b = sqlite3.connect(db_a), sqlite3.connect(db_b)
    pa = pd.read_sql("SELECT * FROM persons ORDER BY person_id", con_a)
    pb = pd.read_sql("SELECT * FROM persons ORDER BY person_id", con_b)
    ma = con_a.execute("SELECT model_json FROM runs WHERE run_id = ?", (run_a,)).fetchone()[0]
    mb = con_b.execute("SELECT model_json FROM runs WHERE run_id = ?", (run_b,)).fetchone()[0]
    con_a.close(), con_b.close()
    pd.testing.assert_frame_equal(pa, pb, obj="persons")
    assert ma == mb


def run_chain(files: list, work: Path, multi: bool = False, **opts) -> list[dict]:
    """Each later file (or list of files, ``multi``): an incremental run, and a full run with the
    previous model on a copy of the database as it was; both must write the same run."""
    db = work / "inc.db"
    works = []
    as_list = (lambda f: list(f)) if multi else (lambda f: [f])
    prev = run_dedupe(as_list(files[0]), db, DedupeOptions(load={"key": "编号"}, **opts))
    for k, f in enumerate(files[1:], start=2):
        copy = work / f"full{k}.db"
        shutil.copy(db, copy)
        inc = run_dedupe(as_list(f), db, DedupeOptions(load={"key": "编号"}, **opts))
        full = run_dedupe(as_list(f), copy, DedupeOptions(load={"key": "编号"}, full=True, model_from_run=prev.run_id,
                                                          **opts))
        assert inc.summary["mode"] == "incremental" and full.summary["mode"] == "full"
        assert inc.summary["work"]["reused_pairs"] > 0
        assert inc.summary["work"]["compared_pairs"] < full.summary["work"]["compared_pairs"]
        assert_same_run(db, inc.run_id, copy, full.run_id)
        prev = inc
        works.append(inc.summary["work"])
    return works


def test_incremental_equals_full_over_three_months(months, tmp_path):
    d, exports = months
    run_chain([d / f"month_{e.month:02d}.csv" for e in exports], tmp_path)


def test_incremental_equals_full_with_tiny_block_caps_and_reordered_rows(months, tmp_path):
    d, exports = months
    shuffled = tmp_path / "month_03_shuffled.csv"
    df = pd.read_csv(d / "month_03.csv", dtype=str, keep_default_na=False, encoding="gb18030")
    df.sample(frac=1, random_state=1).to_csv(shuffled, index=False, encoding="gb18030")
    for cap in (1, 3):
        work = tmp_path / f"cap{cap}"
        work.mkdir()
        works = run_chain([d / "month_01.csv", d / "month_02.csv", shuffled], work, block_cap=cap)
        assert works[0]["cap_flips"] > 0            # blocks did cross the cap between the months


def test_incremental_equals_full_when_a_township_newly_fills_a_county(months, tmp_path):
    """A record whose address lacks the county gets it from its township once five resolved
    records of that township exist: the record is unchanged, its hukou county is not."""
    d, _ = months
    base = pd.read_csv(d / "month_01.csv", dtype=str, keep_default_na=False, encoding="gb18030")
    extra = []
    for i in range(6):
        extra.append({**{c: "" for c in base.columns}, "编号": f"X{i}", "姓名": f"测试{'甲乙丙丁戊己'[i]}华",
                      "性别": "男", "出生日期": f"1970-01-{i + 10}", "乡镇": "石门乡",
                      "户籍地址": "石门乡石门村" if i == 0 else "湖南省郴州市北湖区石门乡石门村"})
    m1 = pd.concat([base, pd.DataFrame(extra[:5])], ignore_index=True)     # 4 resolved: below 5
    m2 = pd.concat([base, pd.DataFrame(extra)], ignore_index=True)         # 5 resolved
    p1, p2 = tmp_path / "a.csv", tmp_path / "b.csv"
    m1.to_csv(p1, index=False, encoding="gb18030")
    m2.to_csv(p2, index=False, encoding="gb18030")
    db = tmp_path / "inc.db"
    r1 = run_dedupe([p1], db, DedupeOptions(load={"key": "编号"}))
    shutil.copy(db, tmp_path / "full.db")
    inc = run_dedupe([p2], db, DedupeOptions(load={"key": "编号"}))
    full = run_dedupe([p2], tmp_path / "full.db", DedupeOptions(load={"key": "编号"}, full=True, model_from_run=r1.run_id))
    assert inc.summary["work"]["refilled_records"] == 1
    assert_same_run(db, inc.run_id, tmp_path / "full.db", full.run_id)
    con = sqlite3.connect(db)
    region = con.execute("SELECT hukou_region FROM records WHERE run_id = ? AND record_key = 'X0'", (inc.run_id,)).fetchone()
    con.close()
    assert region == ("431002",)


def test_a_file_renamed_between_months_keeps_its_records(months, tmp_path):
    d, _ = months
    renamed = tmp_path / "2024年3月.csv"
    shutil.copy(d / "month_02.csv", renamed)
    db = tmp_path / "r.db"
    run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))
    r = run_dedupe([renamed], db, DedupeOptions(load={"key": "编号"}))
    assert r.summary["mode"] == "incremental"
    con = sqlite3.connect(db)
    files = {row[0] for row in con.execute("SELECT DISTINCT file FROM records WHERE run_id = ?", (r.run_id,))}
    raw = con.execute("SELECT raw_json FROM records WHERE run_id = ? LIMIT 1", (r.run_id,)).fetchone()[0]
    con.close()
    assert files == {"2024年3月"} and '"__file__":"2024年3月"' in raw


@pytest.mark.parametrize("change,why", [
    ({"full": True}, "full requested"),
    ({"block_cap": 500}, "settings, comparators or version changed"),
])
def test_runs_fall_back_to_full_and_say_why(months, tmp_path, change, why):
    d, _ = months
    db = tmp_path / "f.db"
    run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))
    r = run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}, **change))
    assert r.summary["mode"] == "full" and r.summary["work"]["why_full"] == why


def test_incremental_run_reuses_the_previous_model(months, tmp_path):
    d, _ = months
    db = tmp_path / "m.db"
    run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))
    run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}))
    con = sqlite3.connect(db)
    m1, m2 = [r[0] for r in con.execute("SELECT model_json FROM runs ORDER BY run_id")]
    con.close()
    import json

    a, b = json.loads(m1), json.loads(m2)
    assert a["fields"] == b["fields"] and a["prior"] == b["prior"]


def test_a_failed_run_leaves_the_previous_state_usable(months, tmp_path, monkeypatch):
    d, _ = months
    db = tmp_path / "k.db"
    r1 = run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))

    def boom(*a, **k):
        raise RuntimeError("killed while writing")

    monkeypatch.setattr(incremental, "save_state", boom)
    with pytest.raises(RuntimeError):
        run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}))
    monkeypatch.undo()
    con = sqlite3.connect(db)
    assert [r[0] for r in con.execute("SELECT run_id FROM runs")] == [r1.run_id]
    assert con.execute("SELECT count(*) FROM records WHERE run_id <> ?", (r1.run_id,)).fetchone()[0] == 0
    assert con.execute("SELECT DISTINCT run_id FROM dedupe_state").fetchall() == [(r1.run_id,)]
    con.close()
    r2 = run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}))
    assert r2.summary["mode"] == "incremental"


def test_unchanged_lines_are_not_parsed_again(months, tmp_path):
    d, _ = months
    db = tmp_path / "l.db"
    run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))
    r = run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}))
    w = r.summary["work"]
    assert w["files_read_in_full"] == [] and w["lines_reused"] == r.summary["records"] - w["changed_records"]


def test_file_with_a_line_break_inside_quotes_is_read_in_full_and_still_equal(months, tmp_path):
    d, _ = months
    paths = []
    for name in ("month_01.csv", "month_02.csv"):
        df = pd.read_csv(d / name, dtype=str, keep_default_na=False, encoding="gb18030")
        df.loc[df.index[5], "户籍地址"] = df.loc[df.index[5], "户籍地址"] + "\n(旧址)"
        p = tmp_path / name
        df.to_csv(p, index=False, encoding="gb18030")
        paths.append(p)
    works = run_chain(paths, tmp_path)
    assert works[0]["files_read_in_full"] == ["month_02"]


def test_pooled_township_files_with_colliding_keys(tmp_path):
    import copy as _copy

    from tests._dedupe_data import ADDR, HAND, write_files

    later = _copy.deepcopy(HAND)
    later["龙海镇"] = [r for r in later["龙海镇"] if r[0] != "H2"]
    later["城关镇"][2][5] = "安仁县城关镇长塘村7组"
    later["外地"].append(["H4", "周敏", "女", "1966-10-10", "", ADDR + "城关镇石岭村", "常住", "", "", ""])
    a = write_files(tmp_path / "a", HAND, pad=900)
    b = write_files(tmp_path / "b", later, pad=900)
    works = run_chain([a, b], tmp_path, multi=True)
    assert works[0]["changed_records"] == 2


def test_xlsx_files_are_read_in_full(tmp_path):
    src = Path(__file__).resolve().parent.parent / "fixtures" / "samples" / "dest.xlsx"
    db = tmp_path / "x.db"
    run_dedupe([src], db, DedupeOptions(load={"key": "序号"}))
    r = run_dedupe([src], db, DedupeOptions(load={"key": "序号"}))
    assert r.summary["mode"] == "incremental" and r.summary["work"]["files_read_in_full"] == ["dest"]
    assert r.summary["work"]["changed_records"] == 0 and r.summary["work"]["compared_pairs"] == 0


# ---------------------------------------------------------------------------------------------
# versioned storage (reconcile.record_store): records / person_records are views

def _all(con, sql, *params):
    return con.execute(sql, params).fetchall()


def test_an_incremental_run_stores_only_new_record_versions(months, tmp_path):
    d, _ = months
    db = tmp_path / "v.db"
    r1 = run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))
    r2 = run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}))
    con = sqlite3.connect(db)
    kinds = dict(_all(con, "SELECT name, type FROM sqlite_master WHERE name IN ('records', 'person_records', "
                           "'records_direct', 'record_versions', 'record_members')"))
    assert kinds == {"records": "view", "person_records": "view", "records_direct": "table",
                     "record_versions": "table", "record_members": "table"}
    n1, n2 = r1.summary["records"], r2.summary["records"]
    versions = _all(con, "SELECT count(*) FROM record_versions")[0][0]
    new = versions - n1
    # the second run adds a version only for a new or changed record, or one whose person changed
    assert 0 < new < 0.2 * n2
    assert new >= r2.summary["work"]["changed_records"]
    # the file is renamed every month (month_01 -> month_02): its label is per run, not per version
    assert _all(con, "SELECT DISTINCT file FROM records WHERE run_id = ?", r2.run_id) == [("month_02",)]
    raw = _all(con, "SELECT raw_json FROM records WHERE run_id = ? LIMIT 1", r2.run_id)[0][0]
    assert raw.endswith('"__file__":"month_02"}')
    assert _all(con, "SELECT run_id, count(*) FROM record_members GROUP BY run_id") == [(r1.run_id, n1), (r2.run_id, n2)]
    # state: run 2 appended a chunk of pairs and one of records to run 1's instead of writing all again
    for prefix in ("pc:", "rc:"):
        assert _all(con, f"SELECT DISTINCT run_id FROM dedupe_state WHERE part LIKE '{prefix}%' ORDER BY run_id") == [
            (r1.run_id,), (r2.run_id,)]
    assert _all(con, "SELECT DISTINCT run_id FROM dedupe_state WHERE part NOT LIKE 'pc:%' AND part NOT LIKE 'rc:%'") == [
        (r2.run_id,)]
    rows = dict(_all(con, "SELECT run_id, length(data) FROM dedupe_state WHERE part = 'rc:a:fp64'"))
    assert rows[r2.run_id] < 0.2 * rows[r1.run_id]
    from reconcile.dedupe_state import load
    from reconcile.report import open_report

    rdb = open_report(db, create=False)
    st = load(rdb, r2.run_id)
    rdb.close()
    assert st.chain == [r1.run_id, r2.run_id] and len(st.li) == r2.summary["candidate_pairs"]
    assert st.rec_chain == [r1.run_id, r2.run_id] and st.n == n2
    chunk1 = _all(con, "SELECT sum(length(data)) FROM dedupe_state WHERE run_id = ? AND part LIKE 'pc:%'", r1.run_id)[0][0]
    chunk2 = _all(con, "SELECT sum(length(data)) FROM dedupe_state WHERE run_id = ? AND part LIKE 'pc:%'", r2.run_id)[0][0]
    assert chunk2 < 0.5 * chunk1
    # the views hold every run whole, with the columns of the tables they replace
    from reconcile.report import TABLES

    cols = [r[1] for r in _all(con, "PRAGMA table_info(records)")]
    assert cols == [c for c, _ in TABLES["records"]]
    assert _all(con, "SELECT run_id, count(*) FROM records GROUP BY run_id") == [(r1.run_id, n1), (r2.run_id, n2)]
    assert _all(con, "SELECT run_id, count(*) FROM person_records GROUP BY run_id") == [(r1.run_id, n1), (r2.run_id, n2)]
    # an unchanged record: same version in both runs, different line numbers allowed
    key = _all(con, "SELECT record_key FROM records WHERE run_id = ? AND fingerprint IN "
                    "(SELECT fingerprint FROM records WHERE run_id = ?) LIMIT 1", r2.run_id, r1.run_id)[0][0]
    both = _all(con, "SELECT r.run_id, r.name, p.person_id FROM records r JOIN person_records p ON p.run_id = r.run_id "
                     "AND p.record_key = r.record_key WHERE r.record_key = ? ORDER BY r.run_id", key)
    assert [b[0] for b in both] == [r1.run_id, r2.run_id] and both[0][1:] == both[1][1:]
    con.close()


def test_a_database_with_match_runs_is_converted_and_match_keeps_writing(tmp_path):
    """A report database that `match` wrote into (plain tables) gets the versioned storage from
    its first dedupe run; the match run's rows read the same afterwards, and a later match run
    writes through the views (INSTEAD OF triggers). A dedupe run killed while converting leaves
    the database as it was."""
    from reconcile.match import MatchOptions, run_match
    from reconcile.report import open_report

    samples = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
    db = tmp_path / "mixed.db"
    mopts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    m1 = run_match(samples / "tiny_origin.csv", samples / "tiny_dest.csv", db, mopts)
    con = sqlite3.connect(db)
    before = pd.read_sql("SELECT * FROM records WHERE run_id = ? ORDER BY source, record_key", con, params=(m1.run_id,))
    pr_before = pd.read_sql("SELECT * FROM person_records WHERE run_id = ? ORDER BY source, record_key", con,
                            params=(m1.run_id,))
    con.close()
    assert len(before) and len(pr_before)

    def boom(*a, **k):
        raise RuntimeError("killed while writing")

    orig = incremental.save_state
    incremental.save_state = boom
    try:
        with pytest.raises(RuntimeError):
            run_dedupe([samples / "tiny_origin.csv"], db, DedupeOptions(load={"key": "编号"}))
    finally:
        incremental.save_state = orig
    con = sqlite3.connect(db)
    assert _all(con, "SELECT type FROM sqlite_master WHERE name = 'records'") == [("table",)]
    con.close()

    d1 = run_dedupe([samples / "tiny_origin.csv"], db, DedupeOptions(load={"key": "编号"}))
    m2 = run_match(samples / "tiny_origin.csv", samples / "tiny_dest.csv", db, mopts)
    con = sqlite3.connect(db)
    assert _all(con, "SELECT type FROM sqlite_master WHERE name = 'records'") == [("view",)]
    after = pd.read_sql("SELECT * FROM records WHERE run_id = ? ORDER BY source, record_key", con, params=(m1.run_id,))
    pd.testing.assert_frame_equal(before, after)
    again = pd.read_sql("SELECT * FROM records WHERE run_id = ? ORDER BY source, record_key", con, params=(m2.run_id,))
    pd.testing.assert_frame_equal(before.drop(columns="run_id"), again.drop(columns="run_id"))
    pr = pd.read_sql("SELECT * FROM person_records WHERE run_id = ? ORDER BY source, record_key", con,
                     params=(m2.run_id,))
    assert len(pr) == len(pr_before)
    n_dedupe = _all(con, "SELECT count(*) FROM records WHERE run_id = ?", d1.run_id)[0][0]
    assert n_dedupe == d1.summary["records"]
    assert _all(con, "SELECT count(*) FROM records_direct WHERE run_id = ?", d1.run_id) == [(0,)]
    con.close()
    # every reader of the report opens it as before (schema sync leaves the views alone)
    rdb = open_report(db, create=False)
    assert "records" in rdb.view_names()
    rdb.close()
    from reconcile.history import diff_runs

    diff = diff_runs(open_report(db, create=False), m1.run_id, m2.run_id)
    assert diff["records"]["counts"] == {"added": 0, "removed": 0, "changed": 0}


def test_a_state_of_an_older_format_makes_one_full_run(months, tmp_path):
    """A database written before the versioned storage (state format 2/3) gets one full run that
    says why; the next run is incremental again."""
    import json

    d, _ = months
    db = tmp_path / "o.db"
    r1 = run_dedupe([d / "month_01.csv"], db, DedupeOptions(load={"key": "编号"}))
    con = sqlite3.connect(db)
    meta = json.loads(con.execute("SELECT data FROM dedupe_state WHERE run_id = ? AND part = 'meta'", (r1.run_id,)).fetchone()[0])
    meta["format"] = 2
    con.execute("UPDATE dedupe_state SET data = ? WHERE run_id = ? AND part = 'meta'", (json.dumps(meta).encode(), r1.run_id))
    con.commit()
    con.close()
    r2 = run_dedupe([d / "month_02.csv"], db, DedupeOptions(load={"key": "编号"}))
    assert r2.summary["mode"] == "full" and r2.summary["work"]["why_full"].startswith("stored state of an older format (2")
    r3 = run_dedupe([d / "month_03.csv"], db, DedupeOptions(load={"key": "编号"}))
    assert r3.summary["mode"] == "incremental"
