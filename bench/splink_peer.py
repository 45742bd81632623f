"""The reference peer: Splink 5 (DuckDB backend) configured as an experienced user would.

It gets the SAME standardised input as reconcile (cleaned 18-character IDs, parsed birth dates,
pinyin and simplified names, hukou county codes and the ``k_*`` helper keys of
``reconcile.keys.add_keys``), the same seven blocking passes, term-frequency adjusted names and
unsupervised training (prior from deterministic rules, u by random sampling, m by EM). Only the
comparison logic is Splink's own, so a benchmark row measures the matcher, not the cleaning.

Splink and DuckDB come from the ``bench`` extra (``pip install .[bench]``); without them importing
this module raises ImportError (name 'splink') with the install hint.

Public API::

    splink_link(left, right, *, threshold=0.9, dedupe_too=False) -> SplinkResult
    splink_dedupe(frame, *, threshold=0.9) -> (labels, seconds)
    splink_settings(link_type) -> splink.SettingsCreator   # the exact configuration used
"""
from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reconcile.keys import ID_PIECES, add_keys, id_piece_text

_INSTALL_HINT = "Splink is not installed: pip install '.[bench]' (splink==5.0.0, duckdb==2.0.0)"
try:
    import pyarrow as pa
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    from splink.blocking_analysis import count_comparisons_from_blocking_rules
    from splink.internals.exceptions import SplinkException
except ImportError as _exc:  # the bench extra is missing
    raise ImportError(_INSTALL_HINT, name="splink") from _exc

# Columns handed to Splink. Only these are registered (plus unique_id): the other standardised
# columns would only cost DuckDB memory.
SPLINK_COLUMNS: tuple[str, ...] = (
    "name", "k_py", "k_py_sorted", "k_surname_py", "k_given_py",
    "id_clean", "k_id14",
    "k_birth", "k_month", "k_year",
    "k_sex",
    "hukou_region",
    "k_unidentified",
)

# The seven blocking passes of reconcile.blocking.DEFAULT_PASSES (its eighth, "name alone for
# records lacking ID and birth date", is a reconcile-specific guard and is not given to the peer).
BLOCKING_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("id_clean",),
    ("k_id14",),
    ("k_py", "k_year"),
    ("k_py_sorted", "k_year"),
    ("k_birth", "k_sex"),
    ("k_surname_py", "k_month", "hukou_region"),
    ("k_given_py", "k_birth"),
)

# The two of them that reconcile's match restricted to pairs where at least one record lacks a
# usable ID number (reconcile.blocking.MATCH_PASSES: birth_sex, surname_month_county). With
# ``unidentified_only=True`` (bench/vs_splink.py, the speed comparison) the peer gets the same
# restriction, so both tools compare the same candidate pairs; bench/accuracy.py leaves Splink its
# unrestricted rules, what an experienced user would run at 20,000 persons (FEBRL4: 0.9843 against
# 0.9792 restricted).
UNIDENTIFIED_ONLY: frozenset[tuple[str, ...]] = frozenset({
    ("k_birth", "k_sex"),
    ("k_surname_py", "k_month", "hukou_region"),
})
# ... and the one reconcile's match no longer pairs on at all since the seventh session
# (reconcile.blocking.TRAIN_ONLY_PASSES: birth_sex only trains the model): left out of the speed
# comparison's rules too
SPEED_LEFT_OUT: frozenset[tuple[str, ...]] = frozenset({("k_birth", "k_sex")})

# EM passes: each leaves the comparisons that use its columns untrained (Splink takes the median
# over passes for the others): k_birth -> id/name/sex/hukou; k_py+k_year -> id/sex/hukou;
# name -> id/birth/sex/hukou. Birth is trained on name-blocked pairs, not on ID-blocked ones:
# pairs sharing an ID nearly always share the ID's birth date (k_birth falls back to it), which
# hid the month-precision level from EM and cost 0.6 points of link F1 on generated registries.
EM_BLOCKING_COLUMNS: tuple[tuple[str, ...], ...] = (
    ("k_birth",),
    ("k_py", "k_year"),
    ("name",),
)
# Fallback when a pass yields no pairs (a small file deduplicated may have no shared name).
EM_FALLBACK_COLUMNS: tuple[str, ...] = ("k_surname_py", "k_year")

# Deterministic rules for the prior: an equal cleaned ID, or equal name and full birth date.
PRIOR_RULE_COLUMNS: tuple[tuple[str, ...], ...] = (("id_clean",), ("name", "k_birth"))
PRIOR_RECALL = 0.9

U_MAX_PAIRS = 1e7
SEED = 42

_LEFT_NAME = "a_left"     # source_dataset values: Splink puts min(source_dataset) on the left
_RIGHT_NAME = "b_right"


