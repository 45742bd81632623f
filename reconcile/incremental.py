"""Incremental dedupe runs: compare only new or changed records against the whole population.

Every dedupe run stores a compact state of its population and candidate pairs
(reconcile.dedupe_state). The next run against the same database, unless ``--full``:

1. reads the files. A text file whose layout is unchanged (same header line, no line breaks
   inside quoted values) is not parsed again: each line is hashed and a line seen in the previous
   run is that run's record; only the other lines go through the loader. Other files are read in
   full and a record is unchanged when its key and raw row are;
2. standardises the new and changed records only, and fills hukou counties from units over the
   whole population again (a record whose filled county changes counts as changed);
3. runs every blocking pass for the changed records against all records, block sizes counted
   over the current population; pairs of two unchanged records come from the state, corrected
   where a block crossed the cap (reconcile.dedupe_blocking);
4. compares only pairs without stored levels and scores all pairs with the previous run's model
   (or ``--model``) and this population's term frequencies;
5. writes ``records`` / ``person_records`` as record versions (reconcile.record_store): a new
   version only for a new or changed record (or one whose person, key or filled county changed),
   one membership row per record; stores the state as chunks appended to the previous run's
   (reconcile.dedupe_state).

The result equals a full run on the same data with the same model (``--full --model PREV``): the
same pairs, levels, scores, decisions, clusters, person IDs and report tables
(tests/test_incremental.py). Block keys are compared as 64-bit hashes here and as text in full
runs; a collision (about one in 10^7 for a million records) would add a candidate pair, never
lose one. A run falls back to a full one (and says why in summary.work.why_full) when there is no
state, or settings, comparators or the version changed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

import reconcile
from matchers.base import Comparator
from reconcile.arrays import repeated
from reconcile.blocking import DEFAULT_PASSES, BlockingPass, PassStats, candidate_pairs
from reconcile.dedupe import (
    COMPLETENESS_FIELDS, SOURCE, DedupeOptions, InputFile, PairFacts, Population, base_model, estimate_u_prior,
    file_labels, implied_flags, keys_collide, model_from_run, pool, population_columns, population_from_frame,
    read_input, record_rows, rejected_rows, standardise_input,
)
from reconcile.dedupe_blocking import blocking_columns, hash_strings, incremental_candidates, key_hashes, skipped_labels
from reconcile.dedupe_state import Coded, PairDelta, State
from reconcile.dedupe_state import latest_run as state_run
from reconcile.dedupe_state import load as load_state
from reconcile.dedupe_state import save as store_state
from reconcile.keys import KEY_FORMAT
from reconcile.linkage import Progress
from reconcile.model import Model
from reconcile.persons import PreviousAssignment, load_previous, previous_run_with_persons

TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_K1 = np.uint64(0x9E3779B97F4A7C15)


# ---------------------------------------------------------------------------------------------
# what a run hands to reconcile.dedupe.finish

@dataclass
class Work:
    """The population and its candidate pairs with levels, however they were obtained."""

    mode: str                                    # 'full' | 'incremental'
    paths: list[Path]
    files: list[InputFile]                       # loaded rows (all, or the changed ones)
    inputs: list[dict[str, Any]]                 # runs.inputs_json
    file_meta: list[dict[str, Any]]              # per file: layout for the next run's line reuse
    pop: Population
    model: Model
    li: np.ndarray
    ri: np.ndarray
    passes: np.ndarray
    levels: np.ndarray
    flags: np.ndarray
    stats: list[PassStats]
    record_rows: pd.DataFrame                    # rows write_run inserts
    rejected: pd.DataFrame
    prev_pid: np.ndarray                         # previous person of each record ('' none)
    prev_same_content: np.ndarray                # same fingerprint as in the previous run
    prev_index: np.ndarray                       # previous run position (same key) of each record, -1 none
    prev_keys: np.ndarray                        # keys of the previous run's records (persons)
    previous_active: np.ndarray                  # person IDs of the previous run
    coded: dict[str, Coded]
    prefill: dict[str, Coded]
    keyhash: dict[str, np.ndarray]
    sparse: np.ndarray
    rowhash: np.ndarray
    linehash: np.ndarray
    file_index: np.ndarray
    skipped_labels: dict[str, dict[int, str]]
    qualified: bool
    timings: dict[str, float] = field(default_factory=dict)
    work: dict[str, Any] = field(default_factory=dict)
    previous_run: int | None = None
    rejected_count: int = 0
    new_pos: np.ndarray | None = None            # position of each row of record_rows
    state: State | None = None                   # the state an incremental run started from
    reused: np.ndarray | None = None             # per pair: levels from the state ...
    reused_index: np.ndarray | None = None       # ... its index among the state's pairs
    reuse: "Reuse | None" = None                 # unchanged records: their stored versions

    def write_records(self, db, run_id: int, person_id: np.ndarray) -> np.ndarray:
        """Write this run's records into the versioned storage (reconcile.record_store): new
        versions for new and changed records, the stored version of every unchanged record unless
        its key, file, filled county or person changed; returns each record's version id."""
        from reconcile import record_store as rs

        n = self.pop.n
        vid = np.zeros(n, np.int64)
        start = rs.next_version_id(db)
        new_pos = self.new_pos if self.new_pos is not None else np.arange(n)
        if len(new_pos):
            vid[new_pos] = start + np.arange(len(new_pos))
            rs.insert_versions(db, self.record_rows.assign(person_id=person_id[new_pos]), vid[new_pos])
        nxt = start + len(new_pos)
        r = self.reuse
        if r is not None and len(r.pos):
            vid[r.pos] = r.version
            pid = person_id[r.pos]
            new_person = pid != r.person
            copy = new_person | r.changed
            if copy.any():
                c = np.nonzero(copy)[0]
                ids = nxt + np.arange(len(c))
                changes = {"person_id": np.where(new_person[c], pid[c], None).tolist(), "record_key": r.key[c].tolist(),
                           "hukou_region": r.region[c].tolist(), "hukou_region_name": r.region_name[c].tolist()}
                rs.copy_versions(db, r.version[c], ids, changes)
                vid[r.pos[c]] = ids
        rs.insert_members(db, run_id, vid, self.pop.line, self.pop.file)
        return vid


