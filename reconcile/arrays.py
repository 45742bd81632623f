"""Array helpers numpy lacks."""
from __future__ import annotations

from typing import Any

import numpy as np


def repeated(value: Any, n: int) -> np.ndarray:
    """An object array of ``n`` references to ``value`` (a str, a number, None). ``np.full(n, "model", dtype=object)``
    makes a new str per element instead (it casts through a unicode array): for the 4.4 M
    candidate pairs of a 1,000,000-person run 0.77 s and 240 MB, against 0.14 s and 35 MB."""
    out = np.empty(n, dtype=object)
    out[:] = value
    return out
