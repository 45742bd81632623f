"""Masking of personal data for anything a person reads (terminal, logs, JSON, exports)."""
from __future__ import annotations

import re

_LONG_DIGITS = re.compile(r"\d{6}[\dXx*]{5,}[\dXx]")


def mask_id(value: str | None) -> str:
    """Mask an ID number as first 6 + stars + last 4: ``431028********123X``.

    Short values (under 11 characters) keep only their first 2 characters, so nothing
    identifying leaks from a truncated number either.
    """
    if not value:
        return ""
    s = str(value)
    if len(s) >= 11:
        return s[:6] + "*" * (len(s) - 10) + s[-4:]
    return s[:2] + "*" * max(len(s) - 2, 0)


def mask_ids_in_text(text: str) -> str:
    """Mask every ID-like digit run inside free text (error messages, raw rows)."""
    return _LONG_DIGITS.sub(lambda m: mask_id(m.group(0)), text)


def mask_name(name: str | None) -> str:
    """Partly mask a name: 张伟 -> 张*, 张小伟 -> 张*伟, ZHANG WEI -> Z**** W**."""
    if not name:
        return ""
    if name.isascii():
        return " ".join(w[:1] + "*" * (len(w) - 1) for w in name.split())
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
