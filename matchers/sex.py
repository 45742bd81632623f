"""Sex comparator: equal or different; the record's sex, else the ID's sex digit."""
from __future__ import annotations

import numpy as np

from matchers._vec import column
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = ("equal", "different")
EQUAL, DIFFERENT = range(len(LEVELS))


def _effective(cols: Columns) -> np.ndarray:
    sex = column(cols, "sex")
    return np.where(sex != "", sex, column(cols, "id_sex"))


def compare_sex(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either effective sex is empty."""
    a, b = _effective(left), _effective(right)
    out = np.where(a == b, EQUAL, DIFFERENT).astype(np.int8)
    out[(a == "") | (b == "")] = MISSING
    return out


SEX = Comparator(field="sex", levels=LEVELS, columns=("sex", "id_sex"), fn=compare_sex)
