"""Fellegi-Sunter training: EM recovers known m (and the prior) from unlabelled pairs."""
from __future__ import annotations

import numpy as np

from matchers.base import MISSING, Comparator
from reconcile.model import estimate_prior, pattern_log2_bf, train_em, train_sessions


def _comp(field: str, k: int) -> Comparator:
    return Comparator(field=field, levels=tuple(f"l{i}" for i in range(k)), columns=(field,), fn=lambda a, b: None)


COMPS = [_comp("id_number", 3), _comp("name", 3), _comp("birth_date", 4), _comp("sex", 2)]
TRUE_M = [np.array([0.85, 0.1, 0.05]), np.array([0.8, 0.15, 0.05]), np.array([0.6, 0.3, 0.07, 0.03]), np.array([0.97, 0.03])]
TRUE_U = [np.array([0.001, 0.01, 0.989]), np.array([0.002, 0.03, 0.968]), np.array([0.0005, 0.01, 0.1, 0.8895]), np.array([0.5, 0.5])]


def simulate(n: int, prior: float, seed: int = 0, missing: float = 0.05):
    rng = np.random.default_rng(seed)
    is_match = rng.random(n) < prior
    levels = np.empty((n, len(COMPS)), np.int8)
    for f, (m, u) in enumerate(zip(TRUE_M, TRUE_U)):
        lm = rng.choice(len(m), size=n, p=m)
        lu = rng.choice(len(u), size=n, p=u)
        levels[:, f] = np.where(is_match, lm, lu)
    levels[rng.random(levels.shape) < missing] = MISSING
    return levels, is_match


def test_em_recovers_m_and_prior():
    levels, is_match = simulate(200_000, prior=0.2, seed=1)
    model, iters = train_em(levels, COMPS, TRUE_U, prior_init=0.05)
    assert iters < 60
    assert abs(model.prior - is_match.mean()) < 0.01
    for f, m in enumerate(TRUE_M):
        np.testing.assert_allclose(model.fields[f].m, m, atol=0.02)


def test_missing_levels_do_not_count_as_disagreement():
    levels, _ = simulate(50_000, prior=0.3, seed=2, missing=0.3)
    model, _ = train_em(levels, COMPS, TRUE_U, prior_init=0.1)
    # m must stay a distribution over real levels only
    for f in model.fields:
        assert abs(sum(f.m) - 1) < 1e-6
    w = [f.weights() for f in model.fields]
    row = np.array([[MISSING, MISSING, MISSING, MISSING]], np.int8)
    assert pattern_log2_bf(row, w)[0] == 0.0


def test_sessions_leave_blocked_fields_out():
    levels, is_match = simulate(100_000, prior=0.3, seed=3)
    # a session blocked on id_number: its pairs all agree there, so it must not estimate id m
    mask_a = levels[:, 0] == 0
    mask_b = levels[:, 3] == 0
    m, info = train_sessions(levels, [("a", mask_a, frozenset({"id_number"})), ("b", mask_b, frozenset({"sex"}))], COMPS, TRUE_U)
    assert info["a"]["fields"] == ["name", "birth_date", "sex"]
    assert info["b"]["fields"] == ["id_number", "name", "birth_date"]
    np.testing.assert_allclose(m[1], TRUE_M[1], atol=0.03)
    np.testing.assert_allclose(m[2], TRUE_M[2], atol=0.03)


def test_sessions_count_as_much_as_the_matches_they_saw():
    """A field's m pools the sessions by their matches (prior x pairs): a session of pairs that
    agree on the ID number (nearly all matches) outweighs one whose pairs are mostly different
    people (a birth date + sex block at 1,000,000 persons, where EM also takes same-day neighbours
    of one county for matches and reads 'different name' as a common error of true matches)."""
    rng = np.random.default_rng(6)

    def pairs(n, prior, name_m):
        is_match = rng.random(n) < prior
        levels = np.empty((n, len(COMPS)), np.int8)
        for f, (m, u) in enumerate(zip(TRUE_M, TRUE_U)):
            m = name_m if f == 1 else m
            levels[:, f] = np.where(is_match, rng.choice(len(m), size=n, p=m), rng.choice(len(u), size=n, p=u))
        return levels

    many = pairs(40_000, 0.95, TRUE_M[1])                        # nearly all matches
    few = pairs(40_000, 0.01, np.array([0.4, 0.1, 0.5]))         # a biased estimate of the name's m
    levels = np.vstack([many, few])
    in_many = np.arange(len(levels)) < len(many)
    m, info = train_sessions(levels, [("id", in_many, frozenset({"id_number"})),
                                      ("birth_sex", ~in_many, frozenset({"sex"}))], COMPS, TRUE_U)
    np.testing.assert_allclose(m[1], TRUE_M[1], atol=0.03)   # an equal mean: 0.6 for exact, 0.27 different
    assert info["id"]["matches"] > 50 * info["birth_sex"]["matches"]


def test_prior_over_the_whole_pair_space():
    # 1,000 x 1,000 records, 400 true matches among 5,000 candidate pairs
    rng = np.random.default_rng(4)
    lbf = np.concatenate([rng.normal(25, 2, 400), rng.normal(-10, 3, 4600)])
    prior = estimate_prior(lbf, total_pairs=1e6, start=1e-4)
    assert abs(prior * 1e6 - 400) < 20


def test_prior_over_patterns_with_their_counts_is_the_prior_over_pairs():
    """train_model estimates the prior over the distinct comparison patterns, each weighted by
    how many pairs hold it: the same estimate as over every pair (to rounding), overall and per
    stratum."""
    from reconcile.model import estimate_strata_priors, patterns

    levels, is_match = simulate(300_000, prior=0.02, seed=5)
    weights = [np.log2(m / u) for m, u in zip(TRUE_M, TRUE_U)]
    per_pair = pattern_log2_bf(levels, weights)
    pats, counts, inverse = patterns(levels, ordered=False)
    assert len(pats) < 1_000 and counts.sum() == len(levels) and (pats[inverse] == levels).all()
    sorted_pats, sorted_counts, _ = patterns(levels)    # the same patterns and counts, in another order
    assert sorted(zip(map(tuple, pats.tolist()), counts.tolist())) == list(zip(map(tuple, sorted_pats.tolist()),
                                                                              sorted_counts.tolist()))
    total = 3e7
    by_pair = estimate_prior(per_pair, total_pairs=total, start=1e-4)
    by_pattern = estimate_prior(pattern_log2_bf(pats, weights), total_pairs=total, start=1e-4, counts=counts)
    assert 0.5 * is_match.sum() < by_pair * total < 1.5 * is_match.sum()
    assert by_pattern == np.float64(by_pair) or abs(by_pattern - by_pair) < 1e-9 * by_pair
    rng = np.random.default_rng(6)
    left_labels = rng.choice(np.array(["out", "resident", ""], dtype=object), 10_000, p=[0.6, 0.35, 0.05])
    pair_labels = left_labels[rng.integers(0, 10_000, len(levels))]
    a = estimate_strata_priors(per_pair, pair_labels, left_labels, 3_000, by_pair)
    b = estimate_strata_priors(pattern_log2_bf(pats, weights), pair_labels, left_labels, 3_000, by_pair, inverse=inverse)
    assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 * a[k] for k in a)
