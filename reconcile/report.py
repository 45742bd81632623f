"""The SQLite report: schema, opening, and writing one run in one transaction.

The report is the contract between `match`/`dedupe` and every later command (review, export,
feedback, report, diff). Every table and column is documented in docs/report-schema.md.
Keys are TEXT everywhere. A run is written inside a single transaction, so a crash, kill or
Ctrl-C leaves earlier runs intact and no partial run.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import sqlite_utils

from reconcile.errors import ReportError
from reconcile.fields import STANDARD_COLUMNS

SCHEMA_VERSION = 1

# table -> list of (column, sqlite type). Order is the column order on disk.
_RECORD_COLUMNS: list[tuple[str, str]] = [
    ("run_id", "INTEGER"),
    ("source", "TEXT"),
    ("record_key", "TEXT"),
    ("line", "INTEGER"),
] + [
    (c, "INTEGER" if c in ("name_traditional", "name_minority", "sex_conflict", "birth_conflict") else "TEXT")
    for c in STANDARD_COLUMNS
    if c != "record_key"
] + [
    ("fingerprint", "TEXT"),
    ("raw_json", "TEXT"),
    ("file", "TEXT"),           # dedupe: the input file (label) a record came from
]

TABLES: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "INTEGER PRIMARY KEY"),
        ("command", "TEXT"),
        ("started_at", "TEXT"),
        ("finished_at", "TEXT"),
        ("status", "TEXT"),
        ("origin_path", "TEXT"),
        ("dest_path", "TEXT"),
        ("origin_sha256", "TEXT"),
        ("dest_sha256", "TEXT"),
        ("inputs_json", "TEXT"),
        ("settings_json", "TEXT"),
        ("model_json", "TEXT"),
        ("summary_json", "TEXT"),
        ("version", "TEXT"),
        ("schema_version", "INTEGER"),
        ("log_json", "TEXT"),
    ],
    "records": _RECORD_COLUMNS,
    "rejected_rows": [
        ("run_id", "INTEGER"), ("source", "TEXT"), ("line", "INTEGER"),
        ("reason_key", "TEXT"), ("reason", "TEXT"), ("raw", "TEXT"),
    ],
    "links": [
        ("run_id", "INTEGER"), ("source_pair", "TEXT"), ("origin_key", "TEXT"), ("dest_key", "TEXT"),
        ("match_probability", "REAL"), ("match_weight", "REAL"), ("decision", "TEXT"),
        ("decided_by", "TEXT"), ("stale", "INTEGER"), ("evidence_json", "TEXT"),
    ],
    "traced": [("run_id", "INTEGER"), ("origin_key", "TEXT"), ("dest_key", "TEXT"), ("match_probability", "REAL")],
    "untraceable": [
        ("run_id", "INTEGER"), ("origin_key", "TEXT"), ("best_dest_key", "TEXT"), ("best_probability", "REAL"),
    ],
    "unregistered": [("run_id", "INTEGER"), ("dest_key", "TEXT"), ("hukou_region", "TEXT"), ("best_origin_key", "TEXT"), ("best_probability", "REAL")],
    "cross_region_duplicates": [("run_id", "INTEGER"), ("origin_key", "TEXT"), ("dest_key", "TEXT"), ("match_probability", "REAL")],
    "id_conflicts": [
        ("run_id", "INTEGER"), ("id_number", "TEXT"), ("source", "TEXT"), ("record_key", "TEXT"), ("conflict_group", "INTEGER"),
    ],
    "duplicates": [
        ("run_id", "INTEGER"), ("source", "TEXT"), ("cluster_id", "TEXT"), ("record_key", "TEXT"),
        ("survivor", "INTEGER"), ("scope", "TEXT"), ("reason", "TEXT"),
        ("resolver_level", "TEXT"), ("resolver", "TEXT"), ("detail", "TEXT"),   # dedupe: who resolves it, why
    ],
    "blocking": [
        ("run_id", "INTEGER"), ("pass_name", "TEXT"), ("rule", "TEXT"), ("pairs", "INTEGER"),
        ("new_pairs", "INTEGER"), ("skipped_blocks", "INTEGER"), ("skipped_records", "INTEGER"),
    ],
    "metrics": [("run_id", "INTEGER"), ("scope", "TEXT"), ("metric", "TEXT"), ("value", "REAL")],
    "warnings": [("run_id", "INTEGER"), ("stage", "TEXT"), ("message", "TEXT")],
}

INDEXES: list[tuple[str, tuple[str, ...], bool]] = [
    ("records", ("run_id", "source", "record_key"), True),
    ("records", ("id_number",), False),
    ("rejected_rows", ("run_id", "source"), False),
    ("links", ("run_id", "origin_key"), False),
    ("links", ("run_id", "dest_key"), False),
    ("links", ("run_id", "decision"), False),
    ("traced", ("run_id", "origin_key"), False),
    ("untraceable", ("run_id", "origin_key"), False),
    ("unregistered", ("run_id", "dest_key"), False),
    ("cross_region_duplicates", ("run_id", "origin_key"), False),
    ("id_conflicts", ("run_id", "id_number"), False),
    ("duplicates", ("run_id", "source", "record_key"), False),
    ("metrics", ("run_id", "scope", "metric"), False),
]


def open_report(path: str | Path, *, create: bool = True) -> sqlite_utils.Database:
    """Open (and if needed create) a report database; check it is one of ours."""
    p = Path(path)
    if not create and not p.exists():
        raise ReportError("report.missing", path=str(p))
    if p.exists() and p.is_dir():
        raise ReportError("report.is_dir", path=str(p))
    try:
        new = not p.exists()
        conn = sqlite3.connect(str(p), timeout=30)
        if new:
            # larger pages for a new report: its big tables are written in bulk (records of 300,000
            # persons inserted in 8.9 s against 10.8 s with the default 4 KiB pages)
            conn.execute("PRAGMA page_size = 16384")
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA foreign_keys=ON")
        names = set(db.table_names())
    except sqlite3.DatabaseError as exc:
        raise ReportError("report.not_sqlite", path=str(p), detail=str(exc)) from None
    if names and "runs" not in names:
        raise ReportError("report.not_ours", path=str(p))
    ensure_schema(db)
    return db


def holds_nothing(db: sqlite_utils.Database) -> bool:
    """Whether a report has no row in any table (new, or left so by a run that failed) and its
    `records` is a table (a dedupe database's is a view over its versioned storage)."""
    tables = db.table_names()
    return "records" in tables and not any(db.execute(f"SELECT 1 FROM [{t}] LIMIT 1").fetchone() for t in tables)


def replace_empty_report(report: Path, written: Path) -> None:
    """Put the report file ``written`` (a scratch file next to it) in place of ``report``, which
    must still hold nothing: a report reached through a link stays a link, and the file gets the
    report's permissions. ReportError when another run was written into it meanwhile, or the
    replace is refused (Windows: another program has the report open)."""
    import os
    import stat

    target = report.resolve()
    conn = sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)   # (read without changing it)
    try:
        empty = holds_nothing(sqlite_utils.Database(conn))
    finally:
        conn.close()
    if not empty:
        raise ReportError("report.changed_meanwhile", path=str(report))
    os.chmod(written, stat.S_IMODE(target.stat().st_mode))   # (a scratch file is the owner's only)
    try:
        os.replace(written, target)
    except OSError as exc:
        raise ReportError("report.cannot_replace", path=str(report), detail=exc.strerror or str(exc)) from None


