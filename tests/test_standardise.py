"""standardise(): the loader's frame -> STANDARD_COLUMNS, on a registry with the hard cases."""
from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

import reconcile.standardise as std_mod
from reconcile.fields import INPUT_FIELDS, STANDARD_COLUMNS
from reconcile.idnumbers import check_char
from reconcile.standardise import parse_flow_status, standardise

TODAY = date(2025, 6, 1)


def _id(first17: str) -> str:
    return first17 + check_char(first17)


ANREN_M = _id("43102819900506123")     # 431028199005061231, male, 1990-05-06
ANREN_F = _id("43102819881201002")     # female, 1988-12-01
OLD_CODE = _id("43283119800307001")    # 安仁县 before 1994, male

# (key, name, sex, birth_date, id_number, hukou, residence, flow_status, flow_place, unit)
ROWS = [
    ("A001", "张伟", "男", "1990-05-06", ANREN_M, "湖南省郴州市安仁县永乐江镇", "广东省深圳市南山区", "流出", "广东省深圳市", "永乐江镇"),
    ("A002", "欧阳晓棠", "女", "1988年12月1日", "'" + ANREN_F, "湖南郴州安仁县城关镇", "", "常住", "", "城关镇"),
    ("A003", "張偉", "1", "19900506", "431028900506123", "郴州市安仁县", "", "外出", "", "城关镇"),
    ("A004", "买买提•艾力", "M", "1980.03", OLD_CODE.lower(), "安仁县龙海镇", "新疆乌鲁木齐市天山区", "户籍", "", "龙海镇"),
    ("A005", "ZHANG WEI", "女", "32999", ANREN_M, "朝阳区建国路", "", "", "", ""),
    ("A006", "章　玮", "男", "1990-02-30", "4.31028E+17", "", "北京市朝阳区", "在家", "", ""),
    ("A007", "NA", "", "", "", "", "", "N/A", "", ""),
    ("A008", "单丽", "男", "1990-05-07", "431028199005061000", "湖南省郴州市北湖区", "", "流出", "广东省东莞市", ""),
    ("A009", "张伟", "女", "2030-01-01", ANREN_M[:15] + "4" + ANREN_M[16:], "湖南省郴州市安仁县永乐江镇", "", "流出", "", "永乐江镇"),
]


def make_frame(rows=ROWS) -> pd.DataFrame:
    data = {f: [""] * len(rows) for f in INPUT_FIELDS}
    data["record_key"] = [r[0] for r in rows]
    data["line"] = list(range(2, len(rows) + 2))
    for field, pos in (("name", 1), ("sex", 2), ("birth_date", 3), ("id_number", 4), ("hukou", 5),
                       ("residence", 6), ("flow_status", 7), ("flow_place", 8), ("unit", 9)):
        data[field] = [r[pos] for r in rows]
    frame = pd.DataFrame(data)
    return frame[["record_key", "line", *INPUT_FIELDS]]


@pytest.fixture(scope="module")
def out() -> pd.DataFrame:
    return standardise(make_frame(), today=TODAY).set_index("record_key", drop=False)


def test_columns_index_and_order() -> None:
    frame = make_frame()
    frame.index = [10 + i for i in range(len(frame))]
    result = standardise(frame, today=TODAY)
    assert list(result.columns) == [*STANDARD_COLUMNS, "line"]
    assert list(result.index) == list(frame.index)
    assert list(result["record_key"]) == [r[0] for r in ROWS]
    assert list(result["line"]) == list(range(2, len(ROWS) + 2))
    for col in ("name_traditional", "name_minority", "sex_conflict", "birth_conflict"):
        assert result[col].dtype == bool


