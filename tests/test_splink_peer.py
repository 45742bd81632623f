"""bench.splink_peer: the Splink 5 / DuckDB reference peer on small hand-built standardised frames.

Slow (each Splink model trains for a few seconds) and skipped when the ``bench`` extra is missing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("splink", reason="splink not installed: pip install '.[bench]'")
pytest.importorskip("duckdb", reason="duckdb not installed: pip install '.[bench]'")

from bench._metrics import cluster_pairwise_prf, pair_prf  # noqa: E402
from bench.splink_peer import BLOCKING_COLUMNS, SPEED_LEFT_OUT, UNIDENTIFIED_ONLY, splink_dedupe, splink_link, splink_settings  # noqa: E402
from reconcile.keys import EMPTY_PIECE  # noqa: E402
from tests._splink_synth import make_registries  # noqa: E402

pytestmark = pytest.mark.slow


def _present(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Rows whose keys are all there: text not '', an ID piece's code not EMPTY_PIECE."""
    return np.logical_and.reduce([(frame[c] != EMPTY_PIECE).to_numpy() if frame[c].dtype.kind in "iu"
                                  else (frame[c] != "").to_numpy() for c in cols])


def _blocked_pairs(left: pd.DataFrame, right: pd.DataFrame, unidentified_only: bool = False) -> set[tuple[int, int]]:
    """Union of the seven blocking joins on non-empty keys, computed independently with pandas."""
    out: set[tuple[int, int]] = set()
    lpos = left.reset_index(drop=True).assign(_l=np.arange(len(left)))
    rpos = right.reset_index(drop=True).assign(_r=np.arange(len(right)))
    for cols in BLOCKING_COLUMNS:
        if unidentified_only and cols in SPEED_LEFT_OUT:   # as reconcile's match: no pairs on it at all
            continue
        c = list(cols)
        a = lpos[_present(lpos, c)][c + ["_l", "k_unidentified"]]
        b = rpos[_present(rpos, c)][c + ["_r", "k_unidentified"]]
        m = a.merge(b, on=c)
        if unidentified_only and cols in UNIDENTIFIED_ONLY:   # as reconcile's match: a record without a usable ID on a side
            m = m[m["k_unidentified_x"] | m["k_unidentified_y"]]
        out |= set(zip(m["_l"].tolist(), m["_r"].tolist()))
    return out


@pytest.fixture(scope="module")
def registries():
    return make_registries(300, seed=7, dirt=1.5, traced=0.6)


@pytest.fixture(scope="module")
def linked(registries):
    origin, dest, _, _ = registries
    return splink_link(origin, dest, threshold=0.9)


def test_link_finds_the_corrupted_true_pairs(registries, linked):
    origin, dest, truth, _ = registries
    pairs = linked.pairs
    assert list(pairs.columns) == ["left_pos", "right_pos", "match_probability"]
    assert pairs["left_pos"].between(0, len(origin) - 1).all()
    assert pairs["right_pos"].between(0, len(dest) - 1).all()
    assert (pairs["match_probability"] >= 0.9).all()
    pred = set(zip(pairs["left_pos"].tolist(), pairs["right_pos"].tolist()))
    p, r, _ = pair_prf(pred, truth)
    # left/right swapped or rows misaligned would make precision collapse
    assert p >= 0.95, p
    assert r >= 0.90, r
    assert linked.seconds > 0 and linked.timings["train"] > 0


def test_homophone_and_id_typo_pairs_are_linked(registries, linked):
    origin, dest, truth, _ = registries
    pred = set(zip(linked.pairs["left_pos"].tolist(), linked.pairs["right_pos"].tolist()))
    homophones = [(o, d) for o, d in truth
                  if origin.at[o, "name"] != dest.at[d, "name"] and origin.at[o, "k_py"] == dest.at[d, "k_py"]
                  and origin.at[o, "id_clean"] == dest.at[d, "id_clean"] != ""]
    typos = [(o, d) for o, d in truth
             if origin.at[o, "id_clean"] and dest.at[d, "id_clean"] and origin.at[o, "id_clean"] != dest.at[d, "id_clean"]
             and origin.at[o, "name"] == dest.at[d, "name"] and origin.at[o, "k_birth"] == dest.at[d, "k_birth"]]
    assert homophones and typos   # the generator made some of each
    assert all(pair in pred for pair in homophones)
    assert sum(pair in pred for pair in typos) >= 0.9 * len(typos)


def test_empty_strings_are_missing_not_a_shared_value():
    # Half the IDs blank on both sides: were '' a value, the ID pass alone would pair every
    # blank-ID origin record with every blank-ID dest record (~ 60 x 80 pairs).
    origin, dest, _, _ = make_registries(120, seed=3, dirt=1.0, missing_id_share=0.5)
    assert (origin["id_clean"] == "").sum() > 40 and (dest["id_clean"] == "").sum() > 40
    res = splink_link(origin, dest, threshold=0.9)
    expected = _blocked_pairs(origin, dest)
    assert res.n_comparisons == len(expected)
    assert len(expected) < 2000
    # the speed comparison's rules (bench/vs_splink.py): surname + month + county only where a
    # record lacks a usable ID, and no birth + sex rule, as reconcile's match runs them
    res = splink_link(origin, dest, threshold=0.9, unidentified_only=True)
    restricted = _blocked_pairs(origin, dest, unidentified_only=True)
    assert res.n_comparisons == len(restricted) <= len(expected)


def test_the_speed_rules_drop_birth_sex_pairs(registries):
    origin, dest = registries[0], registries[1]
    whole, restricted = _blocked_pairs(origin, dest), _blocked_pairs(origin, dest, unidentified_only=True)
    assert restricted < whole                     # a strict subset: birth+sex pairs, and namesakes with two IDs
    res = splink_link(origin, dest, threshold=0.9, unidentified_only=True)
    assert res.n_comparisons == len(restricted)


def test_dedupe_clusters_duplicate_records():
    origin, _, _, info = make_registries(200, seed=11, dirt=1.0, origin_dups=0.2)
    person = info["origin_person"]
    assert len(set(person)) < len(person) - 20           # some 30+ duplicated people
    labels, seconds = splink_dedupe(origin, threshold=0.9)
    assert labels.shape == (len(origin),) and seconds > 0
    p, r, f = cluster_pairwise_prf(dict(enumerate(labels.tolist())), dict(enumerate(person)))
    assert p >= 0.9 and r >= 0.75, (p, r, f)


def test_dedupe_too_returns_labels_per_side(registries):
    origin, dest, _, _ = registries
    res = splink_link(origin.iloc[:120], dest.iloc[:150], threshold=0.9, dedupe_too=True, count_comparisons=False)
    assert res.left_clusters.shape == (120,) and res.right_clusters.shape == (150,)
    assert res.n_comparisons == -1
    assert {"dedupe_left", "dedupe_right"} <= set(res.timings)


def test_settings_name_the_agreed_configuration():
    s = splink_settings("link_only")
    assert s.link_type == "link_only"
    assert len(s.blocking_rules_to_generate_predictions) == 7
    names = [c.create_output_column_name() for c in s.comparisons]
    assert names == ["id_clean", "name", "birth", "k_sex", "hukou_region"]
