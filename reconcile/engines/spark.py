"""The Spark engine of `reconcile match --engine spark` (issue 7).

The same pure functions as the embedded engine, applied per partition, so the two engines give
the same links, decisions and outcomes:

- load: ``read_registry`` on the driver (encoding detection, row accounting); the loaded text
  frames of both files go to Spark as one DataFrame (``_side`` 0 = origin, 1 = dest; ``_pos`` =
  the record's position in its file, the index the embedded engine uses);
- standardise: ``reconcile.standardise.standardise`` per partition (``mapInPandas``); the only
  file-wide step, ``fill_unit_hukou``, gets its per-unit county counts from a Spark aggregation
  and is then applied per partition together with ``add_keys``;
- block: every pass of ``DEFAULT_PASSES`` for the three linkages (origin x dest, origin x origin,
  dest x dest) at once: one exploded (pass, key) table, block sizes from ``groupBy`` counts and
  the same caps, one equi-join, the pass bit masks OR-ed per pair;
- compare: the ``matchers`` comparators per partition of joined pairs (``mapInPandas``);
- train: on the driver with the embedded functions (``estimate_u`` on the same seeded random
  pairs, ``train_sessions`` with the same TF offsets, ``estimate_prior``), from the level arrays
  collected in the embedded engine's pair order (position i, then j), so the model is identical;
- score: ``reconcile.scoring.score`` per partition; only the pairs ``assemble`` reads come back:
  pairs at or above the review threshold, each record's best candidate (a Spark window), and
  pairs a reviewer has decided. The report is then built by the embedded ``assemble``/``write_run``.

Scale limits (docs/scale.md): the driver holds both standardised registries (the report's
``records`` table needs them) and, when it trains, 5-15 bytes per candidate pair.
"""
from __future__ import annotations

import inspect
import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from matchers.base import Comparator
from reconcile.blocking import (DEFAULT_PASSES, MATCH_PASSES, WINDOW, WITHIN_PASSES, BlockingPass, Candidates, PassStats,
                                _note_skips)
from reconcile.engines import require_spark
from reconcile.errors import ConfigError
from reconcile.fields import INPUT_FIELDS, USABLE_ID_STATUSES
from reconcile.keys import EMPTY_PIECE, SHARED, add_keys, fill_unit_hukou, key_text
from reconcile import linkage
from reconcile.linkage import Linkage, Progress, _noop
from reconcile.model import Model
from reconcile.report import ChunkedFrame
from reconcile.scoring import PRIOR_STRATA, TF_FIELDS, TermFrequencies, score, strata_values
from reconcile.standardise import standardise

__all__ = ["spark_session", "spark_stages", "spark_candidates", "write_parquet", "CROSS", "WITHIN_ORIGIN",
           "WITHIN_DEST"]

# Linkage ids: (left side, right side); sides are 0 = origin, 1 = dest.
CROSS, WITHIN_ORIGIN, WITHIN_DEST = 0, 1, 2
LINKAGE_SIDES: dict[int, tuple[int, int]] = {CROSS: (0, 1), WITHIN_ORIGIN: (0, 0), WITHIN_DEST: (1, 1)}
SIDE_NAMES = ("origin", "dest")
SOURCE_PAIRS = {CROSS: "origin-dest", WITHIN_ORIGIN: "origin-origin", WITHIN_DEST: "dest-dest"}
SEP = "\x1f"          # joins a pass's key columns (the embedded engine's label separator too)
# Rows per Arrow batch handed to a pandas function: large enough that the comparators' per-call
# overhead vanishes, small enough for an executor's Python worker.
BATCH_ROWS = 50_000


