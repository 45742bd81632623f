"""Config files (TOML, UTF-8 with or without BOM) and merging of loading options."""
from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.config import LoadOptions, load_config, loading_options
from reconcile.errors import ConfigError
from reconcile.i18n import set_lang
from reconcile.loading import parse_map_options, read_registry

CONFIG = """\
# 比对配置
key = "编号"
encoding = "gb18030"

[columns]
"户籍住址" = "hukou"
"证件号" = "ID_Number"
"村" = "-"

[origin]
key = "个案编号"
[origin.columns]
"户籍地详细地址" = "hukou"

[dest]
encoding = "utf-8"
sheet = "流入人口"

[match]
threshold = 0.9

[targets]
id_entry_rate = 0.95
"""


@pytest.fixture(autouse=True)
def english():
    set_lang("en")
    yield
    set_lang("en")


def write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "reconcile.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8"))
    return path


@pytest.mark.parametrize("bom", [False, True])
def test_load_config_with_and_without_bom(tmp_path, bom):
    cfg = load_config(write(tmp_path, CONFIG, bom=bom))
    assert cfg["key"] == "编号" and cfg["encoding"] == "gb18030"
    assert cfg["columns"] == {"户籍住址": "hukou", "证件号": "id_number", "村": "-"}  # field names normalised
    assert cfg["origin"]["columns"] == {"户籍地详细地址": "hukou"}
    # sections for other commands are kept untouched
    assert cfg["match"] == {"threshold": 0.9} and cfg["targets"] == {"id_entry_rate": 0.95}


def test_loading_options_per_side(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG))
    assert loading_options(cfg, None) == {
        "encoding": "gb18030", "sheet": None, "key": "编号",
        "mapping": {"户籍住址": "hukou", "证件号": "id_number", "村": "-"}, "soft_mapping": None}
    origin = loading_options(cfg, "origin")
    assert origin["key"] == "个案编号" and origin["encoding"] == "gb18030"
    assert origin["mapping"] == {"户籍地详细地址": "hukou"}
    # the shared entry for the same field gives way to the side's own; the others stay, softly
    assert origin["soft_mapping"] == {"证件号": "id_number", "村": "-"}
    dest = loading_options(cfg, "dest")
    assert dest["encoding"] == "utf-8" and dest["sheet"] == "流入人口" and dest["key"] == "编号"
    assert dest["mapping"] is None
    assert dest["soft_mapping"] == {"户籍住址": "hukou", "证件号": "id_number", "村": "-"}
    with pytest.raises(ValueError):
        loading_options(cfg, "destination")


def test_cli_options_override_config(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG))
    opts = LoadOptions.from_config(cfg).merged(encoding="utf-8", key=None,
                                              mapping=parse_map_options(["户籍地=hukou", "证件号=-"]))
    assert opts.encoding == "utf-8" and opts.key == "编号"  # given wins, not given keeps the config's
    # the command line's 户籍地=hukou replaces the config's 户籍住址=hukou (same field)
    assert opts.mapping == {"证件号": "-", "村": "-", "户籍地": "hukou"}
    assert opts.kwargs()["mapping"] == {"证件号": "-", "村": "-", "户籍地": "hukou"}


def test_config_drives_read_registry(tmp_path):
    cfg_path = write(tmp_path, '[columns]\n"户籍住址" = "hukou"\n"证件号" = "id_number"\n\nkey = "编号"\n', bom=True)
    with pytest.raises(ConfigError) as exc:  # 'key' after a table belongs to the table: caught as a bad value
        load_config(cfg_path)
    assert "columns" in exc.value.render("en")
    cfg_path = write(tmp_path, 'key = "编号"\n[columns]\n"户籍住址" = "hukou"\n"证件号" = "id_number"\n', bom=True)
    data = tmp_path / "origin.csv"
    data.write_bytes("编号,姓名,证件号,户籍住址,村\n1,张伟,431028199003071234,湖南省郴州市安仁县,大石村\n"
                     "2,买买提·艾力,650102197506150019,新疆乌鲁木齐市,\n".encode("gb18030"))
    reg = read_registry(data, **loading_options(load_config(cfg_path)))
    assert reg.key_column == "编号"
    assert reg.columns == {"姓名": "name", "证件号": "id_number", "户籍住址": "hukou", "村": "unit"}
    assert list(reg.frame["hukou"]) == ["湖南省郴州市安仁县", "新疆乌鲁木齐市"]
    assert list(reg.frame["id_number"]) == ["431028199003071234", "650102197506150019"]


