"""Small synthetic *standardised* registries (the shape reconcile.standardise produces) with truth.

Used by tests/test_splink_peer.py until the standardiser and fixtures generator are wired to the
bench; hand-built so the Splink peer can be exercised without them. Corruptions are the common
ones in the hard-case list: homophone characters, one-digit ID typos and adjacent swaps, missing
IDs, month-precision birth dates, a digit typo in the date, missing hukou, and namesakes (same name,
often same birth year, different person).
"""
from __future__ import annotations

import random

import pandas as pd

from reconcile.fields import STANDARD_COLUMNS
from reconcile.keys import add_keys

SURNAMES = [
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"),
    ("罗", "luo"), ("高", "gao"), ("欧阳", "ou yang"),
]
GIVEN = [
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("秀", "xiu"), ("英", "ying"), ("敏", "min"),
    ("静", "jing"), ("丽", "li"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"),
    ("勇", "yong"), ("艳", "yan"), ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"),
    ("超", "chao"), ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂", "gui"), ("华", "hua"),
    ("建", "jian"), ("国", "guo"), ("红", "hong"), ("玉", "yu"), ("兰", "lan"), ("文", "wen"),
    ("海", "hai"), ("燕", "yan"), ("鹏", "peng"), ("飞", "fei"), ("辉", "hui"), ("波", "bo"),
    ("宇", "yu"), ("浩", "hao"), ("婷", "ting"), ("雪", "xue"),
]
HOMOPHONE = {"伟": "玮", "静": "晶", "丽": "莉", "明": "铭", "华": "桦", "红": "虹", "燕": "艳",
             "军": "君", "平": "萍", "文": "雯", "海": "凯", "玉": "钰", "英": "瑛", "波": "博"}
HOMOPHONE_PY = {"凯": "kai", "博": "bo"}   # the two near-homophones are not same-pinyin
COUNTIES = ["431028", "431021", "431022", "430102", "440305", "440106", "110105", "320583", "330106", "510107"]
_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_CHECK = "10X98765432"


def check_char(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _W)) % 11]


def _person(rnd: random.Random, county: str | None = None) -> dict:
    sur, sur_py = rnd.choice(SURNAMES)
    chars = [rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2, 2)))]
    given = "".join(c for c, _ in chars)
    given_py = " ".join(p for _, p in chars)
    y, m, d = rnd.randint(1940, 2015), rnd.randint(1, 12), rnd.randint(1, 28)
    male = rnd.random() < 0.5
    county = county or rnd.choice(COUNTIES)
    seq = rnd.randint(0, 99) * 10 + (rnd.choice((1, 3, 5, 7, 9)) if male else rnd.choice((0, 2, 4, 6, 8)))
    first17 = f"{county}{y:04d}{m:02d}{d:02d}{seq:03d}"
    return {
        "name": sur + given, "surname": sur, "given": given, "name_pinyin": f"{sur_py} {given_py}",
        "sex": "M" if male else "F", "birth": f"{y:04d}-{m:02d}-{d:02d}", "id": first17 + check_char(first17),
        "hukou": county,
    }


