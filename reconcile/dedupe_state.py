"""The stored state of a dedupe run (table ``dedupe_state``; only the latest run's is kept).

What the next run needs to reuse this one's work without reading the ``records`` table: per
record its key, file, hashes of its raw row and of its line in the file, its fingerprint, the
columns later stages read (dictionary-coded), one 64-bit hash per blocking key column, its person
ID and its version in reconcile.record_store; per candidate pair its two records, comparison
levels, blocking-pass mask and implied-field flags. Stored as blobs (numpy ``.npy`` and
NUL-joined text), chunked below SQLite's blob limit, inside the run's transaction.

Neither part is written whole by every run (for a million records: 280 MB of records, 320 MB of
pairs). Both are stored in *chunks*: a full run writes one chunk of its records and one of its
pairs; an incremental run appends a chunk of the records it did not keep unchanged (new, changed,
a new version) and a chunk of the pairs it did not reuse unchanged, plus its own small part: the
row of each of its records in the record chunks, and which stored pairs are still alive (a
bitmap) with the pass masks that changed. Pairs name their records by version id (stable across
runs, unlike positions). When less than 3/4 of the stored rows or pairs are alive, or a chain
is long, the run writes a fresh chunk instead.
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
    rec_chain: list[int] = field(default_factory=list)       # runs whose chunks hold the records
    rec_total: int = 0                                       # rows in all record chunks
    row: np.ndarray | None = None                            # record chunk row of each record

    @property
    def n(self) -> int:
        return len(self.keys)


ARRAYS = ("file_index", "rowhash", "linehash", "fp64", "sparse", "filled", "version")
ROW_ARRAYS = ("rowhash", "linehash", "fp64", "sparse", "filled", "version")    # stored per record chunk row
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


def save(db, state: State, previous: State | None = None, delta: PairDelta | None = None,
         old_pos: np.ndarray | None = None) -> None:
    """Store ``state`` (call inside the run's transaction). Its pairs go to a fresh chunk, or, with
    ``previous`` (the loaded state this run started from) and ``delta``, to a chunk appended to
    ``previous``'s chain; records likewise (``old_pos``: each record's position in ``previous``
    when it is unchanged, else -1). Earlier states are deleted by :func:`prune` after the run committed:
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
    rec_chain, rec_total, row = _save_records(db, state, previous if old_pos is not None else None, old_pos)
    meta = {**state.meta, "format": STATE_FORMAT, "columns": sorted(state.cols), "keycols": sorted(state.keyhash),
            "chain": chain, "pair_total": int(total), "rec_chain": rec_chain, "rec_total": int(rec_total)}
    _write(db, rid, "meta", json.dumps(meta, ensure_ascii=False).encode())
    _write(db, rid, "chains", json.dumps({"chain": chain, "rec_chain": rec_chain}).encode())
    _write(db, rid, "a:row", _npy(row.astype(np.int64)))
    _write(db, rid, "a:file_index", _npy(np.asarray(state.file_index, np.int16)))


def _save_records(db, state: State, previous: State | None, old_pos: np.ndarray | None):
    """Write the record chunk of this run: every record (fresh) or those it does not keep."""
    rid, n = state.run_id, state.n
    new = np.ones(n, bool)
    row = np.zeros(n, np.int64)
    chain, base = [rid], 0
    if previous is not None and previous.rec_chain and old_pos is not None:
        has = old_pos >= 0
        op = old_pos[has]
        same = ((previous.version[op] == state.version[has]) & (previous.rowhash[op] == state.rowhash[has])
                & (previous.linehash[op] == state.linehash[has]))
        keep_pos = np.nonzero(has)[0][same]
        used = np.zeros(previous.rec_total, bool)
        used[previous.row[op[same]]] = True
        alive = int(used.sum()) + (n - len(keep_pos))
        total = previous.rec_total + n - len(keep_pos)
        if len(previous.rec_chain) < _MAX_CHAIN and alive >= _MIN_ALIVE * total:
            new[keep_pos] = False
            row[keep_pos] = previous.row[op[same]]
            chain, base = [*previous.rec_chain, rid], previous.rec_total
    idx = np.nonzero(new)[0]
    row[idx] = base + np.arange(len(idx))
    sub = (lambda a: a) if len(idx) == n else (lambda a: a[idx])
    _write(db, rid, "rc:keys", _encode_text(sub(state.keys)))
    for name, col in (*((f"c:{c}", v) for c, v in state.cols.items()), *((f"p:{c}", v) for c, v in state.prefill.items()),
                      ("person", state.person)):
        part = col if len(idx) == n else Coded.of(col.values()[idx])
        _write(db, rid, f"rc:{name}:u", _encode_coded(part))
        _write(db, rid, f"rc:{name}:k", _npy(part.codes.astype(np.int32)))
    for c, arr in state.keyhash.items():
        _write(db, rid, f"rc:h:{c}", _npy(sub(np.asarray(arr, np.uint64))))
    for name in ROW_ARRAYS:
        _write(db, rid, f"rc:a:{name}", _npy(sub(np.asarray(getattr(state, name)))))
    return chain, base + len(idx), row


