"""Accuracy of `reconcile dedupe`: pairwise precision / recall / F1 of duplicate clusters.

Data: the origin registry of fixtures.generate (in-file duplicates: 2% of persons recorded twice,
40% of the second records in another township; twins, namesakes, 重号) at the default corruption
rate and at the dirty setting (every corruption 2.5x), and the three monthly exports of
fixtures.months (additions, edits, deletions, merge and split set-ups; truth = what the data of
that month shows). Each row also shows the naive rule (same normalised ID, else same name and
birth date) and, with --splink, Splink 5 dedupe_only on the same standardised records.

    python -m bench.dedupe_accuracy [--persons 20000] [--seed 1] [--months] [--splink]

Prints a table; not a unit test. Targets (issue 4): F1 >= 0.97 (default), >= 0.93 (dirty).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._metrics import cluster_pairwise_prf  # noqa: E402


def predicted_labels(db: Path, run_id: int) -> dict[str, str]:
    """record_key -> person ID of a dedupe run (a person is a predicted cluster)."""
    import sqlite3

    con = sqlite3.connect(db)
    rows = con.execute("SELECT record_key, person_id FROM person_records WHERE run_id = ?", (run_id,)).fetchall()
    con.close()
    return {k: p for k, p in rows}


def naive_labels(std: pd.DataFrame) -> dict[str, int]:
    """Same usable normalised ID, else exact name + full birth date (union of both rules)."""
    from reconcile.cluster import UnionFind
    from reconcile.fields import USABLE_ID_STATUSES

    n = len(std)
    uf = UnionFind(n)
    usable = std["id_status"].isin(USABLE_ID_STATUSES).to_numpy()
    for key in (np.where(usable, std["id_number"], ""),
                np.where(~usable & (std["birth_precision"] == "day") & (std["name"] != ""),
                         std["name"] + "|" + std["birth_date"], "")):
        s = pd.Series(key)
        s = s[s != ""]
        for _, idx in s.groupby(s).groups.items():
            idx = list(idx)
            for other in idx[1:]:
                uf.union(idx[0], other)
    labels = uf.labels()
    return dict(zip(std["record_key"].astype(str), labels.tolist()))


def evaluate(name: str, csv: Path, truth: dict[str, str], work: Path, splink: bool) -> list[dict]:
    from reconcile.dedupe import DedupeOptions, run_dedupe
    from reconcile.match import load_side

    db = work / f"{name}.db"
    t0 = time.perf_counter()
    res = run_dedupe([csv], db, DedupeOptions(load={"key": "编号"}, full=True))
    secs = time.perf_counter() - t0
    pred = predicted_labels(db, res.run_id)
    rows = []
    p, r, f = cluster_pairwise_prf(pred, truth)
    rows.append({"data": name, "method": "reconcile dedupe", "records": len(truth), "P": p, "R": r, "F1": f,
                 "seconds": secs})
    side = load_side("origin", csv, {"key": "编号"})
    t0 = time.perf_counter()
    nv = naive_labels(side.std)
    secs = time.perf_counter() - t0
    p, r, f = cluster_pairwise_prf(nv, truth)
    rows.append({"data": name, "method": "naive (ID, else name+birth)", "records": len(truth), "P": p, "R": r,
                 "F1": f, "seconds": secs})
    if splink:
        try:
            from bench.splink_peer import splink_dedupe
        except ImportError as exc:
            rows.append({"data": name, "method": f"splink (not run: {exc.name})"})
        else:
            labels, secs = splink_dedupe(side.std)
            sp = dict(zip(side.std["record_key"].astype(str), labels.tolist()))
            p, r, f = cluster_pairwise_prf(sp, truth)
            rows.append({"data": name, "method": "splink 5 dedupe_only", "records": len(truth), "P": p, "R": r,
                         "F1": f, "seconds": secs})
    return rows


def generated(persons: int, seed: int, dirt: float, work: Path) -> tuple[Path, dict[str, str]]:
    import fixtures.generate as gm

    gen = gm.generate(persons, seed=seed, dirt=dirt)
    csv = work / f"origin_{persons}_{seed}_{dirt}.csv"
    gm._write_csv(gen.origin, csv, "gb18030")
    t = gen.truth[gen.truth["source"] == "origin"]
    return csv, dict(zip(t["record_key"].astype(str), t["person_id"].astype(str)))


def monthly(persons: int, seed: int, dirt: float, work: Path) -> list[tuple[str, Path, dict[str, str]]]:
    from fixtures.months import generate_months, write_months

    exports = generate_months(persons, seed=seed, months=3, dirt=dirt)
    write_months(exports, work / f"months_{dirt}")
    out = []
    for e in exports:
        csv = work / f"months_{dirt}" / f"month_{e.month:02d}.csv"
        out.append((f"month {e.month} (dirt {dirt})", csv,
                    dict(zip(e.truth["record_key"].astype(str), e.truth["apparent_person_id"].astype(str)))))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--months", action="store_true", help="also the three monthly exports")
    ap.add_argument("--splink", action="store_true", help="also Splink 5 dedupe_only (bench extra)")
    args = ap.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for dirt in (1.0, 2.5):
            csv, truth = generated(args.persons, args.seed, dirt, work)
            rows += evaluate(f"generated dirt {dirt}", csv, truth, work, args.splink)
            if args.months:
                for name, mcsv, mtruth in monthly(args.persons, args.seed, dirt, work):
                    rows += evaluate(name, mcsv, mtruth, work, False)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
