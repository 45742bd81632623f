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


def one_to_one(
    li: np.ndarray,
    ri: np.ndarray,
    prob: np.ndarray,
    decision: np.ndarray,
    left_person: np.ndarray,
    right_person: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep at most one MATCH per record, strongest first, except where the other side holds
    duplicates of the same person (``*_person``: within-file cluster label per record): then every
    duplicate keeps its match. Demoted pairs become REVIEW.

    Returns (new decisions, boolean mask of demoted pairs).
    """
    out = decision.copy()
    demoted = np.zeros(len(decision), dtype=bool)
    idx = np.nonzero(decision == MATCH)[0]
    idx = idx[np.argsort(-prob[idx], kind="stable")]
    left_taken: dict[int, int] = {}    # left record -> right person it matched
    right_taken: dict[int, int] = {}   # right record -> left person it matched
    for k in idx.tolist():
        i, j = int(li[k]), int(ri[k])
        lp, rp = int(left_person[i]), int(right_person[j])
        ok = True
        if i in left_taken and left_taken[i] != rp:
            ok = False   # i already matched another person on the right
        if j in right_taken and right_taken[j] != lp:
            ok = False
        if ok:
            left_taken.setdefault(i, rp)
            right_taken.setdefault(j, lp)
        else:
            out[k] = REVIEW
            demoted[k] = True
    return out, demoted
