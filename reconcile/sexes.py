"""Sex as typed into registries -> 'M' | 'F' | ''.

Codes follow GB/T 2261.1: 1 male, 2 female; 0 (unknown) and 9 (not stated) give ''.
"""
from __future__ import annotations

import unicodedata

__all__ = ["parse_sex"]

_MAP: dict[str, str] = {}
for _v in ("男", "男性", "男士", "男的", "m", "male", "man", "boy", "1", "♂", "先生"):
    _MAP[_v] = "M"
for _v in ("女", "女性", "女士", "女的", "f", "female", "woman", "girl", "2", "♀"):
    _MAP[_v] = "F"


def parse_sex(raw: str | None) -> str:
    """'M' for 男/男性/M/m/1/male/♂, 'F' for 女/女性/F/f/2/female/♀, '' for anything else."""
    if not raw:
        return ""
    s = raw.strip()
    hit = _MAP.get(s)
    if hit is not None:
        return hit
    # full-width Ｍ／１, upper case, a numeric cell saved as float (1.0)
    s = unicodedata.normalize("NFKC", s).strip().lower().removesuffix(".0")
    return _MAP.get(s, "")
