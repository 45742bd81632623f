"""`reconcile dedupe`: the same person recorded more than once, within one registry or across
several files pooled as one population (e.g. the monthly exports of a county's townships).

Stages: load every file -> standardise -> pool (each record remembers its file) -> block, compare
the population with itself -> score -> decide -> cluster (guarded against chaining) -> scope,
resolving level and suggested survivor per cluster -> stable person IDs -> report (the schema of
`match`, command='dedupe'). A run against a database that holds an earlier dedupe run compares
only new or changed records and reuses the rest (reconcile.incremental), unless ``full``.

The model: a single registry holds too few duplicates for EM to learn m (its sessions lock on to
namesakes and families: measured in docs/dedupe.md), so m comes from reconcile.model.DEFAULT_M
(or from ``--model RUN``), u from random pairs of this population, the prior by EM over the pair
space. Where both ID numbers encode the same birth date (sex), agreement of the birth-date (sex)
field is implied by the ID and is not counted a second time (only disagreement is): otherwise a
twin recorded under the other twin's number (重号) scores as a certain duplicate.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import reconcile
from matchers.base import MISSING, Comparator
from reconcile.arrays import repeated
from reconcile.blocking import Candidates, PassStats
from reconcile.cluster import UnionFind, guarded_clusters
from reconcile.decide import DECISION_NAMES, MATCH, NONE, REVIEW, threshold_decisions
from reconcile.errors import ConfigError, ReportError
from reconcile.fields import COMPLETENESS_FIELDS, STANDARD_COLUMNS, USABLE_ID_STATUSES
from reconcile.linkage import Linkage, Progress, _noop, evidence_jsons
from reconcile.model import PROB_FLOOR, FieldParams, Model, initial_m
from reconcile.privacy import mask_ids_in_text
from reconcile.report import RunOutput, now_iso, open_report, write_run
from reconcile.scoring import TF_FIELDS, Scores

SOURCE = "origin"                  # every dedupe record is stored as source 'origin'
SOURCE_PAIR = "origin-origin"      # ... and its pairs as within-file pairs (review ledger binds them)
# columns every later stage reads, per record (comparator columns are added from the comparators)
POP_COLUMNS = ("name", "k_birth", "hukou_region", "hukou_region_name", "unit", "id_status", "registered_at",
               "id_birth_date", "id_sex", "id_clean")
SCOPES = ("same_unit", "cross_unit", "same_county", "cross_county", "cross_city", "cross_province", "unknown")


@dataclass
class DedupeOptions:
    """Everything that changes what `dedupe` computes (stored as the run's settings_json)."""

    match_threshold: float = 0.95
    review_threshold: float = 0.30
    block_cap: int = 20_000
    u_sample: int = 150_000
    load: dict[str, Any] = field(default_factory=dict)     # read_registry kwargs for every file
    model_from_run: int | None = None
    full: bool = False              # never reuse the previous run (retrain u and the prior)
    unit_from_file: bool = False    # a record without a unit gets its file's name as unit
    strong: float = 0.999           # chain guard: links at least this probable are never cut

    def validate(self) -> None:
        if not 0 < self.review_threshold <= self.match_threshold < 1 + 1e-12:
            raise ConfigError("match.bad_thresholds", match=self.match_threshold, review=self.review_threshold)
        if self.block_cap < 1:
            raise ConfigError("dedupe.bad_block_cap", cap=self.block_cap)

    def compare_settings(self) -> dict[str, Any]:
        """Settings a reused comparison must share with this run (the rest may differ)."""
        return {"block_cap": self.block_cap, "load": self.load, "unit_from_file": self.unit_from_file}


@dataclass
class DedupeResult:
    run_id: int
    db: Path
    summary: dict[str, Any]
    timings: dict[str, float]


# ---------------------------------------------------------------------------------------------
# loading

@dataclass
class InputFile:
    """One input file as loaded."""

    label: str
    path: Path
    loaded: Any                  # reconcile.loading.LoadedRegistry
    sha256: str

    def info(self) -> dict[str, Any]:
        ld = self.loaded
        return {"source": SOURCE, "file": self.label, "path": str(self.path), "sha256": self.sha256,
                "encoding": ld.encoding, "delimiter": ld.delimiter, "sheet": ld.sheet, "columns": ld.columns,
                "key_column": ld.key_column, "rows_read": ld.rows_read, "rows_loaded": len(ld.frame),
                "rows_rejected": len(ld.rejected)}


def file_labels(paths: Sequence[str | Path]) -> list[str]:
    """A short, unique name per file (its stem; `stem#2` when two files share a stem)."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for p in paths:
        stem = Path(p).stem or Path(p).name
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}#{seen[stem]}")
    return out


def normalise_dates(values: pd.Series) -> pd.Series:
    """ISO text of a date column (registration dates), '' where it does not parse."""
    from reconcile.dates import parse_birth_date

    vals = values.astype(str)
    uniq = pd.unique(vals)
    table = {}
    for v in uniq:
        table[v] = parse_birth_date(v).iso if v else ""
    return vals.map(table).fillna("").astype(object)


def read_input(path: str | Path, label: str, load: dict[str, Any]) -> InputFile:
    from reconcile.loading import read_registry
    from reconcile.match import file_sha256

    loaded = read_registry(path, **load)
    return InputFile(label=label, path=Path(path), loaded=loaded, sha256=file_sha256(Path(path)))


def standardise_input(f: InputFile, unit_from_file: bool, qualify: bool) -> pd.DataFrame:
    """Standardised records of one file with its label, registration date and row position."""
    from reconcile.standardise import standardise

    std = standardise(f.loaded.frame).reset_index(drop=True)
    std["file"] = f.label
    reg = f.loaded.frame["registered_at"] if "registered_at" in f.loaded.frame else pd.Series("", index=f.loaded.frame.index)
    std["registered_at"] = normalise_dates(reg).to_numpy(object)
    std["_row"] = np.arange(len(std))       # position in loaded.raw (for raw_json)
    if qualify:
        std["record_key"] = f.label + ":" + std["record_key"].astype(str)
    if unit_from_file:
        std["unit"] = np.where(std["unit"].astype(str) == "", f.label, std["unit"].astype(str))
    return std


def keys_collide(files: Sequence[InputFile]) -> bool:
    """True when two files share a record key (then every key is qualified with its file)."""
    if len(files) < 2:
        return False
    seen: set[str] = set()
    for f in files:
        ks = set(f.loaded.frame["record_key"].astype(str).tolist())
        if seen & ks:
            return True
        seen |= ks
    return False


def pool(stds: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One population from the files' standardised records: derived keys, hukou filled from units."""
    from reconcile.keys import add_keys, fill_unit_hukou

    frame = pd.concat(list(stds), ignore_index=True) if len(stds) > 1 else stds[0].reset_index(drop=True)
    return add_keys(fill_unit_hukou(frame))


# ---------------------------------------------------------------------------------------------
# the population as arrays (what scoring, clustering and the report read)

@dataclass
class Population:
    """Per record (position = file order, files in the order given): keys and the columns later
    stages read, as numpy object arrays. Built from a standardised frame (full runs) or from the
    previous run's state plus the changed records (incremental runs)."""

    keys: np.ndarray
    file: np.ndarray
    line: np.ndarray
    fp64: np.ndarray                   # uint64: record fingerprint (reconcile.fingerprint, as a number)
    filled: np.ndarray                 # int8: how many COMPLETENESS_FIELDS are filled
    cols: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.keys)

    def fingerprint_hex(self, idx: np.ndarray | None = None) -> np.ndarray:
        """The fingerprints as stored in `records.fingerprint` (16 hex characters)."""
        vals = self.fp64 if idx is None else self.fp64[idx]
        return np.array([format(int(x), "016x") for x in vals.tolist()], dtype=object)


