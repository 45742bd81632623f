"""The stratified prior (per origin flow status) and the one-person posterior across registries."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reconcile.decide import ONE_PERSON_PI_MAX, one_person_adjustment
from reconcile.model import STRATUM_PSEUDO_RECORDS, FieldParams, Model, estimate_strata_priors


def _sigmoid(w):
    return 1.0 / (1.0 + np.exp2(-np.asarray(w, float)))


# --- strata priors ------------------------------------------------------------------------------
def test_out_migrants_get_a_higher_prior_than_residents():
    # 1,000 out-migrants each with one strong candidate (30 bits), 1,000 residents whose
    # candidates are all weak: the data say an out-migrant is found, a resident is not.
    left = np.array(["out"] * 1000 + ["resident"] * 1000, dtype=object)
    pair_left = np.arange(2000)
    lbf = np.where(pair_left < 1000, 30.0, -5.0)
    n_right = 5000
    pri = estimate_strata_priors(lbf, left[pair_left], left, n_right, global_prior=1000 / (2000 * n_right))
    assert pri["out"] > 10 * pri["resident"]
    # every out-migrant is matched: lambda * n_right is 1, shrunk towards the global 0.5
    assert pri["out"] * n_right == pytest.approx((1000 + STRATUM_PSEUDO_RECORDS * 0.5) / (1000 + STRATUM_PSEUDO_RECORDS),
                                                 rel=1e-3)


def test_a_tiny_stratum_keeps_about_the_global_prior():
    left = np.array(["out"] * 1000 + ["?"] * 3, dtype=object)
    pair_left = np.arange(1003)
    lbf = np.where(pair_left < 1000, 30.0, -40.0)     # the three unknowns have no real candidate
    g = 1e-4
    pri = estimate_strata_priors(lbf, left[pair_left], left, 5000, global_prior=g)
    assert pri["?"] == pytest.approx(g * STRATUM_PSEUDO_RECORDS / (3 + STRATUM_PSEUDO_RECORDS), rel=0.01)


def test_model_strata_round_trip_and_unknown_labels():
    f = FieldParams("name", ("exact", "different"), [0.9, 0.1], [0.01, 0.99])
    m = Model(prior=1e-5, fields=[f], strata_column="flow_status", strata={"out": 2e-5, "resident": 1e-6})
    back = Model.from_json(m.to_json())
    assert back.strata == m.strata and back.strata_column == "flow_status"
    w = back.pair_prior_weights(np.array(["out", "resident", "", "other"], dtype=object))
    assert w[0] == pytest.approx(math.log2(2e-5 / (1 - 2e-5)))
    assert w[1] == pytest.approx(math.log2(1e-6 / (1 - 1e-6)))
    assert w[2] == w[3] == pytest.approx(m.prior_weight)      # not a stratum: the global prior
    # a model of an earlier version (no strata) still loads and scores with one prior
    old = m.to_json()
    del old["strata"], old["strata_column"]
    assert Model.from_json(old).pair_prior_weights(np.array(["out"], dtype=object)) == pytest.approx(m.prior_weight)


# --- one-person posterior -----------------------------------------------------------------------
PRIOR_W = math.log2(2e-5 / (1 - 2e-5))     # an out-migrant's prior against a registry of 40,000
N_RIGHT = 40_000
LAM = 2e-5
PI = LAM * N_RIGHT                         # 0.8: an out-migrant is found four times in five


def _adjust(li, ri, weight, person=None, eligible=None, **kw):
    li, ri, weight = (np.asarray(x) for x in (li, ri, weight))
    person = np.arange(N_RIGHT) if person is None else person
    eligible = np.ones(len(li), bool) if eligible is None else eligible
    return one_person_adjustment(li, ri, weight.astype(float), PRIOR_W, person, int(li.max()) + 1, N_RIGHT,
                                 eligible, **kw)


def test_an_only_candidate_gains_what_the_prior_knew():
    # name + sex + county agree, nothing else known: pairwise 0.83 (odds 4.9)
    w = math.log2(4.9)
    adj = _adjust([0], [7], [w])
    p = _sigmoid(w + adj)[0]
    assert adj[0] == pytest.approx(math.log2((1 - LAM) / (1 - PI)))
    assert p == pytest.approx(4.9 / (4.9 + 1 - PI), rel=1e-4)
    assert p > 0.95


def test_two_equal_candidates_share_the_record():
    w = math.log2(50.0)
    adj = _adjust([0, 0], [3, 4], [w, w])
    p = _sigmoid(w + adj)
    assert p[0] == pytest.approx(p[1])
    assert p[0] == pytest.approx(50 / (50 + 50 + 1 - PI), rel=1e-4)
    assert p[0] < 0.5


def test_duplicates_of_one_person_do_not_compete():
    person = np.arange(N_RIGHT)
    person[4] = 3                                   # dest records 3 and 4 are one person
    w = math.log2(50.0)
    adj = _adjust([0, 0], [3, 4], [w, w], person=person)
    p = _sigmoid(w + adj)
    assert p[0] == pytest.approx(p[1]) == pytest.approx(50 / (50 + 1 - PI), rel=1e-4)


def test_weak_candidates_below_the_review_threshold_still_count_as_rivals():
    w_strong, w_weak = math.log2(20.0), math.log2(0.4)
    eligible = np.array([True, False, False])
    adj = _adjust([0, 0, 0], [1, 2, 3], [w_strong, w_weak, w_weak], eligible=eligible)
    assert adj[1] == adj[2] == 0.0                  # not adjusted: never shown to a reviewer
    p = _sigmoid(w_strong + adj[0])
    assert p == pytest.approx(20 / (20 + 0.8 + 1 - PI), rel=1e-4)
    # the Spark engine passes those rivals' sum instead of the pairs: the same answer
    rest = np.array([0.8])
    adj2 = _adjust([0], [1], [w_strong], rest_sum=rest)
    assert adj2[0] == pytest.approx(adj[0])


def test_a_huge_best_candidate_does_not_swamp_a_small_rival():
    # 2**60 next to 2**3: the best's rivals are 8 (+ 1 - pi), not lost in 2**60's rounding
    adj = _adjust([0, 0], [1, 2], [60.0, 3.0])
    assert adj[0] == pytest.approx(math.log2((1 - LAM) / (8 + 1 - PI)), rel=1e-4)


def test_a_resident_or_an_unknown_registry_share_is_capped():
    # pi from the prior: a prior saying "certainly there" is capped, so one weak candidate stays weak
    big_prior = math.log2(0.5)                       # lambda 1/3 against 40,000 records: pi >> 1
    li, ri = np.array([0]), np.array([1])
    adj = one_person_adjustment(li, ri, np.array([-3.0]), big_prior, np.arange(N_RIGHT), 1, N_RIGHT,
                                np.ones(1, bool))
    lam = 1 / 3
    assert adj[0] == pytest.approx(math.log2((1 - lam) / (1 - ONE_PERSON_PI_MAX)))
