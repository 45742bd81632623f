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
    """read_registry kwargs from CLI options layered over the TOML config."""
    from reconcile.config import load_config, loading_options
    from reconcile.loading import parse_map_options

    opts: dict = {}
    if config is not None:
        opts.update(loading_options(load_config(config), side))
    mapping = dict(opts.get("mapping") or {})
    mapping.update(parse_map_options(maps or []))
    if mapping:
        opts["mapping"] = mapping
    for k, v in (("encoding", encoding), ("sheet", sheet), ("key", key)):
        if v is not None:
            opts[k] = v
    return opts


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
    match_threshold: Optional[float] = typer.Option(None, "--match-threshold", help="Probability for an automatic match (default 0.95)."),
    review_threshold: Optional[float] = typer.Option(None, "--review-threshold", help="Probability for review (default 0.30)."),
    model_from: Optional[int] = typer.Option(None, "--model", help="Reuse the model trained in run N of --out."),
    learn_from_reviews: bool = typer.Option(False, "--learn-from-reviews", help="Re-estimate m from reviewers' decisions."),
    block_cap: Optional[int] = typer.Option(None, "--block-cap", help="Skip blocks with more candidate pairs than this (default 20000)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
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
        console = stderr_console()

        def progress(stage: str, info: dict) -> None:
            detail = ", ".join(f"{k}={v}" for k, v in info.items() if not isinstance(v, (list, dict)))
            if stage == "load":
                detail = "; ".join(f"{k}: {v['rows_loaded']}/{v['rows_read']} ({v['encoding']})" for k, v in info.items())
            console.print(t("cli.match.stage", stage=stage, detail=detail), highlight=False)

        return run_match(origin, dest, out, opts, progress=progress)

    res = run(go)
    if json_out:
        typer.echo(json.dumps({"run_id": res.run_id, "report": str(res.out), **res.summary}, ensure_ascii=False, indent=2))
        return
    from reconcile.profile_view import print_summary

    print_summary(res.run_id, res.summary)
    typer.echo(t("cli.match.report", path=str(res.out), run_id=res.run_id))


# (section: dedupe / runs / diff)
# (section: review)
# (section: export / feedback / report)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
