"""bench._metrics: pair, set and cluster-pairwise precision/recall/F1."""
from __future__ import annotations

import itertools
import random

import pytest

from bench._metrics import cluster_pairwise_prf, pair_prf, set_prf


def test_pair_prf_counts_ordered_cross_pairs():
    truth = {("o1", "d7"), ("o2", "d3"), ("o4", "d9")}
    pred = {("o1", "d7"), ("o2", "d3"), ("o5", "d1")}
    p, r, f = pair_prf(pred, truth)
    assert (p, r) == pytest.approx((2 / 3, 2 / 3))
    assert f == pytest.approx(2 / 3)
    # a link is (origin, dest): the reversed tuple is a different (wrong) claim
    assert pair_prf({("d7", "o1")}, {("o1", "d7")}) == (0.0, 0.0, 0.0)


def test_pair_prf_empty_sides():
    # nothing predicted: nothing wrong (precision 1) but nothing found
    assert pair_prf(set(), {("a", "b")}) == (1.0, 0.0, 0.0)
    # nothing to find and nothing claimed: perfect
    assert pair_prf(set(), set()) == (1.0, 1.0, 1.0)
    p, r, f = pair_prf({("a", "b")}, set())
    assert (p, r, f) == (0.0, 1.0, 0.0)


def test_set_prf_untraceable_keys():
    # 4 flagged untraceable, 3 of them truly untraceable, 1 truly untraceable missed
    p, r, f = set_prf(["o1", "o2", "o3", "o9"], {"o1", "o2", "o3", "o4"})
    assert p == pytest.approx(0.75) and r == pytest.approx(0.75) and f == pytest.approx(0.75)
    # duplicates in the input are one claim
    assert set_prf(["o1", "o1"], {"o1"}) == (1.0, 1.0, 1.0)


def test_cluster_pairwise_known_example():
    # truth: {a,b,c} one person, {d,e} another, f alone -> 3 + 1 = 4 true pairs
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 3}
    # predicted: {a,b} {c,d,e} {f} -> pairs ab, cd, ce, de; correct ab, de
    pred = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "y", "f": "z"}
    p, r, f = cluster_pairwise_prf(pred, truth)
    assert p == pytest.approx(2 / 4)
    assert r == pytest.approx(2 / 4)
    assert f == pytest.approx(0.5)


def test_cluster_labels_are_only_names():
    # the same partition with other label values scores perfectly
    truth = {"a": 1, "b": 1, "c": 2}
    pred = {"a": "Z", "b": "Z", "c": "Q"}
    assert cluster_pairwise_prf(pred, truth) == (1.0, 1.0, 1.0)


def test_cluster_keys_missing_on_one_side_are_singletons():
    truth = {"a": 1, "b": 1, "c": 1}
    pred = {"a": 0, "b": 0}          # c not clustered at all
    p, r, _ = cluster_pairwise_prf(pred, truth)
    assert p == 1.0 and r == pytest.approx(1 / 3)
    # a predicted-only key does not pair with a true singleton label by accident
    p, r, _ = cluster_pairwise_prf({"a": 0, "x": 0}, {"a": 5})
    assert p == 0.0 and r == 1.0


def _brute(pred: dict, truth: dict) -> tuple[float, float, float]:
    keys = sorted(set(pred) | set(truth))
    pp = {(a, b) for a, b in itertools.combinations(keys, 2) if a in pred and b in pred and pred[a] == pred[b]}
    tt = {(a, b) for a, b in itertools.combinations(keys, 2) if a in truth and b in truth and truth[a] == truth[b]}
    return set_prf(pp, tt)


@pytest.mark.parametrize("seed", range(8))
def test_cluster_counting_equals_pair_enumeration(seed):
    rnd = random.Random(seed)
    keys = [f"r{i}" for i in range(rnd.randint(5, 60))]
    truth = {k: rnd.randint(0, len(keys) // 3) for k in keys if rnd.random() < 0.95}
    pred = {k: rnd.randint(0, len(keys) // 4) for k in keys if rnd.random() < 0.9}
    assert cluster_pairwise_prf(pred, truth) == pytest.approx(_brute(pred, truth))
