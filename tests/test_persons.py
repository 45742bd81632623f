"""Stable person IDs: the assignment rules (keep, merge -> older ID, split -> larger part, new,
gone, never reused), three successive generated monthly exports through `dedupe`, and `match`
repeated on the same report."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures.months import generate_months, write_months
from reconcile.dedupe import DedupeOptions, run_dedupe
from reconcile.persons import format_person_id, format_person_ids, plan_persons

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"


def plan(labels, prev, unchanged=None, first_run=None, next_number=100, keys=None):
    labels = np.array(labels)
    prev = np.array(prev, dtype=object)
    keys = np.array(keys or [f"k{i}" for i in range(len(labels))], dtype=object)
    unchanged = np.array(unchanged if unchanged is not None else [p != "" for p in prev])
    active = sorted({p for p in prev if p} | set((first_run or {}).keys()))
    return plan_persons(labels, keys, prev, unchanged, active, first_run or {}, next_number, previous_run=1)


# ---- the rules -------------------------------------------------------------------------------

def test_first_run_issues_ids_in_record_order_and_records_no_events():
    p = plan_persons(np.array([0, 0, 2, 3]), np.array(list("abcd"), dtype=object), np.array([""] * 4, dtype=object),
                     np.zeros(4, bool), [], {}, 1, previous_run=None)
    assert p.person_id.tolist() == ["P00000001", "P00000001", "P00000002", "P00000003"]
    assert p.events == [] and p.counts()["persons_new"] == 3


def test_same_records_keep_their_ids_and_a_new_record_joins_its_person():
    p = plan([0, 0, 2, 0], ["P00000005", "P00000005", "P00000009", ""])
    assert p.person_id.tolist() == ["P00000005", "P00000005", "P00000009", "P00000005"]
    assert p.events == [] and not p.new_ids


def test_merge_keeps_the_older_id_and_records_the_event():
    # P00000007 was issued in run 1, P00000003 in run 2: the older one (by run) survives
    p = plan([0, 0, 0], ["P00000007", "P00000003", "P00000003"], first_run={"P00000007": 1, "P00000003": 2})
    assert set(p.person_id) == {"P00000007"}
    assert [(e[0], e[1], e[2]) for e in p.events] == [("merged", "P00000007", "P00000003")]
    assert p.merged == [("P00000003", "P00000007")]


def test_merge_of_persons_from_the_same_run_keeps_the_lower_number():
    p = plan([0, 0], ["P00000012", "P00000004"], first_run={"P00000012": 1, "P00000004": 1})
    assert set(p.person_id) == {"P00000004"}


def test_split_keeps_the_id_on_the_larger_part():
    p = plan([0, 0, 2], ["P00000001", "P00000001", "P00000001"], next_number=40)
    assert p.person_id.tolist() == ["P00000001", "P00000001", "P00000040"]
    assert [(e[0], e[1], e[2]) for e in p.events] == [("split", "P00000001", "P00000040")]
    assert p.counts()["persons_new"] == 0 and p.counts()["persons_split"] == 1


def test_split_in_two_equal_parts_keeps_the_id_where_records_are_unchanged():
    p = plan([0, 1], ["P00000001", "P00000001"], unchanged=[False, True], next_number=8)
    assert p.person_id.tolist() == ["P00000008", "P00000001"]


def test_person_whose_records_all_disappeared_is_gone_and_new_people_get_new_ids():
    p = plan([0, 1], ["P00000001", ""], first_run={"P00000001": 1, "P00000002": 1}, next_number=3)
    assert p.person_id.tolist() == ["P00000001", "P00000003"]
    assert ("gone", "P00000002", None, "") in p.events and ("new", "P00000003", None, "") in p.events


def test_person_id_format_is_opaque_and_padded():
    assert format_person_id(42) == "P00000042"
    # many at once (plan_persons' new IDs): the same texts, past the width too
    assert format_person_ids(99_999_998, 3) == ["P99999998", "P99999999", "P100000000"]
    assert format_person_ids(7, 0) == [] and format_person_ids(41, 2) == [format_person_id(41), "P00000042"]


# ---- three monthly exports -------------------------------------------------------------------

@pytest.fixture(scope="module")
def months(tmp_path_factory):
    d = tmp_path_factory.mktemp("months")
    exports = generate_months(persons=2500, seed=3, months=3)
    write_months(exports, d)
    db = d / "m.db"
    runs = [run_dedupe([d / f"month_{e.month:02d}.csv"], db, DedupeOptions(load={"key": "编号"})) for e in exports]
    con = sqlite3.connect(db)
    yield exports, runs, con
    con.close()


def pid_map(con, run_id: int) -> dict[str, str]:
    return dict(con.execute("SELECT record_key, person_id FROM person_records WHERE run_id = ?", (run_id,)).fetchall())


def test_later_runs_were_incremental(months):
    _, runs, _ = months
    assert [r.summary["mode"] for r in runs] == ["full", "incremental", "incremental"]


def test_every_record_has_one_person_and_ids_are_never_reused(months):
    exports, runs, con = months
    for e, r in zip(exports, runs):
        m = pid_map(con, r.run_id)
        assert set(m) == set(e.truth["record_key"])
    persons = pd.read_sql("SELECT * FROM persons", con)
    assert persons.person_id.is_unique
    # each run's new IDs are numbered after every ID issued before
    for r_prev, r in zip(runs, runs[1:]):
        before = persons[persons.first_run < r.run_id].person_id.map(lambda p: int(p[1:])).max()
        new = persons[persons.first_run == r.run_id].person_id.map(lambda p: int(p[1:]))
        assert (new > before).all()


def test_unchanged_records_keep_their_person(months):
    exports, runs, con = months
    for month in (1, 2):
        e_next = exports[month]
        before, after = pid_map(con, runs[month - 1].run_id), pid_map(con, runs[month].run_id)
        t = e_next.truth
        stable = t[(t["event"] == "unchanged") & (t["flags"] == "")]
        kept = np.mean([before[k] == after[k] for k in stable.record_key])
        assert kept >= 0.99, kept


def test_merge_set_ups_merge_into_the_older_id(months):
    exports, runs, con = months
    ev = exports[1].events
    merges = ev[ev.event == "merge_corrected"]
    assert len(merges)
    before, after = pid_map(con, runs[0].run_id), pid_map(con, runs[1].run_id)
    events = pd.read_sql("SELECT * FROM person_events WHERE run_id = ? AND event = 'merged'", con, params=(runs[1].run_id,))
    got = 0
    for k, detail in zip(merges.record_key, merges.detail):
        src = detail.rsplit(" ", 1)[-1]                    # "now plainly the same as 0000123"
        if after[k] != after[src]:
            continue                                       # the deduper did not see it: counted below
        got += 1
        assert after[k] == before[src]                     # the older ID (issued to the first record)
        row = events[(events.person_id == before[src]) & (events.other_person_id == before[k])]
        assert len(row) == 1 and k in row.reason.iloc[0]
    assert got >= 0.8 * len(merges)


def test_split_set_ups_split_and_the_original_keeps_its_id(months):
    exports, runs, con = months
    ev1, ev2 = exports[0].events, exports[1].events
    copies = dict(zip(ev1[ev1.event == "split_pending"].record_key,
                      ev1[ev1.event == "split_pending"].detail.str.rsplit(" ", n=1).str[-1]))
    assert copies
    before, after = pid_map(con, runs[0].run_id), pid_map(con, runs[1].run_id)
    events = pd.read_sql("SELECT * FROM person_events WHERE run_id = ? AND event = 'split'", con, params=(runs[1].run_id,))
    seen = 0
    for k, orig in copies.items():
        if before[k] != before[orig]:
            continue                                       # month 1 did not merge the copy: nothing to split
        seen += 1
        assert after[orig] == before[orig] and after[k] != before[orig]
        assert ((events.person_id == before[orig]) & (events.other_person_id == after[k])).sum() == 1
    assert seen >= 0.8 * len(copies)


def test_persons_whose_records_were_deleted_are_gone(months):
    exports, runs, con = months
    before, after = pid_map(con, runs[0].run_id), pid_map(con, runs[1].run_id)
    deleted = exports[1].events[exports[1].events.event == "deleted"].record_key
    remaining = set(after.values())
    gone_expected = {before[k] for k in deleted if before[k] not in remaining}
    assert gone_expected
    got = {r[0] for r in con.execute("SELECT person_id FROM person_events WHERE run_id = ? AND event = 'gone'",
                                     (runs[1].run_id,))}
    merged_away = {r[0] for r in con.execute("SELECT other_person_id FROM person_events WHERE run_id = ? AND "
                                             "event = 'merged'", (runs[1].run_id,))}
    assert got == {p for p in set(before.values()) - remaining if p not in merged_away}
    assert gone_expected <= got | merged_away
    status = dict(con.execute("SELECT person_id, status FROM persons").fetchall())
    assert {status[p] for p in got} == {"gone"}


def test_new_record_of_a_known_person_gets_that_persons_id(months):
    exports, runs, con = months
    ev = exports[1].events
    adds = ev[(ev.event == "added") & ev.detail.str.startswith("new record of the person of")]
    before, after = pid_map(con, runs[0].run_id), pid_map(con, runs[1].run_id)
    ok = [after[k] == before[d.rsplit(" ", 1)[-1]] for k, d in zip(adds.record_key, adds.detail)
          if d.rsplit(" ", 1)[-1] in after]
    assert ok and np.mean(ok) >= 0.8


# ---- match repeated monthly ------------------------------------------------------------------

def test_match_keeps_person_ids_across_runs_and_registries(tmp_path):
    from reconcile.match import MatchOptions, run_match

    out = tmp_path / "m.db"
    opts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    r1 = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    r2 = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    con = sqlite3.connect(out)
    rows = pd.read_sql("SELECT run_id, source, record_key, person_id FROM person_records", con)
    a = rows[rows.run_id == r1.run_id].set_index(["source", "record_key"]).person_id
    b = rows[rows.run_id == r2.run_id].set_index(["source", "record_key"]).person_id
    assert a.sort_index().equals(b.sort_index())
    traced = pd.read_sql("SELECT origin_key, dest_key FROM traced WHERE run_id = ?", con, params=(r1.run_id,))
    assert len(traced)
    for o, d in zip(traced.origin_key, traced.dest_key):
        assert a[("origin", o)] == a[("dest", d)]
    assert con.execute("SELECT count(*) FROM person_events WHERE run_id = ?", (r2.run_id,)).fetchone()[0] == 0
    con.close()
