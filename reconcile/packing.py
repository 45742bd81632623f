"""A standardised frame sent from the loading worker (reconcile.parallel) with its nearly
distinct text columns (ID numbers, record keys, residences) as one UTF-8 buffer each, after the
pickle, instead of one pickled object per cell.

Pickle writes every str object on its own and remembers each in its memo: the 1,000,000-person
destination's linking columns (1.86 M rows x 42 columns) took 8.4 s to dump and 4.3-4.6 s to
load, while the main process waited for them; with these columns as buffers 4.7 and 3.6-4.2 s.
Joining a column's values with a separator and encoding them takes 0.06-0.24 s, splitting them
back 0.15-0.31 s. The buffers follow the pickle on the stream, one at a time: inside the pickle
both ends held all of them until its end (pickle memoises every bytes object), and the two
processes' peak was 0.2-0.4 GB higher. Columns that repeat their
values (a birth year, a county: one object per value, reconcile.interning) go as their codes and
distinct values when their codes are known (reconcile.codes: most are), which the receiving end
remembers; else in the pickle, which writes a repeated object as a reference (splitting would
make a copy per row).

    packed = PackedFrame(frame)
    pickle.dump(packed, out); packed.write_trailing(out)      # the sending end
    pending = pickle.load(inp); frame = pending.complete(inp)  # the receiving end: a PendingFrame
"""
from __future__ import annotations

import pickle
import struct
from typing import IO, Any

import numpy as np
import pandas as pd

from reconcile.codes import lookup, spread

SEPARATOR = "\x00"   # never in a value read from a text file (checked: a column holding it is pickled)
# a column goes as a buffer when at least this share of an even sample of its cells are distinct objects
PACK_FROM_SHARE = 0.9
SAMPLE = 20_000
MIN_ROWS = 10_000    # below this pickling is quick anyway

# kind (b"S": joined text, b"P": a pickled array, b"L": like an earlier column), length
_HEADER = struct.Struct("<cQ")
_LIKE = struct.Struct("<IQ")     # b"L": the earlier column's place, the differing rows' bytes
# a column goes as an earlier one's values where at least this share of a sample of its rows are
# the same objects as that column's
LIKE_FROM_SHARE = 0.5


