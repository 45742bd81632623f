"""Administrative divisions: names, successors of renumbered codes, addresses -> county code.

The table is python-stdnum's ``stdnum/cn/loc.dat`` (GB/T 2260 county codes with the years
each name was in force, e.g. 432831 ``[-1994]安仁县`` and 431028 ``[1994-]安仁县``), loaded
lazily once per process. Codes are 6-digit text; level is read from the code:
``XX0000`` province, ``XXYY00`` prefecture (city), anything else county.

Address resolution scans the text once, probing a dict of every division name (full and
short forms) by their first two characters, longest name first, then interprets the tokens left to right as a
province -> city -> county chain. Short forms (郴州, 安仁) are only trusted next to another
division token (湖南郴州安仁县, 郴州安仁), never alone in free text (a road named 安仁路).
"""
from __future__ import annotations

import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterator

__all__ = [
    "Division",
    "region_name",
    "full_name",
    "current_code",
    "city_code",
    "province_code",
    "is_current",
    "resolve_address",
    "address_detail",
    "split_at_first_digit",
    "divisions",
    "remembered_scans",
]

# Place-holder entries of the code table that are not places anyone writes in an address.
_GENERIC = frozenset({
    "市辖区", "县", "市区", "省直辖县级行政单位", "省直辖行政单位", "自治区直辖县级行政单位",
    "自治区直辖县级行政区划", "省直辖县级行政区划",
})
# Names shared by many districts (郊区 x76, 城区, 市中区 ...): usable with a city before them,
# but their short forms (市中 in 市中心) would fire on ordinary words.
_NO_SHORT = frozenset({"市中", "新城", "老城", "城中", "城东", "城西", "城南", "城北", "新华", "东城",
                       "西城", "南城", "北城", "中区", "东区", "西区", "南区", "北区", "郊区", "城区", "矿区",
                       "新区", "开发", "高新", "经济", "工业", "市北", "市南"})
# A short name followed by one of these is a street, village or town named after the place
# (安仁路, 安仁镇), not the place itself.
_NOT_AFTER_SHORT = frozenset("路街道巷弄村镇乡里桥园苑湾屯寨组社厂院校站场所庄公大小新中花")
_MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
# Province names as written in loc.dat's ``province=`` lines for HK/Macao are traditional.
_PROVINCE_FIX = {"81": "香港特别行政区", "82": "澳门特别行政区"}


@dataclass(frozen=True)
class Division:
    """One code of the table with every name it carried and whether it is still in force."""

    code: str
    names: tuple[str, ...]  # oldest first; the last is the latest name
    current: bool

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def level(self) -> int:
        """1 province, 2 prefecture/city, 3 county."""
        return _level(self.code)


@dataclass
class _Table:
    by_code: dict[str, Division] = field(default_factory=dict)
    province_names: dict[str, str] = field(default_factory=dict)
    # (province 2 digits, level, name or stem) -> current codes with that name
    current_by_name: dict[tuple[str, int, str], list[str]] = field(default_factory=dict)
    current_by_stem: dict[tuple[str, int, str], list[str]] = field(default_factory=dict)
    common_names: frozenset[str] = frozenset()


def _level(code: str) -> int:
    if code.endswith("0000"):
        return 1
    if code.endswith("00"):
        return 2
    return 3


_ENTRY = re.compile(r"(?:\[(\d*)-(\d*)\])?([^,\[\]]+)")


def _loc_dat_path() -> Path:
    return Path(str(resources.files("stdnum.cn").joinpath("loc.dat")))


@lru_cache(maxsize=1)
def _ethnic_pattern() -> re.Pattern[str]:
    text = (Path(__file__).parent / "data" / "ethnic_groups.txt").read_text(encoding="utf-8")
    groups = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    groups.sort(key=len, reverse=True)
    alt = "|".join(map(re.escape, groups))
    # 湘西土家族苗族自治州, 巴里坤哈萨克自治县 (族 may be absent), 鄂伦春自治旗
    return re.compile(rf"^(.{{2,}}?)(?:(?:{alt})族?)*自治(?:区|州|县|旗)$")


def _stem(name: str, level: int) -> str:
    """Short form a person writes: 湖南省 -> 湖南, 郴州地区 -> 郴州, 湘西土家族苗族自治州 -> 湘西,
    安仁县 -> 安仁; '' when there is none (stems shorter than two characters are not used)."""
    m = _ethnic_pattern().match(name)
    if m:
        return m.group(1)
    if level == 1:
        suffixes = ("特别行政区", "省", "市")
    elif level == 2:
        suffixes = ("地区", "市", "盟")
    else:
        suffixes = ("新区", "矿区", "林区", "特区", "县", "区", "市", "旗")
    for suf in suffixes:
        if name.endswith(suf) and len(name) - len(suf) >= 2:
            return name[: -len(suf)]
    return ""


