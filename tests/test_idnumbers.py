"""ID numbers: cleaning of what Excel/WPS exports and typists do to them, 15 -> 18, statuses,
embedded birth date / sex / region (including renumbered county codes)."""
from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn.ric import calc_check_digit as _stdnum_check


from reconcile.idnumbers import IdInfo, check_char, clean_id, upgrade_15

TODAY = date(2025, 6, 1)


def calc_check_digit(first17: str) -> str:
    """Independent reference for the check character (python-stdnum drops the last character
    of what it is given, so it gets the 17 digits plus a placeholder)."""
    return _stdnum_check(first17 + "0")


# 湖南省郴州市安仁县, born 1990-05-06, sequence 123 (odd: male); check character from stdnum
FIRST17 = "43102819900506123"
VALID = FIRST17 + calc_check_digit(FIRST17)  # 431028199005061231
# GB 11643's published example, ending in X: 北京市朝阳区, 1949-12-31, female
X_ID = "11010519491231002X"


def test_reference_ids_are_what_the_tests_assume() -> None:
    assert VALID == "431028199005061231"
    assert calc_check_digit("11010519491231002") == "X"


@pytest.mark.parametrize("first17,expected", [
    ("11010519491231002", "X"),
    ("44052418800101001", "4"),   # the standard's own example
    ("43102819900506123", "1"),
    ("43102819900506030", "0"),
])
def test_check_char_known_values(first17: str, expected: str) -> None:
    assert check_char(first17) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_char_agrees_with_stdnum(first17: str) -> None:
    assert check_char(first17) == calc_check_digit(first17)


def test_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        check_char("1234")
    with pytest.raises(ValueError):
        check_char("１１０１０５１９４９１２３１００２")  # full-width: clean first


def test_upgrade_15() -> None:
    assert upgrade_15("110105491231002") == X_ID
    assert upgrade_15("431028900506123") == VALID


def test_valid_18_exact() -> None:
    assert clean_id(VALID, TODAY) == IdInfo(
        id_number=VALID, id_clean=VALID, status="valid", birth_date="1990-05-06", sex="M",
        region="431028", region_name="湖南省郴州市安仁县",
    )


def test_valid_x_female() -> None:
    assert clean_id(X_ID, TODAY) == IdInfo(X_ID, X_ID, "valid", "1949-12-31", "F", "110105", "北京市朝阳区")


@pytest.mark.parametrize("raw", [
    "'" + VALID,                     # Excel text prefix
    '="' + VALID + '"',              # formula wrapper
    VALID + ".0",                    # float cell
    " " + VALID + " ",
    "4310 2819 9005 0612 31",        # typed in groups
    "\u200b" + VALID + "\ufeff",     # zero-width space, BOM
    "\t" + VALID,
    "４３１０２８１９９００５０６１２３１",  # full-width digits
    '"' + VALID + '"',
    "'=\"" + VALID + "\"",
])
def test_wrappers_are_stripped(raw: str) -> None:
    info = clean_id(raw, TODAY)
    assert (info.id_number, info.status, info.birth_date) == (VALID, "valid", "1990-05-06")


@pytest.mark.parametrize("raw", [
    "11010519491231002x",   # lower case
    "11010519491231002×",   # multiplication sign
    "11010519491231002Х",   # Cyrillic capital ha
    "11010519491231002х",   # Cyrillic small ha
    "11010519491231002Χ",   # Greek capital chi
    "11010519491231002ｘ",  # full-width
    "１１０１０５１９４９１２３１００２Ｘ",
])
def test_x_look_alikes(raw: str) -> None:
    info = clean_id(raw, TODAY)
    assert (info.id_number, info.id_clean, info.status) == (X_ID, X_ID, "valid")


def test_15_digit_upgraded() -> None:
    assert clean_id("431028900506123", TODAY) == IdInfo(
        VALID, VALID, "upgraded_from_15", "1990-05-06", "M", "431028", "湖南省郴州市安仁县")
    assert clean_id("110105491231002", TODAY).id_number == X_ID
    assert clean_id("110105491231002", TODAY).sex == "F"


def test_15_digit_with_impossible_date_is_malformed() -> None:
    assert clean_id("431028900230123", TODAY).status == "malformed"


