"""The comparator contract: every field comparator returns an ordered level per pair.

Levels are small integers indexing ``Comparator.levels`` (strongest first, the last one is
"different"); ``MISSING`` (-1) means one side has no usable value: it is its own level and
never counts as a disagreement. Inputs are aligned numpy object arrays of standardised
columns (see reconcile.fields.STANDARD_COLUMNS), one element per candidate pair, so
comparators vectorise (rapidfuzz.process.cpdist, numpy) instead of looping per pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

MISSING = -1

Columns = Mapping[str, np.ndarray]
CompareFn = Callable[[Columns, Columns], np.ndarray]


@dataclass(frozen=True)
class Comparator:
    """One field's comparison: its name, level labels (strongest first), the standardised
    columns it reads from each side, and the vectorised function returning int8 levels."""

    field: str
    levels: tuple[str, ...]
    columns: tuple[str, ...]
    fn: CompareFn
    # columns among ``columns`` that only save work (a flag computed once per record), not shown
    # as the field's evidence
    unshown: tuple[str, ...] = ()

    @property
    def evidence_columns(self) -> tuple[str, ...]:
        """The columns whose values a link's evidence shows for this field."""
        return tuple(c for c in self.columns if c not in self.unshown)

    def compare(self, left: Columns, right: Columns) -> np.ndarray:
        """Levels for aligned pairs: int8 array, values in [-1, len(levels) - 1]."""
        out = np.asarray(self.fn(left, right), dtype=np.int8)
        n = len(next(iter(left.values()))) if left else 0
        if out.shape != (n,):
            raise ValueError(f"comparator {self.field} returned shape {out.shape}, expected ({n},)")
        return out

    def label(self, level: int) -> str:
        return "missing" if level == MISSING else self.levels[level]