@dataclass
class Reuse:
    """Unchanged records of an incremental run and what of their stored version changed (None: same;
    a renamed file's label is the run's, in record_members)."""

    pos: np.ndarray              # current positions
    old: np.ndarray              # their positions in the stored run
    version: np.ndarray          # their stored version ids
    person: np.ndarray           # their person in the stored run
    key: np.ndarray              # new record key (qualified keys of a renamed file) or None
    region: np.ndarray           # hukou county newly filled from units, or None
    region_name: np.ndarray

    @property
    def changed(self) -> np.ndarray:
        if not len(self.pos):
            return np.zeros(0, bool)
        return ~(pd.isna(self.key) & pd.isna(self.region))


# ---------------------------------------------------------------------------------------------
# lines and rows

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


@dataclass
class TextFile:
    lines: list[bytes]        # physical lines without their terminator (a BOM stays on line 1)
    crlf: bool
    sha256: str


def text_lines(path: Path) -> TextFile | None:
    """The file's lines if every record is one line (no lone CR, no line break inside quotes,
    not UTF-16); None otherwise."""
    data = Path(path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4096]:
        return None
    n_cr = data.count(b"\r")
    crlf = n_cr > 0
    if n_cr and n_cr != data.count(b"\r\n"):
        return None
    if b'"' in data:
        # a line break inside quotes <=> an odd number of quotes before some line end
        buf = np.frombuffer(data, np.uint8)
        quotes = np.cumsum(buf == 34, dtype=np.int64)
        if (quotes[buf == 10] % 2).any() or quotes[-1] % 2:
            return None
        del buf, quotes
    lines = data.split(b"\n")
    del data
    if lines and lines[-1] == b"":
        lines.pop()
    if crlf:
        lines = [ln[:-1] for ln in lines]
    return TextFile(lines, crlf, sha)


def line_hashes(lines: Sequence[bytes]) -> np.ndarray:
    if not len(lines):
        return np.zeros(0, np.uint64)
    h = pd.util.hash_array(np.array(lines, dtype=object), categorize=False).astype(np.uint64)
    h[h == 0] = np.uint64(1)
    return h


def _file_meta(f: InputFile, tf: TextFile | None) -> dict[str, Any]:
    ld = f.loaded
    meta = {"label": f.label, "name": f.path.name, "text": tf is not None, "encoding": ld.encoding,
            "delimiter": ld.delimiter, "header_line": int(ld.header_line), "key_column": ld.key_column,
            "columns": list(ld.raw.columns), "mapping": dict(ld.columns), "sheet": ld.sheet,
            "crlf": bool(tf.crlf) if tf else False}
    if tf is not None and len(tf.lines) >= ld.header_line:
        meta["header_hash"] = str(int(line_hashes([tf.lines[ld.header_line - 1]])[0]))
    else:
        meta["text"] = False
    return meta


def _record_line_hashes(f: InputFile, tf: TextFile | None) -> np.ndarray:
    lines = f.loaded.frame["line"].to_numpy(np.int64) if "line" in f.loaded.frame else np.zeros(0, np.int64)
    if tf is None or not len(lines) or lines.max() > len(tf.lines):
        return np.zeros(len(f.loaded.frame), np.uint64)
    return line_hashes([tf.lines[i - 1] for i in lines.tolist()])


def _text_of(path: Path) -> TextFile | None:
    return text_lines(path) if Path(path).suffix.lower() in TEXT_SUFFIXES else None


# ---------------------------------------------------------------------------------------------
# preparing a run

