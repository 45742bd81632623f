"""One message catalogue in English and Chinese for every user-facing string.

The catalogue lives in ``reconcile/locales/*.toml`` (one file per area, merged into one
namespace; a key defined twice is an error). Each key is a TOML table with ``en`` and ``zh``.
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

LANGS = ("en", "zh")
_current: str | None = None


def detect_lang() -> str:
    """Chinese when LC_ALL / LC_MESSAGES / LANG says zh_*, else English."""
    for var in ("RECONCILE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        v = os.environ.get(var, "")
        if v:
            return "zh" if v.lower().startswith("zh") else "en"
    return "en"


def set_lang(lang: str | None) -> str:
    """Set the process-wide language (None: from the locale); returns the one in force."""
    global _current
    if lang is not None and lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGS)}")
    _current = lang or detect_lang()
    return _current


def get_lang() -> str:
    return _current or detect_lang()


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """All messages, merged from the locale files."""
    merged: dict[str, dict[str, str]] = {}
    for path in sorted((Path(__file__).parent / "locales").glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for key, entry in _flatten(data):
            if key in merged:
                raise RuntimeError(f"message key {key!r} defined twice (second time in {path.name})")
            missing = [lang for lang in LANGS if lang not in entry]
            if missing:
                raise RuntimeError(f"message key {key!r} in {path.name} lacks {missing}")
            merged[key] = entry
    return merged


def _flatten(data: dict[str, Any], prefix: str = ""):
    for k, v in data.items():
        if isinstance(v, dict) and "en" in v and isinstance(v["en"], str):
            yield prefix + k, v
        elif isinstance(v, dict):
            yield from _flatten(v, prefix + k + ".")


def t(key: str, lang: str | None = None, **params: Any) -> str:
    """Render message ``key`` in ``lang`` (default: the language in force)."""
    entry = catalogue().get(key)
    if entry is None:
        # A missing key is a bug, but the user should still see something useful.
        return key + (" " + repr(params) if params else "")
    text = entry[lang or get_lang()]
    return text.format(**params) if params else text
