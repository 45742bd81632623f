"""`reconcile match`: link an origin registry (户籍地) with a destination registry (现居住地).

Stages: load -> standardise -> block -> compare -> train -> score -> decide -> cluster ->
outcomes -> report. Each stage is a function over DataFrames/arrays; this module wires them and
builds the report tables.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

import reconcile
from matchers.base import Comparator
from reconcile.arrays import repeated
from reconcile.cluster import component_labels, guarded_clusters, label_edges
from reconcile.decide import DECISION_NAMES, MATCH, NONE, REVIEW, one_person_adjustment, one_to_one, threshold_decisions
from reconcile.errors import ConfigError, ReportError
from reconcile.fields import COMPLETENESS_FIELDS, STANDARD_COLUMNS, USABLE_ID_STATUSES
from reconcile.fingerprint import record_fingerprints
from reconcile.blocking import MATCH_PASSES, WITHIN_PASSES, pass_columns
from reconcile.keys import add_keys, drop_blocking_keys, fill_unit_hukou, mark_shared_ids
from reconcile.linkage import Linkage, Progress, evidence_json, evidence_jsons, link, _noop
from reconcile.model import Model
from reconcile.report import (ChunkedFrame, CopiedRows, RunOutput, holds_nothing, now_iso, open_report,
                              replace_empty_report, write_copied_rows, write_run, write_run_beside_base)
from reconcile.scoring import PRIOR_STRATA, TF_FIELDS, TermFrequencies, strata_values


@dataclass
class MatchOptions:
    """Everything that changes what `match` computes (stored as the run's settings_json)."""

    match_threshold: float = 0.90
    review_threshold: float = 0.30
    block_cap: int = 20_000
    within_block_cap: int = 2_000     # one file with itself: name + county is the name alone there
    u_sample: int = 150_000
    origin: dict[str, Any] = field(default_factory=dict)   # read_registry kwargs for ORIGIN
    dest: dict[str, Any] = field(default_factory=dict)     # read_registry kwargs for DEST
    model_from_run: int | None = None
    learn_from_reviews: bool = False
    within_file: bool = True
    engine: str = "embedded"                # "embedded" | "spark" (reconcile.engines)
    master: str | None = None               # Spark master URL (--engine spark)
    out_parquet: str | None = None          # also write links/outcomes as Parquet here (Spark)

    def validate(self) -> None:
        from reconcile.engines import check_engine_options

        check_engine_options(self.engine, self.master, self.out_parquet)
        if not 0 < self.review_threshold <= self.match_threshold < 1 + 1e-12:
            raise ConfigError("match.bad_thresholds", match=self.match_threshold, review=self.review_threshold)


@dataclass
class Side:
    """One registry through the pipeline."""

    name: str                    # 'origin' | 'dest'
    loaded: Any                  # reconcile.loading.LoadedRegistry
    std: pd.DataFrame            # standardised + k_ columns, positional index 0..n-1
    sha256: str
    _fingerprints: np.ndarray | None = field(default=None, repr=False, compare=False)
    # the `records` rows built beforehand (by the loading worker, reconcile.parallel), or None
    prepared_records: CopiedRows | None = field(default=None, repr=False, compare=False)
    # std holds only linking_columns (+ k_filled): the loading worker kept the rest, which only
    # the records and the fingerprints read, and built those there
    linking_only: bool = field(default=False, repr=False, compare=False)

    @property
    def keys(self) -> np.ndarray:
        return self.std["record_key"].to_numpy(object)

    @property
    def fingerprints(self) -> np.ndarray:
        """record_fingerprints of every record (object array), computed once per side."""
        if self._fingerprints is None:
            if self.linking_only:   # they would be of a part of each record
                raise RuntimeError(f"{self.name}: fingerprints of a registry sent without all its fields")
            self._fingerprints = record_fingerprints(self.std).to_numpy(object)
        return self._fingerprints


@dataclass
class MatchResult:
    run_id: int
    out: Path
    summary: dict[str, Any]
    timings: dict[str, float]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_side(name: str, path: str | Path, options: Mapping[str, Any]) -> Side:
    """Load and standardise one registry."""
    from reconcile.divisions import remembered_scans
    from reconcile.loading import read_registry
    from reconcile.standardise import standardise

    loaded = read_registry(path, **options)
    with remembered_scans():   # standardise and add_keys read the same addresses: scan each once
        std = standardise(loaded.frame)
        std.index = pd.RangeIndex(len(std))   # positional; the frame is new (reset_index copied it)
        std = mark_shared_ids(add_keys(fill_unit_hukou(std)))
    # the loader's fields are all in std now: keep their line numbers only (the report's
    # `records.line`), which the loading worker then sends back without the rest
    loaded.frame = loaded.frame[["line"]] if "line" in loaded.frame else loaded.frame.iloc[:, :0]
    return Side(name=name, loaded=loaded, std=std, sha256=file_sha256(Path(path)))


def default_comparators() -> list[Comparator]:
    from matchers.registry import default_comparators as dc

    return dc()


# ---------------------------------------------------------------------------------------------
def run_match(
    origin_path: str | Path,
    dest_path: str | Path,
    out: str | Path = "reconcile.db",
    options: MatchOptions | None = None,
    progress: Progress = _noop,
    comparators: Sequence[Comparator] | None = None,
) -> MatchResult:
    """The whole `match` command as a library call; returns the run id and the summary."""
    cleanup: list[Callable[[], None]] = []
    try:
        return _run_match(origin_path, dest_path, out, options, progress, comparators, cleanup)
    finally:   # scratch files hold personal data: gone whether the run succeeds, fails or is stopped
        for fn in cleanup:
            fn()


def _run_match(origin_path, dest_path, out, options, progress, comparators,
               cleanup: list[Callable[[], None]]) -> MatchResult:
    opts = options or MatchOptions()
    opts.validate()
    comps = list(comparators or default_comparators())
    started = now_iso()
    timings: dict[str, float] = {}
    out_path = Path(out)
    db = open_report(out_path)          # fail early on a bad --out, before the heavy work
    new_report = holds_nothing(db)
    id_codes = None   # (the embedded engine's blocking codes of the ID numbers, for the ID conflicts)

    if opts.engine == "spark":   # issue 7: standardise, block, compare, score as Spark jobs
        from reconcile.engines.spark import spark_stages

        origin, dest, tf, cross, within = spark_stages(origin_path, dest_path, opts, comps, db, progress, timings)
    else:
        from reconcile.parallel import load_sides

        t0 = time.perf_counter()
        sides = load_sides(origin_path, dest_path, opts.origin, opts.dest,
                           within=(comps, WITHIN_PASSES, opts.within_block_cap, within_u_sample(opts))
                           if opts.within_file else None,
                           scratch_dir=out_path.resolve().parent, send_only=linking_columns(comps),
                           report_base=new_report and not opts.out_parquet)
        # a worker may still be comparing one registry with itself, or building its records for
        # the report: ended once the report is written, or on any error; then its files go
        cleanup += [sides.close, sides.remove_files]
        origin, dest = sides.origin, sides.dest
        timings["load+standardise"] = time.perf_counter() - t0
        timings.update(sides.timings)
        progress("load", {"origin": _load_info(origin), "dest": _load_info(dest)})

        model = None
        if opts.model_from_run is not None:
            model = _model_from_run(db, opts.model_from_run, comps)

        # term frequencies from each registry's counts, taken once blocking and comparing are done
        # (the worker sends its side's right after the side: not waited for here)
        tf_now = cache(lambda: TermFrequencies.from_counts([sides.term_counts("origin"), sides.term_counts("dest")]))
        cross = link(origin.std, dest.std, comps, passes=MATCH_PASSES, block_cap=opts.block_cap, model=model,
                     tf=tf_now, u_sample=opts.u_sample, progress=progress, strata=PRIOR_STRATA)
        tf = tf_now()
        for k, v in cross.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        if opts.learn_from_reviews and model is None:
            learned = learn_from_reviews(db, origin, dest, cross, comps, tf)
            progress("learn", {"decided_pairs": learned})

        from reconcile import codes

        # the ID numbers' codes over both registries, which blocking made (the ID conflicts count
        # them); then, with a loading worker, the columns' codes go: they were for blocking,
        # comparing and training across the registries, and the within-file linkages below score
        # pairs both processes blocked and compared beside the load (at 1,000,000 persons 0.2 GB
        # less at the main process's peak, which they are). In one process they block here, on
        # the same codes.
        if all("id_clean" in side.std for side in (origin, dest)):
            id_codes = codes.joint_codes(origin.std["id_clean"].to_numpy(object),
                                         dest.std["id_clean"].to_numpy(object)).codes
        if sides.worker_side is not None:
            codes.forget()
        t0 = time.perf_counter()
        within: dict[str, Linkage | None] = {"origin": None, "dest": None}
        if opts.within_file:
            for side in (origin, dest):
                if len(side.std) > 1:
                    within[side.name] = link(side.std, None, comps, passes=WITHIN_PASSES,
                                             block_cap=opts.within_block_cap, m_from=cross.model, tf=tf,
                                             u_sample=within_u_sample(opts),
                                             blocked=sides.blocked(side.name))
        timings["within_file"] = time.perf_counter() - t0
        # the records built beforehand: this side's here while the worker was loading, the
        # worker's there (the report waits for those when it copies them, last); a large
        # registry without a worker's now, so that what only they read can go before the
        # outcomes (the same rows; copied inside SQLite later)
        for side in sorted((origin, dest), key=lambda s: s.name == sides.worker_side):
            side.prepared_records = sides.prepared_records(side.name, ahead_min=RECORDS_AHEAD_MIN)
        timings.update(sides.timings)
        for side in (origin, dest):   # every blocking is done: its keys go before the peak
            if side.prepared_records is not None:   # they hold the raw rows and every field now
                side.std = slim_std(side, comps)
                side.loaded.raw = None
            else:
                side.std = drop_blocking_keys(side.std)
        progress("within", {k: (0 if v is None else int(v.li.size)) for k, v in within.items()})
        codes.forget()   # (any the within-file linkages made)

    t0 = time.perf_counter()
    result = assemble(origin, dest, cross, within, comps, opts, db=db, id_codes=id_codes)
    timings["decide+outcomes"] = time.perf_counter() - t0
    models = {"cross": cross.model.to_json(),
              "within": {k: (v.model.to_json() if v else None) for k, v in within.items()}, "tf": tf.summary()}
    # every candidate pair's levels and scores go before the report is written: its `links` rows
    # hold the pairs they report (assemble). At 1,000,000 persons 0.8 GB of the main process's
    # peak, which the report stage was, beside the worker's records.
    del cross, within
    if opts.engine != "spark":
        sides.forget_blocked()

    t0 = time.perf_counter()
    settings = asdict(opts)
    run_out = RunOutput(
        command="match",
        started_at=started,
        run_info={
            "version": reconcile.__version__,
            "origin_path": str(origin_path),
            "dest_path": str(dest_path),
            "origin_sha256": origin.sha256,
            "dest_sha256": dest.sha256,
            "inputs_json": [_input_info(origin, origin_path), _input_info(dest, dest_path)],
            "settings_json": settings,
            "model_json": models,
            "summary_json": result["summary"],
        },
        tables=result["tables"],
    )
    copy = sides.report_copy() if opts.engine != "spark" else None
    if copy is None:
        run_id = write_run(db, run_out, extra_writer=result.get("extra_writer"))
    else:
        # the worker is still finishing the report base (both registries' `records` rows, this
        # process wrote the origin's, and their indexes): the run is written meanwhile into a
        # copy of the report, which holds nothing, then moved into the base, which then
        # replaces the report
        db.close()
        shutil.copyfile(out_path, copy)
        run_id, written = write_run_beside_base(copy, run_out, sides.report_base, result.get("extra_writer"), timings)
        replace_empty_report(out_path, written)
    if opts.out_parquet:
        from reconcile.engines.spark import write_parquet

        write_parquet(result["tables"], opts.out_parquet, run_id, opts.master)
    db.close()
    timings["report"] = time.perf_counter() - t0
    if opts.engine != "spark":   # the worker's records, waited for while the report was written
        timings.update((k, v) for k, v in sides.timings.items() if k not in timings)
    progress("report", {"run_id": run_id, "path": str(out_path)})
    return MatchResult(run_id=run_id, out=out_path, summary=result["summary"], timings=timings)


# Records per registry from which `match` builds the `records` rows before the outcomes when no
# worker did (reconcile.parallel), to let the texts only they read go (slim_std): a million-person
# run in one process peaked at 6.25 GB without it, 5.74 GB with it, in the same CPU time. Smaller
# registries write them with the report: at 100,000 persons it saved 56 MB, for a few seconds
# that this machine's drift hid (34.5 s with it; 31.0 and 42.3 s without, within the hour).
RECORDS_AHEAD_MIN = 500_000

# What assemble and the report still read of a registry once its `records` rows are built and its
# fingerprints computed: the comparators' columns (the links' evidence, reviewers' pairs) and these.
ASSEMBLE_COLUMNS: tuple[str, ...] = ("record_key", "id_number", "id_status", "flow_status", "hukou_region",
                                     "id_region", "unit", "birth_conflict", "sex_conflict", "registered_at", "line")


def within_u_sample(opts: MatchOptions) -> int:
    """Random pairs a within-file linkage estimates its u from."""
    return min(opts.u_sample, 100_000)


def linking_columns(comps: Sequence[Comparator]) -> frozenset[str]:
    """The columns of a registry `match` reads before its `records` rows are written: the
    blocking passes', the comparators', term frequencies', the prior's strata and assemble's
    (ASSEMBLE_COLUMNS). The loading worker sends its side with only these (and ``k_filled``)."""
    return frozenset(set(ASSEMBLE_COLUMNS).union(*(c.columns for c in comps), TF_FIELDS.values(),
                                                  pass_columns(MATCH_PASSES + WITHIN_PASSES), {PRIOR_STRATA}))


def filled_counts(std: pd.DataFrame) -> np.ndarray:
    """How many COMPLETENESS_FIELDS each record fills (``k_filled``; where a side was sent
    without some of them, the count made before)."""
    if "k_filled" in std:
        return std["k_filled"].to_numpy()
    filled = np.zeros(len(std), dtype=np.int8)
    for c in COMPLETENESS_FIELDS:
        if c in std:
            filled += (std[c].to_numpy(object) != "")
    return filled


def slim_std(side: Side, comps: Sequence[Comparator]) -> pd.DataFrame:
    """``side.std`` with only the columns assemble reads (ASSEMBLE_COLUMNS, the comparators'), plus
    ``k_filled`` (how many completeness fields a record fills). For a side whose `records` rows are
    built already: its texts read by nothing else (addresses, raw names and numbers, blocking keys)
    were about a third of its memory, held to the end of the run. Fingerprints are computed first."""
    side.fingerprints
    return with_filled(side.std, set(ASSEMBLE_COLUMNS).union(*(c.columns for c in comps)))


def with_filled(std: pd.DataFrame, columns: Collection[str]) -> pd.DataFrame:
    """``std``'s columns among ``columns`` (in std's order, not copied: column_view), plus
    ``k_filled`` counted on the whole of ``std`` (slim_std; the worker's linking side)."""
    out = column_view(std, [c for c in std.columns if c in columns])
    out["k_filled"] = filled_counts(std)
    return out


def column_view(std: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A new frame of ``columns`` of ``std`` that shares their arrays (``std[columns]`` copies
    them: at 1,856,076 records 41 columns of pointers, 0.6 GB). A column that is a view into a
    larger block is copied, so that the block can go with ``std``."""
    arrays = {}
    for c in columns:
        a = root = std[c].to_numpy()
        while isinstance(root.base, np.ndarray):
            root = root.base
        arrays[c] = a.copy() if root.size > a.size else a
    return pd.DataFrame(arrays, index=std.index, copy=False)


def _load_info(side: Side) -> dict[str, Any]:
    ld = side.loaded
    return {"rows_read": ld.rows_read, "rows_loaded": len(ld.frame), "rows_rejected": len(ld.rejected),
            "encoding": ld.encoding}


def _input_info(side: Side, path) -> dict[str, Any]:
    ld = side.loaded
    return {"source": side.name, "path": str(path), "sha256": side.sha256, "encoding": ld.encoding,
            "delimiter": ld.delimiter, "sheet": ld.sheet, "columns": ld.columns, "key_column": ld.key_column,
            "rows_read": ld.rows_read, "rows_loaded": len(ld.frame), "rows_rejected": len(ld.rejected)}


def _model_from_run(db, run_id: int, comps: Sequence[Comparator] | None = None) -> Model:
    """The cross-registry model stored with run ``run_id``; ConfigError when it was trained with
    other comparators or levels than ``comps`` (a report written by an older version)."""
    row = db.execute("SELECT model_json FROM runs WHERE run_id = ? AND status = 'complete'", (run_id,)).fetchone()
    if not row or not row[0]:
        raise ReportError("report.unknown_run", run=run_id)
    data = json.loads(row[0])
    model = Model.from_json(data["cross"] if "cross" in data else data)
    if comps is not None:
        try:
            model.check_compatible(comps)
        except ValueError:
            raise ConfigError("match.model_incompatible", run=run_id) from None
    return model


# ---------------------------------------------------------------------------------------------
def within_decisions(side: Side, lk: Linkage | None, opts: MatchOptions, db=None):
    """Decisions on one file's own pairs (duplicates): thresholds, then reviewers' decisions."""
    if lk is None or lk.li.size == 0:
        return np.zeros(0, np.int8), np.zeros(0, object), np.zeros(0, np.int8)
    prob = lk.scores.probability
    decision = threshold_decisions(prob, opts.match_threshold, opts.review_threshold)
    decided_by = repeated("model", len(decision))
    stale = np.zeros(len(decision), np.int8)
    if db is None:
        return decision, decided_by, stale
    from reconcile.review.ledger import apply_decisions, decided_pairs, ensure_ledger

    ensure_ledger(db)
    sp = f"{side.name}-{side.name}"
    cur = decided_pairs(db)
    if cur.empty or not (cur["source_pair"] == sp).any():
        return decision, decided_by, stale
    keys = side.keys
    keep = np.nonzero(decision >= REVIEW)[0]
    links = pd.DataFrame({
        "source_pair": sp, "origin_key": keys[lk.li[keep]], "dest_key": keys[lk.ri[keep]],
        "match_probability": prob[keep], "match_weight": lk.scores.weight[keep],
        "decision": [DECISION_NAMES[int(x)] for x in decision[keep]], "evidence_json": None,
    })
    fps = {(side.name, k): fp for k, fp in zip(keys.tolist(), side.fingerprints.tolist())}
    applied = apply_decisions(db, links, fps)
    pos = {}
    for k, (a, b) in enumerate(zip(keys[lk.li].tolist(), keys[lk.ri].tolist())):
        pos[(a, b)] = k
        pos[(b, a)] = k
    code = {"match": MATCH, "review": REVIEW, "non_match": NONE}
    for row in applied[(applied["decided_by"] == "review") & (applied["source_pair"] == sp)].itertuples():
        k = pos.get((row.origin_key, row.dest_key))
        if k is None:
            continue   # decided pair the blocking did not propose this time: nothing to bind here
        decision[k] = code.get(row.decision, REVIEW)
        decided_by[k] = "review"
        stale[k] = int(row.stale or 0)
    return decision, decided_by, stale


def within_clusters(side: Side, lk: Linkage | None, decision: np.ndarray) -> tuple[np.ndarray, list]:
    """Person label per record of one file from its within-file match edges (guarded)."""
    n = len(side.std)
    if lk is None or lk.li.size == 0:
        return np.arange(n), []
    is_match = decision == MATCH
    prob = np.where(np.isnan(lk.scores.probability), 1.0, lk.scores.probability)
    ids = np.where(side.std["id_status"].isin(USABLE_ID_STATUSES), side.std["id_number"], "").astype(object)
    res = guarded_clusters(n, lk.li[is_match], lk.ri[is_match], prob[is_match], ids)
    return res.labels, res.refused


def one_person_scores(origin_std: pd.DataFrame, cross: Linkage, right_person: np.ndarray, n_right: int,
                      review_threshold: float) -> None:
    """Turn the cross pairs' pairwise probabilities into one-person posteriors, in place
    (reconcile.decide.one_person_adjustment): the pairs at or above the review threshold compete
    for their origin record; the rest count as its rivals. Idempotent per linkage."""
    sc = cross.scores
    if sc.one_person is not None:
        return
    li, ri = cross.li, cross.ri
    prior = cross.model.pair_prior_weights(strata_values(cross.model, origin_std, li))
    eligible = sc.probability >= review_threshold
    adj = one_person_adjustment(li, ri, sc.weight, prior, right_person, len(origin_std), n_right, eligible,
                                rest_sum=getattr(cross, "rest_odds", None))
    sc.one_person = adj
    sc.weight = sc.weight + adj
    sc.probability = 1.0 / (1.0 + np.exp2(-np.clip(sc.weight, -200, 200)))


def assemble(origin: Side, dest: Side, cross: Linkage, within: dict[str, Linkage | None],
             comps: Sequence[Comparator], opts: MatchOptions, db=None,
             id_codes: np.ndarray | None = None) -> dict[str, Any]:
    """Decisions, outcomes, metrics and the report tables from the scored pairs; ``id_codes``: the
    codes of both registries' ``id_clean`` (origin's rows first), when blocking made them."""
    o_keys, d_keys = origin.keys, dest.keys
    nO, nD = len(o_keys), len(d_keys)
    prob = cross.scores.probability
    li, ri = cross.li, cross.ri

    wdec = {sd.name: within_decisions(sd, within[sd.name], opts, db) for sd in (origin, dest)}
    o_person, o_refused = within_clusters(origin, within["origin"], wdec["origin"][0])
    d_person, d_refused = within_clusters(dest, within["dest"], wdec["dest"][0])

    # For one-to-one, two records of one file count as one person already when they are linked at
    # review level (not only at match level): if both also match the same record of the other
    # file strongly, that triangle settles it, and they are reported as duplicates below.
    o_rv = _review_level_labels(origin, within["origin"], wdec["origin"][0], o_person)
    d_rv = _review_level_labels(dest, within["dest"], wdec["dest"][0], d_person)
    one_person_scores(origin.std, cross, d_rv, nD, opts.review_threshold)
    prob = cross.scores.probability

    decision = threshold_decisions(prob, opts.match_threshold, opts.review_threshold)
    decided_by = repeated("model", len(decision))
    stale = np.zeros(len(decision), dtype=np.int8)
    stale_evidence: dict[int, str] = {}
    if db is not None:
        cross, decision, decided_by, stale, stale_evidence = apply_reviews(
            db, origin, dest, cross, decision, comps, opts)
        prob, li, ri = cross.scores.probability, cross.li, cross.ri
    reviewed = decided_by == "review"
    decision, demoted = one_to_one(li, ri, prob, decision, o_rv, d_rv, weight=cross.scores.weight,
                                   fixed=reviewed)
    o_person, promoted_o = _close_triangles(li, ri, decision, o_person, within["origin"], wdec["origin"][0])
    d_person, promoted_d = _close_triangles(ri, li, decision, d_person, within["dest"], wdec["dest"][0])

    is_match = decision == MATCH
    # best candidate per record (any scored pair), for untraceable / unregistered
    best_d_for_o = _best(li, ri, prob, nO)
    best_o_for_d = _best(ri, li, prob, nD)

    o_matched = np.zeros(nO, bool)
    o_matched[li[is_match]] = True
    d_matched = np.zeros(nD, bool)
    d_matched[ri[is_match]] = True

    flow = origin.std["flow_status"].to_numpy(object)
    has_flow = bool((flow != "").any())
    out_migrant = (flow == "out") if has_flow else np.ones(nO, bool)
    resident = flow == "resident"

    m_li, m_ri, m_p = li[is_match], ri[is_match], prob[is_match]
    traced_mask = out_migrant[m_li] | (~resident[m_li] & ~out_migrant[m_li])
    traced = pd.DataFrame({"origin_key": o_keys[m_li[traced_mask]], "dest_key": d_keys[m_ri[traced_mask]],
                           "match_probability": m_p[traced_mask]})
    crd_mask = resident[m_li]
    cross_dups = pd.DataFrame({"origin_key": o_keys[m_li[crd_mask]], "dest_key": d_keys[m_ri[crd_mask]],
                               "match_probability": m_p[crd_mask]})

    untraceable_o = out_migrant & ~o_matched
    unt_idx = np.nonzero(untraceable_o)[0]
    bj, bp = best_d_for_o
    untraceable = pd.DataFrame({
        "origin_key": o_keys[unt_idx],
        "best_dest_key": [d_keys[bj[i]] if bj[i] >= 0 else None for i in unt_idx],
        "best_probability": [float(bp[i]) if bj[i] >= 0 else None for i in unt_idx],
    })

    origin_area = set(origin.std["hukou_region"][origin.std["hukou_region"] != ""].unique())
    if not origin_area:
        origin_area = set(_current_codes(origin.std["id_region"])[origin.std["id_region"].to_numpy(object) != ""].tolist())
    d_region = dest.std["hukou_region"].to_numpy(object)
    d_region_eff = np.where(d_region != "", d_region, _current_codes(dest.std["id_region"]))
    in_area = pd.Series(d_region_eff, dtype=object).isin(origin_area).to_numpy() if nD else np.zeros(0, bool)
    unregistered_d = in_area & ~d_matched
    unr_idx = np.nonzero(unregistered_d)[0]
    bi, bpd = best_o_for_d
    unregistered = pd.DataFrame({
        "dest_key": d_keys[unr_idx],
        "hukou_region": d_region_eff[unr_idx],
        "best_origin_key": [o_keys[bi[j]] if bi[j] >= 0 else None for j in unr_idx],
        "best_probability": [float(bpd[j]) if bi[j] >= 0 else None for j in unr_idx],
    })

    # Persons over both files: within-file clusters + cross matches. Records that share an ID but
    # are not matched (the model says different people, or is unsure) are 重号 to check.
    same_person = decision == MATCH
    (oa, ob), (da, db) = label_edges(o_person), label_edges(d_person, offset=nO)
    person_of = component_labels(nO + nD, np.concatenate([li[same_person], oa, da]),
                                 np.concatenate([ri[same_person] + nO, ob, db]))
    id_conflicts = _id_conflicts(origin, dest, person_of, id_codes)

    dup_rows = []
    for side, labels in ((origin, o_person), (dest, d_person)):
        dup_rows.append(_duplicate_rows(side, labels))
    duplicates = pd.concat(dup_rows, ignore_index=True) if dup_rows else pd.DataFrame()

    # links: cross pairs at or above review + within-file pairs at or above review
    larr = _arrays(origin.std, comps)
    darr = _arrays(dest.std, comps)
    # built and written chunk by chunk too: their evidence JSON (about 2 KB a pair in memory) was
    # the outcomes' largest allocation (1,000,000 persons: 377,000 links)
    keep = np.nonzero(decision >= REVIEW)[0]
    link_parts = _link_parts("origin-dest", o_keys, d_keys, cross, keep, (decision, decided_by, stale), comps,
                             larr, darr, stale_evidence)
    for side, lk, arr in ((origin, within["origin"], larr), (dest, within["dest"], darr)):
        if lk is None or lk.li.size == 0:
            continue
        wd = wdec[side.name][0]
        link_parts += _link_parts(f"{side.name}-{side.name}", side.keys, side.keys, lk, np.nonzero(wd >= REVIEW)[0],
                                  wdec[side.name], comps, arr, arr)
    links = ChunkedFrame(link_parts, table="links")

    # built and written chunk by chunk: whole, with its raw JSON, it is the run's largest table
    records = ChunkedFrame([part for side in (origin, dest) for part in _record_parts(side)])
    rejected = pd.concat([_rejected_rows(origin), _rejected_rows(dest)], ignore_index=True)
    blocking = pd.DataFrame([
        {"pass_name": s.name, "rule": s.description, "pairs": s.pairs, "new_pairs": s.new_pairs,
         "skipped_blocks": s.skipped_blocks, "skipped_records": s.skipped_records}
        for s in cross.candidates.stats
    ])
    warn_msgs = [w for s in cross.candidates.stats for w in s.warnings]
    for side, refused in ((origin, o_refused), (dest, d_refused)):
        keys = side.keys
        for a, b, reason in refused:
            warn_msgs.append(f"{side.name}: not merged {keys[a]} + {keys[b]}: {reason}")
    warnings = pd.DataFrame({"stage": "block", "message": warn_msgs}) if warn_msgs else pd.DataFrame(columns=["stage", "message"])

    n_dup_clusters = int(duplicates["cluster_id"].nunique()) if len(duplicates) else 0
    recall = blocking_recall_estimate(cross.candidates.passes[is_match])
    summary = {
        "origin_records": nO, "dest_records": nD,
        "origin_rejected": len(origin.loaded.rejected), "dest_rejected": len(dest.loaded.rejected),
        "candidate_pairs": int(getattr(cross, "total_pairs", li.size)),   # Spark keeps only reported pairs
        "links_match": int(is_match.sum()), "links_review": int((decision == REVIEW).sum()),
        "traced": len(traced), "untraceable": len(untraceable),
        "cross_region_duplicates": len(cross_dups), "unregistered": len(unregistered),
        "id_conflict_records": len(id_conflicts),
        "id_conflict_numbers": int(id_conflicts["id_number"].nunique()) if len(id_conflicts) else 0,
        "duplicate_clusters": n_dup_clusters,
        "duplicate_clusters_origin": int(duplicates[duplicates.source == "origin"]["cluster_id"].nunique()) if len(duplicates) else 0,
        "duplicate_clusters_dest": int(duplicates[duplicates.source == "dest"]["cluster_id"].nunique()) if len(duplicates) else 0,
        "demoted_one_to_one": int(demoted.sum()),
        "blocking_recall_estimate": recall,
        "out_migrants": int(out_migrant.sum()), "flow_status_column": has_flow,
    }
    # per record, what the outcomes hold of it (for the metrics per reporting unit)
    traced_o, crd_o = np.zeros(nO, bool), np.zeros(nO, bool)
    traced_o[m_li[traced_mask]] = True
    crd_o[m_li[crd_mask]] = True
    # (the origin's records _duplicate_rows lists: those of a cluster of two or more)
    in_cluster_o = np.bincount(o_person, minlength=nO)[o_person] >= 2 if nO else np.zeros(0, bool)
    metrics = _metrics(summary, origin, dest, {"traced": traced_o, "untraceable": untraceable_o,
                                               "cross_region_duplicates": crd_o, "in_duplicate_cluster": in_cluster_o},
                       unregistered_d)
    tables = {
        "records": records, "rejected_rows": rejected, "links": links, "traced": traced,
        "untraceable": untraceable, "cross_region_duplicates": cross_dups, "unregistered": unregistered,
        "id_conflicts": id_conflicts, "duplicates": duplicates, "blocking": blocking, "metrics": metrics,
        "warnings": warnings,
    }
    # stable person IDs across monthly runs (reconcile.persons), written in the run's transaction
    from reconcile.persons import person_writer

    keyed = pd.DataFrame({"source": [origin.name] * nO + [dest.name] * nD,
                          "record_key": np.concatenate([origin.keys, dest.keys]),
                          "fingerprint": np.concatenate([origin.fingerprints, dest.fingerprints])})
    writer = person_writer(keyed, person_of)
    return {"summary": summary, "tables": tables, "extra_writer": writer}


# How many decided pairs a review-based m estimate must have before it outweighs EM's: with 200
# decided matches, reviews and EM count equally.
REVIEW_PSEUDO_COUNT = 200.0


def learn_from_reviews(db, origin: Side, dest: Side, cross: Linkage, comps: Sequence[Comparator],
                       tf: TermFrequencies) -> int:
    """Re-estimate m from reviewers' decided matches (blended with EM's m by REVIEW_PSEUDO_COUNT)
    and rescore the candidate pairs. Returns how many decided matches were used."""
    from reconcile.compare import column_arrays, compare_pairs
    from reconcile.review.ledger import decided_pairs, ensure_ledger
    from reconcile.scoring import score

    ensure_ledger(db)
    dec = decided_pairs(db)
    if dec.empty:
        return 0
    dec = dec[(dec["source_pair"] == "origin-dest") & (dec["decision"] == "match")]
    o_index = {k: i for i, k in enumerate(origin.keys.tolist())}
    d_index = {k: i for i, k in enumerate(dest.keys.tolist())}
    pairs = [(o_index[o], d_index[d]) for o, d in zip(dec["origin_key"].astype(str), dec["dest_key"].astype(str))
             if o in o_index and d in d_index]
    if not pairs:
        return 0
    ni = np.array([p[0] for p in pairs], np.int64)
    nj = np.array([p[1] for p in pairs], np.int64)
    lv = compare_pairs(column_arrays(origin.std, comps), column_arrays(dest.std, comps), ni, nj, comps)
    for f, params in enumerate(cross.model.fields):
        col = lv[:, f]
        col = col[col >= 0]
        k = len(params.levels)
        counts = np.bincount(col.astype(np.int64), minlength=k).astype(float)
        em = np.asarray(params.m, float)
        m = (counts + REVIEW_PSEUDO_COUNT * em) / (counts.sum() + REVIEW_PSEUDO_COUNT)
        params.m = [float(x) for x in m / m.sum()]
    cross.model.trained_on["learned_from_reviews"] = len(pairs)
    tf_values = {fld: origin.std[col].astype(str).to_numpy(object)[cross.li]
                 for fld, col in TF_FIELDS.items() if col in origin.std.columns}
    cross.scores = score(cross.levels, cross.model, tf, tf_values, strata_values(cross.model, origin.std, cross.li))
    return len(pairs)


def apply_reviews(db, origin: Side, dest: Side, cross: Linkage, decision: np.ndarray,
                  comps: Sequence[Comparator], opts: MatchOptions):
    """Reviewers' decisions bind: decided match -> MATCH, non_match -> never matches, unsure or
    stale (a record changed since) -> REVIEW. Decided pairs the blocking did not propose are
    compared and scored, then added. Returns the (possibly extended) linkage and arrays."""
    from reconcile.compare import column_arrays, compare_pairs
    from reconcile.review.ledger import apply_decisions, decided_pairs, ensure_ledger
    from reconcile.scoring import score, strata_values

    ensure_ledger(db)
    n = len(decision)
    decided_by = repeated("model", n)
    stale = np.zeros(n, dtype=np.int8)
    if decided_pairs(db).empty:
        return cross, decision, decided_by, stale, {}
    o_keys, d_keys = origin.keys, dest.keys
    li, ri = cross.li, cross.ri
    keep = np.nonzero(decision >= REVIEW)[0]
    links = pd.DataFrame({
        "source_pair": "origin-dest", "origin_key": o_keys[li[keep]], "dest_key": d_keys[ri[keep]],
        "match_probability": cross.scores.probability[keep], "match_weight": cross.scores.weight[keep],
        "decision": [DECISION_NAMES[int(x)] for x in decision[keep]], "evidence_json": None, "_k": keep,
    })
    fps = {}
    for side in (origin, dest):
        for k, fp in zip(side.keys.tolist(), side.fingerprints.tolist()):
            fps[(side.name, k)] = fp
    # every other candidate pair too, so a reviewer's decision on a low-scoring pair is honoured
    applied = apply_decisions(db, links, fps)
    applied = applied[applied["source_pair"] == "origin-dest"]
    reviewed = applied[applied["decided_by"] == "review"]
    pos = {(o, d): k for k, (o, d) in enumerate(zip(o_keys[li].tolist(), d_keys[ri].tolist()))}
    o_index = {k: i for i, k in enumerate(o_keys.tolist())}
    d_index = {k: i for i, k in enumerate(d_keys.tolist())}
    missing = [(o_index[o], d_index[d]) for o, d in zip(reviewed.origin_key, reviewed.dest_key)
               if (o, d) not in pos and o in o_index and d in d_index]
    if missing:
        ni = np.array([m[0] for m in missing], np.int64)
        nj = np.array([m[1] for m in missing], np.int64)
        lv = compare_pairs(column_arrays(origin.std, comps), column_arrays(dest.std, comps), ni, nj, comps)
        sc = score(lv, cross.model, strata_values=strata_values(cross.model, origin.std, ni))
        cand = cross.candidates
        cand.left = np.concatenate([cand.left, ni])
        cand.right = np.concatenate([cand.right, nj])
        cand.passes = np.concatenate([cand.passes, np.zeros(len(ni), cand.passes.dtype)])
        cross.levels = np.concatenate([cross.levels, lv])
        for attr in ("weight", "probability", "field_weights", "tf_adjust"):
            setattr(cross.scores, attr, np.concatenate([getattr(cross.scores, attr), getattr(sc, attr)]))
        if cross.scores.one_person is not None:   # decided pairs the blocking missed: pairwise
            cross.scores.one_person = np.concatenate([cross.scores.one_person, np.zeros(len(ni))])
        decision = np.concatenate([decision, np.full(len(ni), NONE, decision.dtype)])
        decided_by = np.concatenate([decided_by, np.array(["model"] * len(ni), dtype=object)])
        stale = np.concatenate([stale, np.zeros(len(ni), np.int8)])
        for k, (i, j) in enumerate(missing):
            pos[(o_keys[i], d_keys[j])] = n + k
    code = {"match": MATCH, "review": REVIEW, "non_match": NONE}
    stale_evidence: dict[int, str] = {}
    for row in reviewed.itertuples():
        k = pos.get((row.origin_key, row.dest_key))
        if k is None:
            continue
        decision[k] = code.get(row.decision, REVIEW)
        decided_by[k] = "review"
        stale[k] = int(row.stale or 0)
        if row.stale and row.evidence_json:
            # keep the model's evidence and add what the ledger says changed
            stale_evidence[k] = row.evidence_json
    if stale_evidence:
        from reconcile.compare import column_arrays as ca

        larr, darr = ca(origin.std, comps), ca(dest.std, comps)
        for k, extra in list(stale_evidence.items()):
            base = json.loads(evidence_json(k, cross, comps, larr, darr))
            try:
                base.update({kk: vv for kk, vv in json.loads(extra).items() if kk == "stale"})
            except (TypeError, ValueError):
                pass
            stale_evidence[k] = json.dumps(base, ensure_ascii=False)
    return cross, decision, decided_by, stale, stale_evidence


def _review_level_labels(side: Side, lk: Linkage | None, wdec: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Person labels where within-file pairs at review level or above also join records."""
    if lk is None or lk.li.size == 0:
        return person
    rv = wdec >= REVIEW
    if not rv.any():
        return person
    a, b = label_edges(person)
    return component_labels(len(person), np.concatenate([a, lk.li[rv]]), np.concatenate([b, lk.ri[rv]]))


