"""The `reconcile` command: a thin Typer shell over the `reconcile` library.

It parses options, shows progress on stderr, and maps library errors to exit codes
(documented in reconcile.errors). No logic lives here.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional, TypeVar

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
# (section: match)
# (section: dedupe / runs / diff)
# (section: review)
# (section: export / feedback / report)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
