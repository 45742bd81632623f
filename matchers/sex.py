"""Sex comparator: equal, equal as both ID numbers state (``implied_by_id``, weight 0) or
different; the record's sex, else the ID's sex digit."""
from __future__ import annotations

import numpy as np

from matchers._vec import column
from matchers.base import MISSING, Columns, Comparator

LEVELS: tuple[str, ...] = ("equal", "implied_by_id", "different")
EQUAL, IMPLIED_BY_ID, DIFFERENT = range(len(LEVELS))


def _effective(cols: Columns) -> np.ndarray:
    sex = column(cols, "sex")
    return np.where(sex != "", sex, column(cols, "id_sex"))


def compare_sex(left: Columns, right: Columns) -> np.ndarray:
    """Level per aligned pair; MISSING when either effective sex is empty."""
    a, b = _effective(left), _effective(right)
    out = np.where(a == b, EQUAL, DIFFERENT).astype(np.int8)
    # both ID numbers state this sex: no evidence beyond the ID's own (weight 0, see birth_date)
    from matchers.id_number import id_counts_agreement

    out[id_counts_agreement(left, right, "id_sex", only=out == EQUAL)] = IMPLIED_BY_ID
    out[(a == "") | (b == "")] = MISSING
    return out


SEX = Comparator(field="sex", levels=LEVELS, columns=("sex", "id_sex", "id_clean", "id_status", "k_id_excel"),
                 fn=compare_sex, unshown=("k_id_excel",))
