"""Decisions from probabilities: thresholds, then one-to-one preference across registries."""
from __future__ import annotations

import numpy as np
import pandas as pd

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


# An origin record is one person, so at most one person of the other registry is its match. With
# pi = P(the record has a match there at all) (its stratum prior times the other registry's size:
# about 0.76 for the fixtures' out-migrants, 0.03 for residents), Bayes gives candidate d
#     P(d) = lambda*BF_d / ((1 - pi) + sum over its candidates c of lambda*BF_c),
# one term per person of the other file (its duplicates count once). Pairwise Fellegi-Sunter
# has 1 - lambda in place of (1 - pi) + the rivals: it undersells an out-migrant's only plausible
# candidate and oversells one of several. pi is capped: no data make a record certain to be there.
ONE_PERSON_PI_MAX = 0.95


def one_person_adjustment(
    li: np.ndarray,
    ri: np.ndarray,
    weight: np.ndarray,
    prior_weight: np.ndarray | float,
    right_person: np.ndarray,
    n_left: int,
    n_right: int,
    eligible: np.ndarray,
    rest_sum: np.ndarray | None = None,
) -> np.ndarray:
    """log2 adjustment per pair (0 where not ``eligible``) turning the pairwise weight into the
    one-person posterior above. ``weight``: pairwise log2 odds (prior included); ``prior_weight``:
    each pair's prior log2 odds; ``eligible``: the pairs to adjust (those at or above the review
    threshold), whose records of one person (``right_person``) count once. Every other candidate
    is a rival of its own: ``rest_sum`` is, per left record, the sum of 2**weight over those
    (computed here from all pairs unless given: the Spark engine holds only the eligible ones)."""
    adj = np.zeros(len(weight))
    if not eligible.any():
        return adj
    x = np.exp2(np.clip(weight, -200, 200))
    if rest_sum is None:
        rest_sum = np.bincount(li[~eligible], weights=x[~eligible], minlength=n_left)
    k = np.flatnonzero(eligible)
    g = pd.DataFrame({"i": li[k], "p": right_person[ri[k]], "x": x[k]})
    grp = g.groupby(["i", "p"], sort=False)
    gid = grp.ngroup().to_numpy()                          # one id per (record, person)
    gmax = grp["x"].transform("max").to_numpy()
    gi = g["i"].to_numpy()
    # per record: its strongest person and the other persons' sum, added (never subtracted from a
    # total, where a best candidate of 2**60 would swamp a rival of 2**3)
    n_groups = int(gid.max()) + 1
    g_i = np.zeros(n_groups, np.int64)
    g_x = np.zeros(n_groups)
    g_i[gid], g_x[gid] = gi, gmax
    order = np.lexsort((-g_x, g_i))                        # per record, strongest person first
    top_group = np.full(n_left, -1, np.int64)
    first = np.r_[True, g_i[order][1:] != g_i[order][:-1]]
    top_group[g_i[order][first]] = order[first]
    not_top = top_group[g_i] != np.arange(n_groups)
    others = np.bincount(g_i[not_top], weights=g_x[not_top], minlength=n_left)
    top = np.zeros(n_left)
    top[g_i[order][first]] = g_x[order][first]
    mine_top = top_group[gi] == gid
    rivals = rest_sum[gi] + np.where(mine_top, others[gi], others[gi] - gmax + top[gi])
    lam = 1.0 / (1.0 + np.exp2(-np.broadcast_to(np.asarray(prior_weight, float), weight.shape)[k]))
    pi = np.minimum(lam * n_right, ONE_PERSON_PI_MAX)
    # 2**weight is the pairwise odds lambda*BF / (1 - lambda): rivals * (1 - lambda) is their lambda*BF
    adj[k] = np.log2((1.0 - lam) / np.maximum((1.0 - pi) + (1.0 - lam) * rivals, 1e-300))
    return adj
