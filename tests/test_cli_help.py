"""Command-line help: every command, option and argument is described in English and Chinese
(reconcile/locales/help.toml), `reconcile --help` lists every command on one line, every command's
help carries an example that parses, the language follows --lang and the locale, --version works.

The tree is walked, not listed by hand: a command or option added without catalogue entries fails
here with the missing keys named.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest
import typer

import cli
import reconcile
from reconcile.helptext import display_width, localise, walk
from reconcile.i18n import catalogue
from reconcile.review.ledger import DECISIONS, SOURCE_PAIRS

REPO = Path(__file__).resolve().parents[1]
LANGS = ("en", "zh")
EXAMPLE_PREFIX = {"en": "Example: reconcile ", "zh": "示例：reconcile "}
HELP_OPTION_KEY = "help.help_option"   # Click's own --help, one text for every command
CJK = re.compile(r"[\u3400-\u9fff]")


def command_key(path: str) -> str:
    return f"help.{path}" if path else "help.root"


def user_params(cmd) -> list:
    """The command's own options and arguments (Click's --help is not among cmd.params)."""
    return [p for p in cmd.params if not (p.name == "help" and "--help" in getattr(p, "opts", ()))]


def tree():
    return typer.main.get_command(cli.app)


def expected_keys() -> dict[str, tuple[str, str]]:
    """Catalogue key -> (kind, what it describes) for the whole current command tree."""
    keys: dict[str, tuple[str, str]] = {}
    for path, cmd in walk(tree()):
        base, shown = command_key(path), " ".join(["reconcile", *path.split(".")]).strip()
        keys[base] = ("command", f"command `{shown}`")
        for p in user_params(cmd):
            flag = "/".join(getattr(p, "opts", ())) or p.name
            keys[f"{base}.{p.name}"] = ("param", f"{p.param_type_name} {flag} of `{shown}`")
    return keys


@lru_cache(maxsize=None)
def localised(lang: str):
    root = tree()
    localise(root, lang)
    return root


def render_help(lang: str, path: str) -> str:
    """`reconcile [path] --help` in-process, as the entry point would print it."""
    args = [*path.split("."), "--help"] if path else ["--help"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = localised(lang).main(args, prog_name="reconcile", standalone_mode=False)
    assert rc == 0, (path, rc)
    return buf.getvalue()


def squash(text: str) -> str:
    """Whitespace removed: wrapped help compared with catalogue text."""
    return "".join(text.split())


def summary(lang: str, path: str) -> str:
    """First paragraph of a command's catalogue text: its line in the command list."""
    return " ".join(catalogue()[command_key(path)][lang].strip().split("\n\n", 1)[0].split())


def parse_example(root, argv: list[str]):
    """Parse a command line the way the entry point would, without running it.

    Returns (dotted command path, the leaf command's parsed params); a wrong option, a missing
    argument or a missing required option raises Click's UsageError.
    """
    ctx = root.make_context("reconcile", list(argv))
    cmd, path = root, []
    while isinstance(getattr(cmd, "commands", None), dict):
        args = [*ctx._protected_args, *ctx.args]
        assert args, f"{argv}: stops at a group"
        name, sub, rest = cmd.resolve_command(ctx, args)
        path.append(name)
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return ".".join(path), ctx.params


