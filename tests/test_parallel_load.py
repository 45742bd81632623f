"""Loading the two registries side by side (reconcile.parallel): the same sides as one after the
other, the same errors, in the run's language; the larger registry in the worker, which then
compares it with itself."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

import reconcile.parallel as par
from reconcile.errors import ReconcileError
from reconcile.i18n import get_lang, set_lang
from reconcile.match import load_side

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
KEYS = {"key": "编号"}, {"key": "序号"}


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(par, "_cores", lambda: 2)
    monkeypatch.delenv("RECONCILE_WORKERS", raising=False)


@pytest.fixture
def chinese():
    before = get_lang()
    set_lang("zh")
    yield
    set_lang(before)


def _origin_with_bad_rows(tmp_path: Path) -> Path:
    """The GB18030 sample plus a row with a field too many and a trailing 合计 row."""
    p = tmp_path / "户籍.csv"
    text = (SAMPLES / "origin_gb18030.csv").read_bytes().decode("gb18030").rstrip("\r\n")
    text += "\r\n9998,李四,男,1990-01-01,431028199001010011,安仁县,流出,东莞,永乐江镇,多余\r\n合计,306,,,,,,,\r\n"
    p.write_bytes(text.encode("gb18030"))
    return p


def test_side_by_side_gives_the_same_sides(tmp_path, two_cores, chinese):
    origin = _origin_with_bad_rows(tmp_path)
    dest = SAMPLES / "dest.xlsx"
    assert par.use_second_core(origin, dest, min_bytes=0)
    with par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0) as sides:
        o2, d2 = sides.origin, sides.dest
        assert sides.blocked("origin") is None and sides.blocked("dest") is None   # only loading asked
    o1, d1 = load_side("origin", origin, KEYS[0]), load_side("dest", dest, KEYS[1])
    for a, b in ((o1, o2), (d1, d2)):
        pd.testing.assert_frame_equal(a.std, b.std)
        pd.testing.assert_frame_equal(a.loaded.raw, b.loaded.raw)
        assert a.sha256 == b.sha256 and a.loaded.encoding == b.loaded.encoding
        assert [vars(r) for r in a.loaded.rejected] == [vars(r) for r in b.loaded.rejected]
    assert len(o2.loaded.rejected) == 2 and len(o2.std) == 306
    # rows in = rows loaded + rows rejected, and the reasons in the run's language (Chinese)
    assert o2.loaded.rows_read == len(o2.std) + len(o2.loaded.rejected)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r.reason) for r in o2.loaded.rejected)


def test_a_bad_origin_gives_the_ordinary_error(tmp_path, two_cores):
    bad = tmp_path / "origin.csv"
    bad.write_bytes(b"")
    with pytest.raises(ReconcileError) as side_by_side:
        par.load_sides(bad, SAMPLES / "dest_utf8bom.csv", KEYS[0], KEYS[1], min_bytes=0)
    with pytest.raises(ReconcileError) as alone:
        load_side("origin", bad, KEYS[0])
    assert type(side_by_side.value) is type(alone.value) and str(side_by_side.value) == str(alone.value)
    assert side_by_side.value.exit_code == 4


def test_small_files_or_one_core_load_here(tmp_path, monkeypatch):
    small = SAMPLES / "tiny_origin.csv"
    assert not par.use_second_core(small, small)                   # under the size threshold
    monkeypatch.setattr(par, "_cores", lambda: 1)
    assert not par.use_second_core(small, small, min_bytes=0)      # one core
    monkeypatch.setattr(par, "_cores", lambda: 2)
    monkeypatch.setenv("RECONCILE_WORKERS", "1")
    assert not par.use_second_core(small, small, min_bytes=0)      # turned off


def _tables(db_path: Path) -> dict[str, pd.DataFrame]:
    import sqlite3

    con = sqlite3.connect(db_path)
    out = {}
    for table, order in (("links", "source_pair, origin_key, dest_key"), ("untraceable", "origin_key"),
                         ("unregistered", "dest_key"), ("duplicates", "source, cluster_id, record_key"),
                         ("id_conflicts", "source, record_key"), ("records", "source, record_key")):
        out[table] = pd.read_sql(f"SELECT * FROM {table} ORDER BY {order}", con).drop(columns=["run_id"])
    con.close()
    return out


def test_match_with_the_second_core_writes_the_same_report(tmp_path, two_cores, monkeypatch):
    """The destination (the larger file) loaded, blocked and compared with itself in the worker,
    the origin's within-file comparison done here meanwhile: the same report as one process."""
    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    assert dest.stat().st_size > origin.stat().st_size
    opts = dict(origin=dict(KEYS[0]), dest=dict(KEYS[1]))
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    side_by_side = run_match(origin, dest, tmp_path / "two.db", MatchOptions(**opts))
    assert "within_origin_beside_load" in side_by_side.timings     # done here while the worker loaded
    assert "within_dest_in_worker" in side_by_side.timings         # the worker's half came back
    assert "records_dest_in_worker" in side_by_side.timings        # and its records, built there
    assert "records_origin_beside_load" in side_by_side.timings    # the origin's here while it loaded
    assert "waited_for_dest_load" in side_by_side.timings
    assert "record_indexes_in_worker" in side_by_side.timings     # a new report: its base made there
    assert not list(tmp_path.glob(".reconcile-*"))                 # its scratch file is gone
    monkeypatch.setenv("RECONCILE_WORKERS", "1")
    alone = run_match(origin, dest, tmp_path / "one.db", MatchOptions(**opts))
    assert "within_dest_in_worker" not in alone.timings
    assert side_by_side.summary == alone.summary
    _assert_same_report(tmp_path / "two.db", tmp_path / "one.db")
    # the report moved into place has the permissions of one created there
    assert (tmp_path / "two.db").stat().st_mode == (tmp_path / "one.db").stat().st_mode


