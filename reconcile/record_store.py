"""Versioned storage behind the report's ``records`` and ``person_records`` (dedupe runs).

A monthly dedupe run holds a million records of which a few thousand changed. Storing every
run's full snapshot costs a wide million-row copy per run (15 s, ~0.9 GB). Instead each record
version is stored once and a run only lists which versions it holds:

- ``record_versions(version_id INTEGER PRIMARY KEY, source, record_key, file, person_id, <the
  standardised columns>, fingerprint, raw_json)``: one row per distinct record content (as a run
  reports it: its key and person included); a later run reuses the row as long as none of that
  changes.
- ``record_members(run_id, version_id, line, file)`` (WITHOUT ROWID, key (run_id, version_id)):
  the versions of each run, their line in that run's file and the file's label (files are often
  renamed every month: 2024年3月.csv; ``raw_json.__file__`` is set to it where it differs from the
  version's).
- ``records_direct`` / ``person_records_direct``: the former ``records`` / ``person_records``
  tables, renamed, still written row by row by ``match`` (and holding every run written before
  the conversion).
- ``records`` and ``person_records`` become VIEWs: the direct rows UNION ALL the versioned runs,
  with exactly the columns of the tables they replace (reconcile.report.TABLES order), so readers
  keep reading ``SELECT ... FROM records WHERE run_id = ...``. INSTEAD OF INSERT triggers send
  ``INSERT INTO records`` / ``person_records`` (match) to the direct tables.

A database is converted by the first dedupe run that writes into it (:func:`convert`, inside the
run's transaction: a killed run leaves the database unconverted). A database no dedupe run wrote
into keeps plain tables. Readers must not put the views on the right of a LEFT JOIN (SQLite then
materialises the whole view) and should check existence with ``table_names() + view_names()``.
"""
from __future__ import annotations

from typing import Sequence

import sqlite_utils

VERSIONS = "record_versions"
MEMBERS = "record_members"
VIEWS = ("records", "person_records")
# columns of a view that come from the membership row (the rest from the version)
_MEMBER_COLS = {"run_id": "m.run_id", "line": "m.line", "file": "m.file",
                "raw_json": "CASE WHEN m.file IS v.file THEN v.raw_json ELSE json_set(v.raw_json, '$.__file__', m.file) END"}


def direct(name: str) -> str:
    return f"{name}_direct"


def is_converted(db: sqlite_utils.Database) -> bool:
    return "records" in db.view_names()


def physical(db: sqlite_utils.Database, name: str) -> str:
    """The table that holds rows written row by row (``records`` or ``records_direct``)."""
    return direct(name) if name in db.view_names() else name


def _columns(name: str) -> list[tuple[str, str]]:
    if name == "records":
        from reconcile.report import TABLES

        return list(TABLES["records"])
    from reconcile.persons import PERSON_TABLES

    return list(PERSON_TABLES["person_records"])


def _version_columns() -> list[tuple[str, str]]:
    """Columns of record_versions after version_id (all of records' except run_id and line, plus
    person_id)."""
    cols = [(c, t) for c, t in _columns("records") if c not in ("run_id", "line")]
    return cols + [("person_id", "TEXT")]


def version_column_names() -> list[str]:
    return [c for c, _ in _version_columns()]


def _create_view(db: sqlite_utils.Database, name: str, cols: Sequence[tuple[str, str]]) -> None:
    names = [c for c, _ in cols]
    sel = ", ".join(_MEMBER_COLS.get(c, f"v.[{c}]") + f" AS [{c}]" for c in names)
    arm = f"SELECT {sel} FROM [{MEMBERS}] m JOIN [{VERSIONS}] v ON v.version_id = m.version_id"
    if name == "person_records":
        arm += " WHERE v.person_id IS NOT NULL"
    plain = ", ".join(f"[{c}]" for c in names)
    db.execute(f"DROP VIEW IF EXISTS [{name}]")
    db.execute(f"CREATE VIEW [{name}] AS SELECT {plain} FROM [{direct(name)}] UNION ALL {arm}")
    db.execute(f"DROP TRIGGER IF EXISTS [{name}_insert]")
    db.execute(f"CREATE TRIGGER [{name}_insert] INSTEAD OF INSERT ON [{name}] BEGIN "
               f"INSERT INTO [{direct(name)}] ({plain}) VALUES ({', '.join(f'NEW.[{c}]' for c in names)}); END")


def _add_missing(db: sqlite_utils.Database, table: str, cols: Sequence[tuple[str, str]]) -> bool:
    have = {c.name for c in db[table].columns}
    added = False
    for c, t in cols:
        if c not in have:
            db.execute(f"ALTER TABLE [{table}] ADD COLUMN [{c}] {t.replace(' PRIMARY KEY', '')}")
            added = True
    return added


def sync_view(db: sqlite_utils.Database, name: str, cols: Sequence[tuple[str, str]]) -> None:
    """Called by reconcile.report.ensure_tables for a table that is a view here: add the columns a
    newer version introduced to the storage tables and rebuild the view when they changed."""
    if name not in VIEWS:
        return
    view_cols = [c.name for c in db[name].columns]
    changed = _add_missing(db, direct(name), cols)
    if name == "records":
        changed |= _add_missing(db, VERSIONS, _version_columns())
    if changed or view_cols != [c for c, _ in cols]:
        _create_view(db, name, cols)


