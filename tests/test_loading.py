"""Loading registries: encodings, delimiters, xlsx, every value as text, row accounting, mapping,
and every bad input with its error class, exit code and message."""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import openpyxl
import pytest

from reconcile.errors import ConfigError, DataError, InputError
from reconcile.fields import INPUT_FIELDS
from reconcile.i18n import set_lang
from reconcile.loading import LoadedRegistry, normalise_header, parse_map_options, read_registry

HEADER = ["编号", "姓名", "性别", "出生日期", "公民身份号码", "户籍地址", "流动状态", "流入地"]
ROWS = [
    ["A001", "张伟", "男", "1990-03-07", "431028199003071234", "湖南省郴州市安仁县永乐江镇", "流出", "广东省深圳市"],
    ["A002", "欧阳晓棠", "女", "1988年12月1日", "43102819881201002X", "湖南省郴州市安仁县城关镇", "常住", ""],
    ["A003", "买买提·艾力", "男", "19750615", "650102197506150019", "新疆乌鲁木齐市天山区", "流出", "湖南省长沙市"],
    ["A004", "NA", "女", "1992.5.6", "431028920506002", "湖南省郴州市安仁县龙海镇", "常住", ""],
    ["A005", "None", "男", "1985.03", "", "湖南郴州安仁县", "流出", "广东省东莞市"],
    ["A006", "Null", "女", "", "43102819900101000X", "郴州市安仁县", "N/A", ""],
]


def write_text(tmp_path: Path, name: str, rows: list[list[str]], *, encoding: str = "utf-8",
               delimiter: str = ",", newline: str = "\n", header: list[str] | None = HEADER) -> Path:
    lines = ([delimiter.join(header)] if header is not None else []) + [delimiter.join(r) for r in rows]
    path = tmp_path / name
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


@pytest.fixture(autouse=True)
def english():
    set_lang("en")
    yield
    set_lang("en")


def error_text(exc: pytest.ExceptionInfo, lang: str = "en") -> str:
    return exc.value.render(lang)


# ---- encodings ----------------------------------------------------------------------------------

def test_gb18030_file_with_chinese_headers(tmp_path):
    path = write_text(tmp_path, "origin.csv", ROWS, encoding="gb18030")
    reg = read_registry(path, key="编号")
    assert reg.encoding == "gb18030"
    assert reg.delimiter == ","
    assert list(reg.frame["name"]) == ["张伟", "欧阳晓棠", "买买提·艾力", "NA", "None", "Null"]
    assert list(reg.frame["record_key"]) == ["A001", "A002", "A003", "A004", "A005", "A006"]
    assert list(reg.frame["line"]) == [2, 3, 4, 5, 6, 7]
    assert reg.columns == {"姓名": "name", "性别": "sex", "出生日期": "birth_date", "公民身份号码": "id_number",
                           "户籍地址": "hukou", "流动状态": "flow_status", "流入地": "flow_place"}
    assert reg.key_column == "编号"
    assert reg.rows_read == 6 and reg.rejected == []
    assert list(reg.raw.columns) == HEADER
    assert reg.raw.loc[2, "姓名"] == "买买提·艾力"


def test_utf8_bom_file(tmp_path):
    path = write_text(tmp_path, "dest.csv", ROWS, encoding="utf-8-sig")
    reg = read_registry(path, key="编号")  # the BOM must not stick to the first header
    assert reg.encoding == "utf-8-sig"
    assert list(reg.raw.columns)[0] == "编号"
    assert reg.frame.loc[0, "name"] == "张伟"


def test_utf8_file_that_gb18030_would_misread(tmp_path):
    path = tmp_path / "u8.csv"
    path.write_text("姓名,身份证号,出生日期\n张伟,431028199003071234,1990-03-07\n欧阳晓棠,43102819881201002X,"
                    "1988-12-01\n", encoding="utf-8")
    garbled = path.read_bytes().decode("gb18030")  # precondition: these bytes are valid GB18030 too
    assert "寮犱紵" in garbled
    reg = read_registry(path)
    assert reg.encoding == "utf-8"
    assert list(reg.frame["name"]) == ["张伟", "欧阳晓棠"]


def test_utf16_bom_file(tmp_path):
    path = write_text(tmp_path, "u16.txt", ROWS, encoding="utf-16", delimiter="\t")
    reg = read_registry(path)
    assert reg.encoding == "utf-16"
    assert reg.delimiter == "\t"
    assert reg.frame.loc[1, "name"] == "欧阳晓棠"


def test_encoding_override(tmp_path):
    rows = [["張偉", "1990-03-07", "臺北市"], ["歐陽曉棠", "1988-12-01", "臺北市"]]
    path = write_text(tmp_path, "big5.csv", rows, encoding="big5", header=["name", "dob", "hukou"])
    auto = read_registry(path)
    assert auto.encoding == "gb18030"  # Big5 bytes are valid GB18030 too: only the user can tell
    assert auto.frame.loc[0, "name"] != "張偉"
    reg = read_registry(path, encoding="big5")
    assert reg.encoding == "big5"
    assert list(reg.frame["name"]) == ["張偉", "歐陽曉棠"]
    assert list(reg.frame["hukou"]) == ["臺北市", "臺北市"]