def _assert_same_report(a_path: Path, b_path: Path) -> None:
    """The same rows in the outcome tables, and the same tables, indexes, views and triggers."""
    import sqlite3

    def schema(path):
        con = sqlite3.connect(path)
        got = set(con.execute("SELECT type, name, tbl_name FROM sqlite_master"))
        con.close()
        return got

    assert schema(a_path) == schema(b_path)
    a, b = _tables(a_path), _tables(b_path)
    assert len(a["links"]) and len(a["duplicates"]) and len(a["records"]) == 306 + 546
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)


@pytest.fixture(scope="module")
def one_process_report(tmp_path_factory):
    """The report of the two samples matched in one process (RECONCILE_WORKERS=1)."""
    import os

    from reconcile.match import MatchOptions, run_match

    tmp = tmp_path_factory.mktemp("alone")
    before = os.environ.get("RECONCILE_WORKERS")
    os.environ["RECONCILE_WORKERS"] = "1"
    try:
        run_match(_origin_with_bad_rows(tmp), SAMPLES / "dest_utf8bom.csv", tmp / "one.db",
                  MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1])))
    finally:
        if before is None:
            del os.environ["RECONCILE_WORKERS"]
        else:
            os.environ["RECONCILE_WORKERS"] = before
    return tmp / "one.db"


def test_a_second_run_into_the_same_report_is_added_the_ordinary_way(tmp_path, two_cores, monkeypatch,
                                                                    one_process_report):
    """Only a report without a run is replaced by a report base; a run added to one that has
    runs copies the records into it, and its rows are those of the first run."""
    import sqlite3

    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    opts = MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1]))
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    report = tmp_path / "report.db"
    first = run_match(origin, dest, report, opts)
    second = run_match(origin, dest, report, opts)
    assert "record_indexes_in_worker" in first.timings and "record_indexes_in_worker" not in second.timings
    assert (first.run_id, second.run_id) == (1, 2) and first.summary == second.summary
    con = sqlite3.connect(report)
    rows = [pd.read_sql("SELECT * FROM records WHERE run_id = ? ORDER BY rowid", con, params=(r,)).drop(columns=["run_id"])
            for r in (1, 2)]
    con.close()
    pd.testing.assert_frame_equal(rows[0], rows[1])
    assert not list(tmp_path.glob(".reconcile-*"))


def test_an_empty_report_left_by_a_stopped_run_gets_a_report_base(tmp_path, two_cores, monkeypatch,
                                                                  one_process_report):
    """A run stopped while it writes into its report base (Ctrl-C) leaves the report as it was,
    a report without a run, and no scratch file; the worker ends. The next run, into that empty
    report, is written into a base of its own again: the same report as one process."""
    import sqlite3

    import reconcile.report as report_module
    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    opts = MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1]))
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    report = tmp_path / "report.db"
    real_base, real_move, workers = par.Sides.report_base, report_module._move_run, []

    def base(self):
        workers.append(self._worker)
        return real_base(self)

    def interrupted(path, made, pending):   # stopped while the run is moved into the base
        import sqlite3

        con = sqlite3.connect(made.path)
        con.execute("INSERT INTO runs (command) VALUES ('match')")
        con.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(par.Sides, "report_base", base)
    monkeypatch.setattr(report_module, "_move_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_match(origin, dest, report, opts)
    assert workers and all(w is None or w.poll() is not None for w in workers)
    con = sqlite3.connect(report)
    assert [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "records", "links")] == [0, 0, 0]
    con.close()
    assert not list(tmp_path.glob(".reconcile-*"))
    monkeypatch.setattr(report_module, "_move_run", real_move)
    again = run_match(origin, dest, report, opts)
    assert again.run_id == 1 and "record_indexes_in_worker" in again.timings
    _assert_same_report(report, one_process_report)


def test_a_report_that_cannot_be_replaced_is_a_report_error_and_stays_as_it_was(tmp_path, two_cores, monkeypatch):
    """Another program holds the report open (Windows refuses to replace it): a ReportError that
    names the report, the report still holds nothing, and no scratch file is left."""
    import sqlite3

    import os

    from reconcile.errors import ReportError
    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)

    def refused(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)
    report = tmp_path / "report.db"
    with pytest.raises(ReportError) as err:
        run_match(origin, dest, report, MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1])))
    assert err.value.key == "report.cannot_replace" and str(report) in str(err.value)
    assert "Permission denied" in str(err.value)
    con = sqlite3.connect(report)
    assert [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "records")] == [0, 0]
    con.close()
    assert not list(tmp_path.glob(".reconcile-*"))


