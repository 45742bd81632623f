"""Linking two standardised frames (or one with itself): block, compare, train, score.

This is the engine shared by `match` (origin x dest, plus each file with itself) and `dedupe`.
Everything is numpy arrays of record positions; nothing is held per pair as a Python object.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from matchers.base import MISSING, Comparator
from reconcile.blocking import DEFAULT_PASSES, BlockingPass, Candidates, candidate_pairs, sample_pass_pairs
from reconcile.codes import Codes, codes_of, joint_codes
from reconcile.compare import column_arrays, compare_pairs, random_pairs
from reconcile.model import (FieldParams, Model, estimate_prior, estimate_strata_priors, estimation_levels, level_frequencies, pattern_log2_bf,
                             patterns, train_em, train_sessions)
from reconcile.scoring import TF_FIELDS, Scores, TermFrequencies, score, strata_values, tf_offsets

Progress = Callable[[str, dict], None]


def _noop(stage: str, info: dict) -> None:
    pass


@dataclass
class Linkage:
    """Scored candidate pairs between ``left`` and ``right`` (positions), with their levels."""

    candidates: Candidates
    levels: np.ndarray
    scores: Scores
    model: Model
    u_sample: int
    em_iterations: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def li(self) -> np.ndarray:
        return self.candidates.left

    @property
    def ri(self) -> np.ndarray:
        return self.candidates.right

    def pairs_only(self, ks: np.ndarray) -> "Linkage":
        """This linkage with only its pairs ``ks`` (in that order), their levels and scores: what
        the `links` rows read of it, without the arrays of every other candidate pair."""
        c, s = self.candidates, self.scores
        return replace(self, candidates=replace(c, left=c.left[ks], right=c.right[ks], passes=c.passes[ks]),
                       levels=self.levels[ks],
                       scores=replace(s, weight=s.weight[ks], probability=s.probability[ks],
                                      field_weights=s.field_weights[ks], tf_adjust=s.tf_adjust[ks],
                                      one_person=None if s.one_person is None else s.one_person[ks]))


# Training sessions: (pass name, fields that pass blocks on, fields whose m it estimates).
# EM for a session leaves the blocked fields out. A session estimates only the fields whose
# non-matches it sees fairly: inside a birth date + sex block the only non-matches that agree on
# the name are same-day namesakes, told apart by nothing but the ID, so there EM would read
# "same name, two different valid IDs" as a match with a wrong ID; the ID is trained where the
# non-matches are namesakes of one county with other birth dates (pinyin_county).
TRAINING_SESSIONS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    ("id", frozenset({"id_number"}), frozenset({"name", "birth_date", "sex", "hukou", "address"})),
    ("birth_sex", frozenset({"birth_date", "sex"}), frozenset({"name", "hukou", "address"})),
    ("pinyin_county", frozenset({"name", "hukou"}), frozenset({"id_number", "birth_date", "sex"})),
)


# fields that count for nothing when one file is linked with itself (see within_file_weights)
WITHIN_FILE_NEUTRAL: frozenset[str] = frozenset({"address"})

# fields whose strongest level is plain equality of one column: (field, column)
EXACT_EQUALITY_COLUMNS: tuple[tuple[str, str], ...] = (("id_number", "id_clean"), ("name", "name"),
                                                       ("address", "k_address"))


def _exact_agreement_shares(left: pd.DataFrame, right: pd.DataFrame | None, total_pairs: float) -> dict[str, float]:
    """Share of ALL record pairs that agree exactly on each EXACT_EQUALITY_COLUMNS column
    (from value counts: sum over values of count_left * count_right)."""
    out: dict[str, float] = {}
    if total_pairs <= 0:
        return out
    for field, col in EXACT_EQUALITY_COLUMNS:
        if col not in left.columns:
            continue
        # value counts from the columns' memoised codes (reconcile.codes: blocking and the
        # comparators grouped them already), the empty value's dropped
        if right is None:
            got = codes_of(left[col].to_numpy(object))
            counts = _counts_without_blank(got, got.codes)
            agree = float((counts * (counts - 1) / 2).sum())
            n = counts.sum()
            present = n * (n - 1) / 2
        else:
            got = joint_codes(left[col].to_numpy(object), right[col].to_numpy(object))
            nl = len(left)
            lc = _counts_without_blank(got, got.codes[:nl])
            rc = _counts_without_blank(got, got.codes[nl:])
            agree = float(lc @ rc)   # sums of integer products: exact in float64
            present = float(lc.sum()) * float(rc.sum())
        out[field] = agree / present if present else 0.0
    return out


def _counts_without_blank(got: Codes, codes: np.ndarray) -> np.ndarray:
    """Rows per value code of ``got`` among ``codes`` (float64), the empty value's (and a missing
    value's) set to 0."""
    counts = np.bincount(codes[codes >= 0] if got.missing else codes, minlength=got.n).astype(np.float64)
    counts[np.flatnonzero(np.asarray(got.uniques, dtype=object) == "")] = 0.0
    return counts