def _close_triangles(mine: np.ndarray, other: np.ndarray, decision: np.ndarray, person: np.ndarray,
                     lk: Linkage | None, wdec: np.ndarray) -> tuple[np.ndarray, int]:
    """Records of one file that ended up matched to the same record of the other file, and are
    linked to each other at review level, are duplicates: promote that within-file link to MATCH
    and merge their person labels. Returns the new labels and how many links were promoted."""
    if lk is None or lk.li.size == 0:
        return person, 0
    m = decision == MATCH
    o, mi = other[m], mine[m]
    # only the records of the other file matched more than once (a loop over every match took
    # 1.1 s at 1,000,000 persons)
    if o.size:
        multi = np.bincount(o)[o] > 1
        o, mi = o[multi], mi[multi]
    partners: dict[int, list[int]] = {}
    for a, b in zip(o.tolist(), mi.tolist()):
        partners.setdefault(a, []).append(b)
    groups = [v for v in partners.values() if len(v) > 1]
    if not groups:
        return person, 0
    # index only the within-file pairs whose two records are both in some group
    in_group = np.zeros(len(person), bool)
    in_group[[x for g in groups for x in g]] = True
    ks = np.flatnonzero(in_group[lk.li] & in_group[lk.ri])
    pos = {(a, b): k for k, a, b in zip(ks.tolist(), lk.li[ks].tolist(), lk.ri[ks].tolist())}
    joins: list[tuple[int, int]] = []
    for g in groups:
        for x in g:
            for y in g:
                if x < y:
                    k = pos.get((x, y))
                    if k is not None and wdec[k] == REVIEW:
                        wdec[k] = MATCH
                        joins.append((x, y))
    a, b = label_edges(person)
    extra = np.asarray(joins, dtype=np.int64).reshape(-1, 2)
    return component_labels(len(person), np.concatenate([a, extra[:, 0]]), np.concatenate([b, extra[:, 1]])), len(joins)


