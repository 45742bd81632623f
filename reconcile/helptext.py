"""Command-line help from the message catalogue, in the user's language.

Typer/Click help strings are fixed when commands are declared; this walks the finished command
tree and replaces each command's help (`help.<path>`) and each option's help
(`help.<path>.<option>`) with the catalogue's text in the language in force. The language is
read from the command line's `--lang` before Click parses it (help is printed during parsing).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterator, Sequence

import click

from reconcile.i18n import catalogue, detect_lang


def lang_from_argv(argv: Sequence[str]) -> str:
    """`--lang zh` / `--lang=en` anywhere on the command line (the last one, as Click takes it),
    else the locale's language."""
    found = None
    for k, a in enumerate(argv):
        if a == "--lang" and k + 1 < len(argv) and argv[k + 1] in ("zh", "en"):
            found = argv[k + 1]
        if a.startswith("--lang=") and a.split("=", 1)[1] in ("zh", "en"):
            found = a.split("=", 1)[1]
    return found or detect_lang()


def hoist_lang(root: click.Command, argv: Sequence[str]) -> list[str]:
    """``argv`` with a `--lang X` / `--lang=X` written after a subcommand that has no --lang of
    its own moved before it, where the group takes it: `reconcile match a.csv b.csv --lang zh`
    works like `reconcile --lang zh match a.csv b.csv` (Click only reads a group's options before
    the subcommand). A subcommand's own --lang (report, review serve) is left to it."""
    args = list(argv)
    cmd, k, start, first = root, 0, 0, None
    while k < len(args):   # follow the subcommand names, skipping the groups' own options
        a = args[k]
        if a == "--":
            return args
        if a == "--lang":
            k += 2
            continue
        if a.startswith("-"):
            k += 1
            continue
        commands = getattr(cmd, "commands", None)
        if not isinstance(commands, dict) or a not in commands:
            break
        first = k if first is None else first
        cmd, k = commands[a], k + 1
        start = k   # (the subcommand's own arguments and options begin here)
    if cmd is root or any("--lang" in getattr(p, "opts", ()) for p in cmd.params):
        return args
    # the subcommand's options that take a value: the word after one is its value (--out --lang)
    valued = {o for p in cmd.params if getattr(p, "param_type_name", "") == "option"
              and not getattr(p, "is_flag", False) and not getattr(p, "count", False) for o in p.opts}
    j = start
    while j < len(args):
        a = args[j]
        if a == "--":
            break
        if a in valued:
            j += 2
            continue
        # (placed right before the first subcommand: after any --lang of the group's own, so it
        # is the one that counts, as the last word)
        if a == "--lang" and j + 1 < len(args):
            moved = args[j:j + 2]
            del args[j:j + 2]
            return args[:first] + moved + args[first:]
        if a.startswith("--lang="):
            moved = [args.pop(j)]
            return args[:first] + moved + args[first:]
        j += 1
    return args


def walk(cmd: click.Command, path: str = "") -> Iterator[tuple[str, click.Command]]:
    """(dotted path, command) for the group and every subcommand, depth first."""
    yield path, cmd
    # Typer >= 0.29 vendors its own Click (typer._click), whose groups are not click.Group:
    # recognise a group by its `commands` mapping instead of by class.
    commands = getattr(cmd, "commands", None)
    if isinstance(commands, dict):
        for name, sub in sorted(commands.items()):
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
            cmd.help = prewrap_wide(entry[lang], cjk_breaks=lang == "zh")
            # The command list shows the first paragraph whole: Click's own shortening cuts at
            # ". " and would reduce a Chinese sentence (no spaces) to "...".
            cmd.short_help = " ".join(entry[lang].split("\n\n", 1)[0].split())
        for param in cmd.params:
            pe = cat.get(f"{base}.{param_key(param)}")
            # Options and (Typer shows them in an "Arguments" section) arguments alike.
            if pe and hasattr(param, "help"):
                param.help = pe[lang]
        _localise_help_option(cmd, cat, lang)
        _prewrap_params(cmd, cjk_breaks=lang == "zh")


