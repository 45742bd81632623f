"""Fellegi-Sunter model: m and u per field level, a prior, EM training, term-frequency tables.

u comes from random record pairs (what agreement looks like by chance); m is estimated by EM on
the blocked candidate pairs, with u held fixed (as Splink does), so no labels are needed. EM
runs over the distinct level patterns with their counts, not over every pair: a few thousand
patterns instead of millions of pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from matchers.base import MISSING, Comparator

# Smallest probability any m or u may take: keeps weights finite and bounded (log2 1e-7 ~ -23).
PROB_FLOOR = 1e-7


# Levels whose agreement only repeats another field's: a birth date or sex that both (agreeing) ID
# numbers state. The ID comparator's level already counts it; Fellegi-Sunter assumes fields are
# independent, so counting it twice made two people carrying one number (重号: born the same day,
# often in one family) look like one person. Weight 0; disagreement still counts.
# (``id_number.same_region_birth`` was neutral until the birth date stopped counting ID-stated
# agreement; now it carries that agreement once.)
NEUTRAL_LEVELS: frozenset[tuple[str, str]] = frozenset({
    ("birth_date", "exact_implied_by_id"), ("birth_date", "coarser_implied_by_id"), ("sex", "implied_by_id"),
})


# Levels whose m and u are estimated as another level of the field (the same agreement; only its
# weight differs, see NEUTRAL_LEVELS): a pair agreeing on a birth date both IDs state is counted
# with ``exact`` when m and u are estimated. Splitting them would make m(exact) the share of
# matches agreeing WITHOUT both IDs, which understates exact agreement for records lacking an ID.
ESTIMATED_AS: dict[tuple[str, str], str] = {("birth_date", "exact_implied_by_id"): "exact",
                                             ("birth_date", "coarser_implied_by_id"): "coarser_equal",
                                             ("sex", "implied_by_id"): "equal"}


def estimation_levels(levels: np.ndarray, comparators: Sequence[Comparator]) -> np.ndarray:
    """``levels`` (pairs x fields) with every ESTIMATED_AS level replaced by the level it is
    estimated as (a copy when anything changes)."""
    out = levels
    for f, c in enumerate(comparators):
        for k, lv in enumerate(c.levels):
            target = ESTIMATED_AS.get((c.field, lv))
            if target is None:
                continue
            hit = levels[:, f] == k
            if hit.any():
                if out is levels:
                    out = levels.copy()
                out[hit, f] = c.levels.index(target)
    return out


@dataclass
class FieldParams:
    field: str
    levels: tuple[str, ...]
    m: list[float]
    u: list[float]

    def weights(self) -> np.ndarray:
        m = np.maximum(np.asarray(self.m, float), PROB_FLOOR)
        u = np.maximum(np.asarray(self.u, float), PROB_FLOOR)
        w = np.log2(m / u)
        for k, lv in enumerate(self.levels):
            if (self.field, lv) in NEUTRAL_LEVELS:
                w[k] = 0.0
        return w


@dataclass
class Model:
    """A trained model: prior match probability among candidate pairs and per-field parameters."""

    prior: float
    fields: list[FieldParams]
    trained_on: dict[str, Any] = field(default_factory=dict)
    # A prior per value of one left-side column (``strata_column``, e.g. flow_status): an
    # out-migrant is far more likely than a resident to be in the destination registry.
    strata_column: str | None = None
    strata: dict[str, float] = field(default_factory=dict)

    @property
    def prior_weight(self) -> float:
        return _log_odds(self.prior)

    def pair_prior_weights(self, labels: np.ndarray | None) -> np.ndarray | float:
        """The prior's log2 odds per pair, from each pair's left-record stratum label (the
        global prior for unknown labels, or for every pair when the model has no strata)."""
        if labels is None or not self.strata:
            return self.prior_weight
        table = {k: _log_odds(v) for k, v in self.strata.items()}
        codes, uniq = pd.factorize(pd.Series(labels, dtype=object).fillna(""))
        per = np.array([table.get(str(u), self.prior_weight) for u in uniq], dtype=float)
        return per[codes] if len(uniq) else np.zeros(0)

    def weight_table(self) -> list[np.ndarray]:
        return [f.weights() for f in self.fields]

    def to_json(self) -> dict[str, Any]:
        return {
            "prior": self.prior,
            "prior_weight": self.prior_weight,
            "fields": [
                {
                    "field": f.field,
                    "levels": [
                        {"level": lv, "m": f.m[k], "u": f.u[k], "weight": float(f.weights()[k])}
                        for k, lv in enumerate(f.levels)
                    ],
                }
                for f in self.fields
            ],
            "trained_on": self.trained_on,
            "strata_column": self.strata_column,
            "strata": {k: {"prior": v, "prior_weight": _log_odds(v)} for k, v in self.strata.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Model":
        fields = [
            FieldParams(
                f["field"],
                tuple(lv["level"] for lv in f["levels"]),
                [float(lv["m"]) for lv in f["levels"]],
                [float(lv["u"]) for lv in f["levels"]],
            )
            for f in data["fields"]
        ]
        strata = {str(k): float(v["prior"]) for k, v in (data.get("strata") or {}).items()}
        return cls(prior=float(data["prior"]), fields=fields, trained_on=dict(data.get("trained_on", {})),
                   strata_column=data.get("strata_column"), strata=strata)

    def check_compatible(self, comparators: Sequence[Comparator]) -> None:
        got = [(f.field, f.levels) for f in self.fields]
        want = [(c.field, c.levels) for c in comparators]
        if got != want:
            raise ValueError("the stored model was trained with other comparators/levels")


def level_frequencies(levels: np.ndarray, n_levels: Sequence[int]) -> list[np.ndarray]:
    """Per field, the share of each level among non-missing values (with add-half smoothing)."""
    out = []
    for f, k in enumerate(n_levels):
        col = levels[:, f]
        col = col[col != MISSING]
        counts = np.bincount(col.astype(np.int64), minlength=k).astype(float)
        out.append((counts + 0.5 / k) / (counts.sum() + 0.5))
    return out


# What m looks like on registries of this kind (rounded from models trained on generated data),
# by level name. It starts EM, and it stands in for a field no session could train (a registry of a
# few hundred people gives too few candidate pairs). Levels not listed get a small share.
DEFAULT_M: dict[str, dict[str, float]] = {
    "id_number": {"exact": 0.92, "exact_upgraded": 0.03, "exact_recoded": 0.01, "typo": 0.02, "excel_prefix": 0.01,
                  "same_region_birth": 0.002, "different": 0.01, "different_valid": 0.003},
    "name": {"exact": 0.90, "same_pinyin": 0.05, "shape_alike": 0.005, "sound_alike": 0.005, "one_char": 0.01, "contained": 0.01,
             "latin_pinyin": 0.01, "different": 0.005},
    "birth_date": {"exact": 0.55, "coarser_equal": 0.38, "within_2_days": 0.01, "day_month_swapped": 0.01,
                   "lunar_shift": 0.01, "same_year": 0.03, "exact_implied_by_id": 0.001,
                   "coarser_implied_by_id": 0.001, "different": 0.01},
    "sex": {"equal": 0.98, "implied_by_id": 0.001, "different": 0.02},
    "hukou": {"same_county": 0.93, "same_city": 0.04, "same_province": 0.01, "different": 0.02},
    "address": {"exact": 0.80, "similar": 0.08, "same_place": 0.04, "different": 0.08},
    "residence": {"exact": 0.60, "similar": 0.05, "same_place": 0.05, "different": 0.30},
}


def initial_m(comparators: Sequence[Comparator]) -> list[list[float]]:
    """Default m per comparator (DEFAULT_M by level name; otherwise most mass on the strongest level)."""
    out = []
    for c in comparators:
        k = len(c.levels)
        table = DEFAULT_M.get(c.field)
        if table:
            raw = np.array([table.get(lv, 0.005) for lv in c.levels], float)
        else:
            raw = np.array([0.9] + [0.1 * (0.5 ** i) for i in range(1, k)], float)
            raw[-1] = min(raw[-1], 0.02)
        out.append(list(raw / raw.sum()))
    return out


def patterns(levels: np.ndarray, ordered: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of the level matrix: (patterns, counts, inverse index per pair); in the
    packed rows' sorted order, or with ``ordered=False`` in order of first appearance (hashed, not
    sorted: 4.4 M pairs in a fraction of the time)."""
    if levels.shape[0] == 0:
        return levels, np.empty(0, np.int64), np.empty(0, np.int64)
    # Shift -1..k to 0..k+1 and pack each row into one int64 key for a fast unique.
    shifted = levels.astype(np.int64) + 1
    base = int(shifted.max()) + 1
    key = np.zeros(levels.shape[0], np.int64)
    for f in range(levels.shape[1]):
        key = key * base + shifted[:, f]
    if not ordered:
        inverse, uniq = pd.factorize(key, sort=False)
        first = np.empty(len(uniq), dtype=np.int64)
        first[inverse[::-1]] = np.arange(len(inverse) - 1, -1, -1)   # (any pair of a pattern would do)
        return levels[first], np.bincount(inverse, minlength=len(uniq)), inverse.astype(np.int64)
    uniq, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    return levels[first], counts, inverse