@dataclass
class SplinkResult:
    """What one Splink run produced.

    pairs: cross pairs with match_probability >= threshold; left_pos/right_pos are positions
        (0..n-1) into the frames given to splink_link.
    left_clusters / right_clusters: per-row cluster labels from a dedupe_only run per side
        (only when dedupe_too=True).
    seconds: wall time of everything Splink did (registration, training, predict, clustering);
        not the n_comparisons count, which is a separate blocking pass.
    n_comparisons: candidate pairs the seven blocking rules generate for the link.
    timings: seconds per stage.
    peak_rss_mb: the process's peak resident memory after the run (includes the caller's data).
    notes: warnings worth showing next to the numbers (e.g. an EM pass that had no pairs).
    """

    pairs: pd.DataFrame
    seconds: float
    n_comparisons: int
    left_clusters: np.ndarray | None = None
    right_clusters: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)


def _rules(columns: tuple[tuple[str, ...], ...], unidentified_only: bool = False) -> list:
    out: list = []
    for cols in columns:
        if unidentified_only and cols in SPEED_LEFT_OUT:
            continue
        if unidentified_only and cols in UNIDENTIFIED_ONLY:   # Splink takes a blocking rule as SQL text
            out.append(" AND ".join(f"l.{c} = r.{c}" for c in cols)
                       + " AND (l.k_unidentified = 'True' OR r.k_unidentified = 'True')")
        else:
            out.append(block_on(*cols))
    return out


def _hamming(col: str, cond: str) -> str:
    """SQL: equal lengths and Hamming distance satisfying ``cond`` (e.g. '= 1')."""
    return f"length({col}_l) = length({col}_r) AND hamming({col}_l, {col}_r) {cond}"


def splink_settings(link_type: str, unidentified_only: bool = False):
    """The Splink model an experienced user would write for these standardised columns."""

    # ID: exact / one digit apart / adjacent swap / else. id_clean is 18 characters (or NULL), so
    # Hamming distance equals Levenshtein for a mistyped digit. A "distance <= 2" level (Splink's
    # LevenshteinAtThresholds default) also admits twins and same-day births of one county, whose
    # IDs differ only in two sequence digits; the swap level asks for Damerau-Levenshtein 1 on
    # Hamming-2 pairs instead. DuckDB's levenshtein is ~50x and damerau_levenshtein ~500x slower
    # than hamming (u-sampling took minutes with them), so the cheap test guards the costly one:
    # DuckDB evaluates AND operands left to right on the rows still selected. The length guard
    # keeps hamming() (which raises on unequal lengths) safe for other ID schemes, e.g. FEBRL's.
    id_cmp = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("id_clean"),
            cll.ExactMatchLevel("id_clean"),
            cll.CustomLevel(_hamming("id_clean", "= 1"), label_for_charts="ID one digit apart"),
            cll.CustomLevel(
                _hamming("id_clean", "= 2") + " AND damerau_levenshtein(id_clean_l, id_clean_r) = 1",
                label_for_charts="ID adjacent digits swapped",
            ),
            cll.ElseLevel(),
        ],
        output_column_name="id_clean",
        comparison_description="id: exact / hamming 1 / adjacent swap / else",
    )

    name_cmp = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("name"),
            cll.ExactMatchLevel("name", term_frequency_adjustments=True),
            cll.ExactMatchLevel("k_py").configure(label_for_charts="Same pinyin (homophone)"),
            # Blocking already uses k_py_sorted; the matching level catches Latin names in the
            # other order (YU CAO / 曹宇).
            cll.ExactMatchLevel("k_py_sorted").configure(label_for_charts="Same syllables, any order"),
            cll.JaroWinklerLevel("k_py", 0.9).configure(label_for_charts="Pinyin Jaro-Winkler >= 0.9"),
            cll.ElseLevel(),
        ],
        output_column_name="name",
        comparison_description="name: exact (TF) / same pinyin / same syllables any order / pinyin JW>=0.9 / else",
    )

    # k_birth is only set at day precision; k_month / k_year also come from coarser dates, so a
    # month-precision record still reaches the month level.
    birth_cmp = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("k_year"),
            cll.ExactMatchLevel("k_birth").configure(label_for_charts="Same birth date"),
            cll.CustomLevel(_hamming("k_birth", "= 1"), label_for_charts="Birth date one digit apart"),
            cll.ExactMatchLevel("k_month").configure(label_for_charts="Same year-month"),
            cll.ExactMatchLevel("k_year").configure(label_for_charts="Same year"),
            cll.ElseLevel(),
        ],
        output_column_name="birth",
        comparison_description="birth: exact / one digit apart / year-month / year / else",
    )

    sex_cmp = cl.ExactMatch("k_sex")

    hukou_cmp = cl.CustomComparison(
        comparison_levels=[
            cll.NullLevel("hukou_region"),
            cll.ExactMatchLevel("hukou_region").configure(label_for_charts="Same county"),
            cll.CustomLevel(
                "substr(hukou_region_l, 1, 4) = substr(hukou_region_r, 1, 4)",
                label_for_charts="Same city (first 4 digits)",
            ),
            cll.CustomLevel(
                "substr(hukou_region_l, 1, 2) = substr(hukou_region_r, 1, 2)",
                label_for_charts="Same province (first 2 digits)",
            ),
            cll.ElseLevel(),
        ],
        output_column_name="hukou_region",
        comparison_description="hukou: county / city / province / else",
    )

    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="unique_id",
        comparisons=[id_cmp, name_cmp, birth_cmp, sex_cmp, hukou_cmp],
        blocking_rules_to_generate_predictions=_rules(BLOCKING_COLUMNS, unidentified_only),
        retain_matching_columns=False,            # keep predict output (and memory) small
        retain_intermediate_calculation_columns=False,
        max_iterations=25,
        em_convergence=0.0001,
    )