# pairs of a restricted pass's whole key that one EM session trains on (sampled by block beyond)
SESSION_SAMPLE_PAIRS = 200_000


def _session_data(left: pd.DataFrame, right: pd.DataFrame | None, levels: np.ndarray, cand: Candidates,
                  passes: tuple[BlockingPass, ...], comparators: Sequence[Comparator], block_cap: int):
    """(levels to train on, their left positions, session masks over those rows).

    A session on an unrestricted pass trains on that pass's candidate pairs. A session on a pass
    `match` restricts (blocking.MATCH_PASSES: to pairs with a record without a usable ID, or
    without a number of its own) or uses for training only trains on the pass's whole key
    instead (sampled by block when large): extra pairs compared for training only."""
    names = [p.name for p in passes]
    extra_levels, extra_left, spans = [], [], []
    n_rows = levels.shape[0]
    for name, blocked, trains in TRAINING_SESSIONS:
        if name not in names:
            continue
        p = passes[names.index(name)]
        if p.flag_column is None and not p.train_only:
            spans.append((name, ("bit", 1 << names.index(name)), blocked, trains))
            continue
        i, j = sample_pass_pairs(left, right, p, block_cap, SESSION_SAMPLE_PAIRS)
        extra_levels.append(compare_pairs(left, left if right is None else right, i, j, comparators))
        extra_left.append(i)
        spans.append((name, ("rows", n_rows, n_rows + len(i)), blocked, trains))
        n_rows += len(i)
    all_levels = np.vstack([levels] + extra_levels) if extra_levels else levels
    all_left = np.concatenate([cand.left] + extra_left) if extra_left else cand.left
    sessions = []
    for name, where, blocked, trains in spans:
        mask = np.zeros(n_rows, dtype=bool)
        if where[0] == "bit":
            mask[: levels.shape[0]] = (cand.passes & where[1]) != 0
        else:
            mask[where[1]:where[2]] = True
        sessions.append((name, mask, blocked, trains))
    return all_levels, all_left, sessions


def estimate_u(
    left: dict[str, np.ndarray],
    right: dict[str, np.ndarray] | None,
    n_left: int,
    n_right: int | None,
    comparators: Sequence[Comparator],
    sample: int,
    seed: int = 1234,
) -> list[np.ndarray]:
    """u probabilities from uniform random pairs (chance agreement)."""
    i, j = random_pairs(n_left, n_right, sample, seed)
    lv = compare_pairs(left, right if right is not None else left, i, j, comparators)
    return level_frequencies(estimation_levels(lv, comparators), [len(c.levels) for c in comparators])


