"""The stored state of a dedupe run (table ``dedupe_state``; only the latest run's is kept).

What the next run needs to reuse this one's work without reading the ``records`` table: per
record its key, file, hashes of its raw row and of its line in the file, its fingerprint, the
columns later stages read (dictionary-coded), one 64-bit hash per blocking key column, its person
ID and its version in reconcile.record_store; per candidate pair its two records, comparison
levels, blocking-pass mask and implied-field flags. Stored as blobs (numpy ``.npy`` and
NUL-joined text), chunked below SQLite's blob limit, inside the run's transaction.

The per-record part is written whole by every run (in that run's record order). Candidate pairs
(20 million for a million records, 340 MB) are not: they are stored in *chunks* named by record
version ids (stable across runs, unlike positions). A full run writes one chunk of all its pairs;
an incremental run appends a chunk of the pairs it did not reuse unchanged and stores which
earlier pairs are still alive (a bitmap) and the pass masks that changed. When less than 3/4 of
the stored pairs are alive, or the chain is long, the run writes one fresh chunk instead.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

STATE_TABLE = "dedupe_state"
STATE_FORMAT = 4                    # 4: pairs in chunks by record version (3: versions, 2: rowids)
_MAX_CHAIN = 24                     # chunks before a fresh one is written
_MIN_ALIVE = 0.75                   # alive share of the stored pairs below which a fresh chunk is written
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
    li: np.ndarray                        # candidate pairs (positions of this run) ...
    ri: np.ndarray
    passes: np.ndarray
    levels: np.ndarray
    flags: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)
    # where the pairs are stored (set by load; a new state leaves them empty)
    chain: list[int] = field(default_factory=list)          # runs whose chunks hold the pairs, in order
    pair_total: int = 0                                      # pairs in all chunks (alive or not)
    pair_index: np.ndarray | None = None                     # chunk index of each loaded pair
    chunk_passes: np.ndarray | None = None                   # the pass mask as stored in the chunk

    @property
    def n(self) -> int:
        return len(self.keys)


ARRAYS = ("file_index", "rowhash", "linehash", "fp64", "sparse", "filled", "version")
CHUNK_ARRAYS = ("va", "vb", "passes", "levels", "flags")


@dataclass
class PairDelta:
    """How this run's pairs are stored against the previous state: ``keep`` (indices into the
    previous state's loaded pairs of those still alive, same records and levels), their pass masks
    now ``keep_passes``, and the other pairs to append (version ids, masks, levels, flags)."""

    keep: np.ndarray
    keep_passes: np.ndarray
    va: np.ndarray
    vb: np.ndarray
    passes: np.ndarray
    levels: np.ndarray
    flags: np.ndarray


def _ids(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr, np.int64)
    return a.astype(np.uint32) if not len(a) or (a.min() >= 0 and a.max() < 2 ** 32) else a


def save(db, state: State, previous: State | None = None, delta: PairDelta | None = None) -> None:
    """Store ``state`` (call inside the run's transaction). Its pairs go to a fresh chunk, or, with
    ``previous`` (the loaded state this run started from) and ``delta``, to a chunk appended to
    ``previous``'s chain. Earlier states are deleted by :func:`prune` after the run committed:
    deleting them here would copy them into SQLite's rollback journal, and a killed run must
    leave them."""
    ensure_state_table(db)
    db.conn.execute(f"DELETE FROM [{STATE_TABLE}] WHERE run_id = ?", (state.run_id,))
    rid = state.run_id
    vid = np.asarray(state.version, np.int64)
    if previous is not None and delta is not None and previous.chain:
        total = previous.pair_total + len(delta.va)
        alive = len(delta.keep) + len(delta.va)
        if len(previous.chain) >= _MAX_CHAIN or alive < _MIN_ALIVE * total:
            previous = None
    else:
        previous = None
    if previous is None:
        chunk = {"va": vid[state.li], "vb": vid[state.ri], "passes": state.passes, "levels": state.levels,
                 "flags": state.flags}
        chain, total = [rid], len(state.li)
        alive_bits, ovr = None, None
    else:
        chunk = {"va": delta.va, "vb": delta.vb, "passes": delta.passes, "levels": delta.levels, "flags": delta.flags}
        chain, total = [*previous.chain, rid], previous.pair_total + len(delta.va)
        keep = previous.pair_index[delta.keep]
        bits = np.zeros(total, bool)
        bits[keep] = True
        bits[previous.pair_total:] = True
        alive_bits = np.packbits(bits)
        # masks that differ from the chunk's: the pass recomputed whole, blocks that crossed the cap
        diff = np.asarray(delta.keep_passes, np.uint16) != previous.chunk_passes[delta.keep]
        ovr = (np.asarray(keep, np.int64)[diff], np.asarray(delta.keep_passes, np.uint16)[diff])
    for name in CHUNK_ARRAYS:
        arr = chunk[name]
        arr = _ids(arr) if name in ("va", "vb") else np.asarray(arr, {"passes": np.uint16, "levels": np.int8,
                                                                      "flags": np.uint8}[name])
        _write(db, rid, f"pc:{name}", _npy(arr))
    if alive_bits is not None:
        _write(db, rid, "pa:alive", _npy(alive_bits))
        _write(db, rid, "pa:ovr_idx", _npy(ovr[0]))
        _write(db, rid, "pa:ovr_mask", _npy(ovr[1]))
    meta = {**state.meta, "format": STATE_FORMAT, "columns": sorted(state.cols), "keycols": sorted(state.keyhash),
            "chain": chain, "pair_total": int(total)}
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
    """Delete every stored state but ``keep_run``'s and the pair chunks its chain still uses (its
    own transaction, after the run committed)."""
    if STATE_TABLE not in db.table_names():
        return
    try:
        chain = json.loads(_read(db, keep_run, "meta").decode()).get("chain") or [keep_run]
    except KeyError:
        return
    keep = sorted({int(r) for r in chain if int(r) != keep_run})
    marks = ",".join("?" * len(keep))
    with db.atomic():
        db.conn.execute(f"DELETE FROM [{STATE_TABLE}] WHERE run_id <> ? AND NOT (part LIKE 'pc:%' AND run_id IN ({marks or 'NULL'}))",
                        (keep_run, *keep))


def latest_run(db) -> int | None:
    """Run id of the stored state if it belongs to a complete dedupe run, else None."""
    if STATE_TABLE not in db.table_names():
        return None
    row = db.execute(f"SELECT max(s.run_id) FROM [{STATE_TABLE}] s JOIN runs r ON r.run_id = s.run_id "
                     "WHERE s.part = 'meta' AND r.status = 'complete' AND r.command = 'dedupe'").fetchone()
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
        pairs = _load_pairs(db, run_id, meta, arrays["version"])
        return State(
            run_id=run_id, meta=meta, keys=_decode_text(_read(db, run_id, "keys")),
            cols={c: coded(f"c:{c}") for c in meta["columns"]},
            prefill={c: coded(f"p:{c}") for c in ("hukou_region", "hukou_region_name")},
            keyhash={c: _from_npy(_read(db, run_id, f"h:{c}")) for c in meta["keycols"]},
            person=coded("person"), **arrays, **pairs,
        )
    except KeyError:
        return None


def _load_pairs(db, run_id: int, meta: dict[str, Any], version: np.ndarray) -> dict[str, Any]:
    """The alive pairs of the chain, in positions of ``run_id``'s records."""
    chain = [int(r) for r in meta["chain"]]
    parts = {name: [] for name in CHUNK_ARRAYS}
    for r in chain:
        for name in CHUNK_ARRAYS:
            parts[name].append(_from_npy(_read(db, r, f"pc:{name}")))
    cat = {name: (np.concatenate(v) if len(v) > 1 else v[0]) for name, v in parts.items()}
    del parts
    total = int(meta["pair_total"])
    chunk_passes = cat["passes"]
    passes = chunk_passes
    if len(chain) > 1:
        alive = np.unpackbits(_from_npy(_read(db, run_id, "pa:alive")), count=total).astype(bool)
        oi, om = _from_npy(_read(db, run_id, "pa:ovr_idx")), _from_npy(_read(db, run_id, "pa:ovr_mask"))
        if len(oi):
            passes = chunk_passes.copy()
            passes[oi] = om
    else:
        alive = None
    vid = np.asarray(version, np.int64)
    # version id -> position in this run (versions are dense integers)
    top = int(max(vid.max() if len(vid) else 0, cat["va"].max() if total else 0, cat["vb"].max() if total else 0)) + 1
    pos_of = np.full(top, -1, np.int64)
    pos_of[vid] = np.arange(len(vid))
    pos_of = pos_of.astype(np.int32)
    li = pos_of[cat["va"]]
    ri = pos_of[cat["vb"]]
    keep = (li >= 0) & (ri >= 0)
    if alive is not None:
        keep &= alive
    if keep.all():          # a fresh chunk of the run's own pairs: no copies
        return {"li": li, "ri": ri, "passes": passes, "levels": cat["levels"], "flags": cat["flags"], "chain": chain,
                "pair_total": total, "pair_index": np.arange(total), "chunk_passes": chunk_passes}
    idx = np.nonzero(keep)[0]
    return {"li": li[idx], "ri": ri[idx], "passes": passes[idx],
            "levels": cat["levels"][idx], "flags": cat["flags"][idx], "chain": chain, "pair_total": total,
            "pair_index": idx, "chunk_passes": chunk_passes[idx]}