def run_entry_point(*args: str, env_lang: str | None = None, columns: int = 80) -> subprocess.CompletedProcess:
    """The real entry point (cli.main) in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES", "RECONCILE_LANG")}
    env["COLUMNS"] = str(columns)
    env["PYTHONIOENCODING"] = "utf-8"
    env["LANG"] = env_lang or "C.UTF-8"
    return subprocess.run([sys.executable, "-c", "from cli import main; main()", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


COMMAND_PATHS = [path for path, _ in walk(tree())]


# ---- (a) catalogue entries for the whole tree --------------------------------------------------

def test_every_command_option_and_argument_has_help_in_both_languages():
    cat = catalogue()
    expected = expected_keys()
    missing = [f"[\"{k}\"]  ({what})" for k, (_, what) in expected.items() if k not in cat]
    assert not missing, "add to reconcile/locales/help.toml (en and zh each):\n" + "\n".join(missing)
    assert HELP_OPTION_KEY in cat
    bad = []
    for key, kind in [*((k, kind) for k, (kind, _) in expected.items()), (HELP_OPTION_KEY, "param")]:
        en, zh = cat[key]["en"].strip(), cat[key]["zh"].strip()
        if not en or not zh:
            bad.append(f"{key}: empty text")
        if len(re.findall(r"[A-Za-z]", en)) <= len(CJK.findall(en)):
            bad.append(f"{key}: the en text is not English: {en[:40]!r}")
        if len(CJK.findall(zh)) <= len(CJK.findall(en)):
            bad.append(f"{key}: the zh text is not Chinese: {zh[:40]!r}")
        if kind == "param" and ("\n" in en or "\n" in zh):
            bad.append(f"{key}: option texts are one line")
    assert not bad, "\n".join(bad)


def test_no_help_entries_for_commands_or_options_that_do_not_exist():
    expected = set(expected_keys()) | {HELP_OPTION_KEY}
    stale = sorted(k for k in catalogue() if k.startswith("help.") and k not in expected)
    assert not stale, "help.toml entries that describe nothing (renamed or removed?): " + ", ".join(stale)


# ---- (b) the command lists ---------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
def test_root_help_lists_every_command_with_a_one_line_description(lang):
    out = render_help(lang, "")
    listing = out.split("Commands:", 1)[1].splitlines()
    top = [p for p in COMMAND_PATHS if p and "." not in p]
    assert {"profile", "match", "review", "export", "feedback", "report"} <= set(top)
    for name in top:
        lines = [ln for ln in listing if ln.split()[:1] == [name]]
        assert len(lines) == 1, f"{name} not listed in `reconcile --help`:\n{out}"
        text = lines[0].split(None, 1)[1].strip()
        assert text == summary(lang, name), f"{name}: listed as {text!r}, not on one line or cut short"
        assert display_width(lines[0]) <= 80, lines[0]
    # The description is the user's language, not the English docstring.
    assert summary("zh" if lang == "en" else "en", "match") not in out


@pytest.mark.parametrize("lang", LANGS)
def test_every_group_lists_its_subcommands_on_one_line(lang):
    groups = [(p, c) for p, c in walk(tree()) if p and isinstance(getattr(c, "commands", None), dict)]
    assert {"review", "feedback"} <= {p for p, _ in groups}
    for path, group in groups:
        out = render_help(lang, path)
        listing = out.split("Commands:", 1)[1].splitlines()
        for name in group.commands:
            lines = [ln for ln in listing if ln.split()[:1] == [name]]
            assert len(lines) == 1 and lines[0].split(None, 1)[1].strip() == summary(lang, f"{path}.{name}"), \
                f"`reconcile {path} --help` does not list {name} on one line:\n{out}"
            assert display_width(lines[0]) <= 80, lines[0]


# ---- (c) examples ------------------------------------------------------------------------------

def example_of(lang: str, help_text: str) -> str | None:
    for line in help_text.splitlines():
        if line.strip().startswith(EXAMPLE_PREFIX[lang]):
            return line.strip()[len(EXAMPLE_PREFIX[lang]) - len("reconcile "):]
    return None


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("path", COMMAND_PATHS)
def test_every_command_help_has_an_example_that_parses(lang, path):
    out = render_help(lang, path)
    example = example_of(lang, out)
    assert example, f"`reconcile {path.replace('.', ' ')} --help` ({lang}) has no '{EXAMPLE_PREFIX[lang]}...' line:\n{out}"
    argv = shlex.split(example)[1:]
    resolved, params = parse_example(tree(), argv)
    if path:
        assert resolved == path or resolved.startswith(path + "."), f"example of {path} runs {resolved}: {example}"
    # Values Click does not check (the library does): the example must use valid ones.
    for name, allowed in (("decision", DECISIONS), ("pair", SOURCE_PAIRS), ("fmt", ("xlsx", "csv")),
                          ("by", ("unit", "region")), ("lang", ("zh", "en"))):
        if params.get(name) is not None:
            assert params[name] in allowed, f"{example}: {name}={params[name]!r}"


@pytest.mark.parametrize("path", COMMAND_PATHS)
def test_the_example_is_the_same_command_in_both_languages(path):
    en, zh = example_of("en", render_help("en", path)), example_of("zh", render_help("zh", path))
    assert en and en == zh


def test_an_example_with_a_bad_option_does_not_parse():
    """The example check can fail: a misspelt option or a missing argument is caught."""
    from typer._click.exceptions import UsageError

    with pytest.raises(UsageError):
        parse_example(tree(), ["match", "a.csv", "b.csv", "--orgin-key", "编号"])
    with pytest.raises(UsageError):
        parse_example(tree(), ["review", "decide", "比对.db", "H1", "D1", "--reviewer", "李娟"])   # no --decision
    assert parse_example(tree(), ["review", "比对.db", "--reviewer", "李娟"])[0] == "review.serve"


# ---- help text shape ---------------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
def test_help_lines_fit_eighty_columns(lang):
    """Chinese takes two columns a character; Click would leave a Chinese paragraph on one line."""
    too_wide = []
    for path in COMMAND_PATHS:
        for line in render_help(lang, path).splitlines():
            if display_width(line) > 80 and not line.strip().startswith(EXAMPLE_PREFIX[lang]):
                too_wide.append(f"{path or 'reconcile'}: {display_width(line)} columns: {line}")
    assert not too_wide, "\n".join(too_wide)


@pytest.mark.parametrize("lang", LANGS)
def test_arguments_and_options_show_the_catalogue_text(lang):
    cat = catalogue()
    for path, cmd in walk(tree()):
        out = squash(render_help(lang, path))
        for p in user_params(cmd):
            key = f"{command_key(path)}.{p.name}"
            if key not in cat:
                continue   # reported, with every other missing key, by the first test
            text = cat[key][lang]
            assert squash(text) in out, f"{path} {p.name}: {text!r} not shown"
        assert squash(cat[HELP_OPTION_KEY][lang]) in out


# ---- (d) the real entry point: --lang and the locale ------------------------------------------

def test_lang_zh_gives_chinese_help():
    r = run_entry_point("--lang", "zh", "match", "--help")
    assert r.returncode == 0, r.stderr
    out = squash(r.stdout)
    cat = catalogue()
    assert squash(summary("zh", "match")) in out
    assert squash(cat["help.match.origin_key"]["zh"]) in out
    assert squash(cat["help.match.match_threshold"]["zh"]) in out
    assert "户籍地" in r.stdout and "示例：reconcile match" in r.stdout
    assert squash(summary("en", "match")) not in out and "Example:" not in r.stdout


def test_lang_en_gives_english_help_even_in_a_chinese_locale():
    r = run_entry_point("--lang", "en", "match", "--help", env_lang="zh_CN.UTF-8")
    assert r.returncode == 0, r.stderr
    out = squash(r.stdout)
    assert squash(summary("en", "match")) in out
    assert squash(catalogue()["help.match.origin_key"]["en"]) in out
    assert "Example: reconcile match" in r.stdout and "示例" not in r.stdout


def test_chinese_locale_without_lang_gives_chinese_help():
    r = run_entry_point("--help", env_lang="zh_CN.UTF-8")
    assert r.returncode == 0, r.stderr
    assert squash(catalogue()["help.root.lang"]["zh"]) in squash(r.stdout)
    for name in ("profile", "match", "review", "export", "feedback", "report"):
        assert squash(summary("zh", name)) in squash(r.stdout)
    r = run_entry_point("review", "decide", "--help", env_lang="zh_CN.UTF-8")
    assert r.returncode == 0 and squash(summary("zh", "review.decide")) in squash(r.stdout)


def test_english_locale_without_lang_gives_english_help():
    r = run_entry_point("feedback", "status", "--help", env_lang="en_US.UTF-8")
    assert r.returncode == 0, r.stderr
    assert squash(summary("en", "feedback.status")) in squash(r.stdout)
    assert squash(summary("zh", "feedback.status")) not in squash(r.stdout) and "示例" not in r.stdout


def test_lang_equals_form_and_a_subcommand_lang_option():
    """`--lang=zh` works too; a subcommand's own --lang (page or bulletin language) picks the help language."""
    r = run_entry_point("--lang=zh", "export", "--help")
    assert r.returncode == 0 and squash(summary("zh", "export")) in squash(r.stdout)
    r = run_entry_point("report", "--lang", "zh", "--help", env_lang="en_US.UTF-8")
    assert r.returncode == 0 and squash(summary("zh", "report")) in squash(r.stdout)