def _current_codes(codes: pd.Series) -> np.ndarray:
    """The current region code of every row's code ('' stays ''), once per distinct code."""
    from reconcile.divisions import current_code
    from reconcile.interning import per_distinct_value

    return per_distinct_value(codes.to_numpy(object), lambda c: current_code(c) if c else "")


def _arrays(std: pd.DataFrame, comps: Sequence[Comparator]) -> dict[str, np.ndarray]:
    from reconcile.compare import column_arrays

    return column_arrays(std, comps)


def _best(a: np.ndarray, b: np.ndarray, prob: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each record 0..n-1 on side a: its best partner on side b (-1 when none) and the probability."""
    best = np.full(n, -1, dtype=np.int64)
    bestp = np.zeros(n)
    if a.size == 0:
        return best, bestp
    if not np.isnan(prob).any():
        # each record's highest probability, then its first pair with it (in pair order, as the
        # stable sort below picks): no sort of every pair (4.4 M at 1,000,000 persons: 1.5 s)
        top = np.full(n, -np.inf)
        np.maximum.at(top, a, prob)
        hit = np.flatnonzero(prob == top[a])
        rec, first = np.unique(a[hit], return_index=True)
        sel = hit[first]
        best[rec] = b[sel]
        bestp[rec] = prob[sel]
        return best, bestp
    order = np.lexsort((-prob, a))
    a_s = a[order]
    first = np.ones(a_s.size, bool)
    first[1:] = a_s[1:] != a_s[:-1]
    sel = order[first]
    best[a[sel]] = b[sel]
    bestp[a[sel]] = prob[sel]
    return best, bestp


def _id_conflicts(origin: Side, dest: Side, person_of: np.ndarray, id_codes: np.ndarray | None = None) -> pd.DataFrame:
    """Records sharing a usable ID number that the model places in different persons (重号);
    ``person_of``: a person label per record of both files (origin first); ``id_codes``: the
    codes of both files' ``id_clean`` (origin first; a usable number is its id_clean), when known."""
    nO = len(origin.std)
    frames = []
    for side, off in ((origin, 0), (dest, nO)):
        s = side.std
        usable = s["id_status"].isin(USABLE_ID_STATUSES).to_numpy()
        idx = np.nonzero(usable)[0]
        frames.append(pd.DataFrame({"id_number": s["id_number"].to_numpy(object)[idx], "source": side.name,
                                    "record_key": side.keys[idx], "node": idx + off}))
    allr = pd.concat(frames, ignore_index=True)
    if allr.empty:
        return pd.DataFrame(columns=["id_number", "source", "record_key", "conflict_group"])
    # numbers held by more than one record, counted over one factorisation: blocking's codes of
    # id_clean when given (2.08 s with duplicated(keep=False) on the 2.9 M numbers of a
    # million-person run, 1.76 s factorised here)
    if id_codes is not None:
        codes = id_codes[allr["node"].to_numpy(np.int64)]
    else:
        codes = pd.factorize(allr["id_number"].to_numpy(object))[0]
    multi = allr[np.bincount(codes)[codes] > 1].copy()
    if multi.empty:
        return pd.DataFrame(columns=["id_number", "source", "record_key", "conflict_group"])
    multi["person"] = person_of[multi["node"].to_numpy(np.int64)]
    persons = multi.groupby("id_number")["person"].nunique()
    conflict_ids = persons[persons > 1].index
    out = multi[multi["id_number"].isin(conflict_ids)].copy()
    out["conflict_group"] = pd.factorize(out["id_number"])[0] + 1
    return out[["id_number", "source", "record_key", "conflict_group"]].reset_index(drop=True)


_UNIT_LEVEL_SCOPES = ("same_unit", "cross_unit", "cross_county", "cross_city", "cross_province")


def cluster_scope(regions: Sequence[str], units: Sequence[str]) -> str:
    """Administrative scope of a duplicate cluster from its records' hukou regions and units."""
    regs = {r for r in regions if r}
    if len({r[:2] for r in regs}) > 1:
        return "cross_province"
    if len({r[:4] for r in regs}) > 1:
        return "cross_city"
    if len(regs) > 1:
        return "cross_county"
    us = {u for u in units if u}
    return "cross_unit" if len(us) > 1 else "same_unit"


def _duplicate_rows(side: Side, labels: np.ndarray) -> pd.DataFrame:
    """Clusters of size >= 2 within one file, with a suggested survivor and the reason.

    Rows come cluster by cluster (ascending label), each cluster's records best first: usable ID,
    then most filled fields, then latest registration, ties in file order. The survivor is the
    first; vectorised (one lexsort and a few group counts), no per-cluster Python.
    """
    cols = ["source", "cluster_id", "record_key", "survivor", "scope", "reason"]
    s = side.std
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(labels)) if labels.size else np.zeros(0, np.int64)
    idx = np.nonzero(counts[labels] >= 2)[0] if labels.size else np.zeros(0, np.int64)
    if idx.size == 0:
        return pd.DataFrame(columns=cols)
    lab = labels[idx]
    usable = s["id_status"].isin(USABLE_ID_STATUSES).to_numpy()[idx]
    if "k_filled" in s:   # counted before the addresses were let go (slim_std)
        filled = s["k_filled"].to_numpy(np.int64)[idx]
    else:
        filled = np.zeros(idx.size, np.int64)
        for c in COMPLETENESS_FIELDS:
            filled += (s[c].to_numpy(object)[idx] != "")
    if "registered_at" in s:
        recent = pd.factorize(s["registered_at"].astype(str).to_numpy(object)[idx], sort=True)[0]
    else:
        recent = np.zeros(idx.size, np.int64)
    # primary key last: label ascending, then rank descending, then file position ascending
    order = np.lexsort((idx, -recent, -filled, -usable.astype(np.int64), lab))
    idx, lab, usable = idx[order], lab[order], usable[order]
    first = np.ones(idx.size, bool)
    first[1:] = lab[1:] != lab[:-1]
    start = np.flatnonzero(first)
    group = np.cumsum(first) - 1                     # 0..clusters-1 per row
    n_usable = np.add.reduceat(usable.astype(np.int64), start)
    reason_g = np.where(usable[start] & (n_usable == 1), "valid_id", "most_complete")
    # scope: distinct non-empty regions (at province, city, county level) and units per cluster
    reg = s["hukou_region"].astype(str).to_numpy(object)[idx]
    unit = s["unit"].astype(str).to_numpy(object)[idx]

    def distinct(values: np.ndarray, present: np.ndarray) -> np.ndarray:
        codes = pd.factorize(values)[0]
        pairs = np.unique(np.stack([group[present], codes[present]]), axis=1) if present.any() else np.zeros((2, 0), np.int64)
        return np.bincount(pairs[0], minlength=start.size)

    has_reg = reg != ""
    n_prov = distinct(np.array([r[:2] for r in reg], dtype=object), has_reg)
    n_city = distinct(np.array([r[:4] for r in reg], dtype=object), has_reg)
    n_cnty = distinct(reg, has_reg)
    n_unit = distinct(unit, unit != "")
    scope_g = np.select([n_prov > 1, n_city > 1, n_cnty > 1, n_unit > 1],
                        ["cross_province", "cross_city", "cross_county", "cross_unit"], "same_unit")
    prefix = side.name[0].upper()
    cid_g = np.array([f"{prefix}{int(x) + 1}" for x in lab[start].tolist()], dtype=object)
    return pd.DataFrame({
        "source": side.name, "cluster_id": cid_g[group], "record_key": s["record_key"].to_numpy(object)[idx],
        "survivor": first.astype(int), "scope": scope_g.astype(object)[group], "reason": reason_g.astype(object)[group],
    }, columns=cols)


