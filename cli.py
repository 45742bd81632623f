"""The `reconcile` command: a thin Typer shell over the `reconcile` library.

It parses options, shows progress on stderr, and maps library errors to exit codes
(documented in reconcile.errors). No logic lives here.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, List, Optional, TypeVar

import typer

import reconcile
from reconcile.errors import EXIT_INTERRUPTED, ReconcileError
from reconcile.i18n import get_lang, set_lang, t

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Reconcile person registries across regions (户籍地 vs 现居住地). / 跨地区人口登记比对。",
)

T = TypeVar("T")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reconcile {reconcile.__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Interface language: zh or en (default: from LANG)."),
) -> None:
    """Reconcile person registries across regions: duplicates (重复人口), untraceable out-migrants
    (流向不明), unregistered people (漏统), ID conflicts (重号)."""
    try:
        set_lang(lang)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--lang")


def run(fn: Callable[[], T]) -> T:
    """Call into the library; turn its errors into a one-line message and an exit code."""
    try:
        return fn()
    except ReconcileError as exc:
        typer.echo(f"{t('common.error_prefix')}: {exc.render(get_lang())}", err=True)
        raise typer.Exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo(t("common.interrupted"), err=True)
        raise typer.Exit(EXIT_INTERRUPTED)


def stderr_console():
    """A rich Console on stderr: progress never pollutes stdout (which may carry JSON)."""
    from rich.console import Console

    return Console(stderr=True)


# ---- commands -------------------------------------------------------------------------------
# Each command lives in its own section below, registered on `app`; keep them thin.
# (section: profile)
def _load_options(encoding, sheet, maps, config, key, side=None) -> dict:
    """read_registry kwargs: command-line options layered over the TOML config. For `match`
    (``side`` given) a --map entry applies to whichever file has that header."""
    from reconcile.config import LoadOptions, load_config
    from reconcile.loading import parse_map_options

    cfg = load_config(config) if config is not None else {}
    base = LoadOptions.from_config(cfg, side)
    merged = base.merged(encoding=encoding, sheet=sheet, key=key, mapping=parse_map_options(maps or []),
                         soft=side is not None)
    return merged.kwargs()


@app.command()
def profile(
    file: Path = typer.Argument(..., help="Registry file: .csv .tsv .txt .xlsx"),
    key: Optional[str] = typer.Option(None, "--key", help="Column that identifies a record (编号 ...)."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Force the text encoding (e.g. gb18030)."),
    sheet: Optional[str] = typer.Option(None, "--sheet", help="xlsx sheet name (default: the first)."),
    maps: Optional[List[str]] = typer.Option(None, "--map", help="Map a column: 'COLUMN=field' (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config file (column mapping, key ...)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also store the profile in this SQLite file."),
) -> None:
    """Data-quality profile of one registry (ID entry rate and accuracy, completeness, 重号).

    Example: reconcile profile 户籍人口.csv --key 编号 --json
    """
    from reconcile.profile import profile_registry, write_profile
    from reconcile.profile_view import print_profile

    prof = run(lambda: profile_registry(file, **_load_options(encoding, sheet, maps, config, key)))
    if json_out:
        typer.echo(json.dumps(prof, ensure_ascii=False, indent=2))
    else:
        print_profile(prof)
    if out is not None:
        pid = run(lambda: write_profile(prof, out))
        typer.echo(t("cli.profile.saved", path=str(out), pid=pid), err=True)


# (section: match)
@app.command()
def match(
    origin: Path = typer.Argument(..., help="Household-registration registry (户籍地)."),
    dest: Path = typer.Argument(..., help="Residence registry (现居住地)."),
    out: Path = typer.Option(Path("reconcile.db"), "--out", help="SQLite report (runs are added)."),
    origin_key: Optional[str] = typer.Option(None, "--origin-key", help="Key column of ORIGIN (default: row number)."),
    dest_key: Optional[str] = typer.Option(None, "--dest-key", help="Key column of DEST (default: row number)."),
    maps: Optional[List[str]] = typer.Option(None, "--map", help="Map a column in either file: 'COLUMN=field' (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config ([origin], [dest], [columns], [match])."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Force the encoding of both files."),
    match_threshold: Optional[float] = typer.Option(None, "--match-threshold", help="Probability for an automatic match (default 0.90)."),
    review_threshold: Optional[float] = typer.Option(None, "--review-threshold", help="Probability for review (default 0.30)."),
    model_from: Optional[int] = typer.Option(None, "--model", help="Reuse the model trained in run N of --out."),
    learn_from_reviews: bool = typer.Option(False, "--learn-from-reviews", help="Re-estimate m from reviewers' decisions."),
    block_cap: Optional[int] = typer.Option(None, "--block-cap", help="Skip blocks with more candidate pairs than this (default 20000)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    engine: str = typer.Option("embedded", "--engine", help="embedded (default) or spark (needs pip install 'reconcile[spark]' and Java)."),
    master: Optional[str] = typer.Option(None, "--master", help="Spark master: local[2], spark://host:7077, yarn (default: spark-submit's, else local[*])."),
    out_parquet: Optional[str] = typer.Option(None, "--out-parquet", help="With --engine spark: also write links, outcomes and records as Parquet under DIR."),
) -> None:
    """Match ORIGIN against DEST: traced, untraceable (流向不明), duplicates (重复人口), 漏统, 重号.

    Example: reconcile match 户籍地.csv 流入人口.xlsx --origin-key 编号 --dest-key 序号 --out 比对.db
    """
    from reconcile.config import load_config
    from reconcile.match import MatchOptions, run_match

    def go():
        cfg = load_config(config) if config is not None else {}
        o = _load_options(encoding, None, maps, config, origin_key, side="origin")
        d = _load_options(encoding, None, maps, config, dest_key, side="dest")
        mcfg = cfg.get("match", {}) if isinstance(cfg, dict) else {}
        opts = MatchOptions(origin=o, dest=d)
        for name, val in (("match_threshold", match_threshold), ("review_threshold", review_threshold),
                          ("block_cap", block_cap)):
            if val is None and name in mcfg:
                val = mcfg[name]
            if val is not None:
                setattr(opts, name, val)
        opts.model_from_run = model_from
        opts.learn_from_reviews = learn_from_reviews
        opts.engine, opts.master, opts.out_parquet = engine, master, out_parquet
        console = stderr_console()

        def progress(stage: str, info: dict) -> None:
            detail = ", ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, (list, dict)))
            if stage == "load":
                detail = "; ".join(f"{k}: {v['rows_loaded']}/{v['rows_read']} ({v['encoding']})" for k, v in info.items())
            from reconcile.profile_view import label

            console.print(t("cli.match.stage", stage=label("stage", stage), detail=detail), highlight=False)

        return run_match(origin, dest, out, opts, progress=progress)

    res = run(go)
    if json_out:
        typer.echo(json.dumps({"run_id": res.run_id, "report": str(res.out), **res.summary}, ensure_ascii=False, indent=2))
        return
    from reconcile.profile_view import print_summary

    print_summary(res.run_id, res.summary)
    typer.echo(t("cli.match.report", path=str(res.out), run_id=res.run_id))


# (section: dedupe / runs / diff)
@app.command()
def dedupe(
    files: List[Path] = typer.Argument(..., help="Registry files, pooled as one population (each record keeps its file)."),
    db: Path = typer.Option(Path("cleanup.db"), "--db", help="SQLite report; runs are added (default cleanup.db)."),
    key: Optional[str] = typer.Option(None, "--key", help="Key column of every file (编号 ...; default: row number)."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Force the encoding of every file."),
    sheet: Optional[str] = typer.Option(None, "--sheet", help="xlsx sheet name (default: the first)."),
    maps: Optional[List[str]] = typer.Option(None, "--map", help="Map a column: 'COLUMN=field' (repeatable)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config ([columns], [dedupe])."),
    full: bool = typer.Option(False, "--full", help="Compare every record again (no reuse of the previous run)."),
    model_from: Optional[int] = typer.Option(None, "--model", help="Use the model of run N of --db as it is."),
    match_threshold: Optional[float] = typer.Option(None, "--match-threshold", help="Probability for an automatic match (default 0.95)."),
    review_threshold: Optional[float] = typer.Option(None, "--review-threshold", help="Probability for review (default 0.30)."),
    block_cap: Optional[int] = typer.Option(None, "--block-cap", help="Skip blocks with more candidate pairs than this (default 20000)."),
    unit_from_file: bool = typer.Option(False, "--unit-from-file", help="A record without a township/unit takes its file's name."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """Find the same person recorded more than once (清理重复), with person IDs stable across runs.

    Example: reconcile dedupe 城关镇.csv 龙海镇.csv --key 编号 --db 清理.db
    """
    from reconcile.config import load_config
    from reconcile.dedupe import DedupeOptions, run_dedupe

    def go():
        cfg = load_config(config) if config is not None else {}
        dcfg = cfg.get("dedupe", {}) if isinstance(cfg, dict) else {}
        opts = DedupeOptions(load=_load_options(encoding, sheet, maps, config, key), full=full,
                             model_from_run=model_from, unit_from_file=unit_from_file or bool(dcfg.get("unit_from_file")))
        for name, val in (("match_threshold", match_threshold), ("review_threshold", review_threshold),
                          ("block_cap", block_cap)):
            if val is None and name in dcfg:
                val = dcfg[name]
            if val is not None:
                setattr(opts, name, val)
        console = stderr_console()

        def progress(stage: str, info: dict) -> None:
            detail = ", ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, (list, dict)))
            if stage == "load":
                detail = "; ".join(f"{k}: {v['rows_loaded']}/{v['rows_read']} ({v['encoding']})" for k, v in info.items())
            console.print(t("dedupe.stage", stage=stage, detail=detail), highlight=False)

        return run_dedupe(files, db, opts, progress=progress)

    res = run(go)
    if json_out:
        typer.echo(json.dumps({"run_id": res.run_id, "report": str(res.db), **res.summary}, ensure_ascii=False, indent=2))
        return
    from reconcile.history import print_dedupe_summary

    print_dedupe_summary(res.run_id, res.summary)
    typer.echo(t("dedupe.report", path=str(res.db), run_id=res.run_id))


@app.command("runs")
def runs_cmd(
    db: Path = typer.Argument(..., help="Report database."),
    json_out: bool = typer.Option(False, "--json", help="Print the runs as JSON on stdout."),
) -> None:
    """List the runs of a report: date, command, inputs, row counts, outcome counts.

    Example: reconcile runs 清理.db
    """
    from reconcile.history import format_runs, list_runs

    def go():
        d = _report_db_ro(db)
        try:
            return list_runs(d)
        finally:
            d.conn.close()

    runs = run(go)
    typer.echo(json.dumps(runs, ensure_ascii=False, indent=2) if json_out else format_runs(runs))


@app.command("diff")
def diff_cmd(
    db: Path = typer.Argument(..., help="Report database."),
    run_a: Optional[int] = typer.Argument(None, help="Older run (default: the second latest)."),
    run_b: Optional[int] = typer.Argument(None, help="Newer run (default: the latest)."),
    json_out: bool = typer.Option(False, "--json", help="Print the changes as JSON on stdout."),
    limit: int = typer.Option(20, "--limit", help="Items listed per line in the text output."),
) -> None:
    """What changed between two runs: duplicates, untraceable people, merged/split persons, records.

    Example: reconcile diff 清理.db 3 4 --json
    """
    from reconcile.history import diff_runs, format_diff

    def go():
        d = _report_db_ro(db)
        try:
            return diff_runs(d, run_a, run_b)
        finally:
            d.conn.close()

    res = run(go)
    typer.echo(json.dumps(res, ensure_ascii=False, indent=2) if json_out else format_diff(res, limit))


def _report_db_ro(db: Path):
    from reconcile.report import open_report

    return open_report(db, create=False)


# (section: review)
from typer.core import TyperGroup  # noqa: E402


class _ReviewGroup(TyperGroup):
    """`reconcile review DB` runs `review serve DB`: a positional DB on the group callback would
    swallow the subcommand names, so the first positional word picks the command instead."""

    def parse_args(self, ctx, args):
        positional = [a for a in args if not a.startswith("-")]
        if positional and positional[0] not in self.commands:
            args = ["serve", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(
    cls=_ReviewGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Review candidate pairs: web page (reconcile review DB), decide, status, Excel export/import.",
)
app.add_typer(review_app, name="review")


def _open_db(db: Path):
    from reconcile.report import open_report

    return open_report(db, create=False)


def _os_user() -> str:
    import getpass

    return getpass.getuser()


@review_app.command("serve")
def review_serve(
    db: Path = typer.Argument(..., help="Report database written by `reconcile match`."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Run to review (default: the latest)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Your name, stored with every decision (default: OS user)."),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (default 0: a free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL but do not open a browser."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Page language: zh or en."),
) -> None:
    """Open the local review page (same as `reconcile review DB`). Ctrl-C stops it.

    Example: reconcile review 比对.db --reviewer 李娟
    """
    from reconcile.review.server import serve

    if lang is not None:
        try:
            set_lang(lang)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--lang")
    run(lambda: serve(db, run=run_id, reviewer=reviewer or _os_user(), port=port, open_browser=not no_browser,
                      lang=get_lang(), echo=lambda s, err=False: typer.echo(s, err=err)))


@review_app.command("decide")
def review_decide(
    db: Path = typer.Argument(..., help="Report database."),
    origin_key: str = typer.Argument(..., help="Key of the ORIGIN record (left record for within-file pairs)."),
    dest_key: str = typer.Argument(..., help="Key of the DEST record (right record for within-file pairs)."),
    decision: str = typer.Option(..., "--decision", help="match | non_match | unsure"),
    reviewer: str = typer.Option(..., "--reviewer", help="Reviewer name."),
    reason: str = typer.Option("", "--reason", help="Why (optional)."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Run whose records are meant (default: the latest)."),
    pair: str = typer.Option("origin-dest", "--pair", help="origin-dest | origin-origin | dest-dest"),
) -> None:
    """Record one decision in the ledger (binds every later run).

    Example: reconcile review decide 比对.db H001 D101 --decision match --reviewer 李娟 --reason 同一身份证
    """
    from reconcile.review.ledger import record_decision

    def go():
        d = _open_db(db)
        try:
            return record_decision(d, origin_key, dest_key, decision, reviewer, source_pair=pair, reason=reason,
                                   run_id=run_id, channel="cli")
        finally:
            d.conn.close()

    rec = run(go)
    key = "review.decide.recorded" if rec.created else "review.decide.unchanged"
    typer.echo(t(key, decision_id=rec.decision_id, origin_key=origin_key, dest_key=dest_key, decision=decision, reviewer=reviewer))


@review_app.command("status")
def review_status_cmd(
    db: Path = typer.Argument(..., help="Report database."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Run (default: the latest)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """How many pairs wait, are decided or stale; per reviewer and per reporting unit."""
    from reconcile.review.status import format_status, review_status

    def go():
        d = _open_db(db)
        try:
            return review_status(d, run_id)
        finally:
            d.conn.close()

    st = run(go)
    typer.echo(json.dumps(st, ensure_ascii=False, indent=2) if json_out else format_status(st))


@review_app.command("export")
def review_export(
    db: Path = typer.Argument(..., help="Report database."),
    xlsx: Path = typer.Option(..., "--xlsx", help="Workbook to write."),
    unit: Optional[str] = typer.Option(None, "--unit", help="Only pairs of this reporting unit."),
    reveal_ids: bool = typer.Option(False, "--reveal-ids", help="Write full ID numbers (each shown record is logged)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Name logged with --reveal-ids (default: OS user)."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Run (default: the latest)."),
) -> None:
    """Write the pairs to decide to Excel (判定 drop-down 是/否/不确定, other cells locked).

    Example: reconcile review export 比对.db --xlsx 待审核.xlsx --unit 城关镇
    """
    from reconcile.review.excel import export_xlsx

    who = reviewer or _os_user()

    def go():
        d = _open_db(db)
        try:
            return export_xlsx(d, xlsx, run=run_id, unit=unit, reveal_ids=reveal_ids, reviewer=who)
        finally:
            d.conn.close()

    res = run(go)
    ids = t("review.export.ids_revealed", reviewer=who) if reveal_ids else t("review.export.ids_masked")
    typer.echo(t("review.export.written", count=res.count, path=str(res.path), run=res.run_id, ids=ids))


@review_app.command("import")
def review_import(
    db: Path = typer.Argument(..., help="Report database."),
    xlsx: Path = typer.Argument(..., help="Workbook filled in by the reviewer."),
    reviewer: str = typer.Option(..., "--reviewer", help="Reviewer name."),
) -> None:
    """Record the decisions filled in an exported workbook; list rejected rows (exit 4 if any).

    Example: reconcile review import 比对.db 待审核.xlsx --reviewer 李娟
    """
    from reconcile.review.excel import import_xlsx

    def go():
        d = _open_db(db)
        try:
            return import_xlsx(d, xlsx, reviewer)
        finally:
            d.conn.close()

    res = run(go)
    typer.echo(t("review.import.summary", path=str(xlsx), recorded=res.recorded, unchanged=res.unchanged,
                 blank=res.blank, rejected=len(res.rejected)))
    for rej in res.rejected:
        typer.echo(t("review.import.rejected_row", row=rej.row, reason=rej.render()), err=True)
    if res.rejected:
        typer.echo(t("review.xlsx_rejected", count=len(res.rejected)), err=True)
        raise typer.Exit(4)


# (section: export / feedback / report)
def _report_db(db: Path):
    from reconcile.report import open_report

    return open_report(db, create=False)


@app.command("export")
def export_cmd(
    db: Path = typer.Argument(..., help="Report database written by `reconcile match`."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Run to export (default: the latest)."),
    out: Path = typer.Option(Path("packets"), "--out", help="Folder for the packets (created if missing)."),
    fmt: str = typer.Option("xlsx", "--format", help="xlsx (locked cells, drop-down answers) or csv (UTF-8 with BOM)."),
    by: str = typer.Option("unit", "--by", help="Counterpart: unit (township/street) or region (county)."),
    police: bool = typer.Option(False, "--police", help="Also write per-township rosters of ID conflicts and duplicate IDs."),
    reveal_ids: bool = typer.Option(False, "--reveal-ids", help="Show full ID numbers (logged in the report)."),
) -> None:
    """Export verification packets (协查单): one file per own unit and counterpart.

    Example: reconcile export 比对.db --out 协查单/ --police
    """
    from reconcile.coordination import export_packets

    res = run(lambda: export_packets(_report_db(db), out, run=run_id, fmt=fmt, by=by, reveal_ids=reveal_ids, police=police))
    for p in res.files:
        typer.echo(str(p))
    typer.echo(t("coord.msg.exported", run=res.run_id, requests=res.requests, files=len(res.per_file), new=res.new,
                 existing=res.existing, closed=res.closed, out=str(out)), err=True)
    if police:
        typer.echo(t("coord.msg.roster", rows=res.roster_rows), err=True)
    if reveal_ids:
        typer.echo(t("coord.msg.reveal_warning"), err=True)


feedback_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Verification feedback (反馈): import returned packets, show status per counterpart.")
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
def feedback_import_cmd(
    db: Path = typer.Argument(..., help="Report database."),
    files: List[Path] = typer.Argument(..., help="Returned packets (.xlsx or .csv)."),
) -> None:
    """Record the answers of returned packets; unchanged rows are ignored, edited rows rejected.

    Exit code 4 when some rows were rejected (the others are recorded).
    """
    from reconcile.coordination import import_feedback

    results = run(lambda: import_feedback(_report_db(db), [str(f) for f in files]))
    rejected = 0
    for r in results:
        typer.echo(t("coord.msg.imported", file=r.file, answered=r.answered, unchanged=r.unchanged, blank=r.blank,
                     rejected=len(r.rejected)))
        for rej in r.rejected:
            typer.echo(t("coord.msg.rejected_row", row=rej.row, reason=rej.reason), err=True)
        rejected += len(r.rejected)
    if rejected:
        typer.echo(t("coord.err.feedback_rejected", count=rejected), err=True)
        raise typer.Exit(4)


@feedback_app.command("status")
def feedback_status_cmd(
    db: Path = typer.Argument(..., help="Report database."),
    days: int = typer.Option(30, "--days", help="Open requests older than this many days are overdue."),
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON on stdout."),
) -> None:
    """Per counterpart: sent, answered, open, 反馈率 (answered / sent), oldest open request; overdue list."""
    from rich.console import Console

    from reconcile.coordination.feedback import feedback_status, status_json, status_tables

    if days < 1:
        raise typer.BadParameter(t("coord.err.bad_days"), param_hint="--days")
    st = run(lambda: feedback_status(_report_db(db), days=days))
    if json_out:
        typer.echo(json.dumps(status_json(st), ensure_ascii=False, indent=2))
        return
    con = Console()
    for table in status_tables(st):
        con.print(table)


@app.command("report")
def report_cmd(
    db: Path = typer.Argument(..., help="Report database."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Run to report on (default: the latest)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the bulletin as one self-contained HTML file."),
    xlsx: Optional[Path] = typer.Option(None, "--xlsx", help="Write the bulletin tables as an xlsx workbook."),
    targets: Optional[Path] = typer.Option(None, "--targets", help="TOML with [targets], e.g. id_accuracy = \">= 0.90\"."),
    mask_names: bool = typer.Option(False, "--mask-names", help="Partly mask names (张*伟)."),
    lang: Optional[str] = typer.Option(None, "--lang", help="Bulletin language: zh or en (default: the interface language)."),
) -> None:
    """Monthly bulletin (通报): headline counts, unit league table with targets, charts, duplicate matrix.

    Example: reconcile report 比对.db --html 通报.html --xlsx 通报.xlsx --targets targets.toml
    """
    from reconcile.bulletin import write_bulletin
    from reconcile.errors import ConfigError

    if lang is not None and lang not in ("zh", "en"):
        raise typer.BadParameter("zh | en", param_hint="--lang")

    def go():
        if html is None and xlsx is None:
            raise ConfigError("bulletin.err.no_output")
        return write_bulletin(_report_db(db), run=run_id, html=html, xlsx=xlsx, targets=targets,
                              mask_names=mask_names, lang=lang or get_lang())

    b, paths = run(go)
    for p in paths:
        typer.echo(t("bulletin.msg.written", run=b.run_id, path=str(p)))




def main() -> None:
    """Console-script entry point: help texts in the user's language, then run."""
    from reconcile.helptext import hoist_lang, lang_from_argv, localise

    command = typer.main.get_command(app)
    args = hoist_lang(command, sys.argv[1:])
    localise(command, lang_from_argv(args))
    command(args=args, prog_name="reconcile")


if __name__ == "__main__":
    main()
