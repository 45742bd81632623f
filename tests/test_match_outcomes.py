"""`reconcile match` end to end on the hand-written tiny registries whose answers are known
(fixtures/samples/tiny_expected.json), plus the report contract."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from reconcile.match import MatchOptions, run_match

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
EXPECTED = json.loads((SAMPLES / "tiny_expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "tiny.db"
    res = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out,
                    MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    con = sqlite3.connect(out)
    yield res, con
    con.close()


def q(con, sql, *params) -> pd.DataFrame:
    return pd.read_sql(sql, con, params=params)


def test_cross_matches_are_exactly_the_known_pairs(tiny_report):
    res, con = tiny_report
    links = q(con, "SELECT origin_key, dest_key FROM links WHERE run_id=? AND source_pair='origin-dest' "
                   "AND decision='match'", res.run_id)
    assert set(zip(links.origin_key, links.dest_key)) == {tuple(p) for p in EXPECTED["pairs"]}
    for a, b in EXPECTED["not_pairs"]:
        assert (a, b) not in set(zip(links.origin_key, links.dest_key))


def test_outcomes(tiny_report):
    res, con = tiny_report
    rid = res.run_id
    assert set(q(con, "SELECT origin_key FROM untraceable WHERE run_id=?", rid).origin_key) == set(EXPECTED["untraceable"])
    crd = q(con, "SELECT origin_key, dest_key FROM cross_region_duplicates WHERE run_id=?", rid)
    assert set(zip(crd.origin_key, crd.dest_key)) == {tuple(p) for p in EXPECTED["cross_region_duplicates"]}
    assert set(q(con, "SELECT dest_key FROM unregistered WHERE run_id=?", rid).dest_key) == set(EXPECTED["unregistered"])
    traced = q(con, "SELECT origin_key, dest_key FROM traced WHERE run_id=?", rid)
    want_traced = {(k, v["dest"][0]) for k, v in EXPECTED["origin"].items() if v["outcome"] == "traced"}
    assert set(zip(traced.origin_key, traced.dest_key)) == want_traced


def test_id_conflicts_and_duplicates(tiny_report):
    res, con = tiny_report
    conf = q(con, "SELECT id_number, source, record_key FROM id_conflicts WHERE run_id=?", res.run_id)
    got = {i: set(zip(g.source, g.record_key)) for i, g in conf.groupby("id_number")}
    want = {c["id_number"]: {tuple(r) for r in c["records"]} for c in EXPECTED["id_conflicts"]}
    assert got == want
    dups = q(con, "SELECT source, cluster_id, record_key, survivor, scope FROM duplicates WHERE run_id=?", res.run_id)
    for source, clusters in EXPECTED["duplicates"].items():
        sub = dups[dups.source == source]
        got_clusters = {frozenset(g.record_key) for _, g in sub.groupby("cluster_id")}
        assert got_clusters == {frozenset(c) for c in clusters}
        for _, g in sub.groupby("cluster_id"):
            assert g.survivor.sum() == 1
    # the twins are two people: never one duplicate cluster
    twins = dups[dups.record_key.isin(["0006", "0007"]) & (dups.source == "origin")]
    assert twins.empty
    scope = dups[(dups.source == "origin")].scope.iloc[0]
    assert scope == "cross_unit"   # 0009/0010 live in two townships of one county


def test_report_contract(tiny_report):
    res, con = tiny_report
    run = q(con, "SELECT * FROM runs WHERE run_id=?", res.run_id).iloc[0]
    assert run.status == "complete" and run.command == "match"
    assert len(run.origin_sha256) == 64
    model = json.loads(run.model_json)["cross"]
    assert [f["field"] for f in model["fields"]] == ["id_number", "name", "birth_date", "sex", "hukou", "address", "residence"]
    # keys are TEXT: leading zeros survive
    keys = q(con, "SELECT record_key, typeof(record_key) t FROM records WHERE run_id=? AND source='origin'", res.run_id)
    assert set(keys.t) == {"text"} and "0001" in set(keys.record_key)
    # every link explains itself field by field
    ev = json.loads(q(con, "SELECT evidence_json FROM links WHERE run_id=? AND origin_key='0011'", res.run_id).evidence_json[0])
    assert ev["fields"]["name"]["level"] == "same_pinyin"
    assert ev["fields"]["id_number"]["level"] == "exact"
    assert set(ev["fields"]["name"]) >= {"left", "right", "level", "weight"}
    # blocking counts per pass and metrics per unit
    assert len(q(con, "SELECT * FROM blocking WHERE run_id=?", res.run_id)) >= 7
    units = q(con, "SELECT DISTINCT scope FROM metrics WHERE run_id=? AND scope LIKE 'unit:%'", res.run_id)
    assert "unit:永乐江镇" in set(units.scope)
    recall = q(con, "SELECT value FROM metrics WHERE run_id=? AND scope='all' AND metric='blocking_recall_estimate'", res.run_id)
    assert 0 < recall.value[0] <= 1


def test_second_run_is_added_and_the_first_kept(tmp_path):
    out = tmp_path / "r.db"
    opts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    a = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    b = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    assert b.run_id == a.run_id + 1
    con = sqlite3.connect(out)
    n = con.execute("SELECT run_id, count(*) FROM records GROUP BY run_id").fetchall()
    con.close()
    assert n == [(a.run_id, 25), (b.run_id, 25)]


def test_model_reused_from_an_earlier_run(tmp_path):
    out = tmp_path / "r.db"
    a = run_match(SAMPLES / "origin_gb18030.csv", SAMPLES / "dest_utf8bom.csv", out,
                  MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    b = run_match(SAMPLES / "origin_gb18030.csv", SAMPLES / "dest_utf8bom.csv", out,
                  MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}, model_from_run=a.run_id))
    con = sqlite3.connect(out)
    ma, mb = (json.loads(con.execute("SELECT model_json FROM runs WHERE run_id=?", (r,)).fetchone()[0])["cross"]
              for r in (a.run_id, b.run_id))
    con.close()
    assert ma["fields"] == mb["fields"] and ma["prior"] == mb["prior"]
    # the flow-status priors travel with the model: out-migrants are likelier found than residents
    assert ma["strata_column"] == "flow_status" and ma["strata"] == mb["strata"]
    assert ma["strata"]["out"]["prior"] > ma["strata"]["resident"]["prior"]
    assert a.summary["links_match"] == b.summary["links_match"]


def test_evidence_adds_up_to_the_match_weight(tmp_path):
    """prior + field weights + one_person = the stored weight, for every reported pair: the
    explanation a reviewer reads is the whole score."""
    out = tmp_path / "r.db"
    run_match(SAMPLES / "origin_gb18030.csv", SAMPLES / "dest_utf8bom.csv", out,
              MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    con = sqlite3.connect(out)
    rows = con.execute("SELECT match_weight, evidence_json FROM links WHERE source_pair='origin-dest'").fetchall()
    con.close()
    assert rows
    one = 0
    for w, ev in rows:
        e = json.loads(ev)
        total = e["prior"] + sum(f["weight"] for f in e["fields"].values()) + e.get("one_person", 0.0)
        assert total == pytest.approx(w, abs=0.01)
        one += "one_person" in e
    assert one > 0


def test_model_of_an_older_version_is_refused_with_a_clear_error(tmp_path):
    """A report written before the comparators changed (here: a model without the address and
    residence fields, as version 1 stored it) cannot lend its model: ConfigError, not a traceback."""
    from reconcile.errors import ConfigError

    out = tmp_path / "r.db"
    opts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    a = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    con = sqlite3.connect(out)
    model = json.loads(con.execute("SELECT model_json FROM runs WHERE run_id=?", (a.run_id,)).fetchone()[0])
    model["cross"]["fields"] = [f for f in model["cross"]["fields"] if f["field"] not in ("address", "residence")]
    con.execute("UPDATE runs SET model_json=? WHERE run_id=?", (json.dumps(model), a.run_id))
    con.commit()
    con.close()
    with pytest.raises(ConfigError) as err:
        run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out,
                  MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}, model_from_run=a.run_id))
    assert err.value.key == "match.model_incompatible" and err.value.exit_code == 2


def test_batch_evidence_equals_per_pair_evidence():
    import numpy as np

    from matchers.registry import default_comparators
    from reconcile.compare import column_arrays
    from reconcile.linkage import evidence_json, evidence_jsons, link
    from reconcile.match import load_side
    from reconcile.scoring import TermFrequencies

    o = load_side("origin", SAMPLES / "origin_gb18030.csv", {"key": "编号"})
    d = load_side("dest", SAMPLES / "dest_utf8bom.csv", {"key": "序号"})
    comps = default_comparators()
    lk = link(o.std, d.std, comps, tf=TermFrequencies.build(o.std, d.std))
    la, da = column_arrays(o.std, comps), column_arrays(d.std, comps)
    ks = np.arange(lk.li.size)
    assert ks.size > 100
    batch = evidence_jsons(ks, lk, comps, la, da)
    single = [json.loads(evidence_json(int(k), lk, comps, la, da)) for k in ks]
    assert [json.loads(b) for b in batch] == single
    # the very text json.dumps writes (the batch is put together from pieces)
    assert batch == [json.dumps(e, ensure_ascii=False) for e in single]
    assert any('"level": "missing"' in b for b in batch)
    assert any(" / " in b for b in batch)
    # a flag read only to go faster (k_id_excel) is not shown: the ID field shows the numbers
    # and their status, an Excel-shaped number as it is
    shown = [t for e in single for f in e["fields"].values() for t in (f["left"], f["right"])]
    assert not any("excel" in t.split(" / ") for t in shown)
    assert any(t.split(" / ")[1:2] == ["excel_damaged"] for t in shown)


def test_raw_row_kept_as_read(tiny_report):
    res, con = tiny_report
    raw = json.loads(q(con, "SELECT raw_json FROM records WHERE run_id=? AND source='dest' AND record_key='3'", res.run_id).raw_json[0])
    assert raw["身份证号"] == '="43283119581001001X"' and raw["姓名"] == "刘建国"


def test_learn_from_reviews_reestimates_m(tmp_path):
    from reconcile.report import open_report
    from reconcile.review.ledger import record_decision

    out = tmp_path / "r.db"
    opts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    first = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, opts)
    db = open_report(out)
    for o, d in EXPECTED["pairs"]:
        record_decision(db, o, d, "match", "李娟", run_id=first.run_id, channel="cli")
    db.conn.close()
    learn = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}, learn_from_reviews=True)
    second = run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", out, learn)
    con = sqlite3.connect(out)
    m1, m2 = (json.loads(con.execute("SELECT model_json FROM runs WHERE run_id=?", (r,)).fetchone()[0])["cross"]
              for r in (first.run_id, second.run_id))
    con.close()
    assert m2["trained_on"]["learned_from_reviews"] == len(EXPECTED["pairs"])
    assert m1["fields"] != m2["fields"]


def test_best_partner_is_the_highest_probability_then_the_first_pair():
    """match._best (untraceable / unregistered outcomes: each record's best partner) without a sort
    of every pair gives what the stable sort gives: the highest probability, on ties the first
    pair; records without pairs -1; probabilities with NaN take the sort."""
    import numpy as np

    from reconcile.match import _best

    def by_sort(a, b, prob, n):
        best, bestp = np.full(n, -1, dtype=np.int64), np.zeros(n)
        order = np.lexsort((-prob, a))
        first = np.r_[True, a[order][1:] != a[order][:-1]] if a.size else np.zeros(0, bool)
        sel = order[first]
        best[a[sel]], bestp[a[sel]] = b[sel], prob[sel]
        return best, bestp

    rng = np.random.default_rng(4)
    for m, n in ((0, 5), (1, 3), (5_000, 800), (60_000, 20_000)):
        a, b = rng.integers(0, n, m), rng.integers(0, 10 * n + 1, m)
        prob = np.round(rng.random(m), 2)          # many ties
        got, want = _best(a, b, prob, n), by_sort(a, b, prob, n)
        assert (got[0] == want[0]).all() and (got[1] == want[1]).all()
        assert (got[0] == -1).sum() == n - len(np.unique(a))
    a, b, prob = np.array([0, 0, 1, 1]), np.array([7, 8, 9, 6]), np.array([np.nan, 0.2, 0.5, 0.5])
    best, bestp = _best(a, b, prob, 3)
    assert best.tolist() == [8, 9, -1] and bestp[:2].tolist() == [0.2, 0.5]


def test_component_labels_are_the_union_finds():
    """cluster.component_labels (persons over both files, review-level groups) gives every node
    the smallest node of its component: UnionFind's labels, on random graphs with chains, stars,
    self-loops and repeated edges."""
    import numpy as np

    from reconcile.cluster import UnionFind, component_labels

    rng = np.random.default_rng(9)
    for n, m in ((1, 0), (6, 0), (50, 30), (2_000, 1_500), (20_000, 30_000)):
        a, b = rng.integers(0, n, m), rng.integers(0, n, m)
        if m:
            chain = np.arange(min(n, 300))
            a = np.concatenate([a, chain[1:], chain[:5]])
            b = np.concatenate([b, chain[:-1], chain[:5]])     # a long chain, and self-loops
        uf = UnionFind(n)
        for x, y in zip(a.tolist(), b.tolist()):
            uf.union(x, y)
        assert (component_labels(n, a, b) == uf.labels()).all()


def test_the_metrics_per_unit_count_the_outcome_tables(tmp_path):
    """The metrics per reporting unit (the bulletin's tables) count the rows of the outcome tables
    by the unit of their record (each record once): traced, untraceable, cross-region duplicates and records in
    duplicate clusters per unit of the origin, unregistered per unit of the destination."""
    out = tmp_path / "units.db"
    res = run_match(SAMPLES / "origin_gb18030.csv", SAMPLES / "dest_utf8bom.csv", out,
                    MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    con = sqlite3.connect(out)
    try:
        unit = {(s, k): u for s, k, u in con.execute("SELECT source, record_key, unit FROM records WHERE run_id=?",
                                                     (res.run_id,))}
        metrics = {(s, m): v for s, m, v in con.execute("SELECT scope, metric, value FROM metrics WHERE run_id=?",
                                                        (res.run_id,))}

        def per_unit(sql: str, source: str = "origin") -> dict[str, int]:
            keys = [r[0] for r in con.execute(sql, (res.run_id,))]
            counts: dict[str, int] = {}
            for k in keys:
                counts[unit[(source, k)]] = counts.get(unit[(source, k)], 0) + 1
            return counts

        expected = {
            "traced": per_unit("SELECT DISTINCT origin_key FROM traced WHERE run_id=?"),
            "untraceable": per_unit("SELECT origin_key FROM untraceable WHERE run_id=?"),
            "cross_region_duplicates": per_unit("SELECT DISTINCT origin_key FROM cross_region_duplicates WHERE run_id=?"),
            "duplicate_records": per_unit("SELECT record_key FROM duplicates WHERE run_id=? AND source='origin'"),
        }
        units = {s[len("unit:"):] for s, _ in metrics if s.startswith("unit:")}
        assert len(units) >= 2
        for name, counts in expected.items():
            assert sum(counts.values()) > 0, name
            for u in units:
                assert metrics[(f"unit:{u}", name)] == counts.get(u, 0), (name, u)
        unregistered = per_unit("SELECT dest_key FROM unregistered WHERE run_id=?", "dest")
        shown = {s[len("dest_unit:"):]: v for (s, m), v in metrics.items() if s.startswith("dest_unit:")}
        assert shown and shown == {u: n for u, n in unregistered.items() if u}
    finally:
        con.close()
