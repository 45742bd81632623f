"""Administrative divisions: names, renumbered codes, and free address text -> county."""
from __future__ import annotations

import pytest

from reconcile.divisions import (
    address_detail,
    city_code,
    current_code,
    divisions,
    full_name,
    is_current,
    province_code,
    region_name,
    resolve_address,
)


def test_table_has_current_and_historical_codes() -> None:
    table = divisions()
    assert len(table) > 6000
    assert table["431028"].current and table["431028"].name == "安仁县"
    assert not table["432831"].current and table["432831"].name == "安仁县"
    # a code that carried two names: the latest is its name, both are kept
    assert table["431102"].names == ("芝山区", "零陵区")
    assert is_current("431028") and not is_current("432831") and not is_current("999999")


@pytest.mark.parametrize("code,name,full", [
    ("431028", "安仁县", "湖南省郴州市安仁县"),
    ("432831", "安仁县", "湖南省郴州地区安仁县"),   # historical code, names of its time
    ("431000", "郴州市", "湖南省郴州市"),
    ("430000", "湖南省", "湖南省"),
    ("110105", "朝阳区", "北京市朝阳区"),
    ("220104", "朝阳区", "吉林省长春市朝阳区"),
    ("429004", "仙桃市", "湖北省仙桃市"),            # county-level city directly under the province
    ("810000", "香港特别行政区", "香港特别行政区"),
    ("999999", "", ""),
    ("", "", ""),
])
def test_names(code: str, name: str, full: str) -> None:
    assert region_name(code) == name
    assert full_name(code) == full


@pytest.mark.parametrize("old,new", [
    ("432831", "431028"),   # 安仁县: same name, new prefecture
    ("432822", "431021"),   # 桂阳县 (DESIGN's 郴州 example: 432822 before 1994)
    ("432800", "431000"),   # 郴州地区 -> 郴州市 (same stem)
    ("432825", "431081"),   # 资兴县 -> 资兴市 via 432802 (county became a city)
    ("431028", "431028"),   # current codes map to themselves
    ("432801", "432801"),   # old county-level 郴州市 was split: no single successor, kept
    ("999999", "999999"),   # unknown: kept
])
def test_current_code(old: str, new: str) -> None:
    assert current_code(old) == new


def test_city_and_province_codes_follow_renumbering() -> None:
    assert city_code("431028") == "431000"
    assert city_code("432831") == "431000"
    assert city_code("432831", current=False) == "432800"
    assert city_code("432801") == "431000"   # its prefecture 432800 became 431000
    assert province_code("432831") == "430000"
    assert city_code("") == "" and province_code("12") == ""


AnRen = ("431028", "湖南省郴州市安仁县")


@pytest.mark.parametrize("text", [
    "湖南省郴州市安仁县永乐江镇幸福村3组",
    "湖南郴州安仁县城关镇",
    "湖南省郴州安仁县",
    "湖南省安仁县龙海镇",
    "郴州市安仁县",
    "郴州安仁县牌楼乡",
    "郴州安仁",
    "郴州市安仁",
    "安仁县城关镇解放路12号",
    "湖南省 郴州市 安仁县",
    "湖南省郴州地区安仁县",    # the old prefecture name
    "湖南省郴州市安仁县安仁县",
])
def test_anren_in_every_form(text: str) -> None:
    assert resolve_address(text) == AnRen


@pytest.mark.parametrize("text,expected", [
    ("北京市朝阳区建国路88号", ("110105", "北京市朝阳区")),
    ("北京朝阳", ("110105", "北京市朝阳区")),
    ("吉林省长春市朝阳区", ("220104", "吉林省长春市朝阳区")),
    ("长春市朝阳区", ("220104", "吉林省长春市朝阳区")),
    ("长春朝阳区", ("220104", "吉林省长春市朝阳区")),
    ("辽宁省朝阳市朝阳县", ("211321", "辽宁省朝阳市朝阳县")),
    ("朝阳市", ("211300", "辽宁省朝阳市")),
    ("南京市鼓楼区", ("320106", "江苏省南京市鼓楼区")),
    ("福州鼓楼区", ("350102", "福建省福州市鼓楼区")),
    ("湖南省长沙市长沙县", ("430121", "湖南省长沙市长沙县")),
    ("长沙县黄兴镇", ("430121", "湖南省长沙市长沙县")),
    ("吉林市", ("220200", "吉林省吉林市")),
    ("湘西州吉首市", ("433101", "湖南省湘西土家族苗族自治州吉首市")),
    ("湘西吉首", ("433101", "湖南省湘西土家族苗族自治州吉首市")),
    ("湖南江华", ("431129", "湖南省永州市江华瑶族自治县")),
    ("江华县", ("431129", "湖南省永州市江华瑶族自治县")),
    ("青海省黄南州河南县", ("632324", "青海省黄南藏族自治州河南蒙古族自治县")),
    ("上海市浦东新区", ("310115", "上海市浦东新区")),
    ("新疆乌鲁木齐市天山区", ("650102", "新疆维吾尔自治区乌鲁木齐市天山区")),
    ("湖北仙桃", ("429004", "湖北省仙桃市")),
    ("广东省深圳市南山区", ("440305", "广东省深圳市南山区")),
    ("广东省东莞市", ("441900", "广东省东莞市")),
    ("芝山区", ("431102", "湖南省永州市零陵区")),   # former name of a code
    # a short province name before a city or county whose name starts with a character that
    # otherwise ends a short name (镇 乡 大 小 新 中 ...: 江苏镇 would be a town)
    ("江苏镇江", ("321100", "江苏省镇江市")),
    ("江苏镇江丹阳", ("321181", "江苏省镇江市丹阳市")),
    ("辽宁大连", ("210200", "辽宁省大连市")),
    ("广东中山", ("442000", "广东省中山市")),
    ("山西大同", ("140200", "山西省大同市")),
    ("河南新乡", ("410700", "河南省新乡市")),
    ("河北大名", ("130425", "河北省邯郸市大名县")),
    ("北京大兴", ("110115", "北京市大兴区")),
])
def test_resolve_address(text: str, expected: tuple[str, str]) -> None:
    assert resolve_address(text) == expected


