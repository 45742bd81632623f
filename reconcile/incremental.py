"""Incremental dedupe runs: compare only new or changed records against the whole population.

A dedupe run stores a compact *state* of its population in the report (table ``dedupe_state``,
only the latest run's is kept): per record its key, a hash of its raw row, its fingerprint, the
columns the comparators and later stages read, one 64-bit hash per blocking key column, its
person ID and the rowid of its ``records`` row; and every candidate pair (positions, comparison
levels, blocking-pass mask). The next run against the same database then:

1. reads the files and finds the records that are new or changed (raw row hash per key); only
   those are standardised;
2. fills hukou counties from units over the whole population again (a record whose filled
   county changes counts as changed);
3. runs every blocking pass for the changed records against all records, with block sizes (the
   cap) counted over the whole current population; pairs of two unchanged records come from the
   stored pairs, corrected where a block crossed the cap; the "name alone, sparse records" pass is
   recomputed whole (its blocks are few);
4. compares only pairs it has no stored levels for, and scores every pair with the previous
   run's model (or ``--model``) and this population's term frequencies;
5. copies unchanged ``records`` and ``person_records`` rows inside SQLite.

The result equals a full run on the same data with the same model (``--model PREV``): the same
pairs, levels, scores, decisions, clusters, person IDs and tables (tests/test_incremental.py).
Blocking keys are compared by 64-bit hashes here and by text in full runs; a collision (about
one in 10^7 for a million records) would add a candidate pair, never lose one.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

import reconcile
from matchers.base import Comparator
from reconcile.blocking import DEFAULT_PASSES, BlockingPass, PassStats, candidate_pairs
from reconcile.dedupe import (
    SOURCE, DedupeOptions, InputFile, Population, base_model, estimate_u_prior, file_labels, keys_collide,
    model_from_run, pool, population_columns, population_from_frame, read_input, record_rows, rejected_rows,
    standardise_input,
)
from reconcile.linkage import Progress
from reconcile.model import Model
from reconcile.persons import PreviousAssignment, load_previous
from reconcile.privacy import mask_ids_in_text

STATE_TABLE = "dedupe_state"
STATE_FORMAT = 1
_CHUNK = 200 * 1024 * 1024          # blob chunk size (SQLite's default limit is 1e9 bytes)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)


# ---------------------------------------------------------------------------------------------
# what a run hands to reconcile.dedupe.finish

@dataclass
class Work:
    """The population and its scored-to-be pairs, however they were obtained."""

    mode: str                                    # 'full' | 'incremental'
    paths: list[Path]
    files: list[InputFile]
    inputs: list[dict[str, Any]]
    pop: Population
    model: Model
    li: np.ndarray
    ri: np.ndarray
    passes: np.ndarray
    levels: np.ndarray
    stats: list[PassStats]
    record_rows: pd.DataFrame                    # rows write_run inserts
    rejected: pd.DataFrame
    previous_persons: PreviousAssignment | None
    prev_pid: np.ndarray                         # previous person of each record ('' none)
    prev_same_content: np.ndarray                # same fingerprint as in the previous run
    prev_index: np.ndarray                       # previous run position of each record (-1 none)
    keyhash: dict[str, np.ndarray]               # per blocking column: 64-bit hash per record (0 empty)
    sparse: np.ndarray
    prefill: dict[str, np.ndarray]               # hukou county / name before the fill from units
    rowhash: np.ndarray
    skipped_labels: dict[str, dict[int, str]]    # pass -> key hash -> readable key of skipped blocks
    qualified: bool
    timings: dict[str, float] = field(default_factory=dict)
    work: dict[str, Any] = field(default_factory=dict)
    previous_run: int | None = None
    rejected_count: int = 0
    copy: Callable[[Any, int], None] | None = None
    record_rowid: np.ndarray | None = None       # filled after writing

    def copy_records(self, db, run_id: int) -> None:
        if self.copy is not None:
            self.copy(db, run_id)

    def previous_drop(self, person_id: np.ndarray) -> list[tuple[str, str]]:
        """(source, key) of the previous run's records whose person_records row is not copied."""
        prev = self.previous_persons
        if prev is None:
            return []
        kept = np.zeros(len(prev.person_id), bool)
        cur = np.nonzero(self.prev_index >= 0)[0]
        same = person_id[cur] == self.prev_pid[cur]
        kept[self.prev_index[cur[same]]] = True
        return list(zip(prev.source[~kept].tolist(), prev.record_key[~kept].tolist()))


# ---------------------------------------------------------------------------------------------
# hashing

def hash_strings(values: np.ndarray) -> np.ndarray:
    """Stable 64-bit hash per string ('' -> 0), computed once per distinct value."""
    vals = np.asarray(values, dtype=object)
    if vals.size == 0:
        return np.zeros(0, np.uint64)
    codes, uniq = pd.factorize(vals)
    uh = pd.util.hash_array(np.asarray(uniq, dtype=object), categorize=False).astype(np.uint64)
    uh[uh == 0] = np.uint64(1)
    uh[np.asarray(uniq, dtype=object) == ""] = np.uint64(0)
    return uh[codes]


def pass_hash(keyhash: dict[str, np.ndarray], p: BlockingPass) -> np.ndarray:
    """One 64-bit key per record for a blocking pass; 0 where any of its columns is empty."""
    h = keyhash[p.columns[0]].copy()
    empty = h == 0
    with np.errstate(over="ignore"):
        for c in p.columns[1:]:
            g = keyhash[c]
            empty |= g == 0
            h = (h * _K1) ^ (g * _K2)
            h ^= h >> np.uint64(29)
    h[h == 0] = np.uint64(1)
    h[empty] = np.uint64(0)
    return h


def blocking_columns(passes: Sequence[BlockingPass]) -> list[str]:
    return sorted({c for p in passes for c in p.columns})


def row_hashes(raw: pd.DataFrame, label: str | None = None) -> np.ndarray:
    """Hash of each raw row (every column as read; and the file's label when it matters)."""
    if len(raw) == 0:
        return np.zeros(0, np.uint64)
    h = pd.util.hash_pandas_object(raw.astype(str), index=False).to_numpy(np.uint64)
    if label is None:
        return h
    lab = hash_strings(np.array([label], dtype=object))[0]
    with np.errstate(over="ignore"):
        return (h * _K1) ^ lab


