"""Term frequencies: looked up per pair from an index hashed once per field."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reconcile.scoring import TermFrequencies, term_counts


def test_frequencies_are_the_tables_values_and_nan_where_unseen():
    origin = pd.DataFrame({"name": ["王伟", "王伟", "張偉", "阿依古丽·买买提", ""], "k_birth": ["1990-05-06"] * 4 + [""]})
    dest = pd.DataFrame({"name": ["王伟", "张伟", "欧阳娜娜"], "k_birth": ["1990-05-06", "1985-01-01", ""]})
    tf = TermFrequencies.from_counts([term_counts(origin), term_counts(dest)])
    pairs = np.array(["王伟", "张伟", "張偉", "王玮", "阿依古丽·买买提", "王伟"], dtype=object)
    got = tf.frequencies("name", pairs)
    want = pd.Series(pairs).map(tf.tables["name"]).to_numpy(dtype=float)
    np.testing.assert_array_equal(got, want)          # (NaN in the same places: 王玮 never seen)
    assert got[0] == 3 / 7 and np.isnan(got[3])
    assert tf.frequencies("birth_date", np.array(["1990-05-06"], dtype=object))[0] == 5 / 6
    empty = TermFrequencies({"name": {}})
    assert np.isnan(empty.frequencies("name", pairs)).all()
