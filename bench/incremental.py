"""Incremental vs full `reconcile dedupe` on a large pooled registry.

Data: ``--counties`` county exports of fixtures.generate (郴州's counties; record keys restart in
every file, so keys are qualified by file), ``--persons`` persons each (1,000,000 records in all
by default). Month B has ``--changes`` new or changed records: 70% edited (an address group, a
flow status or a given-name character), 30% added (people held back from month A); and 30% of
``--changes`` records of month A deleted.

1. full run on month A into a new database (the state the next runs start from);
2. incremental run on month B against a copy of that database;
3. full run on month B (``--full``, retraining u and the prior) against another copy;
4. full run on month B with the previous run's model (``--full --model 1``): the run the
   incremental one must equal; their summaries are compared.

    python -m bench.incremental [--counties 10] [--persons 98000] [--changes 10000]

Prints the times (and peak memory of this process). Develop with --persons 5000.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"

COUNTIES = ("431002", "431003", "431021", "431022", "431023", "431024", "431025", "431026", "431027", "431028",
            "431081")


def make_data(counties: int, persons: int, changes: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Month A and month B exports per county (cached under bench/out)."""
    import fixtures.generate as gm

    d = OUT / f"incr2_{counties}x{persons}_{changes}_{seed}"
    a_paths = [d / "A" / f"county_{c}.csv" for c in COUNTIES[:counties]]
    b_paths = [d / "B" / f"county_{c}.csv" for c in COUNTIES[:counties]]
    if all(p.exists() for p in a_paths + b_paths):
        return a_paths, b_paths
    (d / "A").mkdir(parents=True, exist_ok=True)
    (d / "B").mkdir(parents=True, exist_ok=True)
    per = changes // counties
    n_add = int(per * 0.3)              # new and changed records: 30% added, 70% edited ...
    n_edit = per - n_add
    n_del = int(per * 0.3)              # ... and as many deletions again as additions
    rnd = random.Random(seed)
    for k, code in enumerate(COUNTIES[:counties]):
        t0 = time.perf_counter()
        gen = gm.generate(persons + n_add, seed=seed * 100 + k, origin_county=code)
        reg = gen.origin.copy()
        hold = reg.sample(n=n_add, random_state=seed + k).index
        month_a = reg.drop(index=hold)
        month_b = month_a.copy()
        dels = month_b.sample(n=n_del, random_state=seed + 7 * k).index
        month_b = month_b.drop(index=dels)
        edits = month_b.sample(n=n_edit, random_state=seed + 11 * k).index
        for i in edits:
            what = rnd.choice(("address", "flow", "name"))
            if what == "address":
                month_b.at[i, "户籍地址"] = month_b.at[i, "户籍地址"] + f"{rnd.randint(1, 12)}组"
            elif what == "flow":
                month_b.at[i, "流动状态"] = "常住" if month_b.at[i, "流动状态"] == "流出" else "流出"
            else:                              # a corrected given-name character
                name = month_b.at[i, "姓名"]
                month_b.at[i, "姓名"] = name[:-1] + ("华" if name[-1:] != "华" else "伟")
        month_b = pd.concat([month_b, reg.loc[hold]])
        gm._write_csv(month_a, a_paths[k], "gb18030")
        gm._write_csv(month_b, b_paths[k], "gb18030")
        print(f"county {code}: {len(month_a)} -> {len(month_b)} records ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr)
    return a_paths, b_paths


CPU: dict[str, float] = {}


def timed(label: str, fn):
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    CPU[label] = cpu
    print(f"{label}: {secs:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
    return res, secs


def main(argv: list[str] | None = None) -> int:
    # import everything a run imports lazily now: others edit this working tree during a long run
    import reconcile.compare, reconcile.dates, reconcile.divisions, reconcile.fingerprint  # noqa: F401,E401
    import reconcile.keys, reconcile.loading, reconcile.match, reconcile.persons  # noqa: F401,E401
    import reconcile.review.ledger, reconcile.standardise, reconcile.incremental, reconcile.record_store  # noqa: F401,E401
    from reconcile.dedupe import DedupeOptions, run_dedupe

    from bench._data import peak_rss_mb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counties", type=int, default=10)
    ap.add_argument("--persons", type=int, default=98_000, help="persons per county")
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the databases under bench/out")
    ap.add_argument("--base", type=Path, help="reuse this month-A database (made by --keep) instead of step 1")
    ap.add_argument("--runs", default="incr,full,fixed",
                    help="which month-B runs: incr, full (--full), fixed (--full --model 1)")
    args = ap.parse_args(argv)
    which = set(args.runs.split(","))
    a_paths, b_paths = make_data(args.counties, args.persons, args.changes, args.seed)
    work = OUT / f"incr_run_{args.counties}x{args.persons}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    opts = dict(load={"key": "编号"})
    base = work / "base.db"
    if args.base:
        shutil.copy(args.base, base)
        first_run, t_first = 1, None
    else:
        r1, t_first = timed("full run, month A (new database)", lambda: run_dedupe(a_paths, base, DedupeOptions(**opts)))
        first_run = r1.run_id
    runs = {"incr": ("incremental run, month B", DedupeOptions(**opts)),
            "full": ("full run, month B (--full)", DedupeOptions(full=True, **opts)),
            "fixed": ("full run, month B (--full --model 1)", DedupeOptions(full=True, model_from_run=first_run, **opts))}
    res: dict[str, tuple] = {}
    for name, (label, o) in runs.items():
        if name in which:
            shutil.copy(base, work / f"{name}.db")
            res[name] = timed(label, lambda: run_dedupe(b_paths, work / f"{name}.db", o))
    report: dict = {"first_full_s": None if t_first is None else round(t_first, 1)}
    for name, (r, secs) in res.items():
        report[f"{name}_s"] = round(secs, 1)
        report[f"{name}_cpu_s"] = round(CPU[runs[name][0]], 1)
        report[f"{name}_timings"] = {k: round(v, 2) for k, v in r.timings.items()}
    if "incr" in res:
        r_inc = res["incr"][0]
        report.update({"records_B": r_inc.summary["records"],
                       "changed_records": r_inc.summary["work"].get("changed_records"),
                       "pairs": r_inc.summary["candidate_pairs"], "reused_pairs": r_inc.summary["work"].get("reused_pairs"),
                       "compared_pairs": r_inc.summary["work"].get("compared_pairs")})
        for name in ("full", "fixed"):
            if name in res:
                report[f"incremental_share_of_{name}"] = round(res["incr"][1] / res[name][1], 4)
    if "incr" in res and "fixed" in res:
        skip = {"mode", "work"}
        report["incremental_equals_full_fixed_model"] = (
            {k: v for k, v in res["incr"][0].summary.items() if k not in skip}
            == {k: v for k, v in res["fixed"][0].summary.items() if k not in skip})
    report["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.keep:
        shutil.copy(base, OUT / f"incr_base_{args.counties}x{args.persons}.db")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