def signature(opts: DedupeOptions, comps: Sequence[Comparator], passes: Sequence[BlockingPass]) -> dict[str, Any]:
    """What a stored state must share with a new run for its pairs and levels to be reused."""
    return {"format": STATE_FORMAT, "version": reconcile.__version__,
            "comparators": [[c.field, list(c.levels), list(c.columns)] for c in comps],
            "passes": [[p.name, list(p.columns), p.only_sparse, p.cap] for p in passes],
            "settings": json.loads(json.dumps(opts.compare_settings(), default=str))}


# ---------------------------------------------------------------------------------------------
# state storage

def _ensure_state_table(db) -> None:
    if STATE_TABLE not in db.table_names():
        db.execute(f"CREATE TABLE [{STATE_TABLE}] (run_id INTEGER, part TEXT, seq INTEGER, data BLOB)")
        db.execute(f"CREATE INDEX IF NOT EXISTS idx_{STATE_TABLE}_run ON [{STATE_TABLE}] (run_id, part, seq)")


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _encode_strings(values: np.ndarray) -> bytes:
    """Distinct values joined (NUL-separated, JSON if a value holds NUL) + int32 codes."""
    codes, uniq = pd.factorize(np.asarray(values, dtype=object))
    uniq_list = [str(u) for u in uniq]
    joined = "\x00".join(uniq_list)
    if joined.count("\x00") != max(len(uniq_list) - 1, 0):
        head, body = b"J", json.dumps(uniq_list, ensure_ascii=False).encode()
    else:
        head, body = b"N", joined.encode()
    c = _npy(codes.astype(np.int32))
    return head + len(body).to_bytes(8, "little") + body + c


def _decode_strings(data: bytes) -> np.ndarray:
    kind, size = data[:1], int.from_bytes(data[1:9], "little")
    body = data[9:9 + size]
    if kind == b"J":
        uniq = json.loads(body.decode())
    else:
        uniq = body.decode().split("\x00") if size else [""]
    codes = _from_npy(data[9 + size:])
    if not len(uniq) or (len(codes) and codes.max() >= len(uniq)):
        uniq = uniq or [""]
    return np.asarray(uniq, dtype=object)[codes] if len(codes) else np.zeros(0, object)


def _write_blob(db, run_id: int, part: str, data: bytes) -> None:
    for seq, start in enumerate(range(0, max(len(data), 1), _CHUNK)):
        db.conn.execute(f"INSERT INTO [{STATE_TABLE}] (run_id, part, seq, data) VALUES (?, ?, ?, ?)",
                        (run_id, part, seq, data[start:start + _CHUNK]))


def _read_blob(db, run_id: int, part: str) -> bytes | None:
    rows = db.execute(f"SELECT data FROM [{STATE_TABLE}] WHERE run_id = ? AND part = ? ORDER BY seq",
                      (run_id, part)).fetchall()
    if not rows:
        return None
    return b"".join(r[0] for r in rows)


@dataclass
class State:
    """A previous dedupe run's population and pairs (see the module docstring)."""

    run_id: int
    meta: dict[str, Any]
    keys: np.ndarray
    file: np.ndarray
    rowhash: np.ndarray
    fp64: np.ndarray
    cols: dict[str, np.ndarray]
    keyhash: dict[str, np.ndarray]
    prefill: dict[str, np.ndarray]
    sparse: np.ndarray
    filled: np.ndarray
    person_id: np.ndarray
    rowid: np.ndarray
    li: np.ndarray
    ri: np.ndarray
    passes: np.ndarray
    levels: np.ndarray

    @property
    def n(self) -> int:
        return len(self.keys)


def save_state(db, run_id: int, work: Work, person_id: np.ndarray, sc, opts: DedupeOptions,
               comps: Sequence[Comparator]) -> None:
    """Store this run's population and pairs (inside the run's transaction); drop older states."""
    t0 = time.perf_counter()
    _ensure_state_table(db)
    db.conn.execute(f"DELETE FROM [{STATE_TABLE}]")
    pop = work.pop
    rowid = _record_rowids(db, run_id, work)
    # candidate pairs as blocking produced them (reviewers' added pairs carry mask 0: not stored)
    real = sc.passes != 0
    li, ri, passes, levels = sc.li[real], sc.ri[real], sc.passes[real], sc.levels[real]
    meta = {
        "signature": signature(opts, comps, DEFAULT_PASSES), "n": pop.n, "pairs": int(len(li)),
        "qualified": work.qualified, "files": [f.label for f in work.files] if work.files else work.work.get("files", []),
        "model_run": run_id, "skipped_labels": {p: {str(k): v for k, v in d.items()} for p, d in work.skipped_labels.items()},
        "columns": sorted(pop.cols), "keycols": sorted(work.keyhash),
    }
    _write_blob(db, run_id, "meta", json.dumps(meta, ensure_ascii=False).encode())
    for name, arr in (("keys", pop.keys), ("file", pop.file), ("person_id", person_id)):
        _write_blob(db, run_id, f"s:{name}", _encode_strings(arr))
    for c, arr in pop.cols.items():
        _write_blob(db, run_id, f"c:{c}", _encode_strings(arr))
    for c, arr in work.prefill.items():
        _write_blob(db, run_id, f"p:{c}", _encode_strings(arr))
    for c, arr in work.keyhash.items():
        _write_blob(db, run_id, f"h:{c}", _npy(arr.astype(np.uint64)))
    fp64 = np.array([int(x, 16) if x else 0 for x in pop.fingerprint.tolist()], dtype=np.uint64)
    for name, arr in (("rowhash", work.rowhash.astype(np.uint64)), ("fp64", fp64), ("sparse", work.sparse.astype(np.uint8)),
                      ("filled", pop.filled.astype(np.int8)), ("rowid", rowid.astype(np.int64)),
                      ("li", li.astype(np.int32)), ("ri", ri.astype(np.int32)), ("passes", passes.astype(np.uint16)),
                      ("levels", levels.astype(np.int8))):
        _write_blob(db, run_id, f"a:{name}", _npy(arr))
    work.timings["state_save"] = time.perf_counter() - t0