@pytest.mark.parametrize("raw,region", [
    ("4.31028E+17", "431028"),
    ("4.31028e+17", "431028"),
    ("3.10101E+17", "310101"),
    ("4.31028199005061E+17", "431028"),
])
def test_excel_scientific_notation(raw: str, region: str) -> None:
    info = clean_id(raw, TODAY)
    assert info.status == "excel_damaged"
    assert info.id_number == "" and info.sex == ""
    # the 15 digits Excel kept stay in id_clean (for the comparator's excel_prefix level), never fewer
    assert info.id_clean == ("431028199005061" if len(raw) > 12 else "")
    assert info.region == region


def test_excel_scientific_keeps_region_name() -> None:
    assert clean_id("3.10101E+17", TODAY).region_name == "上海市黄浦区"
    # 15 significant digits: the birth date survived
    assert clean_id("4.31028199005061E+17", TODAY).birth_date == "1990-05-06"


@pytest.mark.parametrize("raw", [
    "431028199005061000",   # Excel number cell: 15 significant digits, then zeros
    "431028199005061200",   # a float printed with 16 significant digits (4.310281990050612e+17)
    "431028199005061000.0",
])
def test_excel_trailing_zeros(raw: str) -> None:
    info = clean_id(raw, TODAY)
    assert info == IdInfo("", "431028199005061", "excel_damaged", "1990-05-06", "", "431028", "湖南省郴州市安仁县")


def test_valid_number_ending_in_zeros_is_not_damage() -> None:
    real = "43102819900506030" + calc_check_digit("43102819900506030")
    assert real == "431028199005060300"
    assert clean_id(real, TODAY).status == "valid"


def test_one_digit_typo_is_bad_checksum_and_kept_in_id_clean() -> None:
    typo = VALID[:15] + "4" + VALID[16:]   # 431028199005061431
    info = clean_id(typo, TODAY)
    assert info == IdInfo("", typo, "bad_checksum", "1990-05-06", "M", "431028", "湖南省郴州市安仁县")


def test_adjacent_transposition_is_bad_checksum() -> None:
    swapped = VALID[:14] + VALID[15] + VALID[14] + VALID[16:]  # ...0612 -> ...0621
    info = clean_id(swapped, TODAY)
    assert info.status == "bad_checksum"
    assert info.id_clean == swapped


@pytest.mark.parametrize("raw", [
    "43102819900506123",      # 17 digits
    "4310281990050612345",    # 19 digits
    "43102819900230123X",     # 30 February
    "43102819901306123X",     # month 13
    "4310281990O506123X",     # letter O for zero
    "abc",
    "431028",
])
def test_malformed(raw: str) -> None:
    info = clean_id(raw, TODAY)
    assert info.status == "malformed"
    assert info.id_number == "" and info.birth_date == ""
    # 18 well-formed characters with an impossible date keep id_clean (a digit swap there is a typo)
    assert info.id_clean == (raw if len(raw) == 18 and raw[:17].isdigit() else "")


def test_birth_date_digit_swap_still_compares_as_typo() -> None:
    from matchers.id_number import ID_NUMBER
    import numpy as np

    good = "431028197402040403"
    swapped = good[:6] + "9174" + good[10:]        # 1974 -> 9174: an impossible birth date
    info = clean_id(swapped, TODAY)
    assert info.status == "malformed" and info.id_clean == swapped
    g = clean_id(good, TODAY)
    col = lambda i: {"id_clean": np.array([i.id_clean], dtype=object), "id_status": np.array([i.status], dtype=object)}
    assert ID_NUMBER.label(ID_NUMBER.compare(col(g), col(info))[0]) == "typo"


def test_future_birth_date_is_malformed() -> None:
    first17 = "43102820300506123"
    assert clean_id(first17 + calc_check_digit(first17), TODAY).status == "malformed"


@pytest.mark.parametrize("raw", ["", "   ", "无", "不详", "-", "/", "\u200b"])
def test_missing(raw: str) -> None:
    assert clean_id(raw, TODAY).status == "missing"


@pytest.mark.parametrize("first17,region_name", [
    ("81000019900506123", "香港特别行政区"),
    ("82000019900506124", "澳门特别行政区"),
    ("83000019900506125", "台湾省"),
])
def test_hk_macao_taiwan_residence_permits_are_valid(first17: str, region_name: str) -> None:
    full = first17 + calc_check_digit(first17)
    info = clean_id(full, TODAY)
    assert info == IdInfo(full, full, "valid", "1990-05-06", "M" if int(first17[16]) % 2 else "F",
                          first17[:6], region_name)