def population_columns(comps: Sequence[Comparator]) -> list[str]:
    return sorted(set(POP_COLUMNS) | {c for comp in comps for c in comp.columns})


def population_from_frame(std: pd.DataFrame, comps: Sequence[Comparator]) -> Population:
    from reconcile.fingerprint import record_fingerprints

    cols = {c: std[c].astype(str).to_numpy(object) for c in population_columns(comps)}
    filled = (std[list(COMPLETENESS_FIELDS)].astype(str) != "").sum(axis=1).to_numpy(np.int8)
    fps = record_fingerprints(std).to_numpy(object) if len(std) else np.zeros(0, object)
    fp64 = np.array([int(x, 16) for x in fps.tolist()], dtype=np.uint64)
    return Population(keys=std["record_key"].astype(str).to_numpy(object), file=std["file"].to_numpy(object),
                      line=std["line"].to_numpy(np.int64), fp64=fp64, filled=filled, cols=cols)


# ---------------------------------------------------------------------------------------------
# model and scoring

def base_model(comps: Sequence[Comparator]) -> Model:
    """m from DEFAULT_M (u and the prior are estimated per population)."""
    m = initial_m(comps)
    return Model(prior=0.0, fields=[FieldParams(c.field, c.levels, [float(x) for x in m[k]], [float(x) for x in m[k]])
                                    for k, c in enumerate(comps)],
                 trained_on={"m": "reconcile.model.DEFAULT_M"})


def model_from_run(db, run_id: int, comps: Sequence[Comparator]) -> Model:
    """The model stored with run ``run_id``: a dedupe run's model, or a match run's origin-file
    (else cross-registry) model. Used as is (no training)."""
    row = db.execute("SELECT model_json FROM runs WHERE run_id = ? AND status = 'complete'", (run_id,)).fetchone()
    if not row or not row[0]:
        raise ReportError("report.unknown_run", run=run_id)
    data = json.loads(row[0])
    if "fields" not in data:
        within = (data.get("within") or {}).get("origin")
        data = within or data.get("cross")
    model = Model.from_json(data)
    try:
        model.check_compatible(comps)
    except ValueError:
        raise ConfigError("dedupe.model_incompatible", run=run_id) from None
    return model


@dataclass
class PairFacts:
    """Per-record facts the scorer needs, computed once per population."""

    id_birth: np.ndarray     # int code of the ID's birth date (-1 none)
    id_sex: np.ndarray       # int code of the ID's sex digit (-1 none)
    tf_values: dict[str, np.ndarray]

    @classmethod
    def of(cls, pop: Population) -> "PairFacts":
        def codes(col: str) -> np.ndarray:
            vals = pop.cols[col]
            c, _ = pd.factorize(vals)
            c = c.astype(np.int64)
            c[vals == ""] = -1
            return c

        return cls(id_birth=codes("id_birth_date"), id_sex=codes("id_sex"),
                   tf_values={f: pop.cols[col] for f, col in TF_FIELDS.items() if col in pop.cols})


def tf_tables(facts: PairFacts) -> dict[str, pd.Series]:
    """Relative frequency of every value per TF field (as reconcile.scoring.TermFrequencies)."""
    out = {}
    for f, vals in facts.tf_values.items():
        s = pd.Series(vals)
        s = s[s != ""]
        out[f] = s.value_counts() / len(s) if len(s) else pd.Series(dtype=float)
    return out


def tf_record_adjust(facts: PairFacts, tables: dict[str, pd.Series], model: Model) -> dict[str, np.ndarray]:
    """Per record and TF field: log2(u_exact / frequency of its value). A pair agreeing exactly gets
    its left record's adjustment (as reconcile.scoring.score does)."""
    names = [p.field for p in model.fields]
    out = {}
    for fld, vals in facts.tf_values.items():
        if fld not in names:
            continue
        u_exact = max(model.fields[names.index(fld)].u[0], PROB_FLOOR)
        freqs = pd.Series(vals).map(tables[fld]).to_numpy(dtype=float)
        freqs = np.where(np.isnan(freqs), u_exact, np.maximum(freqs, PROB_FLOOR))
        out[fld] = np.log2(u_exact / freqs)
    return out


def implied_fields(comps: Sequence[Comparator]) -> dict[str, int]:
    names = [c.field for c in comps]
    return {f: names.index(f) for f in ("birth_date", "sex") if f in names}