def pattern_log2_bf(pats: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """Sum of field weights per pattern (missing levels add 0)."""
    total = np.zeros(pats.shape[0])
    for f, w in enumerate(weights):
        col = pats[:, f].astype(np.int64)
        total += np.where(col == MISSING, 0.0, w[np.maximum(col, 0)])
    return total


def train_em(
    levels: np.ndarray,
    comparators: Sequence[Comparator],
    u: list[np.ndarray],
    *,
    m_init: list[list[float]] | None = None,
    prior_init: float = 0.01,
    max_iter: int = 60,
    tol: float = 1e-6,
    fix_m: dict[str, list[float]] | None = None,
    offset: np.ndarray | None = None,
) -> tuple[Model, int]:
    """Estimate m and the prior by EM on the candidate pairs' levels, u held fixed.

    ``offset``: a per-pair log2 adjustment added in the E-step (term-frequency evidence: two
    records agreeing on 王伟 are weaker evidence than the level alone says). With an offset EM
    runs per pair; without, over the distinct level patterns.
    Returns the model and the number of iterations run.
    """
    if offset is None:
        pats, counts, _ = patterns(levels)
        counts = counts.astype(float)
        off = 0.0
    else:
        pats, counts, off = levels, np.ones(levels.shape[0]), np.asarray(offset, float)
    m = [np.asarray(x, float) for x in (m_init or initial_m(comparators))]
    prior = prior_init
    it = 0
    for it in range(1, max_iter + 1):
        weights = [FieldParams(c.field, c.levels, list(mi), list(ui)).weights()
                   for c, mi, ui in zip(comparators, m, u)]
        lbf = pattern_log2_bf(pats, weights) + off
        logit = lbf + math.log2(prior / (1 - prior))
        p = 1.0 / (1.0 + np.exp2(-np.clip(logit, -60, 60)))
        wp = p * counts
        new_prior = float(wp.sum() / counts.sum())
        new_m = []
        for f, c in enumerate(comparators):
            col = pats[:, f]
            k = len(c.levels)
            valid = col != MISSING
            mass = np.bincount(col[valid].astype(np.int64), weights=wp[valid], minlength=k)
            if fix_m and c.field in fix_m:
                new_m.append(np.asarray(fix_m[c.field], float))
                continue
            total = mass.sum()
            new_m.append((mass + 1e-6) / (total + 1e-6 * k) if total > 0 else m[f])
        delta = max(abs(new_prior - prior), max(float(np.max(np.abs(a - b))) for a, b in zip(new_m, m)))
        m, prior = new_m, min(max(new_prior, 1e-9), 1 - 1e-9)
        if delta < tol:
            break
    model = Model(
        prior=prior,
        fields=[FieldParams(c.field, c.levels, [float(x) for x in m[f]], [float(x) for x in u[f]]) for f, c in enumerate(comparators)],
    )
    return model, it


# --- training by sessions --------------------------------------------------------------------
# Candidate pairs are not random pairs: the non-matches inside a block agree on the block's key.
# As in Splink, m is therefore estimated in sessions, one per training blocking pass, each
# running EM on that pass's pairs with the blocked fields left out; a field's m is the mean over
# the sessions that estimated it, each weighted by the matches it saw (its prior times its pairs).
# Unweighted (Splink's), a birth date + sex block at 1,000,000 persons (1 match in 80 pairs, many
# same-day neighbours of one county) moved the name's m(different) from 0.04 to 0.21 against the
# ID session's 300,000 matches, and 114 pairs of twins' numbers under two names became matches.

def train_sessions(
    levels: np.ndarray,
    session_masks: Sequence[tuple[str, np.ndarray, frozenset[str]]],
    comparators: Sequence[Comparator],
    u: list[np.ndarray],
    max_iter: int = 60,
    offsets: dict[str, np.ndarray] | None = None,
) -> tuple[list[list[float]], dict[str, Any]]:
    """m per field from EM sessions, each session's estimate weighted by the matches it saw (its
    ``matches`` in the info returned). ``session_masks``: (name, boolean pair mask, fields blocked on).
    ``offsets``: per field, per pair term-frequency adjustments (used for the fields in a session)."""
    k_fields = len(comparators)
    sums: list[np.ndarray | None] = [None] * k_fields
    counts = [0.0] * k_fields   # matches behind each field's estimate
    info: dict[str, Any] = {}
    defaults = initial_m(comparators)
    for entry in session_masks:
        name, mask, blocked = entry[0], entry[1], entry[2]
        trains = entry[3] if len(entry) > 3 else None
        use = [f for f, c in enumerate(comparators) if c.field not in blocked]
        sub = levels[mask][:, use]
        if sub.shape[0] < 20 or not use:
            info[name] = {"pairs": int(sub.shape[0]), "skipped": "too few pairs"}
            continue
        comps = [comparators[f] for f in use]
        off = None
        if offsets:
            parts = [offsets[comparators[f].field][mask] for f in use if comparators[f].field in offsets]
            off = np.sum(parts, axis=0) if parts else None
        model, iters = train_em(sub, comps, [u[f] for f in use], m_init=[defaults[f] for f in use],
                                prior_init=0.1, max_iter=max_iter, offset=off)
        info[name] = {"pairs": int(sub.shape[0]), "iterations": iters, "session_prior": model.prior,
                      "fields": [comparators[f].field for f in use]}
        matches = model.prior * sub.shape[0]
        info[name]["matches"] = matches
        for pos, f in enumerate(use):
            if trains is not None and comparators[f].field not in trains:
                continue   # in the E-step only: this session's estimate of it is biased
            m = np.asarray(model.fields[pos].m, float) * matches
            sums[f] = m if sums[f] is None else sums[f] + m
            counts[f] += matches
    m_out = []
    for f in range(k_fields):
        if counts[f] > 0:
            m = sums[f] / counts[f]
            m_out.append(list(m / m.sum()))
        else:
            m_out.append(defaults[f])
            info.setdefault("untrained_fields", []).append(comparators[f].field)
    return m_out, info


def _log_odds(p: float) -> float:
    p = min(max(p, PROB_FLOOR), 1 - PROB_FLOOR)
    return math.log2(p / (1 - p))


# How many left records' worth of the global prior a stratum's own estimate is blended with: a
# stratum of a handful of records (three rows with an unreadable flow status) keeps about the
# global prior instead of an estimate from three records; one of thousands keeps its own.
STRATUM_PSEUDO_RECORDS = 100.0


def estimate_strata_priors(lbf: np.ndarray, pair_labels: np.ndarray, left_labels: np.ndarray, n_right: int,
                           global_prior: float, inverse: np.ndarray | None = None) -> dict[str, float]:
    """P(match) for a random pair whose left record is in each stratum: ``estimate_prior`` over
    that stratum's pairs (its left records times ``n_right``), shrunk towards ``global_prior`` by
    STRATUM_PSEUDO_RECORDS left records' worth of pairs. With ``inverse`` (each pair's pattern,
    ``patterns``), ``lbf`` holds one value per pattern."""
    pl = pd.Series(pair_labels, dtype=object).fillna("").astype(str).to_numpy(object)
    counts = pd.Series(left_labels, dtype=object).fillna("").astype(str).value_counts()
    n_right = max(n_right, 1)

    def of(label: str) -> dict[str, Any]:
        if inverse is None:
            return {"lbf": lbf[pl == label]}
        return {"lbf": lbf, "counts": np.bincount(inverse[pl == label], minlength=len(lbf))}

    return {str(label): estimate_prior(**of(label), total_pairs=float(n_left) * n_right, start=global_prior,
                                       pseudo_pairs=STRATUM_PSEUDO_RECORDS * n_right, pseudo_prior=global_prior)
            for label, n_left in counts.items()}


def estimate_prior(lbf: np.ndarray, total_pairs: float, start: float, max_iter: int = 200,
                   pseudo_pairs: float = 0.0, pseudo_prior: float = 0.0,
                   counts: np.ndarray | None = None) -> float:
    """P(match) for a random record pair, by EM over the whole pair space.

    ``lbf``: log2 Bayes factors (sum of field weights, no prior) of the candidate pairs; pairs
    outside the candidates are taken to be non-matches. Iterates lambda = sum(posterior) / total,
    with ``pseudo_pairs`` pairs at ``pseudo_prior`` added to both (a prior on lambda).
    ``counts``: ``lbf`` is one value per comparison pattern, held by this many pairs each (the same
    sums over a few thousand values instead of millions of pairs, each iteration).
    """
    lam = min(max(start, 1e-15), 0.5)
    for _ in range(max_iter):
        logit = lbf + math.log2(lam / (1 - lam))
        p = 1.0 / (1.0 + np.exp2(-np.clip(logit, -200, 200)))
        mass = float(p.sum()) if counts is None else float(p @ counts)
        new = (mass + pseudo_pairs * pseudo_prior) / (total_pairs + pseudo_pairs)
        new = min(max(new, 1e-15), 0.5)
        if abs(new - lam) <= 1e-9 * lam:
            lam = new
            break
        lam = new
    return lam
