"""Small vectorised helpers shared by the field comparators (private).

Comparators receive aligned numpy object arrays of ``str``. Fixed-width numpy strings
viewed as integer matrices let us compare characters position by position in C, with no
per-pair Python: an ``(n, width)`` code matrix per side, zero-padded on the right.
"""
from __future__ import annotations

import numpy as np


def column(cols, name: str) -> np.ndarray:
    """One input column as an object array (lists and string arrays are accepted too)."""
    arr = cols[name]
    if isinstance(arr, np.ndarray) and arr.dtype == object:
        return arr
    return np.asarray(arr, dtype=object)


def code_matrix(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Character codes of ``values`` as an ``(n, width)`` integer matrix, zero-padded.

    Returns ``(codes, overflow)``: ``overflow[i]`` is True when ``values[i]`` is longer than
    ``width`` (its codes are truncated). ASCII input gives uint8 codes (4x less memory);
    anything else falls back to uint32 code points.
    """
    n = len(values)
    try:
        raw = values.astype(f"S{width + 1}").view(np.uint8).reshape(n, width + 1)
    except UnicodeEncodeError:
        raw = values.astype(f"U{width + 1}").view(np.uint32).reshape(n, width + 1)
    return raw[:, :width], raw[:, width] != 0


def lengths(codes: np.ndarray) -> np.ndarray:
    """String lengths from a zero-padded code matrix."""
    return np.count_nonzero(codes, axis=1)
