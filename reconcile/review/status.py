"""`reconcile review status`: how many pairs wait, are decided or stale; per reviewer and per unit."""
from __future__ import annotations

from typing import Any

import sqlite_utils

from reconcile.i18n import t
from reconcile.report import resolve_run
from reconcile.review.pairs import DECIDED, STALE, STATES, UNSURE, WAITING, pair_states


def review_status(db: sqlite_utils.Database, run: int | None = None) -> dict[str, Any]:
    """Counts for one run (default latest): totals, per reviewer (decisions in force), per unit.

    ``totals`` has every state (waiting, stale, unsure, decided, auto_match) plus ``pairs``,
    ``decided_match``, ``decided_non_match`` and ``to_decide`` (waiting + stale + unsure).
    """
    rid = resolve_run(db, run)
    st = pair_states(db, rid)
    counts = {s: 0 for s in STATES}
    if not st.empty:
        counts.update({k: int(v) for k, v in st["state"].value_counts().items()})
    decided = st[st["state"] == DECIDED] if not st.empty else st
    totals = {
        "pairs": int(len(st)), **counts,
        "decided_match": int((decided["review_decision"] == "match").sum()) if len(decided) else 0,
        "decided_non_match": int((decided["review_decision"] == "non_match").sum()) if len(decided) else 0,
        "to_decide": counts[WAITING] + counts[STALE] + counts[UNSURE],
    }
    per_reviewer: dict[str, dict[str, int]] = {}
    per_unit: dict[str, dict[str, int]] = {}
    if not st.empty:
        has = st[st["decision_id"].notna()]
        for reviewer, grp in has.groupby("reviewer", sort=True):
            per_reviewer[str(reviewer)] = {
                "match": int((grp["review_decision"] == "match").sum()),
                "non_match": int((grp["review_decision"] == "non_match").sum()),
                "unsure": int((grp["review_decision"] == "unsure").sum()),
                "stale": int((grp["state"] == STALE).sum()),
            }
        for unit, grp in st.groupby(st["unit"].fillna(""), sort=True):
            c = grp["state"].value_counts()
            per_unit[str(unit)] = {s: int(c.get(s, 0)) for s in STATES}
    return {"run_id": rid, "totals": totals, "per_reviewer": per_reviewer, "per_unit": per_unit}


def format_status(status: dict[str, Any], lang: str | None = None) -> str:
    """Plain-text rendering of :func:`review_status` for the terminal."""
    tot = status["totals"]
    lines = [
        t("review.status.title", lang=lang, run=status["run_id"], pairs=tot["pairs"]),
        t("review.status.totals", lang=lang, **tot),
    ]
    if status["per_reviewer"]:
        lines.append(t("review.status.by_reviewer", lang=lang))
        for name, c in status["per_reviewer"].items():
            lines.append("  " + t("review.status.reviewer_line", lang=lang, reviewer=name, **c))
    if status["per_unit"]:
        lines.append(t("review.status.by_unit", lang=lang))
        for unit, c in status["per_unit"].items():
            label = unit or t("review.status.no_unit", lang=lang)
            lines.append("  " + t("review.status.unit_line", lang=lang, unit=label, **c))
    return "\n".join(lines)


__all__ = ["review_status", "format_status"]