@lru_cache(maxsize=1)
def _table() -> _Table:
    tab = _Table()
    province = ""
    for line in _loc_dat_path().read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            province = line[:2]
            m = re.search(r'province="([^"]*)"', line)
            tab.province_names[province] = _PROVINCE_FIX.get(province, m.group(1) if m else "")
            continue
        code4, _, rest = line.strip().partition(" ")
        m = re.search(r'county="([^"]*)"', rest)
        if not m:
            continue
        names: list[str] = []
        current = False
        for start, end, name in _ENTRY.findall(m.group(1)):
            name = name.strip()
            if not name:
                continue
            names.append(name)
            # no bracket at all, or an open end: still in force
            current = end == ""
        code = province + code4
        if names:
            tab.by_code[code] = Division(code, tuple(names), current)
    for code, div in tab.by_code.items():
        if code.endswith("0000") and div.current and div.name not in _GENERIC:
            tab.province_names[code[:2]] = div.name
    provinces_of: dict[str, set[str]] = {}
    for div in tab.by_code.values():
        for nm in div.names:
            provinces_of.setdefault(nm, set()).add(div.code[:2])
    # 郊区, 城区, 鼓楼区, 新华区 ...: names used in three or more provinces are names of a kind of
    # district, not of one place; a successor with such a name must be in the same prefecture
    tab.common_names = frozenset(nm for nm, provs in provinces_of.items() if len(provs) >= 3) | _GENERIC
    for div in tab.by_code.values():
        if not div.current or div.name in _GENERIC:
            continue
        # current names only: 330411 was 郊区 before it became 秀洲区, so the old 郊区 of 湖州
        # (330511) must not find it
        tab.current_by_name.setdefault((div.code[:2], div.level, div.name), []).append(div.code)
        st = _stem(div.name, div.level)
        if st:
            tab.current_by_stem.setdefault((div.code[:2], div.level, st), []).append(div.code)
    return tab


def divisions() -> dict[str, Division]:
    """Every code of the table (current and historical), keyed by 6-digit code."""
    return _table().by_code


def is_current(code: str) -> bool:
    """True when the code is in force in the latest table."""
    div = _table().by_code.get(code)
    return bool(div and div.current)


def region_name(code: str) -> str:
    """Latest name of a code, current or historical (432831 -> 安仁县); '' when unknown."""
    if not code:
        return ""
    tab = _table()
    div = tab.by_code.get(code)
    if div is not None and div.name not in _GENERIC:
        return div.name
    if code.endswith("0000"):
        return tab.province_names.get(code[:2], "")
    return ""


@lru_cache(maxsize=8192)
def full_name(code: str) -> str:
    """Province + city + county name of a code: 431028 -> 湖南省郴州市安仁县,
    432831 -> 湖南省郴州地区安仁县 (the names of its own time); '' when the code is unknown."""
    if not code or len(code) != 6:
        return ""
    tab = _table()
    prov = tab.province_names.get(code[:2], "")
    if not prov:
        return ""
    level = _level(code)
    if level == 1:
        return prov
    own = region_name(code)
    if not own:
        return ""
    if level == 2 or code[:2] in _MUNICIPALITIES:
        return prov + own
    # counties directly under the province (海南 460023 in the 1980s) have no prefecture
    city = region_name(code[:4] + "00") if code[2:4] != "00" else ""
    return prov + city + own


@lru_cache(maxsize=65536)
def current_code(code: str) -> str:
    """The code in force today for a possibly renumbered code: 432831 -> 431028.

    A historical code maps to the currently valid code of the same level in the same
    province whose current name is the same (then the same stem: 资兴县 -> 资兴市), preferring
    the same prefecture; names shared by many provinces (郊区, 城区, 鼓楼区) only map within the
    same prefecture. When there is none or it is ambiguous, the code itself is returned.
    """
    tab = _table()
    div = tab.by_code.get(code)
    if div is None or div.current:
        return code
    prov, level = code[:2], div.level
    common = div.name in tab.common_names
    for index, key in ((tab.current_by_name, div.name), (tab.current_by_stem, _stem(div.name, level))):
        if not key:
            continue
        found = index.get((prov, level, key), [])
        same_city = [c for c in found if c[:4] == code[:4]]
        if len(same_city) == 1:
            return same_city[0]
        if len(found) == 1 and not common:
            return found[0]
        if found:
            return code
    return code


def city_code(code: str, current: bool = True) -> str:
    """Prefecture code of a code (431028 -> 431000); through current_code() unless current=False."""
    if not code or len(code) != 6:
        return ""
    if not current:
        return code[:4] + "00"
    # the prefecture may itself have been renumbered (432801 -> 432800 -> 431000)
    return current_code(current_code(code)[:4] + "00")


