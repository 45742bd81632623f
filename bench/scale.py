"""`reconcile match` end to end at scale, with ground truth.

    python bench/scale.py --size 100000        # N origin persons (dest about 1.8 N records)

Prints wall time, peak RSS, time per stage, candidate pairs, pairs per second, link F1 and
untraceable precision. The registries are generated once per size and seed (bench/out/).
"""
from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._data import OUT, worker_peak_rss_mb  # noqa: E402


def truth_sets(persons: int, seed: int, dirt: float) -> tuple[set, set, dict]:
    """(true pairs, true untraceable keys, paths), generating and caching the registries."""
    import pickle

    import fixtures.generate as gm

    d = OUT / f"gen_{persons}_{seed}_{dirt}"
    cache = d / "truth_sets.pkl"
    paths = {"origin": d / "origin.csv", "dest": d / "dest.csv"}
    if cache.exists() and all(p.exists() for p in paths.values()):
        pairs, untr = pickle.loads(cache.read_bytes())
        return pairs, untr, paths
    gen = gm.generate(persons, seed=seed, dirt=dirt)
    gm.write(gen, d)
    pairs = {(str(a), str(b)) for a, b in gm.truth_pairs(gen.truth)}
    untr = {str(k) for k in gm.truth_untraceable(gen)}
    cache.write_bytes(pickle.dumps((pairs, untr)))
    return pairs, untr, paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--dirt", type=float, default=1.0)
    args = ap.parse_args()
    pairs, untr, paths = truth_sets(args.size, args.seed, args.dirt)
    from reconcile.match import MatchOptions, run_match

    out = OUT / f"scale_{args.size}.db"
    out.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    c0 = time.process_time()
    ch0 = os.times()
    seen: dict = {}
    res = run_match(paths["origin"], paths["dest"], out, MatchOptions(origin={"key": "编号"}, dest={"key": "序号"}),
                    progress=lambda stage, info: seen.__setitem__(stage, info))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ch1 = os.times()
    cpu_workers = (ch1.children_user + ch1.children_system) - (ch0.children_user + ch0.children_system)
    con = sqlite3.connect(out)
    got = set(con.execute("SELECT origin_key, dest_key FROM links WHERE run_id=? AND source_pair='origin-dest' "
                          "AND decision='match'", (res.run_id,)).fetchall())
    got_u = {r[0] for r in con.execute("SELECT origin_key FROM untraceable WHERE run_id=?", (res.run_id,))}
    con.close()
    tp = len(got & pairs)
    p, r = tp / max(len(got), 1), tp / max(len(pairs), 1)
    s = res.summary
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"size {args.size}: {s['origin_records']} x {s['dest_records']} records")
    print(f"  wall {wall:.1f} s, cpu {cpu:.1f} s (+ {cpu_workers:.1f} s in the loading worker), peak RSS {rss:.0f} MB "
          f"(loading worker {worker_peak_rss_mb():.0f} MB) "
          f"(load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after)")
    print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in res.timings.items()))
    within = seen.get("within", {})
    total = s["candidate_pairs"] + sum(within.values())
    print(f"  candidate pairs {s['candidate_pairs']:,} across, {within.get('origin', 0):,} within the origin, "
          f"{within.get('dest', 0):,} within the destination ({total / (s['origin_records'] + s['dest_records']):.2f} "
          f"per record; {total / wall:,.0f} pairs/s end to end)")
    print(f"  link P {p:.4f} R {r:.4f} F1 {2 * p * r / (p + r) if p + r else 0:.4f}; "
          f"untraceable precision {len(got_u & untr) / max(len(got_u), 1):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