def prepare(db, paths: Sequence[str | Path], opts: DedupeOptions, comps: Sequence[Comparator],
            progress: Progress) -> Work:
    """Build the population and its candidate pairs with levels: incrementally when the database
    holds a usable state of its latest dedupe run, else in full."""
    timings: dict[str, float] = {}
    labels = file_labels(paths)
    state, why = None, "full requested" if opts.full else ""
    if not opts.full:
        t0 = time.perf_counter()
        state, why = _usable_state(db, opts, comps, len(paths))
        timings["state_load"] = time.perf_counter() - t0
    if state is not None:
        t0 = time.perf_counter()
        deltas = [_file_delta(p, lab, k, state, opts) for k, (p, lab) in enumerate(zip(paths, labels))]
        timings["read"] = time.perf_counter() - t0
        progress("load", {d.label: {"rows_loaded": d.info["rows_loaded"], "rows_read": d.info["rows_read"],
                                    "encoding": d.info["encoding"]} for d in deltas})
        qualified = _keys_collide_raw(deltas)
        if qualified == bool(state.meta.get("qualified")):
            return _prepare_incremental(db, state, deltas, paths, opts, comps, qualified, timings, progress)
        why = "record keys changed form"
    t0 = time.perf_counter()
    files = [read_input(p, lab, opts.load) for p, lab in zip(paths, labels)]
    timings["read"] = time.perf_counter() - t0
    progress("load", {f.label: {"rows_loaded": len(f.loaded.frame), "rows_read": f.loaded.rows_read,
                                "encoding": f.loaded.encoding} for f in files})
    work = _prepare_full(db, files, paths, opts, comps, keys_collide(files), timings, progress)
    work.work["why_full"] = why
    return work


def signature(opts: DedupeOptions, comps: Sequence[Comparator], passes: Sequence[BlockingPass]) -> dict[str, Any]:
    """What a stored state must share with a new run for its pairs and levels to be reused."""
    return {"version": reconcile.__version__, "keys": KEY_FORMAT,
            "comparators": [[c.field, list(c.levels), list(c.columns)] for c in comps],
            "passes": [[p.name, list(p.columns), p.only_sparse, p.cap] for p in passes],
            "settings": json.loads(json.dumps(opts.compare_settings(), default=str))}


def _usable_state(db, opts: DedupeOptions, comps, n_files: int) -> tuple[State | None, str]:
    row = db.execute("SELECT max(run_id) FROM runs WHERE status = 'complete' AND command = 'dedupe'").fetchone()
    latest = int(row[0]) if row and row[0] is not None else None
    if latest is None:
        return None, "no earlier dedupe run"
    if state_run(db) != latest:
        return None, "no stored state of the latest dedupe run"
    state = load_state(db, latest)
    if state is None:
        from reconcile.dedupe_state import stored_format

        fmt = stored_format(db, latest)
        return None, ("no stored state of the latest dedupe run" if fmt is None
                      else f"stored state of an older format ({fmt}; records not yet versioned)")
    if state.meta.get("signature") != signature(opts, comps, DEFAULT_PASSES):
        return None, "settings, comparators or version changed"
    if len(state.meta.get("files", [])) != n_files:
        return None, "another number of files"
    return state, ""


def _inputs(files: Sequence[InputFile]) -> list[dict[str, Any]]:
    return [f.info() for f in files]


def _load_model(db, opts: DedupeOptions, comps) -> Model | None:
    return model_from_run(db, opts.model_from_run, comps) if opts.model_from_run is not None else None


def _check_unique_keys(keys) -> None:
    from reconcile.errors import DataError

    s = pd.Series(np.asarray(keys, dtype=object))
    dup = s[s.duplicated()]
    if len(dup):
        raise DataError("dedupe.duplicate_keys", key=str(dup.iloc[0]), count=int(dup.size))


