"""Canonical field names: what the loader maps headers onto and what standardise() produces.

Every stage speaks these names; source headers only live in the loader's mapping.
"""
from __future__ import annotations

# Input fields a source column can be mapped to (``--map 'COLUMN=field'``).
INPUT_FIELDS: tuple[str, ...] = (
    "name",
    "id_number",
    "birth_date",
    "sex",
    "hukou",        # household-registration address / place (户籍地址)
    "residence",    # current residence (现居住地)
    "flow_status",  # 流动状态: 流出 / 常住 ...
    "flow_place",   # 流入地 / 流出地
    "unit",         # reporting unit: township / street / village (乡镇/街道/村/社区)
    "ethnicity",
    "registered_at",  # 登记日期
)

# Header aliases recognised automatically (compared after stripping spaces, case-folded).
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "名字", "name", "full_name", "fullname", "xm"),
    "id_number": (
        "公民身份号码", "身份证号", "身份证号码", "证件号码", "身份证", "公民身份证号码",
        "id_number", "id", "idno", "id_no", "sfzh",
    ),
    "birth_date": ("出生日期", "出生年月", "生日", "出生年月日", "birth_date", "dob", "birthday", "date_of_birth"),
    "sex": ("性别", "sex", "gender", "xb"),
    "hukou": ("户籍地", "户籍地址", "户口所在地", "户籍所在地", "户籍地详址", "hukou", "hukou_address"),
    "residence": ("现居住地", "现住址", "居住地址", "现居住地址", "现住地址", "residence", "address"),
    "flow_status": ("流动状态", "人口状态", "flow_status", "status"),
    "flow_place": ("流入地", "流出地", "流入地址", "flow_place"),
    "unit": ("乡镇", "街道", "乡镇街道", "乡镇（街道）", "乡镇(街道)", "村", "社区", "村居", "村（居）", "unit", "township"),
    "ethnicity": ("民族", "ethnicity", "nation"),
    "registered_at": ("登记日期", "登记时间", "registered_at"),
}

# Columns of the standardised person frame (output of reconcile.standardise.standardise).
STANDARD_COLUMNS: tuple[str, ...] = (
    "record_key",       # TEXT, from --key or 1-based data row number
    "name",             # normalised Han (simplified, no spaces, dots as ·) or upper-case Latin
    "name_raw",
    "name_script",      # han | latin | mixed | empty
    "name_traditional", # bool: raw name had traditional forms
    "name_minority",    # bool: transliterated minority name (separator dot)
    "name_pinyin",      # toneless, space separated syllables, surname reading from table
    "surname",
    "given",
    "sex",              # 'M' | 'F' | ''
    "sex_conflict",     # bool: disagrees with the ID's sex digit
    "birth_date",       # ISO text: YYYY-MM-DD / YYYY-MM / YYYY, '' if missing
    "birth_precision",  # day | month | year | ''
    "birth_status",     # ok | impossible | future | unparsed | missing
    "id_number",        # canonical 18 characters (upper-case X) or '' when unusable
    "id_raw",
    "id_clean",         # cleaned 18 chars even when the checksum fails ('' for missing/malformed): a one-digit
                        # typo fails the checksum, and the ID comparator needs to see it; excel_damaged:
                        # the 15 digits Excel kept, or ''
    "id_status",        # valid | upgraded_from_15 | bad_checksum | excel_damaged | missing | malformed
    "id_birth_date",    # ISO date from the ID, ''
    "id_sex",           # 'M' | 'F' | ''
    "id_region",        # 6-digit region code from the ID, ''
    "id_region_name",
    "birth_conflict",   # bool: record's birth date disagrees with the ID's
    "hukou_address",
    "hukou_region",     # 6-digit county code resolved from the address text (current code), ''
    "hukou_region_name",
    "residence",
    "residence_region",
    "flow_status",      # out | resident | ''  (流出 -> out, 常住/户籍 -> resident)
    "flow_status_raw",
    "flow_place",
    "unit",
)

ID_STATUSES: tuple[str, ...] = ("valid", "upgraded_from_15", "bad_checksum", "excel_damaged", "missing", "malformed")
USABLE_ID_STATUSES: frozenset[str] = frozenset({"valid", "upgraded_from_15"})

# The fields a duplicate cluster's surviving record is chosen by (the most filled), in `match` and
# `dedupe` alike.
COMPLETENESS_FIELDS: tuple[str, ...] = ("name", "sex", "birth_date", "id_clean", "hukou_address", "residence")
