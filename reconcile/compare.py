"""Compare candidate pairs field by field, in chunks, into a small-int level matrix."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from matchers.base import Comparator

DEFAULT_CHUNK = 500_000


def column_arrays(df: pd.DataFrame, comparators: Sequence[Comparator]) -> dict[str, np.ndarray]:
    """The columns the comparators read, as numpy object arrays (indexed by position)."""
    cols = sorted({c for comp in comparators for c in comp.columns})
    return {c: df[c].astype(str).to_numpy(dtype=object) for c in cols}


def compare_pairs(
    left: dict[str, np.ndarray],
    right: dict[str, np.ndarray],
    li: np.ndarray,
    ri: np.ndarray,
    comparators: Sequence[Comparator],
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Levels (int8, shape pairs x fields) for the pairs (li[k], ri[k])."""
    n = len(li)
    out = np.empty((n, len(comparators)), dtype=np.int8)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        lsel, rsel = li[start:stop], ri[start:stop]
        for f, comp in enumerate(comparators):
            lcols = {c: left[c][lsel] for c in comp.columns}
            rcols = {c: right[c][rsel] for c in comp.columns}
            out[start:stop, f] = comp.compare(lcols, rcols)
    return out


def random_pairs(n_left: int, n_right: int | None, size: int, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random record pairs (for u estimation); within one frame (n_right None) i != j."""
    rng = np.random.default_rng(seed)
    same = n_right is None
    nr = n_left if same else n_right
    if n_left == 0 or nr == 0:
        e = np.empty(0, np.int64)
        return e, e
    i = rng.integers(0, n_left, size)
    j = rng.integers(0, nr, size)
    if same:
        keep = i != j
        i, j = i[keep], j[keep]
    return i.astype(np.int64), j.astype(np.int64)
