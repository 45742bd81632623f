"""`reconcile match` end to end (load to report written) on generated registries.

    python bench/match_speed.py --size 100000
    python bench/match_speed.py --size 100000 --records 100000   # the issue's 100,000 x 100,000 records

Prints wall time, time per stage, candidate pairs, pairs per second and peak RSS.
"""
from __future__ import annotations

import argparse
import time

from _data import OUT, peak_rss_mb, registries, worker_peak_rss_mb


def _first_records(path, n: int):
    """A copy of a generated registry with its first ``n`` records (same encoding, same header)."""
    import pandas as pd

    out = path.parent / f"{path.stem}_first{n}{path.suffix}"
    if not out.exists():
        enc = "gb18030" if path.stem == "origin" else "utf-8-sig"   # as fixtures.generate writes them
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
        df.head(n).to_csv(out, index=False, encoding=enc)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=100_000, help="origin persons (dest is about 1.8x)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--records", type=int, default=0,
                    help="keep only the first N records of each file (origin and dest both N records)")
    args = ap.parse_args()
    paths = registries(args.size, args.seed)
    if args.records:
        paths = {side: _first_records(paths[side], args.records) for side in ("origin", "dest")}
    from reconcile.match import MatchOptions, run_match

    out = OUT / f"match_{args.size}.db"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = run_match(paths["origin"], paths["dest"], out, MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}))
    secs = time.perf_counter() - t0
    s = res.summary
    print(f"match {s['origin_records']} x {s['dest_records']} records: {secs:.1f} s end to end, "
          f"peak RSS {peak_rss_mb():.0f} MB (loading worker {worker_peak_rss_mb():.0f} MB)")
    print(f"  candidate pairs {s['candidate_pairs']}, {s['candidate_pairs'] / secs:,.0f} pairs/s overall")
    print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))
    print(f"  matches {s['links_match']}, review {s['links_review']}, untraceable {s['untraceable']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