# ---------------------------------------------------------------------------------------------
# full runs

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
    facts = PairFacts.of(pop)
    flags = implied_flags(cand.left, cand.right, facts)
    timings["compare"] = time.perf_counter() - t0
    progress("compare", {"pairs": int(levels.shape[0])})

    t0 = time.perf_counter()
    model = _load_model(db, opts, comps)
    if model is None:
        model = estimate_u_prior(pop, levels, cand.left, cand.right, facts, comps, base_model(comps), opts.u_sample)
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    keyhash = {c: key_hashes(std[c]) for c in blocking_columns(DEFAULT_PASSES)}
    texts = [_text_of(f.path) for f in files]
    rowhash = np.concatenate([row_hashes(f.loaded.raw, f.label if opts.unit_from_file else None) for f in files])
    linehash = np.concatenate([_record_line_hashes(f, tf) for f, tf in zip(files, texts)])
    file_index = np.concatenate([np.full(len(f.loaded.frame), k, np.int16) for k, f in enumerate(files)])
    src = std["hukou_region_source"].to_numpy(object)
    prefill = {c: Coded.of(np.where(src == "address", std[c].to_numpy(object), "").astype(object))
               for c in ("hukou_region", "hukou_region_name")}
    coded = {c: Coded.of(v) for c, v in pop.cols.items()}
    skipped = skipped_labels(std, keyhash, opts.block_cap)
    timings["hash"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    prev = load_previous(db)
    prev_pid, same, prev_index = _previous_of(prev, pop)
    rows = record_rows(std, files, pop.fingerprint_hex())
    timings["records"] = time.perf_counter() - t0
    return Work(
        mode="full", paths=[Path(p) for p in paths], files=list(files), inputs=_inputs(files),
        file_meta=[_file_meta(f, tf) for f, tf in zip(files, texts)], pop=pop, model=model,
        li=cand.left, ri=cand.right, passes=cand.passes, levels=levels, flags=flags, stats=cand.stats,
        record_rows=rows, rejected=rejected_rows(files), prev_pid=prev_pid, prev_same_content=same,
        prev_index=prev_index, prev_keys=prev.record_key.astype(object) if prev is not None else np.zeros(0, object),
        previous_active=_unique_ids(prev.person_id) if prev is not None else np.zeros(0, object),
        coded=coded, prefill=prefill, keyhash=keyhash, sparse=std["k_no_id_no_birth"].to_numpy(bool),
        rowhash=rowhash, linehash=linehash, file_index=file_index, skipped_labels=skipped, qualified=qualified,
        timings=timings, work={"compared_pairs": int(len(cand.left)), "reused_pairs": 0, "changed_records": pop.n},
        previous_run=None if prev is None else prev.run_id, new_pos=np.arange(pop.n),
    )


def _unique_ids(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.unique(np.asarray(values, dtype=object)), dtype=object)


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
    fp_prev = np.array([int(x, 16) if x else 0 for x in prev.fingerprint[ok].tolist()], dtype=np.uint64)
    same[idx[ok]] = (fp_prev == pop.fp64[idx[ok]]) & (fp_prev != 0)
    return prev_pid, same, prev_index


# ---------------------------------------------------------------------------------------------
# reading against a state

@dataclass
class FileDelta:
    """One input file against the state: every record's key, line and previous position (-1 new
    or changed), and the loaded rows of the changed records."""

    label: str
    path: Path
    index: int
    keys_raw: np.ndarray        # record key as in the file
    line: np.ndarray
    old: np.ndarray             # state position of an unchanged record, else -1
    sub: Any                    # LoadedRegistry of the changed rows (frame/raw in file order)
    sub_pos: np.ndarray         # position in this file's records of each loaded row of ``sub``
    rowhash: np.ndarray
    linehash: np.ndarray
    info: dict[str, Any]
    meta: dict[str, Any]
    sha256: str
    fast: bool


def _file_delta(path, label: str, k: int, state: State, opts: DedupeOptions) -> FileDelta:
    meta = state.meta["files"][k]
    if Path(path).suffix.lower() in TEXT_SUFFIXES and meta.get("text") and meta.get("key_column"):
        tf = text_lines(Path(path))
        if tf is not None:
            d = _fast_delta(Path(path), label, k, tf, meta, state, opts)
            if d is not None:
                return d
    return _slow_delta(Path(path), label, k, state, opts)


def _state_raw_keys(state: State, pos: np.ndarray) -> np.ndarray:
    keys = state.keys[pos]
    if not state.meta.get("qualified"):
        return keys
    labels = [f["label"] for f in state.meta["files"]]
    fi = state.file_index[pos]
    return np.array([k[len(labels[i]) + 1:] for k, i in zip(keys.tolist(), fi.tolist())], dtype=object)


def _fast_delta(path: Path, label: str, k: int, tf: TextFile, meta: dict, state: State,
                opts: DedupeOptions) -> FileDelta | None:
    from reconcile.loading import read_registry

    h = int(meta["header_line"])
    if len(tf.lines) < h or str(int(line_hashes([tf.lines[h - 1]])[0])) != meta.get("header_hash"):
        return None
    if state.meta.get("qualified") and label != meta["label"]:
        return None                     # keys carry the file's name: it changed
    data_lines = tf.lines[h:]
    hashes = line_hashes(data_lines)
    mine = np.nonzero((state.file_index == k) & (state.linehash != 0))[0]
    sh = state.linehash[mine]
    order = np.argsort(sh, kind="stable")
    sorted_h = sh[order]
    old = np.full(len(hashes), -1, np.int64)
    if len(sorted_h):
        at = np.minimum(np.searchsorted(sorted_h, hashes), len(sorted_h) - 1)
        hit = sorted_h[at] == hashes
        old[hit] = mine[order[at[hit]]]
    changed = np.nonzero(old < 0)[0]
    # the loader reads the header and the changed lines (with the layout detected last time)
    suffix = path.suffix.lower()
    nl = b"\r\n" if tf.crlf else b"\n"
    if len(changed):
        with tempfile.TemporaryDirectory() as tmp:
            sub_path = Path(tmp) / f"changed{suffix}"
            sub_path.write_bytes(nl.join([tf.lines[h - 1], *[data_lines[i] for i in changed.tolist()]]) + nl)
            load = dict(opts.load)
            if not load.get("encoding"):
                load["encoding"] = meta["encoding"]
            sub = read_registry(sub_path, **load)
        if (sub.delimiter != meta["delimiter"] or sub.key_column != meta["key_column"]
                or list(sub.raw.columns) != meta["columns"] or sub.columns != meta.get("mapping")):
            return None
    else:
        sub = _EmptyLoaded.like(meta)
    # subset line L (the header is line 1) is physical line h + 1 + changed[L - 2] of the file
    to_file = lambda arr: h + 1 + changed[np.asarray(arr, np.int64) - 2]  # noqa: E731
    sub = copy.copy(sub)
    frame = sub.frame.copy()
    frame["line"] = to_file(frame["line"].to_numpy(np.int64)) if len(frame) else frame["line"]
    sub.frame = frame
    sub.rejected = [_relined(r, int(to_file([r.line])[0])) for r in sub.rejected]
    unchanged = np.nonzero(old >= 0)[0]
    u_line = h + 1 + unchanged
    s_line = frame["line"].to_numpy(np.int64)
    line = np.concatenate([u_line, s_line])
    order_all = np.argsort(line, kind="stable")
    line = line[order_all]
    n_u = len(unchanged)
    keys_raw = np.concatenate([_state_raw_keys(state, old[unchanged]), frame["record_key"].astype(str).to_numpy(object)])
    old_all = np.concatenate([old[unchanged], np.full(len(frame), -1, np.int64)])
    rowhash = np.concatenate([state.rowhash[old[unchanged]],
                              row_hashes(sub.raw, label if opts.unit_from_file else None)])
    sub_lines = s_line - h - 1
    linehash = np.concatenate([hashes[unchanged], hashes[sub_lines] if len(sub_lines) else np.zeros(0, np.uint64)])
    inv = np.empty(len(order_all), np.int64)
    inv[order_all] = np.arange(len(order_all))
    rows_read = n_u + sub.rows_read
    info = {"source": SOURCE, "file": label, "path": str(path), "sha256": tf.sha256, "encoding": sub.encoding,
            "delimiter": sub.delimiter, "sheet": sub.sheet, "columns": sub.columns, "key_column": sub.key_column,
            "rows_read": int(rows_read), "rows_loaded": int(n_u + len(frame)), "rows_rejected": len(sub.rejected)}
    new_meta = {**meta, "label": label, "name": path.name}
    return FileDelta(label, path, k, keys_raw[order_all], line, old_all[order_all], sub, inv[n_u:],
                     rowhash[order_all], linehash[order_all], info, new_meta, tf.sha256, True)


@dataclass
class _EmptyLoaded:
    """No changed rows in a file: what the rest of the run reads of a LoadedRegistry."""

    encoding: str
    delimiter: str | None
    sheet: str | None
    columns: dict[str, str]
    key_column: str | None
    frame: pd.DataFrame
    raw: pd.DataFrame
    rejected: list = field(default_factory=list)
    rows_read: int = 0
    header_line: int = 1

    @classmethod
    def like(cls, meta: dict[str, Any]) -> "_EmptyLoaded":
        from reconcile.fields import INPUT_FIELDS

        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in ("record_key", *INPUT_FIELDS)})
        frame["line"] = pd.Series(dtype=np.int64)
        raw = pd.DataFrame({c: pd.Series(dtype=object) for c in meta["columns"]})
        return cls(meta["encoding"], meta["delimiter"], meta.get("sheet"), dict(meta.get("mapping") or {}),
                   meta["key_column"], frame, raw)