def province_code(code: str, current: bool = True) -> str:
    """Province code of a code (431028 -> 430000)."""
    if not code or len(code) != 6:
        return ""
    c = current_code(code) if current else code
    return c[:2] + "0000"


# --- address resolution ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Cand:
    level: int
    code: str  # current code
    short: bool


@dataclass
class _Matcher:
    forms: dict[str, tuple[_Cand, ...]]
    # first two characters -> lengths of the forms starting with them, longest first
    by_prefix: dict[str, tuple[int, ...]]
    unique_short: frozenset[str]  # short forms naming exactly one place in the country

    def tokens(self, text: str) -> Iterator[tuple[int, int, str]]:
        """Leftmost-longest non-overlapping division names in ``text``: (start, end, form), found
        as they are asked for (an address scan stops at its county: the village names after it
        are not looked at).

        One dict probe per character on the first two characters (every form has at least
        two): a regex alternation over 7,000 names is scanned branch by branch by Python's
        engine, about 6 µs per character."""
        by_prefix, forms = self.by_prefix, self.forms
        i, n = 0, len(text) - 1
        while i < n:
            lens = by_prefix.get(text[i:i + 2])
            if lens:
                for ln in lens:
                    w = text[i:i + ln]
                    if w in forms:
                        yield (i, i + ln, w)
                        i += ln
                        break
                else:
                    i += 1
            else:
                i += 1

    def continues(self, text: str, end: int, cand: _Cand) -> bool:
        """Whether a division name under ``cand`` starts at ``end``: 江苏镇江 is 江苏 + 镇江, not a
        town 江苏镇, though a short name followed by 镇 is usually a town's name."""
        prefix = cand.code[:2 * cand.level]
        for ln in self.by_prefix.get(text[end:end + 2], ()):
            for d in self.forms.get(text[end:end + ln], ()):
                if d.level > cand.level and d.code.startswith(prefix):
                    return True
        return False


@lru_cache(maxsize=1)
def _matcher() -> _Matcher:
    tab = _table()
    forms: dict[str, set[_Cand]] = {}

    def add(form: str, cand: _Cand) -> None:
        if len(form) >= 2:
            forms.setdefault(form, set()).add(cand)

    for prov, pname in tab.province_names.items():
        if not pname:
            continue
        code = prov + "0000"
        add(pname, _Cand(1, code, False))
        st = _stem(pname, 1)
        if st:
            add(st, _Cand(1, code, True))
    for div in tab.by_code.values():
        if div.level == 1:
            continue
        cur = current_code(div.code)
        for nm in set(div.names):
            if nm in _GENERIC:
                continue
            add(nm, _Cand(div.level, cur, False))
            m = _ethnic_pattern().match(nm)
            if m:
                # 黄南州, 江华县, 鄂伦春旗: autonomous names written without the ethnic part
                add(m.group(1) + nm[-1], _Cand(div.level, cur, False))
            if div.current:
                st = _stem(nm, div.level)
                if st and st not in _NO_SHORT:
                    add(st, _Cand(div.level, cur, True))
    frozen = {k: tuple(sorted(v, key=lambda c: (c.level, c.code))) for k, v in forms.items()}
    unique_short = frozenset(k for k, v in frozen.items() if len({(c.level, c.code) for c in v}) == 1)
    lengths: dict[str, set[int]] = {}
    for form in frozen:
        lengths.setdefault(form[:2], set()).add(len(form))
    by_prefix = {p: tuple(sorted(ls, reverse=True)) for p, ls in lengths.items()}
    return _Matcher(frozen, by_prefix, unique_short)


_SPACES = re.compile(r"\s+")


def _consistent(c: _Cand, prov: str, city: str) -> bool:
    if prov and c.code[:2] != prov:
        return False
    if city and c.level == 3 and c.code[:4] != city:
        return False
    return True


@lru_cache(maxsize=262144)
def resolve_address(text: str) -> tuple[str, str]:
    """Division code and full name named by free address text: the county when the text names
    one unambiguously, else the city, else the province; ``('', '')`` when nothing resolves.

    >>> resolve_address("湖南郴州安仁县永乐江镇")
    ('431028', '湖南省郴州市安仁县')

    A county name found in several places (朝阳区: Beijing and Changchun) needs a province or
    city earlier in the text; without one the county is not guessed.
    """
    best, _, _ = _resolve_span(text)
    if not best:
        return ("", "")
    return (best, full_name(best))


_FIRST_DIGIT = re.compile(r"[0-9０-９]")


def split_at_first_digit(text: str) -> tuple[str, str]:
    """(the part before the first digit, the rest). Division names carry no digits, so the first
    part holds every division an address names; street addresses (金龙路326号) are nearly all
    distinct, so resolving the first part only means one resolution per street, not per house."""
    m = _FIRST_DIGIT.search(text)
    return (text[: m.start()], text[m.start():]) if m else (text, "")


