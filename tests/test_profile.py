"""`reconcile profile`: the data-quality profile on Chinese registries (terminal, JSON, SQLite)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from reconcile.profile import profile_registry

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"

HEADER = "编号,姓名,性别,出生日期,公民身份号码,户籍地址,流动状态,乡镇\n"
ROWS = [
    "0001,张伟,男,1990-03-07,431028199003071239,湖南省郴州市安仁县永乐江镇,流出,永乐江镇",      # valid
    "0002,張偉,男,1990/3/7,431028900307123,湖南郴州安仁县永乐江镇,常住,永乐江镇",            # 15-digit, traditional
    "0003,买买提•艾力,男,1985年5月,4.31028E+17,安仁县安平镇,流出,安平镇",                    # Excel damage, minority
    "0004,ZHANG WEI,女,19900307,431028199003071239,安仁县安平镇,常住,安平镇",               # duplicate ID, sex conflict
    "0005,李娜,女,1988.12,,安仁县安平镇,常住,安平镇",                                         # missing ID, month precision
    "0006,NA,女,1975-08-09,43102819750809122X,安仁县永乐江镇,流出,永乐江镇",                 # birth conflict below
    "0007,王芳,女,1992-02-30,431028199202281220,安仁县永乐江镇,常住,永乐江镇",               # impossible date
    "合计,7人,,,,,,",
]


def _check(body17: str) -> str:
    w = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(c) * k for c, k in zip(body17, w)) % 11]


@pytest.fixture()
def gbk_file(tmp_path: Path) -> Path:
    rows = []
    for r in ROWS:
        parts = r.split(",")
        idv = parts[4]
        if len(idv) == 18 and idv[:17].isdigit():
            parts[4] = idv[:17] + _check(idv[:17])
        rows.append(",".join(parts))
    p = tmp_path / "户籍人口.csv"
    p.write_bytes((HEADER + "\n".join(rows) + "\n").encode("gb18030"))
    return p


def test_profile_figures(gbk_file: Path):
    prof = profile_registry(gbk_file, key="编号")
    assert (prof["rows_read"], prof["rows_loaded"], prof["rows_rejected"]) == (8, 7, 1)
    assert prof["encoding"] == "gb18030"
    assert prof["columns"]["公民身份号码"] == "id_number" and prof["columns"]["乡镇"] == "unit"
    st = prof["id_status"]
    assert st["valid"] == 4 and st["upgraded_from_15"] == 1 and st["excel_damaged"] == 1 and st["missing"] == 1
    assert prof["id_entry_rate"] == round(5 / 7, 4)
    assert prof["id_sex_conflicts"] == 1                 # ZHANG WEI 女 with a male ID
    # 0001 and 0004 carry one number, and 0002's 15-digit number upgrades to it too: one 重号 group
    assert prof["duplicate_ids_count"] == 1
    assert sorted(prof["duplicate_ids"][0]["record_keys"]) == ["0001", "0002", "0004"]
    assert prof["names_latin"] == 2 and prof["names_traditional"] == 1   # ZHANG WEI and a person named NA and prof["names_minority"] == 1
    assert prof["birth_precision"]["month"] == 2
    assert prof["birth_status"].get("impossible") == 1
    assert set(prof["units"]) == {"永乐江镇", "安平镇"}
    assert prof["units"]["安平镇"]["records"] == 3


def test_profile_masks_ids_in_json_and_terminal(gbk_file: Path):
    for args in (["profile", str(gbk_file), "--key", "编号", "--json"], ["profile", str(gbk_file), "--key", "编号"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert "431028199003071239"[:12] not in r.stdout.replace("********", "")
    data = json.loads(runner.invoke(app, ["profile", str(gbk_file), "--key", "编号", "--json"]).stdout)
    assert {"rows_read", "rows_loaded", "rows_rejected", "encoding", "columns", "id_status"} <= set(data)
    dup = data["duplicate_ids"][0]["id"]
    assert dup.startswith("431028") and "*" in dup and len(dup) == 18


def test_profile_tables_in_both_languages(gbk_file: Path):
    zh = runner.invoke(app, ["--lang", "zh", "profile", str(gbk_file), "--key", "编号"])
    en = runner.invoke(app, ["--lang", "en", "profile", str(gbk_file), "--key", "编号"])
    assert "身份证录入率" in zh.stdout and "拒收" in zh.stdout
    assert "ID entry rate" in en.stdout and "Rejected rows" in en.stdout


def test_profile_into_sqlite(gbk_file: Path, tmp_path: Path):
    out = tmp_path / "profile.db"
    r = runner.invoke(app, ["profile", str(gbk_file), "--key", "编号", "--out", str(out)])
    assert r.exit_code == 0
    con = sqlite3.connect(out)
    rows = dict(con.execute("SELECT metric, value FROM profile_metrics WHERE scope='all'").fetchall())
    units = {s for (s,) in con.execute("SELECT DISTINCT scope FROM profile_metrics")}
    con.close()
    assert rows["rows_read"] == 8 and rows["id_status.valid"] == 4
    assert "unit:安平镇" in units


def test_profile_on_the_xlsx_sample():
    prof = profile_registry(SAMPLES / "dest.xlsx", key="序号")
    assert prof["encoding"] == "xlsx" and prof["rows_loaded"] > 500
    assert prof["id_status"]["excel_damaged"] >= 1


def test_profile_bad_input_exit_codes(tmp_path: Path):
    r = runner.invoke(app, ["profile", str(tmp_path / "nope.csv")])
    assert r.exit_code == 3 and "nope.csv" in r.output
    empty = tmp_path / "empty.csv"
    empty.write_text("姓名,身份证号\n", encoding="utf-8")
    r = runner.invoke(app, ["profile", str(empty)])
    assert r.exit_code == 4 and "empty.csv" in r.output