def test_row_with_everything_clean(out: pd.DataFrame) -> None:
    r = out.loc["A001"]
    assert r.to_dict() == {
        "record_key": "A001", "name": "张伟", "name_raw": "张伟", "name_script": "han",
        "name_traditional": False, "name_minority": False, "name_pinyin": "zhang wei",
        "surname": "张", "given": "伟", "sex": "M", "sex_conflict": False,
        "birth_date": "1990-05-06", "birth_precision": "day", "birth_status": "ok",
        "id_number": ANREN_M, "id_raw": ANREN_M, "id_clean": ANREN_M, "id_status": "valid",
        "id_birth_date": "1990-05-06", "id_sex": "M", "id_region": "431028",
        "id_region_name": "湖南省郴州市安仁县", "birth_conflict": False,
        "hukou_address": "湖南省郴州市安仁县永乐江镇", "hukou_region": "431028",
        "hukou_region_name": "湖南省郴州市安仁县", "residence": "广东省深圳市南山区",
        "residence_region": "440305", "flow_status": "out", "flow_status_raw": "流出",
        "flow_place": "广东省深圳市", "unit": "永乐江镇", "line": 2,
    }


def test_compound_surname_wrapped_id_chinese_date(out: pd.DataFrame) -> None:
    r = out.loc["A002"]
    assert (r["surname"], r["given"], r["name_pinyin"]) == ("欧阳", "晓棠", "ou yang xiao tang")
    assert (r["id_number"], r["id_raw"], r["id_status"]) == (ANREN_F, "'" + ANREN_F, "valid")
    assert (r["birth_date"], r["sex"], r["id_sex"]) == ("1988-12-01", "F", "F")
    assert not r["birth_conflict"] and not r["sex_conflict"]
    assert (r["hukou_region"], r["flow_status"]) == ("431028", "resident")


def test_traditional_name_and_15_digit_id(out: pd.DataFrame) -> None:
    r = out.loc["A003"]
    assert (r["name"], r["name_traditional"], r["name_pinyin"]) == ("张伟", True, "zhang wei")
    assert (r["id_number"], r["id_status"], r["sex"]) == (ANREN_M, "upgraded_from_15", "M")
    assert not r["birth_conflict"]
    assert r["flow_status"] == "out"


def test_minority_name_old_region_code_month_date(out: pd.DataFrame) -> None:
    r = out.loc["A004"]
    assert (r["name"], r["name_minority"], r["surname"], r["given"]) == ("买买提·艾力", True, "买买提", "艾力")
    assert (r["id_number"], r["id_status"], r["id_region"]) == (OLD_CODE, "valid", "432831")
    assert r["id_region_name"] == "湖南省郴州地区安仁县"
    assert (r["birth_date"], r["birth_precision"]) == ("1980-03", "month")
    assert not r["birth_conflict"]          # 1980-03 agrees with 1980-03-07 at month precision
    assert r["hukou_region"] == "431028" and r["residence_region"] == "650102"


def test_latin_name_excel_serial_sex_conflict_ambiguous_address(out: pd.DataFrame) -> None:
    r = out.loc["A005"]
    assert (r["name"], r["name_script"], r["name_pinyin"]) == ("ZHANG WEI", "latin", "zhang wei")
    assert (r["birth_date"], r["birth_precision"]) == ("1990-05-06", "day")
    assert (r["sex"], r["id_sex"], r["sex_conflict"]) == ("F", "M", True)
    assert (r["hukou_region"], r["hukou_region_name"]) == ("", "")


def test_fullwidth_space_impossible_date_excel_id(out: pd.DataFrame) -> None:
    r = out.loc["A006"]
    assert (r["name"], r["name_pinyin"]) == ("章玮", "zhang wei")
    assert (r["birth_date"], r["birth_status"], r["birth_precision"]) == ("", "impossible", "")
    assert (r["id_number"], r["id_clean"], r["id_status"], r["id_region"]) == ("", "", "excel_damaged", "431028")
    assert not r["birth_conflict"] and not r["sex_conflict"]
    assert r["residence_region"] == "110105" and r["flow_status"] == "resident"


def test_name_na_is_a_name_and_missing_fields(out: pd.DataFrame) -> None:
    r = out.loc["A007"]
    assert (r["name"], r["name_script"]) == ("NA", "latin")
    assert (r["sex"], r["birth_status"], r["id_status"]) == ("", "missing", "missing")
    assert (r["flow_status"], r["flow_status_raw"]) == ("", "N/A")