def _record_rowids(db, run_id: int, work: Work) -> np.ndarray:
    """rowid of each record's `records` row in this run, by position."""
    n = work.pop.n
    row = db.execute("SELECT min(rowid), max(rowid), count(*) FROM records WHERE run_id = ?", (run_id,)).fetchone()
    lo, hi, cnt = (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))
    order = work.work.get("_insert_order")
    if cnt == n and hi - lo + 1 == cnt and order is not None:
        out = np.empty(n, np.int64)
        out[order] = lo + np.arange(n)
        return out
    cur = db.execute("SELECT rowid, record_key FROM records WHERE run_id = ? AND source = ?", (run_id, SOURCE))
    got = dict((k, r) for r, k in cur.fetchall())
    return np.array([got.get(k, -1) for k in work.pop.keys.tolist()], np.int64)


def load_state(db) -> State | None:
    """The stored state of the latest dedupe run, or None."""
    if STATE_TABLE not in db.table_names():
        return None
    row = db.execute(f"SELECT max(s.run_id) FROM [{STATE_TABLE}] s JOIN runs r ON r.run_id = s.run_id "
                     "WHERE r.status = 'complete' AND r.command = 'dedupe'").fetchone()
    if not row or row[0] is None:
        return None
    rid = int(row[0])
    meta = json.loads(_read_blob(db, rid, "meta").decode())

    def s(name):
        return _decode_strings(_read_blob(db, rid, name))

    def a(name):
        return _from_npy(_read_blob(db, rid, f"a:{name}"))

    return State(
        run_id=rid, meta=meta, keys=s("s:keys"), file=s("s:file"), rowhash=a("rowhash"), fp64=a("fp64"),
        cols={c: s(f"c:{c}") for c in meta["columns"]},
        keyhash={c: _from_npy(_read_blob(db, rid, f"h:{c}")) for c in meta["keycols"]},
        prefill={c: s(f"p:{c}") for c in ("hukou_region", "hukou_region_name")},
        sparse=a("sparse").astype(bool), filled=a("filled"), person_id=s("s:person_id"), rowid=a("rowid"),
        li=a("li").astype(np.int64), ri=a("ri").astype(np.int64), passes=a("passes"), levels=a("levels"),
    )


def latest_dedupe_run(db) -> int | None:
    row = db.execute("SELECT max(run_id) FROM runs WHERE status = 'complete' AND command = 'dedupe'").fetchone()
    return int(row[0]) if row and row[0] is not None else None


# ---------------------------------------------------------------------------------------------
# preparing a run