def test_another_run_written_into_the_new_report_meanwhile_is_kept_and_this_one_refused(tmp_path, two_cores,
                                                                                       monkeypatch):
    """Two runs into one new report at once: the one that finds the report no longer empty when
    it would replace it fails loudly (a ReportError naming the report) instead of replacing the
    other's run; nothing of it is left behind."""
    import sqlite3

    from reconcile.errors import ReportError
    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    report = tmp_path / "report.db"
    real_base = par.Sides.report_base

    def base_meanwhile(self):   # the other run's row, written while this one works
        con = sqlite3.connect(report)
        con.execute("INSERT INTO runs (command, status) VALUES ('match', 'complete')")
        con.commit()
        con.close()
        return real_base(self)

    monkeypatch.setattr(par.Sides, "report_base", base_meanwhile)
    with pytest.raises(ReportError) as err:
        run_match(origin, dest, report, MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1])))
    assert err.value.key == "report.changed_meanwhile" and str(report) in str(err.value)
    con = sqlite3.connect(report)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    con.close()
    assert not list(tmp_path.glob(".reconcile-*"))


def test_a_new_report_reached_through_a_link_is_written_where_the_link_points(tmp_path, two_cores, monkeypatch):
    """The finished report replaces the file the link points to; the link stays a link."""
    import os
    import sqlite3

    from reconcile.match import MatchOptions, run_match

    if not hasattr(os, "symlink"):
        pytest.skip("no symbolic links here")
    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    (tmp_path / "reports").mkdir()
    target, link = tmp_path / "reports" / "real.db", tmp_path / "report.db"
    try:
        link.symlink_to(target)
    except OSError:   # (Windows without the privilege)
        pytest.skip("cannot make a symbolic link here")
    got = run_match(origin, dest, link, MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1])))
    assert "record_indexes_in_worker" in got.timings
    assert link.is_symlink() and target.is_file()
    con = sqlite3.connect(target)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    con.close()


def test_a_report_base_the_worker_cannot_finish_is_written_the_ordinary_way(tmp_path, two_cores, monkeypatch,
                                                                           one_process_report):
    """The worker fails to finish the report base (here: the file is not a base any more when
    it gets there): the origin's rows are copied from the base file, the destination's built
    here from its file; the same report as one process."""
    import sqlite3

    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    real_tell, told = par._tell_worker, []

    def tell(proc, base_started):
        told.append(base_started)
        for f in tmp_path.glob(".reconcile-*"):
            con = sqlite3.connect(f)
            if con.execute("SELECT 1 FROM sqlite_master WHERE name = 'records'").fetchone():
                con.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY)")   # finish_report_base refuses it
                con.commit()
            con.close()
        real_tell(proc, base_started)

    monkeypatch.setattr(par, "_tell_worker", tell)
    got = run_match(origin, dest, tmp_path / "two.db", MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1])))
    assert told == [True]
    assert "record_indexes_in_worker" not in got.timings and "records_dest_after_worker" in got.timings
    _assert_same_report(tmp_path / "two.db", one_process_report)
    assert not list(tmp_path.glob(".reconcile-*"))


def test_without_this_sides_records_the_worker_builds_its_own_as_before(tmp_path, two_cores, monkeypatch,
                                                                        one_process_report):
    """No records built here beside the load (no scratch file could be made): the worker is told
    so and builds its side's into its scratch file, copied into the report as without a base."""
    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    real_here, told = par.Sides._records_here, []
    monkeypatch.setattr(par.Sides, "_records_here",
                        lambda self, name, label, **kw: None if label == "beside_load" else real_here(self, name, label, **kw))
    real_tell = par._tell_worker
    monkeypatch.setattr(par, "_tell_worker", lambda proc, started: (told.append(started), real_tell(proc, started)))
    got = run_match(origin, dest, tmp_path / "two.db", MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1])))
    assert told == [False]
    assert "record_indexes_in_worker" not in got.timings and "records_dest_in_worker" in got.timings
    assert "records_dest_after_worker" not in got.timings
    _assert_same_report(tmp_path / "two.db", one_process_report)
    assert not list(tmp_path.glob(".reconcile-*"))


def test_one_process_builds_a_large_registrys_records_ahead_and_writes_the_same_report(tmp_path, monkeypatch):
    """Without a worker, a registry of RECORDS_AHEAD_MIN records or more gets its `records` rows
    built before the outcomes (then slimmed, its raw rows let go): the same report, no scratch
    file left behind."""
    import reconcile.match as rm

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    opts = dict(origin=dict(KEYS[0]), dest=dict(KEYS[1]))
    monkeypatch.setenv("RECONCILE_WORKERS", "1")
    monkeypatch.setattr(rm, "RECORDS_AHEAD_MIN", 0)
    ahead = rm.run_match(origin, dest, tmp_path / "ahead.db", rm.MatchOptions(**opts))
    assert {"records_origin_ahead", "records_dest_ahead"} <= set(ahead.timings)
    assert not list(tmp_path.glob(".reconcile-*"))
    monkeypatch.setattr(rm, "RECORDS_AHEAD_MIN", 10**9)
    later = rm.run_match(origin, dest, tmp_path / "later.db", rm.MatchOptions(**opts))
    assert "records_origin_ahead" not in later.timings
    assert ahead.summary == later.summary
    a, b = _tables(tmp_path / "ahead.db"), _tables(tmp_path / "later.db")
    assert len(a["records"]) == 306 + 546 and len(a["duplicates"])
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)


