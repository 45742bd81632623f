"""Hand-made report databases for the coordination and bulletin tests.

Built with reconcile.report.write_run and DataFrames that follow docs/report-schema.md: an origin
registry of 安仁县 (431028; townships 永乐江镇, 安平镇, 龙海镇) and a destination registry of 东莞市
(441900; towns 长安镇, 虎门镇), three monthly runs in which findings get resolved over time.
Every ID number carries a correct check character.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from reconcile.fields import STANDARD_COLUMNS
from reconcile.report import RunOutput, open_report, write_run

_W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def make_id(region: str, birth: str, seq: int, sex: str) -> str:
    """A valid 18-digit ID: region, YYYYMMDD, 3-digit sequence (odd = male), check character."""
    s = seq * 2 + (1 if sex == "M" else 0)
    body = f"{region}{birth}{s % 1000:03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _W)) % 11]
    return body + check


def rec(source: str, key: str, name: str, sex: str, birth: str, idn: str = "", *, id_status: str | None = None,
        unit: str = "", hukou: str = "", hukou_region: str = "", hukou_region_name: str = "", residence: str = "",
        residence_region: str = "", flow: str = "", flow_place: str = "", birth_conflict: int = 0,
        sex_conflict: int = 0) -> dict:
    row = {c: "" for c in STANDARD_COLUMNS}
    row.update({
        "source": source, "record_key": key, "line": int(key.lstrip("OD")) + 1 if key[1:].isdigit() else 0,
        "name": name.lstrip("=+-@"), "name_raw": name, "name_script": "han", "name_traditional": 0,
        "name_minority": int("·" in name), "sex": sex, "sex_conflict": sex_conflict,
        "birth_date": f"{birth[:4]}-{birth[4:6]}-{birth[6:]}", "birth_precision": "day", "birth_status": "ok",
        "id_number": idn if (id_status or ("valid" if idn else "missing")) in ("valid", "upgraded_from_15") else "",
        "id_raw": idn, "id_clean": idn, "id_status": id_status or ("valid" if idn else "missing"),
        "birth_conflict": birth_conflict, "hukou_address": hukou, "hukou_region": hukou_region,
        "hukou_region_name": hukou_region_name, "residence": residence, "residence_region": residence_region,
        "flow_status": flow, "flow_status_raw": {"out": "流出", "resident": "常住"}.get(flow, ""), "flow_place": flow_place,
        "unit": unit, "fingerprint": f"{abs(hash((source, key, name))) % 16**16:016x}",
        "raw_json": json.dumps({"姓名": name}, ensure_ascii=False),
    })
    return row


ANREN = "431028"
DG = "441900"
ORIGIN_UNITS = ("永乐江镇", "安平镇", "龙海镇")
DEST_UNITS = ("长安镇", "虎门镇")

# (name, sex, birth) of the origin population; index = origin key number.
ORIGIN_PEOPLE = [
    ("张伟", "M", "19900307"), ("王芳", "F", "19881112"), ("李建国", "M", "19750601"), ("欧阳晓棠", "F", "19950214"),
    ("单志强", "M", "19830930"), ("曾丽华", "F", "19920505"), ("覃小军", "M", "19870719"), ("刘洋", "M", "19991201"),
    ("陈静", "F", "19930808"), ("买买提·艾力", "M", "19860315"), ("=HYPERLINK(\"http://x.example/\",\"点我\")", "M", "19800101"),
    ("-王小明", "M", "19960420"), ("@赵敏", "F", "19910909"), ("+李四", "M", "19850125"), ("周杰", "M", "19890612"),
    ("吴秀英", "F", "19700203"), ("郑爽", "F", "19940722"), ("孙丽", "F", "19971030"), ("马强", "M", "19820817"),
    ("胡军", "M", "19781128"), ("朱红", "F", "19900909"), ("何平", "M", "19840404"), ("高燕", "F", "19980101"),
    ("林峰", "M", "19910303"), ("罗敏", "F", "19870530"), ("梁伟", "M", "19930217"), ("宋佳", "F", "19950811"),
    ("谢娜", "F", "19881020"), ("唐勇", "M", "19761207"), ("韩梅", "F", "19920614"),
]


def origin_frame(variant: int) -> list[dict]:
    rows = []
    for i, (name, sex, birth) in enumerate(ORIGIN_PEOPLE):
        unit = ORIGIN_UNITS[i % 3]
        flow = "out" if i % 2 == 0 else "resident"
        idn = make_id(ANREN, birth, i + 1, sex)
        status = None
        # 安平镇 enters IDs badly in the first runs, better later.
        if unit == "安平镇" and i in (4, 13, 22) and not (variant >= 3 and i == 22):
            idn, status = idn[:17] + ("0" if idn[17] != "0" else "1"), "bad_checksum"
        rows.append(rec(
            "origin", f"O{i + 1}", name, sex, birth, idn, id_status=status, unit=unit,
            hukou=f"湖南省郴州市安仁县{unit}{['新丰村', '城关社区', '大石村'][i % 3]}{i + 1}号", hukou_region=ANREN,
            hukou_region_name="安仁县", residence="" if flow == "out" else f"安仁县{unit}", flow=flow,
            flow_place="广东省东莞市" + DEST_UNITS[(i // 4) % 2] if flow == "out" and i % 4 == 0 else "",
            birth_conflict=1 if i in (7, 16) else 0, sex_conflict=1 if i == 19 else 0,
        ))
    # Two people sharing 李建国's number inside the origin file too (ID conflict within origin).
    rows.append(rec("origin", "O31", "李春花", "F", "19750601", rows[2]["id_number"], unit="龙海镇",
                    hukou="湖南省郴州市安仁县龙海镇大石村7号", hukou_region=ANREN, hukou_region_name="安仁县",
                    residence="安仁县龙海镇", flow="resident"))
    # 周杰 entered twice in 永乐江镇... the same person twice (duplicate ID, not a conflict).
    rows.append(rec("origin", "O32", "周杰", "M", "19890612", rows[14]["id_number"], unit="安平镇",
                    hukou="湖南省郴州市安仁县安平镇城关社区15号", hukou_region=ANREN, hukou_region_name="安仁县",
                    residence="安仁县安平镇", flow="resident"))
    return rows


def dest_frame(origin: list[dict], variant: int) -> list[dict]:
    rows = []
    o = {r["record_key"]: r for r in origin}
    # Destination copies of origin people: out-migrants (traced) and residents (cross-region duplicates).
    copies = ["O1", "O3", "O5", "O7", "O9", "O2", "O4", "O11", "O12", "O13", "O6"]
    if variant >= 2:
        copies.remove("O6")          # 曾丽华's duplicate registration was cleared at the destination
        copies.append("O17")         # 郑爽 was found after a verification request
    if variant >= 3:
        copies.append("O19")         # 马强 too
    for j, ok in enumerate(copies, start=1):
        src = o[ok]
        unit = DEST_UNITS[j % 2]
        rows.append(rec("dest", f"D{j}", src["name_raw"], src["sex"], src["birth_date"].replace("-", ""),
                        src["id_raw"] if src["id_status"] == "valid" else make_id(ANREN, src["birth_date"].replace("-", ""), j + 50, src["sex"]),
                        unit=unit, hukou=src["hukou_address"], hukou_region=ANREN, hukou_region_name="安仁县",
                        residence=f"广东省东莞市{unit}{['振安路', '虎门大道'][j % 2]}{j * 3}号", residence_region=DG))
    n = len(rows)
    # Unregistered at origin: hukou says 安仁县 but no origin record.
    for k, (name, sex, birth) in enumerate([("黄晓明", "M", "19900101"), ("杨幂", "F", "19940301"), ("邓超", "M", "19850811")]):
        if variant >= 3 and k == 2:
            continue
        unit = DEST_UNITS[k % 2]
        rows.append(rec("dest", f"D{21 + k}", name, sex, birth, make_id(ANREN, birth, 200 + k, sex), unit=unit,
                        hukou=f"湖南省郴州市安仁县{ORIGIN_UNITS[k]}", hukou_region=ANREN, hukou_region_name="安仁县",
                        residence=f"广东省东莞市{unit}", residence_region=DG))
    # 李红梅 at the destination carries 李建国's ID number (ID conflict across files).
    rows.append(rec("dest", "D30", "李红梅", "F", "19800214", o["O3"]["id_number"], unit="虎门镇",
                    hukou="湖南省郴州市安仁县安平镇", hukou_region=ANREN, hukou_region_name="安仁县",
                    residence="广东省东莞市虎门镇银龙路8号", residence_region=DG, birth_conflict=1, sex_conflict=1))
    # 王伟 from another province registered twice at the destination (duplicate within dest).
    wid = make_id("420106", "19910521", 33, "M")
    for key, unit in (("D31", "长安镇"), ("D32", "虎门镇")):
        rows.append(rec("dest", key, "王伟", "M", "19910521", wid, unit=unit, hukou="湖北省武汉市武昌区",
                        hukou_region="420106", hukou_region_name="武昌区", residence=f"广东省东莞市{unit}", residence_region=DG))
    # A near-namesake that is the best (but rejected) candidate of an untraceable person.
    rows.append(rec("dest", "D33", "章玮", "M", "19900308", make_id("430104", "19900308", 77, "M"), unit="长安镇",
                    hukou="湖南省长沙市岳麓区", hukou_region="430104", hukou_region_name="岳麓区",
                    residence="广东省东莞市长安镇", residence_region=DG))
    return rows


def build_run(db, variant: int, started: str) -> int:
    origin = origin_frame(variant)
    dest = dest_frame(origin, variant)
    o = {r["record_key"]: r for r in origin}
    d = {r["record_key"]: r for r in dest}
    by_origin = {}
    for r in dest:
        for orow in origin:
            if r["name_raw"] == orow["name_raw"] and r["birth_date"] == orow["birth_date"] and r["record_key"] not in ("D31", "D32"):
                by_origin[orow["record_key"]] = r["record_key"]
    links, traced, dups, untr = [], [], [], []
    for ok, dk in by_origin.items():
        p = 0.999 - 0.003 * int(ok[1:])
        links.append({"source_pair": "origin-dest", "origin_key": ok, "dest_key": dk, "match_probability": p,
                      "match_weight": 12.0, "decision": "match", "decided_by": "model", "stale": 0, "evidence_json": "{}"})
        (traced if o[ok]["flow_status"] == "out" else dups).append({"origin_key": ok, "dest_key": dk, "match_probability": p})
    for r in origin:
        if r["flow_status"] == "out" and r["record_key"] not in by_origin:
            best = "D33" if r["record_key"] == "O1" and "O1" not in by_origin else ""
            untr.append({"origin_key": r["record_key"], "best_dest_key": best or None,
                         "best_probability": 0.62 if best else None})
    # O1 张伟 is traced in these runs, so give 章玮 to an untraceable person instead: 刘洋 (O8 is resident) -> O15 周杰.
    for u in untr:
        if u["origin_key"] == "O15":
            u["best_dest_key"], u["best_probability"] = "D33", 0.58
    links.append({"source_pair": "origin-dest", "origin_key": "O15", "dest_key": "D33", "match_probability": 0.58,
                  "match_weight": 1.2, "decision": "review", "decided_by": "model", "stale": 0, "evidence_json": "{}"})
    links.append({"source_pair": "origin-dest", "origin_key": "O3", "dest_key": "D30", "match_probability": 0.71,
                  "match_weight": 3.1, "decision": "review", "decided_by": "model", "stale": 0, "evidence_json": "{}"})
    unreg = [{"dest_key": r["record_key"], "hukou_region": ANREN, "best_origin_key": None, "best_probability": None}
             for r in dest if r["name_raw"] in ("黄晓明", "杨幂", "邓超")]
    unreg[0]["best_origin_key"], unreg[0]["best_probability"] = "O21", 0.55   # 朱红? weak candidate in 永乐江镇
    idc = [
        {"id_number": o["O3"]["id_number"], "source": "origin", "record_key": "O3", "conflict_group": 1},
        {"id_number": o["O3"]["id_number"], "source": "origin", "record_key": "O31", "conflict_group": 1},
        {"id_number": o["O3"]["id_number"], "source": "dest", "record_key": "D30", "conflict_group": 1},
    ]
    dupl = [
        {"source": "dest", "cluster_id": "dest-1", "record_key": "D31", "survivor": 1, "scope": "cross_unit", "reason": "同号同名同生日"},
        {"source": "dest", "cluster_id": "dest-1", "record_key": "D32", "survivor": 0, "scope": "cross_unit", "reason": "同号同名同生日"},
        {"source": "origin", "cluster_id": "origin-1", "record_key": "O15", "survivor": 1, "scope": "cross_unit", "reason": "同号同名同生日"},
        {"source": "origin", "cluster_id": "origin-1", "record_key": "O32", "survivor": 0, "scope": "cross_unit", "reason": "同号同名同生日"},
    ]
    metrics = [
        {"scope": "all", "metric": "traced", "value": len(traced)},
        {"scope": "all", "metric": "untraceable", "value": len(untr)},
        {"scope": "all", "metric": "cross_region_duplicates", "value": len(dups)},
        {"scope": "all", "metric": "unregistered", "value": len(unreg)},
    ]
    records = pd.DataFrame(origin + dest)
    out = RunOutput(command="match", started_at=started, run_info={
        "origin_path": "安仁县_户籍人口.xlsx", "dest_path": "东莞市_流入人口.xlsx", "version": "0.1.0",
        "settings_json": {"match_threshold": 0.9, "review_threshold": 0.5},
        "summary_json": {"traced": len(traced), "untraceable": len(untr)},
    }, tables={
        "records": records, "links": pd.DataFrame(links), "traced": pd.DataFrame(traced),
        "untraceable": pd.DataFrame(untr), "cross_region_duplicates": pd.DataFrame(dups),
        "unregistered": pd.DataFrame(unreg), "id_conflicts": pd.DataFrame(idc), "duplicates": pd.DataFrame(dupl),
        "metrics": pd.DataFrame(metrics),
    })
    return write_run(db, out)


def build_db(path: str | Path, runs: int = 3):
    """A report database with ``runs`` monthly runs; returns the open Database."""
    db = open_report(path)
    for v in range(1, runs + 1):
        build_run(db, v, f"2025-0{v + 2}-28T09:00:00+08:00")
    return db