def test_shared_columns_fit_both_sides_of_a_match(tmp_path):
    cfg = load_config(write(tmp_path, '[columns]\n"户籍住址" = "hukou"\n"户籍所在地址" = "hukou"\n'
                                      '"证件号" = "id_number"\n'))
    origin = tmp_path / "o.csv"
    origin.write_text("姓名,证件号,户籍住址\n张伟,431028199003071234,郴州市\n", encoding="utf-8")
    dest = tmp_path / "d.csv"
    dest.write_text("姓名,证件号,户籍所在地址\n张伟,431028199003071234,郴州市安仁县\n", encoding="utf-8")
    assert read_registry(origin, **loading_options(cfg, "origin")).frame.loc[0, "hukou"] == "郴州市"
    assert read_registry(dest, **loading_options(cfg, "dest")).frame.loc[0, "hukou"] == "郴州市安仁县"
    # for a single file the same config is strict: a mapped header missing from the file is named
    with pytest.raises(ConfigError) as exc:
        read_registry(origin, **loading_options(cfg, None))
    assert "户籍所在地址" in exc.value.render("en") and "o.csv" in exc.value.render("en")


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, 'key = "编号"\n[columns]\n"户籍住址" = hukou\n', name="bad.toml")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = exc.value.render("en")
    assert exc.value.exit_code == 2 and "bad.toml" in msg and "line 3" in msg
    assert "配置文件" in exc.value.render("zh") and "line 3" in exc.value.render("zh")


def test_bare_chinese_key_gets_a_hint(tmp_path):
    path = write(tmp_path, "[columns]\n户籍住址 = \"hukou\"\n", name="bare.toml")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = exc.value.render("en")
    assert "bare.toml" in msg and "line 2" in msg and "double quotes" in msg
    assert "加双引号" in exc.value.render("zh")


def test_unknown_field_in_config(tmp_path):
    path = write(tmp_path, '[dest.columns]\n"户籍地" = "huji"\n', name="f.toml")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = exc.value.render("en")
    assert "f.toml" in msg and "dest.columns" in msg and "huji" in msg and "hukou" in msg


@pytest.mark.parametrize("text,name", [('key = 3\n', "key"), ('[origin]\nencoding = ["gbk"]\n', "origin.encoding"),
                                       ('columns = "姓名"\n', "columns"), ('origin = "x"\n', "origin")])
def test_wrong_value_types(tmp_path, text, name):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text, name="types.toml"))
    assert f"'{name}'" in exc.value.render("en") and "types.toml" in exc.value.render("en")


def test_missing_and_non_utf8_config(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.toml")
    assert exc.value.exit_code == 2 and "nope.toml" in exc.value.render("en")
    assert "不存在" in exc.value.render("zh")
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes('# 配置\n[columns]\n"户籍住址" = "hukou"\n'.encode("gb18030"))
    with pytest.raises(ConfigError) as exc:
        load_config(gbk)
    assert "gbk.toml" in exc.value.render("en") and "UTF-8" in exc.value.render("en") and "line 1" in exc.value.render("en")


def test_empty_config_is_fine(tmp_path):
    cfg = load_config(write(tmp_path, "# nothing yet\n"))
    assert cfg == {}
    assert loading_options(cfg, "origin") == {"encoding": None, "sheet": None, "key": None, "mapping": None,
                                              "soft_mapping": None}


def test_cli_mapping_as_soft_entries_for_match(tmp_path):
    cfg = load_config(write(tmp_path, '[origin.columns]\n"户籍住址" = "hukou"\n'))
    maps = parse_map_options(["户籍地=hukou", "证件号=id_number"])
    origin = LoadOptions.from_config(cfg, "origin").merged(mapping=maps, soft=True)
    # the side's own strict entry stays: the soft 户籍地 may not exist in the origin file
    assert origin.mapping == {"户籍住址": "hukou"}
    assert origin.soft_mapping == {"户籍地": "hukou", "证件号": "id_number"}
    origin_file = tmp_path / "origin.csv"
    origin_file.write_text("姓名,证件号,户籍住址\n张伟,431028199003071234,安仁县\n", encoding="utf-8")
    assert read_registry(origin_file, **origin.kwargs()).columns == {"姓名": "name", "证件号": "id_number",
                                                                      "户籍住址": "hukou"}
    dest_file = tmp_path / "dest.csv"
    dest_file.write_text("姓名,证件号,户籍地\n张伟,431028199003071234,郴州市\n", encoding="utf-8")
    reg = read_registry(dest_file, **LoadOptions.from_config(cfg, "dest").merged(mapping=maps, soft=True).kwargs())
    assert reg.columns == {"姓名": "name", "证件号": "id_number", "户籍地": "hukou"}
