"""Stable person IDs across runs of one report database (`dedupe`, and `match` repeated monthly).

Tables (created by :func:`ensure_person_tables`, documented in docs/dedupe.md):

- ``persons(person_id TEXT PRIMARY KEY, first_run, last_run, status, merged_into)``: every ID ever
  issued; ``status`` is ``active`` (has records in ``last_run``), ``merged`` (absorbed into
  ``merged_into``) or ``gone`` (all its records disappeared). Rows are never deleted, so an ID is
  never issued twice.
- ``person_records(run_id, person_id, source, record_key)``: the person of every record of a run.
- ``person_events(run_id, event, person_id, other_person_id, reason)``: ``new`` | ``merged`` |
  ``split`` | ``gone``. ``merged``: ``other_person_id`` was absorbed into ``person_id`` (the older
  ID survives). ``split``: records of ``person_id`` now form ``other_person_id``. ``reason`` is a
  small JSON object (record keys involved).

A person ID is ``P`` + a zero-padded counter: opaque (not derived from the ID number or name).

Assignment (:func:`plan_persons`): a record that was in the previous run (same source and key)
brings its previous person along. Each previous person keeps its ID on the current cluster that
holds most of its records (ties: most records with unchanged content, then the lowest position);
a cluster claimed by several previous persons is a merge and keeps the oldest ID; a cluster
claimed by none gets a new ID (a ``split`` event when it holds records of an earlier person,
otherwise ``new``); a previous person none of whose records remain is ``gone``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import repeat
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import sqlite_utils

PERSON_TABLES: dict[str, list[tuple[str, str]]] = {
    "persons": [("person_id", "TEXT PRIMARY KEY"), ("first_run", "INTEGER"), ("last_run", "INTEGER"),
                ("status", "TEXT"), ("merged_into", "TEXT")],
    "person_records": [("run_id", "INTEGER"), ("person_id", "TEXT"), ("source", "TEXT"), ("record_key", "TEXT")],
    "person_events": [("run_id", "INTEGER"), ("event", "TEXT"), ("person_id", "TEXT"),
                      ("other_person_id", "TEXT"), ("reason", "TEXT")],
}
_INDEXES = [
    ("person_records", ("run_id", "source", "record_key"), True),
    ("person_records", ("run_id", "person_id"), False),
    ("person_events", ("run_id", "event"), False),
    ("person_events", ("person_id",), False),
]
EVENTS = ("new", "merged", "split", "gone")
ID_WIDTH = 8
# reason keys listed per event are capped: a merge of a big cluster still fits a line
_MAX_KEYS_IN_REASON = 20


def ensure_person_tables(db: sqlite_utils.Database) -> None:
    """Create the person tables and indexes if missing (idempotent; safe inside a transaction)."""
    from reconcile.report import ensure_tables

    ensure_tables(db, PERSON_TABLES, _INDEXES)


def format_person_id(number: int) -> str:
    return f"P{number:0{ID_WIDTH}d}"


def format_person_ids(first: int, n: int) -> list[str]:
    """``format_person_id`` of ``first``, ``first + 1``, ... (``n`` of them): one %-format each,
    mapped in C (2.5 M new persons at 1,000,000 per side: 0.7 s against 1.3 s one call each)."""
    return list(map(f"P%0{ID_WIDTH}d".__mod__, range(first, first + max(n, 0))))


def _id_number(pid: str) -> int:
    try:
        return int(pid[1:])
    except (TypeError, ValueError):
        return 0


def next_person_number(db: sqlite_utils.Database) -> int:
    """1 + the highest number ever issued in this database (IDs are never reused)."""
    if "persons" not in db.table_names():
        return 1
    row = db.execute("SELECT max(CAST(substr(person_id, 2) AS INTEGER)) FROM persons").fetchone()
    return int(row[0] or 0) + 1


@dataclass
class PreviousAssignment:
    """The person of every record of the run the new assignment continues from."""

    run_id: int
    source: np.ndarray        # object
    record_key: np.ndarray    # object
    person_id: np.ndarray     # object
    fingerprint: np.ndarray   # object ('' when unknown)


def previous_run_with_persons(db: sqlite_utils.Database, before: int | None = None) -> int | None:
    """The newest complete run that has person records (optionally older than ``before``)."""
    if "person_records" not in db.table_names() and "person_records" not in db.view_names():
        return None
    # newest first, one indexed probe per run (person_records may be a view: no DISTINCT scan)
    sql = "SELECT run_id FROM runs WHERE status = 'complete'" + (" AND run_id < ?" if before is not None else "")
    for (rid,) in db.execute(sql + " ORDER BY run_id DESC", (before,) if before is not None else ()).fetchall():
        if db.execute("SELECT 1 FROM person_records WHERE run_id = ? LIMIT 1", (rid,)).fetchone():
            return int(rid)
    return None


def load_previous(db: sqlite_utils.Database, before: int | None = None) -> PreviousAssignment | None:
    """Person of every record of the newest earlier run with persons, with the records' fingerprints."""
    from reconcile import record_store

    rid = previous_run_with_persons(db, before)
    if rid is None:
        return None
    if record_store.run_is_versioned(db, rid):
        # a dedupe run: person and fingerprint are stored with each record version
        cur = db.execute(f"SELECT v.source, v.record_key, v.person_id, coalesce(v.fingerprint, '') "
                         f"FROM [{record_store.MEMBERS}] m JOIN [{record_store.VERSIONS}] v "
                         "ON v.version_id = m.version_id WHERE m.run_id = ? AND v.person_id IS NOT NULL", (rid,))
    else:
        # the tables rows are written to (never a view on the right of a LEFT JOIN: SQLite would
        # materialise all of it)
        pr, rec = record_store.physical(db, "person_records"), record_store.physical(db, "records")
        cur = db.execute(
            f"SELECT pr.source, pr.record_key, pr.person_id, coalesce(r.fingerprint, '') FROM [{pr}] pr "
            f"LEFT JOIN [{rec}] r ON r.run_id = pr.run_id AND r.source = pr.source AND r.record_key = pr.record_key "
            "WHERE pr.run_id = ?", (rid,))
    rows = cur.fetchall()
    arr = np.array(rows, dtype=object).reshape(-1, 4)
    return PreviousAssignment(rid, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])