def address_detail(text: str) -> str:
    """The part of an address below the divisions it names, without spaces or punctuation,
    lower-cased: what is left to compare once the province/city/county are taken away.

    >>> address_detail("湖南省郴州市安仁县永乐江镇江林村3组")
    '永乐江镇江林村3组'
    >>> address_detail("湖南湘乡市")
    ''
    >>> address_detail("101 Elkington Street, Waterloo")
    '101elkingtonstreetwaterloo'
    """
    if not text:
        return ""
    # resolve only the part before the first digit (cached per street) and append the rest as is
    admin, rest = split_at_first_digit(text)
    if admin and rest:
        return _detail_of(admin) + _plain(rest)
    return _detail_of(text)


@lru_cache(maxsize=262144)
def _detail_of(text: str) -> str:
    _, end, norm = _resolve_span(text)
    rest = norm[end:] if end > 0 else norm
    return _NOT_WORD.sub("", rest).lower()


def _plain(text: str) -> str:
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text)).lower()


_NOT_WORD = re.compile(r"[\W_]+")


# Shared by resolve_address (standardise: the hukou county) and address_detail (keys: the rest),
# which read the same addresses: one scan each, not two. Inside ``remembered_scans`` (a registry's
# load) every scan is kept until the load ends: a 1,000,000-person destination has 674,096
# distinct hukou addresses without a digit, more than any fixed cache holds, and a least-recently-
# used cache smaller than a sequential re-read misses every time. Outside it (dedupe, profile,
# the review), the cache it had before: 2^19 scans.
_SCANS: dict[str, tuple[str, int, str]] | None = None


@contextmanager
def remembered_scans():
    """Within the block, each distinct address text is scanned once, however many there are;
    on leaving the outermost block the scans and the per-address caches are let go (at a million
    records they hold a few hundred MB the rest of a run has no use for)."""
    global _SCANS
    outer = _SCANS
    if outer is None:
        _SCANS = {}
    try:
        yield
    finally:
        if outer is None:
            _SCANS = None
            resolve_address.cache_clear()
            _detail_of.cache_clear()


def _resolve_span(text: str) -> tuple[str, int, str]:
    """(code, end of the last division name used, the normalised text) of resolve_address."""
    scans = _SCANS
    if scans is None:
        return _scan_cached(text)
    got = scans.get(text)
    if got is None:
        got = scans[text] = _scan(text)
    return got


@lru_cache(maxsize=1 << 19)
def _scan_cached(text: str) -> tuple[str, int, str]:
    return _scan(text)


def _scan(text: str) -> tuple[str, int, str]:
    if not text:
        return ("", -1, "")
    if not text.isascii() or " " in text:
        text = _SPACES.sub("", unicodedata.normalize("NFKC", text))
    m = _matcher()
    prov = city = county = ""
    depth = 0
    last_end = -1
    for start, end, form in m.tokens(text):
        cands = m.forms[form]
        adjacent = start == last_end
        nxt = text[end:end + 1]
        usable: list[_Cand] = []
        for c in cands:
            if c.level <= depth or not _consistent(c, prov, city):
                continue
            if c.short:
                if nxt and nxt in _NOT_AFTER_SHORT and not m.continues(text, end, c):
                    continue
                # alone in the text, only a province or a nationally unique city short name counts,
                # and only where the address starts: inside a township or street name it is part of
                # another word (永乐江镇江林村 holds 镇江, a city in Jiangsu)
                if not adjacent and (start > 0 or not (c.level == 1 or (c.level == 2 and form in m.unique_short
                                                                        and depth == 0))):
                    continue
            usable.append(c)
        if not usable and city:
            # a full county name under another prefecture of the same province: old addresses name
            # the prefecture a county has since left (阜阳地区涡阳县, now 亳州市); the county wins
            usable = [c for c in cands if c.level == 3 and not c.short and _consistent(c, prov, "")]
        if not usable:
            continue
        if len(usable) == 1:   # (most names: one place)
            lvl, code = usable[0].level, usable[0].code
        else:
            # prefer the shallowest level (吉林 is the province before it is the city)
            lvl = min(c.level for c in usable)
            at_level = {c.code for c in usable if c.level == lvl}
            if len(at_level) != 1:
                continue  # ambiguous (朝阳区 with no province or city before it): do not guess
            code = at_level.pop()
        depth = lvl
        last_end = end
        prov = code[:2]
        if lvl >= 2:
            city = code[:4]
        if lvl == 3:
            county = code
            break
    best = county or (city + "00" if city else "") or (prov + "0000" if prov else "")
    return (best, last_end, text)