# records per chunk of the `records` table, pairs per chunk of `links` (reconcile.report.ChunkedFrame)
RECORD_CHUNK = 100_000
LINK_CHUNK = 50_000


def _link_parts(source_pair: str, left_keys: np.ndarray, right_keys: np.ndarray, lk: Linkage, kk: np.ndarray,
                decided: tuple[np.ndarray, np.ndarray, np.ndarray], comps: Sequence[Comparator],
                larr: dict[str, np.ndarray], rarr: dict[str, np.ndarray],
                stale_evidence: Mapping[int, str] | None = None) -> list:
    """Builders of the `links` rows of linkage ``lk``'s pairs ``kk``, LINK_CHUNK pairs each;
    ``decided``: (decision, decided_by, stale) per pair of the linkage."""
    # only the reported pairs are held for the rows, which are built while the report is written:
    # not every candidate pair's levels and scores (at 1,000,000 persons 0.8 GB of 10.7 M pairs)
    lk = lk.pairs_only(kk)
    decided = tuple(a[kk] for a in decided)
    if stale_evidence:
        at = {k: n for n, k in enumerate(kk.tolist())}
        stale_evidence = {at[k]: ev for k, ev in stale_evidence.items() if k in at}
    kk = np.arange(kk.size)

    def rows(ks: np.ndarray) -> pd.DataFrame:
        decision, decided_by, stale = decided
        evidence = evidence_jsons(ks, lk, comps, larr, rarr)
        if stale_evidence:
            evidence = [stale_evidence.get(k) or ev for k, ev in zip(ks.tolist(), evidence)]
        return pd.DataFrame({
            "source_pair": source_pair,
            "origin_key": left_keys[lk.li[ks]],
            "dest_key": right_keys[lk.ri[ks]],
            "match_probability": lk.scores.probability[ks],
            "match_weight": lk.scores.weight[ks],
            "decision": [DECISION_NAMES[int(x)] for x in decision[ks]],
            "decided_by": decided_by[ks],
            "stale": stale[ks],
            "evidence_json": evidence,
        })

    return [partial(rows, kk[lo:lo + LINK_CHUNK]) for lo in range(0, len(kk), LINK_CHUNK)]


