"""The `records` table is built and written in chunks (reconcile.report.ChunkedFrame): the rows
must be the same, in the same order, whatever the chunk size."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

import reconcile.match as match_mod
from reconcile.match import MatchOptions, run_match
from reconcile.report import ChunkedFrame

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
KEYS = {"origin": {"key": "编号"}, "dest": {"key": "序号"}}


def _records(db: Path) -> pd.DataFrame:
    con = sqlite3.connect(db)
    try:
        return pd.read_sql("SELECT * FROM records ORDER BY rowid", con)
    finally:
        con.close()


def test_records_are_the_same_in_chunks_of_three(tmp_path, monkeypatch):
    whole, chunked = tmp_path / "whole.db", tmp_path / "chunked.db"
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", whole, MatchOptions(**KEYS))
    monkeypatch.setattr(match_mod, "RECORD_CHUNK", 3)
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", chunked, MatchOptions(**KEYS))
    a, b = _records(whole), _records(chunked)
    assert len(a) > 6                                    # several chunks per side
    pd.testing.assert_frame_equal(a, b)
    assert a["raw_json"].str.contains("姓名").all()       # each row has its own raw line
    origin = b[b["source"] == "origin"]
    assert [json.loads(r)["编号"] for r in origin["raw_json"]] == origin["record_key"].tolist()


def test_links_are_the_same_in_chunks_of_two(tmp_path, monkeypatch):
    """`links` (their evidence JSON with them) are built chunk by chunk as well."""
    whole, chunked = tmp_path / "whole.db", tmp_path / "chunked.db"
    run_match(SAMPLES / "origin_gb18030.csv", SAMPLES / "dest_utf8bom.csv", whole,
              MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    monkeypatch.setattr(match_mod, "LINK_CHUNK", 2)
    run_match(SAMPLES / "origin_gb18030.csv", SAMPLES / "dest_utf8bom.csv", chunked,
              MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    con_a, con_b = sqlite3.connect(whole), sqlite3.connect(chunked)
    try:
        a = pd.read_sql("SELECT * FROM links ORDER BY rowid", con_a)
        b = pd.read_sql("SELECT * FROM links ORDER BY rowid", con_b)
    finally:
        con_a.close()
        con_b.close()
    assert len(a) > 10 and set(a["source_pair"]) == {"origin-dest", "origin-origin", "dest-dest"}
    pd.testing.assert_frame_equal(a, b)
    assert all(json.loads(e)["fields"]["name"]["level"] for e in b["evidence_json"])


def test_chunked_frame_to_frame_concatenates_in_order():
    parts = [lambda: pd.DataFrame({"x": [1, 2]}), lambda: pd.DataFrame({"x": [3]})]
    assert ChunkedFrame(parts).to_frame()["x"].tolist() == [1, 2, 3]
    assert [len(c) for c in ChunkedFrame(parts).chunks()] == [2, 1]


def _indexes(db: Path) -> dict[str, str]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    finally:
        con.close()


def test_a_new_report_gets_every_index_after_its_rows(tmp_path):
    """The indexes of empty tables are built once the run's rows are in (reconcile.report
    _DeferredIndexes): a new report ends with every index a report has, and a second run into
    it (its tables have rows: indexes kept up to date) ends with the same ones."""
    from reconcile.persons import _INDEXES as PERSON_INDEXES
    from reconcile.report import INDEXES

    out = tmp_path / "r.db"
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, MatchOptions(**KEYS))
    got = _indexes(out)
    want = {f"idx_{t}_{'_'.join(cols)}" for t, cols, _ in [*INDEXES, *PERSON_INDEXES]}
    assert want <= set(got), want - set(got)
    assert "UNIQUE" in got["idx_records_run_id_source_record_key"]
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, MatchOptions(**KEYS))
    assert _indexes(out) == got
    con = sqlite3.connect(out)
    plan = " ".join(r[-1] for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM records WHERE run_id = 2 AND source = 'origin' AND record_key = 'x'"))
    con.close()
    assert "idx_records_run_id_source_record_key" in plan


def test_a_failed_write_leaves_the_indexes_it_dropped(tmp_path):
    """The deferral's DROP INDEX is part of the run's transaction: a write that fails (here its
    extra writer) leaves the report as it was, indexes included, and no run."""
    import pytest

    from reconcile.report import RunOutput, open_report, write_run

    out = tmp_path / "r.db"
    db = open_report(out)
    before = _indexes(out)
    assert "idx_records_id_number" in before

    def boom(db, run_id):
        assert "idx_records_id_number" not in {r[0] for r in db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}   # deferred while writing
        raise RuntimeError("disk full")

    rows = pd.DataFrame({"source": ["origin"], "record_key": ["0001"], "id_number": ["431028********123X"]})
    with pytest.raises(RuntimeError, match="disk full"):
        write_run(db, RunOutput(command="match", started_at="now", tables={"records": rows}), extra_writer=boom)
    db.close()
    assert _indexes(out) == before
    con = sqlite3.connect(out)
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    con.close()


def _databases(db) -> list[str]:
    return [r[1] for r in db.conn.execute("PRAGMA database_list")]


def test_rows_built_beforehand_are_copied_with_the_run_id_in_order(tmp_path):
    """CopiedRows (the loading worker's records, reconcile.parallel): write_run copies them
    inside SQLite, after the chunks before them, with this run's id; the scratch file is
    detached afterwards, and a failed write copies nothing."""
    import pytest

    from reconcile.report import CopiedRows, RunOutput, open_report, write_copied_rows, write_run

    first = pd.DataFrame({"source": ["origin"] * 2, "record_key": ["0001", "0002"], "name": ["张伟", "欧阳·娜"]})
    later = pd.DataFrame({"source": ["dest"] * 3, "record_key": ["A1", "A2", "A3"], "name": ["張偉", "李娜", "王芳"],
                          "line": [2, 3, 5], "name_minority": [0, 1, 0]})
    copied = write_copied_rows(tmp_path / "scratch.tmp", "records", [later.iloc[:2], later.iloc[2:]])
    assert isinstance(copied, CopiedRows)
    pd.testing.assert_frame_equal(copied.frame("records")[list(later.columns)], later)

    db = open_report(tmp_path / "r.db")
    tables = {"records": ChunkedFrame([lambda: first, copied])}
    write_run(db, RunOutput(command="match", started_at="now", tables=tables))
    run2 = write_run(db, RunOutput(command="match", started_at="now", tables=tables))
    assert _databases(db) == ["main"]
    got = pd.read_sql("SELECT run_id, source, record_key, name, line, name_minority FROM records WHERE run_id = ? "
                      "ORDER BY rowid", db.conn, params=(run2,))
    assert got["run_id"].tolist() == [run2] * 5
    assert got["record_key"].tolist() == ["0001", "0002", "A1", "A2", "A3"]
    assert got["name"].tolist() == ["张伟", "欧阳·娜", "張偉", "李娜", "王芳"]
    assert got["line"].tolist()[2:] == [2, 3, 5] and got["name_minority"].tolist()[2:] == [0, 1, 0]

    def boom(db, run_id):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_run(db, RunOutput(command="match", started_at="now", tables=tables), extra_writer=boom)
    assert _databases(db) == ["main"]
    assert db.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 10
    assert db.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    db.close()


def test_rows_still_being_built_elsewhere_are_written_last(tmp_path):
    """A pending CopiedRows (the loading worker still building its records): write_run writes
    every other table and the extra writer first, then waits for the file (``ready``, called
    once) and copies it, in the same transaction, in the order of its table's parts."""
    from reconcile.report import CopiedRows, RunOutput, open_report, write_copied_rows, write_run

    calls: list[str] = []
    first = pd.DataFrame({"source": ["origin"], "record_key": ["0001"], "name": ["张伟"]})
    later = pd.DataFrame({"source": ["dest"] * 2, "record_key": ["A1", "A2"], "name": ["張偉", "买买提·艾力"]})
    path = tmp_path / "scratch.tmp"

    def ready() -> None:   # the worker delivers its file only now
        calls.append("ready")
        write_copied_rows(path, "records", [later])

    pending = CopiedRows(path, ready=ready)
    assert pending.pending and not path.exists()
    links = pd.DataFrame({"source_pair": ["origin-dest"], "origin_key": ["0001"], "dest_key": ["A1"]})

    def extra(db, run_id) -> None:
        calls.append("extra")

    db = open_report(tmp_path / "r.db")
    tables = {"records": ChunkedFrame([lambda: calls.append("first") or first, pending]), "links": links}
    run = write_run(db, RunOutput(command="match", started_at="now", tables=tables), extra_writer=extra)
    assert calls == ["extra", "first", "ready"]
    assert not pending.pending
    got = pd.read_sql("SELECT run_id, record_key, name FROM records ORDER BY rowid", db.conn)
    assert got["record_key"].tolist() == ["0001", "A1", "A2"] and set(got["run_id"]) == {run}
    assert got["name"].tolist()[2] == "买买提·艾力"
    assert db.conn.execute("SELECT count(*) FROM links").fetchone()[0] == 1
    db.close()


def test_a_run_written_beside_a_report_base_is_moved_into_it_whole(tmp_path):
    """finish_report_base (the loading worker's, reconcile.parallel): the first rows written
    beforehand with the run's id, the worker's appended, then the whole schema and its indexes.
    write_run_beside_base writes the rest of the run into a copy of the empty report meanwhile,
    then moves it into the base: the same tables, rows, indexes, views and triggers as write_run
    gives. When the worker gives no base, the records are written into the copy instead.
    CopiedRows with a source copy only that source's rows (the base's first part, should the
    worker fail after adding its own)."""
    import shutil

    import pytest

    from reconcile.persons import PERSON_TABLES
    from reconcile.report import (INDEXES, CopiedRows, ReportBase, RunOutput, finish_report_base, open_report,
                                  write_copied_rows, write_run, write_run_beside_base)
    from reconcile.review.ledger import ensure_ledger

    origin = pd.DataFrame({"source": ["origin"] * 2, "record_key": ["0001", "0002"], "name": ["张伟", "欧阳·娜"],
                           "id_number": ["43102819900101001X", "431028900101001"]})
    dest = pd.DataFrame({"source": ["dest"] * 3, "record_key": ["A1", "A2", "A3"], "name": ["張偉", "李娜", "王芳"],
                         "line": [2, 3, 5]})
    links = pd.DataFrame({"origin_key": ["0001"], "dest_key": ["A1"], "match_probability": [0.99]})

    def persons(db, run_id):   # an extra writer with tables of its own (reconcile.persons)
        from reconcile.report import ensure_tables

        ensure_tables(db, PERSON_TABLES, [("person_records", ("run_id", "person_id"), False)])
        db.conn.execute("INSERT INTO persons (person_id, first_run, last_run, status) VALUES ('P1', ?, ?, 'active')",
                        (run_id, run_id))

    empty = tmp_path / "empty.db"
    ensure_ledger(open_report(empty))   # (match creates the review ledger in the report first)

    def schema(path):
        con = sqlite3.connect(path)
        got = {r for r in con.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
        rows = {t: con.execute(f"SELECT * FROM [{t}] ORDER BY rowid").fetchall() for _, t in got if _ == "table"}
        con.close()
        rows["runs"] = [r[:2] + r[4:] for r in rows["runs"]]   # (started, finished: the clock's)
        return got, rows

    # the plain write, for comparison
    plain = tmp_path / "plain.db"
    shutil.copyfile(empty, plain)
    db = open_report(plain)
    write_run(db, RunOutput(command="match", started_at="now", tables={
        "records": ChunkedFrame([lambda: origin, lambda: dest]), "links": links}), extra_writer=persons)
    db.close()

    path = tmp_path / "base.tmp"
    first = write_copied_rows(path, "records", [origin], run_id=1)
    base = finish_report_base(path, [dest.iloc[:2], dest.iloc[2:]])
    assert base == ReportBase(path, 1)
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT record_key FROM records ORDER BY rowid")] == ["0001", "0002", "A1", "A2", "A3"]
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {f"idx_{t}_{'_'.join(c)}" for t, c, _ in INDEXES} <= names
    assert con.execute("PRAGMA page_size").fetchone()[0] == 16384
    con.close()

    # the base's first part alone, as write_run copies it when the worker failed after its rows
    only = CopiedRows(first.path, source="origin")
    assert only.frame("records")["record_key"].tolist() == ["0001", "0002"]

    copy = tmp_path / "copy.tmp"
    shutil.copyfile(empty, copy)
    out = RunOutput(command="match", started_at="now", tables={"records": ChunkedFrame([only]), "links": links})
    run_id, written = write_run_beside_base(copy, out, lambda: base, persons)
    assert (run_id, written) == (1, path)
    assert schema(written) == schema(plain)

    # no base: the records are written into the copy
    copy2 = tmp_path / "copy2.tmp"
    shutil.copyfile(empty, copy2)
    out = RunOutput(command="match", started_at="now", tables={
        "records": ChunkedFrame([lambda: origin, lambda: dest]), "links": links})
    assert write_run_beside_base(copy2, out, lambda: None, persons) == (1, copy2)
    assert schema(copy2) == schema(plain)

    with pytest.raises(ValueError):   # a report with runs is not a base
        finish_report_base(path, [dest])
    again = write_copied_rows(tmp_path / "other.tmp", "records", [origin], run_id=2)
    with pytest.raises(ValueError):   # rows of another run id than the one asked
        finish_report_base(again.path, [dest], run_id=1)
    other = finish_report_base(write_copied_rows(tmp_path / "third.tmp", "records", [origin], run_id=2).path,
                               [dest], run_id=2)
    copy3 = tmp_path / "copy3.tmp"
    shutil.copyfile(empty, copy3)
    with pytest.raises(ValueError):   # the run would be run 1: not the base's
        write_run_beside_base(copy3, RunOutput(command="match", started_at="now", tables={"links": links}),
                              lambda: other)
    assert sqlite3.connect(other.path).execute("SELECT count(*) FROM runs").fetchone()[0] == 0
