"""Numbers of the monthly bulletin (通报), computed from a report database.

Outcome counts come from the outcome tables (the source of truth). Unit indicators come from
``metrics`` (scope ``unit:<name>``) when the run wrote them, otherwise they are computed here
from ``records`` and the outcome tables:

| indicator | definition |
|---|---|
| id_entry_rate (身份证录入率) | records with a usable ID (valid / upgraded_from_15) / records |
| id_accuracy (身份证准确率) | usable IDs whose birth date and sex agree with the record / usable IDs |
| coverage (关键信息覆盖率) | filled key fields (name, sex, birth date, ID, hukou address) / (5 × records) |
| duplicate_rate (重复率) | records in a cross-region duplicate pair or a non-surviving in-registry duplicate / records |
| untraceable_rate (流向不明率) | untraceable origin records / origin out-migrants (all origin records when no flow status) |
| feedback_rate (反馈率) | answered / sent verification requests addressed to the unit (runs up to this one) |

Per-unit outcome counts: traced / untraceable count for the origin record's unit, unregistered
for the destination record's unit, a cross-region duplicate pair for both units, ID-conflict and
in-registry duplicate records for their own unit.
"""
from __future__ import annotations

import json
import operator
import re
import tomllib
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import sqlite_utils

from reconcile.errors import ConfigError
from reconcile.fields import USABLE_ID_STATUSES
from reconcile.report import read_table, resolve_run

INDICATORS: tuple[str, ...] = ("id_entry_rate", "id_accuracy", "coverage", "duplicate_rate", "untraceable_rate", "feedback_rate")
LOWER_IS_BETTER: frozenset[str] = frozenset({"duplicate_rate", "untraceable_rate"})
HEADLINE: tuple[str, ...] = (
    "records_origin", "records_dest", "traced", "untraceable", "cross_region_duplicates", "unregistered",
    "id_conflict_records", "duplicate_clusters", "links_match", "links_review",
)
UNIT_OUTCOMES: tuple[str, ...] = ("traced", "untraceable", "cross_region_duplicates", "unregistered", "id_conflict_records",
                                  "duplicate_records")
TREND_SERIES: tuple[str, ...] = ("traced", "untraceable", "cross_region_duplicates", "unregistered", "id_conflict_records",
                                 "duplicate_clusters")
KEY_FIELDS: tuple[str, ...] = ("name_raw", "sex", "birth_date", "id_raw", "hukou_address")
DEFAULT_TARGETS: dict[str, str] = {"coverage": ">= 0.95", "id_accuracy": ">= 0.90"}
HIST_BINS = 20

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}
_TARGET = re.compile(r"^\s*(>=|<=|==|>|<)?\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")


@dataclass(frozen=True)
class Target:
    indicator: str
    op: str
    value: float

    def check(self, v: float | None) -> bool | None:
        return None if v is None else _OPS[self.op](round(v, 10), self.value)

    def text(self) -> str:
        return f"{self.op} {self.value * 100:g}%"


def parse_targets(spec: dict[str, Any]) -> dict[str, Target]:
    """``{"id_accuracy": ">= 0.90", "coverage": "95%"}`` -> Targets (a bare number means >=)."""
    out: dict[str, Target] = {}
    for k, v in spec.items():
        if k not in INDICATORS:
            raise ConfigError("bulletin.err.unknown_indicator", name=k, known=", ".join(INDICATORS))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            op, val = ">=", float(v)
        else:
            m = _TARGET.match(str(v))
            if not m:
                raise ConfigError("bulletin.err.bad_target", name=k, value=str(v))
            op, val = m.group(1) or ">=", float(m.group(2)) / (100 if m.group(3) else 1)
        if not 0 <= val <= 1:
            raise ConfigError("bulletin.err.bad_target", name=k, value=str(v))
        out[k] = Target(k, op, val)
    return out


def load_targets(path: str | Path | None) -> dict[str, Target]:
    """Targets from a TOML file's ``[targets]`` table; the defaults when no file is given."""
    if path is None:
        return parse_targets(DEFAULT_TARGETS)
    p = Path(path)
    if not p.exists():
        raise ConfigError("bulletin.err.targets_missing", path=str(p))
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("bulletin.err.targets_bad", path=str(p), detail=str(exc)) from None
    if not isinstance(data.get("targets"), dict):
        raise ConfigError("bulletin.err.targets_bad", path=str(p), detail="no [targets] table")
    return parse_targets(data["targets"])