def _relined(r, line: int):
    try:
        return r._replace(line=line)
    except AttributeError:
        r2 = copy.copy(r)
        r2.line = line
        return r2


def _slow_delta(path: Path, label: str, k: int, state: State, opts: DedupeOptions) -> FileDelta:
    f = read_input(path, label, opts.load)
    ld = f.loaded
    keys_raw = ld.frame["record_key"].astype(str).to_numpy(object)
    rowhash = row_hashes(ld.raw, label if opts.unit_from_file else None)
    tf = _text_of(path)
    return FileDelta(label, path, k, keys_raw, ld.frame["line"].to_numpy(np.int64), np.full(len(keys_raw), -2, np.int64),
                     ld, np.arange(len(keys_raw)), rowhash, _record_line_hashes(f, tf), f.info(), _file_meta(f, tf),
                     f.sha256, False)


def _keys_collide_raw(deltas: Sequence[FileDelta]) -> bool:
    if len(deltas) < 2:
        return False
    allk = pd.Series(np.concatenate([d.keys_raw for d in deltas]))
    return bool(allk.duplicated().any())


# ---------------------------------------------------------------------------------------------
# incremental runs

def _prepare_incremental(db, state: State, deltas: list[FileDelta], paths, opts, comps, qualified, timings,
                         progress) -> Work:
    from reconcile.compare import compare_pairs
    from reconcile.fingerprint import record_fingerprints
    from reconcile.keys import add_keys, fill_unit_hukou

    t0 = time.perf_counter()
    keys = np.concatenate([(d.label + ":" + pd.Series(d.keys_raw, dtype=object)).to_numpy(object) if qualified
                           else d.keys_raw for d in deltas]) if deltas else np.zeros(0, object)
    _check_unique_keys(keys)
    n = len(keys)
    line = np.concatenate([d.line for d in deltas])
    file_arr = np.concatenate([repeated(d.label, len(d.keys_raw)) for d in deltas])
    file_index = np.concatenate([np.full(len(d.keys_raw), d.index, np.int16) for d in deltas])
    rowhash = np.concatenate([d.rowhash for d in deltas])
    linehash = np.concatenate([d.linehash for d in deltas])
    old = np.concatenate([d.old for d in deltas])
    prev_index = _previous_positions(state.keys, keys, old)
    slow = old == -2                  # read in full: unchanged = same key and raw row
    if slow.any():
        s = np.nonzero(slow)[0]
        ok = prev_index[s] >= 0
        same = np.zeros(len(s), bool)
        same[ok] = state.rowhash[prev_index[s[ok]]] == rowhash[s[ok]]
        old[s] = np.where(same, prev_index[s], -1)
    unchanged = old >= 0
    # a line seen before is the same record only if it still has the same key
    unchanged &= prev_index == old
    old[~unchanged] = -1
    changed = np.nonzero(~unchanged)[0]
    timings["diff"] = time.perf_counter() - t0

    # standardise the changed records only
    t0 = time.perf_counter()
    parts = []
    start = 0
    for d in deltas:
        nd = len(d.keys_raw)
        sel = changed[(changed >= start) & (changed < start + nd)] - start
        if len(sel):
            # rows of d.sub holding these records
            sub_rows = np.full(nd, -1, np.int64)
            sub_rows[d.sub_pos] = np.arange(len(d.sub_pos))
            rows = sub_rows[sel]
            sub = InputFile(d.label, d.path, _sub_loaded(d.sub, rows), d.sha256)
            std_f = standardise_input(sub, opts.unit_from_file, qualified)
            std_f["_row"] = rows
            std_f["_pos"] = sel + start
            parts.append(std_f)
        start += nd
    fstd = pd.concat(parts, ignore_index=True) if parts else None
    fpos = fstd["_pos"].to_numpy(np.int64) if fstd is not None else np.zeros(0, np.int64)
    timings["standardise"] = time.perf_counter() - t0

    # hukou counties filled from units over the whole population
    t0 = time.perf_counter()
    take = np.where(unchanged, old, -1)
    pre_region = state.prefill["hukou_region"].take_extend(take, n, fpos, fstd["hukou_region"].to_numpy(object)
                                                           if fstd is not None else [])
    pre_name = state.prefill["hukou_region_name"].take_extend(take, n, fpos, fstd["hukou_region_name"].to_numpy(object)
                                                              if fstd is not None else [])
    unit_col = state.cols["unit"].take_extend(take, n, fpos, fstd["unit"].astype(str).to_numpy(object)
                                              if fstd is not None else [])
    filled = fill_unit_hukou(pd.DataFrame({"unit": unit_col.values(), "hukou_region": pre_region.values(),
                                           "hukou_region_name": pre_name.values()}))
    region = filled["hukou_region"].to_numpy(object)
    region_name = filled["hukou_region_name"].to_numpy(object)
    upos = np.nonzero(unchanged)[0]
    old_u = old[upos]
    refilled = upos[region[upos] != state.cols["hukou_region"].values()[old_u]] if len(upos) else np.zeros(0, np.int64)
    focus = ~unchanged
    focus[refilled] = True
    if fstd is not None:
        fstd["hukou_region"] = region[fpos]
        fstd["hukou_region_name"] = region_name[fpos]
        fstd["hukou_region_source"] = filled["hukou_region_source"].to_numpy(object)[fpos]
        fstd = add_keys(fstd)
    timings["fill"] = time.perf_counter() - t0

    # the population: unchanged records from the state, changed ones from their standardised rows
    t0 = time.perf_counter()
    coded: dict[str, Coded] = {}
    for c in population_columns(comps):
        new_vals = fstd[c].astype(str).to_numpy(object) if fstd is not None else np.zeros(0, object)
        coded[c] = state.cols[c].take_extend(take, n, fpos, new_vals)
    if len(refilled):
        for c, vals in (("hukou_region", region), ("hukou_region_name", region_name)):
            col = coded[c]
            col.codes[refilled] = col.append(vals[refilled]) + np.arange(len(refilled), dtype=np.int32)
    cols = {c: v.values() for c, v in coded.items()}
    fp64 = np.zeros(n, np.uint64)
    fp64[upos] = state.fp64[old_u]
    filled_cnt = np.zeros(n, np.int8)
    filled_cnt[upos] = state.filled[old_u]
    keyhash = {c: np.zeros(n, np.uint64) for c in blocking_columns(DEFAULT_PASSES)}
    for c in keyhash:
        keyhash[c][upos] = state.keyhash[c][old_u]
    sparse = np.zeros(n, bool)
    sparse[upos] = state.sparse[old_u]
    if fstd is not None:
        f_fp = record_fingerprints(fstd).to_numpy(object)
        fp64[fpos] = np.array([int(x, 16) for x in f_fp.tolist()], dtype=np.uint64)
        filled_cnt[fpos] = (fstd[list(COMPLETENESS_FIELDS)].astype(str) != "").sum(axis=1).to_numpy(np.int8)
        for c in keyhash:
            keyhash[c][fpos] = key_hashes(fstd[c])
        sparse[fpos] = fstd["k_no_id_no_birth"].to_numpy(bool)
    if len(refilled):
        keyhash["hukou_region"][refilled] = hash_strings(region[refilled])
    pop = Population(keys=keys, file=file_arr, line=line, fp64=fp64, filled=filled_cnt, cols=cols)
    timings["assemble"] = time.perf_counter() - t0

    # candidate pairs: changed records against all, unchanged pairs from the state
    t0 = time.perf_counter()
    old_to_new = np.full(state.n, -1, np.int64)
    keep_u = np.nonzero(unchanged & ~focus)[0]
    old_to_new[old[keep_u]] = keep_u
    stored_labels = {p: {int(k): v for k, v in d.items()} for p, d in state.meta.get("skipped_labels", {}).items()}
    blk = incremental_candidates(keyhash, sparse, focus, old_to_new, state, opts.block_cap, fstd, stored_labels, pop)
    timings["block"] = time.perf_counter() - t0
    progress("block", {"pairs": int(len(blk.li)), "reused": int(blk.reused.sum())})

    t0 = time.perf_counter()
    m = len(blk.li)
    levels = np.empty((m, len(comps)), np.int8)
    flags = np.empty(m, np.uint8)
    k = len(blk.reused_index)
    if k and blk.reused[:k].all():          # the usual layout: reused pairs first (no boolean scatter)
        np.take(state.levels, blk.reused_index, axis=0, out=levels[:k])
        np.take(state.flags, blk.reused_index, out=flags[:k])
    else:
        levels[blk.reused] = state.levels[blk.reused_index]
        flags[blk.reused] = state.flags[blk.reused_index]
    todo = np.nonzero(~blk.reused)[0]
    if todo.size:
        arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
        levels[todo] = compare_pairs(arr, arr, blk.li[todo], blk.ri[todo], comps)
        flags[todo] = implied_flags(blk.li[todo], blk.ri[todo], PairFacts.of(pop))
    timings["compare"] = time.perf_counter() - t0
    progress("compare", {"pairs": int(todo.size)})

    model = _load_model(db, opts, comps) or model_from_run(db, state.run_id, comps)

    # persons and records
    t0 = time.perf_counter()
    prev_keys, previous_run = state.keys, state.run_id
    prev_pid = np.full(n, "", dtype=object)
    has = prev_index >= 0
    person_vals = state.person.uniq
    prev_pid[has] = person_vals[state.person.codes[prev_index[has]]]
    same = np.zeros(n, bool)
    same[has] = state.fp64[prev_index[has]] == fp64[has]
    active = (person_vals[np.nonzero(np.bincount(state.person.codes, minlength=len(person_vals)))[0]]
              if len(state.person.codes) else np.zeros(0, object))
    if previous_run_with_persons(db) != state.run_id:
        # another command wrote persons since: continue from that run, as a full run would
        prev = load_previous(db)
        prev_pid, same, prev_index = _previous_of(prev, pop)
        prev_keys, previous_run = prev.record_key.astype(object), prev.run_id
        active = _unique_ids(prev.person_id)
    files = [InputFile(d.label, d.path, d.sub, d.sha256) for d in deltas]
    if fstd is not None:
        rows = record_rows(fstd, files, pop.fingerprint_hex(fpos))
    else:
        rows = pd.DataFrame()
    reuse = _reuse(state, upos, old_u, keys, refilled, region, region_name)
    rejected = rejected_rows(files)
    timings["records"] = time.perf_counter() - t0
    seen = np.zeros(state.n, bool)
    seen[old_u] = True
    seen[prev_index[has]] = True
    removed = int(state.n - seen.sum())
    return Work(
        mode="incremental", paths=[Path(p) for p in paths], files=files, inputs=[d.info for d in deltas],
        file_meta=[d.meta for d in deltas], pop=pop, model=model, li=blk.li, ri=blk.ri, passes=blk.passes,
        levels=levels, flags=flags, stats=blk.stats, record_rows=rows, rejected=rejected, prev_pid=prev_pid,
        prev_same_content=same, prev_index=prev_index, prev_keys=prev_keys, previous_active=active, coded=coded,
        prefill={"hukou_region": pre_region, "hukou_region_name": pre_name}, keyhash=keyhash, sparse=sparse,
        rowhash=rowhash, linehash=linehash, file_index=file_index, skipped_labels=blk.labels, qualified=qualified,
        timings=timings,
        work={"compared_pairs": int(todo.size), "reused_pairs": int(blk.reused.sum()), "changed_records": int(len(changed)),
              "refilled_records": int(len(refilled)), "removed_records": removed, "cap_flips": blk.cap_flips,
              "lines_reused": int(sum(int((d.old >= 0).sum()) for d in deltas if d.fast)),
              "files_read_in_full": [d.label for d in deltas if not d.fast]},
        previous_run=previous_run, new_pos=fpos, reuse=reuse, rejected_count=int(len(rejected)),
        state=state, reused=blk.reused, reused_index=blk.reused_index,
    )