def ensure_tables(
    db: sqlite_utils.Database,
    tables: Mapping[str, Sequence[tuple[str, str]]],
    indexes: Iterable[tuple[str, tuple[str, ...], bool]] = (),
) -> None:
    """Create missing tables and indexes; add the columns a newer version introduced.
    Columns are only ever added, never dropped or renamed (older reports keep opening).
    Safe inside a transaction. Every module that owns report tables goes through this."""
    names = set(db.table_names())
    views = set(db.view_names())
    for table, cols in tables.items():
        if table in views:
            # a dedupe database: records / person_records are views over versioned storage
            from reconcile.record_store import sync_view

            sync_view(db, table, cols)
            continue
        if table not in names:
            db.execute(f"CREATE TABLE [{table}] (" + ", ".join(f"[{c}] {t}" for c, t in cols) + ")")
        else:
            have = {c.name for c in db[table].columns}
            for c, t in cols:
                if c not in have:
                    db.execute(f"ALTER TABLE [{table}] ADD COLUMN [{c}] {t.replace(' PRIMARY KEY', '')}")
    deferred: _DeferredIndexes | None = getattr(db, "_deferred_indexes", None)
    for table, cols, unique in indexes:
        if table in views:
            continue
        name = f"idx_{table}_{'_'.join(cols)}"
        sql = (f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS [{name}] ON [{table}] ("
               + ", ".join(f"[{c}]" for c in cols) + ")")
        if deferred is not None and deferred.defers(table):
            deferred.pending[name] = (table, sql)
        else:
            db.execute(sql)


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Create missing tables/indexes; add columns a newer version introduced (never drop)."""
    with db.atomic():
        ensure_tables(db, TABLES, INDEXES)


def now_iso() -> str:
    """Current time, ISO 8601 with time zone (local offset)."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class CopiedRows:
    """Rows of a report table that were built beforehand into a SQLite file of their own (by
    ``write_copied_rows``; run_id replaced by the run's): ``write_run`` copies them inside SQLite instead of
    inserting them from Python row by row (1,856,076 `records` rows: 3.7 s against 15.6 s)."""

    path: Path
    # still being built elsewhere (the loading worker): called once before the file is read, it
    # returns when the file is complete (building the rows itself if the worker could not);
    # write_run writes the tables waiting for it last, so the rest is written meanwhile
    ready: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    # only the rows of this source (a report base's first part: the worker may have added its
    # side's rows to the file before it failed)
    source: str | None = None

    @property
    def pending(self) -> bool:
        return self.ready is not None

    def wait(self) -> None:
        """Return once the file is complete (see ``ready``)."""
        if self.ready is not None:
            self.ready()
            object.__setattr__(self, "ready", None)   # (frozen: the path never changes, this does once)

    def frame(self, table: str) -> pd.DataFrame:
        """The rows as a DataFrame (for readers that need them in Python, e.g. Parquet output)."""
        self.wait()
        conn = sqlite3.connect(self.path)
        try:
            where, params = ("", ()) if self.source is None else (" WHERE source = ?", (self.source,))
            return pd.read_sql(f"SELECT * FROM [{table}]{where} ORDER BY rowid", conn, params=params).drop(columns=["run_id"])
        finally:
            conn.close()


def write_copied_rows(path: str | Path, table: str, chunks: Iterable[pd.DataFrame],
                      run_id: int | None = None) -> CopiedRows:
    """``chunks`` (DataFrames with the column names of TABLES[table]) written into a new SQLite
    file at ``path`` for ``write_run`` to copy (with the run's id: ``run_id`` is only kept for
    ``finish_report_base``). A scratch file: no journal, no fsync (a crash loses a file the run
    would have deleted anyway)."""
    cols = [c for c, _ in TABLES[table]]
    conn = sqlite3.connect(str(path))
    try:
        conn.execute("PRAGMA page_size = 16384")
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"DROP TABLE IF EXISTS [{table}]")
        conn.execute(f"CREATE TABLE [{table}] (" + ", ".join(f"[{c}] {t}" for c, t in TABLES[table]) + ")")
        insert = _insert_sql(table, cols)
        with conn:
            for chunk in chunks:
                conn.executemany(insert, _rows(chunk, cols, run_id))
    finally:
        conn.close()
    return CopiedRows(Path(path))


