"""The stored state of a dedupe run (table ``dedupe_state``; only the latest run's is kept).

What the next run needs to reuse this one's work without reading the ``records`` table: per
record its key, file, hashes of its raw row and of its line in the file, its fingerprint, the
columns later stages read (dictionary-coded), one 64-bit hash per blocking key column, its person
ID and its version in reconcile.record_store; per candidate pair its positions, comparison levels,
blocking-pass mask and implied-field flags. Stored as blobs (numpy ``.npy`` and NUL-joined
text), chunked below SQLite's blob limit, inside the run's transaction.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

STATE_TABLE = "dedupe_state"
STATE_FORMAT = 3                    # 3: record versions (record_store) instead of `records` rowids
_CHUNK = 200 * 1024 * 1024          # blob chunk size (SQLite's default limit is 1e9 bytes)


@dataclass
class Coded:
    """A text column as distinct values + one int32 code per record (cheap to store and extend)."""

    uniq: np.ndarray       # object
    codes: np.ndarray      # int32
    text: bytes | None = None   # the stored (NUL-joined UTF-8) form of ``uniq``, kept to append to

    @classmethod
    def of(cls, values: np.ndarray) -> "Coded":
        codes, uniq = pd.factorize(np.asarray(values, dtype=object))
        return cls(np.asarray(uniq, dtype=object), codes.astype(np.int32))

    def values(self) -> np.ndarray:
        return self.uniq[self.codes] if len(self.codes) else np.zeros(0, object)

    def append(self, values) -> int:
        """Add values to the dictionary (in place); returns the code of the first one."""
        start = len(self.uniq)
        vals = np.asarray(values, dtype=object)
        if not len(vals):
            return start
        self.uniq = np.concatenate([self.uniq, vals])
        if self.text is not None:
            more = "\x00".join(str(v) for v in vals)
            if more.count("\x00") == len(vals) - 1:
                self.text = (self.text + b"\x00" if start else b"") + more.encode()
            else:
                self.text = None
        return start

    def take_extend(self, old_pos: np.ndarray, n: int, new_pos: np.ndarray, new_values) -> "Coded":
        """A column of ``n`` records: this column's values at ``old_pos`` (records with
        ``old_pos >= 0``), new values at ``new_pos``. New values are appended to the dictionary
        (recoded from scratch once it holds more than twice the live values)."""
        codes = np.zeros(n, np.int32)
        keep = old_pos >= 0
        codes[keep] = self.codes[old_pos[keep]]
        out = Coded(self.uniq, codes, self.text)
        if len(new_pos):
            codes[new_pos] = out.append(new_values) + np.arange(len(new_pos), dtype=np.int32)
        if len(out.uniq) > 2 * n + 1000:
            out = Coded.of(out.values())
        return out


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _encode_text(values: np.ndarray) -> bytes:
    vals = [str(v) for v in values]
    joined = "\x00".join(vals)
    if joined.count("\x00") != max(len(vals) - 1, 0):
        return b"J" + json.dumps(vals, ensure_ascii=False).encode()
    return b"N" + len(vals).to_bytes(8, "little") + joined.encode()


def _decode_text(data: bytes) -> np.ndarray:
    if data[:1] == b"J":
        return np.asarray(json.loads(data[1:].decode()), dtype=object)
    n = int.from_bytes(data[1:9], "little")
    if n == 0:
        return np.zeros(0, object)
    return np.asarray(data[9:].decode().split("\x00"), dtype=object)


def _encode_coded(col: Coded) -> bytes:
    if col.text is not None:
        return b"N" + len(col.uniq).to_bytes(8, "little") + col.text
    return _encode_text(col.uniq)


def ensure_state_table(db) -> None:
    if STATE_TABLE not in db.table_names():
        db.execute(f"CREATE TABLE [{STATE_TABLE}] (run_id INTEGER, part TEXT, seq INTEGER, data BLOB)")
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_{STATE_TABLE}_run ON [{STATE_TABLE}] (run_id, part, seq)")


def _write(db, run_id: int, part: str, data: bytes) -> None:
    for seq, start in enumerate(range(0, max(len(data), 1), _CHUNK)):
        db.conn.execute(f"INSERT INTO [{STATE_TABLE}] (run_id, part, seq, data) VALUES (?, ?, ?, ?)",
                        (run_id, part, seq, data[start:start + _CHUNK]))


def _read(db, run_id: int, part: str) -> bytes:
    rows = db.execute(f"SELECT data FROM [{STATE_TABLE}] WHERE run_id = ? AND part = ? ORDER BY seq",
                      (run_id, part)).fetchall()
    if not rows:
        raise KeyError(part)
    return b"".join(r[0] for r in rows)


@dataclass
class State:
    """A dedupe run's population and candidate pairs (positions are that run's record order)."""

    run_id: int
    meta: dict[str, Any]
    keys: np.ndarray                      # object: pooled record key
    file_index: np.ndarray                # int16: input file of each record
    rowhash: np.ndarray                   # uint64: raw row as read
    linehash: np.ndarray                  # uint64: the record's line in a text file (0: not a text file)
    fp64: np.ndarray                      # uint64: record fingerprint
    cols: dict[str, Coded]                # population columns
    prefill: dict[str, Coded]             # hukou county / name before the fill from units
    keyhash: dict[str, np.ndarray]        # blocking key column -> uint64 per record
    sparse: np.ndarray                    # bool: no ID and no birth date
    filled: np.ndarray                    # int8: completeness count
    person: Coded                         # person ID per record
    version: np.ndarray                   # int64: version id of the record (record_versions)
    li: np.ndarray                        # candidate pairs ...
    ri: np.ndarray
    passes: np.ndarray
    levels: np.ndarray
    flags: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.keys)


ARRAYS = ("file_index", "rowhash", "linehash", "fp64", "sparse", "filled", "version", "li", "ri", "passes", "levels",
          "flags")


def save(db, state: State) -> None:
    """Store ``state`` (call inside the run's transaction). The previous state is deleted by
    :func:`prune` after the run committed: deleting it here would copy all of it into SQLite's
    rollback journal (hundreds of MB for a million records), and a killed run must leave it."""
    ensure_state_table(db)
    db.conn.execute(f"DELETE FROM [{STATE_TABLE}] WHERE run_id = ?", (state.run_id,))
    rid = state.run_id
    meta = {**state.meta, "format": STATE_FORMAT, "columns": sorted(state.cols), "keycols": sorted(state.keyhash)}
    _write(db, rid, "meta", json.dumps(meta, ensure_ascii=False).encode())
    _write(db, rid, "keys", _encode_text(state.keys))
    for name, col in (*((f"c:{c}", v) for c, v in state.cols.items()), *((f"p:{c}", v) for c, v in state.prefill.items()),
                      ("person", state.person)):
        _write(db, rid, f"{name}:u", _encode_coded(col))
        _write(db, rid, f"{name}:k", _npy(col.codes.astype(np.int32)))
    for c, arr in state.keyhash.items():
        _write(db, rid, f"h:{c}", _npy(arr.astype(np.uint64)))
    for name in ARRAYS:
        _write(db, rid, f"a:{name}", _npy(getattr(state, name)))


def prune(db, keep_run: int) -> None:
    """Delete every stored state but ``keep_run``'s (its own transaction, after the run committed)."""
    if STATE_TABLE not in db.table_names():
        return
    with db.atomic():
        db.conn.execute(f"DELETE FROM [{STATE_TABLE}] WHERE run_id <> ?", (keep_run,))


def latest_run(db) -> int | None:
    """Run id of the stored state if it belongs to a complete dedupe run, else None."""
    if STATE_TABLE not in db.table_names():
        return None
    row = db.execute(f"SELECT max(s.run_id) FROM [{STATE_TABLE}] s JOIN runs r ON r.run_id = s.run_id "
                     "WHERE r.status = 'complete' AND r.command = 'dedupe'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def load(db, run_id: int) -> State | None:
    """The stored state of ``run_id`` (None if it is missing or of another format)."""
    try:
        meta = json.loads(_read(db, run_id, "meta").decode())
        if meta.get("format") != STATE_FORMAT:
            return None

        def coded(name: str) -> Coded:
            raw = _read(db, run_id, f"{name}:u")
            text = raw[9:] if raw[:1] == b"N" else None
            return Coded(_decode_text(raw), _from_npy(_read(db, run_id, f"{name}:k")), text)

        arrays = {name: _from_npy(_read(db, run_id, f"a:{name}")) for name in ARRAYS}
        return State(
            run_id=run_id, meta=meta, keys=_decode_text(_read(db, run_id, "keys")),
            cols={c: coded(f"c:{c}") for c in meta["columns"]},
            prefill={c: coded(f"p:{c}") for c in ("hukou_region", "hukou_region_name")},
            keyhash={c: _from_npy(_read(db, run_id, f"h:{c}")) for c in meta["keycols"]},
            person=coded("person"), **arrays,
        )
    except KeyError:
        return None