@dataclass
class UnitRow:
    unit: str
    sides: str                                    # origin | dest | both
    records: int
    values: dict[str, float | None]
    value_source: dict[str, str]                  # metric | computed
    passes: dict[str, bool | None]
    outcomes: dict[str, int]
    met: int = 0
    score: float | None = None
    rank: int = 0


@dataclass
class Bulletin:
    run_id: int
    run: dict[str, Any]
    prev_run_id: int | None
    headline: dict[str, int]
    previous: dict[str, int] | None
    targets: dict[str, Target]
    units: list[UnitRow]
    best_worst: dict[str, tuple[list[str], list[str]]]     # indicator -> (best units, worst units)
    trends: list[dict[str, Any]]                            # {run_id, label, <series>: count}
    hist_edges: list[float]
    hist_counts: list[int]
    thresholds: dict[str, float]
    cross_matrix: pd.DataFrame                              # origin unit x dest unit
    within_matrix: pd.DataFrame                             # unit x unit (in-registry duplicate pairs)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    untraceable: list[dict[str, Any]] = field(default_factory=list)
    has_feedback: bool = False


def _count(db: sqlite_utils.Database, table: str, run_id: int, where: str = "", expr: str = "count(*)") -> int:
    if table not in db.table_names() and table not in db.view_names():   # dedupe: records is a view
        return 0
    row = db.execute(f"SELECT {expr} FROM [{table}] WHERE run_id = ?" + (f" AND {where}" if where else ""), (run_id,)).fetchone()
    return int(row[0] or 0)


def headline_counts(db: sqlite_utils.Database, run_id: int) -> dict[str, int]:
    """Counts of every outcome of one run, from the outcome tables."""
    return {
        "records_origin": _count(db, "records", run_id, "source = 'origin'"),
        "records_dest": _count(db, "records", run_id, "source = 'dest'"),
        "traced": _count(db, "traced", run_id),
        "untraceable": _count(db, "untraceable", run_id),
        "cross_region_duplicates": _count(db, "cross_region_duplicates", run_id),
        "unregistered": _count(db, "unregistered", run_id),
        "id_conflict_records": _count(db, "id_conflicts", run_id, expr="count(DISTINCT source || '|' || record_key)"),
        "duplicate_clusters": _count(db, "duplicates", run_id, expr="count(DISTINCT source || '|' || cluster_id)"),
        # Cross-registry pairs only: within-file duplicate links are counted as duplicate clusters.
        "links_match": _count(db, "links", run_id, "decision = 'match' AND coalesce(source_pair, '') IN ('origin-dest', '')"),
        "links_review": _count(db, "links", run_id, "decision = 'review' AND coalesce(source_pair, '') IN ('origin-dest', '')"),
    }