@dataclass(frozen=True)
class ReportBase:
    """A new report file holding the `records` rows of one run (``run_id``, its first) with every
    table and index made, by ``finish_report_base`` (the loading worker, beside the caller's
    outcomes: reconcile.parallel), for ``write_run_beside_base`` to move the rest of that run
    into; the caller then moves it over the report, which had no run yet."""

    path: Path
    run_id: int = 1
    index_seconds: float = field(default=0.0, compare=False)   # of the time taken, the indexes'


def finish_report_base(path: str | Path, chunks: Iterable[pd.DataFrame], run_id: int = 1) -> ReportBase:
    """Make the CopiedRows file at ``path`` (written with ``write_copied_rows(..., run_id=run_id)``:
    the run's first `records` rows) a report base: ``chunks``' rows appended, the rest of the
    schema created and every index built once the rows are in, in one transaction (a crash leaves
    the file as it was). At 1,000,000 persons this takes the copy of the records and their two
    indexes (9.4 s) off the report stage, which comes last."""
    cols = [c for c, _ in TABLES["records"]]
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")   # (a scratch file until the run is written into it)
        conn.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        db = sqlite_utils.Database(conn)
        if "runs" in db.table_names() or conn.execute("SELECT 1 FROM records WHERE run_id IS NOT ? LIMIT 1",
                                                      (run_id,)).fetchone():
            raise ValueError(f"{path}: not the records of one new run {run_id}")
        with db.atomic():
            insert = _insert_sql("records", cols)
            for chunk in chunks:
                conn.executemany(insert, _rows(chunk, cols, run_id))
            ensure_tables(db, TABLES)
            t0 = time.perf_counter()
            ensure_tables(db, {}, INDEXES)
            index_seconds = time.perf_counter() - t0
    finally:
        conn.close()
    return ReportBase(Path(path), run_id, index_seconds)


