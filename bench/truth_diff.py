"""What `reconcile match` gets wrong on generated registries, grouped by evidence pattern.

    python bench/truth_diff.py --persons 20000 --dirt 2.5 [--seed 7] [--threshold 0.9] [--show 10]

Generates (once, cached under bench/out/) the fixtures generator's registries with ground truth,
runs `match`, and prints: link / untraceable scores, the missed and the false pairs counted by
their per-field levels (the evidence pattern), a few examples of each with their probability,
and the false untraceables by cause. This is the tool to look at before changing the matcher;
bench/accuracy.py prints the official table. ID numbers are masked; the data is synthetic.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._data import OUT  # noqa: E402


def _levels(evidence: str) -> tuple[str, ...]:
    return tuple(v["level"] for v in json.loads(evidence)["fields"].values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--dirt", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threshold", type=float, default=None, help="match threshold (default: the product's)")
    ap.add_argument("--show", type=int, default=8, help="examples per list")
    args = ap.parse_args()

    import pandas as pd

    import fixtures.generate as gm
    from reconcile.match import MatchOptions, run_match
    from reconcile.privacy import mask_id

    d = OUT / f"truth_{args.persons}_{args.seed}_{args.dirt}"
    if not (d / "origin.csv").exists():
        gen = gm.generate(args.persons, seed=args.seed, dirt=args.dirt)
        gm.write(gen, d)
        gen.truth.to_pickle(d / "truth.pkl")
        pd.to_pickle(({(str(a), str(b)) for a, b in gm.truth_pairs(gen.truth)},
                      {str(k) for k in gm.truth_untraceable(gen)}), d / "sets.pkl")
    true_pairs, true_untr = pd.read_pickle(d / "sets.pkl")
    db = d / "r.db"
    db.unlink(missing_ok=True)
    opts = MatchOptions(origin={"key": "编号"}, dest={"key": "序号"})
    if args.threshold is not None:
        opts.match_threshold = args.threshold
    run_match(d / "origin.csv", d / "dest.csv", db, opts)

    con = sqlite3.connect(db)
    links = pd.read_sql("SELECT origin_key, dest_key, match_probability AS p, decision, evidence_json "
                        "FROM links WHERE source_pair = 'origin-dest'", con)
    untr = set(pd.read_sql("SELECT origin_key FROM untraceable", con).origin_key)
    con.close()
    by_pair = {(r.origin_key, r.dest_key): r for r in links.itertuples()}
    pred = {k for k, r in by_pair.items() if r.decision == "match"}
    tp = len(pred & true_pairs)
    p, r = tp / max(len(pred), 1), tp / max(len(true_pairs), 1)
    print(f"link P {p:.4f} R {r:.4f} F1 {2 * p * r / max(p + r, 1e-12):.4f}   "
          f"untraceable P {len(untr & true_untr) / max(len(untr), 1):.4f} R {len(untr & true_untr) / max(len(true_untr), 1):.4f}")

    origin = pd.read_csv(d / "origin.csv", dtype=str, keep_default_na=False, encoding="gb18030").set_index("编号")
    dest = pd.read_csv(d / "dest.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig").set_index("序号")

    def show(row: pd.Series) -> str:
        return " | ".join(mask_id(v) if v.replace("x", "").replace("X", "").isdigit() and len(v) >= 15 else v
                          for v in row.values[:5])

    for title, pairs in (("missed pairs", sorted(true_pairs - pred)), ("false pairs", sorted(pred - true_pairs))):
        patterns = Counter("not scored" if k not in by_pair else _levels(by_pair[k].evidence_json) for k in pairs)
        print(f"\n{title}: {len(pairs)}")
        for pat, n in patterns.most_common(10):
            print(f"  {n:4d}  {pat}")
        for k in pairs[: args.show]:
            prob = by_pair[k].p if k in by_pair else None
            print(f"    {prob if prob is None else round(prob, 3)}  {show(origin.loc[k[0]])}  ||  {show(dest.loc[k[1]])}")

    dest_of = defaultdict(list)
    for a, b in true_pairs:
        dest_of[a].append(b)
    matched_dest = {b for _, b in pred}
    causes = Counter()
    for k in sorted(untr - true_untr):
        rows = [by_pair.get((k, b)) for b in dest_of.get(k, [])]
        cause = "review" if any(x is not None for x in rows) else "not scored"
        if any(b in matched_dest for b in dest_of.get(k, [])):
            cause += "; its destination record matched another origin record"
        causes[cause] += 1
    print(f"\nfalse untraceable: {len(untr - true_untr)} of {len(untr)}")
    for cause, n in causes.most_common():
        print(f"  {n:4d}  {cause}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
