"""Pure accuracy metrics shared by the bench scripts (no I/O, no reconcile imports).

Conventions: an empty prediction has precision 1.0 (nothing claimed, nothing wrong); an empty
truth has recall 1.0; F1 is 0.0 when precision + recall is 0.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping


def _prf(tp: int, n_pred: int, n_truth: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_truth if n_truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def set_prf(predicted: Iterable[Hashable], truth: Iterable[Hashable]) -> tuple[float, float, float]:
    """Precision, recall, F1 of a predicted set of items (e.g. untraceable record keys)."""
    p, t = set(predicted), set(truth)
    return _prf(len(p & t), len(p), len(t))


def pair_prf(predicted: Iterable[tuple], truth: Iterable[tuple]) -> tuple[float, float, float]:
    """Precision, recall, F1 of predicted (left, right) link pairs against true pairs.

    Pairs are ordered (cross links: left from one file, right from the other); use
    ``cluster_pairwise_prf`` for unordered within-file duplicates.
    """
    return set_prf(predicted, truth)


def _pairs_in(labels: Iterable[Hashable]) -> int:
    """Number of unordered within-cluster pairs for a sequence of cluster labels."""
    return sum(c * (c - 1) // 2 for c in Counter(labels).values())


def cluster_pairwise_prf(pred_labels: Mapping[Hashable, Hashable],
                         truth_labels: Mapping[Hashable, Hashable]) -> tuple[float, float, float]:
    """Pairwise precision, recall, F1 of a clustering against the true clustering.

    A pair of records is predicted when both carry the same predicted label, true when both carry
    the same true label. Counted from cluster sizes (contingency table), never by enumerating
    pairs: cost is linear in the number of records. Keys present in only one mapping are treated
    as singletons in the other.
    """
    keys = set(pred_labels) | set(truth_labels)
    # Fresh labels for keys absent on one side, so they pair with nothing.
    pred = [pred_labels[k] if k in pred_labels else ("__missing__", k) for k in keys]
    true = [truth_labels[k] if k in truth_labels else ("__missing__", k) for k in keys]
    n_pred = _pairs_in(pred)
    n_true = _pairs_in(true)
    tp = _pairs_in(zip(pred, true))    # pairs sharing both labels
    return _prf(tp, n_pred, n_true)