def _context(cmd):
    """A bare context for asking a command about its parameters' help (None if it cannot)."""
    context_cls = getattr(type(cmd), "context_class", None)
    return context_cls(cmd, info_name=cmd.name) if context_cls is not None else None


def _localise_help_option(cmd, cat: dict, lang: str) -> None:
    """Click's own --help ("Show this message and exit."), built lazily and cached per command."""
    entry = cat.get("help.help_option")
    ctx = _context(cmd)
    if not entry or ctx is None or not hasattr(cmd, "get_help_option"):
        return
    opt = cmd.get_help_option(ctx)
    if opt is not None:
        opt.help = entry[lang]


def _prewrap_params(cmd, cjk_breaks: bool) -> None:
    """Option and argument texts holding CJK, wrapped by display width for the column Click will
    give them (its definition list: first column at most 30 + 2 wide, text up to column 78)."""
    ctx = _context(cmd)
    if ctx is None or not hasattr(cmd, "get_params"):
        return
    for kind in ("argument", "option"):   # Typer lays each kind out as its own list
        rows = [(p, p.get_help_record(ctx)) for p in cmd.get_params(ctx) if p.param_type_name == kind]
        rows = [(p, r) for p, r in rows if r]
        if not rows:
            continue
        first_col = min(max(len(r[0]) for _, r in rows), 30) + 2
        width = max(78 - first_col - 2, 10)
        for p, (_, full) in rows:
            text = getattr(p, "help", None) or ""
            if text.startswith("\b") or not any(map(_wide, text)):
                continue
            extra = full[len(text):] if full.startswith(text) else ""   # "  [required]", "  [default: x]"
            wrapped = prewrap_wide(text, width - 2, cjk_breaks=cjk_breaks)
            if extra and display_width(wrapped.rsplit("\n", 1)[-1] + extra) > width:
                wrapped += "\n"   # the bracketed note goes on a line of its own
            p.help = wrapped


# Help text is indented by 2 in Click's 78-column help, so 76 display columns at most;
# 74 leaves room for punctuation that may not start a line.
WRAP_WIDTH = 74
_TOKENS = re.compile(r"[!-~]+|\s+|.", re.S)   # an ASCII word stays whole; any other char alone
_WORDS = re.compile(r"\S+|\s+")
_NO_LINE_START = set("，。、；：？！）》」』”’,.;:?!)]")
_NO_LINE_END = set("（《「『“‘([")


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two."""
    return sum(2 if _wide(c) else 1 for c in text)


def prewrap_wide(text: str, width: int = WRAP_WIDTH, cjk_breaks: bool = True) -> str:
    """Wrap paragraphs holding CJK text by display width and mark them no-rewrap (Click's "\\b").

    Click wraps at spaces only and counts a Chinese character as one column, so a Chinese
    paragraph would come out as one over-long line. Other paragraphs are left to Click.
    ``cjk_breaks``: a line may break between any two CJK characters (Chinese text); otherwise
    at spaces only, so that "(流向不明)" in English text stays whole.
    """
    paras = []
    for para in text.strip("\n").split("\n\n"):
        if para.startswith("\b") or not any(_wide(c) for c in para):
            paras.append(para)
            continue
        joined = ""
        for line in para.split("\n"):   # a source line break between CJK characters is no space
            line = line.strip()
            if joined and line:
                joined += "" if _wide(joined[-1]) and _wide(line[0]) else " "
            joined += line
        lines, cur = [], ""
        for tok in (_TOKENS if cjk_breaks else _WORDS).findall(joined):
            if tok.isspace():
                cur += " " if cur else ""
                continue
            if cur.strip() and display_width(cur.rstrip() + tok) > width and tok[0] not in _NO_LINE_START:
                cur = cur.rstrip()
                carry = cur[-1] if cur[-1] in _NO_LINE_END and len(cur) > 1 else ""
                lines.append(cur[: len(cur) - len(carry)].rstrip())
                cur = carry
            cur += tok
        lines.append(cur.rstrip())
        paras.append("\b\n" + "\n".join(lines))
    return "\n\n".join(paras)