def test_encoding_override_that_does_not_fit(tmp_path):
    path = write_text(tmp_path, "gbk.csv", ROWS, encoding="gb18030")
    with pytest.raises(InputError) as exc:
        read_registry(path, encoding="utf-8")
    assert exc.value.exit_code == 3
    msg = error_text(exc)
    assert "gbk.csv" in msg and "utf-8" in msg and "line 1" in msg


def test_undecodable_bytes_name_file_and_line(tmp_path):
    good = ("编号,姓名,出生日期\n1,张伟,1990-01-01\n").encode("utf-8")
    path = tmp_path / "bad.csv"
    path.write_bytes(good + b"2,\xff\xfe\xff,1990-01-02\n")
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert type(exc.value) is InputError and exc.value.exit_code == 3
    msg = error_text(exc)
    assert "bad.csv" in msg and "line 3" in msg and "--encoding" in msg and "0xFF" in msg
    assert "--encoding" in error_text(exc, "zh") and "第 3 行" in error_text(exc, "zh")


def test_unknown_encoding_name_is_a_config_error(tmp_path):
    path = write_text(tmp_path, "a.csv", ROWS)
    with pytest.raises(ConfigError) as exc:
        read_registry(path, encoding="gbk-nonsense")
    assert exc.value.exit_code == 2 and "gbk-nonsense" in error_text(exc)


# ---- delimiters, quoting, line endings ---------------------------------------------------------

@pytest.mark.parametrize("name,delimiter", [("a.csv", ","), ("a.tsv", "\t"), ("a.txt", ";"), ("a.txt", "|"),
                                            ("b.csv", "\t"), ("c.csv", ";")])
def test_delimiter_sniffed(tmp_path, name, delimiter):
    rows = [list(r) for r in ROWS]
    if delimiter != ",":
        rows[0][5] = "湖南省郴州市,安仁县"  # a stray comma must not fool the sniffer
    path = write_text(tmp_path, name, rows, delimiter=delimiter, encoding="gb18030")
    reg = read_registry(path)
    assert reg.delimiter == delimiter
    assert reg.frame.loc[0, "hukou"] == rows[0][5]
    assert reg.frame.loc[0, "id_number"] == "431028199003071234"
    assert reg.rows_read == len(ROWS) and not reg.rejected


def test_quoted_fields_with_delimiters_and_line_breaks(tmp_path):
    text = ('编号,姓名,公民身份号码,户籍地址\n'
            '1,张伟,431028199003071234,"湖南省郴州市,安仁县"\n'
            '2,"欧阳晓棠",43102819881201002X,"湖南省郴州市\n安仁县城关镇"\n'
            '3,"买买提·艾力",650102197506150019,"新疆""天山区"""\n'
            '4,"",650102197506150027,\n')
    path = tmp_path / "q.csv"
    path.write_text(text, encoding="utf-8")
    reg = read_registry(path)
    assert list(reg.frame["hukou"]) == ["湖南省郴州市,安仁县", "湖南省郴州市\n安仁县城关镇", '新疆"天山区"', ""]
    assert list(reg.frame["name"]) == ["张伟", "欧阳晓棠", "买买提·艾力", ""]  # an empty name is still a row
    assert list(reg.frame["line"]) == [2, 3, 5, 6]  # record 2 spans lines 3-4
    assert list(reg.frame["record_key"]) == ["1", "2", "3", "4"]
    assert reg.rejected == [] and reg.rows_read == 4