def score_pairs(levels: np.ndarray, li: np.ndarray, ri: np.ndarray, model: Model, facts: PairFacts,
                tf_adjust: dict[str, np.ndarray], comps: Sequence[Comparator]) -> Scores:
    """Fellegi-Sunter weights of pairs (li, ri) with term-frequency adjustment, and without counting
    birth date / sex agreement a second time where both ID numbers already encode them."""
    n, nf = levels.shape
    fw = np.zeros((n, nf))
    for f, params in enumerate(model.fields):
        w = params.weights()
        col = levels[:, f].astype(np.int64)
        fw[:, f] = np.where(col == MISSING, 0.0, w[np.maximum(col, 0)])
    names = [p.field for p in model.fields]
    tf_adj = np.zeros((n, len(TF_FIELDS)))
    for t, fld in enumerate(TF_FIELDS):
        if fld not in tf_adjust or fld not in names:
            continue
        f = names.index(fld)
        exact = levels[:, f] == 0
        if exact.any():
            adj = tf_adjust[fld][li[exact]]
            tf_adj[exact, t] = adj
            fw[exact, f] += adj
    imp = implied_fields(comps)
    if n and imp:
        for fld, codes in (("birth_date", facts.id_birth), ("sex", facts.id_sex)):
            if fld not in imp:
                continue
            a, b = codes[li], codes[ri]
            same = (a >= 0) & (a == b)
            f = imp[fld]
            fw[same, f] = np.minimum(fw[same, f], 0.0)
    weight = fw.sum(axis=1) + model.prior_weight
    prob = 1.0 / (1.0 + np.exp2(-np.clip(weight, -200, 200)))
    return Scores(weight=weight, probability=prob, field_weights=fw, tf_adjust=tf_adj)


IMPLIED_BIRTH, IMPLIED_SEX = 1, 2      # pair flags: both ID numbers encode the same birth date / sex


def implied_flags(li: np.ndarray, ri: np.ndarray, facts: PairFacts) -> np.ndarray:
    """Per pair: which fields' agreement the two ID numbers already imply (bits IMPLIED_*)."""
    out = np.zeros(len(li), np.uint8)
    if not len(li):
        return out
    for bit, codes in ((IMPLIED_BIRTH, facts.id_birth), (IMPLIED_SEX, facts.id_sex)):
        a, b = codes[li], codes[ri]
        out[(a >= 0) & (a == b)] |= np.uint8(bit)
    return out


def _pattern_table(model: Model, comps: Sequence[Comparator]) -> tuple[list[int], np.ndarray]:
    dims = [len(c.levels) + 1 for c in comps] + [4]
    grid = np.indices(dims).reshape(len(dims), -1)
    table = np.zeros(grid.shape[1])
    imp = implied_fields(comps)
    for f, params in enumerate(model.fields):
        w = np.concatenate([[0.0], params.weights()])            # level -1 (missing) -> 0
        wf = w[grid[f]]
        for fld, bit in (("birth_date", IMPLIED_BIRTH), ("sex", IMPLIED_SEX)):
            if imp.get(fld) == f:
                wf = np.where((grid[-1] & bit) != 0, np.minimum(wf, 0.0), wf)
        table += wf
    return dims, table


def pattern_keys(levels: np.ndarray, flags: np.ndarray, dims: Sequence[int]) -> np.ndarray:
    """One integer per pair for its levels and implied flags."""
    # in place, in int32 when the patterns fit: 20M pairs per incremental run
    dt = np.int32 if int(np.prod(dims, dtype=np.float64)) < 2 ** 31 else np.int64
    key = np.zeros(len(levels), dt)
    for f in range(len(dims) - 1):
        key *= dims[f]
        key += levels[:, f]
        key += 1
    key *= 4
    key += flags
    return key


def pattern_weights(levels: np.ndarray, flags: np.ndarray, model: Model, comps: Sequence[Comparator]) -> np.ndarray:
    """Sum of field weights per pair (no TF, no prior), from a table over every possible pattern of
    levels and implied flags: one gather per pair instead of a pairs x fields matrix."""
    dims, table = _pattern_table(model, comps)
    return table[pattern_keys(levels, flags, dims)]


def fast_weights(levels: np.ndarray, li: np.ndarray, flags: np.ndarray, model: Model, tf_adjust: dict[str, np.ndarray],
                 comps: Sequence[Comparator]) -> np.ndarray:
    """Match weight of every pair (as score_pairs, up to rounding): decides which pairs need the
    exact per-field scoring (those that can reach the review threshold)."""
    w = pattern_weights(levels, flags, model, comps)
    names = [p.field for p in model.fields]
    for fld, adj in tf_adjust.items():
        if fld in names:
            exact = np.nonzero(levels[:, names.index(fld)] == 0)[0]
            w[exact] += adj[li[exact]]
    return w + model.prior_weight


# Fields whose levels are nested (same county within same city within same province): a coarser
# agreement can never be stronger evidence than a finer one.
NESTED_FIELDS = ("hukou",)


def constrain_weights(model: Model) -> Model:
    """Disagreement is never evidence for a match: the weight of a ``different*`` level is at most 0,
    and the levels of a nested field never gain weight as they get coarser. Applied by raising u
    (m stays as given). Needed because u comes from this one population: in a one-county registry
    almost no random pair differs in county, so u(different) is tiny and m/u would say "a
    different county makes the same person more likely"."""
    changed = []
    for f in model.fields:
        m = np.maximum(np.asarray(f.m, float), PROB_FLOOR)
        u = np.maximum(np.asarray(f.u, float), PROB_FLOOR)
        w = np.log2(m / u)
        cap = np.full(len(w), np.inf)
        for k, name in enumerate(f.levels):
            if name.startswith("different"):
                cap[k] = 0.0
        if f.field in NESTED_FIELDS:
            for k in range(1, len(w)):
                cap[k] = min(cap[k], w[:k].min(), cap[:k].min())
        over = w > cap
        if over.any():
            u = np.where(over, m / np.exp2(cap), u)
            f.u = [float(x) for x in u]
            changed.append(f.field)
    model.trained_on = {**model.trained_on, "constrained": changed}
    return model


def estimate_u_prior(pop: Population, levels: np.ndarray, li: np.ndarray, ri: np.ndarray, facts: PairFacts,
                     comps: Sequence[Comparator], base: Model, u_sample: int) -> Model:
    """This population's u (random pairs) and prior (EM over the whole pair space), m from ``base``."""
    from reconcile.linkage import estimate_u

    n = pop.n
    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    u = estimate_u(arr, None, n, None, comps, u_sample)
    fields = [FieldParams(c.field, c.levels, list(base.fields[k].m), [float(x) for x in u[k]])
              for k, c in enumerate(comps)]
    from reconcile.linkage import within_file_weights

    within_file_weights(fields, agreement=True)   # one registry: a second registration sits elsewhere
    model = constrain_weights(Model(prior=0.5, fields=fields))
    total = n * (n - 1) / 2
    # distinct (levels, implied) patterns with counts: the prior EM runs over those
    dims, table = _pattern_table(model, comps)
    keys, counts = np.unique(pattern_keys(levels, implied_flags(li, ri, facts), dims), return_counts=True)
    uniq = table[keys]
    lam = min(max(n * 0.5 / max(total, 1.0), 1e-15), 0.5)
    for _ in range(200):
        logit = uniq + math.log2(lam / (1 - lam))
        p = 1.0 / (1.0 + np.exp2(-np.clip(logit, -200, 200)))
        new = min(max(float((p * counts).sum()) / max(total, 1.0), 1e-15), 0.5)
        if abs(new - lam) <= 1e-9 * lam:
            lam = new
            break
        lam = new
    model.prior = lam
    model.trained_on = {"m": base.trained_on.get("m", "given"), "u_sample": u_sample, "pairs": int(len(li)),
                        "total_pairs": total}
    return model


