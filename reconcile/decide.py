"""Decisions from probabilities: thresholds, then one-to-one preference across registries."""
from __future__ import annotations

import numpy as np

NONE, REVIEW, MATCH = 0, 1, 2
DECISION_NAMES = {NONE: "non_match", REVIEW: "review", MATCH: "match"}


def threshold_decisions(prob: np.ndarray, match_threshold: float, review_threshold: float) -> np.ndarray:
    """MATCH at or above the match threshold, REVIEW between the two, NONE below."""
    out = np.full(prob.shape, NONE, dtype=np.int8)
    out[prob >= review_threshold] = REVIEW
    out[prob >= match_threshold] = MATCH
    return out


# A record's best candidate keeps its MATCH over a rival (another person) only when it is this
# many bits (log2 Bayes factor) stronger: 5 bits = 32 times more likely. Closer rivals mean the
# data cannot tell the two apart (张艳 1984-03 against two 张艳 born in March 1984): a person decides.
AMBIGUITY_MARGIN_BITS = 5.0


def one_to_one(
    li: np.ndarray,
    ri: np.ndarray,
    prob: np.ndarray,
    decision: np.ndarray,
    left_person: np.ndarray,
    right_person: np.ndarray,
    weight: np.ndarray | None = None,
    margin: float = AMBIGUITY_MARGIN_BITS,
    fixed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most one MATCH per record, strongest first, except where the other side holds
    duplicates of the same person (``*_person``: within-file cluster label per record): then every
    duplicate keeps its match. Losing pairs become REVIEW; when the loser is within ``margin``
    bits of the winner (``weight``: match weights), the winner is demoted to REVIEW as well.

    ``fixed``: pairs a reviewer decided; they are never demoted and go first.
    Returns (new decisions, boolean mask of demoted pairs).
    """
    out = decision.copy()
    fixed = np.zeros(len(decision), bool) if fixed is None else fixed
    demoted = np.zeros(len(decision), dtype=bool)
    if weight is None:
        weight = np.log2(np.clip(prob, 1e-300, 1 - 1e-16) / np.clip(1 - prob, 1e-16, 1))
    idx = np.nonzero(decision == MATCH)[0]
    order_prob = np.where(fixed[idx], 2.0, np.nan_to_num(prob[idx], nan=0.0))
    idx = idx[np.argsort(-order_prob, kind="stable")]
    left_taken: dict[int, tuple[int, int]] = {}    # left record -> (right person, winning pair)
    right_taken: dict[int, tuple[int, int]] = {}   # right record -> (left person, winning pair)
    for k in idx.tolist():
        i, j = int(li[k]), int(ri[k])
        lp, rp = int(left_person[i]), int(right_person[j])
        rivals = []
        if i in left_taken and left_taken[i][0] != rp:
            rivals.append(left_taken[i][1])
        if j in right_taken and right_taken[j][0] != lp:
            rivals.append(right_taken[j][1])
        if not rivals:
            left_taken.setdefault(i, (rp, k))
            right_taken.setdefault(j, (lp, k))
            continue
        if fixed[k]:
            continue   # a reviewer's match stands next to another one (they decided both)
        out[k] = REVIEW
        demoted[k] = True
        for w in rivals:
            if not fixed[w] and weight[w] - weight[k] < margin and out[w] == MATCH:
                out[w] = REVIEW
                demoted[w] = True
    return out, demoted