def convert(db: sqlite_utils.Database) -> None:
    """Turn ``records`` and ``person_records`` into views over versioned storage (idempotent;
    call inside the run's transaction)."""
    from reconcile.persons import ensure_person_tables

    if is_converted(db):
        return
    ensure_person_tables(db)
    vcols = _version_columns()
    db.execute(f"CREATE TABLE IF NOT EXISTS [{VERSIONS}] (version_id INTEGER PRIMARY KEY, "
               + ", ".join(f"[{c}] {t}" for c, t in vcols) + ")")
    db.execute(f"CREATE INDEX IF NOT EXISTS idx_{VERSIONS}_key ON [{VERSIONS}] (record_key, source)")
    db.execute(f"CREATE TABLE IF NOT EXISTS [{MEMBERS}] (run_id INTEGER NOT NULL, version_id INTEGER NOT NULL, "
               "line INTEGER, file TEXT, PRIMARY KEY (run_id, version_id)) WITHOUT ROWID")
    for name in VIEWS:
        db.execute(f"ALTER TABLE [{name}] RENAME TO [{direct(name)}]")
        _create_view(db, name, _columns(name))


def next_version_id(db: sqlite_utils.Database) -> int:
    row = db.execute(f"SELECT max(version_id) FROM [{VERSIONS}]").fetchone()
    return int(row[0] or 0) + 1


def run_is_versioned(db: sqlite_utils.Database, run_id: int) -> bool:
    """True when the run's records live in the versioned storage."""
    if MEMBERS not in db.table_names():
        return False
    return db.execute(f"SELECT 1 FROM [{MEMBERS}] WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None


def insert_versions(db: sqlite_utils.Database, rows, version_ids) -> None:
    """Insert new versions: ``rows`` a DataFrame with (a subset of) the version columns."""
    import pandas as pd

    names = version_column_names()
    have = [c for c in names if c in rows.columns]
    sub = rows[have].astype(object)
    sub = sub.where(pd.notna(sub), None)
    cols = ["version_id", *have]
    data = zip([int(v) for v in version_ids], *(sub[c].tolist() for c in have))
    db.conn.executemany(f"INSERT INTO [{VERSIONS}] (" + ", ".join(f"[{c}]" for c in cols) + ") VALUES ("
                        + ", ".join("?" * len(cols)) + ")", data)


def copy_versions(db: sqlite_utils.Database, old_ids, new_ids, changes: dict[str, list]) -> None:
    """New versions copied from old ones inside SQLite with some columns changed: ``changes`` maps
    record_key / person_id / hukou_region / hukou_region_name to one value per copy (None: keep)."""
    if not len(old_ids):
        return
    conn = db.conn
    ch = [c for c in ("record_key", "person_id", "hukou_region", "hukou_region_name") if c in changes]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _vcopy (new_id INTEGER PRIMARY KEY, old_id INTEGER, record_key TEXT, "
                 "person_id TEXT, hukou_region TEXT, hukou_region_name TEXT)")
    conn.execute("DELETE FROM _vcopy")
    conn.executemany("INSERT INTO _vcopy (new_id, old_id" + "".join(f", [{c}]" for c in ch) + ") VALUES (?, ?"
                     + ", ?" * len(ch) + ")",
                     zip([int(x) for x in new_ids], [int(x) for x in old_ids], *(list(changes[c]) for c in ch)))
    names = version_column_names()
    expr = []
    for c in names:
        if c in ch:
            expr.append(f"coalesce(k.[{c}], v.[{c}])")
        else:
            expr.append(f"v.[{c}]")
    conn.execute(f"INSERT INTO [{VERSIONS}] (version_id, " + ", ".join(f"[{c}]" for c in names) + ") SELECT k.new_id, "
                 + ", ".join(expr) + f" FROM _vcopy k JOIN [{VERSIONS}] v ON v.version_id = k.old_id ORDER BY k.new_id")
    conn.execute("DELETE FROM _vcopy")


def insert_members(db: sqlite_utils.Database, run_id: int, version_ids, lines, files) -> None:
    """The run's versions with their lines and file labels (in version order: appends to the
    table's key)."""
    import numpy as np
    import pandas as pd

    vid = np.asarray(version_ids, np.int64)
    ln = np.asarray(lines, np.int64)
    order = np.argsort(vid, kind="stable")
    vid, ln = vid[order], ln[order]
    fcode, labels = pd.factorize(np.asarray(files, dtype=object)[order])
    fcode = fcode.astype(np.int64)
    conn = db.conn
    # a million rows: one integer per row (version, line, file packed) parsed by SQLite's json_each
    # is 3x faster than executemany's per-row binding
    fb = max(1, int(len(labels)).bit_length())
    lb = max(1, int(ln.max() if len(ln) else 0).bit_length()) if (ln >= 0).all() else 64
    vb = max(1, int(vid.max() if len(vid) else 0).bit_length())
    if len(vid) < 1000 or fb + lb + vb > 62 or (fcode < 0).any():
        conn.executemany(f"INSERT INTO [{MEMBERS}] (run_id, version_id, line, file) VALUES ({int(run_id)}, ?, ?, ?)",
                         zip(vid.tolist(), ln.tolist(), np.asarray(labels, dtype=object)[fcode].tolist()))
        return
    packed = (vid << (lb + fb)) | (ln << fb) | fcode
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _mfiles (no INTEGER PRIMARY KEY, label TEXT)")
    conn.execute("DELETE FROM _mfiles")
    conn.executemany("INSERT INTO _mfiles VALUES (?, ?)", enumerate(str(x) for x in labels))
    conn.execute(f"INSERT INTO [{MEMBERS}] (run_id, version_id, line, file) SELECT ?, j.value >> {lb + fb}, "
                 f"(j.value >> {fb}) & {(1 << lb) - 1}, f.label FROM json_each(?) j JOIN _mfiles f "
                 f"ON f.no = (j.value & {(1 << fb) - 1}) ORDER BY j.key",
                 (int(run_id), "[" + ",".join(map(str, packed.tolist())) + "]"))
    conn.execute("DELETE FROM _mfiles")