def _record(p: dict, key: str, rnd: random.Random | None = None, dirt: float = 0.0) -> dict:
    """A standardised row for person p; with dirt > 0, apply the usual corruptions."""
    name, py, given = p["name"], p["name_pinyin"], p["given"]
    idc, birth, prec, hukou, sex = p["id"], p["birth"], "day", p["hukou"], p["sex"]
    if rnd is not None and dirt > 0:
        r = rnd.random
        if r() < 0.10 * dirt and any(c in HOMOPHONE for c in given):
            c = next(c for c in given if c in HOMOPHONE)
            h = HOMOPHONE[c]
            given = given.replace(c, h, 1)
            name = p["surname"] + given
            if h in HOMOPHONE_PY:
                sur_syll = len(p["surname"])
                syl = py.split()
                idx = sur_syll + p["given"].index(c)
                syl[idx] = HOMOPHONE_PY[h]
                py = " ".join(syl)
        u = r()
        if u < 0.06 * dirt:
            i = rnd.randrange(6, 17)
            idc = idc[:i] + str((int(idc[i]) + rnd.randint(1, 9)) % 10) + idc[i + 1:]
        elif u < 0.09 * dirt:
            i = rnd.randrange(6, 16)
            idc = idc[:i] + idc[i + 1] + idc[i] + idc[i + 2:]
        elif u < 0.15 * dirt:
            idc = ""
        u = r()
        if u < 0.05 * dirt:
            birth, prec = birth[:7], "month"
        elif u < 0.07 * dirt:
            birth = birth[:9] + str((int(birth[9]) + 1) % 10)
        if r() < 0.04 * dirt:
            hukou = ""
        if r() < 0.02 * dirt:
            sex = ""
    row = {c: "" for c in STANDARD_COLUMNS}
    row.update({
        "record_key": key, "name": name, "name_raw": name, "name_script": "han",
        "name_traditional": False, "name_minority": False, "name_pinyin": py,
        "surname": p["surname"], "given": given, "sex": sex, "sex_conflict": False,
        "birth_date": birth, "birth_precision": prec, "birth_status": "ok",
        "id_number": idc, "id_raw": idc, "id_clean": idc, "id_status": "valid" if idc else "missing",
        "id_birth_date": f"{idc[6:10]}-{idc[10:12]}-{idc[12:14]}" if idc else "",
        "id_sex": ("M" if int(idc[16]) % 2 else "F") if idc else "",
        "id_region": idc[:6] if idc else "", "hukou_region": hukou, "birth_conflict": False,
    })
    return row


def make_registries(n_origin: int, *, seed: int = 1, dirt: float = 1.0, traced: float = 0.6,
                    n_dest_only: int | None = None, origin_dups: float = 0.0,
                    missing_id_share: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[int, int]], dict]:
    """(origin, dest, true cross pairs as (origin_pos, dest_pos), info) of standardised frames.

    info["origin_person"] gives each origin row's person number (duplicates share one).
    missing_id_share blanks IDs on both sides independently of dirt (to stress NULL handling).
    """
    rnd = random.Random(seed)
    people = [_person(rnd, county=rnd.choice(COUNTIES[:3])) for _ in range(n_origin)]
    # Namesakes: some destination-only people copy an origin person's name (and sometimes birth year).
    n_dest_only = n_origin // 2 if n_dest_only is None else n_dest_only
    others = []
    for _ in range(n_dest_only):
        q = _person(rnd)
        if people and rnd.random() < 0.1:
            src = rnd.choice(people)
            q.update({k: src[k] for k in ("name", "surname", "given", "name_pinyin")})
        others.append(q)
    origin_rows, origin_person = [], []
    for i, p in enumerate(people):
        origin_rows.append(_record(p, f"o{i}", rnd, dirt * 0.3))
        origin_person.append(i)
        if rnd.random() < origin_dups:
            origin_rows.append(_record(p, f"o{i}d", rnd, dirt))
            origin_person.append(i)
    dest_rows, dest_person = [], []
    for i, p in enumerate(people):
        if rnd.random() < traced:
            dest_rows.append(_record(p, f"d{len(dest_rows)}", rnd, dirt))
            dest_person.append(i)
    for q in others:
        dest_rows.append(_record(q, f"d{len(dest_rows)}", rnd, 0.0))
        dest_person.append(-1)
    # Shuffle the destination so positions carry no information.
    order = list(range(len(dest_rows)))
    rnd.shuffle(order)
    dest_rows = [dest_rows[k] for k in order]
    dest_person = [dest_person[k] for k in order]
    for rows in (origin_rows, dest_rows):
        for row in rows:
            if missing_id_share and rnd.random() < missing_id_share:
                row.update({"id_number": "", "id_raw": "", "id_clean": "", "id_status": "missing",
                            "id_birth_date": "", "id_sex": "", "id_region": ""})
    origin = add_keys(pd.DataFrame(origin_rows, columns=list(STANDARD_COLUMNS)))
    dest = add_keys(pd.DataFrame(dest_rows, columns=list(STANDARD_COLUMNS)))
    by_person: dict[int, list[int]] = {}
    for pos, person in enumerate(origin_person):
        by_person.setdefault(person, []).append(pos)
    truth = {(o, d) for d, person in enumerate(dest_person) if person >= 0 for o in by_person[person]}
    return origin, dest, truth, {"origin_person": origin_person, "dest_person": dest_person}