@pytest.mark.parametrize("text", [
    "朝阳区建国路",     # Beijing or Changchun: not guessed
    "鼓楼区中山路",     # Nanjing, Fuzhou, Xuzhou, Kaifeng ...
    "城关镇",
    "安仁路15号",        # a road named after the county
    "中山路",
    "",
    "不详",
    "12345",
])
def test_unresolvable_or_ambiguous(text: str) -> None:
    assert resolve_address(text) == ("", "")


def test_coarser_level_when_no_county() -> None:
    assert resolve_address("湖南省郴州市北湖路") == ("431000", "湖南省郴州市")
    assert resolve_address("湖南省城关镇") == ("430000", "湖南省")
    # a short name followed by 镇 stays a town's name unless what follows is a place under it:
    # 永兴镇 is a town here (镇江 is in Jiangsu), and 中山路 a road
    assert resolve_address("湖南永兴镇江口村") == ("430000", "湖南省")
    assert resolve_address("广东中山路12号") == ("440000", "广东省")
    # a county inconsistent with the province named first is not taken
    assert resolve_address("广东省安仁县") == ("440000", "广东省")
    # short county name followed by a town marker is the town (大邑县安仁镇 in Sichuan)
    assert resolve_address("郴州安仁镇") == ("431000", "湖南省郴州市")


def test_successor_is_not_taken_from_an_old_name_of_another_code() -> None:
    # 湖州's old 郊区 (330511) is not 嘉兴's 330411, which was called 郊区 before 秀洲区
    assert current_code("330511") == "330511"
    # county transferred to a new prefecture keeps its name: followed
    assert current_code("341223") == "341621"   # 涡阳县: 阜阳 -> 亳州
    assert full_name("460023") == "海南省琼海县"   # directly under the province: no prefecture


def test_old_prefecture_in_the_address() -> None:
    # 涡阳县 belonged to 阜阳 until 2000, now to 亳州: the county named in full decides
    assert resolve_address("安徽省阜阳地区涡阳县城关镇") == ("341621", "安徽省亳州市涡阳县")
    # but a short county name is only read inside the named prefecture
    assert resolve_address("安徽省阜阳涡阳") == ("341200", "安徽省阜阳市")


def test_a_load_scans_each_address_once_and_forgets_its_scans_after(monkeypatch) -> None:
    from reconcile import divisions

    scanned: list[str] = []
    real = divisions._scan
    monkeypatch.setattr(divisions, "_scan", lambda text: scanned.append(text) or real(text))
    resolve_address.cache_clear()
    divisions._detail_of.cache_clear()
    # each village scanned once, by the county resolution (standardise) and the detail (keys)
    # together, and not kept in the outside cache, which holds its 2^19 scans for the whole run
    # (no digits: the whole text is what both read)
    monkeypatch.setattr(divisions, "_scan_cached", lambda text: pytest.fail("the outside cache was used"))
    villages = [f"湖南郴州安仁县永乐江镇{chr(0x4E00 + i // 300)}{chr(0x4E00 + i % 300)}村" for i in range(70_000)]
    with divisions.remembered_scans():
        counties = {resolve_address(v)[0] for v in villages}
        details = {address_detail(v) for v in villages[:3]}
    assert counties == {"431028"}
    assert details == {"永乐江镇一一村", "永乐江镇一丁村", "永乐江镇一丂村"}
    assert len(scanned) == len(villages)
    assert divisions._SCANS is None
    assert resolve_address.cache_info().currsize == 0 and divisions._detail_of.cache_info().currsize == 0
    # outside a load: the ordinary cache
    monkeypatch.undo()
    assert address_detail("湖南省郴州市安仁县永乐江镇江林村3组") == "永乐江镇江林村3组"
