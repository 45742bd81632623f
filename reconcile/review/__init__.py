"""Reviewing candidate pairs: the decisions ledger, the local web page, the Excel round-trip.

The pipeline calls :func:`ensure_ledger`, :func:`apply_decisions` and :func:`decided_pairs`;
the `reconcile review` commands use the rest.
"""
from reconcile.review.ledger import (
    apply_decisions,
    decided_pairs,
    ensure_ledger,
    record_decision,
    undo_decision,
)

__all__ = ["apply_decisions", "decided_pairs", "ensure_ledger", "record_decision", "undo_decision"]
