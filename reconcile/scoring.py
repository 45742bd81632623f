"""Scoring candidate pairs with a Fellegi-Sunter model, including term-frequency adjustment.

Term frequency: agreeing on 王伟 is weak evidence, agreeing on 欧阳晓棠 is strong. For the
exact level of the fields in TF_FIELDS the u probability is replaced by how often the agreed
value occurs (Splink's approach): weight = log2(m_exact / tf(value)).
"""
from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from matchers.base import MISSING
from reconcile.model import PROB_FLOOR, Model

# field -> standardised column holding the value whose frequency adjusts the exact level.
TF_FIELDS: dict[str, str] = {"name": "name", "birth_date": "k_birth"}

# The cross-registry prior is estimated per origin flow status (流出 / 常住 / unknown): a random
# destination record is the same person as an out-migrant far more often than as a resident, and
# one global prior undersold every out-migrant's evidence and oversold every resident's. Each
# stratum's prior comes from the data (EM), so a file without the column keeps one prior.
PRIOR_STRATA = "flow_status"


@dataclass
class TermFrequencies:
    """Relative frequency of each value over both registries, per TF field."""

    tables: dict[str, dict[str, float]]
    # per field, its values as an index (hashed once) and their frequencies: Series.map(dict)
    # built a Series of the whole table again on every call (1.6 s of a 1,000,000-person scoring)
    _lookup: dict = dataclass_field(default_factory=dict, repr=False, compare=False)

    def frequencies(self, field: str, values: np.ndarray) -> np.ndarray:
        """The relative frequency of each of ``values`` in ``field``'s table (NaN where unseen)."""
        got = self._lookup.get(field)
        if got is None:
            table = self.tables.get(field, {})
            got = self._lookup[field] = (pd.Index(list(table), dtype=object),
                                         np.fromiter(table.values(), dtype=np.float64, count=len(table)))
        index, freqs = got
        if not len(freqs):
            return np.full(len(values), np.nan)
        pos = index.get_indexer(np.asarray(values, dtype=object))
        return np.where(pos >= 0, freqs[np.maximum(pos, 0)], np.nan)

    @classmethod
    def build(cls, *frames: pd.DataFrame) -> "TermFrequencies":
        return cls.from_counts([term_counts(f) for f in frames])

    @classmethod
    def from_counts(cls, counts: Sequence[Mapping[str, pd.Series]]) -> "TermFrequencies":
        """The frequencies over several registries from each one's ``term_counts`` (counted where
        and when each was loaded: reconcile.parallel)."""
        tables = {}
        for field in TF_FIELDS:
            parts = [c[field] for c in counts if field in c and len(c[field])]
            if not parts:
                tables[field] = {}
                continue
            total = parts[0] if len(parts) == 1 else pd.concat(parts).groupby(level=0, sort=False).sum()
            tables[field] = (total / total.sum()).to_dict()
        return cls(tables)

    def summary(self) -> dict:
        return {f: {"distinct": len(t), "max": max(t.values()) if t else 0.0} for f, t in self.tables.items()}


def term_counts(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """How many records of ``frame`` hold each non-empty value of each TF field (int64 counts
    indexed by value; a field whose column the frame lacks is left out)."""
    out = {}
    for field, col in TF_FIELDS.items():
        if col in frame.columns:
            vals = frame[col].astype(str)
            out[field] = vals[vals != ""].value_counts().astype(np.int64)
    return out


def tf_offsets(levels: np.ndarray, field_names: list[str], u: list[np.ndarray],
               tf: TermFrequencies | None, tf_values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per TF field, the log2 adjustment log2(u_exact / tf(value)) on pairs agreeing exactly, else 0."""
    out: dict[str, np.ndarray] = {}
    if tf is None:
        return out
    for field in TF_FIELDS:
        if field not in field_names or field not in tf_values:
            continue
        f = field_names.index(field)
        adj = np.zeros(levels.shape[0])
        exact = levels[:, f] == 0
        if exact.any():
            u_exact = max(float(u[f][0]), PROB_FLOOR)
            freqs = tf.frequencies(field, tf_values[field][exact])
            freqs = np.where(np.isnan(freqs), u_exact, np.maximum(freqs, PROB_FLOOR))
            adj[exact] = np.log2(u_exact / freqs)
        out[field] = adj
    return out


@dataclass
class Scores:
    weight: np.ndarray          # total log2 Bayes factor incl. prior
    probability: np.ndarray
    field_weights: np.ndarray   # pairs x fields (0 where missing), TF included; float32 (for evidence)
    tf_adjust: np.ndarray       # pairs x len(TF_FIELDS) adjustments (already in field_weights); float32
    # log2 one-person adjustment per pair (already in weight; reconcile.decide), when applied
    one_person: np.ndarray | None = None

    def prior_weights(self, ks: np.ndarray) -> np.ndarray:
        """The prior's log2 odds of pairs ``ks``: what the weight holds beyond fields and adjustment."""
        extra = 0.0 if self.one_person is None else self.one_person[ks]
        return self.weight[ks] - self.field_weights[ks].astype(np.float64).sum(axis=1) - extra


def score(
    levels: np.ndarray,
    model: Model,
    tf: TermFrequencies | None = None,
    tf_values: dict[str, np.ndarray] | None = None,
    strata_values: np.ndarray | None = None,
) -> Scores:
    """Weights and probabilities for every pair. ``tf_values[field]`` is the left record's value of
    that field per pair (only used where the pair agrees exactly); ``strata_values`` the left
    record's value of ``model.strata_column`` per pair (the prior of its stratum)."""
    n, nf = levels.shape
    # The per-field detail is kept only to explain reported pairs (evidence_json), so in float32:
    # 36 bytes a pair less, tens of millions of pairs at a million people. The weight itself is
    # summed in float64, field by field, then the TF adjustments.
    fw = np.zeros((n, nf), dtype=np.float32)
    weight = np.zeros(n)
    for f, params in enumerate(model.fields):
        w = np.concatenate([params.weights(), [0.0]])       # the extra slot: MISSING (-1) weighs 0
        wf = w[levels[:, f]]
        weight += wf
        fw[:, f] = wf
    tf_adj = np.zeros((n, len(TF_FIELDS)), dtype=np.float32)
    if tf is not None and tf_values is not None:
        names = [p.field for p in model.fields]
        for t, (field, _) in enumerate(TF_FIELDS.items()):
            if field not in names or field not in tf_values:
                continue
            f = names.index(field)
            params = model.fields[f]
            exact = levels[:, f] == 0
            if not exact.any():
                continue
            freqs = tf.frequencies(field, tf_values[field][exact])
            u_exact = max(params.u[0], PROB_FLOOR)
            freqs = np.where(np.isnan(freqs), u_exact, np.maximum(freqs, PROB_FLOOR))
            adj = np.log2(u_exact / freqs)
            tf_adj[exact, t] = adj
            fw[exact, f] += adj
            weight[exact] += adj
    weight += model.pair_prior_weights(strata_values)
    prob = 1.0 / (1.0 + np.exp2(-np.clip(weight, -200, 200)))
    return Scores(weight=weight, probability=prob, field_weights=fw, tf_adjust=tf_adj)


def strata_values(model: Model, left: pd.DataFrame, positions: np.ndarray) -> np.ndarray | None:
    """The left record's stratum label per pair (``positions``: left positions), or None when
    the model has no strata or the frame lacks the column."""
    col = model.strata_column
    if not model.strata or col is None or col not in left.columns:
        return None
    return left[col].astype(str).to_numpy(object)[positions]
