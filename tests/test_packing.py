"""reconcile.packing: the loading worker's frame pickled with its nearly distinct text columns
as one buffer each, and unpickled into an equal DataFrame."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest

from reconcile import packing
from reconcile.interning import shared_values
from reconcile.packing import PackedFrame, PendingFrame


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    ids = np.array([f"431028{19500101 + i % 500000:08d}{i % 1000:03d}{'X' if i % 11 == 0 else str(i % 10)}"
                    for i in range(n)], dtype=object)
    names = shared_values(rng.choice(np.array(["王伟", "張偉", "阿依古丽·买买提", "", "欧阳娜娜"], dtype=object), n))
    return pd.DataFrame({
        "record_key": np.array([str(i) for i in range(n)], dtype=object),
        "id_clean": ids,
        "name": names,                                          # repeated values: one object each
        "residence": np.array([f"东莞市厚街镇鸿福路{i}号 {i % 7}栋" for i in range(n)], dtype=object),
        "k_unidentified": rng.random(n) < 0.1,
        "line": np.arange(2, n + 2, dtype=np.int64),
        "score": pd.array(rng.integers(0, 5, n), dtype="Int64"),   # an extension dtype
    }, copy=False)   # (one block per column, as reconcile.keys.add_keys builds a standardised frame)


def _round_trip(df: pd.DataFrame) -> tuple[pd.DataFrame, bytes]:
    """Sent as the loading worker sends it: the pickle, the trailing columns, then another
    result on the same stream (which must be read intact after them)."""
    buf = io.BytesIO()
    packed = PackedFrame(df)
    pickle.dump(packed, buf, protocol=pickle.HIGHEST_PROTOCOL)
    packed.write_trailing(buf)
    pickle.dump("next result", buf)
    data = buf.getvalue()
    inp = io.BytesIO(data)
    got = pickle.load(inp)
    back = got.complete(inp) if isinstance(got, PendingFrame) else got
    assert isinstance(back, pd.DataFrame)
    assert pickle.load(inp) == "next result"
    return back, data


def test_round_trip_equal_and_distinct_columns_packed(monkeypatch):
    df = _frame(30_000)
    packed_cols: list[int] = []
    real = packing._pack
    monkeypatch.setattr(packing, "_pack", lambda arr: packed_cols.append(len(arr)) or real(arr))
    back, _ = _round_trip(df)
    pd.testing.assert_frame_equal(back, df)
    assert list(back.columns) == list(df.columns)
    assert len(packed_cols) == 3   # record_key, id_clean, residence; not the repeated names
    # the repeated values stay one object per value (pickle's memo), as reconcile.interning made them
    names = back["name"].to_numpy()
    assert len({id(x) for x in names.tolist()}) <= 5
    assert back._mgr.nblocks == len(df.columns)   # one block per column, not consolidated


def test_values_that_cannot_be_joined_travel_as_they_are():
    df = _frame(12_000)
    ids = df["id_clean"].to_numpy().copy()
    ids[5] = "4310\x00281989"        # the separator inside a value
    res = df["residence"].to_numpy().copy()
    res[7] = "街道\udce9"              # a lone surrogate (a file decoded with surrogateescape)
    keys = df["record_key"].to_numpy().copy()
    keys[9] = 17                       # not a str
    df = df.assign(id_clean=ids, residence=res, record_key=keys)
    back, _ = _round_trip(df)
    pd.testing.assert_frame_equal(back, df)
    assert back["id_clean"][5] == "4310\x00281989" and back["residence"][7] == "街道\udce9" and back["record_key"][9] == 17


def test_small_and_empty_frames():
    for n in (0, 1, 50):
        df = _frame(n)
        back, _ = _round_trip(df)
        pd.testing.assert_frame_equal(back, df)


def test_packed_is_smaller_work_for_pickle():
    """Fewer pickle opcodes per cell: the packed pickle of distinct IDs holds no per-value objects."""
    df = _frame(20_000)[["id_clean"]]
    _, data = _round_trip(df)
    assert data.count(b"\x8c\x12") < 10           # one buffer, not 20,000 short strings
    plain = pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL)
    assert plain.count(b"\x8c\x12") > 10_000       # SHORT_BINUNICODE of 18 characters, per value


def test_duplicate_column_names_pickle_as_pandas_does():
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    back, _ = _round_trip(df)
    pd.testing.assert_frame_equal(back, df)


def test_stream_ending_short_is_an_error():
    df = _frame(12_000)
    buf = io.BytesIO()
    packed = PackedFrame(df)
    pickle.dump(packed, buf)
    packed.write_trailing(buf)
    inp = io.BytesIO(buf.getvalue()[:-100])   # the worker died while writing
    with pytest.raises(EOFError):
        pickle.load(inp).complete(inp)


def test_column_with_known_codes_travels_as_codes_and_is_remembered(monkeypatch):
    # a standardised column made once per distinct value (reconcile.codes.spread) goes as its
    # codes and distinct values; the receiving end has its codes without factorising it
    from reconcile import codes

    df = _frame(30_000)
    assert codes.lookup(df["name"].to_numpy()) is not None
    sent = []
    real = packing.PendingFrame.complete

    def spy(self, inp):
        sent.extend(kind for kind, _ in self.parts)
        return real(self, inp)

    monkeypatch.setattr(packing.PendingFrame, "complete", spy)
    back, _ = _round_trip(df)
    assert sent.count("coded") == 1   # name; the nearly distinct ones trail, the rest as arrays
    pd.testing.assert_frame_equal(back, df)
    got = codes.lookup(back["name"].to_numpy())
    want, uniq = pd.factorize(df["name"].to_numpy(), sort=False)
    assert got is not None and got.codes.astype(np.int64).tolist() == want.tolist()
    assert got.uniques.tolist() == list(uniq)
    assert len({id(x) for x in back["name"].tolist()}) <= 5


def test_a_column_holding_an_earlier_ones_values_shares_its_objects(monkeypatch):
    """The standardised ID number is the cleaned one's object in most rows: sent as that column
    and the rows where it differs, it arrives equal, sharing the cleaned number's objects there."""
    df = _frame(30_000)
    ids = df["id_clean"].to_numpy(object)
    number = ids.copy()
    number[::50] = "G12345678"                      # some rows differ (a foreign number, say)
    number[5] = "含\x00分隔符"                        # one holds the separator: pickled whole then
    df2 = df.assign(id_number=number.copy(), same=ids.copy())
    df2.loc[5, "id_number"] = "4310281990"          # (not for this frame: every row packs)
    assert packing._worth_packing(df2["id_number"].to_numpy())
    packed_cols: list[int] = []
    real = packing._pack
    monkeypatch.setattr(packing, "_pack", lambda arr: packed_cols.append(len(arr)) or real(arr))
    back, _ = _round_trip(df2)
    pd.testing.assert_frame_equal(back, df2)
    got_ids, got_number, got_same = (back[c].to_numpy(object) for c in ("id_clean", "id_number", "same"))
    like = np.array([a is b for a, b in zip(got_number.tolist(), got_ids.tolist())])
    assert like.sum() == (df2["id_number"].to_numpy(object) == ids).sum() > 29_000
    assert all(a is b for a, b in zip(got_same.tolist(), got_ids.tolist()))   # nothing differs
    # id_clean, record_key, residence whole; id_number's differing rows; same: none (no buffer)
    assert sorted(packed_cols) == sorted([30_000, 30_000, 30_000, int((~like).sum())])
    # a differing row that holds the separator: the column goes pickled, still equal
    df3 = df.assign(id_number=number)
    back3, _ = _round_trip(df3)
    pd.testing.assert_frame_equal(back3, df3)
