"""The default comparator set, in a fixed order (the order of fields in evidence and models)."""
from __future__ import annotations

from matchers.address import ADDRESS, RESIDENCE
from matchers.base import Comparator
from matchers.birth_date import BIRTH_DATE
from matchers.hukou import HUKOU
from matchers.id_number import ID_NUMBER
from matchers.name import NAME
from matchers.sex import SEX


def default_comparators() -> list[Comparator]:
    """ID, name, birth date, sex, hukou county, address below the county: a new list each call,
    safe to modify."""
    return [ID_NUMBER, NAME, BIRTH_DATE, SEX, HUKOU, ADDRESS, RESIDENCE]