def person_ages(db: sqlite_utils.Database, pids: Sequence[str]) -> dict[str, int]:
    """first_run of each given person (for "the older ID survives")."""
    if "persons" not in db.table_names() or not len(pids):
        return {}
    out: dict[str, int] = {}
    uniq = sorted(set(pids))
    for start in range(0, len(uniq), 900):
        part = uniq[start:start + 900]
        q = "SELECT person_id, first_run FROM persons WHERE person_id IN (" + ",".join("?" * len(part)) + ")"
        out.update({p: int(f or 0) for p, f in db.execute(q, part).fetchall()})
    return out


@dataclass
class PersonPlan:
    """The person of every current record and what happened to persons since the previous run."""

    person_id: np.ndarray                       # object, one per current record
    events: list[tuple[str, str, str | None, str]] = field(default_factory=list)  # event, pid, other, reason
    new_ids: list[str] = field(default_factory=list)
    kept_ids: list[str] = field(default_factory=list)   # previous persons still active
    merged: list[tuple[str, str]] = field(default_factory=list)   # (absorbed, survivor)
    gone: list[str] = field(default_factory=list)
    previous_run: int | None = None
    n_persons: int | None = None                  # distinct person IDs (one per cluster)

    def counts(self) -> dict[str, int]:
        c = {e: 0 for e in EVENTS}
        for ev, *_ in self.events:
            c[ev] += 1
        split_targets = {other for ev, _, other, _ in self.events if ev == "split"}
        n = self.n_persons if self.n_persons is not None else (
            int(len(set(self.person_id.tolist()))) if len(self.person_id) else 0)
        return {"persons": n,
                "persons_new": len([p for p in self.new_ids if p not in split_targets]),
                "persons_merged": c["merged"], "persons_split": c["split"], "persons_gone": c["gone"]}


def _reason(keys: Sequence[str], **extra) -> str:
    ks = sorted(str(k) for k in keys)
    out = {"keys": ks[:_MAX_KEYS_IN_REASON], **extra}
    if len(ks) > _MAX_KEYS_IN_REASON:
        out["more"] = len(ks) - _MAX_KEYS_IN_REASON
    return json.dumps(out, ensure_ascii=False)


