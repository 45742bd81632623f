"""Names: normal form, pinyin key with surname readings, surname/given split."""
from __future__ import annotations

import pytest

from reconcile.names import NameInfo, name_pinyin, normalise_name, split_name, surname_reading


def key(raw: str) -> str:
    return name_pinyin(normalise_name(raw).name)


# --- normal form -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["张伟", " 张伟 ", "张 伟", "张　伟", "张\t伟", "\u200b张伟"])
def test_han_whitespace_removed(raw: str) -> None:
    assert normalise_name(raw) == NameInfo("张伟", "han", False, False)


def test_traditional_to_simplified() -> None:
    assert normalise_name("張偉") == NameInfo("张伟", "han", True, False)
    assert normalise_name("歐陽修") == NameInfo("欧阳修", "han", True, False)
    assert normalise_name("劉德華") == NameInfo("刘德华", "han", True, False)
    assert normalise_name("陳 國 強") == NameInfo("陈国强", "han", True, False)


def test_surname_yu_is_protected_from_t2s() -> None:
    # 於 is a surname of its own: t2s would turn it into 于
    assert normalise_name("於明") == NameInfo("於明", "han", False, False)
    assert normalise_name("於梨華") == NameInfo("於梨华", "han", True, False)
    # 乾 and 余 are left alone by t2s anyway
    assert normalise_name("乾红").name == "乾红"
    assert normalise_name("余华").name == "余华"


@pytest.mark.parametrize("raw", [
    "买买提·艾力",      # U+00B7 middle dot
    "买买提•艾力",      # U+2022 bullet
    "买买提・艾力",     # U+30FB katakana middle dot
    "买买提･艾力",      # U+FF65 half-width katakana middle dot
    "买买提‧艾力",      # U+2027 hyphenation point
    "买买提．艾力",     # U+FF0E full-width full stop
    "买买提.艾力",
    "买买提。艾力",
    "买买提-艾力",
    "买买提—艾力",
    "买买提 · 艾力",
    "买买提··艾力",
    "買買提·艾力",
])
def test_minority_dot_variants(raw: str) -> None:
    info = normalise_name(raw)
    assert (info.name, info.script, info.minority) == ("买买提·艾力", "han", True)
    assert name_pinyin(info.name) == "mai mai ti ai li"


def test_minority_name_without_dot_has_the_same_pinyin() -> None:
    info = normalise_name("买买提艾力")
    assert info == NameInfo("买买提艾力", "han", False, False)
    assert name_pinyin(info.name) == key("买买提·艾力")


def test_three_part_minority_name() -> None:
    info = normalise_name("阿卜杜•热合曼•买买提")
    assert info.name == "阿卜杜·热合曼·买买提"
    assert split_name(info.name) == ("阿卜杜", "热合曼·买买提")


@pytest.mark.parametrize("raw", ["ZHANG WEI", "Zhang Wei", "zhang  wei", "Zhāng Wěi", "ZHĀNG WĚI", "ＺＨＡＮＧ　ＷＥＩ",
                                 " zhang wei ", "Zhang.Wei", "ZHANG,WEI"])
def test_latin_names(raw: str) -> None:
    assert normalise_name(raw) == NameInfo("ZHANG WEI", "latin", False, False)


def test_latin_u_umlaut_folds_to_v_like_pypinyin() -> None:
    assert normalise_name("Lǚ Wei").name == "LV WEI"
    assert normalise_name("LÜ WEI").name == "LV WEI"
    assert key("Lǚ Wei") == key("吕伟") == "lv wei"
    # passport spelling LYU and typists' LUE/NUE fold onto the same key
    assert key("LYU WEI") == "lv wei"
    assert key("NUE") == "nve"


def test_latin_pinyin_matches_han_pinyin() -> None:
    assert key("ZHANG WEI") == key("张伟") == "zhang wei"
    assert key("ZHANG XIAOWEI") == key("张小伟") == "zhang xiao wei"
    assert key("OUYANG XIU") == key("欧阳修") == "ou yang xiu"


def test_latin_segmentation_prefers_consonant_initials() -> None:
    assert key("XIAN") == "xian"            # one syllable; Xi'an needs the apostrophe
    assert key("XI'AN") == "xi an"
    assert key("FANGE") == "fan ge"
    assert key("JOHN SMITH") == "john smith"  # not pinyin: kept


def test_mixed_and_empty() -> None:
    assert normalise_name("张WEI") == NameInfo("张WEI", "mixed", False, False)
    assert key("张WEI") == "zhang wei"
    assert normalise_name("张伟2").script == "mixed"
    assert normalise_name("") == NameInfo("", "empty", False, False)
    assert normalise_name(" \u3000 ") == NameInfo("", "empty", False, False)
    assert name_pinyin("") == ""


# --- pinyin with surname readings ---------------------------------------------------------------

def test_homophones_share_a_key() -> None:
    assert key("张伟") == key("章玮") == "zhang wei"


@pytest.mark.parametrize("a,b,reading", [
    ("单丽", "善丽", "shan li"),
    ("区明", "欧明", "ou ming"),
    ("曾华", "增华", "zeng hua"),
    ("覃勇", "秦勇", "qin yong"),
    ("仇英", "裘英", "qiu ying"),
    ("解放", "谢放", "xie fang"),
])
def test_heteronym_surnames(a: str, b: str, reading: str) -> None:
    assert key(a) == key(b) == reading


@pytest.mark.parametrize("name,reading", [
    ("查良镛", "zha liang yong"),
    ("朴正", "piao zheng"),
    ("盖伟", "ge wei"),
    ("翟磊", "zhai lei"),
    ("缪军", "miao jun"),
    ("尉迟恭", "yu chi gong"),
    ("万俟卨", "mo qi xie"),
    ("长孙无忌", "zhang sun wu ji"),
    ("欧阳晓棠", "ou yang xiao tang"),
])
def test_surname_table_readings(name: str, reading: str) -> None:
    assert key(name) == reading


def test_surname_reading_only_applies_to_the_surname() -> None:
    assert key("王单") == "wang dan"
    assert key("李曾") == "li ceng"
    assert surname_reading("单") == "shan"
    assert surname_reading("王") == "wang"


# --- split ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("张伟", ("张", "伟")),
    ("张小伟", ("张", "小伟")),
    ("欧阳修", ("欧阳", "修")),
    ("欧阳晓棠", ("欧阳", "晓棠")),
    ("司马光", ("司马", "光")),
    ("诸葛亮", ("诸葛", "亮")),
    ("上官婉儿", ("上官", "婉儿")),
    ("东方朔", ("东方", "朔")),
    ("皇甫嵩", ("皇甫", "嵩")),
    ("欧阳", ("欧", "阳")),        # two characters: never all surname
    ("单于伟", ("单", "于伟")),    # 单于 left out of the compounds on purpose
    ("买买提·艾力", ("买买提", "艾力")),
    ("ZHANG WEI", ("ZHANG", "WEI")),
    ("ZHANG XIAO WEI", ("ZHANG", "XIAO WEI")),
    ("张", ("张", "")),
    ("", ("", "")),
])
def test_split_name(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


def test_t2s_exceptions_for_names() -> None:
    assert normalise_name("张乾").name == "张乾"          # t2s alone gives 张干
    assert key("张乾") == "zhang qian"
    assert normalise_name("李頔") == NameInfo("李頔", "han", False, False)   # not 𬱖
    assert normalise_name("於於").name == "於于"          # only the surname position is kept
