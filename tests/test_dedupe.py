"""`reconcile dedupe` end to end on hand-made township files (with a generated population around
them): pooling and keys, scope / resolving level / survivor, the chaining guards, report tables,
and the command line's exit codes."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests._dedupe_data import CHEN, HAND, MAIMAITI, ZHANG, rid, write_files
from cli import app
from matchers.registry import default_comparators
from reconcile.dedupe import (
    ChainSplit, DedupeOptions, PairFacts, Population, Scored, choose_survivor, cluster_records, cluster_scope,
    run_dedupe, score_pairs,
)
from reconcile.decide import MATCH, threshold_decisions
from reconcile.model import FieldParams, Model, initial_m

runner = CliRunner()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("dedupe")
    paths = write_files(d / "in")
    db = d / "r.db"
    res = run_dedupe(paths, db, DedupeOptions(load={"key": "编号"}))
    con = sqlite3.connect(db)
    yield res, con
    con.close()


def q(con, sql, *params) -> pd.DataFrame:
    return pd.read_sql(sql, con, params=params)


def cluster_of(con, run_id: int, key: str) -> pd.DataFrame:
    d = q(con, "SELECT * FROM duplicates WHERE run_id = ?", run_id)
    cid = d.loc[d.record_key == key, "cluster_id"]
    assert len(cid) == 1, f"{key} is in no duplicate cluster"
    return d[d.cluster_id == cid.iloc[0]].sort_values("record_key")


# ---- pooling ---------------------------------------------------------------------------------

def test_colliding_keys_are_qualified_by_file_and_every_record_keeps_its_file(report):
    res, con = report
    recs = q(con, "SELECT record_key, source, file, raw_json FROM records WHERE run_id = ?", res.run_id)
    assert set(recs.source) == {"origin"}
    assert {"城关镇:H1", "龙海镇:H1", "外地:H1"} <= set(recs.record_key)
    for key, raw in zip(recs.record_key, recs.raw_json):
        label = key.split(":", 1)[0]
        assert json.loads(raw)["__file__"] == label
    assert set(recs.file) == {"城关镇", "龙海镇", "外地"}
    assert res.summary["files"] == 3 and res.summary["records"] == len(recs)


def test_links_are_within_file_pairs_with_evidence(report):
    res, con = report
    links = q(con, "SELECT * FROM links WHERE run_id = ?", res.run_id)
    assert set(links.source_pair) == {"origin-origin"}
    pair = links[(links.origin_key == "城关镇:H1") & (links.dest_key == "龙海镇:H1")]
    assert len(pair) == 1 and pair.decision.iloc[0] == "match"
    ev = json.loads(pair.evidence_json.iloc[0])
    assert ev["fields"]["id_number"]["level"] and "weight" in ev["fields"]["name"]


# ---- scope, resolving level, survivor --------------------------------------------------------

def test_cross_township_duplicate_resolved_by_the_county(report):
    res, con = report
    c = cluster_of(con, res.run_id, "城关镇:H1")
    assert set(c.record_key) == {"城关镇:H1", "龙海镇:H1"}      # 18-digit and 15-digit number
    assert set(c.scope) == {"cross_unit"} and set(c.resolver_level) == {"county"}
    assert set(c.resolver) == {"431028 安仁县"}
    # both IDs usable, both complete: the later registration survives
    surv = c[c.survivor == 1]
    assert list(surv.record_key) == ["龙海镇:H1"] and "most_recent" in surv.reason.iloc[0]
    assert c.cluster_id.iloc[0].startswith("P")          # the person ID


def test_same_township_duplicate_keeps_the_record_with_a_valid_id(report):
    res, con = report
    c = cluster_of(con, res.run_id, "城关镇:H2")
    assert set(c.record_key) == {"城关镇:H2", "城关镇:H3"}
    assert set(c.scope) == {"same_unit"} and set(c.resolver) == {"城关镇"} and set(c.resolver_level) == {"unit"}
    surv = c[c.survivor == 1]
    assert list(surv.record_key) == ["城关镇:H2"] and surv.reason.iloc[0].split(";")[0] == "valid_id"


def test_minority_name_with_another_dot_is_the_same_person(report):
    res, con = report
    c = cluster_of(con, res.run_id, "城关镇:H6")
    assert set(c.record_key) == {"城关镇:H6", "龙海镇:H2"} and set(c.scope) == {"cross_unit"}


@pytest.mark.parametrize("key,scope,level,resolver", [
    ("外地:H1", "cross_county", "city", "431000 郴州市"),       # 安仁县 vs 北湖区
    ("外地:H3", "cross_city", "province", "430000 湖南省"),     # 郴州 vs 长沙
    ("外地:H2", "cross_province", "country", ""),              # 湖南 vs 广东东莞
])
def test_scope_across_counties_cities_and_provinces(report, key, scope, level, resolver):
    res, con = report
    c = cluster_of(con, res.run_id, key)
    assert len(c) == 2
    assert set(c.scope) == {scope} and set(c.resolver_level) == {level}
    assert set(c.resolver.fillna("")) == {resolver}
    detail = json.loads(c.detail.iloc[0])
    assert len(detail["counties"]) == 2 and detail["size"] == 2


def test_twins_with_their_own_numbers_are_never_one_person(report):
    res, con = report
    pr = q(con, "SELECT record_key, person_id FROM person_records WHERE run_id = ?", res.run_id).set_index("record_key")
    assert pr.loc["城关镇:H4", "person_id"] != pr.loc["城关镇:H5", "person_id"]


def test_scope_counts_in_summary_and_metrics(report):
    res, con = report
    s = res.summary
    assert s["scope_cross_county"] >= 1 and s["scope_cross_city"] >= 1 and s["scope_cross_province"] >= 1
    m = q(con, "SELECT scope, metric, value FROM metrics WHERE run_id = ?", res.run_id)
    files = m[(m.scope == "file:龙海镇") & (m.metric == "records")]
    assert int(files.value.iloc[0]) == len(HAND["龙海镇"]) + 1020
    assert (m[(m.scope == "all") & (m.metric == "clusters_cross_unit")].value >= 2).all()


# ---- scope classification (unit) -------------------------------------------------------------

@pytest.mark.parametrize("regions,units,expected", [
    (["431028", "431028"], ["城关镇", "城关镇"], ("same_unit", "unit", "城关镇")),
    (["431028", "431028"], ["城关镇", "龙海镇"], ("cross_unit", "county", "431028 安仁县")),
    (["431028", ""], ["城关镇", "龙海镇"], ("cross_unit", "county", "431028 安仁县")),   # unknown county ignored
    (["431028", "431028"], ["", ""], ("same_county", "county", "431028 安仁县")),
    (["431028", "431002"], ["城关镇", "城关镇"], ("cross_county", "city", "431000 郴州市")),
    (["431028", "430102"], ["", ""], ("cross_city", "province", "430000 湖南省")),
    (["431028", "441900"], ["", ""], ("cross_province", "country", "")),
    (["431028", "431002", "441900"], ["", "", ""], ("cross_province", "country", "")),
    (["", ""], ["城关镇", "城关镇"], ("same_unit", "unit", "城关镇")),
    (["", ""], ["城关镇", "龙海镇"], ("cross_unit", "unknown", "")),
    (["", ""], ["", ""], ("unknown", "unknown", "")),
])
def test_cluster_scope(regions, units, expected):
    assert cluster_scope(regions, units) == expected


@pytest.mark.parametrize("usable,filled,registered,best,reasons", [
    ([False, True], [6, 5], ["", ""], 1, ["valid_id"]),
    ([True, True], [5, 6], ["2024-01-01", ""], 1, ["most_complete"]),
    ([True, True], [6, 6], ["2020-01-01", "2023-05-06"], 1, ["most_recent"]),
    ([True, True], [6, 6], ["", ""], 0, ["first_listed"]),
    ([True, False, True], [4, 6, 5], ["", "", "2019-01-01"], 2, ["valid_id", "most_complete"]),
])
def test_survivor_valid_id_then_completeness_then_recency(usable, filled, registered, best, reasons):
    assert choose_survivor(usable, filled, registered) == (best, reasons)


# ---- chaining guards -------------------------------------------------------------------------

def toy_model(comps) -> Model:
    """Agreement rare by chance, disagreement common; a prior of 1 in 10,000 pairs."""
    m = initial_m(comps)
    fields = []
    for k, c in enumerate(comps):
        u = [0.0005] * (len(c.levels) - 1) + [0.9]
        fields.append(FieldParams(c.field, c.levels, m[k], [x / sum(u) for x in u]))
    return Model(prior=1e-4, fields=fields)


def population(rows: list[dict]) -> Population:
    from reconcile.dedupe import population_from_frame
    from reconcile.keys import add_keys
    from reconcile.standardise import standardise

    frame = pd.DataFrame(rows)
    for c in ("name", "id_number", "birth_date", "sex", "hukou", "residence", "flow_status", "flow_place", "unit",
              "ethnicity", "registered_at"):
        if c not in frame:
            frame[c] = ""
    frame["line"] = np.arange(2, len(frame) + 2)
    std = add_keys(standardise(frame))
    std["file"], std["registered_at"] = "f", ""
    return population_from_frame(std, default_comparators())


def scored(pop: Population, edges: list[tuple[int, int, float]], model: Model, comps) -> Scored:
    li = np.array([e[0] for e in edges], np.int64)
    ri = np.array([e[1] for e in edges], np.int64)
    from reconcile.compare import compare_pairs

    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    lv = compare_pairs(arr, arr, li, ri, comps)
    sc = score_pairs(lv, li, ri, model, PairFacts.of(pop), {}, comps)
    sc.probability = np.array([e[2] for e in edges])          # the link strengths under test
    dec = threshold_decisions(sc.probability, 0.95, 0.30)
    return Scored(li, ri, np.ones(len(li), np.uint16), lv, sc, dec, np.array(["model"] * len(li), dtype=object),
                  np.zeros(len(li), np.int8))


CHAIN = [  # A and C disagree on birth date and sex; B (no day, no ID, no sex) links both
    {"record_key": "A", "name": "李娜", "sex": "女", "birth_date": "1990-05-06", "id_number": rid("43102819900506002")},
    {"record_key": "B", "name": "李娜", "sex": "", "birth_date": "1990"},
    {"record_key": "C", "name": "李娜", "sex": "男", "birth_date": "1990-11-23"},
]


def test_weak_chain_is_split_at_its_weakest_link_and_explained():
    comps = default_comparators()
    pop = population(CHAIN)
    model = toy_model(comps)
    sc = scored(pop, [(0, 1, 0.97), (1, 2, 0.96)], model, comps)
    cl = cluster_records(pop, sc, model, PairFacts.of(pop), {}, comps, DedupeOptions())
    assert cl.labels[0] == cl.labels[1] != cl.labels[2]
    assert len(cl.splits) == 1
    s = cl.splits[0]
    assert isinstance(s, ChainSplit) and (s.a, s.b) == (0, 2) and s.cut == (1, 2)
    assert s.direct < 0.30 and s.cut_probability == pytest.approx(0.96)
    from reconcile.dedupe import duplicate_rows, warning_rows

    dup = duplicate_rows(pop, cl, np.array(["P1", "P1", "P2"], dtype=object))
    assert set(dup.record_key) == {"A", "B"} and all("chain_split" in r for r in dup.reason)
    assert json.loads(dup.detail.iloc[0])["chain_split"][0]["cut"] == ["B", "C"]
    warn = warning_rows(pop, [], cl)
    assert any("chain split: A and C" in m and "B - C" in m for m in warn.message)


def test_chain_of_strong_links_is_kept_but_reported():
    comps = default_comparators()
    pop = population(CHAIN)
    model = toy_model(comps)
    sc = scored(pop, [(0, 1, 0.9995), (1, 2, 0.9999)], model, comps)
    cl = cluster_records(pop, sc, model, PairFacts.of(pop), {}, comps, DedupeOptions(strong=0.999))
    assert cl.labels[0] == cl.labels[1] == cl.labels[2]
    assert not cl.splits and [(i, j) for i, j, _ in cl.kept] == [(0, 2)]


def test_two_valid_numbers_are_never_joined_through_a_record_without_one():
    comps = default_comparators()
    rows = [
        {"record_key": "X", "name": "王伟", "sex": "男", "birth_date": "1985-02-03", "id_number": rid("43102819850203001")},
        {"record_key": "Y", "name": "王伟", "sex": "男", "birth_date": "1985-02-03"},
        {"record_key": "Z", "name": "王伟", "sex": "男", "birth_date": "1985-02-03", "id_number": rid("43102819850203003")},
    ]
    pop = population(rows)
    model = toy_model(comps)
    sc = scored(pop, [(0, 1, 0.99), (1, 2, 0.98)], model, comps)
    cl = cluster_records(pop, sc, model, PairFacts.of(pop), {}, comps, DedupeOptions())
    assert cl.labels[0] == cl.labels[1] != cl.labels[2]
    assert cl.refused == [(1, 2, "different_valid_ids")]


def test_no_cluster_of_a_generated_registry_holds_two_valid_numbers(report):
    res, con = report
    rows = q(con, "SELECT d.cluster_id, r.id_number, r.id_status FROM duplicates d JOIN records r "
                  "ON r.run_id = d.run_id AND r.record_key = d.record_key WHERE d.run_id = ?", res.run_id)
    usable = rows[rows.id_status.isin(["valid", "upgraded_from_15"])]
    assert (usable.groupby("cluster_id")["id_number"].nunique() <= 1).all()


def test_a_twin_recorded_under_the_other_twins_number_is_not_a_duplicate():
    """重号: the same number, the same birth date (both implied by the number), another given name."""
    comps = default_comparators()
    rows = [
        {"record_key": "T1", "name": "刘芳", "sex": "女", "birth_date": "1974-04-03", "id_number": rid("43102819740403002")},
        {"record_key": "T2", "name": "刘强", "sex": "男", "birth_date": "1974-04-03", "id_number": rid("43102819740403002")},
        {"record_key": "T3", "name": "刘芳", "sex": "女", "birth_date": "1974-04-03", "id_number": rid("43102819740403002")},
    ]
    pop = population(rows)
    model = toy_model(comps)
    li, ri = np.array([0, 0]), np.array([1, 2])
    from reconcile.compare import compare_pairs

    arr = {c: pop.cols[c] for comp in comps for c in comp.columns}
    lv = compare_pairs(arr, arr, li, ri, comps)
    sc = score_pairs(lv, li, ri, model, PairFacts.of(pop), {}, comps)
    birth = [c.field for c in comps].index("birth_date")
    assert sc.field_weights[0, birth] == 0.0          # agreement implied by the shared number
    assert sc.probability[0] < 0.30 < 0.95 < sc.probability[1]


# ---- command line ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return write_files(d, {k: v for k, v in HAND.items() if k != "外地"}, pad=120)


def test_cli_json_summary_and_table(tmp_path, small_files):
    args = ["dedupe", *map(str, small_files), "--key", "编号", "--db", str(tmp_path / "c.db")]
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["run_id"] == 1 and data["mode"] == "full" and data["duplicate_clusters"] >= 3
    r = runner.invoke(app, ["--lang", "zh", *args])
    assert r.exit_code == 0
    assert "重复人口组" in r.stdout and "增量比对" in r.stdout        # the second run reuses the first
    assert ZHANG not in r.output and MAIMAITI not in r.output


@pytest.mark.parametrize("extra,code,needle", [
    (["missing.csv"], 3, "missing.csv"),
    (["--match-threshold", "0.2", "--review-threshold", "0.5"], 2, "0.2"),
    (["--key", "没有这列"], 2, "没有这列"),
    (["--model", "7"], 5, "7"),
    (["--block-cap", "0"], 2, "block-cap"),
])
def test_cli_exit_codes(tmp_path, small_files, extra, code, needle):
    files = [str(small_files[0])]
    if extra and extra[0] == "missing.csv":
        files, extra = ["missing.csv"], []
    key = [] if "--key" in extra else ["--key", "编号"]
    r = runner.invoke(app, ["dedupe", *files, *key, *extra, "--db", str(tmp_path / "e.db")])
    assert r.exit_code == code, r.output
    assert needle in r.output and "Traceback" not in r.output


def test_cli_db_that_is_not_a_report(tmp_path, small_files):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    r = runner.invoke(app, ["dedupe", str(small_files[0]), "--key", "编号", "--db", str(other)])
    assert r.exit_code == 5 and "runs" in r.output


def test_duplicate_keys_within_the_pool_are_a_data_error(tmp_path):
    p = tmp_path / "dup.csv"
    pd.DataFrame([["1", "张三", "男", "1990-01-01"], ["1", "李四", "女", "1991-02-02"]],
                 columns=["编号", "姓名", "性别", "出生日期"]).to_csv(p, index=False)
    r = runner.invoke(app, ["dedupe", str(p), "--key", "编号", "--db", str(tmp_path / "d.db")])
    assert r.exit_code in (2, 4), r.output
    assert "Traceback" not in r.output


def test_review_reads_a_dedupe_report_through_the_records_view(report):
    """records is a view in a dedupe database (reconcile.record_store): the review's record index
    and a cluster's members (names, masked IDs) still come from it."""
    from reconcile.report import open_report
    from reconcile.review.pairs import record_index
    from reconcile.review.view import _cluster

    res, con = report
    db = open_report(res.db, create=False)
    try:
        assert "records" in db.view_names()
        idx = record_index(db, res.run_id)
        assert len(idx) == res.summary["records"] and {"城关镇:H1", "龙海镇:H1"} <= set(idx.record_key)
        members = _cluster(db, res.run_id, [("origin", "城关镇:H1")])
        keys = {m["record_key"] for m in members}
        assert {"城关镇:H1", "龙海镇:H1"} <= keys
        assert all(m["name"] for m in members) and all("*" in m["id_number"] for m in members if m["id_number"])
    finally:
        db.close()