def test_lang_after_the_subcommand_counts_as_before_it(tmp_path):
    """Users type the language where they finish the command: `reconcile match a b --lang zh`
    (Click itself reads a group's options only before the subcommand)."""
    missing = str(tmp_path / "户籍.csv")
    r = run_entry_point("match", missing, str(tmp_path / "b.csv"), "--lang", "zh", env_lang="en_US.UTF-8")
    assert r.returncode == 3 and r.stderr.strip().startswith("错误") and "文件不存在" in r.stderr, r.stderr
    r = run_entry_point("match", "--lang=zh", missing, str(tmp_path / "b.csv"), env_lang="en_US.UTF-8")
    assert r.returncode == 3 and "文件不存在" in r.stderr, r.stderr
    # the last word counts, as with Click's own options
    r = run_entry_point("--lang", "zh", "match", missing, str(tmp_path / "b.csv"), "--lang", "en")
    assert r.returncode == 3 and "file not found" in r.stderr, r.stderr
    # and the help follows it, in a nested group too
    r = run_entry_point("review", "decide", "--help", "--lang", "zh", env_lang="en_US.UTF-8")
    assert r.returncode == 0 and squash(summary("zh", "review.decide")) in squash(r.stdout)
    # a word that is another option's value stays that option's value
    from reconcile.helptext import hoist_lang

    root = typer.main.get_command(cli.app)
    assert hoist_lang(root, ["match", "a.csv", "b.csv", "--out", "--lang"]) == ["match", "a.csv", "b.csv", "--out", "--lang"]
    assert hoist_lang(root, ["match", "a.csv", "b.csv", "--out", "--lang", "--lang", "zh"]) == \
        ["--lang", "zh", "match", "a.csv", "b.csv", "--out", "--lang"]
    assert hoist_lang(root, ["match", "--json", "--lang", "zh", "a.csv", "b.csv"]) == \
        ["--lang", "zh", "match", "--json", "a.csv", "b.csv"]
    # a subcommand's own --lang stays its own (the bulletin's language)
    r = run_entry_point("report", str(tmp_path / "none.db"), "--lang", "fr", "--html", str(tmp_path / "b.html"))
    assert r.returncode == 2 and "--lang" in r.stderr, r.stderr


# ---- (e) --version -----------------------------------------------------------------------------

def test_version():
    r = run_entry_point("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"reconcile {reconcile.__version__}"
    assert reconcile.__version__ == dist_version("reconcile")   # the installed distribution agrees


def test_installed_console_script_runs():
    script = Path(sys.executable).with_name("reconcile")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (not installed into this interpreter)")
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES", "RECONCILE_LANG")}
    r = subprocess.run([str(script), "--lang", "zh", "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"reconcile {reconcile.__version__}"
    r = subprocess.run([str(script), "--lang", "zh", "--help"], capture_output=True, text=True, encoding="utf-8",
                       env={**env, "COLUMNS": "80"}, timeout=60)
    assert r.returncode == 0 and squash(summary("zh", "profile")) in squash(r.stdout)
