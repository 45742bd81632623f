"""Sex values as registries write them."""
from __future__ import annotations

import pytest

from reconcile.sexes import parse_sex


@pytest.mark.parametrize("raw", ["男", "男性", " 男 ", "M", "m", "Ｍ", "1", "１", "1.0", "male", "Male", "MALE", "♂"])
def test_male(raw: str) -> None:
    assert parse_sex(raw) == "M"


@pytest.mark.parametrize("raw", ["女", "女性", "女 ", "F", "f", "Ｆ", "2", "2.0", "female", "Female", "♀"])
def test_female(raw: str) -> None:
    assert parse_sex(raw) == "F"


@pytest.mark.parametrize("raw", ["", "  ", "0", "9", "未知", "不详", "3", "男女", "x", None])
def test_unknown_is_empty(raw: str | None) -> None:
    # GB/T 2261.1: 0 unknown, 9 not stated; anything else unclear stays unknown
    assert parse_sex(raw) == ""