# --------------------------------------------------------------------------------------------
# session
def spark_session(master: str | None = None):
    """The active SparkSession (spark-submit's, a test's), or a new one on ``master``.

    Without ``master`` and outside spark-submit: ``local[*]``. Executors run this interpreter
    (PYSPARK_PYTHON) unless the environment says otherwise.
    """
    require_spark()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if not master and "PYSPARK_GATEWAY_PORT" not in os.environ:
        master = "local[*]"
    builder = SparkSession.builder.appName("reconcile-match")
    if master:
        builder = builder.master(master)
    builder = (builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS)))
    if (master or "").startswith("local"):
        # one machine: few shuffle partitions, no web UI, no progress bars on stderr
        builder = (builder.config("spark.sql.shuffle.partitions", "8")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false"))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # JVM failed to start, bad master URL ...
        raise ConfigError("engine.spark_failed", master=master or "spark-submit", reason=str(exc).splitlines()[0][:300])
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------------------------
# schemas between pandas and Spark
def _spark_type(dtype):
    from pyspark.sql import types as T

    if pd.api.types.is_bool_dtype(dtype):
        return T.BooleanType()
    if pd.api.types.is_integer_dtype(dtype):
        return {1: T.ByteType(), 2: T.ShortType(), 4: T.IntegerType()}.get(np.dtype(dtype).itemsize, T.LongType())
    if pd.api.types.is_float_dtype(dtype):
        return T.DoubleType()
    return T.StringType()


def _schema(frame: pd.DataFrame):
    from pyspark.sql import types as T

    return T.StructType([T.StructField(str(c), _spark_type(frame[c].dtype), True) for c in frame.columns])


def _input_frame(loaded_frame: pd.DataFrame, side: int) -> pd.DataFrame:
    """The loader's frame with every input field (absent ones '' as standardise reads them),
    its file position and side."""
    n = len(loaded_frame)
    f = loaded_frame.reset_index(drop=True)
    cols = {"_side": np.full(n, side, np.int8), "_pos": np.arange(n, dtype=np.int64),
            "record_key": f["record_key"].astype(str).to_numpy(object),
            "line": (f["line"].to_numpy(np.int64) if "line" in f else np.arange(1, n + 1, dtype=np.int64))}
    for c in INPUT_FIELDS:
        cols[c] = f[c].astype(str).to_numpy(object) if c in f else np.full(n, "", dtype=object)
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------------------------
# standardise (+ fill_unit_hukou + add_keys)
def _fill_defaults() -> tuple[float, int]:
    sig = inspect.signature(fill_unit_hukou).parameters
    return float(sig["dominance"].default), int(sig["min_resolved"].default)


def _unit_fill_tables(counts: pd.DataFrame, names: pd.DataFrame) -> dict[int, tuple[dict, dict]]:
    """Per side: (unit -> county, county -> name) by fill_unit_hukou's rule, from Spark counts of
    resolved (unit, county) and each county's name on its last resolved record."""
    dominance, min_resolved = _fill_defaults()
    out: dict[int, tuple[dict, dict]] = {}
    for side in (0, 1):
        c = counts[counts["_side"] == side].sort_values(["unit", "hukou_region"], kind="stable")
        if c.empty:
            out[side] = ({}, {})
            continue
        c = c.rename(columns={"count": "n"}).reset_index(drop=True)
        totals = c.groupby("unit")["n"].transform("sum")
        c["share"] = c["n"] / totals
        best = c[(c["share"] >= dominance) & (totals >= min_resolved)].drop_duplicates("unit")
        nm = names[names["_side"] == side]
        out[side] = (dict(zip(best["unit"], best["hukou_region"])), dict(zip(nm["hukou_region"], nm["name"])))
    return out


def _apply_fill(df: pd.DataFrame, fill: Mapping[str, str], names: Mapping[str, str]) -> pd.DataFrame:
    """fill_unit_hukou's last step with file-wide tables (see reconcile.keys.fill_unit_hukou)."""
    df = df.copy()
    df["hukou_region_source"] = np.where(df["hukou_region"] != "", "address", "")
    if not fill:
        return df
    todo = (df["hukou_region"] == "") & df["unit"].isin(list(fill))
    df.loc[todo, "hukou_region"] = df.loc[todo, "unit"].map(fill)
    df.loc[todo, "hukou_region_name"] = df.loc[todo, "hukou_region"].map(names).fillna("")
    df.loc[todo, "hukou_region_source"] = "unit"
    return df


def _restore(batch: pd.DataFrame, frame_cols: Sequence[str]) -> pd.DataFrame:
    f = batch.reset_index(drop=True)
    return f[list(frame_cols)]


def standardise_in_spark(spark, frames: Sequence[pd.DataFrame], today: date):
    """(Spark DataFrame of standardised + key columns with _side/_pos, pandas column dtypes).

    Runs standardise per partition, the unit->county fill from Spark counts, then add_keys.
    """
    from pyspark.sql import functions as F

    inputs = pd.concat([_input_frame(f, s) for s, f in enumerate(frames)], ignore_index=True)
    in_cols = [c for c in inputs.columns if c not in ("_side", "_pos")]
    # Output columns and dtypes: the same functions on a few rows on the driver.
    probe_in = inputs.head(8)
    probe_std = standardise(_restore(probe_in, in_cols), today)
    probe_std.insert(0, "_pos", probe_in["_pos"].to_numpy())
    probe_std.insert(0, "_side", probe_in["_side"].to_numpy())
    probe_keys = add_keys(_apply_fill(probe_std.drop(columns=["_side", "_pos"]), {}, {}))
    probe_keys.insert(0, "_pos", probe_in["_pos"].to_numpy())
    probe_keys.insert(0, "_side", probe_in["_side"].to_numpy())
    std_schema = _schema(probe_std)
    key_schema = _schema(probe_keys)
    std_cols, key_cols = list(probe_std.columns), list(probe_keys.columns)

    sdf = spark.createDataFrame(inputs, schema=_schema(inputs))

    def std_batches(batches):
        for b in batches:
            if len(b) == 0:
                continue
            out = standardise(_restore(b, in_cols), today)
            out.insert(0, "_pos", b["_pos"].to_numpy())
            out.insert(0, "_side", b["_side"].to_numpy())
            yield out[std_cols]

    std = sdf.mapInPandas(std_batches, std_schema).persist()
    resolved = std.filter((F.col("hukou_region") != "") & (F.col("unit") != ""))
    # one job: per (unit, county) the count and the name on its last record; fill_unit_hukou
    # names a filled county after the last resolved record naming it (over all units)
    groups = (resolved.groupBy("_side", "unit", "hukou_region")
              .agg(F.count(F.lit(1)).alias("count"), F.max("_pos").alias("last"),
                   F.max_by("hukou_region_name", "_pos").alias("name")).toPandas())
    last = groups.sort_values("last", kind="stable").drop_duplicates(["_side", "hukou_region"], keep="last")
    tables = _unit_fill_tables(groups[["_side", "unit", "hukou_region", "count"]], last[["_side", "hukou_region", "name"]])

    def key_batches(batches):
        for b in batches:
            if len(b) == 0:
                continue
            parts = []
            for side, g in b.groupby("_side", sort=True):
                fill, nm = tables[int(side)]
                k = add_keys(_apply_fill(g.drop(columns=["_side", "_pos"]).reset_index(drop=True), fill, nm))
                k.insert(0, "_pos", g["_pos"].to_numpy())
                k.insert(0, "_side", g["_side"].to_numpy())
                parts.append(k)
            yield pd.concat(parts, ignore_index=True)[key_cols]

    keyed = _mark_shared_ids(std.mapInPandas(key_batches, key_schema)).persist()
    dtypes = probe_keys.dtypes.to_dict()
    return keyed, std, dtypes


def _mark_shared_ids(keyed):
    """reconcile.keys.mark_shared_ids, file-wide, as a Spark aggregation: per side the usable
    numbers carried under more than one folded name, joined back to set k_id_shared and
    k_id_unsure (columns in place)."""
    from pyspark.sql import functions as F

    usable = F.col("id_status").isin(*USABLE_ID_STATUSES) & (F.col("id_clean") != "")
    shared = (keyed.filter(usable).groupBy("_side", "id_clean")
              .agg(F.countDistinct("k_py_fold").alias("_names")).filter(F.col("_names") > 1)
              .select("_side", "id_clean", F.lit(True).alias("_shared")))
    cols = keyed.columns
    out = keyed.join(F.broadcast(shared), ["_side", "id_clean"], "left")
    hit = F.coalesce(F.col("_shared"), F.lit(False)) & usable
    out = out.withColumn("k_id_shared", F.when(hit, F.lit(SHARED)).otherwise(F.col("k_id_shared")))
    out = out.withColumn("k_id_unsure", F.col("k_id_unsure") | hit)
    return out.select(*cols)


def collect_sides(keyed, dtypes: Mapping[str, Any]) -> list[pd.DataFrame]:
    """Both files' standardised frames on the driver (one job), in file order, embedded dtypes."""
    both = keyed.toPandas()
    return [_side_frame(both[both["_side"] == side], dtypes) for side in (0, 1)]


def _side_frame(pdf: pd.DataFrame, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    pdf = pdf.sort_values("_pos", kind="stable").reset_index(drop=True)
    pdf = pdf.drop(columns=["_side", "_pos"])
    for c, dt in dtypes.items():
        if c in pdf and c not in ("_side", "_pos"):
            if pd.api.types.is_object_dtype(dt):
                pdf[c] = pdf[c].astype(object)
            elif pdf[c].dtype != dt:
                pdf[c] = pdf[c].astype(dt)
    return pdf


@dataclass
class PartialLinkage(Linkage):
    """A Linkage holding only the pairs the report reads; ``total_pairs`` counts all candidate
    pairs (plus any pair assemble appends later, e.g. a reviewer's decision blocking missed)."""

    all_pairs: int = 0
    kept_pairs: int = 0
    # per left record: sum of 2**weight over its pairs below the review threshold (not held here),
    # the rivals reconcile.decide.one_person_adjustment needs
    rest_odds: np.ndarray | None = None

    @property
    def total_pairs(self) -> int:
        return self.all_pairs + int(self.candidates.left.size) - self.kept_pairs


# --------------------------------------------------------------------------------------------
# blocking
@dataclass(frozen=True)
class _Spec:
    """One join of a pass: part 0 = whole pass; a restricted pass (its flag_column)
    runs as part 1 (left record flagged) and part 2 (right record flagged), as
    reconcile.blocking does."""

    v: int
    bit: int
    p: BlockingPass
    part: int
    cap: int
    warn: bool
    linkages: frozenset[int] | None = None   # the linkages it serves; None: every one


def _serves(s: _Spec, lk: int) -> bool:
    return s.linkages is None or lk in s.linkages


def _specs(passes: Sequence[BlockingPass], block_cap: int,
           within_passes: Sequence[BlockingPass] | None = None) -> list[_Spec]:
    """The joins of every pass; a pass that ``within_passes`` (one file with itself, same names in
    the same order) restricts otherwise gets its own joins for the cross and the within linkages."""
    out: list[_Spec] = []
    within_passes = passes if within_passes is None else within_passes
    for bit, (p, wp) in enumerate(zip(passes, within_passes, strict=True)):
        variants = ([(p, None)] if wp == p else
                    [(p, frozenset({CROSS})), (wp, frozenset({WITHIN_ORIGIN, WITHIN_DEST}))])
        for q, lks in variants:
            if q.train_only:   # no joins: it yields no candidate pairs (reconcile.blocking)
                continue
            cap = q.block_cap(block_cap)
            parts = (1, 2) if q.flag_column else (0,)
            for part in parts:
                out.append(_Spec(len(out), bit, q, part, cap, warn=q.flag_column is not None or q.cap is None,
                                 linkages=lks))
    return out


def _key_rows(keyed, specs: Sequence[_Spec]):
    """(side, pos, v, key, sparse) for every record and pass part whose key columns are all non-empty;
    ``sparse`` is the record's value of the part's flag column (reconcile.blocking.BlockingPass.flag_column)."""
    from pyspark.sql import functions as F

    from pyspark.sql.types import IntegralType

    # an integer key (the ID pieces, reconcile.keys.ID_PIECES) is absent where it is EMPTY_PIECE
    integral = {f.name for f in keyed.schema.fields if isinstance(f.dataType, IntegralType)}

    def text(c: str):
        col = F.col(c)
        return F.when(col != EMPTY_PIECE, col.cast("string")) if c in integral else col.cast("string")

    entries = []
    for s in specs:
        cols = [text(c) for c in s.p.columns]
        present = None
        for c in cols:
            cond = c.isNotNull() & (c != "")
            present = cond if present is None else (present & cond)
        key = F.when(present, F.concat_ws(SEP, *cols))
        flag = F.col(s.p.flag_column).cast("boolean") if s.p.flag_column else F.lit(False)
        # the window order (reconcile.blocking._order_ranks): the first non-empty column; Spark
        # orders strings by code point, as numpy sorts the distinct values there
        order = F.lit("")
        for c in reversed(s.p.window_by):
            col = F.col(c).cast("string")
            order = F.when(col.isNotNull() & (col != ""), col).otherwise(order)
        entries.append(F.struct(F.lit(s.v).alias("v"), key.alias("key"), flag.alias("sparse"), order.alias("order")))
    return (keyed.select("_side", "_pos", F.explode(F.array(*entries)).alias("e"))
            .select("_side", "_pos", F.col("e.sparse").alias("sparse"), F.col("e.v").alias("v"),
                    F.col("e.key").alias("key"), F.col("e.order").alias("order"))
            .filter(F.col("key").isNotNull()))


def _window_pairs(flagged, others, width: int):
    """reconcile.blocking._window in Spark: each ``flagged`` row (v, key, order, _pos) with the
    ``width`` rows of ``others`` of its block nearest to it in (order, _pos). Returns (f, o) positions.

    The other side's rows are numbered within their block; a flagged row's place among them is
    the middle of the rows sharing its order (counted by a window over the union of both), and
    its ``width`` partners are a range of those numbers, exploded and joined back: linear in the
    output, never a whole block's cartesian product."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    blk = ["v", "key"]
    numbered = others.withColumn(
        "idx", F.row_number().over(Window.partitionBy(*blk).orderBy("order", "_pos")) - 1)
    sizes = others.groupBy(*blk).agg(F.count(F.lit(1)).alias("n"))
    both = (flagged.select(*blk, "order", "_pos", F.lit(0).alias("is_o"))
            .unionByName(others.select(*blk, "order", "_pos", F.lit(1).alias("is_o"))))
    upto = Window.partitionBy(*blk).orderBy("order").rangeBetween(Window.unboundedPreceding, Window.currentRow)
    le = F.sum("is_o").over(upto)                          # others ordered up to this row's order
    eq = F.sum("is_o").over(Window.partitionBy(*blk, "order"))   # ... and exactly at it
    at = F.floor((2 * le - eq) / 2).cast("long")           # (before + up to) // 2, as searchsorted there
    f = both.withColumn("at", at).filter(F.col("is_o") == 0).join(sizes, blk)
    lo = F.least(F.greatest(F.col("at") - width // 2, F.lit(0)), F.greatest(F.col("n") - width, F.lit(0)))
    f = f.withColumn("lo", lo).withColumn("hi", F.least(F.col("lo") + width, F.col("n")))
    f = f.filter(F.col("hi") > F.col("lo")).withColumn("idx", F.explode(F.sequence(F.col("lo"), F.col("hi") - 1)))
    return (f.select(*blk, "idx", F.col("_pos").alias("f"))
            .join(numbered.select(*blk, "idx", F.col("_pos").alias("o")), [*blk, "idx"])
            .select("v", "f", "o"))


def spark_candidates(spark, keyed, left: pd.DataFrame, right: pd.DataFrame | None,
                     passes: Sequence[BlockingPass] = DEFAULT_PASSES, block_cap: int = 20_000,
                     linkages: Sequence[int] = (CROSS, WITHIN_ORIGIN, WITHIN_DEST),
                     within_block_cap: int | None = None,
                     within_passes: Sequence[BlockingPass] | None = None, window: int = WINDOW):
    """Candidate pairs of the requested linkages as a Spark DataFrame (lk, i, j, mask) and the
    per-linkage PassStats, equal to reconcile.blocking.candidate_pairs for each linkage (its
    sorted windows included: ``window``).

    ``left``/``right``: the driver's standardised frames (origin, dest), used only to order the
    skipped-block warnings as the embedded engine does (by first appearance of the key).
    ``within_passes``: the passes of the two within-file linkages when they differ from ``passes``
    (reconcile.blocking.WITHIN_PASSES).
    """
    from pyspark.sql import functions as F

    specs = _specs(passes, block_cap, within_passes)
    rows = _key_rows(keyed, specs)
    part = F.element_at(F.array(*[F.lit(s.part) for s in specs]), F.col("v") + 1)
    windowed = [s for s in specs if s.p.flag_column and s.p.window_by and window > 0]
    lparts, rparts = [], []
    for lk in linkages:
        ls, rs = LINKAGE_SIDES[lk]
        mine = F.col("v").isin([s.v for s in specs if _serves(s, lk) and s not in windowed])
        lparts.append(rows.filter((F.col("_side") == ls) & mine & ((part != 1) | F.col("sparse")))
                      .select(F.lit(lk).alias("lk"), "v", "key", F.col("_pos").alias("i")))
        rparts.append(rows.filter((F.col("_side") == rs) & mine & ((part != 2) | F.col("sparse")))
                      .select(F.lit(lk).alias("lk"), "v", "key", F.col("_pos").alias("j")))
    L = lparts[0]
    for x in lparts[1:]:
        L = L.unionByName(x)
    R = rparts[0]
    for x in rparts[1:]:
        R = R.unionByName(x)
    L, R = L.persist(), R.persist()
    lc = L.groupBy("lk", "v", "key").agg(F.count(F.lit(1)).alias("nl"))
    rc = R.groupBy("lk", "v", "key").agg(F.count(F.lit(1)).alias("nr"))
    cap = F.element_at(F.array(*[F.lit(int(s.cap)) for s in specs]), F.col("v") + 1)
    if within_block_cap is not None:   # one file with itself has its own cap (as the embedded engine)
        wspecs = _specs(passes, within_block_cap, within_passes)
        wcap = F.element_at(F.array(*[F.lit(int(s.cap)) for s in wspecs]), F.col("v") + 1)
        cap = F.when(F.col("lk") == CROSS, cap).otherwise(wcap)
    sizes = (lc.join(rc, ["lk", "v", "key"], "left").fillna(0, subset=["nr"])
             .withColumn("size", F.when(F.col("lk") == CROSS, F.col("nl") * F.col("nr"))
                         .otherwise(F.col("nl") * (F.col("nl") - 1) / 2).cast("long")))
    skipped = sizes.filter(F.col("size") > cap).persist()
    warn_vs = [s.v for s in specs if s.warn]
    warned = skipped.filter(F.col("v").isin(warn_vs)).toPandas() if warn_vs else pd.DataFrame(
        columns=["lk", "v", "key", "nl", "nr", "size"])
    counted = (skipped.filter(~F.col("v").isin(warn_vs) if warn_vs else F.lit(True))
               .groupBy("lk", "v").agg(F.count(F.lit(1)).alias("blocks"), F.sum(F.col("nl") + F.col("nr")).alias("records"))
               .toPandas())
    sk = F.broadcast(skipped.select("lk", "v", "key"))
    lok = L.join(sk, ["lk", "v", "key"], "left_anti")
    rok = R.join(sk, ["lk", "v", "key"], "left_anti")
    bit = F.element_at(F.array(*[F.lit(1 << s.bit) for s in specs]), F.col("v") + 1)
    joined = (lok.join(rok, ["lk", "v", "key"])
              .filter((F.col("lk") == CROSS) | (F.col("i") < F.col("j")))
              .select("lk", "v", "i", "j"))
    for lk in linkages:   # the windowed passes (reconcile.blocking._window_join), all in one go
        ls, rs = LINKAGE_SIDES[lk]
        first = [s.v for s in windowed if _serves(s, lk) and s.part == 1]    # one spec per pass
        second = [s.v for s in windowed if _serves(s, lk) and s.part == 2]
        if not first:
            continue
        if ls == rs:   # one file: its flagged records against the whole file, themselves left out
            mine = rows.filter((F.col("_side") == ls) & F.col("v").isin(first))
            w = _window_pairs(mine.filter(F.col("sparse")), mine, window + 1).filter(F.col("f") != F.col("o"))
            w = w.select("v", F.least("f", "o").alias("i"), F.greatest("f", "o").alias("j"))
        else:
            w = None
            for vs, fs, os_ in ((first, ls, rs), (second, rs, ls)):
                side = rows.filter(F.col("v").isin(vs))
                got = _window_pairs(side.filter((F.col("_side") == fs) & F.col("sparse")),
                                    side.filter(F.col("_side") == os_), window)
                got = got.select("v", F.col("f" if fs == ls else "o").alias("i"), F.col("o" if fs == ls else "f").alias("j"))
                w = got if w is None else w.unionByName(got)
        joined = joined.unionByName(w.select(F.lit(lk).alias("lk"), "v", "i", "j"))
    pairs = (joined.select("lk", "i", "j", bit.alias("m"))
             .groupBy("lk", "i", "j").agg(F.bit_or("m").cast("int").alias("mask"))).persist()
    stats = _pass_stats(pairs, passes, specs, warned, counted, left, right, linkages)
    return pairs, stats, (L, R, skipped)


def _pass_stats(pairs, passes, specs, warned: pd.DataFrame, counted: pd.DataFrame,
                left: pd.DataFrame, right: pd.DataFrame | None, linkages) -> dict[int, list[PassStats]]:
    """PassStats per linkage: pairs and new pairs per pass from the OR-ed masks (a pair is new in
    the first pass that found it), skipped blocks as reconcile.blocking reports them."""
    from pyspark.sql import functions as F

    m = F.col("mask")
    aggs = []
    for b in range(len(passes)):
        aggs.append(F.sum(F.shiftright(m, b).bitwiseAND(1)).alias(f"p{b}"))
        aggs.append(F.sum((m.bitwiseAND(-m) == (1 << b)).cast("long")).alias(f"n{b}"))
    counts = pairs.groupBy("lk").agg(*aggs).toPandas().set_index("lk")
    out: dict[int, list[PassStats]] = {}
    for lk in linkages:
        ls, rs = LINKAGE_SIDES[lk]
        lf = left if ls == 0 else right
        rf = None if ls == rs else (left if rs == 0 else right)
        stats = []
        for b, p in enumerate(passes):
            st = PassStats(p.name, p.description)
            if lk in counts.index:
                st.pairs = int(counts.loc[lk, f"p{b}"] or 0)
                st.new_pairs = int(counts.loc[lk, f"n{b}"] or 0)
            for s in (s for s in specs if s.bit == b and _serves(s, lk)):
                if s.warn:
                    w = warned[(warned["lk"] == lk) & (warned["v"] == s.v)]
                    if len(w):
                        order = _first_positions(lf, rf, p.columns, w["key"].tolist())
                        # the key as text from its first record (an ID piece's code from the number)
                        labels = [_key_label(lf, rf, p.columns, k) for k in order]
                        w = w.assign(_first=order, _label=labels).sort_values("_first", kind="stable")
                        _note_skips(st, p, w["_label"].tolist(), np.arange(len(w)), w["size"].astype(np.int64).to_numpy(),
                                    (w["nl"] + w["nr"]).astype(np.int64).to_numpy())
                else:
                    c = counted[(counted["lk"] == lk) & (counted["v"] == s.v)]
                    if len(c):
                        st.skipped_blocks += int(c["blocks"].iloc[0])
                        st.skipped_records += int(c["records"].iloc[0])
            stats.append(st)
        out[lk] = stats
    return out


def _first_positions(left: pd.DataFrame, right: pd.DataFrame | None, cols: Sequence[str], keys: list[str]) -> list[int]:
    """Where each key first appears in left then right (the embedded engine's code order)."""
    frames = [left] if right is None else [left, right]
    both = pd.concat([f[list(cols)].astype(str) for f in frames], ignore_index=True)
    joined = both[cols[0]]
    for c in cols[1:]:
        joined = joined + SEP + both[c]
    first = joined.drop_duplicates(keep="first")
    pos = dict(zip(first.to_numpy(), first.index.to_numpy()))
    return [int(pos.get(k, len(joined))) for k in keys]


def _key_label(left: pd.DataFrame, right: pd.DataFrame | None, cols: Sequence[str], at: int) -> str:
    """A pass's key of the record at ``at`` of left then right, as reconcile.blocking labels it."""
    frame, row = (left, at) if right is None or at < len(left) else (right, at - len(left))
    return SEP.join(key_text(frame, c, row) for c in cols)


# --------------------------------------------------------------------------------------------
# compare and score
def _comparator_columns(comps: Sequence[Comparator]) -> list[str]:
    return sorted({c for comp in comps for c in comp.columns})


def _pair_columns(keyed, pairs, comps: Sequence[Comparator]):
    """Pairs joined with both records' comparator and TF columns (l_*, r_*)."""
    from pyspark.sql import functions as F

    cols = _comparator_columns(comps)
    tf_cols = sorted(set(TF_FIELDS.values()) - set(cols))
    ls = F.when(F.col("lk") == WITHIN_DEST, 1).otherwise(0)
    rs = F.when(F.col("lk") == WITHIN_ORIGIN, 0).otherwise(1)
    p = pairs.withColumn("ls", ls).withColumn("rs", rs)
    lsel = keyed.select(F.col("_side").alias("ls"), F.col("_pos").alias("i"),
                        *[F.col(c).cast("string").alias("l_" + c) for c in cols + tf_cols])
    rsel = keyed.select(F.col("_side").alias("rs"), F.col("_pos").alias("j"),
                        *[F.col(c).cast("string").alias("r_" + c) for c in cols])
    return p.join(lsel, ["ls", "i"]).join(rsel, ["rs", "j"]), cols, tf_cols


def compare_in_spark(keyed, pairs, comps: Sequence[Comparator]):
    """(lk, i, j, mask, lv0.., left TF values) for every pair, levels from the comparators."""
    from pyspark.sql import types as T

    from reconcile.compare import compare_pairs

    joined, cols, tf_cols = _pair_columns(keyed, pairs, comps)
    nf = len(comps)
    tf_src = sorted(set(TF_FIELDS.values()))
    comps = list(comps)
    fields = [T.StructField("lk", T.IntegerType()), T.StructField("i", T.LongType()), T.StructField("j", T.LongType()),
              T.StructField("mask", T.IntegerType())]
    fields += [T.StructField(f"lv{f}", T.ByteType()) for f in range(nf)]
    fields += [T.StructField("t_" + c, T.StringType()) for c in tf_src]
    schema = T.StructType(fields)

    def batches(it):
        for b in it:
            if len(b) == 0:
                continue
            n = len(b)
            la = {c: b["l_" + c].fillna("").astype(str).to_numpy(object) for c in cols}
            ra = {c: b["r_" + c].fillna("").astype(str).to_numpy(object) for c in cols}
            idx = np.arange(n)
            lv = compare_pairs(la, ra, idx, idx, comps)
            out = {"lk": b["lk"].to_numpy(np.int32), "i": b["i"].to_numpy(np.int64), "j": b["j"].to_numpy(np.int64),
                   "mask": b["mask"].to_numpy(np.int32)}
            for f in range(nf):
                out[f"lv{f}"] = lv[:, f]
            for c in tf_src:
                out["t_" + c] = b["l_" + c].fillna("").astype(str).to_numpy(object)
            yield pd.DataFrame(out)

    return joined.mapInPandas(batches, schema)


def score_in_spark(spark, levels_df, models: Mapping[int, Model], tf: TermFrequencies, n_fields: int,
                   left_frames: Mapping[int, pd.DataFrame] | None = None):
    """(lk, i, j, mask, lv.., weight, probability) with each linkage's model (TF on names/births;
    the stratum prior of the left record, from ``left_frames[lk]``, when the model has strata)."""
    from pyspark.sql import types as T

    strata = {}
    for lk, m in models.items():
        frame = (left_frames or {}).get(lk)
        if frame is not None and m.strata and m.strata_column in frame.columns:
            strata[lk] = frame[m.strata_column].astype(str).to_numpy(object)
    bc = spark.sparkContext.broadcast({"models": dict(models), "tf": tf, "strata": strata})
    schema = T.StructType(list(levels_df.schema.fields) + [T.StructField("weight", T.DoubleType()),
                                                           T.StructField("probability", T.DoubleType())])
    tf_src = {fld: "t_" + col for fld, col in TF_FIELDS.items()}
    lv_cols = [f"lv{f}" for f in range(n_fields)]

    def batches(it):
        models_, tf_, strata_ = bc.value["models"], bc.value["tf"], bc.value["strata"]
        for b in it:
            if len(b) == 0:
                continue
            b = b.reset_index(drop=True)
            weight = np.zeros(len(b))
            prob = np.zeros(len(b))
            for lk, g in b.groupby("lk", sort=False):
                rows = g.index.to_numpy()
                lv = g[lv_cols].to_numpy(np.int8)
                vals = {fld: g[c].fillna("").astype(str).to_numpy(object) for fld, c in tf_src.items()}
                labels = strata_[int(lk)][g["i"].to_numpy(np.int64)] if int(lk) in strata_ else None
                sc = score(lv, models_[int(lk)], tf_, vals, labels)
                weight[rows] = sc.weight
                prob[rows] = sc.probability
            yield b.assign(weight=weight, probability=prob)

    return levels_df.mapInPandas(batches, schema)


def _collect_arrays(df, cols: Sequence[str]) -> pd.DataFrame:
    """A (small) Spark result on the driver via Arrow, sorted by (lk, i, j)."""
    pdf = df.select(*cols).toPandas()
    return pdf.sort_values(["lk", "i", "j"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# training on the driver (the embedded functions, the embedded pair order)
def train_model(levels: np.ndarray, cand: Candidates, left: pd.DataFrame, right: pd.DataFrame | None,
                comps: Sequence[Comparator], passes: Sequence[BlockingPass], tf: TermFrequencies | None,
                u_sample: int, m_from: Model | None = None, block_cap: int = 20_000,
                strata: str | None = None) -> Model:
    """reconcile.linkage.train_model (the training step of ``link``) on the pairs compared in
    Spark, collected in the embedded pair order: the same seeded u sample, sessions, TF offsets
    and prior, so the model is the embedded one."""
    return linkage.train_model(left, right, levels, cand, comps, passes=tuple(passes), tf=tf, u_sample=u_sample,
                               block_cap=block_cap, m_from=m_from, strata=strata)


def _learn_from_reviews(db, origin, dest, model: Model, comps, tf, progress: Progress) -> None:
    """reconcile.match.learn_from_reviews on the cross model (it updates m in place); the
    candidate pairs are scored afterwards, in Spark, with the updated model."""
    from reconcile.match import learn_from_reviews

    nf = len(comps)
    empty = np.zeros(0, np.int64)
    lv = np.zeros((0, nf), np.int8)
    holder = Linkage(candidates=Candidates(empty, empty, np.zeros(0, np.uint16), []), levels=lv,
                     scores=score(lv, model), model=model, u_sample=0)
    learned = learn_from_reviews(db, origin, dest, holder, comps, tf)
    progress("learn", {"decided_pairs": learned})


# --------------------------------------------------------------------------------------------
def tf_in_spark(keyed) -> TermFrequencies:
    """TermFrequencies.build(origin, dest) as Spark value counts (freq = count / non-empty total)."""
    from pyspark.sql import functions as F

    fields = list(TF_FIELDS.items())
    vals = (keyed.select(F.explode(F.array(*[F.struct(F.lit(fld).alias("f"), F.col(col).cast("string").alias("v"))
                                             for fld, col in fields])).alias("e"))
            .select("e.f", "e.v").filter(F.col("v") != ""))
    counts = vals.groupBy("f", "v").count().toPandas()
    tables = {}
    for fld, _ in fields:
        vc = counts[counts["f"] == fld]
        total = int(vc["count"].sum()) if len(vc) else 0
        # highest count first, as pandas value_counts lists it (the dict's order is not used)
        vc = vc.sort_values("count", ascending=False, kind="stable")
        tables[fld] = dict(zip(vc["v"], vc["count"].to_numpy(np.int64) / total)) if total else {}
    return TermFrequencies(tables)


def _decided_positions(db, origin: pd.DataFrame, dest: pd.DataFrame) -> pd.DataFrame:
    """(lk, i, j) of pairs reviewers decided: kept whatever they score, as the embedded engine
    applies decisions to every scored pair."""
    empty = pd.DataFrame({"lk": pd.Series([], dtype=np.int32), "i": pd.Series([], dtype=np.int64),
                          "j": pd.Series([], dtype=np.int64)})
    if db is None:
        return empty
    from reconcile.review.ledger import decided_pairs, ensure_ledger

    ensure_ledger(db)
    dec = decided_pairs(db)
    if dec.empty:
        return empty
    o_index = {k: i for i, k in enumerate(origin["record_key"].astype(str).tolist())}
    d_index = {k: i for i, k in enumerate(dest["record_key"].astype(str).tolist())}
    rows = []
    for sp, a, b in zip(dec["source_pair"].astype(str), dec["origin_key"].astype(str), dec["dest_key"].astype(str)):
        if sp == "origin-dest" and a in o_index and b in d_index:
            rows.append((CROSS, o_index[a], d_index[b]))
        elif sp in ("origin-origin", "dest-dest"):
            idx = o_index if sp == "origin-origin" else d_index
            if a in idx and b in idx and idx[a] != idx[b]:
                i, j = sorted((idx[a], idx[b]))
                rows.append((WITHIN_ORIGIN if sp == "origin-origin" else WITHIN_DEST, i, j))
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=["lk", "i", "j"]).astype({"lk": np.int32, "i": np.int64, "j": np.int64})


def spark_stages(origin_path, dest_path, opts, comps: Sequence[Comparator], db=None,
                 progress: Progress = _noop, timings: dict[str, float] | None = None,
                 passes: Sequence[BlockingPass] = MATCH_PASSES,
                 within_passes: Sequence[BlockingPass] = WITHIN_PASSES):
    """load .. score on Spark. Returns (origin Side, dest Side, TermFrequencies, cross Linkage,
    {'origin': Linkage|None, 'dest': Linkage|None}) for reconcile.match.assemble.

    The Linkage objects hold only the pairs assemble reads (see the module docstring), with
    ``candidates.stats`` and ``total_pairs`` describing all candidate pairs.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from reconcile.loading import read_registry
    from reconcile.match import Side, _load_info, _model_from_run, file_sha256

    timings = timings if timings is not None else {}
    t0 = time.perf_counter()
    spark = spark_session(getattr(opts, "master", None))
    timings["spark_start"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    loaded = [read_registry(origin_path, **opts.origin), read_registry(dest_path, **opts.dest)]
    keyed, std_raw, dtypes = standardise_in_spark(spark, [ld.frame for ld in loaded], date.today())
    stds = collect_sides(keyed, dtypes)
    origin = Side(name="origin", loaded=loaded[0], std=stds[0], sha256=file_sha256(Path(origin_path)))
    dest = Side(name="dest", loaded=loaded[1], std=stds[1], sha256=file_sha256(Path(dest_path)))
    std_raw.unpersist()
    timings["load+standardise"] = time.perf_counter() - t0
    progress("load", {"origin": _load_info(origin), "dest": _load_info(dest)})

    model = None
    if opts.model_from_run is not None:
        model = _model_from_run(db, opts.model_from_run, comps)

    tf = tf_in_spark(keyed)

    t0 = time.perf_counter()
    nO, nD = len(origin.std), len(dest.std)
    linkages = [CROSS]
    if opts.within_file:
        linkages += [lk for lk, n in ((WITHIN_ORIGIN, nO), (WITHIN_DEST, nD)) if n > 1]
    pairs, stats, cached = spark_candidates(spark, keyed, origin.std, dest.std, passes, opts.block_cap, linkages,
                                            within_block_cap=getattr(opts, "within_block_cap", opts.block_cap),
                                            within_passes=within_passes)
    totals = {lk: 0 for lk in linkages}
    for lk in linkages:
        # a pair is new in exactly one pass: the sum of new pairs is the number of distinct pairs
        totals[lk] = sum(s.new_pairs for s in stats[lk])
    timings["block"] = time.perf_counter() - t0
    progress("block", {"pairs": totals[CROSS], "passes": [(s.name, s.pairs, s.new_pairs) for s in stats[CROSS]]})

    t0 = time.perf_counter()
    levels_df = compare_in_spark(keyed, pairs, comps).persist()
    nf = len(comps)
    lv_cols = [f"lv{f}" for f in range(nf)]
    need = [lk for lk in linkages if not (lk == CROSS and model is not None)]
    train_rows = (_collect_arrays(levels_df.filter(F.col("lk").isin(need)), ["lk", "i", "j", "mask", *lv_cols])
                  if need else pd.DataFrame(columns=["lk", "i", "j", "mask", *lv_cols]))
    for c in cached:
        c.unpersist()
    timings["compare"] = time.perf_counter() - t0
    progress("compare", {"pairs": totals[CROSS]})

    t0 = time.perf_counter()
    frames = {0: origin.std, 1: dest.std}
    models: dict[int, Model] = {}
    order = [CROSS] + [lk for lk in linkages if lk != CROSS]
    for lk in order:
        ls, rs = LINKAGE_SIDES[lk]
        rows = train_rows[train_rows["lk"] == lk]
        cand = Candidates(left=rows["i"].to_numpy(np.int64), right=rows["j"].to_numpy(np.int64),
                          passes=rows["mask"].to_numpy(np.uint16), stats=stats[lk])
        lv = rows[lv_cols].to_numpy(np.int8).reshape(-1, nf)
        if lk == CROSS:
            models[lk] = model if model is not None else train_model(
                lv, cand, frames[0], frames[1], comps, passes, tf, opts.u_sample, block_cap=opts.block_cap,
                strata=PRIOR_STRATA)
            if getattr(opts, "learn_from_reviews", False) and model is None and db is not None:
                _learn_from_reviews(db, origin, dest, models[lk], comps, tf, progress)
        else:
            models[lk] = train_model(lv, cand, frames[ls], None, comps, passes, tf,
                                     min(opts.u_sample, 100_000), m_from=models[CROSS])
    del train_rows
    timings["train"] = time.perf_counter() - t0
    progress("train", {"iterations": 0, "prior": models[CROSS].prior})

    t0 = time.perf_counter()
    scored = score_in_spark(spark, levels_df, models, tf, nf,
                            {lk: frames[LINKAGE_SIDES[lk][0]] for lk in models}).persist()
    keep = scored.filter(F.col("probability") >= float(opts.review_threshold))
    cross = scored.filter(F.col("lk") == CROSS)
    # each record's best candidate (ties: the partner first in file order), for 流向不明 / 漏统
    for part, other in (("i", "j"), ("j", "i")):
        w = Window.partitionBy(part).orderBy(F.col("probability").desc(), F.col(other).asc())
        best = cross.withColumn("_r", F.row_number().over(w)).filter(F.col("_r") == 1).drop("_r")
        keep = keep.unionByName(best)
    decided = _decided_positions(db, origin.std, dest.std)
    if len(decided):
        dec = spark.createDataFrame(decided, schema="lk int, i long, j long")
        keep = keep.unionByName(scored.join(F.broadcast(dec), ["lk", "i", "j"], "left_semi"))
    kept = _collect_arrays(keep.select("lk", "i", "j", "mask", *lv_cols).dropDuplicates(["lk", "i", "j"]),
                           ["lk", "i", "j", "mask", *lv_cols])
    # the cross pairs left behind still count as rivals of their origin record (one-person posterior)
    odds = F.pow(F.lit(2.0), F.greatest(F.least(F.col("weight"), F.lit(200.0)), F.lit(-200.0)))
    rest = (cross.filter(F.col("probability") < float(opts.review_threshold)).groupBy("i")
            .agg(F.sum(odds).alias("s")).toPandas())
    rest_odds = np.zeros(len(origin.std))
    rest_odds[rest["i"].to_numpy(np.int64)] = rest["s"].to_numpy(float)
    for df in (scored, levels_df, pairs, keyed):
        df.unpersist()

    out: dict[int, Linkage] = {}
    for lk in order:
        ls, rs = LINKAGE_SIDES[lk]
        rows = kept[kept["lk"] == lk]
        cand = Candidates(left=rows["i"].to_numpy(np.int64), right=rows["j"].to_numpy(np.int64),
                          passes=rows["mask"].to_numpy(np.uint16), stats=stats[lk])
        lv = rows[lv_cols].to_numpy(np.int8).reshape(-1, nf)
        left = frames[ls]
        vals = {fld: left[col].astype(str).to_numpy(object)[cand.left] for fld, col in TF_FIELDS.items()
                if col in left.columns}
        sc = score(lv, models[lk], tf, vals, strata_values(models[lk], left, cand.left))
        u_used = opts.u_sample if lk == CROSS else min(opts.u_sample, 100_000)
        out[lk] = PartialLinkage(candidates=cand, levels=lv, scores=sc, model=models[lk], u_sample=u_used,
                                 timings={}, all_pairs=totals[lk], kept_pairs=int(cand.left.size),
                                 rest_odds=rest_odds if lk == CROSS else None)
    timings["score"] = time.perf_counter() - t0
    progress("score", {"pairs": totals[CROSS]})
    within = {"origin": out.get(WITHIN_ORIGIN), "dest": out.get(WITHIN_DEST)}
    progress("within", {k: (0 if v is None else int(v.total_pairs)) for k, v in within.items()})
    return origin, dest, tf, out[CROSS], within


# --------------------------------------------------------------------------------------------
PARQUET_TABLES = ("links", "traced", "untraceable", "cross_region_duplicates", "unregistered", "id_conflicts",
                  "duplicates", "records", "blocking", "metrics", "warnings")


def _arrow_table(frame: pd.DataFrame):
    import pyarrow as pa

    df = frame.reset_index(drop=True).copy()
    for c in df.columns:
        if df[c].dtype == object:
            vals = df[c]
            kinds = {type(v) for v in vals if v is not None and not (isinstance(v, float) and np.isnan(v))}
            if kinds <= {str}:
                continue
            if kinds <= {int, float, np.int64, np.float64, bool}:
                df[c] = pd.to_numeric(vals, errors="coerce")
            else:
                df[c] = [None if v is None else str(v) for v in vals]
    table = pa.Table.from_pandas(df, preserve_index=False)
    for k, f in enumerate(table.schema):
        if pa.types.is_null(f.type):    # an all-empty column: Parquet has no void type
            table = table.set_column(k, pa.field(f.name, pa.string()), table.column(k).cast(pa.string()))
    return table


def write_parquet(tables: Mapping[str, pd.DataFrame], out_dir: str | Path, run_id: int, master: str | None = None) -> list[str]:
    """Write the run's links, outcomes and records as Parquet under ``out_dir/<table>/run_id=<id>/``
    through Spark (so ``out_dir`` may be hdfs:// or s3a:// on a cluster). Returns the paths."""
    spark = spark_session(master)
    written = []
    base = str(out_dir).rstrip("/")
    for name in PARQUET_TABLES:
        frame = tables.get(name)
        if frame is None:
            continue
        if isinstance(frame, ChunkedFrame):   # built chunk by chunk for SQLite; Parquet takes it whole
            frame = frame.to_frame()
        path = f"{base}/{name}/run_id={int(run_id)}"
        spark.createDataFrame(_arrow_table(frame)).write.mode("overwrite").parquet(path)
        written.append(path)
    return written
