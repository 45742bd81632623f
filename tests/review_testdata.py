"""Hand-made report runs for the review tests, written with reconcile.report.write_run and
following docs/report-schema.md (records, links with evidence_json, outcomes)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from reconcile.fingerprint import record_fingerprints
from reconcile.report import RunOutput, now_iso, open_report, write_run

_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id18(first17: str) -> str:
    """A GB 11643 ID number with its check character."""
    s = sum(int(c) * w for c, w in zip(first17, _W))
    return first17 + "10X98765432"[s % 11]


# key, name, sex, birth, id, hukou, residence, flow, unit
ORIGIN = [
    ("H001", "张伟", "M", "1990-03-07", id18("43102819900307123"), "湖南省郴州市嘉禾县城关镇东街12号", "", "out", "城关镇"),
    ("H002", "王芳", "F", "1985-11-02", id18("43102819851102204"), "湖南省郴州市嘉禾县珠泉镇南门村", "", "out", "珠泉镇"),
    ("H003", "欧阳晓棠", "F", "1992-06-18", id18("43102819920618302"), "湖南省郴州市嘉禾县城关镇西街3号", "", "out", "城关镇"),
    ("H004", "李娜", "F", "1988-01-25", id18("43102819880125402"), "湖南省郴州市嘉禾县珠泉镇北门", "", "out", "珠泉镇"),
    ("H005", "阿依古丽·买买提", "F", "1995-09-09", id18("65010219950909502"), "湖南省郴州市嘉禾县城关镇", "", "out", "城关镇"),
    ("H006", "刘洋", "M", "1979-12-30", id18("43102819791230611"), "湖南省郴州市嘉禾县行廊镇", "", "out", "行廊镇"),
    ("H007", '=HYPERLINK("http://x","y")', "M", "1991-04-01", id18("43102819910401711"), "湖南省郴州市嘉禾县行廊镇", "", "resident", "行廊镇"),
]
DEST = [
    ("D101", "章伟", "M", "1990-03-07", id18("43102819900307123"), "湖南嘉禾城关镇", "广东省深圳市宝安区", "", "宝安区"),
    ("D102", "王芳", "F", "1985-11-02", id18("43102819851102214"), "湖南嘉禾珠泉镇", "广东省东莞市长安镇", "", "长安镇"),
    ("D103", "欧阳晓堂", "F", "1992-06-18", "", "湖南嘉禾", "广东省深圳市龙岗区", "", "龙岗区"),
    ("D104", "李娜", "F", "1988-01-25", id18("43102819880125402"), "湖南嘉禾珠泉镇", "广东省广州市天河区", "", "天河区"),
    ("D105", "阿依古丽买买提", "F", "1995-09", id18("65010219950909502"), "湖南嘉禾", "广东省深圳市宝安区", "", "宝安区"),
    ("D106", "刘阳", "M", "1979-12-03", "", "湖南郴州", "广东省东莞市长安镇", "", "长安镇"),
    ("D107", '=HYPERLINK("http://x","y")', "M", "1991-04-01", id18("43102819910401711"), "湖南嘉禾行廊镇", "广东省广州市天河区", "", "天河区"),
    ("D108", "陈静", "F", "1993-02-14", id18("44030619930214821"), "广东深圳", "广东省深圳市宝安区", "", "宝安区"),
    ("D109", "陈静", "F", "1993-02-14", "", "广东深圳", "广东省深圳市宝安区西乡街道", "", "宝安区"),
]

# source_pair, left, right, probability, decision
LINKS = [
    ("origin-dest", "H001", "D101", 0.62, "review"),   # 张伟 / 章伟, same ID
    ("origin-dest", "H002", "D102", 0.91, "review"),   # one ID digit apart
    ("origin-dest", "H003", "D103", 0.55, "review"),   # 欧阳晓棠 / 欧阳晓堂, no ID on one side
    ("origin-dest", "H004", "D104", 0.999, "match"),
    ("origin-dest", "H005", "D105", 0.78, "review"),   # minority name without the dot
    ("origin-dest", "H006", "D106", 0.35, "review"),   # homophone, day/month-ish date
    ("origin-dest", "H007", "D107", 0.88, "review"),  # a formula-looking name on both sides
    ("dest-dest", "D108", "D109", 0.85, "review"),
]


def records_frame(rows: list[tuple], source: str, edits: dict[str, dict] | None = None) -> pd.DataFrame:
    out = []
    for i, (key, name, sex, birth, idn, hukou, residence, flow, unit) in enumerate(rows, start=2):
        rec = {
            "source": source, "record_key": key, "line": i, "name": name, "name_raw": name, "sex": sex,
            "birth_date": birth, "birth_precision": "month" if len(birth) == 7 else "day",
            "id_number": idn, "id_raw": idn, "id_clean": idn, "id_status": "valid" if idn else "missing",
            "hukou_address": hukou, "residence": residence, "flow_status": flow, "flow_place": "", "unit": unit,
        }
        rec.update((edits or {}).get(key, {}))
        header = ("编号", "姓名", "性别", "出生日期", "公民身份号码", "户籍地址") if source == "origin" else (
            "序号", "姓名", "性别", "出生年月", "身份证号", "户籍地")
        rec["raw_json"] = json.dumps(dict(zip(header, (key, rec["name"], "男" if sex == "M" else "女", birth, rec["id_raw"], hukou))), ensure_ascii=False)
        out.append(rec)
    df = pd.DataFrame(out)
    df["fingerprint"] = record_fingerprints(df).to_numpy()
    return df


def evidence_json(name_l: str, name_r: str, id_l: str, id_r: str, p: float) -> str:
    # Level labels as the comparators in matchers/ name them.
    same_id, no_id = id_l == id_r and bool(id_l), not (id_l and id_r)
    fields = {
        "id_number": {"left": id_l, "right": id_r, "level": "exact" if same_id else ("missing" if no_id else "typo"),
                      "weight": 12.5 if same_id else (0.0 if no_id else 6.1)},
        "name": {"left": name_l, "right": name_r, "level": "exact" if name_l == name_r else "same_pinyin", "weight": 4.2 if name_l == name_r else 1.8},
        "birth_date": {"left": "", "right": "", "level": "exact", "weight": 5.5},
        "sex": {"left": "", "right": "", "level": "equal", "weight": 0.9},
    }
    # one_person: the record's other candidates (reconcile.decide), here a lone candidate's gain
    return json.dumps({"prior": -14.0, "fields": fields, "tf": {}, "one_person": 2.0}, ensure_ascii=False)


def links_frame(origin: pd.DataFrame, dest: pd.DataFrame, links=LINKS) -> pd.DataFrame:
    recs = {("origin", k): r for k, r in origin.set_index("record_key").iterrows()}
    recs.update({("dest", k): r for k, r in dest.set_index("record_key").iterrows()})
    rows = []
    for sp, a, b, p, decision in links:
        ls, rs = sp.split("-")
        la, rb = recs[(ls, a)], recs[(rs, b)]
        rows.append({
            "source_pair": sp, "origin_key": a, "dest_key": b, "match_probability": p,
            "match_weight": math.log2(p / (1 - p)),
            "decision": decision, "decided_by": "model", "stale": 0,
            "evidence_json": evidence_json(la["name"], rb["name"], la["id_number"], rb["id_number"], p),
        })
    return pd.DataFrame(rows)


def build_report(path: Path, *, origin_edits: dict | None = None, dest_edits: dict | None = None, links=LINKS) -> int:
    """Write one run into the report at ``path`` (created if needed); returns its run_id."""
    origin = records_frame(ORIGIN, "origin", origin_edits)
    dest = records_frame(DEST, "dest", dest_edits)
    records = pd.concat([origin, dest], ignore_index=True)
    links_df = links_frame(origin, dest, links)
    tables = {
        "records": records,
        "links": links_df,
        "traced": pd.DataFrame([{"origin_key": "H004", "dest_key": "D104", "match_probability": 0.999}]),
        "untraceable": pd.DataFrame([
            {"origin_key": k, "best_dest_key": d, "best_probability": p}
            for k, d, p in [("H001", "D101", 0.62), ("H002", "D102", 0.91), ("H003", "D103", 0.55), ("H005", "D105", 0.78), ("H006", "D106", 0.35)]
        ]),
        "duplicates": pd.DataFrame([
            {"source": "dest", "cluster_id": "dest-1", "record_key": "D108", "survivor": 1, "scope": "same_unit", "reason": "has ID"},
            {"source": "dest", "cluster_id": "dest-1", "record_key": "D109", "survivor": 0, "scope": "same_unit", "reason": ""},
        ]),
    }
    db = open_report(path)
    try:
        return write_run(db, RunOutput(command="match", started_at=now_iso(), run_info={"version": "test"}, tables=tables))
    finally:
        db.conn.close()


def fingerprints_of(path: Path, run_id: int) -> dict[tuple[str, str], str]:
    db = open_report(path, create=False)
    try:
        return {(s, k): fp for s, k, fp in db.execute(
            "SELECT source, record_key, fingerprint FROM records WHERE run_id = ?", (run_id,)).fetchall()}
    finally:
        db.conn.close()