# ---------------------------------------------------------------------------------------------
# decisions, reviewers, clusters

@dataclass
class Scored:
    """The population's candidate pairs with levels, scores and decisions."""

    li: np.ndarray
    ri: np.ndarray
    passes: np.ndarray
    levels: np.ndarray
    scores: Scores
    decision: np.ndarray
    decided_by: np.ndarray
    stale: np.ndarray
    review_evidence: dict[int, str] = field(default_factory=dict)

    def subset(self, idx: np.ndarray) -> "Scored":
        s = self.scores
        sc = Scores(weight=s.weight[idx], probability=s.probability[idx], field_weights=s.field_weights[idx],
                    tf_adjust=s.tf_adjust[idx])
        return Scored(self.li[idx], self.ri[idx], self.passes[idx], self.levels[idx], sc, self.decision[idx],
                      self.decided_by[idx], self.stale[idx])


def score_candidates(work, model: Model, facts: PairFacts, tf_adjust: dict[str, np.ndarray],
                     comps: Sequence[Comparator], opts: DedupeOptions) -> Scored:
    """Exact scores and decisions for the pairs that can reach the review threshold (a pair
    below it is reported nowhere); the rest are only weighed."""
    w = fast_weights(work.levels, work.li, work.flags, model, tf_adjust, comps)
    p = min(max(opts.review_threshold, 1e-12), 1 - 1e-12)
    keep = np.nonzero(w >= math.log2(p / (1 - p)) - 1e-6)[0]
    li, ri, lv = work.li[keep], work.ri[keep], work.levels[keep]
    scores = score_pairs(lv, li, ri, model, facts, tf_adjust, comps)
    decision = threshold_decisions(scores.probability, opts.match_threshold, opts.review_threshold)
    return Scored(li, ri, work.passes[keep], lv, scores, decision, np.array(["model"] * len(keep), dtype=object),
                  np.zeros(len(keep), np.int8))


def apply_reviews(db, pop: Population, sc: Scored, model: Model, facts: PairFacts, tf_adjust: dict[str, np.ndarray],
                  comps: Sequence[Comparator], work=None) -> Scored:
    """Reviewers' decisions on within-file pairs ('origin-origin') bind: decided match -> MATCH,
    non_match -> never, unsure or stale (a record changed since) -> REVIEW. A decided pair the
    blocking did not propose is compared, scored and added."""
    from reconcile.compare import compare_pairs
    from reconcile.review.ledger import apply_decisions, decided_pairs, ensure_ledger

    if db is None:
        return sc
    ensure_ledger(db)
    cur = decided_pairs(db)
    cur = cur[cur["source_pair"] == SOURCE_PAIR] if not cur.empty else cur
    if cur.empty:
        return sc
    index = pd.Index(pop.keys)
    involved = set(cur["origin_key"].astype(str)) | set(cur["dest_key"].astype(str))
    pos = index.get_indexer(sorted(involved))
    pos = pos[pos >= 0]
    fps = dict(zip([(SOURCE, str(k)) for k in pop.keys[pos].tolist()], pop.fingerprint_hex(pos).tolist()))
    keep = np.nonzero(sc.decision >= REVIEW)[0]
    links = pd.DataFrame({
        "source_pair": SOURCE_PAIR, "origin_key": pop.keys[sc.li[keep]], "dest_key": pop.keys[sc.ri[keep]],
        "match_probability": sc.scores.probability[keep], "match_weight": sc.scores.weight[keep],
        "decision": [DECISION_NAMES[int(x)] for x in sc.decision[keep]], "evidence_json": None,
    })
    applied = apply_decisions(db, links, fps)
    reviewed = applied[(applied["decided_by"] == "review") & (applied["source_pair"] == SOURCE_PAIR)]
    if reviewed.empty:
        return sc
    a = index.get_indexer(reviewed["origin_key"].astype(str))
    b = index.get_indexer(reviewed["dest_key"].astype(str))
    ok = (a >= 0) & (b >= 0) & (a != b)
    a, b = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
    rows = reviewed[ok]
    n = pop.n
    code_all = sc.li * n + sc.ri
    order = np.argsort(code_all, kind="stable")
    want = a * n + b
    at = np.searchsorted(code_all[order], want)
    found = (at < len(order)) & (code_all[order][np.minimum(at, len(order) - 1)] == want)
    k_of = np.where(found, order[np.minimum(at, len(order) - 1)], -1)
    missing = np.nonzero(~found)[0]
    if missing.size:
        # decided pairs below the review threshold (levels known) or that blocking missed (compared now)
        mi, mj = a[missing], b[missing]
        uniq, first = np.unique(mi * n + mj, return_index=True)
        mi, mj = mi[first], mj[first]
        arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
        lv = np.empty((len(mi), len(comps)), np.int8)
        mp = np.zeros(len(mi), sc.passes.dtype)
        known = np.zeros(len(mi), bool)
        if work is not None and len(work.li):
            involved = np.zeros(n, bool)
            involved[mi] = True
            cand = np.nonzero(involved[work.li])[0]
            ccode = work.li[cand] * n + work.ri[cand]
            pos_in = pd.Index(ccode).get_indexer(uniq)
            known = pos_in >= 0
            lv[known] = work.levels[cand[pos_in[known]]]
            mp[known] = work.passes[cand[pos_in[known]]]
        if (~known).any():
            lv[~known] = compare_pairs(arr, arr, mi[~known], mj[~known], comps)
        extra = score_pairs(lv, mi, mj, model, facts, tf_adjust, comps)
        base = len(sc.li)
        s = sc.scores
        sc = Scored(np.concatenate([sc.li, mi]), np.concatenate([sc.ri, mj]),
                    np.concatenate([sc.passes, mp]),
                    np.concatenate([sc.levels, lv]),
                    Scores(np.concatenate([s.weight, extra.weight]), np.concatenate([s.probability, extra.probability]),
                           np.concatenate([s.field_weights, extra.field_weights]), np.concatenate([s.tf_adjust, extra.tf_adjust])),
                    np.concatenate([sc.decision, np.full(len(mi), NONE, sc.decision.dtype)]),
                    np.concatenate([sc.decided_by, np.array(["model"] * len(mi), dtype=object)]),
                    np.concatenate([sc.stale, np.zeros(len(mi), np.int8)]), sc.review_evidence)
        added = {int(c): base + t for t, c in enumerate(uniq.tolist())}
        k_of = np.array([k if k >= 0 else added[int(w)] for k, w in zip(k_of.tolist(), want.tolist())], np.int64)
    code = {"match": MATCH, "review": REVIEW, "non_match": NONE}
    for k, row in zip(k_of.tolist(), rows.itertuples()):
        sc.decision[k] = code.get(row.decision, REVIEW)
        sc.decided_by[k] = "review"
        sc.stale[k] = int(row.stale or 0)
        if row.stale and row.evidence_json:
            sc.review_evidence[k] = row.evidence_json
    return sc