def _record_builders(side: Side) -> list:
    """Builders of the side's `records` rows, RECORD_CHUNK rows each."""
    n = len(side.std)
    return [partial(_record_rows, side, lo, min(lo + RECORD_CHUNK, n)) for lo in range(0, n, RECORD_CHUNK)]


def _record_parts(side: Side) -> list:
    """The side's `records` rows for reconcile.report.ChunkedFrame: built beforehand, or builders."""
    return [side.prepared_records] if side.prepared_records is not None else _record_builders(side)


def record_chunks(side: Side) -> Iterator[pd.DataFrame]:
    """The side's `records` rows, built RECORD_CHUNK at a time."""
    return (build() for build in _record_builders(side))


def write_side_records(side: Side, path: Path) -> CopiedRows:
    """The side's `records` rows built into a scratch SQLite file at ``path`` (the loading worker
    does this for its registry while this process links: reconcile.parallel)."""
    return write_copied_rows(path, "records", record_chunks(side))


_RECORD_FLAGS = frozenset({"name_traditional", "name_minority", "sex_conflict", "birth_conflict"})


def _record_rows(side: Side, lo: int = 0, hi: int | None = None) -> pd.DataFrame:
    """Rows ``lo:hi`` of one side's `records` table: standardised fields, line, fingerprint, raw JSON."""
    hi = len(side.std) if hi is None else hi
    std = side.std
    # the columns' slices as they are (views, not copied: `std[cols].reset_index()` copied every
    # column twice, 2 s of the loading worker's 1.86 M records), the flags as integers
    data: dict[str, Any] = {"source": np.full(hi - lo, side.name, dtype=object)}
    for c in STANDARD_COLUMNS:
        if c in std.columns:
            arr = std[c].to_numpy()[lo:hi]
            data[c] = arr.astype(bool).astype(int) if c in _RECORD_FLAGS else arr
    df = pd.DataFrame(data, copy=False)
    df["line"] = side.loaded.frame["line"].to_numpy()[lo:hi] if "line" in side.loaded.frame else None
    df["fingerprint"] = side.fingerprints[lo:hi]
    raw = side.loaded.raw.iloc[lo:hi]
    if len(raw):
        # pandas writes JSON lines in C: one object per row, original headers, text values
        lines = raw.reset_index(drop=True).to_json(orient="records", lines=True, force_ascii=False).rstrip("\n").split("\n")
        df["raw_json"] = lines[: len(df)] if len(lines) >= len(df) else lines + [None] * (len(df) - len(lines))
    else:
        df["raw_json"] = None
    return df


