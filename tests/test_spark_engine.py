"""`reconcile match --engine spark` (issue 7) against the embedded engine on the same data.

One generated pair of registries (fixtures.generate, 1,500 origin persons) is matched by both
engines; Spark runs in local[2] with one SparkSession for the whole module. The two reports must
hold the same links (pair, decision), the same outcomes and the same model; probabilities may
differ by at most 1e-6. Skipped, with the reason, where pyspark or Java is missing.
"""
from __future__ import annotations

import importlib.util
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reconcile.engines import spark_missing_reason

PERSONS, SEED = 1500, 7
KEYS = {"origin": {"key": "编号"}, "dest": {"key": "序号"}}
_reason = spark_missing_reason()
needs_spark = pytest.mark.skipif(
    _reason is not None,
    reason={"engine.spark_missing": "pyspark is not installed (pip install 'reconcile[spark]')",
            "engine.java_missing": "no Java found for Spark"}.get(_reason or "", ""),
)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    import fixtures.generate as gm

    return gm.write(gm.generate(PERSONS, seed=SEED), tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def spark():
    from reconcile.engines.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


def _decide_some_pairs(db_path: Path, data: dict[str, Path]) -> int:
    """Reviewers' decisions of every kind the engines must honour alike: a low-scoring candidate
    decided match, a review-level pair decided non_match, a within-file candidate below the
    review threshold decided match, and a pair blocking never proposed decided match."""
    import sqlite_utils

    from reconcile.blocking import MATCH_PASSES, WITHIN_PASSES, candidate_pairs
    from reconcile.match import load_side
    from reconcile.review.ledger import record_decision

    db = sqlite_utils.Database(db_path)
    links = pd.read_sql("SELECT * FROM links", db.conn)
    unt = pd.read_sql("SELECT * FROM untraceable WHERE best_probability < 0.3", db.conn)
    o = load_side("origin", data["origin"], KEYS["origin"]).std
    d = load_side("dest", data["dest"], KEYS["dest"]).std
    decided = []
    for r in unt.head(2).itertuples():
        decided.append(("origin-dest", r.origin_key, r.best_dest_key, "match"))
    for r in links[(links.decision == "review") & (links.source_pair == "origin-dest")].head(1).itertuples():
        decided.append(("origin-dest", r.origin_key, r.dest_key, "non_match"))
    ok, linked = o["record_key"].to_numpy(object), set(zip(links.origin_key, links.dest_key))
    within = candidate_pairs(o, None, WITHIN_PASSES)   # the passes match runs within one file
    for i, j in zip(within.left.tolist(), within.right.tolist()):
        if (ok[i], ok[j]) not in linked and (ok[j], ok[i]) not in linked:
            decided.append(("origin-origin", ok[i], ok[j], "match"))
            break
    cross = candidate_pairs(o, d, MATCH_PASSES)
    proposed = set(zip(cross.left.tolist(), cross.right.tolist()))
    j = len(d) - 1
    while (0, j) in proposed:
        j -= 1
    decided.append(("origin-dest", ok[0], d["record_key"].iloc[j], "match"))
    for sp, a, b, dec in decided:
        record_decision(db, str(a), str(b), dec, "tester", source_pair=sp)
    db.close()
    return len(decided)


@pytest.fixture(scope="module")
def reports(data, spark, tmp_path_factory):
    """Run 1 (embedded) on one report; reviewers decide some pairs; a copy of that report gets
    run 2 by Spark, the original run 2 by the embedded engine (both learning from the reviews).
    Returns (embedded report, spark report, parquet dir, embedded result, spark result)."""
    import shutil

    from reconcile.match import MatchOptions, run_match

    out = tmp_path_factory.mktemp("reports")
    emb_db, spk_db = out / "embedded.db", out / "spark.db"
    run_match(data["origin"], data["dest"], emb_db, MatchOptions(**KEYS))
    assert _decide_some_pairs(emb_db, data) == 5
    shutil.copy(emb_db, spk_db)
    emb = run_match(data["origin"], data["dest"], emb_db, MatchOptions(learn_from_reviews=True, **KEYS))
    spk = run_match(data["origin"], data["dest"], spk_db,
                    MatchOptions(engine="spark", master="local[2]", out_parquet=str(out / "parquet"),
                                 learn_from_reviews=True, **KEYS))
    assert emb.run_id == spk.run_id == 2
    return emb_db, spk_db, out / "parquet", emb, spk


def _table(db: Path, name: str, run_id: int = 2) -> pd.DataFrame:
    con = sqlite3.connect(db)
    try:
        df = pd.read_sql(f"SELECT * FROM {name} WHERE run_id = ?", con, params=(run_id,))
    finally:
        con.close()
    return df.drop(columns=["run_id"], errors="ignore")


def _rows(df: pd.DataFrame, cols: list[str]) -> set[tuple]:
    return set(df[cols].astype(str).itertuples(index=False, name=None))


@pytest.mark.spark
@needs_spark
def test_same_links_decisions_and_probabilities(reports):
    a, b = _table(reports[0], "links"), _table(reports[1], "links")
    key = ["source_pair", "origin_key", "dest_key"]
    assert len(a) > 300                                   # the data has plenty of links to compare
    assert set(a["source_pair"]) == {"origin-dest", "origin-origin", "dest-dest"}
    assert _rows(a, key + ["decision", "decided_by"]) == _rows(b, key + ["decision", "decided_by"])
    assert (a["decided_by"] == "review").sum() >= 4          # the reviewers' decisions bound both runs
    m = a.merge(b, on=key, suffixes=("_e", "_s"))
    assert len(m) == len(a) == len(b)
    assert np.abs(m["match_probability_e"] - m["match_probability_s"]).max() <= 1e-6
    assert np.abs(m["match_weight_e"] - m["match_weight_s"]).max() <= 1e-6
    # the evidence a reviewer sees (values, levels, weights) is the same
    ev = m.sample(min(len(m), 60), random_state=1)
    for x, y in zip(ev["evidence_json_e"], ev["evidence_json_s"]):
        ex, ey = json.loads(x), json.loads(y)
        assert {f: (v["level"], v["left"], v["right"]) for f, v in ex["fields"].items()} == \
               {f: (v["level"], v["left"], v["right"]) for f, v in ey["fields"].items()}


@pytest.mark.spark
@needs_spark
@pytest.mark.parametrize("table,cols", [
    ("traced", ["origin_key", "dest_key"]),
    ("untraceable", ["origin_key", "best_dest_key"]),
    ("unregistered", ["dest_key", "hukou_region", "best_origin_key"]),
    ("cross_region_duplicates", ["origin_key", "dest_key"]),
    ("id_conflicts", ["id_number", "source", "record_key", "conflict_group"]),
    ("duplicates", ["source", "cluster_id", "record_key", "survivor", "scope", "reason"]),
    ("blocking", ["pass_name", "pairs", "new_pairs", "skipped_blocks", "skipped_records"]),
])
def test_same_outcomes(reports, table, cols):
    a, b = _table(reports[0], table), _table(reports[1], table)
    assert _rows(a, cols) == _rows(b, cols)
    if table == "untraceable":
        assert len(a) > 20
        m = a.merge(b, on="origin_key")
        pa, pb = m["best_probability_x"].fillna(-1.0), m["best_probability_y"].fillna(-1.0)
        assert np.abs(pa - pb).max() <= 1e-6


@pytest.mark.spark
@needs_spark
def test_same_summary_model_and_records(reports):
    emb, spk = reports[3], reports[4]
    assert emb.summary == spk.summary
    assert spk.summary["candidate_pairs"] > spk.summary["links_match"]    # counts every pair, not the kept ones
    ra, rb = _table(reports[0], "records"), _table(reports[1], "records")
    pd.testing.assert_frame_equal(ra, rb)                                # standardised per partition = on the driver
    con_a, con_b = sqlite3.connect(reports[0]), sqlite3.connect(reports[1])
    ma = json.loads(con_a.execute("SELECT model_json FROM runs WHERE run_id = 2").fetchone()[0])
    mb = json.loads(con_b.execute("SELECT model_json FROM runs WHERE run_id = 2").fetchone()[0])
    settings = json.loads(con_b.execute("SELECT settings_json FROM runs WHERE run_id = 2").fetchone()[0])
    con_a.close()
    con_b.close()
    assert settings["engine"] == "spark"
    assert mb["cross"]["trained_on"].get("learned_from_reviews", 0) >= 2
    for part in ("cross",):
        for fa, fb in zip(ma[part]["fields"], mb[part]["fields"]):
            for la, lb in zip(fa["levels"], fb["levels"]):
                assert la["level"] == lb["level"]
                assert abs(la["m"] - lb["m"]) <= 1e-9 and abs(la["u"] - lb["u"]) <= 1e-12
        assert abs(ma[part]["prior"] - mb[part]["prior"]) <= 1e-12
    assert ma["tf"] == mb["tf"]


@pytest.mark.spark
@needs_spark
def test_parquet_holds_the_links_and_outcomes(reports, spark):
    pq = reports[2]
    links = spark.read.parquet(str(pq / "links")).toPandas()
    assert set(links["run_id"]) == {2}                          # partitioned by run
    sq = _table(reports[1], "links")
    key = ["source_pair", "origin_key", "dest_key", "decision"]
    assert _rows(links, key) == _rows(sq, key)
    unt = spark.read.parquet(str(pq / "untraceable")).toPandas()
    assert _rows(unt, ["origin_key"]) == _rows(_table(reports[1], "untraceable"), ["origin_key"])
    rec = spark.read.parquet(str(pq / "records")).toPandas()
    assert len(rec) == len(_table(reports[1], "records"))
    assert rec["record_key"].map(type).eq(str).all()           # keys stay text


@pytest.mark.spark
@needs_spark
@pytest.mark.parametrize("cap", [3])
@pytest.mark.parametrize("which", ["default", "match"])
def test_blocking_with_small_caps_equals_embedded(data, spark, cap, which):
    """Blocks over the cap are skipped the same way (counts, warnings and their order), for the
    registries against each other and each against itself; the pairs and pass masks are equal.
    Both pass lists: dedupe's and match's (demographic passes only for records without a usable ID;
    within one file the name passes only for records without a number of their own)."""
    from reconcile.blocking import DEFAULT_PASSES, MATCH_PASSES, WITHIN_PASSES, candidate_pairs
    from reconcile.engines.spark import CROSS, WITHIN_DEST, WITHIN_ORIGIN, spark_candidates
    from reconcile.match import load_side

    o = load_side("origin", data["origin"], KEYS["origin"]).std
    d = load_side("dest", data["dest"], KEYS["dest"]).std
    both = pd.concat([o.assign(_side=0, _pos=np.arange(len(o))), d.assign(_side=1, _pos=np.arange(len(d)))],
                     ignore_index=True)
    keyed = spark.createDataFrame(both)
    passes = DEFAULT_PASSES if which == "default" else MATCH_PASSES
    within_passes = DEFAULT_PASSES if which == "default" else WITHIN_PASSES
    pairs, stats, cached = spark_candidates(spark, keyed, o, d, passes, block_cap=cap, within_passes=within_passes)
    got = pairs.toPandas()
    for lk, (left, right) in ((CROSS, (o, d)), (WITHIN_ORIGIN, (o, None)), (WITHIN_DEST, (d, None))):
        want = candidate_pairs(left, right, passes if lk == CROSS else within_passes, block_cap=cap)
        if which == "match":   # the name passes' restriction does leave pairs out here
            whole = tuple(replace(p, only_unsure_id=False) for p in (passes if lk == CROSS else within_passes))
            assert want.left.size < candidate_pairs(left, right, whole, block_cap=cap).left.size
        g = got[got["lk"] == lk].sort_values(["i", "j"])
        assert np.array_equal(g["i"].to_numpy(), want.left) and np.array_equal(g["j"].to_numpy(), want.right)
        assert np.array_equal(g["mask"].to_numpy(), want.passes.astype(np.int64))
        assert [vars(s) for s in stats[lk]] == [vars(s) for s in want.stats]
        if lk == CROSS:   # the small cap did skip blocks, with warnings
            assert sum(s.skipped_blocks for s in want.stats) > 0 and any(s.warnings for s in want.stats)
    for c in (*cached, pairs):
        c.unpersist()


@pytest.mark.spark
@needs_spark
def test_sorted_windows_equal_embedded(data, spark):
    """A window of 2 partners (reconcile.blocking.WINDOW is 20, which blocks of 1,500 persons rarely
    exceed) bites here: Spark's windowed passes give the embedded engine's pairs, masks and pass
    counts for the registries against each other and each against itself, and leave pairs out."""
    from reconcile.blocking import MATCH_PASSES, WITHIN_PASSES, candidate_pairs
    from reconcile.engines.spark import CROSS, WITHIN_DEST, WITHIN_ORIGIN, spark_candidates
    from reconcile.match import load_side

    o = load_side("origin", data["origin"], KEYS["origin"]).std
    d = load_side("dest", data["dest"], KEYS["dest"]).std
    both = pd.concat([o.assign(_side=0, _pos=np.arange(len(o))), d.assign(_side=1, _pos=np.arange(len(d)))],
                     ignore_index=True)
    keyed = spark.createDataFrame(both)
    pairs, stats, cached = spark_candidates(spark, keyed, o, d, MATCH_PASSES, within_passes=WITHIN_PASSES, window=2)
    got = pairs.toPandas()
    for lk, (left, right) in ((CROSS, (o, d)), (WITHIN_ORIGIN, (o, None)), (WITHIN_DEST, (d, None))):
        want = candidate_pairs(left, right, MATCH_PASSES if lk == CROSS else WITHIN_PASSES, window=2)
        if lk == CROSS:   # the window did leave pairs out
            assert want.left.size < candidate_pairs(left, right, MATCH_PASSES, window=0).left.size
        g = got[got["lk"] == lk].sort_values(["i", "j"])
        assert np.array_equal(g["i"].to_numpy(), want.left) and np.array_equal(g["j"].to_numpy(), want.right)
        assert np.array_equal(g["mask"].to_numpy(), want.passes.astype(np.int64))
        assert [vars(s) for s in stats[lk]] == [vars(s) for s in want.stats]
    for c in (*cached, pairs):
        c.unpersist()


# --- without Spark -----------------------------------------------------------------------------
SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
TINY = [str(SAMPLES / "tiny_origin.csv"), str(SAMPLES / "tiny_dest.csv"), "--origin-key", "编号", "--dest-key", "序号"]


@pytest.mark.parametrize("lang,needle", [("en", "pip install 'reconcile[spark]'"), ("zh", "pip install 'reconcile[spark]'")])
def test_missing_pyspark_says_how_to_install(tmp_path, monkeypatch, lang, needle):
    from cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    r = CliRunner().invoke(app, ["--lang", lang, "match", *TINY, "--engine", "spark", "--out", str(tmp_path / "r.db")])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    if lang == "zh":
        assert "尚未安装" in r.output


@pytest.mark.parametrize("args,needle", [
    (["--out-parquet", "pq"], "--engine spark"),
    (["--engine", "flink"], "flink"),
    (["--master", "local[2]"], "--engine spark"),
])
def test_engine_option_errors(tmp_path, args, needle):
    from cli import app

    r = CliRunner().invoke(app, ["match", *TINY, *args, "--out", str(tmp_path / "r.db")])
    assert r.exit_code == 2, r.output
    assert needle in r.output