@dataclass
class ChainSplit:
    """A cluster cut at its weakest link because two of its records disagree strongly."""

    a: int              # the two records that disagree (positions)
    b: int
    direct: float       # their own match probability
    cut: tuple[int, int]
    cut_probability: float


@dataclass
class Clusters:
    labels: np.ndarray                                   # smallest position of the record's cluster
    refused: list[tuple[int, int, str]]                  # edges the ID guard refused
    splits: list[ChainSplit]
    kept: list[tuple[int, int, float]]                   # disagreeing pairs held together by strong links


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel clusters by their smallest member position (independent of union order)."""
    n = len(labels)
    if not n:
        return labels
    order = np.argsort(labels, kind="stable")
    lab_s = labels[order]
    start = np.ones(n, bool)
    start[1:] = lab_s[1:] != lab_s[:-1]
    grp = np.cumsum(start) - 1
    first = order[start]           # stable sort: the first of each group is its smallest position
    out = np.empty(n, np.int64)
    out[order] = first[grp]
    return out


def cluster_records(pop: Population, sc: Scored, model: Model, facts: PairFacts, tf_adjust: dict[str, np.ndarray],
                    comps: Sequence[Comparator], opts: DedupeOptions) -> Clusters:
    """Connected components over match edges: the ID guard of reconcile.cluster, then weak chains cut.

    A chain of weak links is cut: inside a cluster of 3+ records, two records whose own comparison
    says "not the same person" (probability below the review threshold) are separated by removing
    the weakest link of the path that joins them, when that link is below ``opts.strong``.
    """
    n = pop.n
    is_match = sc.decision == MATCH
    a, b = sc.li[is_match], sc.ri[is_match]
    p = np.where(np.isnan(sc.scores.probability[is_match]), 1.0, sc.scores.probability[is_match])
    # canonical edge order (probability, then positions): the result does not depend on pair order
    order = np.lexsort((b, a, -p))
    a, b, p = a[order], b[order], p[order]
    nodes = np.unique(np.concatenate([a, b]))
    labels = np.arange(n, dtype=np.int64)
    refused: list[tuple[int, int, str]] = []
    if nodes.size:
        local = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
        usable = np.isin(pop.cols["id_status"][nodes], list(USABLE_ID_STATUSES))
        ids = np.where(usable, pop.cols["id_clean"][nodes], "").astype(object)
        res = guarded_clusters(len(nodes), local[0], local[1], p, ids, strong=opts.strong)
        labels[nodes] = nodes[res.labels]
        refused = [(int(nodes[x]), int(nodes[y]), why) for x, y, why in res.refused]
    labels = _canonical(labels)
    splits: list[ChainSplit] = []
    kept: list[tuple[int, int, float]] = []
    labels, splits, kept = _split_weak_chains(pop, labels, a, b, p, sc, model, facts, tf_adjust, comps, opts)
    return Clusters(labels=labels, refused=refused, splits=splits, kept=kept)


def _split_weak_chains(pop, labels, a, b, p, sc, model, facts, tf_adjust, comps, opts):
    from reconcile.compare import compare_pairs

    sizes = np.bincount(labels, minlength=pop.n)
    big = np.nonzero(sizes >= 3)[0]
    if big.size == 0:
        return labels, [], []
    members: dict[int, list[int]] = {}
    in_big = np.isin(labels, big)
    for pos, lab in zip(np.nonzero(in_big)[0].tolist(), labels[in_big].tolist()):
        members.setdefault(lab, []).append(pos)
    # every pair inside those clusters, compared directly (clusters are small)
    pi, pj = [], []
    for ms in members.values():
        for x in range(len(ms)):
            for y in range(x + 1, len(ms)):
                pi.append(ms[x])
                pj.append(ms[y])
    pi_a, pj_a = np.array(pi, np.int64), np.array(pj, np.int64)
    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    lv = compare_pairs(arr, arr, pi_a, pj_a, comps)
    direct = score_pairs(lv, pi_a, pj_a, model, facts, tf_adjust, comps)
    dprob = {(i, j): (float(pr), float(w)) for i, j, pr, w in zip(pi, pj, direct.probability.tolist(), direct.weight.tolist())}
    # a reviewer's decision on a pair is the truth about that pair
    for k in np.nonzero(sc.decided_by == "review")[0].tolist():
        key = (int(sc.li[k]), int(sc.ri[k]))
        if key in dprob:
            dprob[key] = (1.0 if sc.decision[k] == MATCH else (0.0 if sc.decision[k] == NONE else dprob[key][0]), dprob[key][1])
    same = labels[a] == labels[b]
    ea, eb, ep = a[same], b[same], p[same]
    edge_lab = labels[ea]
    by_cluster: dict[int, list[tuple[float, int, int, float]]] = {}
    for (i, j), (pr, w) in dprob.items():
        if pr < opts.review_threshold:
            by_cluster.setdefault(int(labels[i]), []).append((w, i, j, pr))
    splits: list[ChainSplit] = []
    kept: list[tuple[int, int, float]] = []
    new_labels = labels.copy()
    for lab in sorted(by_cluster):
        ms = members[lab]
        loc = {m: t for t, m in enumerate(ms)}
        # maximum spanning tree (edges are already strongest first)
        uf = UnionFind(len(ms))
        tree: dict[tuple[int, int], float] = {}
        for k in np.nonzero(edge_lab == lab)[0].tolist():
            x, y = loc[int(ea[k])], loc[int(eb[k])]
            if uf.find(x) != uf.find(y):
                uf.union(x, y)
                tree[(int(ea[k]), int(eb[k]))] = float(ep[k])
        cut_here = False
        for _, i, j, pr in sorted(by_cluster[lab], key=lambda t: (t[0], t[1], t[2])):
            path = _tree_path(tree, i, j)
            if path is None:
                continue          # already separated by an earlier cut
            weakest = min(path, key=lambda e: (tree[e], e))
            if tree[weakest] >= opts.strong:
                kept.append((i, j, pr))
                continue
            splits.append(ChainSplit(i, j, pr, weakest, tree[weakest]))
            del tree[weakest]
            cut_here = True
        if cut_here:
            uf2 = UnionFind(len(ms))
            for (x, y) in tree:
                uf2.union(loc[x], loc[y])
            roots = uf2.labels()
            for t, m in enumerate(ms):
                new_labels[m] = ms[int(roots[t])]
    return _canonical(new_labels), splits, kept


def _tree_path(tree: dict[tuple[int, int], float], src: int, dst: int) -> list[tuple[int, int]] | None:
    """Edges of the path from src to dst in a forest given as {(a, b): p}, or None."""
    adj: dict[int, list[tuple[int, tuple[int, int]]]] = {}
    for e in tree:
        adj.setdefault(e[0], []).append((e[1], e))
        adj.setdefault(e[1], []).append((e[0], e))
    prev: dict[int, tuple[int, tuple[int, int]] | None] = {src: None}
    queue = [src]
    while queue:
        x = queue.pop(0)
        if x == dst:
            break
        for y, e in sorted(adj.get(x, [])):
            if y not in prev:
                prev[y] = (x, e)
                queue.append(y)
    if dst not in prev:
        return None
    path = []
    x = dst
    while prev[x] is not None:
        x0, e = prev[x]  # type: ignore[misc]
        path.append(e)
        x = x0
    return path


# ---------------------------------------------------------------------------------------------
# scope, resolving level and survivor of a cluster

def _region_label(code: str) -> str:
    from reconcile.divisions import region_name

    name = region_name(code)
    return f"{code} {name}".strip() if code else ""


def cluster_scope(regions: Sequence[str], units: Sequence[str]) -> tuple[str, str, str]:
    """(scope, resolving level, resolver) of a cluster from its records' hukou counties and units.

    Same county: same unit (township) -> ``same_unit`` resolved by that unit; several units ->
    ``cross_unit`` (县内跨乡) by the county; units unknown -> ``same_county``. Several counties of
    one city -> ``cross_county`` (市内跨县) by the city; several cities of one province ->
    ``cross_city`` (省内跨市) by the province; else ``cross_province`` (跨省), by the country.
    Records whose county is unknown do not count; with no county at all the units decide.
    """
    from reconcile.divisions import city_code, province_code

    regs = sorted({r for r in regions if r})
    us = sorted({u for u in units if u})
    if regs:
        provinces = sorted({province_code(r) or r[:2] + "0000" for r in regs})
        if len(provinces) > 1:
            return "cross_province", "country", ""
        cities = sorted({city_code(r) or r[:4] + "00" for r in regs})
        if len(cities) > 1:
            return "cross_city", "province", _region_label(provinces[0])
        if len(regs) > 1:
            return "cross_county", "city", _region_label(cities[0])
        if len(us) > 1:
            return "cross_unit", "county", _region_label(regs[0])
        if len(us) == 1:
            return "same_unit", "unit", us[0]
        return "same_county", "county", _region_label(regs[0])
    if len(us) == 1:
        return "same_unit", "unit", us[0]
    if len(us) > 1:
        return "cross_unit", "unknown", ""
    return "unknown", "unknown", ""


def choose_survivor(usable: Sequence[bool], filled: Sequence[int], registered: Sequence[str]) -> tuple[int, list[str]]:
    """Index of the suggested surviving record and why: a valid ID first, then the most complete,
    then the most recently registered; ties keep the first record (file order)."""
    n = len(usable)
    rank = sorted(range(n), key=lambda i: (-int(bool(usable[i])), -int(filled[i]), _neg_date(registered[i]), i))
    best = rank[0]
    reasons: list[str] = []
    others = [i for i in range(n) if i != best]
    if usable[best] and not all(usable[i] for i in others):
        reasons.append("valid_id")
    same_id = [i for i in others if bool(usable[i]) == bool(usable[best])]
    if same_id and all(filled[best] > filled[i] for i in same_id):
        reasons.append("most_complete")
    same_fill = [i for i in same_id if filled[i] == filled[best]]
    if same_fill and registered[best] and all(registered[best] > (registered[i] or "") for i in same_fill):
        reasons.append("most_recent")
    if not reasons:
        reasons.append("first_listed")
    return best, reasons


def _neg_date(iso: str) -> tuple[int, str]:
    # later dates first, missing last: sort key on the negated characters
    if not iso:
        return (1, "")
    return (0, "".join(chr(0x10FFFF - ord(ch)) for ch in iso))


def duplicate_rows(pop: Population, clusters: Clusters, person_id: np.ndarray) -> pd.DataFrame:
    """One row per record of each cluster of 2+ records: scope, who resolves it, survivor, reason."""
    labels = clusters.labels
    sizes = np.bincount(labels, minlength=pop.n)
    idx = np.nonzero(sizes[labels] >= 2)[0]
    cols = ["source", "cluster_id", "record_key", "survivor", "scope", "reason", "resolver_level", "resolver", "detail"]
    if idx.size == 0:
        return pd.DataFrame(columns=cols)
    split_of: dict[int, list[ChainSplit]] = {}
    for s in clusters.splits:
        for end in (s.a, s.b):
            split_of.setdefault(int(labels[end]), []).append(s)
    usable_all = np.isin(pop.cols["id_status"], list(USABLE_ID_STATUSES))
    rows = []
    order = idx[np.lexsort((idx, labels[idx]))]
    lab_sorted = labels[order]
    bounds = np.flatnonzero(np.r_[True, lab_sorted[1:] != lab_sorted[:-1], True])
    for s0, s1 in zip(bounds[:-1], bounds[1:]):
        ms = order[s0:s1]
        lab = int(labels[ms[0]])
        best, reasons = choose_survivor(usable_all[ms].tolist(), pop.filled[ms].tolist(),
                                        pop.cols["registered_at"][ms].tolist())
        scope, level, resolver = cluster_scope(pop.cols["hukou_region"][ms].tolist(), pop.cols["unit"][ms].tolist())
        detail = {"survivor": str(pop.keys[ms[best]]), "size": int(len(ms)),
                  "files": sorted(set(pop.file[ms].tolist())),
                  "counties": sorted({r for r in pop.cols["hukou_region"][ms].tolist() if r}),
                  "units": sorted({u for u in pop.cols["unit"][ms].tolist() if u})}
        reason = list(reasons)
        if lab in split_of:
            reason.append("chain_split")
            detail["chain_split"] = [{"disagree": [str(pop.keys[s.a]), str(pop.keys[s.b])],
                                      "probability": round(s.direct, 6),
                                      "cut": [str(pop.keys[s.cut[0]]), str(pop.keys[s.cut[1]])],
                                      "cut_probability": round(s.cut_probability, 6)} for s in split_of[lab]]
        dj = json.dumps(detail, ensure_ascii=False)
        cid = person_id[ms[0]]
        for t, m in enumerate(ms.tolist()):
            rows.append((SOURCE, cid, pop.keys[m], int(t == best), scope, ";".join(reason), level, resolver, dj))
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------
# report tables

def record_rows(std: pd.DataFrame, files: Sequence[InputFile], fingerprints: np.ndarray) -> pd.DataFrame:
    """`records` rows of standardised records (source 'origin'; raw_json carries `__file__`)."""
    cols = [c for c in STANDARD_COLUMNS if c in std.columns]
    df = std[cols].copy()
    for c in ("name_traditional", "name_minority", "sex_conflict", "birth_conflict"):
        if c in df:
            df[c] = df[c].astype(bool).astype(int)
    df.insert(0, "source", SOURCE)
    df["line"] = std["line"].to_numpy()
    df["fingerprint"] = fingerprints
    df["file"] = std["file"].to_numpy()
    by_label = {f.label: f for f in files}
    raw = np.empty(len(std), dtype=object)
    labels = std["file"].to_numpy(object)
    rows = std["_row"].to_numpy(np.int64)
    for label in pd.unique(labels):
        f = by_label[label]
        sel = np.nonzero(labels == label)[0]
        headers = list(f.loaded.raw.columns)
        values = f.loaded.raw.to_numpy(dtype=object)[rows[sel]]
        # compact separators: the same text SQLite's json_set writes when a later run renames the file
        raw[sel] = [json.dumps({**dict(zip(headers, r)), "__file__": label}, ensure_ascii=False, separators=(",", ":"))
                    for r in values.tolist()]
    df["raw_json"] = raw
    return df


def rejected_rows(files: Sequence[InputFile]) -> pd.DataFrame:
    return pd.DataFrame([
        {"source": SOURCE, "line": r.line, "reason_key": r.reason_key, "reason": f"{f.label}: {r.reason}", "raw": r.raw}
        for f in files for r in f.loaded.rejected
    ], columns=["source", "line", "reason_key", "reason", "raw"])


def blocking_rows(stats: Sequence[PassStats]) -> pd.DataFrame:
    return pd.DataFrame([
        {"pass_name": s.name, "rule": s.description, "pairs": s.pairs, "new_pairs": s.new_pairs,
         "skipped_blocks": s.skipped_blocks, "skipped_records": s.skipped_records}
        for s in stats
    ], columns=["pass_name", "rule", "pairs", "new_pairs", "skipped_blocks", "skipped_records"])


def link_rows(pop: Population, sc: Scored, model: Model, comps: Sequence[Comparator]) -> pd.DataFrame:
    """Pairs at or above review, ordered by position, with per-field evidence."""
    keep = np.nonzero(sc.decision >= REVIEW)[0]
    keep = keep[np.lexsort((sc.ri[keep], sc.li[keep]))]
    sub = sc.subset(keep)
    lk = Linkage(candidates=Candidates(sub.li, sub.ri, sub.passes, []), levels=sub.levels, scores=sub.scores,
                 model=model, u_sample=0)
    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    ev = []
    # all pairs' evidence in one batch (the same text as evidence_json, without per-pair string work)
    batch = evidence_jsons(np.arange(len(keep)), lk, comps, arr, arr)
    for t, k in enumerate(keep.tolist()):
        extra = sc.review_evidence.get(k)
        base = batch[t]
        if extra:
            merged = json.loads(base)
            try:
                merged.update({kk: vv for kk, vv in json.loads(extra).items() if kk in ("stale", "review")})
            except (TypeError, ValueError):
                pass
            base = json.dumps(merged, ensure_ascii=False)
        ev.append(base)
    return pd.DataFrame({
        "source_pair": SOURCE_PAIR, "origin_key": pop.keys[sub.li], "dest_key": pop.keys[sub.ri],
        "match_probability": sub.scores.probability, "match_weight": sub.scores.weight,
        "decision": [DECISION_NAMES[int(x)] for x in sub.decision], "decided_by": sub.decided_by,
        "stale": sub.stale, "evidence_json": ev,
    })


def warning_rows(pop: Population, stats: Sequence[PassStats], clusters: Clusters) -> pd.DataFrame:
    msgs = [("block", w) for s in stats for w in s.warnings]
    k = pop.keys
    for x, y, why in clusters.refused:
        msgs.append(("cluster", f"not merged {k[x]} + {k[y]}: {why}"))
    for s in clusters.splits:
        msgs.append(("cluster", f"chain split: {k[s.a]} and {k[s.b]} score {s.direct:.3f} against each other; "
                                f"weakest link {k[s.cut[0]]} - {k[s.cut[1]]} ({s.cut_probability:.3f}) cut"))
    for i, j, pr in clusters.kept:
        msgs.append(("cluster", f"kept together: {k[i]} and {k[j]} score {pr:.3f} against each other, "
                                f"but every link between them is strong"))
    return pd.DataFrame({"stage": [m[0] for m in msgs], "message": [mask_ids_in_text(m[1]) for m in msgs]},
                        columns=["stage", "message"])


def metric_rows(summary: dict[str, Any], pop: Population, duplicates: pd.DataFrame) -> pd.DataFrame:
    rows = [("all", k, float(v)) for k, v in summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None]
    n = max(pop.n, 1)
    usable = np.isin(pop.cols["id_status"], list(USABLE_ID_STATUSES))
    rows.append(("all", "id_entry_rate", float(usable.sum()) / n))
    dup_keys = set(duplicates["record_key"].tolist()) if len(duplicates) else set()
    in_dup = np.array([k in dup_keys for k in pop.keys.tolist()], bool) if dup_keys else np.zeros(pop.n, bool)
    rows.append(("all", "duplicate_record_rate", float(in_dup.sum()) / n))
    if len(duplicates):
        per = duplicates.drop_duplicates("cluster_id")
        for scope, cnt in per["scope"].value_counts().sort_index().items():
            rows.append(("all", f"clusters_{scope}", float(cnt)))
    for name, arr in (("file", pop.file), ("unit", pop.cols["unit"])):
        s = pd.DataFrame({"g": arr, "dup": in_dup, "usable": usable})
        s = s[s["g"] != ""]
        if name == "file" and s["g"].nunique() < 2:
            continue
        for g, part in s.groupby("g", sort=True):
            scope = f"{name}:{g}"
            rows += [(scope, "records", float(len(part))), (scope, "duplicate_records", float(part["dup"].sum())),
                     (scope, "id_entry_rate", float(part["usable"].mean()))]
    return pd.DataFrame(rows, columns=["scope", "metric", "value"])


# ---------------------------------------------------------------------------------------------
# the command

def run_dedupe(
    paths: Sequence[str | Path],
    db_path: str | Path,
    options: DedupeOptions | None = None,
    progress: Progress = _noop,
    comparators: Sequence[Comparator] | None = None,
) -> DedupeResult:
    """The whole `dedupe` command as a library call; returns the run id and the summary."""
    from reconcile import incremental
    from reconcile.match import default_comparators

    opts = options or DedupeOptions()
    opts.validate()
    if not paths:
        raise ConfigError("dedupe.no_files")
    comps = list(comparators or default_comparators())
    started = now_iso()
    db_file = Path(db_path)
    db = open_report(db_file)
    try:
        work = incremental.prepare(db, paths, opts, comps, progress)
        result = finish(db, work, opts, comps, started, progress)
    finally:
        db.close()
    return DedupeResult(run_id=result["run_id"], db=db_file, summary=result["summary"], timings=work.timings)


def finish(db, work, opts: DedupeOptions, comps: Sequence[Comparator], started: str, progress: Progress) -> dict[str, Any]:
    """Score, decide, cluster, assign persons and write the run (shared by full and incremental runs)."""
    from reconcile import incremental
    from reconcile.persons import ensure_person_tables, next_person_number, plan_persons, write_persons

    t0 = time.perf_counter()
    pop, model = work.pop, work.model
    facts = PairFacts.of(pop)
    tables = tf_tables(facts)
    tf_adjust = tf_record_adjust(facts, tables, model)
    sc = score_candidates(work, model, facts, tf_adjust, comps, opts)
    sc = apply_reviews(db, pop, sc, model, facts, tf_adjust, comps, work)
    work.timings["score+decide"] = time.perf_counter() - t0
    progress("score", {"pairs": int(len(work.li)), "match": int((sc.decision == MATCH).sum()),
                       "review": int((sc.decision == REVIEW).sum())})

    t0 = time.perf_counter()
    clusters = cluster_records(pop, sc, model, facts, tf_adjust, comps, opts)
    work.timings["cluster"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ensure_person_tables(db)
    plan = plan_persons(clusters.labels, pop.keys, work.prev_pid, work.prev_same_content, work.previous_active,
                        None, next_person_number(db), previous_run=work.previous_run, db=db)
    duplicates = duplicate_rows(pop, clusters, plan.person_id)
    links = link_rows(pop, sc, model, comps)
    work.timings["persons+tables"] = time.perf_counter() - t0

    n_clusters = int(duplicates["cluster_id"].nunique()) if len(duplicates) else 0
    from reconcile.match import blocking_recall_estimate

    summary: dict[str, Any] = {
        "records": pop.n, "files": len(work.files),
        "rejected": int(sum(len(f.loaded.rejected) for f in work.files)) if work.files else work.rejected_count,
        "candidate_pairs": int(len(work.li)),
        "links_match": int((sc.decision == MATCH).sum()), "links_review": int((sc.decision == REVIEW).sum()),
        "duplicate_clusters": n_clusters, "duplicate_records": int(len(duplicates)),
        "chain_splits": len(clusters.splits), "refused_merges": len(clusters.refused),
        "blocking_recall_estimate": blocking_recall_estimate(sc.passes[sc.decision == MATCH]),
        **plan.counts(),
    }
    if len(duplicates):
        per = duplicates.drop_duplicates("cluster_id")["scope"].value_counts()
        for s in SCOPES:
            summary[f"scope_{s}"] = int(per.get(s, 0))
    metrics = metric_rows(summary, pop, duplicates)
    summary["mode"] = work.mode
    summary["work"] = {k: v for k, v in work.work.items() if not k.startswith("_")}
    # records (and the persons of records) go to the versioned storage in extra() below
    out_tables = {
        "rejected_rows": work.rejected, "links": links, "duplicates": duplicates,
        "blocking": blocking_rows(work.stats), "metrics": metrics, "warnings": warning_rows(pop, work.stats, clusters),
    }
    settings = asdict(opts)
    settings["mode"] = work.mode
    settings["previous_run"] = work.previous_run
    run_out = RunOutput(
        command="dedupe", started_at=started,
        run_info={
            "version": reconcile.__version__,
            "origin_path": str(work.paths[0]) if work.paths else "", "dest_path": "",
            "origin_sha256": work.inputs[0]["sha256"] if work.inputs else "", "dest_sha256": "",
            "inputs_json": work.inputs, "settings_json": settings,
            "model_json": {**model.to_json(), "tf": {f: {"distinct": int(len(t)), "max": float(t.max()) if len(t) else 0.0}
                                                      for f, t in tables.items()}},
            "summary_json": summary,
        },
        tables=out_tables,
    )

    def extra(dbx, run_id: int) -> None:
        from reconcile import record_store

        t1 = time.perf_counter()
        record_store.convert(dbx)
        versions = work.write_records(dbx, run_id, plan.person_id)
        work.timings["records_write"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        write_persons(dbx, run_id, plan, repeated(SOURCE, pop.n), pop.keys, in_versions=True)
        work.timings["persons_write"] = time.perf_counter() - t1
        incremental.save_state(dbx, run_id, work, plan.person_id, versions, opts, comps)

    t0 = time.perf_counter()
    run_id = write_run(db, run_out, extra_writer=extra)
    work.timings["report"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    from reconcile.dedupe_state import prune

    prune(db, run_id)
    work.timings["state_prune"] = time.perf_counter() - t0
    progress("report", {"run_id": run_id})
    return {"run_id": run_id, "summary": summary}
