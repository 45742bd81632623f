"""Command-line help from the message catalogue, in the user's language.

Typer/Click help strings are fixed when commands are declared; this walks the finished command
tree and replaces each command's help (`help.<path>`) and each option's help
(`help.<path>.<option>`) with the catalogue's text in the language in force. The language is
read from the command line's `--lang` before Click parses it (help is printed during parsing).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import click

from reconcile.i18n import catalogue, detect_lang


def lang_from_argv(argv: Sequence[str]) -> str:
    """`--lang zh` / `--lang=en` anywhere on the command line, else the locale's language."""
    for k, a in enumerate(argv):
        if a == "--lang" and k + 1 < len(argv) and argv[k + 1] in ("zh", "en"):
            return argv[k + 1]
        if a.startswith("--lang=") and a.split("=", 1)[1] in ("zh", "en"):
            return a.split("=", 1)[1]
    return detect_lang()


def walk(cmd: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    """(dotted path, command) for the group and every subcommand, depth first."""
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, f"{path}.{name}" if path else name)


def param_key(param: click.Parameter) -> str:
    return param.name or ""


def localise(root: click.Command, lang: str) -> None:
    """Replace help texts in place from the catalogue (entries that are missing keep their text)."""
    cat = catalogue()
    for path, cmd in walk(root):
        base = f"help.{path}" if path else "help.root"
        entry = cat.get(base)
        if entry:
            cmd.help = entry[lang]
            cmd.short_help = None
        for param in cmd.params:
            pe = cat.get(f"{base}.{param_key(param)}")
            if pe and isinstance(param, click.Option):
                param.help = pe[lang]