def prepare(db, paths: Sequence[str | Path], opts: DedupeOptions, comps: Sequence[Comparator],
            progress: Progress) -> Work:
    """Load the files and build the population and its candidate pairs with levels: incrementally
    when the database holds a compatible state of its latest dedupe run, else in full."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    labels = file_labels(paths)
    files = [read_input(p, lab, opts.load) for p, lab in zip(paths, labels)]
    timings["read"] = time.perf_counter() - t0
    progress("load", {f.label: {"rows_loaded": len(f.loaded.frame), "rows_read": f.loaded.rows_read,
                                "encoding": f.loaded.encoding} for f in files})
    qualified = keys_collide(files)
    state, why = None, "full requested" if opts.full else ""
    if not opts.full:
        t0 = time.perf_counter()
        state, why = _usable_state(db, opts, comps, qualified)
        timings["state_load"] = time.perf_counter() - t0
    if state is not None:
        work = _prepare_incremental(db, state, files, paths, opts, comps, qualified, timings, progress)
    else:
        work = _prepare_full(db, files, paths, opts, comps, qualified, timings, progress)
        work.work["why_full"] = why
    return work


def _usable_state(db, opts: DedupeOptions, comps, qualified: bool) -> tuple[State | None, str]:
    latest = latest_dedupe_run(db)
    if latest is None:
        return None, "no earlier dedupe run"
    state = load_state(db)
    if state is None or state.run_id != latest:
        return None, "no stored state of the latest dedupe run"
    if state.meta.get("signature") != signature(opts, comps, DEFAULT_PASSES):
        return None, "settings, comparators or version changed"
    if bool(state.meta.get("qualified")) != qualified:
        return None, "record keys changed form"
    return state, ""


def _inputs(files: Sequence[InputFile]) -> list[dict[str, Any]]:
    return [f.info() for f in files]


def _load_model(db, opts: DedupeOptions, comps) -> Model | None:
    return model_from_run(db, opts.model_from_run, comps) if opts.model_from_run is not None else None


def _prepare_full(db, files, paths, opts, comps, qualified, timings, progress) -> Work:
    from reconcile.compare import compare_pairs

    t0 = time.perf_counter()
    stds = [standardise_input(f, opts.unit_from_file, qualified) for f in files]
    std = pool(stds)
    _check_unique_keys(std["record_key"])
    pop = population_from_frame(std, comps)
    timings["standardise"] = time.perf_counter() - t0
    progress("standardise", {"records": pop.n})

    t0 = time.perf_counter()
    cand = candidate_pairs(std, None, DEFAULT_PASSES, opts.block_cap)
    timings["block"] = time.perf_counter() - t0
    progress("block", {"pairs": int(cand.left.size)})
    t0 = time.perf_counter()
    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    levels = compare_pairs(arr, arr, cand.left, cand.right, comps)
    timings["compare"] = time.perf_counter() - t0
    progress("compare", {"pairs": int(levels.shape[0])})

    t0 = time.perf_counter()
    model = _load_model(db, opts, comps)
    if model is None:
        from reconcile.dedupe import PairFacts

        model = estimate_u_prior(pop, levels, cand.left, cand.right, PairFacts.of(pop), comps, base_model(comps),
                                 opts.u_sample)
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    keyhash = {c: hash_strings(std[c].astype(str).to_numpy(object)) for c in blocking_columns(DEFAULT_PASSES)}
    rowhash = np.concatenate([row_hashes(f.loaded.raw, f.label if opts.unit_from_file else None) for f in files])
    src = std["hukou_region_source"].to_numpy(object)
    prefill = {"hukou_region": np.where(src == "address", std["hukou_region"].to_numpy(object), "").astype(object),
               "hukou_region_name": np.where(src == "address", std["hukou_region_name"].to_numpy(object), "").astype(object)}
    skipped = _skipped_labels(std, keyhash, opts.block_cap)
    timings["hash"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    prev = load_previous(db)
    prev_pid, same, prev_index = _previous_of(prev, pop)
    rows = record_rows(std, files, pop.fingerprint)
    timings["records"] = time.perf_counter() - t0
    return Work(
        mode="full", paths=[Path(p) for p in paths], files=list(files), inputs=_inputs(files), pop=pop, model=model,
        li=cand.left, ri=cand.right, passes=cand.passes, levels=levels, stats=cand.stats, record_rows=rows,
        rejected=rejected_rows(files), previous_persons=prev, prev_pid=prev_pid, prev_same_content=same,
        prev_index=prev_index, keyhash=keyhash, sparse=std["k_no_id_no_birth"].to_numpy(bool), prefill=prefill,
        rowhash=rowhash, skipped_labels=skipped, qualified=qualified, timings=timings,
        work={"compared_pairs": int(len(cand.left)), "reused_pairs": 0, "changed_records": pop.n,
              "_insert_order": np.arange(pop.n)},
        previous_run=None if prev is None else prev.run_id,
    )


def _check_unique_keys(keys: pd.Series) -> None:
    from reconcile.errors import DataError

    dup = keys[keys.duplicated()]
    if len(dup):
        raise DataError("dedupe.duplicate_keys", key=str(dup.iloc[0]), count=int(dup.size))


def _previous_of(prev: PreviousAssignment | None, pop: Population) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prev_pid = np.full(pop.n, "", dtype=object)
    same = np.zeros(pop.n, bool)
    prev_index = np.full(pop.n, -1, np.int64)
    if prev is None or not len(prev.person_id):
        return prev_pid, same, prev_index
    pk = prev.record_key.astype(str)
    keep = prev.source.astype(str) == SOURCE
    idx = pd.Index(pop.keys).get_indexer(pk)
    ok = (idx >= 0) & keep
    prev_pid[idx[ok]] = prev.person_id[ok]
    prev_index[idx[ok]] = np.nonzero(ok)[0]
    same[idx[ok]] = (prev.fingerprint[ok] == pop.fingerprint[idx[ok]]) & (prev.fingerprint[ok] != "")
    return prev_pid, same, prev_index


def _skipped_labels(std: pd.DataFrame, keyhash: dict[str, np.ndarray], block_cap: int) -> dict[str, dict[int, str]]:
    """Readable key of every block a pass skips (kept in the state for later warnings)."""
    out: dict[str, dict[int, str]] = {}
    for p in DEFAULT_PASSES:
        h = pass_hash(keyhash, p)
        valid = h != 0
        out[p.name] = {}
        if not valid.any():
            continue
        uniq, first, cnt = np.unique(h[valid], return_index=True, return_counts=True)
        pos = np.nonzero(valid)[0][first]
        cap = min(block_cap, p.cap) if p.cap else block_cap
        big = cnt * (cnt - 1) // 2 > cap
        if p.only_sparse:   # J1 of the sparse pass counts sparse records only: never bigger
            pass
        out[p.name] = {int(hv): "\x1f".join(str(std[c].iat[ps]) for c in p.columns)
                       for hv, ps in zip(uniq[big].tolist(), pos[big].tolist())}
    return out


# ---------------------------------------------------------------------------------------------
# the incremental path

def _prepare_incremental(db, state: State, files, paths, opts, comps, qualified, timings, progress) -> Work:
    from reconcile.compare import compare_pairs
    from reconcile.fingerprint import record_fingerprints
    from reconcile.keys import add_keys, fill_unit_hukou

    t0 = time.perf_counter()
    # 1. keys, raw-row hashes and the previous position of every current record
    keys_l, rowh_l, file_l, line_l, src_l = [], [], [], [], []
    for fi, f in enumerate(files):
        k = f.loaded.frame["record_key"].astype(str).to_numpy(object)
        if qualified:
            k = (f.label + ":" + pd.Series(k)).to_numpy(object)
        keys_l.append(k)
        rowh_l.append(row_hashes(f.loaded.raw, f.label if opts.unit_from_file else None))
        file_l.append(np.full(len(k), f.label, dtype=object))
        line_l.append(f.loaded.frame["line"].to_numpy(np.int64))
        src_l.append(np.stack([np.full(len(k), fi), np.arange(len(k))], axis=1))
    keys = np.concatenate(keys_l) if keys_l else np.zeros(0, object)
    _check_unique_keys(pd.Series(keys))
    rowhash = np.concatenate(rowh_l)
    file_arr = np.concatenate(file_l)
    line = np.concatenate(line_l)
    src = np.concatenate(src_l)
    n = len(keys)
    prev_index = pd.Index(state.keys).get_indexer(keys).astype(np.int64)
    unchanged = (prev_index >= 0)
    unchanged[unchanged] = state.rowhash[prev_index[unchanged]] == rowhash[unchanged]
    changed = np.nonzero(~unchanged)[0]
    timings["diff"] = time.perf_counter() - t0

    # 2. standardise the changed records only
    t0 = time.perf_counter()
    parts = []
    for fi, f in enumerate(files):
        sel = changed[src[changed, 0] == fi]
        if not len(sel):
            continue
        rows = src[sel, 1]
        sub = InputFile(f.label, f.path, _sub_loaded(f.loaded, rows), f.sha256)
        std_f = standardise_input(sub, opts.unit_from_file, qualified)
        std_f["_row"] = rows
        std_f["_pos"] = sel
        parts.append(std_f)
    fstd = pd.concat(parts, ignore_index=True) if parts else None
    if fstd is not None:
        fstd = fstd.sort_values("_pos", kind="stable").reset_index(drop=True)
    timings["standardise"] = time.perf_counter() - t0

    # 3. hukou counties filled from units over the whole population
    t0 = time.perf_counter()
    pre_region = np.empty(n, dtype=object)
    pre_name = np.empty(n, dtype=object)
    unit = np.empty(n, dtype=object)
    upos = np.nonzero(unchanged)[0]
    old = prev_index[upos]
    pre_region[upos] = state.prefill["hukou_region"][old]
    pre_name[upos] = state.prefill["hukou_region_name"][old]
    unit[upos] = state.cols["unit"][old]
    if fstd is not None:
        fpos = fstd["_pos"].to_numpy(np.int64)
        pre_region[fpos] = fstd["hukou_region"].to_numpy(object)
        pre_name[fpos] = fstd["hukou_region_name"].to_numpy(object)
        unit[fpos] = fstd["unit"].astype(str).to_numpy(object)
    filled = fill_unit_hukou(pd.DataFrame({"unit": unit, "hukou_region": pre_region, "hukou_region_name": pre_name}))
    region = filled["hukou_region"].to_numpy(object)
    region_name = filled["hukou_region_name"].to_numpy(object)
    refilled = upos[region[upos] != state.cols["hukou_region"][old]]
    focus = ~unchanged
    focus[refilled] = True
    if fstd is not None:
        fstd["hukou_region"] = region[fpos]
        fstd["hukou_region_name"] = region_name[fpos]
        fstd["hukou_region_source"] = filled["hukou_region_source"].to_numpy(object)[fpos]
        fstd = add_keys(fstd)
    timings["fill"] = time.perf_counter() - t0

    # 4. the population: unchanged records from the state, changed ones from their standardised rows
    t0 = time.perf_counter()
    cols = {}
    for c in population_columns(comps):
        arr = np.empty(n, dtype=object)
        arr[upos] = state.cols[c][old]
        if fstd is not None:
            arr[fpos] = fstd[c].astype(str).to_numpy(object)
        cols[c] = arr
    cols["hukou_region"][refilled] = region[refilled]
    cols["hukou_region_name"][refilled] = region_name[refilled]
    fps = np.empty(n, dtype=object)
    fps[upos] = np.array([format(int(x), "016x") for x in state.fp64[old].tolist()], dtype=object)
    filled_cnt = np.empty(n, np.int8)
    filled_cnt[upos] = state.filled[old]
    keyhash = {c: np.zeros(n, np.uint64) for c in blocking_columns(DEFAULT_PASSES)}
    for c in keyhash:
        keyhash[c][upos] = state.keyhash[c][old]
    sparse = np.zeros(n, bool)
    sparse[upos] = state.sparse[old]
    if fstd is not None:
        from reconcile.dedupe import COMPLETENESS_FIELDS

        fps[fpos] = record_fingerprints(fstd).to_numpy(object)
        filled_cnt[fpos] = (fstd[list(COMPLETENESS_FIELDS)].astype(str) != "").sum(axis=1).to_numpy(np.int8)
        for c in keyhash:
            keyhash[c][fpos] = hash_strings(fstd[c].astype(str).to_numpy(object))
        sparse[fpos] = fstd["k_no_id_no_birth"].to_numpy(bool)
    if len(refilled):
        keyhash["hukou_region"][refilled] = hash_strings(region[refilled])
    pop = Population(keys=keys, file=file_arr, line=line, fingerprint=fps, filled=filled_cnt, cols=cols)
    timings["assemble"] = time.perf_counter() - t0

    # 5. candidate pairs: changed records against all, unchanged pairs from the state
    t0 = time.perf_counter()
    old_to_new = np.full(state.n, -1, np.int64)
    keep_u = np.nonzero(unchanged & ~focus)[0]
    old_to_new[prev_index[keep_u]] = keep_u
    labels_now = dict(state.meta.get("skipped_labels", {}))
    blk = incremental_candidates(keyhash, sparse, focus, old_to_new, state, opts.block_cap, fstd,
                                 {p: {int(k): v for k, v in d.items()} for p, d in labels_now.items()}, pop)
    timings["block"] = time.perf_counter() - t0
    progress("block", {"pairs": int(len(blk.li)), "reused": int(blk.reused.sum())})

    t0 = time.perf_counter()
    levels = np.empty((len(blk.li), len(comps)), np.int8)
    levels[blk.reused] = blk.cached_levels
    todo = np.nonzero(~blk.reused)[0]
    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    if todo.size:
        levels[todo] = compare_pairs(arr, arr, blk.li[todo], blk.ri[todo], comps)
    timings["compare"] = time.perf_counter() - t0
    progress("compare", {"pairs": int(todo.size)})

    # 6. model: the previous run's (or --model)
    model = _load_model(db, opts, comps) or model_from_run(db, state.run_id, comps)

    # 7. persons and records
    t0 = time.perf_counter()
    prev = PreviousAssignment(state.run_id, np.full(state.n, SOURCE, dtype=object), state.keys, state.person_id,
                              np.array([format(int(x), "016x") for x in state.fp64.tolist()], dtype=object))
    prev_pid = np.full(n, "", dtype=object)
    has = prev_index >= 0
    prev_pid[has] = state.person_id[prev_index[has]]
    same = np.zeros(n, bool)
    same[has] = state.fp64[prev_index[has]] == np.array([int(x, 16) for x in fps[has].tolist()], dtype=np.uint64)
    from reconcile.persons import previous_run_with_persons

    if previous_run_with_persons(db) != state.run_id:
        # another command wrote persons since: continue from that run, as a full run would
        prev = load_previous(db)
        prev_pid, same, prev_index = _previous_of(prev, pop)
    if fstd is not None:
        rows = record_rows(fstd, files, fps[fpos])
        insert_order = np.concatenate([fpos, upos])
    else:
        rows = pd.DataFrame()
        insert_order = upos
    copy = _record_copier(state, upos, old, line, file_arr, refilled, region, region_name)
    timings["records"] = time.perf_counter() - t0
    prefill = {"hukou_region": pre_region, "hukou_region_name": pre_name}
    return Work(
        mode="incremental", paths=[Path(p) for p in paths], files=list(files), inputs=_inputs(files), pop=pop,
        model=model, li=blk.li, ri=blk.ri, passes=blk.passes, levels=levels, stats=blk.stats, record_rows=rows,
        rejected=rejected_rows(files), previous_persons=prev, prev_pid=prev_pid, prev_same_content=same,
        prev_index=prev_index, keyhash=keyhash, sparse=sparse, prefill=prefill, rowhash=rowhash,
        skipped_labels=blk.labels, qualified=qualified, timings=timings,
        work={"compared_pairs": int(todo.size), "reused_pairs": int(blk.reused.sum()), "changed_records": int(len(changed)),
              "refilled_records": int(len(refilled)), "cap_flips": blk.cap_flips, "removed_records": int(state.n - len(upos)
                                                                                    - int(((prev_index >= 0) & ~unchanged).sum())),
              "_insert_order": insert_order},
        previous_run=state.run_id, copy=copy,
    )


def _sub_loaded(loaded, rows: np.ndarray):
    """A LoadedRegistry view with only some rows (for standardising the changed records)."""
    import copy as _copy

    sub = _copy.copy(loaded)
    sub.frame = loaded.frame.iloc[rows].reset_index(drop=True)
    sub.raw = loaded.raw.iloc[rows].reset_index(drop=True)
    return sub


def _record_copier(state: State, upos: np.ndarray, old: np.ndarray, line: np.ndarray, file_arr: np.ndarray,
                   refilled: np.ndarray, region: np.ndarray, region_name: np.ndarray) -> Callable[[Any, int], None]:
    """Copy the unchanged records' rows of the previous run inside SQLite (new line numbers; the
    file's new name where it was renamed, e.g. month_02.csv after month_01.csv)."""
    def copy(db, run_id: int) -> None:
        if not len(upos):
            return
        from reconcile.report import TABLES

        conn = db.conn
        cols = [c for c, _ in TABLES["records"] if c not in ("run_id", "line", "file", "raw_json")]
        renamed = state.file[old] != file_arr[upos]
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _rec_copy (pos INTEGER PRIMARY KEY, rid INTEGER, line INTEGER, "
                     "file TEXT)")
        conn.execute("DELETE FROM _rec_copy")
        conn.executemany("INSERT INTO _rec_copy VALUES (?, ?, ?, ?)",
                         zip(upos.tolist(), state.rowid[old].tolist(), line[upos].tolist(),
                             np.where(renamed, file_arr[upos], None).tolist()))
        conn.execute(
            f"INSERT INTO records (run_id, line, file, raw_json, {', '.join(f'[{c}]' for c in cols)}) "
            "SELECT ?, k.line, coalesce(k.file, r.file), "
            "CASE WHEN k.file IS NULL THEN r.raw_json ELSE json_set(r.raw_json, '$.__file__', k.file) END, "
            f"{', '.join(f'r.[{c}]' for c in cols)} FROM _rec_copy k JOIN records r ON r.rowid = k.rid "
            "ORDER BY k.pos", (run_id,))
        if len(refilled):
            conn.executemany("UPDATE records SET hukou_region = ?, hukou_region_name = ? WHERE run_id = ? AND source = ? "
                             "AND record_key = ?", ((region[i], region_name[i], run_id, SOURCE, state.keys[state_old])
                                                    for i, state_old in zip(refilled.tolist(),
                                                                            _old_of(upos, old, refilled).tolist())))
        conn.execute("DELETE FROM _rec_copy")

    return copy