def plan_persons(
    labels: np.ndarray,
    keys: np.ndarray,
    prev_pid: np.ndarray,
    unchanged: np.ndarray,
    previous_active: Sequence[str],
    first_run: dict[str, int] | None,
    next_number: int,
    previous_run: int | None = None,
    db: sqlite_utils.Database | None = None,
) -> PersonPlan:
    """Assign person IDs to the current records (see the module docstring for the rules).

    ``labels``: cluster label per current record (records of one person share it);
    ``keys``: record key per record (for the reasons); ``prev_pid``: the person the same record
    (same source and key) had in the previous run, '' when it was not there; ``unchanged``: that
    record's content (fingerprint) is the same; ``previous_active``: every person of the previous
    run; ``first_run``: first run of persons (older wins a merge; None: looked up in ``db`` for
    the persons that merge); ``next_number``: the counter for new IDs.
    """
    n = len(labels)
    labels = np.asarray(labels, dtype=np.int64)
    prev_pid = np.asarray(prev_pid, dtype=object)
    keys = np.asarray(keys, dtype=object)
    plan = PersonPlan(person_id=np.empty(n, dtype=object), previous_run=previous_run)
    if n == 0:
        plan.gone = sorted(str(p) for p in previous_active)
        plan.events = [("gone", p, None, "") for p in plan.gone]
        return plan
    lc, lu = pd.factorize(labels)            # cluster codes in order of first record
    n_clusters = len(lu)
    has_prev = prev_pid != ""
    has_idx = np.nonzero(has_prev)[0]

    # 1. each previous person chooses the cluster holding most of its records
    chosen_pid = np.zeros(0, dtype=object)
    chosen_code = np.zeros(0, np.int64)
    choice_of = np.zeros(0, np.int64)            # chosen cluster per previous person (by its code)
    if has_idx.size:
        # groups (previous person, cluster) with their size, unchanged records and first record
        pc, pu = pd.factorize(prev_pid[has_idx])
        key = pc.astype(np.int64) * n_clusters + lc[has_idx]
        inv, gk = pd.factorize(key)                        # groups in order of their first record
        size = np.bincount(inv)
        unch = np.bincount(inv, weights=np.asarray(unchanged, bool)[has_idx].astype(float))
        first = has_idx[np.unique(inv, return_index=True)[1]]
        g_pid = (gk // n_clusters).astype(np.int64)
        order = np.lexsort((first, -unch, -size, g_pid))
        gp = g_pid[order]
        head = np.r_[True, gp[1:] != gp[:-1]]
        best = order[head]
        chosen_pid = np.asarray(pu, dtype=object)[g_pid[best]]
        chosen_code = (gk[best] % n_clusters).astype(np.int64)
        choice_of = np.zeros(len(pu), np.int64)
        choice_of[g_pid[best]] = chosen_code

    # 2. a cluster chosen by one previous person keeps its ID; by several: the oldest survives
    pid_of = np.full(n_clusters, None, dtype=object)
    claims = np.bincount(chosen_code, minlength=n_clusters) if chosen_code.size else np.zeros(n_clusters, np.int64)
    single = claims[chosen_code] == 1 if chosen_code.size else np.zeros(0, bool)
    pid_of[chosen_code[single]] = chosen_pid[single]
    multi = np.nonzero(claims > 1)[0]
    if multi.size:
        sel = np.isin(chosen_code, multi)
        involved = chosen_pid[sel].tolist()
        ages = first_run if first_run is not None else (person_ages(db, involved) if db is not None else {})

        def age(pid: str) -> tuple[int, int]:
            return (ages.get(pid, 1 << 30), _id_number(pid))

        by_code: dict[int, list[str]] = {}
        for pid, code in zip(chosen_pid[sel].tolist(), chosen_code[sel].tolist()):
            by_code.setdefault(code, []).append(pid)
        for code in sorted(by_code):
            pids = sorted(by_code[code], key=age)
            survivor = pids[0]
            pid_of[code] = survivor
            in_cluster = has_idx[lc[has_idx] == code]
            for other in pids[1:]:
                members = in_cluster[prev_pid[in_cluster] == other]
                plan.merged.append((other, survivor))
                plan.events.append(("merged", survivor, other, _reason(keys[members].tolist())))
    plan.kept_ids = [p for p in pid_of.tolist() if p is not None]

    # 3. clusters nobody claimed: new IDs, in order of their first record (deterministic)
    free = np.nonzero(pd.isna(pid_of))[0]
    new_ids = format_person_ids(next_number, len(free))
    pid_of[free] = np.asarray(new_ids, dtype=object)
    plan.new_ids = new_ids
    plan.person_id = pid_of[lc]
    plan.n_persons = int(n_clusters)

    # 4. split events: records of a previous person that ended in a cluster it did not choose
    split_targets: set[str] = set()
    if has_idx.size:
        choice = choice_of[pc]
        moved = has_idx[choice != lc[has_idx]]
        merged = set(plan.merged)
        by_pair: dict[tuple[str, str], list[str]] = {}
        for i in moved.tolist():
            target = plan.person_id[i]
            if (prev_pid[i], target) in merged:
                continue
            by_pair.setdefault((prev_pid[i], target), []).append(str(keys[i]))
        for (src, target), ks in sorted(by_pair.items()):
            plan.events.append(("split", src, target, _reason(ks)))
            split_targets.add(target)
    if previous_run is not None:
        plan.events.extend(("new", pid, None, "") for pid in new_ids if pid not in split_targets)

    # 5. gone: previous persons with no record left (chosen by no cluster)
    active = np.asarray(list(previous_active), dtype=object)
    gone = active[~pd.Series(active).isin(pd.Index(chosen_pid)).to_numpy()] if active.size else active
    plan.gone = sorted(gone.tolist())
    plan.events.extend(("gone", p, None, "") for p in plan.gone)
    plan.events.sort(key=lambda e: (EVENTS.index(e[0]), e[1], e[2] or ""))
    return plan


def write_persons(
    db: sqlite_utils.Database,
    run_id: int,
    plan: PersonPlan,
    source: np.ndarray,
    keys: np.ndarray,
    copy_from: tuple[int, np.ndarray, Sequence[tuple[str, str]]] | None = None,
    in_versions: bool = False,
) -> None:
    """Write the plan for ``run_id`` (call inside the run's transaction).

    ``in_versions``: the records' persons are stored with their versions (reconcile.record_store,
    dedupe runs), so no ``person_records`` rows are written here.

    ``copy_from=(previous_run, same, drop)``: current records where ``same`` is True have the
    same source, key and person as in ``previous_run``; ``drop`` lists the (source, key) of
    every other record of ``previous_run``. The identical rows are copied inside SQLite instead
    of being sent from Python (a million rows per monthly run).
    """
    ensure_person_tables(db)
    conn = db.conn
    if plan.new_ids:
        first, n = _id_number(plan.new_ids[0]), len(plan.new_ids)
        if plan.new_ids[-1] == format_person_id(first + n - 1):   # consecutive (plan_persons): SQLite counts
            # them itself (2.5 M new persons: 2.9 s against 6.6 s sent row by row)
            conn.execute(f"WITH RECURSIVE seq(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM seq WHERE x < ?) "
                         f"INSERT INTO persons (person_id, first_run, last_run, status) "
                         f"SELECT printf('P%0{ID_WIDTH}d', x), ?, ?, 'active' FROM seq",
                         (first, first + n - 1, run_id, run_id))
        else:
            conn.executemany("INSERT INTO persons (person_id, first_run, last_run, status) VALUES (?, ?, ?, 'active')",
                             ((p, run_id, run_id) for p in plan.new_ids))
    if plan.kept_ids and plan.previous_run is not None:
        # the previous run's persons stay active, except those merged or gone (updated below)
        conn.execute("UPDATE persons SET last_run = ? WHERE status = 'active' AND last_run = ?",
                     (run_id, plan.previous_run))
    if plan.merged:
        conn.executemany("UPDATE persons SET status = 'merged', merged_into = ?, last_run = ? WHERE person_id = ?",
                         ((surv, plan.previous_run, absorbed) for absorbed, surv in plan.merged))
    if plan.gone:
        conn.executemany("UPDATE persons SET status = 'gone', last_run = ? WHERE person_id = ?",
                         ((plan.previous_run, p) for p in plan.gone))
    if plan.events:
        conn.executemany("INSERT INTO person_events (run_id, event, person_id, other_person_id, reason) VALUES (?, ?, ?, ?, ?)",
                         ((run_id, ev, pid, other, reason) for ev, pid, other, reason in plan.events))
    if in_versions:
        return
    todo = np.ones(len(keys), bool)
    if copy_from is not None:
        prev_run, same, drop = copy_from
        same = np.asarray(same, bool)
        if same.any():
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS _pr_drop (source TEXT, record_key TEXT, PRIMARY KEY (source, record_key))")
            conn.execute("DELETE FROM _pr_drop")
            conn.executemany("INSERT OR IGNORE INTO _pr_drop VALUES (?, ?)", drop)
            conn.execute(
                "INSERT INTO person_records (run_id, person_id, source, record_key) "
                "SELECT ?, p.person_id, p.source, p.record_key FROM person_records p WHERE p.run_id = ? "
                "AND NOT EXISTS (SELECT 1 FROM _pr_drop d WHERE d.source = p.source AND d.record_key = p.record_key)",
                (run_id, prev_run))
            conn.execute("DELETE FROM _pr_drop")
            todo = ~same
    idx = np.nonzero(todo)[0]
    # whole columns as lists (tolist runs in C), not three numpy look-ups per row
    conn.executemany("INSERT INTO person_records (run_id, person_id, source, record_key) VALUES (?, ?, ?, ?)",
                     zip(repeat(run_id, len(idx)), np.asarray(plan.person_id, dtype=object)[idx].tolist(),
                         np.asarray(source, dtype=object)[idx].tolist(), np.asarray(keys, dtype=object)[idx].tolist()))


def assign_persons(
    db: sqlite_utils.Database,
    run_id: int,
    records: pd.DataFrame,
    labels: np.ndarray,
) -> PersonPlan:
    """Plan and write person IDs for a run's records (inside the run's transaction).

    ``records``: one row per record with ``source``, ``record_key``, ``fingerprint``;
    ``labels``: cluster label per row (rows of one person share a label; e.g. union-find roots
    over within-file duplicates and cross-registry matches). The previous run is the newest
    earlier complete run with person records.
    """
    ensure_person_tables(db)
    src = records["source"].astype(str).to_numpy(object)
    keys = records["record_key"].astype(str).to_numpy(object)
    fps = records["fingerprint"].astype(str).to_numpy(object) if "fingerprint" in records else np.full(len(keys), "", object)
    prev = load_previous(db, before=run_id)
    prev_pid = np.full(len(keys), "", dtype=object)
    unchanged = np.zeros(len(keys), bool)
    active: list[str] = []
    pos = np.zeros(0, np.int64)
    ok = np.zeros(0, bool)
    if prev is not None and len(prev.person_id):
        cur_idx = pd.Index(src + "\x1f" + keys)
        prev_idx = prev.source.astype(str) + "\x1f" + prev.record_key.astype(str)
        pos = cur_idx.get_indexer(prev_idx)
        ok = pos >= 0
        prev_pid[pos[ok]] = prev.person_id[ok]
        unchanged[pos[ok]] = (prev.fingerprint[ok] == fps[pos[ok]]) & (prev.fingerprint[ok] != "")
        active = sorted(set(prev.person_id.tolist()))
    plan = plan_persons(np.asarray(labels), keys, prev_pid, unchanged, active,
                        person_ages(db, active), next_person_number(db),
                        previous_run=None if prev is None else prev.run_id)
    copy = None
    if prev is not None:
        same = (prev_pid != "") & (prev_pid == plan.person_id)
        kept = np.zeros(len(prev.person_id), bool)
        kept[np.nonzero(ok)[0]] = same[pos[ok]]
        drop = list(zip(prev.source[~kept].tolist(), prev.record_key[~kept].tolist()))
        copy = (prev.run_id, same, drop)
    write_persons(db, run_id, plan, src, keys, copy)
    return plan


def person_writer(records: pd.DataFrame, labels: np.ndarray) -> Callable[[sqlite_utils.Database, int], None]:
    """An ``extra_writer`` for reconcile.report.write_run that assigns person IDs to ``records``.

    For `match`: records = the run's `records` rows (source, record_key, fingerprint) in the
    order of ``labels`` (one cluster label per record over both files).
    """
    def write(db: sqlite_utils.Database, run_id: int) -> None:
        assign_persons(db, run_id, records, labels)

    return write