def train_model(
    left: pd.DataFrame,
    right: pd.DataFrame | None,
    levels: np.ndarray,
    cand: Candidates,
    comparators: Sequence[Comparator],
    *,
    passes: tuple[BlockingPass, ...] = DEFAULT_PASSES,
    tf: TermFrequencies | None = None,
    u_sample: int = 300_000,
    m_from: Model | None = None,
    larr: dict[str, np.ndarray] | None = None,
    rarr: dict[str, np.ndarray] | None = None,
    block_cap: int = 20_000,
    strata: str | None = None,
    u: list[np.ndarray] | None = None,
) -> Model:
    """The training step of ``link`` on compared candidate pairs (``levels`` row k = pair
    ``cand.left[k], cand.right[k]``): u from random pairs (``u``: estimated so beforehand), m by
    session EM (or ``m_from``'s), the prior. Also called by the Spark engine
    (reconcile.engines.spark) on levels it computed.
    """
    larr = larr if larr is not None else column_arrays(left, comparators)
    rarr = (larr if right is None else column_arrays(right, comparators)) if rarr is None else rarr
    n_right = len(left) if right is None else len(right)
    total_pairs = len(left) * (len(left) - 1) / 2 if right is None else float(len(left)) * n_right
    if u is None:
        u = estimate_u(larr, None if right is None else rarr, len(left), None if right is None else n_right,
                       comparators, u_sample)
    if m_from is not None:
        # within one file: the cross-registry m, this file's u, and this file's prior
        m = [list(f.m) for f in m_from.fields]
        info: dict = {"m_from": "cross-registry model"}
    else:
        t_levels, t_left, sessions = _session_data(left, right, levels, cand, passes, comparators, block_cap)
        tf_vals = {fld: left[col].astype(str).to_numpy(object)[t_left]
                   for fld, col in TF_FIELDS.items() if col in left.columns}
        offsets = tf_offsets(t_levels, [c.field for c in comparators], u, tf, tf_vals)
        m, info = train_sessions(estimation_levels(t_levels, comparators), sessions, comparators, u, offsets=offsets)
    fields = [FieldParams(c.field, c.levels, [float(x) for x in m[k]], [float(x) for x in u[k]])
              for k, c in enumerate(comparators)]
    if m_from is not None:
        within_file_weights(fields)
    weights = [f.weights() for f in fields]
    # the prior's EM over the candidates' comparison patterns, each with how many pairs hold it:
    # a few thousand values for millions of pairs (4.4 M at 1,000,000 persons)
    pats, pat_counts, pat_of_pair = patterns(levels, ordered=False)
    lbf = pattern_log2_bf(pats, weights)
    start = min(len(left), n_right) * 0.5 / max(total_pairs, 1.0)
    prior = estimate_prior(lbf, max(total_pairs, 1.0), start, counts=pat_counts)
    # Random pairs include true matches (prior * m of them per level): at these sizes most
    # random pairs sharing an ID number are the same person, which inflated u(exact) and
    # weakened the strongest evidence. Take their share out, keep u at or above the sample's
    # resolution, then re-estimate the prior with the corrected weights.
    n_sample = max(u_sample, 1)
    # (within one file the cross-registry m stands in, and namesakes of one county are
    # common: keep the sampled u there)
    exact_share = _exact_agreement_shares(left, right, total_pairs) if m_from is None else {}
    for f in (fields if m_from is None else []):
        m_arr, u_arr = np.asarray(f.m, float), np.asarray(f.u, float)
        floor = np.minimum(u_arr, 0.5 / n_sample)
        if f.field in exact_share:
            # counted over all pairs, not sampled: the sample cannot see how rarely two
            # different people share an ID number
            others = u_arr[1:] / max(u_arr[1:].sum(), 1e-300)
            u_arr = np.concatenate([[exact_share[f.field]], (1 - exact_share[f.field]) * others])
            floor = np.minimum(u_arr, 0.5 / max(total_pairs, 1.0))
        if f.field == "id_number":
            # (sampled with replacement: a file of 25 pairs gives 25 pairs' worth, however many draws)
            u_arr = _shrink_id_agreement(u_arr, f.levels, total_pairs, min(n_sample, total_pairs))
            floor = np.minimum(floor, u_arr)
        corrected = np.maximum((u_arr - prior * m_arr) / (1 - prior), floor)
        f.u = [float(x) for x in corrected / corrected.sum()]
    for f in (fields if m_from is not None else []):
        if f.field == "id_number":   # within one file: no correction, but the same prior knowledge
            n_eff = min(n_sample, total_pairs)
            f.u = [float(x) for x in _shrink_id_agreement(np.asarray(f.u, float), f.levels, total_pairs, n_eff)]
    lbf = pattern_log2_bf(pats, [f.weights() for f in fields])
    prior = estimate_prior(lbf, max(total_pairs, 1.0), prior, counts=pat_counts)
    strata_priors: dict[str, float] = {}
    if strata is not None and m_from is None and right is not None and strata in left.columns:
        labels = left[strata].astype(str).to_numpy(object)
        if len(set(labels.tolist())) > 1:
            strata_priors = estimate_strata_priors(lbf, labels[cand.left], labels, n_right, prior,
                                                   inverse=pat_of_pair)
    return Model(prior=prior, fields=fields,
                 trained_on={"pairs": int(levels.shape[0]), "u_sample": u_sample, "sessions": info,
                             "total_pairs": total_pairs},
                 strata_column=strata if strata_priors else None, strata=strata_priors)


