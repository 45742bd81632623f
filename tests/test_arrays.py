"""reconcile.arrays: an object array of one value, shared (not a copy per element)."""
import numpy as np

from reconcile.arrays import repeated


def test_repeated_shares_one_value_and_equals_np_full():
    for value in ("model", "欧阳·娜", "", None, 3):
        got = repeated(value, 1000)
        assert got.dtype == object and got.shape == (1000,)
        assert (got == np.full(1000, value, dtype=object)).all()
        assert all(x is got[0] for x in got)   # one object, referenced n times
    assert repeated("model", 0).shape == (0,)
