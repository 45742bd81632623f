"""Throughput of each field comparator on synthetic aligned pairs (one core).

    .venv/bin/python bench/comparators.py [--pairs 1000000] [--minority 0.05] [--latin 0.02]

Builds a pool of standardised records plus a corrupted copy of each (homophone, shape-alike
or dropped character, ID typo, month-only or shifted date, ...), then 20% true pairs
(record vs its copy) and 80% random pairs, and prints pairs/s per comparator, from CPU time
(``time.process_time``: robust when other jobs share the machine) and from wall time.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matchers.registry import default_comparators  # noqa: E402

SURNAMES = [("王", "wang"), ("李", "li"), ("张", "zhang"), ("章", "zhang"), ("刘", "liu"), ("陈", "chen"),
            ("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("曾", "zeng"),
            ("单", "shan"), ("欧阳", "ou yang")]
GIVEN = [("伟", "wei"), ("玮", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"),
         ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
         ("艳", "yan"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"),
         ("秀", "xiu"), ("霞", "xia"), ("己", "ji"), ("已", "yi"), ("小", "xiao"), ("晓", "xiao")]
MINORITY = [("买买提·艾力", "mai mai ti ai li"), ("阿卜杜热合曼·买买提明", "a bu du re he man mai mai ti ming"),
            ("古丽·艾山", "gu li ai shan"), ("麦麦提·吐尔逊", "mai mai ti tu er xun")]
COUNTIES = ["431022", "431023", "431002", "430104", "430111", "110105", "440305", "510107", "431000"]


def _id(rng: random.Random, region: str, birth: str) -> str:
    body = region + birth.replace("-", "") + f"{rng.randrange(1000):03d}"
    s = sum(int(c) * w for c, w in zip(body, (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)))
    return body + "10X98765432"[s % 11]


def make_record(rng: random.Random, minority: float, latin: float) -> dict[str, str]:
    r = rng.random()
    if r < minority:
        name, py = rng.choice(MINORITY)
        sur, giv, script = "", "", "han"
    else:
        (s, sp) = rng.choice(SURNAMES)
        given = [rng.choice(GIVEN) for _ in range(rng.choice([1, 2, 2]))]
        name, py = s + "".join(g[0] for g in given), " ".join([sp] + [g[1] for g in given])
        sur, giv, script = s, name[len(s):], "han"
        if r < minority + latin:
            toks = [sp.replace(" ", ""), "".join(g[1] for g in given)]
            name = " ".join(toks).upper()
            py, sur, giv, script = name.lower(), toks[0].upper(), toks[1].upper(), "latin"
    birth = f"{rng.randint(1940, 2010)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    region = rng.choice(COUNTIES)
    idc = _id(rng, region, birth)
    sex = rng.choice("MF")
    return {"id_clean": idc, "id_status": "valid", "name": name, "name_pinyin": py, "surname": sur, "given": giv,
            "name_script": script, "birth_date": birth, "birth_precision": "day", "id_birth_date": birth,
            "sex": sex, "id_sex": sex, "hukou_region": region}


def corrupt(rng: random.Random, rec: dict[str, str]) -> dict[str, str]:
    out = dict(rec)
    k = rng.randrange(8)
    if k == 0:
        p = rng.randrange(17)
        out["id_clean"] = rec["id_clean"][:p] + str((int(rec["id_clean"][p]) + 1) % 10) + rec["id_clean"][p + 1:]
        out["id_status"] = "bad_checksum"
    elif k == 1:
        out["id_clean"], out["id_status"] = "", "missing"
    elif k == 2 and rec["name_script"] == "han" and len(rec["name"]) > 2:
        out["name"] = rec["name"][:-1]
        out["given"] = rec["given"][:-1]
        out["name_pinyin"] = rec["name_pinyin"].rsplit(" ", 1)[0]
    elif k == 3:
        out["birth_date"] = rec["birth_date"][:7]
    elif k == 4:
        out["hukou_region"] = rec["hukou_region"][:4] + "23"
    elif k == 5:
        out["sex"] = ""
    return out


def build(n_pairs: int, pool: int, minority: float, latin: float, seed: int = 0) -> tuple[dict, dict]:
    rng = random.Random(seed)
    recs = [make_record(rng, minority, latin) for _ in range(pool)]
    copies = [corrupt(rng, r) for r in recs]
    cols = list(recs[0])
    a = {c: np.array([r[c] for r in recs], dtype=object) for c in cols}
    b = {c: np.array([r[c] for r in copies], dtype=object) for c in cols}
    nrng = np.random.default_rng(seed)
    li = nrng.integers(0, pool, n_pairs)
    true = nrng.random(n_pairs) < 0.2
    ri = np.where(true, li, nrng.integers(0, pool, n_pairs))
    left = {c: a[c][li] for c in cols}
    right = {c: np.where(true, b[c][ri], a[c][ri]) for c in cols}
    return left, right


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--pool", type=int, default=50_000)
    ap.add_argument("--minority", type=float, default=0.05, help="share of transliterated minority names")
    ap.add_argument("--latin", type=float, default=0.02, help="share of names in Latin letters")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    left, right = build(args.pairs, args.pool, args.minority, args.latin)
    print(f"{args.pairs:,} pairs, minority {args.minority:.0%}, latin {args.latin:.0%}; best of {args.repeat}")
    print(f"{'comparator':<12} {'cpu s':>7} {'pairs/s cpu':>13} {'pairs/s wall':>13}  level counts")
    total = total_wall = 0.0
    for comp in default_comparators():
        lcols = {c: left[c] for c in comp.columns}
        rcols = {c: right[c] for c in comp.columns}
        best = best_wall = float("inf")
        for _ in range(args.repeat):
            t0, w0 = time.process_time(), time.perf_counter()
            levels = comp.compare(lcols, rcols)
            best = min(best, time.process_time() - t0)
            best_wall = min(best_wall, time.perf_counter() - w0)
        total += best
        total_wall += best_wall
        counts = np.bincount(levels.astype(np.int64) + 1, minlength=len(comp.levels) + 1)
        shown = " ".join(f"{lab}={cnt}" for lab, cnt in zip(("missing",) + comp.levels, counts) if cnt)
        print(f"{comp.field:<12} {best:7.3f} {args.pairs / best:13,.0f} {args.pairs / best_wall:13,.0f}  {shown}")
    print(f"{'all':<12} {total:7.3f} {args.pairs / total:13,.0f} {args.pairs / total_wall:13,.0f}")


if __name__ == "__main__":
    main()
