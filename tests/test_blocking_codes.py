"""A registry's key codes from its blocking with itself (Candidates.key_codes) reused when it is
then blocked against the other registry (candidate_pairs' left_codes; `match` does this for the
origin, coded while the worker loaded the destination): the same candidate pairs, passes and
statistics as coding both registries' key columns together."""
from __future__ import annotations

import numpy as np

from reconcile.blocking import MATCH_PASSES, _column_codes, candidate_pairs
from reconcile.match import load_side


def test_left_codes_from_the_left_frames_own_blocking_give_the_same_candidates(tmp_path):
    from fixtures import generate as g

    paths = g.write(g.generate(3000, seed=8, dirt=2.0), tmp_path)
    origin = load_side("origin", paths["origin"], {}).std
    dest = load_side("dest", paths["dest"], {}).std
    own = candidate_pairs(origin, None, MATCH_PASSES)
    assert own.key_codes and {"k_birth", "name", "id_clean", "hukou_region"} <= set(own.key_codes)
    plain = candidate_pairs(origin, dest, MATCH_PASSES)
    reused = candidate_pairs(origin, dest, MATCH_PASSES, left_codes=own.key_codes)
    assert plain.key_codes is None and reused.key_codes is None   # (only a frame with itself keeps them)
    assert plain.left.size > 3000 and all(st.pairs for st in plain.stats[:6])
    for a, b in ((plain.left, reused.left), (plain.right, reused.right), (plain.passes, reused.passes)):
        assert np.array_equal(a, b)
    assert [vars(s) for s in plain.stats] == [vars(s) for s in reused.stats]
    # the very codes coding both frames together gives (numbering and the empty values' mask)
    for c in own.key_codes:
        both = _column_codes(origin, dest, c)
        cache = {("left", c): own.key_codes[c]}
        got = _column_codes(origin, dest, c, cache)
        assert np.array_equal(both[0], got[0]) and both[1] == got[1] and np.array_equal(both[2], got[2]), c