class ChunkedFrame:
    """A table built and written one chunk at a time (the `records` of a million-record run would
    otherwise be held whole, raw JSON and all, next to everything else). ``parts``: functions that
    each build one chunk as a DataFrame, in order, or CopiedRows built beforehand."""

    def __init__(self, parts: Sequence[Callable[[], pd.DataFrame] | CopiedRows], table: str = "records") -> None:
        self.parts = list(parts)
        self.table = table

    def chunks(self) -> Iterator[pd.DataFrame]:
        for part in self.parts:
            yield part.frame(self.table) if isinstance(part, CopiedRows) else part()

    def to_frame(self) -> pd.DataFrame:
        """The whole table (for readers that need it at once, e.g. Parquet output)."""
        frames = list(self.chunks())
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass
class RunOutput:
    """Everything one run writes. DataFrames use the column names of TABLES (run_id is filled in);
    a table may also be a ChunkedFrame."""

    command: str
    started_at: str
    run_info: dict[str, Any] = field(default_factory=dict)   # extra columns of `runs`
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _column_values(s: pd.Series) -> list:
    """One column as Python values for sqlite3: numpy scalars -> int/float/bool, NaN/None/NA -> None.
    Column by column (``tolist`` runs in C), not cell by cell."""
    arr = s.to_numpy()
    kind = arr.dtype.kind
    if kind in "iub":
        return arr.tolist()
    if kind == "f":
        vals = arr.tolist()
        nan = np.flatnonzero(np.isnan(arr))
    elif kind == "O":
        vals = arr.tolist()
        if pd.api.types.infer_dtype(arr, skipna=False) == "string":   # all str: nothing to null
            return vals
        nan = np.flatnonzero(pd.isna(arr))
    else:   # datetimes, extension types: the generic (slow) conversion
        obj = s.astype(object)
        vals = obj.tolist()
        nan = np.flatnonzero(pd.isna(obj.to_numpy()))
    for k in nan.tolist():
        vals[k] = None
    return vals