def test_a_side_with_its_records_built_keeps_only_what_assemble_reads():
    """slim_std: the addresses, raw names and numbers and blocking keys go (the records hold them);
    the fingerprints are those of the whole record, and k_filled counts the completeness fields
    the duplicates' survivor is chosen by."""
    from reconcile.match import ASSEMBLE_COLUMNS, default_comparators, slim_std
    from reconcile.fingerprint import record_fingerprints

    side = load_side("origin", SAMPLES / "origin_gb18030.csv", KEYS[0])
    full = side.std
    want_fp = record_fingerprints(full).to_numpy(object)
    comps = default_comparators()
    slim = slim_std(side, comps)
    assert (side.fingerprints == want_fp).all()
    needed = set(ASSEMBLE_COLUMNS).union(*(c.columns for c in comps)) | {"k_filled"}
    assert set(slim.columns) <= needed and "residence" not in slim and "hukou_address" not in slim
    assert "k_py" not in slim and "name_raw" not in slim and "id_raw" not in slim
    for c in slim.columns.drop("k_filled"):
        assert slim[c].equals(full[c])
    filled = sum((full[c] != "").astype(int) for c in ("name", "sex", "birth_date", "id_clean", "hukou_address", "residence"))
    assert (slim["k_filled"].to_numpy() == filled.to_numpy()).all() and filled.nunique() > 1
    assert "residence" in full   # the side's own frame is not written into


def _fails_in_a_worker(fn, left, right):
    """A comparator function that works in the test's own process and raises in any other."""
    import os

    if os.getpid() != int(os.environ["RECONCILE_TEST_PARENT_PID"]):
        raise RuntimeError("this comparator fails in the worker")
    return fn(left, right)


def test_a_worker_that_fails_after_loading_is_done_without(tmp_path, two_cores, monkeypatch):
    """The worker loads its side, then its within-file comparison fails there: the comparison is
    done here instead (on the side sent with only the linkage's columns), the records too (from
    the whole registry loaded again), and the report is the same as one process's."""
    import functools
    import os
    from dataclasses import replace

    from reconcile.match import MatchOptions, default_comparators, run_match

    monkeypatch.setenv("RECONCILE_TEST_PARENT_PID", str(os.getpid()))
    comps = [replace(c, fn=functools.partial(_fails_in_a_worker, c.fn)) if c.field == "sex" else c
             for c in default_comparators()]
    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    opts = dict(origin=dict(KEYS[0]), dest=dict(KEYS[1]))
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    broken = run_match(origin, dest, tmp_path / "two.db", MatchOptions(**opts), comparators=comps)
    assert "within_origin_beside_load" in broken.timings            # the side-by-side path was taken
    assert "waited_for_dest_within" in broken.timings              # the worker handed its side over
    assert "within_dest_in_worker" not in broken.timings            # but its half failed there
    assert "records_dest_in_worker" not in broken.timings           # so did its records: built here
    assert not list(tmp_path.glob(".reconcile-*"))
    monkeypatch.setenv("RECONCILE_WORKERS", "1")
    alone = run_match(origin, dest, tmp_path / "one.db", MatchOptions(**opts), comparators=comps)
    assert broken.summary == alone.summary
    a, b = _tables(tmp_path / "two.db"), _tables(tmp_path / "one.db")
    for table in a:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """The worker is a fresh ``python -m reconcile.parallel``: it never runs the caller's script
    again (multiprocessing's spawn does, for a script without ``if __name__ == "__main__"``)."""
    import subprocess
    import sys

    runs = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import reconcile.parallel as par\n"
        "par._cores = lambda: 2\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        f"s = par.load_sides({str(SAMPLES / 'origin_gb18030.csv')!r}, {str(SAMPLES / 'dest_utf8bom.csv')!r},\n"
        "                    {'key': '编号'}, {'key': '序号'}, min_bytes=0, within=None)\n"
        "print(len(s.origin.std), len(s.dest.std))\n", encoding="utf-8")
    env = {k: v for k, v in __import__("os").environ.items() if k != "RECONCILE_WORKERS"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["306", "546"]
    assert runs.read_text().splitlines() == ["run"]


def test_records_the_worker_did_not_build_are_built_here_from_its_file(tmp_path, two_cores):
    """With a scratch directory the worker keeps its side's raw rows (it builds the records);
    when it cannot deliver them, the raw rows are read here again, the same as a load gives."""
    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    sides = par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0, scratch_dir=tmp_path)
    try:
        assert sides.dest.loaded.raw is None           # not sent: the worker builds the records
        assert list(tmp_path.glob(".reconcile-*.records.tmp"))
        sides.close()                                  # the worker ends before it delivers them
        assert sides.prepared_records("dest") is None
        pd.testing.assert_frame_equal(sides.dest.loaded.raw, load_side("dest", dest, KEYS[1]).loaded.raw)
        # this process's side: built here into a scratch file of its own
        here = sides.prepared_records("origin")
        assert len(here.frame("records")) == 306 and len(list(tmp_path.glob(".reconcile-*.records.tmp"))) == 2
    finally:
        sides.remove_files()
    assert not list(tmp_path.glob(".reconcile-*"))