def test_foreigner_permanent_residence_new_form_is_valid() -> None:
    first17 = "91184019900506123"   # 9, province 11, country 840, birth date, sequence
    full = first17 + calc_check_digit(first17)
    info = clean_id(full, TODAY)
    assert (info.status, info.id_number, info.birth_date, info.sex, info.region) == (
        "valid", full, "1990-05-06", "M", "")


def test_foreigner_permanent_residence_old_form_is_valid_unchanged() -> None:
    info = clean_id("usa110090050612", TODAY)
    assert info == IdInfo("USA110090050612", "USA110090050612", "valid", "", "", "", "")


def test_old_region_code_before_recoding() -> None:
    # 安仁县 was 432831 under 郴州地区 until 1994, then 431028 under 郴州市
    first17 = "43283119800506123"
    full = first17 + calc_check_digit(first17)
    info = clean_id(full, TODAY)
    assert info.status == "valid"
    assert info.region == "432831"
    assert info.region_name == "湖南省郴州地区安仁县"
    from reconcile.divisions import current_code

    assert current_code(info.region) == "431028"


def test_unknown_region_code_is_still_valid() -> None:
    # county codes newer than the table, or invented: the number's own checksum decides
    first17 = "43109919900506123"
    full = first17 + calc_check_digit(first17)
    info = clean_id(full, TODAY)
    assert (info.status, info.region, info.region_name) == ("valid", "431099", "")


@pytest.mark.parametrize("seq,sex", [("120", "F"), ("121", "M"), ("128", "F"), ("129", "M")])
def test_sex_is_parity_of_17th_digit(seq: str, sex: str) -> None:
    first17 = "43102819900506" + seq
    assert clean_id(first17 + calc_check_digit(first17), TODAY).sex == sex


def test_fast_and_slow_paths_agree() -> None:
    # the clean 18-digit fast path and the normalising path give the same answer
    for raw in (VALID, X_ID, "431028199005061000", "431028199005061431"):
        assert clean_id(raw, TODAY) == clean_id(" " + raw + " ", TODAY)


def _mixed_values() -> list[str]:
    return [VALID, X_ID, "431028199005061000", "431028199005061431", "431028900506123", "'" + VALID,
            "4.31028E+17", "", "abc", "43102819900230123X", "USA110090050612", "11010519491231002x",
            "91184019900506123" + calc_check_digit("91184019900506123"),
            "43102820300506123" + calc_check_digit("43102820300506123"),   # future birth date
            "43102818790506123" + calc_check_digit("43102818790506123"),   # before 1880
            "43102820000229123" + calc_check_digit("43102820000229123"),   # leap day
            "43102819000229123" + calc_check_digit("43102819000229123"),   # 1900 was not leap
            "４３１０２８１９９００５０６１２３１", "张三李四王五赵六钱七孙八周九吴", VALID]


def test_batch_agrees_with_single() -> None:
    from reconcile.idnumbers import clean_ids

    values = _mixed_values()
    assert clean_ids(values, TODAY) == [clean_id(v, TODAY) for v in values]


def test_columns_agree_with_single() -> None:
    from reconcile.idnumbers import ID_COLUMNS, id_columns

    values = _mixed_values()
    cols = id_columns(values, TODAY)
    assert list(cols) == list(ID_COLUMNS)
    for i, v in enumerate(values):
        assert tuple(cols[c][i] for c in ID_COLUMNS) == tuple(clean_id(v, TODAY)), v
    empty = id_columns([], TODAY)
    assert list(empty) == list(ID_COLUMNS) and all(len(a) == 0 for a in empty.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789X", min_size=17, max_size=18), max_size=30))
def test_columns_agree_with_single_on_random_numbers(raws: list[str]) -> None:
    from reconcile.idnumbers import ID_COLUMNS, id_columns

    # make about half of them valid, so both the vectorised and the fallback path run
    values = [r[:17] + check_char(r[:17]) if r[:17].isdigit() and i % 2 else r for i, r in enumerate(raws)]
    cols = id_columns(values, TODAY)
    for i, v in enumerate(values):
        assert tuple(cols[c][i] for c in ID_COLUMNS) == tuple(clean_id(v, TODAY))