# What is known before any data: an ID number is issued to one person, so two different people
# agree on one (or on one but for a typo) about once in ID_AGREEMENT_PRIOR_U pairs. It weighs as
# much as ID_AGREEMENT_PRIOR_PAIRS pairs of evidence: nothing next to a registry of millions of
# pairs, but it keeps a file of a few dozen records, where one true pair among 150 makes u look
# like 1/150, from reading an ID agreement as weak evidence. Not more: where a small file really
# holds two people with one number (twins, 重号), its own pairs must still be able to say so.
ID_AGREEMENT_PRIOR_U = 1e-7
ID_AGREEMENT_PRIOR_PAIRS = 1e4


def within_file_weights(fields: Sequence[FieldParams], agreement: bool = False) -> None:
    """In place: the fields of WITHIN_FILE_NEUTRAL weigh nothing when one registry is linked with
    itself. A person registered twice in one registry is nearly always registered at two places
    (that is how it went unnoticed: 县内跨乡), so a different address is no evidence of two people;
    and two records of one registry at one address are a household, whose members (twins, two
    people carrying one number) agree on it without being one person. Whatever the
    cross-registry m says. Used by within-file linkage here and by reconcile.dedupe.

    ``agreement=True`` keeps the weight of agreement and only drops the penalty for disagreement:
    reconcile.dedupe, whose chain guard and ID rules already keep households apart, measured
    better that way (pairwise F1 0.989 vs 0.978 default, 0.976 vs 0.965 dirty, bench/dedupe_accuracy)."""
    for f in fields:
        if f.field in WITHIN_FILE_NEUTRAL:
            if agreement:
                f.m = [u if lv == "different" else m for lv, m, u in zip(f.levels, f.m, f.u)]
            else:
                f.m = list(f.u)


def _shrink_id_agreement(u: np.ndarray, levels: Sequence[str], total_pairs: float, n_sample: float) -> np.ndarray:
    """u of the ID's agreement levels pulled toward ID_AGREEMENT_PRIOR_U (pseudo-counts); the
    disagreement levels take up the rest in their own proportions."""
    u = np.asarray(u, float).copy()
    agree = np.array([not lv.startswith("different") for lv in levels])
    for k in np.flatnonzero(agree):
        n = total_pairs if k == 0 else float(n_sample)   # exact: counted over all pairs
        u[k] = (u[k] * n + ID_AGREEMENT_PRIOR_PAIRS * ID_AGREEMENT_PRIOR_U) / (n + ID_AGREEMENT_PRIOR_PAIRS)
    rest = u[~agree]
    u[~agree] = rest / max(rest.sum(), 1e-300) * max(1.0 - u[agree].sum(), 0.0)
    return u


@dataclass
class Blocked:
    """The first half of ``link``: candidate pairs and their levels (no model needed yet), so it
    can run earlier or elsewhere (reconcile.parallel: one registry with itself, in the worker that
    loaded it, while this process links the two registries)."""

    candidates: Candidates
    levels: np.ndarray
    timings: dict[str, float]
    # the comparator columns (compare.column_arrays) of left and right, kept for the second half;
    # None once sent to another process (they are the frames' own columns again)
    arrays: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
    # u probabilities estimated beforehand from ``u_sample`` random pairs (estimate_u), if any
    u: list[np.ndarray] | None = None
    u_sample: int | None = None


