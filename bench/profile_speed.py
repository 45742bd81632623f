"""`reconcile profile` on a large registry: wall time and peak memory.

    python bench/profile_speed.py --rows 100000
"""
from __future__ import annotations

import argparse
import time

from _data import peak_rss_mb, registries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000, help="about this many origin rows")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    paths = registries(args.rows, args.seed)
    from reconcile.profile import profile_registry

    t0 = time.perf_counter()
    prof = profile_registry(paths["origin"], key="编号")
    secs = time.perf_counter() - t0
    print(f"profile: {prof['rows_read']} rows ({prof['encoding']}) in {secs:.2f} s, peak RSS {peak_rss_mb():.0f} MB")
    print(f"  id_entry_rate={prof['id_entry_rate']:.3f} id_accuracy={prof['id_accuracy']:.3f} "
          f"units={len(prof.get('units', {}))} duplicate_ids={prof['duplicate_ids_count']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
