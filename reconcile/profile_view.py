"""Terminal rendering (rich tables on stdout) of profiles and match summaries."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from reconcile.i18n import catalogue, t


def label(kind: str, code: str) -> str:
    """A code's label in the user's language (the code itself when the catalogue has none)."""
    key = f"label.{kind}.{code}"
    return t(key) if key in catalogue() else code


def print_profile(prof: dict[str, Any], console: Console | None = None) -> None:
    """The profile as readable tables (IDs are already masked in ``prof``)."""
    c = console or Console()
    c.print(t("cli.profile.title", file=prof["file"]), style="bold", highlight=False)
    c.print(t("cli.profile.rows", read=prof["rows_read"], loaded=prof["rows_loaded"],
              rejected=prof["rows_rejected"], encoding=prof["encoding"]), highlight=False)
    m = Table(title=t("cli.profile.mapping"))
    m.add_column(t("cli.profile.source_column"))
    m.add_column(t("cli.profile.field"))
    for src, fld in prof["columns"].items():
        m.add_row(src, label("field", fld))
    c.print(m)
    ind = Table(title=t("cli.profile.indicator"))
    ind.add_column(t("cli.profile.indicator"))
    ind.add_column(t("cli.profile.value"), justify="right")
    for f, v in prof["completeness"].items():
        ind.add_row(t("cli.profile.completeness", field=label("field", f)), f"{v:.1%}")
    for s, n in prof["id_status"].items():
        ind.add_row(t("cli.profile.id_status", status=label("id_status", s)), str(n))
    ind.add_row(t("cli.profile.id_entry_rate"), f"{prof['id_entry_rate']:.1%}")
    ind.add_row(t("cli.profile.id_accuracy"), f"{prof['id_accuracy']:.1%}")
    for p, n in prof["birth_precision"].items():
        ind.add_row(t("cli.profile.birth_precision", p=label("precision", p)), str(n))
    ind.add_row(t("cli.profile.names", latin=prof["names_latin"], trad=prof["names_traditional"],
                  minority=prof["names_minority"]), "")
    c.print(ind)
    if prof["conflicts"]:
        ct = Table(title=t("cli.profile.conflicts"))
        for col in ("record_key", "id", "kind", "birth_date", "id_birth_date", "sex", "id_sex"):
            ct.add_column(col)
        for r in prof["conflicts"]:
            ct.add_row(*(str(r[k]) for k in ("record_key", "id", "kind", "birth_date", "id_birth_date", "sex", "id_sex")))
        c.print(ct)
    c.print(t("cli.profile.dup_ids", n=prof["duplicate_ids_count"]), highlight=False)
    for d in prof["duplicate_ids"][:20]:
        c.print(f"  {d['id']}: {', '.join(map(str, d['record_keys']))}", highlight=False)
    if prof["rejected"]:
        rt = Table(title=t("cli.profile.rejected"))
        rt.add_column(t("cli.profile.line"), justify="right")
        rt.add_column(t("cli.profile.reason"))
        for r in prof["rejected"]:
            rt.add_row(str(r["line"]), r["reason"])
        c.print(rt)
    if prof.get("units"):
        ut = Table(title=t("cli.profile.units"))
        for col in (t("cli.profile.unit"), t("cli.profile.records"), t("cli.profile.id_entry_rate"), t("cli.profile.id_accuracy")):
            ut.add_column(col)
        for u, d in prof["units"].items():
            ut.add_row(u, str(d["records"]), f"{d['id_entry_rate']:.1%}", f"{d['id_accuracy']:.1%}")
        c.print(ut)


SUMMARY_ROWS = (
    "origin_records", "dest_records", "origin_rejected", "dest_rejected", "candidate_pairs", "links_match",
    "links_review", "traced", "untraceable", "cross_region_duplicates", "unregistered", "id_conflict_numbers",
    "duplicate_clusters_origin", "duplicate_clusters_dest", "blocking_recall_estimate",
)


def print_summary(run_id: int, summary: dict[str, Any], console: Console | None = None) -> None:
    """The outcome counts of a match run as a table."""
    c = console or Console()
    tb = Table(title=t("cli.match.summary", run_id=run_id))
    tb.add_column(t("cli.match.outcome"))
    tb.add_column(t("cli.match.count"), justify="right")
    for k in SUMMARY_ROWS:
        v = summary.get(k)
        if v is None:
            continue
        tb.add_row(t(f"cli.outcome.{k}"), f"{v:.3f}" if isinstance(v, float) else str(v))
    c.print(tb)
