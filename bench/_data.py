"""Generated registries for the speed benchmarks, cached under bench/out/ by size and seed."""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"


def registries(persons: int, seed: int = 11, dirt: float = 1.0) -> dict[str, Path]:
    """origin.csv / dest.csv / truth.csv for ``persons`` origin persons (generated once, then reused)."""
    import fixtures.generate as gm

    d = OUT / f"gen_{persons}_{seed}_{dirt}"
    paths = {"origin": d / "origin.csv", "dest": d / "dest.csv", "truth": d / "truth.csv"}
    if all(p.exists() for p in paths.values()):
        return paths
    t0 = time.perf_counter()
    gen = gm.generate(persons, seed=seed, dirt=dirt)
    written = gm.write(gen, d)
    print(f"generated {persons} persons in {time.perf_counter() - t0:.1f} s -> {d}", file=sys.stderr)
    return {k: Path(v) for k, v in written.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_peak_rss_mb() -> float:
    """Peak resident memory of the largest finished child process (reconcile.parallel's worker
    loading the origin). It ran beside this process, so the machine's peak is at most the sum."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