def test_quoted_fields_loaded_with_empty_name(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('姓名,身份证号\n"",650102197506150027\n', encoding="utf-8")
    reg = read_registry(path)
    assert list(reg.frame["name"]) == [""] and list(reg.frame["id_number"]) == ["650102197506150027"]


def test_stray_quote_inside_a_field_uses_the_exact_reader(tmp_path):
    text = ('编号,姓名,身份证号,户籍地址\n'
            '1,张"三,431028199003071234,"郴州市,安仁县"\n'
            '2,李四,431028199003071250\n'
            '3,王五,431028199003071269,"多行\n地址"\n'
            '4,赵六,431028199003071277,永兴县\n')
    path = tmp_path / "stray.csv"
    path.write_text(text, encoding="utf-8")
    reg = read_registry(path)
    assert list(reg.frame["name"]) == ['张"三', "王五", "赵六"]
    assert list(reg.frame["hukou"]) == ["郴州市,安仁县", "多行\n地址", "永兴县"]
    assert list(reg.frame["line"]) == [2, 4, 6]
    assert [(r.line, r.reason_key) for r in reg.rejected] == [(3, "load.reject.field_count")]
    assert reg.rejected[0].params == {"expected": 4, "found": 3}


def test_crlf_line_endings(tmp_path):
    path = write_text(tmp_path, "crlf.csv", ROWS, encoding="gb18030", newline="\r\n")
    reg = read_registry(path)
    assert reg.frame.loc[0, "flow_place"] == "广东省深圳市"  # no trailing \r
    assert reg.frame.loc[5, "flow_place"] == ""
    assert list(reg.frame["line"]) == [2, 3, 4, 5, 6, 7]


def test_title_line_above_header_is_skipped(tmp_path):
    path = tmp_path / "title.csv"
    path.write_text("安仁县流动人口登记表,,,\n编号,姓名,身份证号,出生日期\n1,张伟,431028199003071234,1990-03-07\n",
                    encoding="gb18030")
    reg = read_registry(path, key="编号")
    assert reg.header_line == 2
    assert list(reg.frame["line"]) == [3]
    assert reg.frame.loc[0, "name"] == "张伟" and reg.rows_read == 1


# ---- every value is text ---------------------------------------------------------------------

def test_values_stay_text_ids_never_floats(tmp_path):
    rows = [["1", "张伟", "男", "1990-03-07", "431028199003071234", "", "", ""],
            ["2", "李娜", "女", "1990-03-07", "4.31028E+17", "", "", ""],
            ["3", "王芳", "女", "1990-03-07", "0431028199003071", "", "", ""],
            ["4", "NA", "男", "1990-03-07", "431028199003071234.0", "", "", ""]]
    path = write_text(tmp_path, "ids.csv", rows)
    reg = read_registry(path)
    assert list(reg.frame["id_number"]) == ["431028199003071234", "4.31028E+17", "0431028199003071",
                                            "431028199003071234.0"]
    assert all(isinstance(v, str) for v in reg.frame["id_number"])
    for col in reg.frame.columns:
        if col != "line":
            assert reg.frame[col].dtype == object, col
    assert all(reg.raw[c].map(type).eq(str).all() for c in reg.raw.columns)
    assert list(reg.frame.columns) == ["record_key", "line", *INPUT_FIELDS]
    assert (reg.frame["ethnicity"] == "").all()


def test_na_none_null_are_names_only_empty_is_missing(tmp_path):
    path = write_text(tmp_path, "na.csv", ROWS, encoding="gb18030")
    reg = read_registry(path)
    assert list(reg.frame["name"][3:6]) == ["NA", "None", "Null"]
    assert reg.frame.loc[5, "flow_status"] == "N/A"
    assert reg.frame.loc[4, "id_number"] == ""
    assert not reg.frame.isna().any().any() and not reg.raw.isna().any().any()


def test_outer_whitespace_trimmed_inner_kept(tmp_path):
    path = tmp_path / "ws.csv"
    path.write_text(" 姓名 ,\u3000身份证号\n  ZHANG WEI ,\u3000431028199003071234 \n", encoding="utf-8")
    reg = read_registry(path)
    assert list(reg.raw.columns) == ["姓名", "身份证号"]
    assert reg.frame.loc[0, "name"] == "ZHANG WEI"
    assert reg.frame.loc[0, "id_number"] == "431028199003071234"


# ---- xlsx ---------------------------------------------------------------------------------------

def make_xlsx(path: Path, title: str | None = None, sheet_name: str = "户籍人口") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet_name
    if title:
        ws.append([title])
    ws.append(["编号", "姓名", "身份证号", "出生日期", "乡镇"])
    ws.append([1, "张伟", 431028199003071000, dt.date(1990, 3, 7), "永乐江镇"])  # ID typed as a number
    ws.append([2, "欧阳晓棠", "43102819881201002X", "1988年12月1日", "城关镇"])    # ID as text
    ws.append([3, "买买提·艾力", 3.10101e17, dt.datetime(1975, 6, 15, 0, 0), "龙海镇"])
    ws.append([4.0, "NA", "431028199003071234", 32939, None])  # date as an Excel serial number
    other = wb.create_sheet("流出人口")
    other.append(["姓名", "出生日期"])
    other.append(["李娜", dt.date(2001, 1, 2)])
    wb.save(path)
    return path


def test_xlsx_cells_as_text(tmp_path):
    path = make_xlsx(tmp_path / "reg.xlsx")
    reg = read_registry(path, key="编号")
    assert reg.encoding == "xlsx" and reg.delimiter is None and reg.sheet == "户籍人口"
    assert list(reg.frame["record_key"]) == ["1", "2", "3", "4"]  # no ".0"
    assert list(reg.frame["id_number"]) == ["431028199003071000", "43102819881201002X", "310101000000000000",
                                            "431028199003071234"]
    assert list(reg.frame["birth_date"]) == ["1990-03-07", "1988年12月1日", "1975-06-15", "32939"]
    assert list(reg.frame["name"]) == ["张伟", "欧阳晓棠", "买买提·艾力", "NA"]
    assert list(reg.frame["line"]) == [2, 3, 4, 5]
    assert reg.frame.loc[3, "unit"] == ""


def test_xlsx_named_sheet_and_title_row(tmp_path):
    path = make_xlsx(tmp_path / "reg.xlsx", title="安仁县户籍人口花名册")
    reg = read_registry(path)
    assert reg.header_line == 2 and list(reg.frame["line"]) == [3, 4, 5, 6]
    other = read_registry(path, sheet="流出人口")
    assert other.sheet == "流出人口" and list(other.frame["birth_date"]) == ["2001-01-02"]
    with pytest.raises(ConfigError) as exc:
        read_registry(path, sheet="Sheet9")
    assert exc.value.exit_code == 2
    assert "Sheet9" in error_text(exc) and "流出人口" in error_text(exc) and "reg.xlsx" in error_text(exc)


def test_xlsx_summary_row_rejected(tmp_path):
    path = tmp_path / "sum.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["姓名", "身份证号", "人数"])
    ws.append(["张伟", "431028199003071234", 1])
    ws.append(["合计", None, 1])
    wb.save(path)
    reg = read_registry(path)
    assert [(r.line, r.reason_key) for r in reg.rejected] == [(3, "load.reject.summary_row")]
    assert reg.rows_read == 2 and len(reg.frame) == 1


def test_corrupt_xlsx(tmp_path):
    path = tmp_path / "broken.xlsx"
    make_xlsx(path)
    path.write_bytes(path.read_bytes()[:300])  # a truncated zip
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 3 and "broken.xlsx" in error_text(exc) and ".xlsx" in error_text(exc)
    text_as_xlsx = tmp_path / "renamed.xlsx"
    text_as_xlsx.write_text("姓名,身份证号\n张伟,431028199003071234\n", encoding="utf-8")
    with pytest.raises(InputError) as exc2:
        read_registry(text_as_xlsx)
    assert "renamed.xlsx" in error_text(exc2) and "不是可读取的" in error_text(exc2, "zh")


def test_password_protected_xlsx(tmp_path):
    path = tmp_path / "secret.xlsx"
    # the start of an OLE compound file whose directory lists EncryptedPackage (what Excel writes)
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + "EncryptedInfo".encode("utf-16-le")
                     + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 512)
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 3
    assert "secret.xlsx" in error_text(exc) and "password" in error_text(exc)
    assert "密码" in error_text(exc, "zh")