class PackedFrame:
    """``frame`` to send: pickled, it is a PendingFrame, which ``write_trailing`` then completes."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.trailing: list[np.ndarray] = []

    def __reduce__(self):
        df = self.frame
        self.trailing = []
        if not df.columns.is_unique:   # (never a standardised frame): as pandas pickles it
            return (_same, (df,))
        parts: list[tuple[str, Any]] = []
        for c in df.columns:
            s = df[c]
            if not isinstance(s.dtype, np.dtype):   # an extension dtype: as pandas pickles it
                parts.append(("series", s.reset_index(drop=True)))
                continue
            arr = s.to_numpy()
            if arr.dtype == object and _worth_packing(arr):
                parts.append(("trailing", len(self.trailing)))
                self.trailing.append(arr)
            elif arr.dtype == object and (got := lookup(arr)) is not None and not got.missing:
                parts.append(("coded", (got.codes, got.uniques)))   # its codes and distinct values
            else:
                parts.append(("array", arr))
        return (PendingFrame, (df.index, list(df.columns), parts))

    def write_trailing(self, out: IO[bytes]) -> None:
        """Write the columns the pickle left out, in order, each built just before it is written.
        A column that holds an earlier one's values in most rows (the cleaned ID number and the
        number as standardised: one object per record in both) goes as that column and the rows
        where it differs: the receiving end then shares those rows' objects, as the sender did
        (at 1,000,000 persons 0.13 GB of the main process's, and the time to split them)."""
        for k, arr in enumerate(self.trailing):
            data = None
            for j in range(k):
                differ = _differing_rows(arr, self.trailing[j])
                if differ is None:
                    continue
                packed = _pack(arr[differ]) if differ.size else b""
                if packed is not None:   # (None: a differing value not a str, or holding the separator)
                    rows = differ.astype("<i8").tobytes()
                    data = _LIKE.pack(j, len(rows)) + rows + packed
                    out.write(_HEADER.pack(b"L", len(data)))
                    break
            if data is None:
                packed = _pack(arr)
                if packed is None:   # a value not a str, or holding the separator: pickled after all
                    data = pickle.dumps(arr, protocol=pickle.HIGHEST_PROTOCOL)
                    out.write(_HEADER.pack(b"P", len(data)))
                else:
                    data = packed
                    out.write(_HEADER.pack(b"S", len(data)))
            out.write(data)
            del data
        self.trailing = []


class PendingFrame:
    """A PackedFrame unpickled: the columns that followed the pickle are still to be read."""

    def __init__(self, index: pd.Index, columns: list, parts: list) -> None:
        self.index, self.columns, self.parts = index, columns, parts

    @property
    def n_trailing(self) -> int:
        return sum(1 for kind, _ in self.parts if kind == "trailing")

    def complete(self, inp: IO[bytes]) -> pd.DataFrame:
        """The DataFrame, its trailing columns read from ``inp`` (EOFError when they end short)."""
        trailing: list[np.ndarray] = []
        for _ in range(self.n_trailing):
            trailing.append(_read_column(inp, len(self.index), trailing))
        cols: dict = {}
        for name, (kind, value) in zip(self.columns, self.parts):
            if kind == "trailing":
                cols[name] = trailing[value]
            elif kind == "series":
                cols[name] = value.set_axis(self.index)
            elif kind == "coded":
                codes, uniques = value
                cols[name] = spread(uniques, codes, distinct=True)
            else:
                cols[name] = value
        # not consolidated (copy=False): one block per column, as reconcile.keys.add_keys builds them
        return pd.DataFrame(cols, index=self.index, columns=self.columns, copy=False)


def _same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _worth_packing(arr: np.ndarray) -> bool:
    n = len(arr)
    if n < MIN_ROWS:
        return False
    sample = arr[:: max(n // SAMPLE, 1)].tolist()
    return len(set(map(id, sample))) >= PACK_FROM_SHARE * len(sample)


def _pack(arr: np.ndarray) -> bytes | None:
    """The values joined and encoded, or None when a value is not a str or holds the separator."""
    values = arr.tolist()
    if not all(type(v) is str for v in values):
        return None
    joined = SEPARATOR.join(values)
    if joined.count(SEPARATOR) != len(values) - 1:
        return None
    # surrogatepass: a lone surrogate (a file decoded with surrogateescape) travels as it is
    return joined.encode("utf-8", "surrogatepass")


def _read_exactly(inp: IO[bytes], n: int) -> bytes:
    data = inp.read(n)   # (a buffered pipe returns all n bytes, or fewer at its end)
    if len(data) == n:
        return data
    buf = bytearray(data)
    while len(buf) < n:
        got = inp.read(n - len(buf))
        if not got:
            raise EOFError("the frame's columns ended short")
        buf += got
    return bytes(buf)


def _differing_rows(arr: np.ndarray, earlier: np.ndarray) -> np.ndarray | None:
    """The rows where ``arr`` differs from ``earlier``, when it holds ``earlier``'s values in at
    least LIKE_FROM_SHARE of an even sample of rows (else None)."""
    if len(arr) != len(earlier) or not len(arr):
        return None
    step = max(len(arr) // SAMPLE, 1)
    a, b = arr[::step].tolist(), earlier[::step].tolist()
    if sum(x is y for x, y in zip(a, b)) < LIKE_FROM_SHARE * len(a):
        return None
    # (equal objects compare in C without looking at their text)
    return np.flatnonzero(arr != earlier)


def _split(data: bytes | memoryview, n: int) -> np.ndarray:
    out = np.empty(n, dtype=object)
    if n:
        out[:] = bytes(data).decode("utf-8", "surrogatepass").split(SEPARATOR)
    return out


def _read_column(inp: IO[bytes], n: int, earlier: list[np.ndarray]) -> np.ndarray:
    head = _read_exactly(inp, _HEADER.size)
    kind, size = _HEADER.unpack(head)
    data = _read_exactly(inp, size)
    if kind == b"P":
        return pickle.loads(data)
    if kind == b"L":   # an earlier column's values, with the rows where it differs
        j, rows_size = _LIKE.unpack_from(data)
        rows = np.frombuffer(data, dtype="<i8", count=rows_size // 8, offset=_LIKE.size).astype(np.intp)
        out = earlier[j].copy()
        if rows.size:
            out[rows] = _split(memoryview(data)[_LIKE.size + rows_size:], rows.size)
        return out
    return _split(data, n)
