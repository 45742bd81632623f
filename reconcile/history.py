"""Run history of a report database: `reconcile runs` (list) and `reconcile diff` (what changed).

A diff compares two complete runs A (older) and B (newer):

- records added, removed and changed (same source and key, other fingerprint);
- duplicate clusters new, resolved and changed: a cluster is identified by its person ID when
  both runs have person IDs (reconcile.persons; IDs absorbed by a merge between A and B count as
  their survivor), else by overlapping record keys;
- untraceable people (流向不明, `match` runs) new and resolved;
- persons merged, split, new and gone in the runs after A up to B (person_events).
"""
from __future__ import annotations

import json
from typing import Any

import sqlite_utils

from reconcile.errors import ReportError
from reconcile.i18n import t
from reconcile.report import resolve_run

# summary counts shown per run (whichever the run has)
RUN_COUNTS = ("records", "origin_records", "dest_records", "traced", "untraceable", "cross_region_duplicates",
              "unregistered", "id_conflict_records", "duplicate_clusters", "duplicate_records", "links_review",
              "persons", "persons_new", "persons_merged", "persons_split", "persons_gone")


def _json(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {}


def list_runs(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every complete run, oldest first: date, command, inputs, row counts, outcome counts."""
    cur = db.execute("SELECT run_id, command, started_at, finished_at, inputs_json, settings_json, summary_json "
                     "FROM runs WHERE status = 'complete' ORDER BY run_id")
    out = []
    for run_id, command, started, finished, inputs, settings, summary in cur.fetchall():
        inp = _json(inputs) or []
        summ = _json(summary)
        sett = _json(settings)
        rows: dict[str, int] = {}
        for f in inp if isinstance(inp, list) else []:
            src = f.get("source", "?")
            rows[src] = rows.get(src, 0) + int(f.get("rows_loaded") or 0)
        out.append({
            "run_id": run_id, "command": command, "started_at": started, "finished_at": finished,
            "inputs": [f.get("path") for f in inp] if isinstance(inp, list) else [],
            "rows": rows, "mode": summ.get("mode") or sett.get("mode") or "full",
            "counts": {k: summ[k] for k in RUN_COUNTS if k in summ},
        })
    return out


def last_two_runs(db: sqlite_utils.Database) -> tuple[int, int]:
    rows = db.execute("SELECT run_id FROM runs WHERE status = 'complete' ORDER BY run_id DESC LIMIT 2").fetchall()
    if len(rows) < 2:
        raise ReportError("history.need_two_runs")
    return int(rows[1][0]), int(rows[0][0])


def _has(db, table: str) -> bool:
    return table in db.table_names() or table in db.view_names()


def _has_persons(db, run_id: int) -> bool:
    return _has(db, "person_records") and db.execute(
        "SELECT 1 FROM person_records WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is not None


def record_changes(db, a: int, b: int) -> dict[str, list[list[str]]]:
    """Records added, removed and changed (fingerprint) from run a to run b, as [source, key]."""
    # each run read once through its index (records may be a view: no correlated subqueries on it)
    def keyed(run: int) -> dict[tuple[str, str], str]:
        cur = db.execute("SELECT source, record_key, coalesce(fingerprint, '') FROM records WHERE run_id = ?", (run,))
        return {(s, k): f for s, k, f in cur.fetchall()}

    ra, rb = keyed(a), keyed(b)
    added = [list(k) for k in sorted(rb.keys() - ra.keys())]
    removed = [list(k) for k in sorted(ra.keys() - rb.keys())]
    changed = [list(k) for k in sorted(rb.keys() & ra.keys()) if ra[k] != rb[k]]
    return {"added": added, "removed": removed, "changed": changed}


def _merge_map(db, a: int, b: int) -> dict[str, str]:
    """Absorbed person -> survivor for merges in the runs after a up to b (chains followed)."""
    if not _has(db, "person_events"):
        return {}
    rows = db.execute("SELECT other_person_id, person_id FROM person_events WHERE event = 'merged' AND run_id > ? "
                      "AND run_id <= ? ORDER BY run_id", (a, b)).fetchall()
    m = {o: p for o, p in rows}

    def final(x: str) -> str:
        seen = set()
        while x in m and x not in seen:
            seen.add(x)
            x = m[x]
        return x

    return {k: final(k) for k in m}


def _clusters(db, run_id: int, persons: bool) -> dict[str, dict[str, Any]]:
    """Duplicate clusters of a run: identity -> {cluster_id, source, keys}."""
    rows = db.execute("SELECT source, cluster_id, record_key FROM duplicates WHERE run_id = ? "
                      "ORDER BY source, cluster_id, record_key", (run_id,)).fetchall()
    pid_of: dict[tuple[str, str], str] = {}
    if persons and rows:
        # the run's persons read once (person_records may be a view: never the right of a LEFT JOIN)
        pid_of = {(s, k): p for s, k, p in db.execute(
            "SELECT source, record_key, person_id FROM person_records WHERE run_id = ?", (run_id,)).fetchall()}
    out: dict[str, dict[str, Any]] = {}
    for source, cid, key in rows:
        pid = pid_of.get((source, key))
        ident = f"{source}|{cid}"
        c = out.setdefault(ident, {"cluster_id": cid, "source": source, "keys": [], "person_id": pid})
        c["keys"].append(key)
        if pid and not c["person_id"]:
            c["person_id"] = pid
    return out


def duplicate_changes(db, a: int, b: int) -> dict[str, list[dict[str, Any]]]:
    """Duplicate clusters new in b, resolved since a, and changed (other records)."""
    persons = _has_persons(db, a) and _has_persons(db, b)
    ca, cb = _clusters(db, a, persons), _clusters(db, b, persons)
    new, resolved, changed = [], [], []
    if persons:
        merged = _merge_map(db, a, b)
        by_a = {(c["source"], merged.get(c["person_id"], c["person_id"])): c for c in ca.values()}
        by_b = {(c["source"], c["person_id"]): c for c in cb.values()}
        for k, c in sorted(by_b.items()):
            if k not in by_a:
                new.append(_cl(c))
            elif sorted(by_a[k]["keys"]) != sorted(c["keys"]):
                changed.append({**_cl(c), "before": sorted(by_a[k]["keys"])})
        for k, c in sorted(by_a.items()):
            if k not in by_b:
                resolved.append(_cl(c))
    else:
        rec_a = {(c["source"], k): i for i, c in ca.items() for k in c["keys"]}
        rec_b = {(c["source"], k): i for i, c in cb.items() for k in c["keys"]}
        for i, c in sorted(cb.items()):
            prev = {rec_a[(c["source"], k)] for k in c["keys"] if (c["source"], k) in rec_a}
            if not prev:
                new.append(_cl(c))
            elif any(sorted(ca[p]["keys"]) != sorted(c["keys"]) for p in prev):
                changed.append({**_cl(c), "before": sorted({k for p in prev for k in ca[p]["keys"]})})
        for i, c in sorted(ca.items()):
            if not any((c["source"], k) in rec_b for k in c["keys"]):
                resolved.append(_cl(c))
    return {"new": new, "resolved": resolved, "changed": changed}


def _cl(c: dict[str, Any]) -> dict[str, Any]:
    return {"source": c["source"], "cluster_id": c["cluster_id"], "person_id": c.get("person_id"),
            "keys": sorted(c["keys"])}


def untraceable_changes(db, a: int, b: int) -> dict[str, list[str]]:
    """Origin keys untraceable (流向不明) in b but not in a (new), and in a but not in b (resolved)."""
    if not _has(db, "untraceable"):
        return {"new": [], "resolved": []}
    ua = {r[0] for r in db.execute("SELECT origin_key FROM untraceable WHERE run_id = ?", (a,)).fetchall()}
    ub = {r[0] for r in db.execute("SELECT origin_key FROM untraceable WHERE run_id = ?", (b,)).fetchall()}
    return {"new": sorted(ub - ua), "resolved": sorted(ua - ub)}


def person_changes(db, a: int, b: int) -> dict[str, Any]:
    """Person events of the runs after a up to b."""
    out: dict[str, Any] = {"merged": [], "split": [], "new": 0, "gone": []}
    if not _has(db, "person_events") or b <= a:
        return out
    for run_id, event, pid, other, reason in db.execute(
            "SELECT run_id, event, person_id, other_person_id, reason FROM person_events WHERE run_id > ? AND run_id <= ? "
            "ORDER BY run_id, event, person_id, other_person_id", (a, b)).fetchall():
        detail = _json(reason)
        if event == "merged":
            out["merged"].append({"run_id": run_id, "person_id": pid, "absorbed": other, "keys": detail.get("keys", [])})
        elif event == "split":
            out["split"].append({"run_id": run_id, "person_id": pid, "new_person_id": other, "keys": detail.get("keys", [])})
        elif event == "new":
            out["new"] += 1
        elif event == "gone":
            out["gone"].append(pid)
    return out


def diff_runs(db: sqlite_utils.Database, run_a: int | None = None, run_b: int | None = None) -> dict[str, Any]:
    """What changed from run A to run B (default: the last two complete runs)."""
    if run_a is None and run_b is None:
        a, b = last_two_runs(db)
    elif run_b is None:
        b = resolve_run(db, None)
        a = resolve_run(db, run_a)
    else:
        a, b = resolve_run(db, run_a), resolve_run(db, run_b)
    if a == b:
        raise ReportError("history.same_run", run=a)
    if a > b:
        a, b = b, a
    recs = record_changes(db, a, b)
    return {
        "run_a": a, "run_b": b,
        "records": {**recs, "counts": {k: len(v) for k, v in recs.items()}},
        "duplicates": duplicate_changes(db, a, b),
        "untraceable": untraceable_changes(db, a, b),
        "persons": person_changes(db, a, b),
    }


# ---------------------------------------------------------------------------------------------
# text output

def format_runs(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return t("history.no_runs")
    lines = [t("history.runs_header")]
    for r in runs:
        inputs = ", ".join(str(p).replace("\\", "/").rsplit("/", 1)[-1] for p in r["inputs"] if p)
        rows = " ".join(f"{k}={v}" for k, v in r["rows"].items())
        counts = " ".join(f"{k}={v}" for k, v in r["counts"].items())
        lines.append(t("history.run_line", run=r["run_id"], date=(r["started_at"] or "")[:19], command=r["command"],
                       mode=r["mode"], inputs=inputs, rows=rows, counts=counts))
    return "\n".join(lines)


def _keys(items: list, limit: int) -> str:
    shown = [("/".join(i) if isinstance(i, list) else str(i)) for i in items[:limit]]
    more = len(items) - len(shown)
    return ", ".join(shown) + (t("history.more", count=more) if more > 0 else "")


def format_diff(d: dict[str, Any], limit: int = 20) -> str:
    """The diff in the interface language; at most ``limit`` items listed per line."""
    out = [t("history.diff_header", a=d["run_a"], b=d["run_b"])]
    r = d["records"]
    for what in ("added", "removed", "changed"):
        out.append(t(f"history.records_{what}", count=len(r[what])) + (": " + _keys(r[what], limit) if r[what] else ""))
    for what in ("new", "resolved", "changed"):
        items = d["duplicates"][what]
        desc = [f"{c['person_id'] or c['cluster_id']} [{' '.join(c['keys'])}]" for c in items]
        out.append(t(f"history.dups_{what}", count=len(items)) + (": " + _keys(desc, limit) if items else ""))
    u = d["untraceable"]
    for what in ("new", "resolved"):
        out.append(t(f"history.untraceable_{what}", count=len(u[what])) + (": " + _keys(u[what], limit) if u[what] else ""))
    p = d["persons"]
    merged = [f"{m['absorbed']}→{m['person_id']}" for m in p["merged"]]
    split = [f"{s['person_id']}→{s['new_person_id']}" for s in p["split"]]
    out.append(t("history.persons_merged", count=len(merged)) + (": " + _keys(merged, limit) if merged else ""))
    out.append(t("history.persons_split", count=len(split)) + (": " + _keys(split, limit) if split else ""))
    out.append(t("history.persons_new_gone", new=p["new"], gone=len(p["gone"])))
    return "\n".join(out)


DEDUPE_ROWS = ("records", "files", "rejected", "duplicate_clusters", "scope_same_unit", "scope_cross_unit",
               "scope_same_county", "scope_cross_county", "scope_cross_city", "scope_cross_province", "scope_unknown",
               "duplicate_records", "links_review", "chain_splits", "refused_merges", "persons", "persons_new",
               "persons_merged", "persons_split", "persons_gone")


def print_dedupe_summary(run_id: int, summary: dict[str, Any], console=None) -> None:
    """The counts of a dedupe run as a table (stdout)."""
    from rich.console import Console
    from rich.table import Table

    c = console or Console()
    mode = summary.get("mode", "full")
    work = summary.get("work") or {}
    mode_text = (t("dedupe.mode.incremental", changed=work.get("changed_records", 0), reused=work.get("reused_pairs", 0))
                 if mode == "incremental" else t("dedupe.mode.full"))
    tb = Table(title=t("dedupe.summary_title", run_id=run_id, mode=mode_text))
    tb.add_column(t("dedupe.col.item"))
    tb.add_column(t("dedupe.col.count"), justify="right")
    for k in DEDUPE_ROWS:
        v = summary.get(k)
        if v is None or (k.startswith("scope_") and not v):
            continue
        tb.add_row(t(f"dedupe.row.{k}"), str(v))
    c.print(tb)