def _to_arrow(frame: pd.DataFrame):
    """Our standardised frame -> an Arrow table Splink can register.

    '' becomes NULL (otherwise Splink would block and agree on empty strings), every column is
    typed string explicitly (an all-empty column must not become INTEGER or NULL-typed in DuckDB),
    and unique_id is the row position.
    """
    if not all(c in frame.columns for c in SPLINK_COLUMNS):
        frame = add_keys(frame)
    arrays = [pa.array(np.arange(len(frame), dtype=np.int64))]
    names = ["unique_id"]
    for col in SPLINK_COLUMNS:
        if col in ID_PIECES:   # (int64 codes in our frame: Splink gets the piece's text, as before)
            s = pd.Series([id_piece_text(col, v) for v in frame["id_clean"].astype(str).tolist()], dtype=object)
        else:
            s = frame[col].astype(str)
        mask = s.isin(("", "nan", "None")).to_numpy()
        values = s.to_numpy(dtype=object)
        arrays.append(pa.array(values, type=pa.string(), mask=mask))
        names.append(col)
    return pa.Table.from_arrays(arrays, names=names)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _train(linker, notes: list[str]) -> None:
    """Prior from deterministic rules, u from random pairs, m from EM passes."""
    linker.training.estimate_probability_two_random_records_match(
        _rules(PRIOR_RULE_COLUMNS), recall=PRIOR_RECALL,
    )
    settings = linker._settings_obj
    if settings._probability_two_random_records_match <= 0:
        # No deterministic match at all (tiny or clean file): a zero prior would make every
        # match weight -inf. An experienced user would put a small positive prior instead.
        settings._probability_two_random_records_match = 1e-6
        notes.append("prior: no deterministic matches, prior set to 1e-6")
    linker.training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=SEED)
    failed = 0
    for cols in EM_BLOCKING_COLUMNS:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*cols))
        except (SplinkException, ValueError, ZeroDivisionError) as exc:
            failed += 1
            notes.append(f"EM on {'+'.join(cols)} failed: {type(exc).__name__}: {str(exc)[:120]}")
    if failed:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*EM_FALLBACK_COLUMNS))
            notes.append(f"EM fallback on {'+'.join(EM_FALLBACK_COLUMNS)}")
        except (SplinkException, ValueError, ZeroDivisionError) as exc:
            notes.append(f"EM fallback failed: {type(exc).__name__}: {str(exc)[:120]}")


def _model_summary(linker) -> dict[str, Any]:
    """m/u per level and the prior, for printing next to benchmark rows."""
    s = linker._settings_obj
    out: dict[str, Any] = {"prior": s._probability_two_random_records_match, "comparisons": {}}
    for comp in s.comparisons:
        levels = []
        for lvl in comp.comparison_levels:
            if lvl.is_null_level:
                continue
            levels.append({
                "label": lvl.label_for_charts,
                "m": lvl.m_probability,
                "u": lvl.u_probability,
            })
        out["comparisons"][comp.output_column_name] = levels
    return out


def _new_db(memory_limit: str | None):
    db_api = DuckDBAPI()
    if memory_limit:
        db_api.duckdb_con.execute(f"SET memory_limit = '{memory_limit}'")
    return db_api


def _linker(inputs, link_type: str, verbose: bool, unidentified_only: bool = False):
    # Splink logs every unobserved level as a WARNING; benchmark tables stay readable at ERROR.
    return Linker(inputs, splink_settings(link_type, unidentified_only),
                  log_level=logging.INFO if verbose else logging.ERROR)