def test_a_side_sent_for_linking_only_is_loaded_whole_again_when_its_records_fail(tmp_path, two_cores):
    """With ``send_only`` the worker sends its side with those columns and k_filled alone (the
    records and fingerprints are built there); when it cannot deliver the records, the whole
    registry is loaded here again: the same frame, raw rows and fingerprints as a load gives."""
    from reconcile.fingerprint import record_fingerprints
    from reconcile.match import default_comparators, filled_counts, linking_columns

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    cols = linking_columns(default_comparators())
    whole = load_side("dest", dest, KEYS[1])
    sides = par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0, scratch_dir=tmp_path, send_only=cols)
    try:
        d = sides.dest
        assert d.linking_only and d.loaded.raw is None
        assert set(d.std.columns) == (cols & set(whole.std.columns)) | {"k_filled"}
        assert "residence" not in d.std and "id_raw" not in d.std and "hukou_address" not in d.std
        assert (d.std["k_filled"].to_numpy() == filled_counts(whole.std)).all()
        with pytest.raises(RuntimeError):   # never of a part of each record
            d.fingerprints
        sides.close()                                  # the worker ends before it delivers the records
        assert sides.prepared_records("dest") is None
        assert not d.linking_only
        pd.testing.assert_frame_equal(d.std, whole.std)
        pd.testing.assert_frame_equal(d.loaded.raw, whole.loaded.raw)
        assert (d.fingerprints == record_fingerprints(whole.std).to_numpy(object)).all()
    finally:
        sides.remove_files()
    assert not list(tmp_path.glob(".reconcile-*"))


def test_a_side_sent_for_linking_only_gets_the_fingerprints_with_its_records(tmp_path, two_cores):
    """The worker's records come back with the fingerprints of the whole records."""
    from reconcile.fingerprint import record_fingerprints
    from reconcile.match import default_comparators, linking_columns

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    sides = par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0, scratch_dir=tmp_path,
                           send_only=linking_columns(default_comparators()))
    try:
        copied = sides.prepared_records("dest")
        assert copied is not None and len(copied.frame("records")) == 546
        want = record_fingerprints(load_side("dest", dest, KEYS[1]).std).to_numpy(object)
        assert (sides.dest.fingerprints == want).all()
        assert (copied.frame("records")["fingerprint"].to_numpy(object) == want).all()
    finally:
        sides.close()
        sides.remove_files()


def test_records_still_being_built_are_waited_for_or_built_here(tmp_path, two_cores):
    """After the within-file comparison the worker's records are still pending: prepared_records
    gives a CopiedRows that waits for them when read. The worker delivers them; or, when it
    ends first, they are built here into its scratch file from the whole registry loaded again:
    the same rows either way."""
    from reconcile.match import WITHIN_PASSES, default_comparators, linking_columns

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    comps = default_comparators()
    got = {}
    for case in ("delivered", "worker ended"):
        sides = par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0, within=(comps, WITHIN_PASSES, 2000),
                               scratch_dir=tmp_path, send_only=linking_columns(comps))
        try:
            assert sides.blocked("dest") is not None and sides.dest.linking_only
            copied = sides.prepared_records("dest")
            assert copied.pending
            if case == "worker ended":
                sides.close()
            got[case] = copied.frame("records")
            assert not copied.pending
            built_here = "records_dest_after_worker" in sides.timings
            assert built_here == (case == "worker ended")
        finally:
            sides.close()
            sides.remove_files()
    assert len(got["delivered"]) == 546
    pd.testing.assert_frame_equal(got["delivered"], got["worker ended"])
    assert not list(tmp_path.glob(".reconcile-*"))


def test_column_view_shares_a_registrys_columns_and_copies_views_into_blocks():
    """column_view (slim_std, the worker's linking side): the kept columns are the registry's own
    arrays, not a copy of them; a column inside a larger block is copied (the block can go)."""
    import numpy as np

    from reconcile.match import column_view

    side = load_side("dest", SAMPLES / "dest_utf8bom.csv", KEYS[1])
    view = column_view(side.std, ["record_key", "name", "id_clean"])
    assert list(view.columns) == ["record_key", "name", "id_clean"]
    for c in view.columns:
        assert np.shares_memory(view[c].to_numpy(), side.std[c].to_numpy())
    block = side.std[["name", "surname", "given"]].copy()   # one consolidated block
    got = column_view(block, ["name"])
    assert got["name"].equals(block["name"]) and not np.shares_memory(got["name"].to_numpy(), block["name"].to_numpy())