def _runs(db: sqlite_utils.Database, run_id: int) -> list[dict[str, Any]]:
    cur = db.execute("SELECT run_id, command, started_at, finished_at, origin_path, dest_path, settings_json "
                     "FROM runs WHERE status = 'complete' ORDER BY run_id")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _text(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype(object).where(pd.notna(df), "")


def _unit_of(records: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(s, str(k)): str(u) for s, k, u in zip(records["source"], records["record_key"], records["unit"])}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def compute_bulletin(db: sqlite_utils.Database, run: int | None = None, *,
                     targets: dict[str, Target] | None = None, list_limit: int = 50) -> Bulletin:
    """Every number the bulletin shows, for one run (default: the latest)."""
    run_id = resolve_run(db, run)
    targets = parse_targets(DEFAULT_TARGETS) if targets is None else targets
    runs = _runs(db, run_id)
    this = next(r for r in runs if r["run_id"] == run_id)
    same = [r for r in runs if r["command"] == this["command"] and r["run_id"] <= run_id]
    prev_id = same[-2]["run_id"] if len(same) >= 2 else None
    headline = headline_counts(db, run_id)
    previous = headline_counts(db, prev_id) if prev_id is not None else None

    records = _text(read_table(db, "records", run_id))
    if not len(records):
        records = pd.DataFrame(columns=["source", "record_key", "unit", "id_status", "birth_conflict", "sex_conflict",
                                        "flow_status", *KEY_FIELDS])
    records["record_key"] = records["record_key"].astype(str)
    records["unit"] = records["unit"].astype(str).str.strip()
    unit_of = _unit_of(records)

    def units_of(source: str, keys) -> list[str]:
        return [unit_of.get((source, str(k)), "") for k in keys]

    traced = _text(read_table(db, "traced", run_id))
    untr = _text(read_table(db, "untraceable", run_id))
    crd = _text(read_table(db, "cross_region_duplicates", run_id))
    unreg = _text(read_table(db, "unregistered", run_id))
    conf = _text(read_table(db, "id_conflicts", run_id))
    dups = _text(read_table(db, "duplicates", run_id))

    # Records per unit that count as duplicates (for duplicate_rate).
    dup_keys: set[tuple[str, str]] = set()
    for ok, dk in zip(crd.get("origin_key", []), crd.get("dest_key", [])):
        dup_keys.add(("origin", str(ok)))
        dup_keys.add(("dest", str(dk)))
    if len(dups):
        for s, k, surv in zip(dups["source"], dups["record_key"], dups["survivor"]):
            if str(surv) not in ("1", "1.0", "True"):
                dup_keys.add((str(s), str(k)))

    outcome_counts: dict[str, dict[str, int]] = {}

    def bump(unit: str, key: str, n: int = 1) -> None:
        outcome_counts.setdefault(unit, {o: 0 for o in UNIT_OUTCOMES})[key] += n

    for u in units_of("origin", traced.get("origin_key", [])):
        bump(u, "traced")
    for u in units_of("origin", untr.get("origin_key", [])):
        bump(u, "untraceable")
    for ok, dk in zip(crd.get("origin_key", []), crd.get("dest_key", [])):
        uo, ud = unit_of.get(("origin", str(ok)), ""), unit_of.get(("dest", str(dk)), "")
        bump(uo, "cross_region_duplicates")
        if ud != uo:
            bump(ud, "cross_region_duplicates")
    for u in units_of("dest", unreg.get("dest_key", [])):
        bump(u, "unregistered")
    if len(conf):
        for (s, k) in {(str(s), str(k)) for s, k in zip(conf["source"], conf["record_key"])}:
            bump(unit_of.get((s, k), ""), "id_conflict_records")
    if len(dups):
        for (s, k) in {(str(s), str(k)) for s, k in zip(dups["source"], dups["record_key"])}:
            bump(unit_of.get((s, k), ""), "duplicate_records")

    # Unit-scope metrics written by the run take precedence over our own computation.
    metrics = _text(read_table(db, "metrics", run_id))
    unit_metrics: dict[str, dict[str, float]] = {}
    if len(metrics):
        for scope, metric, value in zip(metrics["scope"], metrics["metric"], metrics["value"]):
            s = str(scope)
            if s.startswith("unit:") and metric in INDICATORS and value != "":
                unit_metrics.setdefault(s[5:], {})[str(metric)] = float(value)

    feedback, has_feedback = _feedback_by_unit(db, run_id)
    has_flow = bool((records.loc[records["source"] == "origin", "flow_status"].astype(str) != "").any())
    untr_units = pd.Series(units_of("origin", untr.get("origin_key", [])), dtype=object).value_counts().to_dict()

    # Per-record flags, computed once for the whole run (vectorised), then summed per unit.
    flags = pd.DataFrame({"unit": records["unit"], "source": records["source"]})
    flags["usable"] = records["id_status"].isin(USABLE_ID_STATUSES)
    flags["consistent"] = flags["usable"] & records["birth_conflict"].astype(str).isin(["0", "", "0.0"]) & (
        records["sex_conflict"].astype(str).isin(["0", "", "0.0"]))
    flags["filled"] = sum((records[c].astype(str).str.strip() != "").astype(int) for c in KEY_FIELDS if c in records)
    flags["origin"] = records["source"] == "origin"
    flags["out"] = flags["origin"] & ((records["flow_status"] == "out") if has_flow else True)
    keys = list(zip(records["source"], records["record_key"]))
    flags["dup"] = [k in dup_keys for k in keys]
    sums = flags.groupby("unit", sort=True)[["usable", "consistent", "filled", "origin", "out", "dup"]].sum()
    sizes = flags.groupby("unit", sort=True).size()
    sides_of = flags.groupby("unit", sort=True)["source"].agg(lambda x: frozenset(x))

    unit_rows: list[UnitRow] = []
    # No unit column mapped at all: there is no league table (an empty unit is shown as such otherwise).
    units = list(sizes.index) if (records["unit"] != "").any() else []
    for unit in units:
        n = int(sizes[unit])
        su = sums.loc[unit]
        usable, consistent, filled = int(su["usable"]), int(su["consistent"]), int(su["filled"])
        n_origin, out_migrants, n_dup = int(su["origin"]), int(su["out"]), int(su["dup"])
        computed = {
            "id_entry_rate": _ratio(usable, n),
            "id_accuracy": _ratio(consistent, usable),
            "coverage": _ratio(filled, n * len(KEY_FIELDS)),
            "duplicate_rate": _ratio(n_dup, n),
            "untraceable_rate": _ratio(untr_units.get(unit, 0), out_migrants) if n_origin else None,
            "feedback_rate": _ratio(*feedback[unit]) if unit in feedback else None,
        }
        values, source = {}, {}
        for k in INDICATORS:
            if k in unit_metrics.get(unit, {}):
                values[k], source[k] = unit_metrics[unit][k], "metric"
            else:
                values[k], source[k] = computed[k], "computed"
        sides = sides_of[unit]
        passes = {k: (targets[k].check(values[k]) if k in targets else None) for k in INDICATORS}
        goodness = [(1 - v if k in LOWER_IS_BETTER else v) for k, v in values.items() if v is not None]
        unit_rows.append(UnitRow(
            unit=unit or "", sides="both" if len(sides) > 1 else next(iter(sides)), records=n, values=values,
            value_source=source, passes=passes, outcomes=outcome_counts.get(unit, {o: 0 for o in UNIT_OUTCOMES}),
            met=sum(1 for p in passes.values() if p), score=sum(goodness) / len(goodness) if goodness else None,
        ))
    unit_rows.sort(key=lambda r: (-r.met, -(r.score if r.score is not None else -1), r.unit))
    for i, r in enumerate(unit_rows, start=1):
        r.rank = i

    best_worst: dict[str, tuple[list[str], list[str]]] = {}
    for k in INDICATORS:
        vals = [(r.unit, r.values[k]) for r in unit_rows if r.values[k] is not None]
        if len(vals) < 2:
            continue
        hi, lo = max(v for _, v in vals), min(v for _, v in vals)
        if hi == lo:
            continue
        top, bottom = [u for u, v in vals if v == hi], [u for u, v in vals if v == lo]
        best_worst[k] = (bottom, top) if k in LOWER_IS_BETTER else (top, bottom)

    trends = []
    for r in same:
        c = headline_counts(db, r["run_id"])
        trends.append({"run_id": r["run_id"], "label": f"#{r['run_id']} {str(r['started_at'] or '')[:10]}",
                       **{s: c[s] for s in TREND_SERIES}})

    links = _text(read_table(db, "links", run_id))
    probs: list[float] = []
    if len(links):
        cross = links[links["source_pair"].astype(str).isin(["origin-dest", ""])]
        probs = [float(p) for p in cross["match_probability"] if p != ""]
    edges = [i / HIST_BINS for i in range(HIST_BINS + 1)]
    counts = [0] * HIST_BINS
    for p in probs:
        counts[min(int(p * HIST_BINS), HIST_BINS - 1) if p >= 0 else 0] += 1
    try:
        settings = json.loads(this.get("settings_json") or "{}")
    except ValueError:
        settings = {}
    thresholds = {k: float(settings[k]) for k in ("match_threshold", "review_threshold")
                  if isinstance(settings.get(k), (int, float))}

    o_units = sorted({unit_of.get(("origin", str(k)), "") for k in crd.get("origin_key", [])})
    d_units = sorted({unit_of.get(("dest", str(k)), "") for k in crd.get("dest_key", [])})
    cross_m = pd.DataFrame(0, index=o_units, columns=d_units, dtype=int)
    for ok, dk in zip(crd.get("origin_key", []), crd.get("dest_key", [])):
        cross_m.loc[unit_of.get(("origin", str(ok)), ""), unit_of.get(("dest", str(dk)), "")] += 1
    pairs: list[tuple[str, str]] = []
    if len(dups):
        for _, g in dups.groupby([dups["source"].astype(str), dups["cluster_id"].astype(str)]):
            us = [unit_of.get((str(s), str(k)), "") for s, k in zip(g["source"], g["record_key"])]
            pairs.extend(tuple(sorted(p)) for p in combinations(us, 2))
    w_units = sorted({u for p in pairs for u in p})
    within_m = pd.DataFrame(0, index=w_units, columns=w_units, dtype=int)
    for a, b in pairs:
        within_m.loc[a, b] += 1
        if a != b:
            within_m.loc[b, a] += 1

    return Bulletin(
        run_id=run_id, run=this, prev_run_id=prev_id, headline=headline, previous=previous, targets=targets,
        units=unit_rows, best_worst=best_worst, trends=trends, hist_edges=edges, hist_counts=counts,
        thresholds=thresholds, cross_matrix=cross_m, within_matrix=within_m,
        conflicts=_conflict_list(conf, records, list_limit), untraceable=_untraceable_list(untr, records, list_limit),
        has_feedback=has_feedback,
    )


def _feedback_by_unit(db: sqlite_utils.Database, run_id: int) -> tuple[dict[str, tuple[int, int]], bool]:
    """unit -> (answered, sent) over requests addressed to the unit, created for runs up to run_id."""
    if "verification_requests" not in db.table_names():
        return {}, False
    rows = db.execute(
        "SELECT counterpart_unit, sum(CASE WHEN answer IS NOT NULL AND answer != '' THEN 1 ELSE 0 END), count(*) "
        "FROM verification_requests WHERE run_id <= ? AND counterpart_unit IS NOT NULL AND counterpart_unit != '' "
        "GROUP BY counterpart_unit", (run_id,)).fetchall()
    return {str(u): (int(a), int(n)) for u, a, n in rows}, True


def _index(records: pd.DataFrame, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The wanted records by (source, key), without turning the whole run into dicts."""
    mask = [k in keys for k in zip(records["source"], records["record_key"])]
    sub = records[mask]
    return {(s, str(k)): r for s, k, r in zip(sub["source"], sub["record_key"], sub.to_dict("records"))}


def _person(rec: dict[str, Any] | None) -> dict[str, Any]:
    rec = rec or {}
    return {k: str(rec.get(k, "") or "") for k in ("record_key", "source", "name_raw", "name", "sex", "birth_date",
                                                   "id_number", "id_raw", "unit", "flow_place")}


def _conflict_list(conf: pd.DataFrame, records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    if not len(conf):
        return []
    idx = _index(records, {(str(s), str(k)) for s, k in zip(conf["source"], conf["record_key"])})
    out = []
    for r in conf.sort_values(["conflict_group", "source", "record_key"]).to_dict("records"):
        p = _person(idx.get((str(r["source"]), str(r["record_key"]))))
        p.update(group=str(r.get("conflict_group") or ""), source=str(r["source"]), id_number=str(r["id_number"]))
        out.append(p)
    return out[:limit] + ([{"more": len(out) - limit}] if len(out) > limit else [])


def _untraceable_list(untr: pd.DataFrame, records: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    if not len(untr):
        return []
    idx = _index(records, {("origin", str(k)) for k in untr["origin_key"]}
                 | {("dest", str(k)) for k in untr["best_dest_key"] if k not in (None, "")})
    out = []
    for r in untr.to_dict("records"):
        p = _person(idx.get(("origin", str(r["origin_key"]))))
        best = idx.get(("dest", str(r.get("best_dest_key") or "")))
        p["best_name"] = _person(best)["name_raw"] if best else ""
        p["best_unit"] = _person(best)["unit"] if best else ""
        p["best_probability"] = r.get("best_probability") if best else ""
        out.append(p)
    return out[:limit] + ([{"more": len(out) - limit}] if len(out) > limit else [])