def _dedupe(frame: pd.DataFrame, threshold: float, memory_limit: str | None, verbose: bool,
            notes: list[str]) -> np.ndarray:
    """Cluster labels per row from a dedupe_only model on one frame."""
    n = len(frame)
    if n < 2:
        return np.arange(n, dtype=np.int64)
    db_api = _new_db(memory_limit)
    sdf = db_api.register(_to_arrow(frame), dataset_display_name="registry")
    linker = _linker(sdf, "dedupe_only", verbose)
    _train(linker, notes)
    pred = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=threshold,
    )
    clustered = db_api.duckdb_con.sql(
        f"select unique_id, cluster_id from {clusters.physical_name}"
    ).df()
    labels = np.full(n, -1, dtype=np.int64)
    codes, _ = pd.factorize(clustered["cluster_id"].astype(str))
    labels[clustered["unique_id"].to_numpy(dtype=np.int64)] = codes
    # Nodes are every input row, but make sure an absent row still gets its own cluster.
    missing = np.flatnonzero(labels < 0)
    labels[missing] = codes.max(initial=-1) + 1 + np.arange(len(missing))
    db_api.duckdb_con.close()
    return labels


def splink_dedupe(frame: pd.DataFrame, *, threshold: float = 0.9, memory_limit: str | None = None,
                  verbose: bool = False) -> tuple[np.ndarray, float]:
    """Deduplicate one standardised frame with Splink; returns (cluster label per row, seconds)."""
    t0 = time.perf_counter()
    labels = _dedupe(frame, threshold, memory_limit, verbose, [])
    return labels, time.perf_counter() - t0


def splink_link(left: pd.DataFrame, right: pd.DataFrame, *, threshold: float = 0.9,
                dedupe_too: bool = False, count_comparisons: bool = True,
                memory_limit: str | None = None, verbose: bool = False,
                unidentified_only: bool = False) -> SplinkResult:
    """Link two standardised frames with Splink (link_only) and optionally dedupe each side.

    Frames need the STANDARD_COLUMNS used here and the k_* keys (computed with add_keys when absent).
    """
    notes: list[str] = []
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    db_api = _new_db(memory_limit)
    sdf_l = db_api.register(_to_arrow(left), dataset_display_name=_LEFT_NAME)
    sdf_r = db_api.register(_to_arrow(right), dataset_display_name=_RIGHT_NAME)
    linker = _linker([sdf_l, sdf_r], "link_only", verbose, unidentified_only)
    t1 = time.perf_counter()
    timings["register"] = t1 - t0

    _train(linker, notes)
    t2 = time.perf_counter()
    timings["train"] = t2 - t1

    pred = linker.inference.predict(threshold_match_probability=threshold, warning_mode="never")
    raw = db_api.duckdb_con.sql(
        f"select source_dataset_l, unique_id_l, unique_id_r, match_probability "
        f"from {pred.physical_name} where match_probability >= {float(threshold)!r}"
    ).df()
    t3 = time.perf_counter()
    timings["predict"] = t3 - t2

    flip = (raw["source_dataset_l"] != _LEFT_NAME).to_numpy()
    ul = raw["unique_id_l"].to_numpy(dtype=np.int64)
    ur = raw["unique_id_r"].to_numpy(dtype=np.int64)
    pairs = pd.DataFrame({
        "left_pos": np.where(flip, ur, ul),
        "right_pos": np.where(flip, ul, ur),
        "match_probability": raw["match_probability"].to_numpy(dtype=np.float64),
    }).sort_values(["left_pos", "right_pos"], ignore_index=True)
    model = _model_summary(linker)

    left_clusters = right_clusters = None
    if dedupe_too:
        left_clusters = _dedupe(left, threshold, memory_limit, verbose, notes)
        t4 = time.perf_counter()
        timings["dedupe_left"] = t4 - t3
        right_clusters = _dedupe(right, threshold, memory_limit, verbose, notes)
        timings["dedupe_right"] = time.perf_counter() - t4
    seconds = time.perf_counter() - t0

    n_comparisons = -1
    if count_comparisons:
        # Outside the timed part: a separate exact count of the blocked pairs.
        recs = count_comparisons_from_blocking_rules(
            [sdf_l, sdf_r], blocking_rules=_rules(BLOCKING_COLUMNS, unidentified_only),
            link_type="link_only", record_sample_proportion=1.0,
        )
        n_comparisons = int(recs[-1]["cumulative_comparison_count"])
    db_api.duckdb_con.close()

    return SplinkResult(
        pairs=pairs, seconds=seconds, n_comparisons=n_comparisons,
        left_clusters=left_clusters, right_clusters=right_clusters,
        timings=timings, peak_rss_mb=_peak_rss_mb(), notes=notes, model=model,
    )