def test_old_xls_renamed_to_xlsx(tmp_path):
    path = tmp_path / "renamed_xls.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + "Workbook".encode("utf-16-le") + b"\x00" * 512)
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert "renamed_xls.xlsx" in error_text(exc) and ".xlsx or CSV" in error_text(exc)


def test_unclosed_quote_is_an_error_at_its_line(tmp_path):
    path = tmp_path / "open_quote.csv"
    path.write_text('姓名,身份证号,户籍地址\n张伟,431028199003071234,"郴州市安仁县\n李娜,431028199003071250,长沙市\n'
                    '王芳,431028199003071269,永兴县\n', encoding="utf-8")
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 3
    assert "open_quote.csv" in error_text(exc) and "line 2" in error_text(exc) and "quote" in error_text(exc)
    assert "第 2 行" in error_text(exc, "zh")


def test_xls_asks_to_save_as_xlsx_or_csv(tmp_path):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 3
    assert "old.xls" in error_text(exc) and ".xlsx or CSV" in error_text(exc)
    assert "另存为 .xlsx 或 CSV" in error_text(exc, "zh")


# ---- bad input ---------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(InputError) as exc:
        read_registry(tmp_path / "nowhere.csv")
    assert exc.value.exit_code == 3 and "nowhere.csv" in error_text(exc) and "not found" in error_text(exc)
    assert "文件不存在" in error_text(exc, "zh")


def test_directory_given(tmp_path):
    d = tmp_path / "data.csv"
    d.mkdir()
    with pytest.raises(InputError) as exc:
        read_registry(d)
    assert exc.value.exit_code == 3 and "folder" in error_text(exc)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "reg.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 3 and ".json" in error_text(exc)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 4 and "empty.csv" in error_text(exc) and "empty" in error_text(exc)