def prune(db, keep_run: int) -> None:
    """Delete every stored state but ``keep_run``'s and the pair chunks its chain still uses (its
    own transaction, after the run committed)."""
    if STATE_TABLE not in db.table_names():
        return
    try:
        meta = json.loads(_read(db, keep_run, "chains").decode())     # small: not the whole meta
    except KeyError:
        return
    pairs = sorted({int(r) for r in meta.get("chain") or [] if int(r) != keep_run})
    recs = sorted({int(r) for r in meta.get("rec_chain") or [] if int(r) != keep_run})
    pm, rm = ",".join("?" * len(pairs)) or "NULL", ",".join("?" * len(recs)) or "NULL"
    with db.atomic():
        db.conn.execute(f"DELETE FROM [{STATE_TABLE}] WHERE run_id <> ? AND NOT (part LIKE 'pc:%' AND run_id IN ({pm})) "
                        f"AND NOT (part LIKE 'rc:%' AND run_id IN ({rm}))", (keep_run, *pairs, *recs))


def latest_run(db) -> int | None:
    """Run id of the stored state if it belongs to a complete dedupe run, else None."""
    if STATE_TABLE not in db.table_names():
        return None
    row = db.execute(f"SELECT max(s.run_id) FROM [{STATE_TABLE}] s JOIN runs r ON r.run_id = s.run_id "
                     "WHERE s.part = 'meta' AND r.status = 'complete' AND r.command = 'dedupe'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def stored_format(db, run_id: int) -> int | None:
    """The format number of ``run_id``'s stored state (None: none stored)."""
    try:
        return int(json.loads(_read(db, run_id, "meta").decode()).get("format") or 0)
    except (KeyError, ValueError):
        return None


def load(db, run_id: int) -> State | None:
    """The stored state of ``run_id`` (None if it is missing or of another format)."""
    try:
        meta = json.loads(_read(db, run_id, "meta").decode())
        if meta.get("format") != STATE_FORMAT:
            return None

        rec_chain = [int(r) for r in meta["rec_chain"]]
        row = _from_npy(_read(db, run_id, "a:row"))
        whole = len(rec_chain) == 1 and len(row) == int(meta["rec_total"]) and bool((row == np.arange(len(row))).all())
        take = (lambda a: a) if whole else (lambda a: a[row])

        def stacked(name: str) -> np.ndarray:
            parts = [_from_npy(_read(db, r, name)) for r in rec_chain]
            return take(np.concatenate(parts) if len(parts) > 1 else parts[0])

        def coded(name: str) -> Coded:
            uniqs, codes, off = [], [], 0
            for r in rec_chain:
                raw = _read(db, r, f"rc:{name}:u")
                u = _decode_text(raw)
                codes.append(_from_npy(_read(db, r, f"rc:{name}:k")).astype(np.int32) + np.int32(off))
                uniqs.append(u)
                off += len(u)
            if len(rec_chain) == 1:
                text = raw[9:] if raw[:1] == b"N" else None
                return Coded(uniqs[0], take(codes[0]), text if whole else None)
            return Coded(np.concatenate(uniqs), take(np.concatenate(codes)))

        keys = []
        for r in rec_chain:
            keys.append(_decode_text(_read(db, r, "rc:keys")))
        arrays = {name: stacked(f"rc:a:{name}") for name in ROW_ARRAYS}
        arrays["file_index"] = _from_npy(_read(db, run_id, "a:file_index"))
        pairs = _load_pairs(db, run_id, meta, arrays["version"])
        return State(
            run_id=run_id, meta=meta, keys=take(np.concatenate(keys) if len(keys) > 1 else keys[0]),
            cols={c: coded(f"c:{c}") for c in meta["columns"]},
            prefill={c: coded(f"p:{c}") for c in ("hukou_region", "hukou_region_name")},
            keyhash={c: stacked(f"rc:h:{c}") for c in meta["keycols"]},
            person=coded("person"), **arrays, **pairs, rec_chain=rec_chain, rec_total=int(meta["rec_total"]), row=row,
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