def test_birth_conflict_and_excel_zeros(out: pd.DataFrame) -> None:
    r = out.loc["A008"]
    assert (r["name_pinyin"], r["id_status"], r["id_birth_date"]) == ("shan li", "excel_damaged", "1990-05-06")
    assert r["birth_conflict"]              # 1990-05-07 on the record, 1990-05-06 in the ID
    assert r["hukou_region"] == "431002"


def test_typo_id_future_date(out: pd.DataFrame) -> None:
    r = out.loc["A009"]
    assert (r["id_status"], r["id_number"], r["id_clean"]) == ("bad_checksum", "", ANREN_M[:15] + "4" + ANREN_M[16:])
    assert (r["birth_date"], r["birth_status"]) == ("2030-01-01", "future")
    assert r["birth_conflict"] and r["sex_conflict"]


def test_missing_cells_become_empty_text() -> None:
    frame = make_frame(ROWS[:2])
    frame.loc[0, "name"] = None
    frame.loc[1, "hukou"] = float("nan")
    result = standardise(frame, today=TODAY)
    assert list(result["name_raw"]) == ["", "欧阳晓棠"]
    assert result["name_script"].iloc[0] == "empty"
    assert list(result["hukou_address"]) == ["湖南省郴州市安仁县永乐江镇", ""]
    assert list(result["hukou_region"]) == ["431028", ""]


def test_empty_frame() -> None:
    result = standardise(make_frame([]), today=TODAY)
    assert list(result.columns) == [*STANDARD_COLUMNS, "line"]
    assert len(result) == 0


def test_absent_input_columns_are_empty() -> None:
    frame = pd.DataFrame({"record_key": ["1", "2"], "line": [2, 3], "name": ["王芳", "王芳"]})
    result = standardise(frame, today=TODAY)
    assert list(result["name_pinyin"]) == ["wang fang", "wang fang"]
    assert list(result["id_status"]) == ["missing", "missing"]
    assert list(result["hukou_region"]) == ["", ""]


def test_each_function_runs_once_per_distinct_value(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, list[str]] = {"id": [], "name": [], "address": [], "date": []}

    def counting(label, fn):
        def wrapper(value, *args, **kwargs):
            calls[label].append(value)
            return fn(value, *args, **kwargs)
        return wrapper

    real_id_columns = std_mod.id_columns

    def counting_ids(values, *args, **kwargs):
        calls["id"].extend(values)
        return real_id_columns(values, *args, **kwargs)

    monkeypatch.setattr(std_mod, "id_columns", counting_ids)
    monkeypatch.setattr(std_mod, "normalise_name", counting("name", std_mod.normalise_name))
    monkeypatch.setattr(std_mod, "resolve_admin_part", counting("address", std_mod.resolve_admin_part))
    monkeypatch.setattr(std_mod, "parse_birth_date", counting("date", std_mod.parse_birth_date))
    frame = make_frame(ROWS * 50)
    standardise(frame, today=TODAY)
    assert sorted(calls["id"]) == sorted(set(r[4] for r in ROWS))
    assert sorted(calls["name"]) == sorted(set(r[1] for r in ROWS))
    assert sorted(calls["date"]) == sorted(set(r[3] for r in ROWS))
    # hukou and residence columns each once per distinct value
    assert len(calls["address"]) == len(set(r[5] for r in ROWS)) + len(set(r[6] for r in ROWS))


@pytest.mark.parametrize("raw,expected", [
    ("流出", "out"), ("外出", "out"), ("离开", "out"), ("户籍流出", "out"), (" 流出 ", "out"),
    ("常住", "resident"), ("在家", "resident"), ("户籍", "resident"), ("居住", "resident"), ("在册", "resident"),
    ("", ""), ("死亡", ""), ("N/A", ""),
])
def test_flow_status(raw: str, expected: str) -> None:
    assert parse_flow_status(raw) == expected