def _previous_positions(state_keys: np.ndarray, keys: np.ndarray, old: np.ndarray) -> np.ndarray:
    """Position of each current key in the stored run (-1: none). A line matched to a stored
    record with the same key is that record; only the other keys are looked up, among the stored
    records no line claimed (keys are unique, so they cannot be elsewhere)."""
    prev = np.full(len(keys), -1, np.int64)
    m = np.nonzero(old >= 0)[0]
    if len(m):
        same = state_keys[old[m]] == keys[m]
        m = m[same]
        prev[m] = old[m]
    rest = np.ones(len(keys), bool)
    rest[m] = False
    free = np.ones(len(state_keys), bool)
    free[prev[m]] = False
    rest, free = np.nonzero(rest)[0], np.nonzero(free)[0]
    if len(rest) and len(free):
        at = pd.Index(state_keys[free]).get_indexer(keys[rest])
        prev[rest] = np.where(at >= 0, free[np.maximum(at, 0)], -1)
    return prev


def _sub_loaded(loaded, rows: np.ndarray):
    """A LoadedRegistry view with only some rows (for standardising the changed records)."""
    sub = copy.copy(loaded)
    sub.frame = loaded.frame.iloc[rows].reset_index(drop=True)
    sub.raw = loaded.raw.iloc[rows].reset_index(drop=True)
    return sub