def test_ctrl_c_while_the_report_waits_for_the_workers_records_keeps_the_report_whole(tmp_path, two_cores,
                                                                                     monkeypatch):
    """Ctrl-C while the report waits for the worker's records (written last): nothing of the run
    is kept (the earlier run is intact), the worker ends and no scratch file is left."""
    import sqlite3

    from reconcile.match import MatchOptions, run_match

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    opts = MatchOptions(origin=dict(KEYS[0]), dest=dict(KEYS[1]))
    monkeypatch.setattr(par, "PARALLEL_LOAD_MIN_BYTES", 0)
    report = tmp_path / "report.db"
    first = run_match(origin, dest, report, opts)
    con = sqlite3.connect(report)
    before = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "records", "links", "persons")}
    con.close()
    workers = []

    def interrupted(self, name):
        workers.append(self._worker)
        raise KeyboardInterrupt

    monkeypatch.setattr(par.Sides, "_await_records", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_match(origin, dest, report, opts)
    assert workers and workers[0] is not None and workers[0].poll() is not None   # the worker ended
    con = sqlite3.connect(report)
    after = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "records", "links", "persons")}
    statuses = [r[0] for r in con.execute("SELECT status FROM runs")]
    con.close()
    assert after == before and statuses == ["complete"] and before["records"] == 306 + 546
    assert first.run_id == 1
    assert not list(tmp_path.glob(".reconcile-*"))


def _rows_built(path: Path, want: int, timeout: float) -> bool:
    """Whether a scratch file holds ``want`` committed `records` rows within ``timeout`` s (polled)."""
    import sqlite3
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
            try:
                if con.execute("SELECT count(*) FROM records").fetchone()[0] == want:
                    return True
            finally:
                con.close()
        except sqlite3.Error:   # not there yet, or being written
            pass
        time.sleep(0.2)
    return False


def test_the_worker_ends_once_its_records_are_built_not_when_they_are_read(tmp_path, two_cores):
    """Its last result is small enough for the pipe (the fingerprints came with the within-file
    result): the worker ends as soon as it has built its records, instead of holding its registry
    until the caller, which reads them when it writes the report, takes them. 11,150 records:
    their fingerprints alone would fill the pipe's buffer several times."""
    from fixtures import generate as g
    from reconcile.fingerprint import record_fingerprints
    from reconcile.match import WITHIN_PASSES, default_comparators, linking_columns

    paths = g.write(g.generate(6000, seed=5), tmp_path / "gen")
    comps = default_comparators()
    sides = par.load_sides(paths["origin"], paths["dest"], {}, {}, min_bytes=0,
                           within=(comps, WITHIN_PASSES, 2000), scratch_dir=tmp_path,
                           send_only=linking_columns(comps))
    try:
        assert sides.worker_side == "dest" and len(sides.dest.std) == 11_150
        # the worker compares its side with itself and builds its records while nothing it sent
        # after the side (term counts, within-file result) has been read: those writes wait in a
        # thread, not in its way
        assert _rows_built(sides._scratch[0], 11_150, timeout=120)
        assert sides.blocked("dest") is not None   # the within-file result, with the fingerprints
        worker = sides._worker
        assert worker is not None
        assert worker.wait(timeout=120) == 0       # ends (cleanly) without anything more being read
        copied = sides.prepared_records("dest")
        rows = copied.frame("records")
        assert "records_dest_in_worker" in sides.timings and "records_dest_after_worker" not in sides.timings
        want = record_fingerprints(load_side("dest", paths["dest"], {}).std).to_numpy(object)
        assert len(rows) == 11_150 and (rows["fingerprint"].to_numpy(object) == want).all()
        assert (sides.dest.fingerprints == want).all()
    finally:
        sides.close()
        sides.remove_files()
    assert not list(tmp_path.glob(".reconcile-*"))


def test_term_counts_come_from_beside_the_load_and_give_the_same_frequencies(tmp_path, two_cores, monkeypatch):
    """Each registry's term counts are taken where it was loaded (this process's side while the
    worker loads; the worker's side right after it sent it); the frequencies from them are those
    counted over both frames at once. When the worker failed before, they are counted here."""
    from reconcile.match import WITHIN_PASSES, default_comparators, linking_columns
    from reconcile.scoring import TermFrequencies, term_counts

    origin, dest = _origin_with_bad_rows(tmp_path), SAMPLES / "dest_utf8bom.csv"
    comps = default_comparators()
    whole_o, whole_d = load_side("origin", origin, KEYS[0]), load_side("dest", dest, KEYS[1])
    want = TermFrequencies.build(whole_o.std, whole_d.std).tables
    for case in ("delivered", "worker ended"):
        sides = par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0, within=(comps, WITHIN_PASSES, 2000),
                               scratch_dir=tmp_path, send_only=linking_columns(comps))
        try:
            assert "origin" in sides._counts                  # counted while the worker loaded
            if case == "worker ended":
                sides.close()
            import reconcile.scoring as scoring

            counted_here = []
            with monkeypatch.context() as m:
                m.setattr(scoring, "term_counts", lambda std: counted_here.append(len(std)) or term_counts(std))
                got = {name: sides.term_counts(name) for name in ("origin", "dest")}
            assert counted_here == ([] if case == "delivered" else [546])
            assert not sides._counts and "counts" not in sides._got   # read once, not held
            for name, side in (("origin", whole_o), ("dest", whole_d)):
                for field, counts in term_counts(side.std).items():
                    pd.testing.assert_series_equal(got[name][field].sort_index(), counts.sort_index())
            assert TermFrequencies.from_counts([got["origin"], got["dest"]]).tables == want
            assert sum(want["name"].values()) == pytest.approx(1.0)
        finally:
            sides.close()
            sides.remove_files()