@pytest.mark.parametrize("content", ["姓名,身份证号\n", "姓名,身份证号"])
def test_header_only(tmp_path, content):
    path = tmp_path / "hdr.csv"
    path.write_text(content, encoding="gb18030")
    with pytest.raises(DataError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 4
    assert "hdr.csv" in error_text(exc) and "no data rows" in error_text(exc) and "line 1" in error_text(exc)


def test_duplicate_headers_are_named(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("姓名,身份证号,姓名 ,地址,地址\n张伟,431028199003071234,张伟,a,b\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_registry(path)
    msg = error_text(exc)
    assert exc.value.exit_code == 4 and "dup.csv" in msg
    assert "'姓名' (1/3)" in msg and "'地址' (4/5)" in msg


def test_no_name_column(tmp_path):
    path = tmp_path / "noname.csv"
    path.write_text("编号,身份证号\n1,431028199003071234\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 4
    assert "noname.csv" in error_text(exc) and "name column" in error_text(exc) and "'编号'" in error_text(exc)
    assert "找不到姓名列" in error_text(exc, "zh")


def test_neither_id_nor_birth_date(tmp_path):
    path = tmp_path / "noid.csv"
    path.write_text("姓名,性别\n张伟,男\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_registry(path)
    assert exc.value.exit_code == 4 and "noid.csv" in error_text(exc) and "birth-date" in error_text(exc)
    # a birth-date column alone is enough
    path.write_text("姓名,生日\n张伟,1990-01-01\n", encoding="utf-8")
    assert read_registry(path).columns == {"姓名": "name", "生日": "birth_date"}


def test_key_column_missing(tmp_path):
    path = write_text(tmp_path, "k.csv", ROWS)
    with pytest.raises(ConfigError) as exc:
        read_registry(path, key="个案编号")
    assert exc.value.exit_code == 2 and "个案编号" in error_text(exc) and "k.csv" in error_text(exc)


def test_all_rows_rejected(tmp_path):
    path = tmp_path / "bad_rows.csv"
    path.write_text("姓名,身份证号,出生日期\n张伟\n李娜\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_registry(path)
    assert "all 2 data rows" in error_text(exc) and "line 2" in error_text(exc)


# ---- row accounting ----------------------------------------------------------------------------

def accounting_file(tmp_path: Path) -> Path:
    text = "\n".join([
        "编号,姓名,性别,身份证号,乡镇",
        "1,张伟,男,431028199003071234,永乐江镇",          # 2 loaded
        ",,,,",                                          # 3 empty
        "2,欧阳晓棠,女,43102819881201002X",                # 4 too few fields
        "3,买买提·艾力,男,650102197506150019,城关镇,多余",   # 5 extra non-empty field
        "4,NA,女,431028199003071250,龙海镇,",              # 6 extra field but empty: loaded
        "",                                              # 7 blank line
        "小计,,,,2",                                      # 8 subtotal between villages
        ",李娜,女,431028199003071269,龙海镇",               # 9 key empty (with key=编号)
        "5,王芳,女,431028199003071277,龙海镇",             # 10 loaded
        "合计：,,,,4人",                                   # 11 summary
    ]) + "\n"
    path = tmp_path / "acct.csv"
    path.write_text(text, encoding="gb18030")
    return path


def test_row_accounting_with_key(tmp_path):
    reg = read_registry(accounting_file(tmp_path), key="编号")
    assert reg.rows_read == 10
    assert reg.rows_read == len(reg.frame) + len(reg.rejected)
    assert list(reg.frame["record_key"]) == ["1", "4", "5"]
    assert list(reg.frame["line"]) == [2, 6, 10]
    assert [(r.line, r.reason_key) for r in reg.rejected] == [
        (3, "load.reject.empty_row"), (4, "load.reject.field_count"), (5, "load.reject.field_count"),
        (7, "load.reject.empty_row"), (8, "load.reject.summary_row"), (9, "load.reject.key_missing"),
        (11, "load.reject.summary_row")]
    by_line = {r.line: r for r in reg.rejected}
    assert by_line[4].reason == "wrong number of fields: expected 5, found 4"
    assert by_line[5].params == {"expected": 5, "found": 6}
    assert by_line[9].reason == "key column '编号' is empty"
    # raw text of rejected rows never shows a full ID number
    assert by_line[4].raw == "2,欧阳晓棠,女,431028********002X"
    assert "650102197506150019" not in by_line[5].raw and "650102********0019" in by_line[5].raw


def test_row_accounting_without_key_numbers_rows_stably(tmp_path):
    reg = read_registry(accounting_file(tmp_path))
    # 1-based data row numbers, rejected rows counted, so a key does not move when a row is fixed
    assert list(reg.frame["record_key"]) == ["1", "5", "8", "9"]
    assert list(reg.frame["name"]) == ["张伟", "NA", "李娜", "王芳"]
    assert reg.rows_read == len(reg.frame) + len(reg.rejected) == 10


def test_rejection_reasons_in_chinese(tmp_path):
    set_lang("zh")
    reg = read_registry(accounting_file(tmp_path), key="编号")
    reasons = {r.line: r.reason for r in reg.rejected}
    assert reasons[3] == "空行"
    assert reasons[4] == "字段数不对：应为 5 个，实际 4 个"
    assert "汇总行" in reasons[11]


def test_duplicate_keys_named_with_lines(tmp_path):
    path = tmp_path / "dupkey.csv"
    path.write_text("身份证号,姓名\n431028199003071234,张伟\n431028199003071250,李娜\n431028199003071234,章玮\n",
                    encoding="utf-8")
    with pytest.raises(DataError) as exc:
        read_registry(path, key="身份证号")
    msg = error_text(exc)
    assert exc.value.exit_code == 4 and "dupkey.csv" in msg
    assert "431028********1234" in msg and "431028199003071234" not in msg
    assert "line(s) 2, 4" in msg
    assert "第 2, 4 行" not in msg
    set_lang("zh")
    with pytest.raises(DataError) as exc_zh:
        read_registry(path, key="身份证号")
    assert "重复" in error_text(exc_zh, "zh") and "第 2, 4 行" in error_text(exc_zh, "zh")


# ---- column mapping ----------------------------------------------------------------------------

def test_aliases_ignore_spaces_width_and_case(tmp_path):
    path = tmp_path / "alias.csv"
    path.write_text("姓 名,ＩＤ,Birth_Date,*性别,现 住 址,乡镇（街道）\n张伟,431028199003071234,1990-03-07,男,深圳,城关镇\n",
                    encoding="utf-8")
    reg = read_registry(path)
    assert reg.columns == {"姓 名": "name", "ＩＤ": "id_number", "Birth_Date": "birth_date", "*性别": "sex",
                           "现 住 址": "residence", "乡镇（街道）": "unit"}
    assert normalise_header(" 乡镇（街道） ") == normalise_header("乡镇(街道)")


def test_explicit_mapping_overrides_and_extends(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("姓名,证件号,户籍住址,现住址,备注\n张伟,431028199003071234,湖南省郴州市安仁县,深圳,x\n",
                    encoding="utf-8")
    with pytest.raises(DataError):
        read_registry(path)  # 证件号 and 户籍住址 are not aliases
    reg = read_registry(path, mapping={"证件号": "id_number", "户籍住址": "hukou", "现住址": "-"})
    assert reg.columns == {"姓名": "name", "证件号": "id_number", "户籍住址": "hukou"}
    assert reg.frame.loc[0, "hukou"] == "湖南省郴州市安仁县"
    assert reg.frame.loc[0, "residence"] == ""
    assert reg.raw.loc[0, "备注"] == "x"  # unknown columns carried along


def test_explicit_mapping_wins_over_alias_for_the_same_field(tmp_path):
    path = tmp_path / "m2.csv"
    path.write_text("姓名,身份证号,公民身份号码\n张伟,4.31028E+17,431028199003071234\n", encoding="utf-8")
    auto = read_registry(path)
    assert auto.columns == {"姓名": "name", "身份证号": "id_number"}
    assert auto.shadowed == {"公民身份号码": "id_number"}
    reg = read_registry(path, mapping={"公民身份号码": "id_number"})
    assert reg.frame.loc[0, "id_number"] == "431028199003071234"
    assert reg.columns == {"姓名": "name", "公民身份号码": "id_number"}


def test_two_unit_columns_first_wins_and_is_reported(tmp_path):
    path = tmp_path / "unit.csv"
    path.write_text("姓名,身份证号,乡镇,村\n张伟,431028199003071234,永乐江镇,大石村\n", encoding="utf-8")
    reg = read_registry(path)
    assert reg.columns["乡镇"] == "unit" and "村" not in reg.columns
    assert reg.shadowed == {"村": "unit"}
    assert reg.frame.loc[0, "unit"] == "永乐江镇" and reg.raw.loc[0, "村"] == "大石村"
    assert any("村" in n and "乡镇" in n for n in reg.notes())
    set_lang("zh")
    assert any("已使用“乡镇”" in n for n in reg.notes())
    reg2 = read_registry(path, mapping={"村": "unit"})
    assert reg2.frame.loc[0, "unit"] == "大石村"


def test_mapping_errors(tmp_path):
    path = write_text(tmp_path, "m.csv", ROWS)
    with pytest.raises(ConfigError) as exc:
        read_registry(path, mapping={"户籍地址": "huji"})
    assert exc.value.exit_code == 2 and "huji" in error_text(exc) and "hukou" in error_text(exc)
    with pytest.raises(ConfigError) as exc:
        read_registry(path, mapping={"户口地址": "hukou"})
    assert "户口地址" in error_text(exc) and "m.csv" in error_text(exc)
    with pytest.raises(ConfigError) as exc:
        read_registry(path, mapping={"户籍地址": "hukou", "流入地": "hukou"})
    assert "户籍地址" in error_text(exc) and "流入地" in error_text(exc)


def test_soft_mapping_applies_only_where_the_header_exists(tmp_path):
    path = tmp_path / "dest.csv"
    path.write_text("姓名,身份证号,户籍所在地详址\n张伟,431028199003071234,郴州市\n", encoding="utf-8")
    reg = read_registry(path, soft_mapping={"户籍地址详细": "hukou", "户籍所在地详址": "hukou"})
    assert reg.columns["户籍所在地详址"] == "hukou"


def test_parse_map_options():
    assert parse_map_options(["户籍住址=hukou", "证件 号码 = ID_NUMBER", "a=b=name", "现住址=-"]) == {
        "户籍住址": "hukou", "证件 号码": "id_number", "a=b": "name", "现住址": "-"}
    for bad in ["户籍住址", "=hukou", "户籍住址="]:
        with pytest.raises(ConfigError) as exc:
            parse_map_options([bad])
        assert exc.value.exit_code == 2 and "COLUMN=field" in error_text(exc)
    with pytest.raises(ConfigError) as exc:
        parse_map_options(["户籍住址=address"])
    assert "address" in error_text(exc) and "hukou" in error_text(exc)
    assert "未知字段" in error_text(exc, "zh")


def test_unnamed_columns(tmp_path):
    path = tmp_path / "unnamed.csv"
    path.write_text("姓名,身份证号,,\n张伟,431028199003071234,,备注一\n李娜,431028199003071250,,\n", encoding="utf-8")
    reg = read_registry(path)
    assert list(reg.raw.columns) == ["姓名", "身份证号", "_col4"]  # empty unnamed column 3 dropped
    assert list(reg.raw["_col4"]) == ["备注一", ""]
    assert reg.rows_read == 2 and not reg.rejected


# ---- speed -------------------------------------------------------------------------------------

def test_100k_rows_load_fast(tmp_path):
    header = "编号,姓名,性别,出生日期,公民身份号码,户籍地址,流动状态,流入地,乡镇,登记日期"
    names = ["张伟", "欧阳晓棠", "买买提·艾力", "王芳", "NA", "章玮"]
    body = "\n".join(
        f"{i},{names[i % 6]},{'男女'[i % 2]},1990-05-{i % 28 + 1:02d},4310281990050{i % 100000:05d},"
        f"湖南省郴州市安仁县永乐江镇{i % 50}村,流出,广东省深圳市,永乐江镇,2023-01-01"
        for i in range(1, 100_001))
    path = tmp_path / "big.csv"
    path.write_bytes((header + "\n" + body + "\n").encode("gb18030"))
    start = time.process_time()  # CPU time of this process: other jobs on the machine do not count
    reg = read_registry(path, key="编号")
    elapsed = time.process_time() - start
    assert reg.rows_read == 100_000 and len(reg.frame) == 100_000
    assert reg.frame.loc[99_999, "id_number"] == "431028199005000000"
    assert elapsed < 2.0, f"100k rows took {elapsed:.2f} s of CPU"


def test_result_type():
    assert set(LoadedRegistry.__dataclass_fields__) >= {
        "path", "encoding", "delimiter", "sheet", "columns", "key_column", "frame", "raw", "rejected", "rows_read"}


# ---- fast path against the exact csv-module path -------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import reconcile.loading as loading  # noqa: E402

_cell = st.text(alphabet=["张", "伟", "·", "a", "1", "X", ",", '"', "\n", " ", "\u3000", ";", "|"], max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_cell, _cell, _cell), min_size=1, max_size=8),
       reader=st.sampled_from(["pandas", "arrow", "exact"]))
def test_round_trip_through_csv_writer(tmp_path, monkeypatch, rows, reader):
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["姓名", "身份证号", "备注"])
    expected_lines, line = [], 2
    for r in rows:
        writer.writerow(r)
        expected_lines.append(line)
        line += 1 + sum(v.count("\n") for v in r)
    path = tmp_path / "rt.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    with monkeypatch.context() as m:
        if reader == "exact":  # force the csv-module reader; all paths must agree
            m.setattr(loading, "_grid_fast", lambda *a, **k: None)
        elif reader == "arrow":   # Arrow's reader on a small file too
            m.setattr(loading, "ARROW_MIN_BYTES", 0)
        stripped = [tuple(v.strip() for v in r) for r in rows]
        if all(not any(r) for r in stripped):
            with pytest.raises(DataError):
                read_registry(path)
            return
        reg = read_registry(path)
    loaded = [(s, ln) for s, ln in zip(stripped, expected_lines) if any(s)]
    assert reg.delimiter == ","
    assert list(zip(reg.frame["name"], reg.frame["id_number"], reg.raw["备注"])) == [s for s, _ in loaded]
    assert list(reg.frame["line"]) == [ln for _, ln in loaded]
    assert [r.line for r in reg.rejected] == [ln for s, ln in zip(stripped, expected_lines) if not any(s)]
    assert reg.rows_read == len(rows)


def test_workbook_with_a_text_extension(tmp_path):
    path = make_xlsx(tmp_path / "export.xlsx")
    renamed = path.rename(tmp_path / "export.csv")
    with pytest.raises(InputError) as exc:
        read_registry(renamed)
    assert exc.value.exit_code == 3 and "export.csv" in error_text(exc) and ".xlsx" in error_text(exc)
    assert "Excel 工作簿" in error_text(exc, "zh")


# ---- Arrow's reader (large files) against pandas' -------------------------------------------------

def _grids(data: bytes, monkeypatch, delim: str = ","):
    """(pandas' grid, Arrow's grid, whether Arrow split it) of the same bytes."""
    used = []
    real = loading._arrow_cells

    def spy(*a, **k):
        got = real(*a, **k)
        used.append(got is not None)
        return got

    with monkeypatch.context() as m:
        m.setattr(loading, "ARROW_MIN_BYTES", 1 << 62)
        by_pandas = loading._grid_fast(data, delim, 0)
    with monkeypatch.context() as m:
        m.setattr(loading, "ARROW_MIN_BYTES", 0)
        m.setattr(loading, "_arrow_cells", spy)
        by_arrow = loading._grid_fast(data, delim, 0)
    return by_pandas, by_arrow, bool(used) and all(used)


def _same_grid(a, b) -> bool:
    return (a.header == b.header and a.header_line == b.header_line and list(a.lines) == list(b.lines)
            and all(list(x) == list(y) for x, y in zip(a.cells, b.cells, strict=True))
            and list(a.nfields) == list(b.nfields) and list(a.extra_nonempty) == list(b.extra_nonempty))


def test_arrow_reader_splits_registries_as_pandas_does(monkeypatch):
    text = ("编号,姓名,性别,出生日期,公民身份号码,户籍地址\n"
            '1,张伟,男,1990-05-06,431028199005061234,"湖南省郴州市安仁县,永乐江镇"\n'
            '2,\u3000买买提·艾力 ,女,1990/5/6, 43102819900506123X\t,"新疆""喀什""疏附县"\n'
            '3,歐陽曉棠,,1990年5月,431028900506123,"多行\n地址"\n'
            "4,,,,,\n"
            "5,王芳,女,19900506,4.31028E+17,\xa0\n")
    by_pandas, by_arrow, used = _grids(text.encode("utf-8"), monkeypatch)
    assert used   # Arrow split it, no fallback
    assert _same_grid(by_pandas, by_arrow)
    assert list(by_arrow.cells[1]) == ["张伟", "买买提·艾力", "歐陽曉棠", "", "王芳"]
    assert list(by_arrow.cells[5]) == ["湖南省郴州市安仁县,永乐江镇", '新疆"喀什"疏附县', "多行\n地址", "", ""]
    assert list(by_arrow.lines) == [2, 3, 4, 6, 7]   # record 3 spans two lines


def test_arrow_reader_shares_one_object_per_repeated_value(monkeypatch):
    rows = "".join(f"{i},{'男女'[i % 2]},4310281990050{i:05d}\n" for i in range(3000))
    _, by_arrow, used = _grids(("编号,性别,身份证号\n" + rows).encode("utf-8"), monkeypatch)
    assert used
    assert len({id(v) for v in by_arrow.cells[1]}) == 2          # 男, 女: one object each
    assert len({id(v) for v in by_arrow.cells[2]}) == 3000       # distinct numbers stay distinct
    assert all(type(v) is str for v in by_arrow.cells[2])


@pytest.mark.parametrize("body", [
    "1,张伟,男\n2,李娜\n",              # a record short of fields: pandas pads it, then rejected
    "1,张伟,男\n\n2,李娜,女\n",          # an empty line: a rejected row of its own
    '1,张"三,男\n',                    # a stray quote: the csv module reads it
    '1,"张"三,男\n',                   # text after a closing quote: pandas reads it
])
def test_arrow_reader_leaves_irregular_files_to_the_other_readers(monkeypatch, body):
    by_pandas, by_arrow, used = _grids(("编号,姓名,性别\n" + body).encode("utf-8"), monkeypatch)
    assert not used
    assert (by_pandas is None) == (by_arrow is None)
    if by_pandas is not None:
        assert _same_grid(by_pandas, by_arrow)


def test_arrow_reader_missing_falls_back_to_pandas(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)   # import fails as when not installed
    by_pandas, by_arrow, used = _grids("编号,姓名\n1, 张伟 \n".encode("utf-8"), monkeypatch)
    assert not used and _same_grid(by_pandas, by_arrow)
    monkeypatch.setattr(loading, "ARROW_MIN_BYTES", 0)
    path = tmp_path / "r.csv"
    path.write_text("编号,姓名,身份证号\n1, 张伟 ,431028199005061234\n", encoding="gb18030")
    assert list(read_registry(path).frame["name"]) == ["张伟"]


def test_cells_lose_exactly_what_str_strip_removes():
    import sys

    assert set(loading._PY_WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def test_arrow_reader_hands_its_freed_memory_back(monkeypatch):
    # Arrow's allocator would keep the file's buffers (0.75 GB at 1,000,000 persons) for reuse
    import pyarrow as pa

    released = []
    pool = pa.default_memory_pool()
    monkeypatch.setattr(pa, "default_memory_pool", lambda: type("Pool", (), {"release_unused": lambda self: released.append(1)})())
    _, by_arrow, used = _grids("编号,姓名\n1,张伟\n".encode("utf-8"), monkeypatch)
    assert used and released == [1]
    assert pool.backend_name   # (the real pool untouched)
