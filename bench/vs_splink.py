"""reconcile against Splink 5 (DuckDB) on the same generated registries, in the same run.

    python bench/vs_splink.py --size 100000 [--rounds 1] [--budget SECONDS] [--tools reconcile-link,splink]
                              [--splink-memory 8GB]

Both tools get the same standardised input columns (our loader and standardiser, see
bench/splink_peer.py); the runs alternate (reconcile, Splink, reconcile, ...) so background load
hits both alike. Each run is a fresh process, so peak RSS is per tool. Prints wall time, CPU time,
peak RSS and link F1 side by side, and the time ratios. The Splink run links the two files only
(load, block, train, predict; no within-file duplicates, no outcomes, nothing written), so
reconcile runs twice: end to end as `match` does by default, and "reconcile-link" without the
within-file linkages (still deciding, building the outcomes and writing the report).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import json, resource, sys, time, pickle
sys.path.insert(0, {root!r})
from bench.scale import truth_sets
pairs, untr, paths = truth_sets({size}, {seed}, 1.0)
tool = {tool!r}
t0 = time.perf_counter()
if tool.startswith("reconcile"):
    import sqlite3
    from reconcile.match import MatchOptions, run_match
    out = {root!r} + "/bench/out/vs_{size}.db"
    import os
    if os.path.exists(out): os.remove(out)
    # "reconcile-link": the work Splink does here (no within-file duplicates), report still written
    res = run_match(paths["origin"], paths["dest"], out, MatchOptions(origin={{"key": "编号"}}, dest={{"key": "序号"}},
                                                                     within_file=(tool == "reconcile")))
    con = sqlite3.connect(out)
    got = set(con.execute("SELECT origin_key, dest_key FROM links WHERE run_id=? AND source_pair='origin-dest' AND decision='match'", (res.run_id,)).fetchall())
else:
    from reconcile.match import load_side
    from bench.splink_peer import splink_link
    o = load_side("origin", paths["origin"], {{"key": "编号"}})
    d = load_side("dest", paths["dest"], {{"key": "序号"}})
    r = splink_link(o.std, d.std, threshold=0.9, count_comparisons=False, unidentified_only=True,
                    memory_limit={memory!r})
    ok, dk = o.std.record_key.to_numpy(), d.std.record_key.to_numpy()
    got = set(zip(ok[r.pairs.left_pos.to_numpy()], dk[r.pairs.right_pos.to_numpy()]))
wall = time.perf_counter() - t0
tp = len(got & pairs); p = tp / max(len(got), 1); rc = tp / max(len(pairs), 1)
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)   # reconcile's loading worker
print(json.dumps({{"tool": tool, "wall": wall, "rss_mb": me.ru_maxrss / 1024, "worker_rss_mb": kids.ru_maxrss / 1024,
                  "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,   # DuckDB's threads included
                  "f1": 2 * p * rc / (p + rc) if p + rc else 0.0}}))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--budget", type=float, default=None, help="seconds each run may take before it is stopped")
    ap.add_argument("--splink-memory", default=None,
                    help="DuckDB memory_limit for Splink, e.g. 8GB (default: DuckDB's, 80%% of RAM; at "
                         "1,000,000 that and the loaded frames exceeded 24 GB)")
    ap.add_argument("--tools", default="reconcile,reconcile-link,splink",
                    help="which runs, comma-separated (at 1,000,000 the end-to-end run is bench/scale.py's)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.scale import truth_sets

    truth_sets(args.size, args.seed, 1.0)   # generate once, outside the timings
    rows = []
    for _ in range(args.rounds):
        for tool in [t.strip() for t in args.tools.split(",") if t.strip()]:
            code = CHILD.format(root=str(ROOT), size=args.size, seed=args.seed, tool=tool, memory=args.splink_memory)
            try:
                r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=args.budget)
            except subprocess.TimeoutExpired:
                print(f"{tool} stopped: over the {args.budget:.0f} s budget", file=sys.stderr)
                continue
            if r.returncode != 0:
                print(f"{tool} failed:\n{r.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    for row in rows:
        worker = f" (+ worker {row['worker_rss_mb']:.0f} MB)" if row.get("worker_rss_mb") else ""
        print(f"{row['tool']:14s} wall {row['wall']:8.1f} s  cpu {row['cpu']:8.1f} s  peak RSS {row['rss_mb']:7.0f} MB"
              f"{worker}  link F1 {row['f1']:.4f}")
    by = {}
    for row in rows:
        by.setdefault(row["tool"], []).append(row["wall"])
    for mine in ("reconcile", "reconcile-link"):
        if mine in by and "splink" in by:
            print(f"time ratio splink / {mine}: {min(by['splink']) / min(by[mine]):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