def _bad_larger_dest(tmp_path: Path) -> Path:
    """A destination file larger than the origin sample, without a name column."""
    p = tmp_path / "现居住地.csv"
    rows = "".join(f"{i},备注{i}\n" for i in range(1, 20_001))
    p.write_text("序号,备注\n" + rows, encoding="utf-8")
    return p


def test_a_bad_larger_file_is_reported_once_this_side_is_loaded_with_the_workers_own_error(
        tmp_path, two_cores, monkeypatch, chinese, capfd):
    """The worker's file is bad: its error (pickled there, in the run's language) is raised as soon
    as this process has loaded its own side, without this process's steps beside the load and
    without loading the bad file again here."""
    import reconcile.match as match_module

    origin, dest = SAMPLES / "origin_gb18030.csv", _bad_larger_dest(tmp_path)
    with pytest.raises(ReconcileError) as alone:
        load_side("dest", dest, KEYS[1])
    started: list = []
    real_start, real_load = par._start_worker, match_module.load_side

    def start(job):
        started.append(real_start(job))
        return started[-1]

    loaded_here: list[str] = []

    def load_here(name, path, options):
        loaded_here.append(name)
        side = real_load(name, path, options)
        started[0].wait(timeout=120)   # the worker has failed by now: read before the next step
        return side

    blocked: list = []
    monkeypatch.setattr(par, "_start_worker", start)
    monkeypatch.setattr(match_module, "load_side", load_here)
    monkeypatch.setattr(par, "_block", lambda side, within: blocked.append(side))
    from reconcile.match import WITHIN_PASSES, default_comparators

    with pytest.raises(ReconcileError) as side_by_side:
        par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0,
                       within=(default_comparators(), WITHIN_PASSES, 2000), scratch_dir=tmp_path)
    got, want = side_by_side.value, alone.value
    assert type(got) is type(want) and got.key == want.key and got.params == want.params
    assert str(got) == str(want) and got.render("zh") == want.render("zh") and got.exit_code == want.exit_code
    assert loaded_here == ["origin"] and blocked == []           # nothing more here once it failed
    assert not list(tmp_path.glob(".reconcile-*")) and started[0].poll() == 0   # ended cleanly,
    assert capfd.readouterr().err == ""                            # silently (its stderr is the terminal's)


def test_scratch_files_of_ended_processes_are_deleted(tmp_path):
    """A run killed outright leaves its scratch files (personal data): the next run in that folder
    deletes those whose process no longer runs, and an older version's after a day."""
    import os
    import subprocess
    import sys
    import time

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = par._host_tag()
        names = {
            "dead": f".reconcile-{ended.pid}-{host}-a1b2.records.tmp",
            # the rollback journal a process killed inside a transaction leaves beside its file
            "dead_journal": f".reconcile-{ended.pid}-{host}-a1b2.records.tmp-journal",
            "mine": f".reconcile-{os.getpid()}-{host}-c3d4.records.tmp",
            "running": f".reconcile-{running.pid}-{host}-e5f6.records.tmp",
            "running_journal": f".reconcile-{running.pid}-{host}-e5f6.records.tmp-journal",
            # another computer writing into the same shared folder: its process ids mean nothing here
            "other_computer": f".reconcile-{ended.pid}-0bad0bad-g7h8.records.tmp",
            "other_computer_old": f".reconcile-{ended.pid}-0bad0bad-i9j0.records.tmp",
            "old_version_old": ".reconcile-x9y8.records.tmp",
            "old_version_new": ".reconcile-z7w6.records.tmp",
            "not_ours": "reconcile-notes.txt",
        }
        for n in names.values():
            (tmp_path / n).write_bytes(b"SQLite format 3\x00")
        two_days_ago = time.time() - 2 * 86400
        for k in ("old_version_old", "other_computer_old"):
            os.utime(tmp_path / names[k], (two_days_ago, two_days_ago))
        gone = par.remove_stale_scratch(tmp_path)
        assert sorted(p.name for p in gone) == sorted(names[k] for k in ("dead", "dead_journal", "other_computer_old",
                                                                          "old_version_old"))
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            names[k] for k in ("mine", "running", "running_journal", "other_computer", "old_version_new", "not_ours"))
    finally:
        running.kill()
        running.wait()


def test_a_runs_scratch_files_go_with_the_journals_sqlite_left_beside_them(tmp_path):
    """A worker killed inside its transaction on the report base (the run stopped) leaves the
    base's rollback journal: remove_files deletes it with the file."""
    import sqlite3

    sides = par.Sides(None, None, scratch_dir=tmp_path)
    path = sides._new_scratch()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE records (x)")
    con.commit()
    con.execute("INSERT INTO records VALUES ('张伟')")   # a transaction left open: its journal is there
    assert Path(f"{path}-journal").exists()
    sides.remove_files()
    con.close()
    assert not list(tmp_path.iterdir())