def _insert_sql(table: str, cols: Sequence[str]) -> str:
    return (f"INSERT INTO [{table}] (" + ", ".join(f"[{c}]" for c in cols) + ") VALUES ("
            + ", ".join("?" for _ in cols) + ")")


def _rows(df: pd.DataFrame, cols: list[str], run_id: int | None) -> Iterable[tuple]:
    """Row tuples (run_id first when ``cols`` starts with it) in the order of ``cols``; a column
    the frame lacks is NULL."""
    n = len(df)
    values = [repeat(run_id, n) if c == "run_id" else
              (_column_values(df[c]) if c in df.columns else repeat(None, n)) for c in cols]
    return zip(*values)


WRITE_CACHE_KIB = 200_000   # SQLite page cache while a run is written (see write_run)


class _DeferredIndexes:
    """The indexes of the tables a run writes into while they are empty (a new report: every
    one), built once their rows are in instead of kept up to date row by row: at 1,000,000
    persons the report stage took 92.7 s with them kept up to date, 82.8 s built afterwards.
    Inside the run's transaction: a crash leaves the indexes as they were."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.with_rows: set[str] = set()
        self.pending: dict[str, tuple[str, str]] = {}   # index name -> (table, CREATE INDEX statement)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for t in tables:
            if conn.execute(f"SELECT 1 FROM [{t}] LIMIT 1").fetchone() is not None:
                self.with_rows.add(t)
        for name, table, sql in conn.execute(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchall():
            if self.defers(table):
                self.pending[name] = (table, sql)
                conn.execute(f"DROP INDEX [{name}]")

    def defers(self, table: str) -> bool:
        """Whether ``table``'s indexes wait for the end of the write (it had no rows at its start)."""
        return table not in self.with_rows

    def build(self, conn: sqlite3.Connection) -> None:
        """Create the deferred indexes (of the tables that are still tables: a dedupe database
        may have turned one into a view over its versioned storage meanwhile)."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, sql in self.pending.values():
            if table in tables:
                conn.execute(sql)
        self.pending.clear()


def write_run(db: sqlite_utils.Database, out: RunOutput, extra_writer=None) -> int:
    """Write one complete run inside one transaction; returns its run_id.

    ``extra_writer(db, run_id)`` may write further tables (persons, ...) in the same transaction.
    """
    with _run_transaction(db) as (deferred, attached):
        run_id = _write_rows(db, out, extra_writer, attached)
        deferred.build(db.conn)
    return run_id


@contextmanager
def _run_transaction(db: sqlite_utils.Database) -> Iterator[tuple[_DeferredIndexes, list[str]]]:
    """The transaction a run is written in: yields its deferred indexes (built by the caller, or
    left) and the list of the CopiedRows files attached meanwhile, which are detached after it."""
    ensure_schema(db)
    conn = db.conn
    # A large run inserts millions of rows into indexed tables (records: by key and by ID
    # number) in key order the indexes do not share: with SQLite's default 2 MB page cache the
    # index pages spill and are re-read all the time. At 1,000,000 persons (2.9 M records)
    # inserting `records` took 64.6 s with it, 34.4 s with this (an upper bound: pages are
    # allocated as used, a small run uses little).
    conn.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
    attached: list[str] = []   # CopiedRows files, attached inside the transaction, detached after it
    try:
        with db.atomic():
            deferred = db._deferred_indexes = _DeferredIndexes(conn)   # type: ignore[attr-defined]
            try:
                yield deferred, attached
            finally:
                del db._deferred_indexes   # type: ignore[attr-defined]
    finally:
        for alias in attached:   # (SQLite refuses to detach while the transaction holds the file)
            try:
                conn.execute(f"DETACH DATABASE [{alias}]")
            except sqlite3.Error:   # must not hide the write's own error; closing the report detaches it
                pass


def write_run_beside_base(path: str | Path, out: RunOutput, base: Callable[[], ReportBase | None],
                          extra_writer=None, timings: dict[str, float] | None = None) -> tuple[int, Path]:
    """write_run into the report at ``path`` (the caller's copy of a report that holds nothing)
    while the worker finishes its ReportBase: every table but `records` first; then, once
    ``base()`` gives the base, the run is moved into it (its rows copied inside SQLite, the
    indexes built there only), and the base is the report. When ``base()`` gives None (the
    worker could not), ``out.tables["records"]`` is written here as write_run would, and the
    report at ``path`` is the one. Returns (the run's id, the file that holds it); the caller
    moves that file over the report it had (a crash before leaves the report as it was).
    ``timings`` gets how long it waited for the base and how long the move took."""
    timings = {} if timings is None else timings
    rest = replace(out, tables={t: v for t, v in out.tables.items() if t != "records"})
    db = open_report(path)
    try:
        with _run_transaction(db) as (deferred, attached):
            run_id = _write_rows(db, rest, extra_writer, attached)
            t0 = time.perf_counter()
            made = base()
            timings["waited_for_report_base"] = time.perf_counter() - t0
            if made is None:
                if "records" in out.tables:
                    _write_table(db.conn, "records", out.tables["records"], run_id, attached)
                deferred.build(db.conn)
            elif made.run_id != run_id:
                raise ValueError(f"the run is run {run_id}, its report base's rows are of run {made.run_id}")
            pending = dict(deferred.pending)   # (built in the base, once the run's rows are there)
    finally:
        db.close()
    if made is None:
        return run_id, Path(path)
    t0 = time.perf_counter()
    _move_run(Path(path), made, pending)
    timings["run_moved_into_report_base"] = time.perf_counter() - t0
    return run_id, made.path


def _move_run(path: Path, base: ReportBase, pending: Mapping[str, tuple[str, str]]) -> None:
    """Copy everything of the report at ``path`` (one run, without its `records`) into ``base``
    in one transaction: the tables, views and triggers it lacks, the rows, then the indexes of
    the tables that were empty there (``pending``: index name -> (table, CREATE INDEX) of the
    indexes never built at ``path``)."""
    conn = sqlite3.connect(str(base.path), isolation_level=None)
    try:
        conn.execute(f"PRAGMA cache_size = -{WRITE_CACHE_KIB}")
        conn.execute("ATTACH DATABASE ? AS run", (str(path),))
        objects = conn.execute("SELECT type, name, tbl_name, sql FROM run.sqlite_master "
                               "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
        conn.execute("BEGIN")
        deferred = _DeferredIndexes(conn)   # (the base's tables but `records` are empty)
        have = {r[0] for r in conn.execute("SELECT name FROM main.sqlite_master")}
        for kind, name, _, sql in objects:
            if kind != "table":
                continue
            if name not in have:
                conn.execute(sql)
            if conn.execute(f"SELECT 1 FROM run.[{name}] LIMIT 1").fetchone():
                cols = ", ".join(f"[{r[1]}]" for r in conn.execute(f"PRAGMA run.table_info([{name}])"))
                conn.execute(f"INSERT INTO main.[{name}] ({cols}) SELECT {cols} FROM run.[{name}]")
        indexes = dict(pending)
        indexes.update((name, (table, sql)) for kind, name, table, sql in objects if kind == "index")
        for name, (table, sql) in indexes.items():
            if name not in have and name not in deferred.pending:
                deferred.pending[name] = (table, sql)
        deferred.build(conn)
        for kind, name, _, sql in objects:
            if kind in ("view", "trigger") and name not in have:
                conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE run")
    finally:
        conn.close()


def _copy_rows(conn: sqlite3.Connection, table: str, cols: list[str], part: CopiedRows, run_id: int,
               attached: list[str]) -> None:
    """Copy ``part``'s rows into ``table`` in SQLite, in their order, with this run's id."""
    part.wait()
    alias = f"copied_{len(attached)}"
    conn.execute(f"ATTACH DATABASE ? AS [{alias}]", (str(part.path),))
    attached.append(alias)
    names = ", ".join(f"[{c}]" for c in cols)
    rest = ", ".join("?" if c == "run_id" else f"[{c}]" for c in cols)
    where, params = ("", ()) if part.source is None else (" WHERE source = ?", (part.source,))
    conn.execute(f"INSERT INTO main.[{table}] ({names}) SELECT {rest} FROM [{alias}].[{table}]{where} ORDER BY rowid",
                 ((run_id,) if "run_id" in cols else ()) + params)


def _write_table(conn: sqlite3.Connection, table: str, df, run_id: int, attached: list[str]) -> None:
    """One table's rows: a DataFrame, or a ChunkedFrame's parts (built chunk by chunk, or copied)."""
    cols = [c for c, _ in TABLES[table]]
    insert = _insert_sql(table, cols)
    for part in (df.parts if isinstance(df, ChunkedFrame) else (df,)):
        if isinstance(part, CopiedRows):
            _copy_rows(conn, table, cols, part, run_id, attached)
        else:
            conn.executemany(insert, _rows(part if isinstance(part, pd.DataFrame) else part(), cols, run_id))


def _write_rows(db: sqlite_utils.Database, out: RunOutput, extra_writer, attached: list[str]) -> int:
    """write_run's inserts (inside its transaction)."""
    conn = db.conn
    info = dict(out.run_info)
    cur = conn.execute(
        "INSERT INTO runs (command, started_at, status, version, schema_version) VALUES (?, ?, 'writing', ?, ?)",
        (out.command, out.started_at, info.pop("version", None), SCHEMA_VERSION),
    )
    run_id = int(cur.lastrowid)

    def waits(df) -> bool:   # rows still being built elsewhere: written last
        return isinstance(df, ChunkedFrame) and any(isinstance(p, CopiedRows) and p.pending for p in df.parts)

    later = [t for t, df in out.tables.items() if waits(df)]
    for table, df in out.tables.items():
        if table not in TABLES:
            raise ValueError(f"unknown report table {table}")
        if table not in later:
            _write_table(conn, table, df, run_id, attached)
    if extra_writer is not None:
        extra_writer(db, run_id)
    for table in later:
        _write_table(conn, table, out.tables[table], run_id, attached)
    sets = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v) for k, v in info.items()}
    sets["finished_at"] = now_iso()
    sets["status"] = "complete"
    conn.execute(
        "UPDATE runs SET " + ", ".join(f"[{k}] = ?" for k in sets) + " WHERE run_id = ?",
        (*sets.values(), run_id),
    )
    return run_id


def latest_run(db: sqlite_utils.Database, command: str | None = None) -> int | None:
    """The newest complete run id (optionally of one command), or None."""
    sql = "SELECT max(run_id) FROM runs WHERE status = 'complete'"
    params: tuple = ()
    if command:
        sql += " AND command = ?"
        params = (command,)
    row = db.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def resolve_run(db: sqlite_utils.Database, run: int | None) -> int:
    """The given run id if it exists and is complete, else the latest; ReportError when none."""
    if run is None:
        rid = latest_run(db)
        if rid is None:
            raise ReportError("report.no_runs")
        return rid
    row = db.execute("SELECT status FROM runs WHERE run_id = ?", (run,)).fetchone()
    if not row or row[0] != "complete":
        raise ReportError("report.unknown_run", run=run)
    return run


def read_table(db: sqlite_utils.Database, table: str, run_id: int, where: str = "", params: Mapping | tuple = ()) -> pd.DataFrame:
    """A run's rows of one table as a DataFrame (keys stay text)."""
    sql = f"SELECT * FROM [{table}] WHERE run_id = ?" + (f" AND {where}" if where else "")
    cur = db.execute(sql, (run_id, *params))
    cols = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=cols)