def _rejected_rows(side: Side) -> pd.DataFrame:
    return pd.DataFrame([
        {"source": side.name, "line": r.line, "reason_key": r.reason_key, "reason": r.reason, "raw": r.raw}
        for r in side.loaded.rejected
    ], columns=["source", "line", "reason_key", "reason", "raw"])


def blocking_recall_estimate(pass_masks: np.ndarray) -> float | None:
    """Estimated share of true matches the blocking found, from how many passes found each match.

    Capture-recapture (Chao's estimator): matches found by exactly one pass (f1) and by exactly two
    (f2) estimate how many matches every pass missed: f1^2 / (2 f2).
    """
    if pass_masks.size == 0:
        return None
    counts = np.array([bin(int(m)).count("1") for m in pass_masks])
    n = counts.size
    f1 = int((counts == 1).sum())
    f2 = int((counts == 2).sum())
    missed = f1 * f1 / (2 * f2) if f2 else f1 * (f1 - 1) / 2
    return round(n / (n + missed), 6) if n else None


def _metrics(summary, origin: Side, dest: Side, origin_marks: Mapping[str, np.ndarray],
             unregistered: np.ndarray) -> pd.DataFrame:
    """The metrics table: overall, per file, per reporting unit of the origin (``origin_marks``: per
    origin record, whether it is traced, untraceable, a cross-region duplicate, in a duplicate
    cluster) and per unit of the destination (``unregistered``: per destination record)."""
    rows = []
    for k, v in summary.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
            rows.append(("all", k, float(v)))
    nO = max(summary["origin_records"], 1)
    rows.append(("all", "untraceable_rate", summary["untraceable"] / max(summary["out_migrants"], 1)))
    rows.append(("all", "duplicate_rate", summary["cross_region_duplicates"] / nO))
    for side in (origin, dest):
        s = side.std
        n = max(len(s), 1)
        usable = s["id_status"].isin(USABLE_ID_STATUSES)
        rows.append((side.name, "records", float(len(s))))
        rows.append((side.name, "id_entry_rate", float(usable.sum()) / n))
        acc = usable & ~s["birth_conflict"].astype(bool) & ~s["sex_conflict"].astype(bool)
        rows.append((side.name, "id_accuracy", float(acc.sum()) / max(int(usable.sum()), 1)))
    # per reporting unit of the origin file (only the columns used are re-indexed, not the frame)
    s = origin.std[["record_key", "unit", "flow_status", "id_status", "birth_conflict", "sex_conflict"]].set_index("record_key")
    ou = s["unit"]
    if (ou != "").any():
        per = pd.DataFrame({"unit": ou})
        per["out"] = (s["flow_status"] == "out")
        for mark in ("untraceable", "traced", "cross_region_duplicates", "in_duplicate_cluster"):
            per[mark] = origin_marks[mark]   # (positions: a membership test of the keys hashed them all)
        per["usable"] = s["id_status"].isin(USABLE_ID_STATUSES)
        per["accurate"] = per["usable"] & ~s["birth_conflict"].astype(bool) & ~s["sex_conflict"].astype(bool)
        for unit, g in per.groupby("unit"):
            if not unit:
                continue
            scope = f"unit:{unit}"
            n = len(g)
            rows += [(scope, "records", n), (scope, "out_migrants", int(g["out"].sum())),
                     (scope, "traced", int(g["traced"].sum())), (scope, "untraceable", int(g["untraceable"].sum())),
                     (scope, "cross_region_duplicates", int(g["cross_region_duplicates"].sum())),
                     (scope, "duplicate_records", int(g["in_duplicate_cluster"].sum())),
                     (scope, "id_entry_rate", g["usable"].mean()),
                     (scope, "id_accuracy", g["accurate"].sum() / max(int(g["usable"].sum()), 1)),
                     (scope, "untraceable_rate", g["untraceable"].sum() / max(int(g["out"].sum()), 1)),
                     (scope, "duplicate_rate", g["cross_region_duplicates"].sum() / n)]
    du = dest.std["unit"].to_numpy(object)
    if (du != "").any() and unregistered.any():
        cnt = pd.Series(du[unregistered]).value_counts()
        for unit, v in cnt.items():
            if unit:
                rows.append((f"dest_unit:{unit}", "unregistered", int(v)))
    return pd.DataFrame(rows, columns=["scope", "metric", "value"])