def _sleeps_in_a_worker(fn, left, right):
    """A comparator function that works in the test's own process and hangs in any other."""
    import os
    import time

    if os.getpid() != int(os.environ["RECONCILE_TEST_PARENT_PID"]):
        time.sleep(300)
    return fn(left, right)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")   # (a zombie nobody reaps in a container has ended)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux) to follow the worker")
def test_the_worker_ends_when_the_run_is_killed_outright(tmp_path):
    """SIGKILL (or the task manager) ends the run without any cleanup: its worker, still comparing
    its registry with itself, ends too instead of going on alone; the next run in that folder
    deletes the scratch files both left."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import functools, os, sys, time\n"
        "from dataclasses import replace\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "import reconcile.parallel as par\n"
        "from reconcile.match import WITHIN_PASSES, default_comparators\n"
        "from test_parallel_load import _sleeps_in_a_worker\n"
        "os.environ['RECONCILE_TEST_PARENT_PID'] = str(os.getpid())\n"
        "par._cores = lambda: 2\n"
        "comps = [replace(c, fn=functools.partial(_sleeps_in_a_worker, c.fn)) if c.field == 'sex' else c\n"
        "         for c in default_comparators()]\n"
        f"s = par.load_sides({str(SAMPLES / 'origin_gb18030.csv')!r}, {str(SAMPLES / 'dest_utf8bom.csv')!r},\n"
        "                    {'key': '编号'}, {'key': '序号'}, min_bytes=0, within=(comps, WITHIN_PASSES, 2000),\n"
        f"                    scratch_dir={str(tmp_path)!r})\n"
        "print(s._worker.pid, flush=True)\n"
        "time.sleep(300)\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "RECONCILE_WORKERS"}
    run = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        line = run.stdout.readline()
        assert line.strip().isdigit(), line
        worker = int(line)
        assert _running(worker)                       # comparing its side with itself (hangs there)
        assert len(list(tmp_path.glob(".reconcile-*.records.tmp"))) == 2   # its records', this side's
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.time() + 30
        while _running(worker) and time.time() < deadline:
            time.sleep(0.1)
        assert not _running(worker)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    left = list(tmp_path.glob(".reconcile-*.records.tmp"))
    assert len(left) == 2 and all(f"-{run.pid}-" in p.name for p in left)
    assert sorted(par.remove_stale_scratch(tmp_path)) == sorted(left)
    assert not list(tmp_path.glob(".reconcile-*"))


def test_both_files_bad_gives_the_origins_error_as_the_ordinary_path(tmp_path, two_cores):
    """The origin is the larger file (the worker reads it) and both are bad: this process finds
    the destination's problem first, but the ordinary path reads the origin first and reports
    its problem, so that one is raised."""
    origin = tmp_path / "户籍.csv"
    origin.write_text("编号,备注\n" + "".join(f"{i},备注{i}\n" for i in range(1, 5001)), encoding="utf-8")
    dest = tmp_path / "现居住地.csv"
    dest.write_text("序号,姓名\n", encoding="utf-8")
    with pytest.raises(ReconcileError) as alone:
        load_side("origin", origin, KEYS[0])
    with pytest.raises(ReconcileError) as side_by_side:
        par.load_sides(origin, dest, KEYS[0], KEYS[1], min_bytes=0)
    assert side_by_side.value.key == alone.value.key and str(side_by_side.value) == str(alone.value)
    assert "户籍.csv" in str(side_by_side.value)


def test_a_large_side_sent_with_its_distinct_columns_packed_is_the_same_frame(tmp_path, two_cores):
    """11,150 destination records: above reconcile.packing's MIN_ROWS, so its ID numbers, record
    keys and residences follow the pickle as buffers; the frame received equals the one loaded."""
    from fixtures import generate as g
    from reconcile import packing
    paths = g.write(g.generate(6000, seed=5), tmp_path / "gen")
    with par.load_sides(paths["origin"], paths["dest"], {}, {}, min_bytes=0) as sides:
        assert sides.worker_side == "dest"
        got = sides.dest.std
    want = load_side("dest", paths["dest"], {}).std
    assert len(want) >= packing.MIN_ROWS
    assert packing._worth_packing(want["id_clean"].to_numpy()) and packing._worth_packing(want["record_key"].to_numpy())
    pd.testing.assert_frame_equal(got, want)


def test_a_side_blocked_with_a_u_sample_carries_the_u_its_linkage_would_estimate(tmp_path):
    # the within-file linkage's u (random pairs of the file itself, no model needed) is estimated
    # where the side is blocked (the worker, or beside the load), not on the main process's path
    from reconcile.blocking import WITHIN_PASSES
    from reconcile.linkage import estimate_u
    from reconcile.match import default_comparators

    import numpy as np

    side = load_side("origin", _origin_with_bad_rows(tmp_path), KEYS[0])
    comps = default_comparators()
    blocked = par._block(side, (comps, WITHIN_PASSES, 2000, 5000))
    assert blocked.u_sample == 5000
    want = estimate_u(blocked.arrays[0], None, len(side.std), None, comps, 5000)
    assert all(np.array_equal(a, b) for a, b in zip(blocked.u, want))
    assert par._block(side, (comps, WITHIN_PASSES, 2000)).u is None   # (no sample size: no u)