def _reuse(state: State, upos: np.ndarray, old: np.ndarray, keys: np.ndarray, refilled: np.ndarray,
           region: np.ndarray, region_name: np.ndarray) -> Reuse:
    """The stored versions of the unchanged records, with what a full run would write differently:
    a qualified key of a renamed file, a hukou county newly filled from units."""
    new_key = np.where(state.keys[old] != keys[upos], keys[upos], None).astype(object)
    reg = np.full(len(upos), None, dtype=object)
    reg_name = np.full(len(upos), None, dtype=object)
    if len(refilled):
        at = np.searchsorted(upos, refilled)
        reg[at] = region[refilled]
        reg_name[at] = region_name[refilled]
    person = state.person.uniq[state.person.codes[old]] if len(old) else np.zeros(0, object)
    return Reuse(pos=upos, old=old, version=state.version[old], person=np.asarray(person, dtype=object), key=new_key, region=reg, region_name=reg_name)


# ---------------------------------------------------------------------------------------------
# storing this run's state

def save_state(db, run_id: int, work: Work, person_id: np.ndarray, version_ids: np.ndarray, opts: DedupeOptions,
               comps: Sequence[Comparator]) -> None:
    """Store this run's population and candidate pairs (inside the run's transaction)."""
    t0 = time.perf_counter()
    pop = work.pop
    meta = {"signature": signature(opts, comps, DEFAULT_PASSES), "n": pop.n, "pairs": int(len(work.li)),
            "qualified": work.qualified, "files": work.file_meta,
            "skipped_labels": {p: {str(k): v for k, v in d.items()} for p, d in work.skipped_labels.items()}}
    st = State(
        run_id=run_id, meta=meta, keys=pop.keys, file_index=work.file_index.astype(np.int16),
        rowhash=work.rowhash.astype(np.uint64), linehash=work.linehash.astype(np.uint64), fp64=pop.fp64.astype(np.uint64),
        cols=work.coded, prefill=work.prefill, keyhash=work.keyhash, sparse=work.sparse.astype(bool),
        filled=pop.filled.astype(np.int8), person=Coded.of(person_id), version=version_ids.astype(np.int64),
        li=work.li, ri=work.ri, passes=work.passes, levels=work.levels, flags=work.flags,
    )
    old_pos = None
    if work.state is not None and work.reuse is not None:
        old_pos = np.full(pop.n, -1, np.int64)
        old_pos[work.reuse.pos] = work.reuse.old
    store_state(db, st, work.state, _pair_delta(work, version_ids), old_pos)
    work.timings["state_save"] = time.perf_counter() - t0


def _pair_delta(work: Work, vid: np.ndarray) -> PairDelta | None:
    """This run's pairs against the state it started from: reused pairs whose two records kept
    their versions stay where they are stored; every other pair is appended."""
    prev = work.state
    if prev is None or work.reused is None:
        return None
    t = np.nonzero(work.reused)[0]
    r = np.asarray(work.reused_index, np.int64)
    # a reused pair's records are unchanged: it stays where it is stored unless one of them got a
    # new version (its person or filled county changed)
    moved = np.zeros(len(vid), bool)
    if work.reuse is not None and len(work.reuse.pos):
        moved[work.reuse.pos] = vid[work.reuse.pos] != work.reuse.version
    moved[np.asarray(work.new_pos if work.new_pos is not None else [], np.int64)] = True
    if moved.any():
        same = ~(moved[work.li[t]] | moved[work.ri[t]])
        kt, kr = t[same], r[same]
    else:
        kt, kr = t, r
    other = np.ones(len(work.li), bool)
    other[kt] = False
    o = np.nonzero(other)[0]
    return PairDelta(keep=kr, keep_passes=work.passes[kt], va=vid[work.li[o]], vb=vid[work.ri[o]],
                     passes=work.passes[o], levels=work.levels[o], flags=work.flags[o])
