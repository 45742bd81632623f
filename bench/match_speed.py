"""`reconcile match` end to end (load to report written) on generated registries.

    python bench/match_speed.py --size 100000

Prints wall time, time per stage, candidate pairs, pairs per second and peak RSS.
"""
from __future__ import annotations

import argparse
import time

from _data import OUT, peak_rss_mb, registries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=100_000, help="origin persons (dest is about 1.8x)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    paths = registries(args.size, args.seed)
    from reconcile.match import MatchOptions, run_match

    out = OUT / f"match_{args.size}.db"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = run_match(paths["origin"], paths["dest"], out, MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    secs = time.perf_counter() - t0
    s = res.summary
    print(f"match {s['origin_records']} x {s['dest_records']} records: {secs:.1f} s end to end, "
          f"peak RSS {peak_rss_mb():.0f} MB")
    print(f"  candidate pairs {s['candidate_pairs']}, {s['candidate_pairs'] / secs:,.0f} pairs/s overall")
    print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))
    print(f"  matches {s['links_match']}, review {s['links_review']}, untraceable {s['untraceable']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