def block_and_compare(
    left: pd.DataFrame,
    right: pd.DataFrame | None,
    comparators: Sequence[Comparator],
    *,
    passes: tuple[BlockingPass, ...] = DEFAULT_PASSES,
    block_cap: int = 20_000,
    progress: Progress = _noop,
) -> Blocked:
    """Candidate pairs of ``passes`` and their comparison levels. ``right=None``: ``left`` with itself."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cand = candidate_pairs(left, right, passes, block_cap)
    timings["block"] = time.perf_counter() - t0
    progress("block", {"pairs": int(cand.left.size), "passes": [(s.name, s.pairs, s.new_pairs) for s in cand.stats]})

    t0 = time.perf_counter()
    larr = column_arrays(left, comparators)
    rarr = larr if right is None else column_arrays(right, comparators)
    levels = compare_pairs(larr, rarr, cand.left, cand.right, comparators)
    timings["compare"] = time.perf_counter() - t0
    progress("compare", {"pairs": int(levels.shape[0])})
    return Blocked(cand, levels, timings, (larr, rarr))


def link(
    left: pd.DataFrame,
    right: pd.DataFrame | None,
    comparators: Sequence[Comparator],
    *,
    passes: tuple[BlockingPass, ...] = DEFAULT_PASSES,
    block_cap: int = 20_000,
    model: Model | None = None,
    m_from: Model | None = None,
    tf: TermFrequencies | Callable[[], TermFrequencies] | None = None,
    u_sample: int = 300_000,
    progress: Progress = _noop,
    strata: str | None = None,
    blocked: Blocked | None = None,
) -> Linkage:
    """Block, compare, (train,) score. ``right=None`` links ``left`` with itself (dedupe).

    ``model``: use as is (no training). ``m_from``: take m and prior from that model but estimate u
    on these frames (within-file linkage reuses the cross-registry m). ``strata``: a column of
    ``left`` whose values get a prior each (see ``Model.strata``). ``blocked``: the result of
    ``block_and_compare`` on the same frames, passes and cap, computed beforehand. ``tf`` may be a
    function giving the term frequencies, called once the pairs are compared.
    """
    if blocked is None:
        blocked = block_and_compare(left, right, comparators, passes=passes, block_cap=block_cap, progress=progress)
    if callable(tf):
        tf = tf()
    cand, levels = blocked.candidates, blocked.levels
    timings: dict[str, float] = dict(blocked.timings)
    if blocked.arrays is not None:
        larr, rarr = blocked.arrays
    else:
        larr = column_arrays(left, comparators)
        rarr = larr if right is None else column_arrays(right, comparators)

    t0 = time.perf_counter()
    iters = 0
    n_right = len(left) if right is None else len(right)
    total_pairs = len(left) * (len(left) - 1) / 2 if right is None else float(len(left)) * n_right
    if model is None:
        model = train_model(left, right, levels, cand, comparators, passes=passes, tf=tf, u_sample=u_sample,
                            m_from=m_from, larr=larr, rarr=rarr, block_cap=block_cap, strata=strata,
                            u=blocked.u if blocked.u_sample == u_sample else None)
    timings["train"] = time.perf_counter() - t0
    sessions = model.trained_on.get("sessions", {})
    progress("train", {"prior": f"{model.prior:.3g}",
                       "em_sessions": "; ".join(f"{k} {v.get('pairs', 0)}" for k, v in sessions.items()
                                                if isinstance(v, dict)) or "none"})

    t0 = time.perf_counter()
    tf_values = {}
    lvals = {fld: left[col].astype(str).to_numpy(object) for fld, col in TF_FIELDS.items() if col in left.columns}
    for fld, arr in lvals.items():
        tf_values[fld] = arr[cand.left]
    scores = score(levels, model, tf, tf_values, strata_values(model, left, cand.left))
    timings["score"] = time.perf_counter() - t0
    progress("score", {"pairs": int(levels.shape[0])})
    return Linkage(candidates=cand, levels=levels, scores=scores, model=model, u_sample=u_sample,
                   em_iterations=iters, timings=timings)


def evidence_json(
    k: int,
    linkage: Linkage,
    comparators: Sequence[Comparator],
    left: dict[str, np.ndarray],
    right: dict[str, np.ndarray],
) -> str:
    """Why pair ``k`` scored as it did: per field the values compared, the level and its weight."""
    i, j = int(linkage.li[k]), int(linkage.ri[k])
    fields = {}
    for f, comp in enumerate(comparators):
        lv = int(linkage.levels[k, f])
        fields[comp.field] = {
            "left": " / ".join(str(left[c][i]) for c in comp.evidence_columns if str(left[c][i])),
            "right": " / ".join(str(right[c][j]) for c in comp.evidence_columns if str(right[c][j])),
            "level": comp.label(lv),
            "weight": round(float(linkage.scores.field_weights[k, f]), 3),
        }
    tf = {fld: round(float(linkage.scores.tf_adjust[k, t]), 3) for t, fld in enumerate(TF_FIELDS) if linkage.scores.tf_adjust[k, t]}
    sc = linkage.scores
    out = {"prior": round(float(sc.prior_weights(np.array([k]))[0]), 3), "fields": fields, "tf": tf}
    if sc.one_person is not None and sc.one_person[k]:
        out["one_person"] = round(float(sc.one_person[k]), 3)
    return json.dumps(out, ensure_ascii=False)


def _texts(values: np.ndarray) -> list[str]:
    arr = np.asarray(values, dtype=object)
    out = arr.tolist()
    # (all str, as column_arrays gives them: checked in C, not by a generator per value)
    if pd.api.types.infer_dtype(arr, skipna=False) in ("string", "empty"):
        return out
    return [v if isinstance(v, str) else str(v) for v in out]


def _joined(cols: list[np.ndarray]) -> list[str]:
    """Element-wise ' / '.join of the non-empty values of several aligned string arrays."""
    acc = _texts(cols[0])
    for c in cols[1:]:
        acc = [a + " / " + b if a and b else (a or b) for a, b in zip(acc, _texts(c))]
    return acc


def _json_numbers(values: np.ndarray) -> list[str]:
    """Floats as json.dumps writes them (NaN and the infinities as JavaScript names)."""
    values = np.asarray(values, dtype=np.float64)
    if np.isfinite(values).all():
        return list(map(float.__repr__, values.tolist()))
    names = {np.inf: "Infinity", -np.inf: "-Infinity"}
    return ["NaN" if x != x else names.get(x) or float.__repr__(x) for x in values.tolist()]


def evidence_jsons(
    ks: np.ndarray,
    linkage: Linkage,
    comparators: Sequence[Comparator],
    left: dict[str, np.ndarray],
    right: dict[str, np.ndarray],
) -> list[str]:
    """evidence_json for many pairs at once: the same text json.dumps(..., ensure_ascii=False)
    writes, put together from per-field pieces (a dict and a dumps per pair took half of a large
    run's outcomes stage)."""
    from json.encoder import encode_basestring as quote   # json.dumps's own string quoting

    ks = np.asarray(ks, dtype=np.int64)
    if ks.size == 0:
        return []
    li, ri = linkage.li[ks], linkage.ri[ks]
    per_field = []
    for f, comp in enumerate(comparators):
        lt = [quote(t) for t in _joined([left[c][li] for c in comp.evidence_columns])]
        rt = [quote(t) for t in _joined([right[c][ri] for c in comp.evidence_columns])]
        names = np.array([quote(x) for x in ("missing", *comp.levels)], dtype=object)
        labels = names[linkage.levels[ks, f].astype(np.int64) + 1].tolist()
        w = _json_numbers(np.round(linkage.scores.field_weights[ks, f].astype(np.float64), 3))
        head = quote(comp.field) + ': {"left": '
        per_field.append([f"{head}{a}, \"right\": {b}, \"level\": {c}, \"weight\": {d}}}"
                          for a, b, c, d in zip(lt, rt, labels, w)])
    # the pair's own prior (its stratum's, when the model has strata)
    prior = _json_numbers(np.round(linkage.scores.prior_weights(ks), 3))
    one = (np.round(linkage.scores.one_person[ks], 3) if linkage.scores.one_person is not None
           else np.zeros(ks.size))
    one_text = _json_numbers(one)
    one = one.tolist()
    tfa = np.round(linkage.scores.tf_adjust[ks].astype(np.float64), 3)
    tf_text = [_json_numbers(tfa[:, t]) for t in range(tfa.shape[1])]
    tfa = tfa.tolist()
    tf_names = [quote(f) for f in TF_FIELDS]
    fields = [", ".join(parts) for parts in zip(*per_field)] if per_field else [""] * ks.size
    out = []
    for n in range(ks.size):
        tf = ", ".join(f"{name}: {tf_text[t][n]}" for t, (name, v) in enumerate(zip(tf_names, tfa[n])) if v)
        tail = f', "one_person": {one_text[n]}' if one[n] else ""
        out.append(f'{{"prior": {prior[n]}, "fields": {{{fields[n]}}}, "tf": {{{tf}}}{tail}}}')
    return out


def levels_missing_share(levels: np.ndarray) -> np.ndarray:
    return (levels == MISSING).mean(axis=0) if levels.size else np.zeros(levels.shape[1])
