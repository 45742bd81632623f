"""How much do reviewers' decisions improve the model (`match --learn-from-reviews`)?

    python bench/learn_from_reviews.py --persons 5000 --decisions 300

Runs match, simulates a reviewer who decides N pairs correctly (the review pairs first, then
random model matches) using the generator's truth, then runs match again with and without
--learn-from-reviews. F1 is measured on the pairs nobody decided, so the gain is the model's,
not the decisions' own.
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def f1(pred: set, truth: set) -> tuple[float, float, float]:
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--persons", type=int, default=5000)
    ap.add_argument("--decisions", type=int, default=300)
    ap.add_argument("--dirt", type=float, default=2.5)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    import fixtures.generate as gm
    from reconcile.match import MatchOptions, run_match
    from reconcile.report import open_report
    from reconcile.review.ledger import record_decision

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gen = gm.generate(args.persons, seed=args.seed, dirt=args.dirt)
        paths = gm.write(gen, tmp)
        truth = {(str(a), str(b)) for a, b in gm.truth_pairs(gen.truth)}
        opts = lambda learn: MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}, learn_from_reviews=learn)
        base_db = tmp / "base.db"
        first = run_match(paths["origin"], paths["dest"], base_db, opts(False))
        con = sqlite3.connect(base_db)
        links = pd.read_sql("SELECT origin_key, dest_key, decision, match_probability FROM links "
                            "WHERE run_id=? AND source_pair='origin-dest'", con, params=(first.run_id,))
        con.close()
        rng = np.random.default_rng(0)
        review = links[links.decision == "review"]
        matches = links[links.decision == "match"].sample(frac=1, random_state=0)
        chosen = pd.concat([review, matches]).head(args.decisions)
        decided = set()
        for db_path in (tmp / "with.db", tmp / "without.db"):
            db_path.write_bytes(base_db.read_bytes())
            db = open_report(db_path)
            for r in chosen.itertuples():
                ok = (r.origin_key, r.dest_key) in truth
                record_decision(db, r.origin_key, r.dest_key, "match" if ok else "non_match", "bench",
                                run_id=first.run_id, channel="cli")
                decided.add((r.origin_key, r.dest_key))
            db.conn.close()
        rows = []
        for name, learn in (("without", False), ("with", True)):
            res = run_match(paths["origin"], paths["dest"], tmp / f"{name}.db", opts(learn))
            con = sqlite3.connect(tmp / f"{name}.db")
            got = pd.read_sql("SELECT origin_key, dest_key FROM links WHERE run_id=? AND source_pair='origin-dest' "
                              "AND decision='match'", con, params=(res.run_id,))
            con.close()
            pred = set(zip(got.origin_key, got.dest_key)) - decided
            p, r, f = f1(pred, truth - decided)
            rows.append({"learn_from_reviews": name, "decided": len(decided), "P": p, "R": r, "F1": f})
        print(pd.DataFrame(rows).to_string(index=False, float_format="{:.4f}".format))
        del rng
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