def _old_of(upos: np.ndarray, old: np.ndarray, which: np.ndarray) -> np.ndarray:
    return old[np.searchsorted(upos, which)]


# ---------------------------------------------------------------------------------------------
# blocking restricted to the changed records

@dataclass
class Blocked:
    li: np.ndarray
    ri: np.ndarray
    passes: np.ndarray
    reused: np.ndarray                 # bool per pair: levels come from the state
    cached_levels: np.ndarray          # levels of the reused pairs, in their order
    stats: list[PassStats]
    labels: dict[str, dict[int, str]]
    cap_flips: int = 0                 # blocks that crossed the cap since the state


def _codes(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dense block codes (-1 empty), distinct keys, their counts and first positions."""
    valid = h != 0
    code = np.full(len(h), -1, np.int64)
    if not valid.any():
        e = np.zeros(0, np.int64)
        return code, np.zeros(0, np.uint64), e, e
    vpos = np.nonzero(valid)[0]
    uniq, first, inv, cnt = np.unique(h[vpos], return_index=True, return_inverse=True, return_counts=True)
    code[vpos] = inv
    return code, uniq, cnt.astype(np.int64), vpos[first]


def _join_focus(code: np.ndarray, ok_code: np.ndarray, left_mask: np.ndarray, right_mask: np.ndarray,
                focus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) with code[i] == code[j], ok_code[code] True, i in left_mask, j in right_mask,
    and at least one of them in ``focus``."""
    valid = code >= 0
    okr = valid & ok_code[np.maximum(code, 0)]
    fl = okr & left_mask & focus
    fr = okr & right_mask & focus
    out_i, out_j = [], []
    for fmask, other, focus_left in ((fl, okr & right_mask, True), (fr, okr & left_mask, False)):
        fpos = np.nonzero(fmask)[0]
        if not fpos.size:
            continue
        touched = np.zeros(len(ok_code), bool)
        touched[code[fpos]] = True
        opos = np.nonzero(other & touched[np.maximum(code, 0)])[0]
        fpos = fpos[np.argsort(code[fpos], kind="stable")]
        opos = opos[np.argsort(code[opos], kind="stable")]
        fc, oc = code[fpos], code[opos]
        ucodes, fstart, fcnt = np.unique(fc, return_index=True, return_counts=True)
        ostart = np.searchsorted(oc, ucodes)
        ocnt = np.searchsorted(oc, ucodes, side="right") - ostart
        per = fcnt * ocnt
        total = int(per.sum())
        if not total:
            continue
        g = np.repeat(np.arange(len(ucodes)), per)
        off = np.arange(total) - np.repeat(np.cumsum(per) - per, per)
        x = fpos[fstart[g] + off // ocnt[g]]
        y = opos[ostart[g] + off % ocnt[g]]
        i, j = (x, y) if focus_left else (y, x)
        keep = i < j
        out_i.append(i[keep])
        out_j.append(j[keep])
    if not out_i:
        e = np.zeros(0, np.int64)
        return e, e
    return np.concatenate(out_i), np.concatenate(out_j)


def _within_blocks(code: np.ndarray, blocks: np.ndarray, members_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of members inside the given blocks."""
    if not len(blocks):
        e = np.zeros(0, np.int64)
        return e, e
    mark = np.zeros(int(code.max()) + 1, bool)
    mark[blocks] = True
    pos = np.nonzero(members_mask & (code >= 0) & mark[np.maximum(code, 0)])[0]
    pos = pos[np.argsort(code[pos], kind="stable")]
    c = code[pos]
    _, start, cnt = np.unique(c, return_index=True, return_counts=True)
    out_i, out_j = [], []
    for s, k in zip(start.tolist(), cnt.tolist()):
        m = pos[s:s + k]
        a, b = np.triu_indices(k, 1)
        out_i.append(m[a])
        out_j.append(m[b])
    if not out_i:
        e = np.zeros(0, np.int64)
        return e, e
    return np.concatenate(out_i), np.concatenate(out_j)


def _label(labels: dict[int, str], hv: int, p: BlockingPass, fstd: pd.DataFrame | None, pop: Population,
           members: np.ndarray, posmap: dict[int, int]) -> str:
    """Readable key of a skipped block: stored, else from a changed member, else from the population."""
    if hv in labels:
        return labels[hv]
    for pos in members.tolist():
        if fstd is not None and pos in posmap:
            row = fstd.iloc[posmap[pos]]
            return "\x1f".join(str(row[c]) for c in p.columns)
    if len(members) and all(c in pop.cols for c in p.columns):
        return "\x1f".join(str(pop.cols[c][members[0]]) for c in p.columns)
    return "?"


def incremental_candidates(keyhash: dict[str, np.ndarray], sparse: np.ndarray, focus: np.ndarray,
                           old_to_new: np.ndarray, state: State, block_cap: int, fstd: pd.DataFrame | None,
                           labels: dict[str, dict[int, str]], pop: Population) -> Blocked:
    """The candidate pairs a full run (reconcile.blocking.candidate_pairs) would produce on this
    population, from the focus records' blocks plus the state's pairs of unchanged records."""
    n = len(focus)
    passes = DEFAULT_PASSES
    posmap = {int(p): t for t, p in enumerate(fstd["_pos"].tolist())} if fstd is not None else {}
    # the state's pairs between two unchanged records, in current positions
    ni, nj = old_to_new[state.li], old_to_new[state.ri]
    keep = (ni >= 0) & (nj >= 0)
    src_idx = np.nonzero(keep)[0]
    ci, cj, cm = ni[keep], nj[keep], state.passes[keep].astype(np.uint16)
    flipped = ci > cj
    ci, cj = np.where(flipped, cj, ci), np.where(flipped, ci, cj)
    # old population's pass keys (for blocks whose size crossed the cap)
    alive = old_to_new >= 0
    stats: list[PassStats] = []
    new_labels: dict[str, dict[int, str]] = {}
    f_codes, f_masks = [], []
    add_codes, add_masks = [], []
    flips = 0
    for bit, p in enumerate(passes):
        st = PassStats(p.name, p.description)
        cap = min(block_cap, p.cap) if p.cap else block_cap
        h = pass_hash(keyhash, p)
        code, uniq, cnt, first = _codes(h)
        plabels = labels.get(p.name, {})
        keep_labels: dict[int, str] = {}
        bitv = np.uint16(1 << bit)
        if p.only_sparse:
            # recomputed whole: J1 = sparse left records, J2 = sparse right records (as _join does)
            sp_cnt = np.bincount(code[(code >= 0) & sparse], minlength=len(uniq)) if len(uniq) else np.zeros(0, np.int64)
            big1 = sp_cnt * (sp_cnt - 1) // 2 > cap
            big2 = cnt * (cnt - 1) // 2 > cap
            everyone = np.ones(n, bool)
            i1, j1 = _join_focus(code, ~big1, sparse, everyone, sparse)
            i1, j1 = _restrict(i1, j1, sparse, None)
            i2, j2 = _join_focus(code, ~big2, everyone, sparse, sparse)
            i2, j2 = _restrict(i2, j2, None, sparse)
            pi, pj = np.concatenate([i1, i2]), np.concatenate([j1, j2])
            for big, nrec_arr in ((big1, sp_cnt + cnt), (big2, cnt + sp_cnt)):
                sk = np.nonzero(big)[0]
                sk = sk[np.argsort(first[sk], kind="stable")]
                for c_ in sk.tolist():
                    st.skipped_blocks += 1
                    st.skipped_records += int(nrec_arr[c_])
                    hv = int(uniq[c_])
                    lab = _label(plabels, hv, p, fstd, pop, _members(code, c_, focus, plabels, hv), posmap)
                    keep_labels[hv] = lab
                    size = int(cnt[c_] * (cnt[c_] - 1) // 2) if big is big2 else int(sp_cnt[c_] * (sp_cnt[c_] - 1) // 2)
                    st.warnings.append(f"{p.name}: block '{mask_ids_in_text(lab.replace(chr(31), ' + '))}' skipped: "
                                       f"{int(nrec_arr[c_])} records, {size} pairs over the cap")
            cm &= ~bitv
            codes_all = np.unique(pi * n + pj)
            add_codes.append(codes_all)
            add_masks.append(np.full(len(codes_all), bitv, np.uint16))
        else:
            big = cnt * (cnt - 1) // 2 > cap
            pi, pj = _join_focus(code, ~big, np.ones(n, bool), np.ones(n, bool), focus)
            codes_f = np.unique(pi * n + pj)
            f_codes.append(codes_f)
            f_masks.append(np.full(len(codes_f), bitv, np.uint16))
            sk = np.nonzero(big)[0]
            sk = sk[np.argsort(first[sk], kind="stable")]
            st.skipped_blocks = int(len(sk))
            st.skipped_records = int((2 * cnt[sk]).sum())
            for c_ in sk.tolist():
                hv = int(uniq[c_])
                lab = _label(plabels, hv, p, fstd, pop, _members(code, c_, focus, plabels, hv), posmap)
                keep_labels[hv] = lab
                if p.cap is None:
                    st.warnings.append(f"{p.name}: block '{mask_ids_in_text(lab.replace(chr(31), ' + '))}' skipped: "
                                       f"{int(2 * cnt[c_])} records, {int(cnt[c_] * (cnt[c_] - 1) // 2)} pairs over the cap")
            # blocks whose size crossed the cap since the state: fix the unchanged pairs in them
            old_h = pass_hash(state.keyhash, p)
            touched = np.unique(np.concatenate([h[focus], old_h[~alive]]))
            touched = touched[touched != 0]
            if touched.size:
                uo, co = np.unique(old_h[np.isin(old_h, touched)], return_counts=True)
                old_cnt = np.zeros(len(touched), np.int64)
                old_cnt[np.searchsorted(touched, uo)] = co
                if len(uniq):
                    at = np.minimum(np.searchsorted(uniq, touched), len(uniq) - 1)
                    found = uniq[at] == touched
                    new_cnt = np.where(found, cnt[at], 0)
                else:
                    found = np.zeros(len(touched), bool)
                    new_cnt = np.zeros(len(touched), np.int64)
                was_big = old_cnt * (old_cnt - 1) // 2 > cap
                now_big = new_cnt * (new_cnt - 1) // 2 > cap
                to_big = touched[~was_big & now_big]
                to_small = touched[was_big & ~now_big & found]
                flips += int(to_big.size + to_small.size)
                if to_big.size:
                    hit = ((cm & bitv) != 0) & np.isin(h[ci], to_big)
                    cm[hit] &= ~bitv
                if to_small.size:
                    blocks = np.searchsorted(uniq, to_small)
                    wi, wj = _within_blocks(code, blocks, ~focus)
                    c2 = np.unique(wi * n + wj)
                    add_codes.append(c2)
                    add_masks.append(np.full(len(c2), bitv, np.uint16))
        new_labels[p.name] = keep_labels
        stats.append(st)
    # assemble: focus pairs + unchanged pairs (state) + recomputed/added unchanged pairs
    fc = np.concatenate(f_codes) if f_codes else np.zeros(0, np.int64)
    fm = np.concatenate(f_masks) if f_masks else np.zeros(0, np.uint16)
    ac = np.concatenate(add_codes) if add_codes else np.zeros(0, np.int64)
    am = np.concatenate(add_masks) if add_masks else np.zeros(0, np.uint16)
    # extra pairs touching a focus record go with the focus pairs; the rest merge into the state's
    ai, aj = ac // max(n, 1), ac % max(n, 1)
    af = focus[ai] | focus[aj] if len(ac) else np.zeros(0, bool)
    fc, fm = _or_reduce(np.concatenate([fc, ac[af]]), np.concatenate([fm, am[af]]))
    uc, um = _or_reduce(ac[~af], am[~af])
    ccode = ci * n + cj
    order = np.argsort(ccode, kind="stable") if not (len(ccode) < 2 or np.all(ccode[1:] > ccode[:-1])) else None
    if order is not None:
        ccode, cm, ci, cj, flipped, src_idx = ccode[order], cm[order], ci[order], cj[order], flipped[order], src_idx[order]
    new_u = np.ones(len(uc), bool)
    if len(uc) and len(ccode):
        at = np.searchsorted(ccode, uc)
        hit = (at < len(ccode)) & (ccode[np.minimum(at, len(ccode) - 1)] == uc)
        np.bitwise_or.at(cm, at[hit], um[hit])
        new_u = ~hit
    live = cm != 0
    reused_idx = src_idx[live & ~flipped]
    li = np.concatenate([ci[live], uc[new_u] // max(n, 1), fc // max(n, 1)])
    ri = np.concatenate([cj[live], uc[new_u] % max(n, 1), fc % max(n, 1)])
    masks = np.concatenate([cm[live], um[new_u], fm])
    reused = np.zeros(len(li), bool)
    reused[:int(live.sum())] = ~flipped[live]
    # per-pass counts from the final masks (pairs / new pairs as candidate_pairs reports them)
    for bit, st in enumerate(stats):
        has = (masks >> np.uint16(bit)) & np.uint16(1)
        st.pairs = int(has.sum())
        lower = masks & np.uint16((1 << bit) - 1)
        st.new_pairs = int((has.astype(bool) & (lower == 0)).sum())
    return Blocked(li=li.astype(np.int64), ri=ri.astype(np.int64), passes=masks, reused=reused,
                   cached_levels=state.levels[reused_idx], stats=stats, labels=new_labels, cap_flips=flips)


def _members(code: np.ndarray, c: int, focus: np.ndarray, labels: dict[int, str], hv: int) -> np.ndarray:
    """Focus members of block ``c`` (first), then the rest; only looked up when no label is stored."""
    if hv in labels:
        return np.zeros(0, np.int64)
    m = np.nonzero(code == c)[0]
    return np.concatenate([m[focus[m]], m[~focus[m]]])


def _restrict(i: np.ndarray, j: np.ndarray, left_mask: np.ndarray | None, right_mask: np.ndarray | None):
    keep = np.ones(len(i), bool)
    if left_mask is not None:
        keep &= left_mask[i]
    if right_mask is not None:
        keep &= right_mask[j]
    return i[keep], j[keep]


def _or_reduce(codes: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(codes):
        return codes, masks
    order = np.argsort(codes, kind="stable")
    codes, masks = codes[order], masks[order]
    uniq, start = np.unique(codes, return_index=True)
    return uniq, np.bitwise_or.reduceat(masks, start)
