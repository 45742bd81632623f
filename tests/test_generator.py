"""The fixtures generator: determinism, valid IDs, truth consistency, corruption rates, samples.

Checks use independent tools where they can (python-stdnum's ISO 7064 MOD 11-2, opencc t2s,
lunardate) so the generator is not checked against itself.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from stdnum.iso7064 import mod_11_2

from fixtures import generate as g
from fixtures import months as mo
from fixtures.regions import counties

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


@pytest.fixture(scope="module")
def gen() -> g.Generated:
    return g.generate(3000, seed=11)


@pytest.fixture(scope="module")
def dirty() -> g.Generated:
    return g.generate(3000, seed=11, dirt=2.5)


def _kinds(truth: pd.DataFrame) -> Counter[str]:
    return Counter(k for c in truth["corruptions"] for k in c.split(";") if k)


def _rows(gen: g.Generated) -> pd.DataFrame:
    """Truth joined with the registry text of each record (origin and dest columns unified)."""
    o = gen.origin.rename(columns={"编号": "record_key", "公民身份号码": "id_text", "姓名": "name_text",
                                   "出生日期": "date_text", "性别": "sex_text"})
    d = gen.dest.rename(columns={"序号": "record_key", "身份证号": "id_text", "姓名": "name_text",
                                 "出生年月": "date_text", "性别": "sex_text"})
    o["source"], d["source"] = "origin", "dest"
    cols = ["source", "record_key", "id_text", "name_text", "date_text", "sex_text"]
    both = pd.concat([o[cols], d[cols]])
    return gen.truth.merge(both, on=["source", "record_key"], how="left", validate="one_to_one")


def _parse_date(text: str) -> tuple[int, int, int | None]:
    """Independent little parser for the styles the registries use (day None at month precision)."""
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})(?:[-/.月](\d{1,2})日?|月)?", text)
    if m:
        return int(m[1]), int(m[2]), int(m[3]) if m[3] else None
    if re.fullmatch(r"\d{8}", text):
        return int(text[:4]), int(text[4:6]), int(text[6:])
    if re.fullmatch(r"\d{5}", text):  # Excel serial
        d = dt.date(1899, 12, 30) + dt.timedelta(days=int(text))
        return d.year, d.month, d.day
    raise ValueError(text)


# ---------------------------------------------------------------- determinism and shape
def test_same_seed_same_output_other_seed_differs() -> None:
    a, b, c = g.generate(400, seed=3), g.generate(400, seed=3), g.generate(400, seed=4)
    pd.testing.assert_frame_equal(a.origin, b.origin)
    pd.testing.assert_frame_equal(a.dest, b.dest)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not a.origin["姓名"].equals(c.origin["姓名"])


def test_headers_and_all_values_are_text(gen: g.Generated) -> None:
    assert list(gen.origin.columns) == ["编号", "姓名", "性别", "出生日期", "公民身份号码", "户籍地址", "流动状态", "流入地", "乡镇"]
    assert list(gen.dest.columns) == ["序号", "姓名", "性别", "出生年月", "身份证号", "户籍地", "现居住地", "登记日期", "街道"]
    for df in (gen.origin, gen.dest, gen.truth):
        assert all(isinstance(v, str) for v in df.to_numpy().ravel())
    assert gen.origin["编号"].is_unique and gen.dest["序号"].is_unique
    assert gen.origin["编号"].str.startswith("0").all()  # zero-padded keys: must stay text
    assert set(gen.origin["流动状态"]) == {"流出", "常住"}


# ---------------------------------------------------------------- IDs
def test_true_ids_valid_unique_and_consistent_with_the_person(gen: g.Generated) -> None:
    t = gen.truth.drop_duplicates("person_id")
    assert t["true_id"].map(mod_11_2.is_valid).all()
    assert t["true_id"].is_unique
    assert (t["true_id"].str[6:14] == t["true_birth_date"].str.replace("-", "")).all()
    male_digit = t["true_id"].str[16].astype(int) % 2 == 1
    assert (male_digit == (t["true_sex"] == "M")).all()
    cty = counties()
    known = set(cty) | {old for c in cty.values() for old, _ in c.old_codes}
    assert t["true_id"].str[:6].isin(known).all()


def test_old_region_code_only_for_people_born_before_the_recoding(gen: g.Generated) -> None:
    t = gen.truth.drop_duplicates("person_id")
    old = t[t["true_id"].str[:6] == "432831"]  # 安仁县 before 1994
    assert len(old) > 50
    assert (old["true_birth_date"].str[:4].astype(int) < 1994).all()
    assert (old["hukou_county"] == "431028").all()


def test_clean_records_carry_the_true_id_verbatim(gen: g.Generated) -> None:
    r = _rows(gen)
    clean = r[~r["corruptions"].str.contains("id_") & ~r["flags"].str.contains("id_conflict")]
    assert (clean["id_text"] == clean["true_id"]).all()
    assert (clean["id_carried"] == clean["true_id"]).all()


def test_id_corruptions_do_what_they_say(dirty: g.Generated) -> None:
    r = _rows(dirty)

    def has(kind: str) -> pd.DataFrame:
        sel = r[r["corruptions"].str.split(";").map(lambda ks: kind in ks)]
        assert len(sel), kind
        return sel

    assert (has("id_missing")["id_text"] == "").all()
    assert has("id_excel_sci")["id_text"].str.fullmatch(r"\d\.\d{5}E\+17").all()
    assert has("id_excel_15")["id_text"].str.fullmatch(r"\d{15}000").all()
    assert (has("id_excel_sci")["id_carried"] == "").all()
    fifteen = has("id_15digit")
    plain = fifteen["id_text"].map(lambda s: re.sub(r"^'|^=\"|\"$|\.0$", "", unicodedata.normalize("NFKC", s).replace(" ", "")))
    assert (plain.str.len() == 15).all()
    assert (fifteen["true_birth_date"] < "2000").all()
    assert has("id_lower_x")["id_text"].str.contains("x").all()
    assert has("id_fullwidth")["id_text"].str.contains("[０-９]").all()
    assert has("id_quote")["id_text"].str.startswith("'").all()
    assert has("id_formula")["id_text"].str.fullmatch(r'="[^"]+"').all()
    assert has("id_dot0")["id_text"].str.endswith(".0").all()
    assert has("id_spaces")["id_text"].str.contains(" ").all()
    wrong = has("id_wrong_digit")
    wrong = wrong[~wrong["flags"].str.contains("id_conflict") & ~wrong["corruptions"].str.contains("id_15digit")]
    diffs = [sum(a != b for a, b in zip(c, t)) for c, t in zip(wrong["id_carried"], wrong["true_id"])]
    assert diffs and all(d == 1 for d in diffs)
    tr = has("id_transpose")
    tr = tr[~tr["flags"].str.contains("id_conflict") & ~tr["corruptions"].str.contains("id_15digit")]
    for c, t in zip(tr["id_carried"], tr["true_id"]):
        pos = [i for i in range(18) if c[i] != t[i]]
        assert len(pos) == 2 and pos[1] == pos[0] + 1 and c[pos[0]] == t[pos[1]]
    # A wrong digit fails the check character most of the time (10 in 11).
    assert wrong["id_carried"].map(mod_11_2.is_valid).mean() < 0.3


# ---------------------------------------------------------------- names, dates, sex
def test_name_corruptions_are_the_named_kind(dirty: g.Generated) -> None:
    import opencc
    from pypinyin import lazy_pinyin

    r = _rows(dirty)
    k = r["corruptions"].str.split(";")
    clean = r[~r["corruptions"].str.contains("name_")]
    assert (clean["name_text"] == clean["true_name"]).all()
    t2s = opencc.OpenCC("t2s")
    trad = r[k.map(lambda ks: "name_traditional" in ks)]
    assert len(trad) and (trad["name_text"] != trad["true_name"]).all()
    assert (trad["name_text"].map(t2s.convert) == trad["true_name"]).mean() > 0.9
    homo = r[k.map(lambda ks: "name_homophone" in ks) & ~r["name_text"].str.contains(r"\s") & ~r["flags"].str.contains("minority")]
    assert len(homo) > 20
    for text, true in zip(homo["name_text"], homo["true_name"]):
        diff = [i for i, (a, b) in enumerate(zip(text, true)) if a != b]
        assert len(text) == len(true) and len(diff) == 1
        if diff[0] > 0:  # given-name characters: same toneless reading
            assert lazy_pinyin(text[diff[0]]) == lazy_pinyin(true[diff[0]])
    pin = r[k.map(lambda ks: "name_pinyin" in ks)]
    assert len(pin) and pin["name_text"].str.fullmatch(r"[A-Z]+( [A-Z]+)+").all()
    dots = r[k.map(lambda ks: "name_dot_variant" in ks)]
    assert len(dots) and not dots["name_text"].str.contains("·").any()
    assert r.loc[r["flags"].str.contains("minority"), "true_name"].str.contains("·").all()
    space = r[k.map(lambda ks: "name_space" in ks)]
    assert space["name_text"].str.contains("[ \u3000]").all()
    drop = r[k.map(lambda ks: "name_drop_char" in ks)]
    no_space = drop["name_text"].str.replace(r"[ \u3000]", "", regex=True)
    assert (no_space.str.len() == drop["true_name"].str.len() - 1).all()


def test_date_corruptions_are_the_named_kind(dirty: g.Generated) -> None:
    r = _rows(dirty)
    k = r["corruptions"].str.split(";")

    def sel(kind: str) -> pd.DataFrame:
        s = r[k.map(lambda ks: kind in ks)]
        assert len(s), kind
        return s

    assert (sel("date_missing")["date_text"] == "").all()
    assert sel("date_excel_serial")["date_text"].str.fullmatch(r"\d{5}").all()
    for _, row in sel("date_lunar").iterrows():
        y, m, d = _parse_date(row["date_text"])
        true = dt.date.fromisoformat(row["true_birth_date"])
        if d is None:
            continue
        early = (true - dt.date(y, m, d)).days
        assert 19 <= early <= 55, (row["date_text"], row["true_birth_date"])
        from lunardate import LunarDate
        ld = LunarDate.from_solar_date(true.year, true.month, true.day)
        assert (ld.year, ld.month, ld.day) == (y, m, d)
    for _, row in sel("date_swap").iterrows():
        y, m, d = _parse_date(row["date_text"])
        ty, tm, td = (int(v) for v in row["true_birth_date"].split("-"))
        assert (y, m) == (ty, td) and (d is None or d == tm)
    for _, row in sel("date_jan1").iterrows():
        y, m, d = _parse_date(row["date_text"])
        assert (m, d or 1) == (1, 1) and row["true_birth_date"][5:] != "01-01"
    # Records without date corruptions show the true date (destination often to the month only).
    clean = r[~r["corruptions"].str.contains("date_")]
    for text, true in zip(clean["date_text"].head(3000), clean["true_birth_date"].head(3000)):
        y, m, d = _parse_date(text)
        assert f"{y:04d}-{m:02d}" == true[:7] and (d is None or d == int(true[8:]))


def test_destination_dates_are_often_month_precision(gen: g.Generated) -> None:
    d = gen.truth[gen.truth["source"] == "dest"]
    share = d["flags"].str.contains("month_precision").mean()
    assert 0.45 < share < 0.65


def test_sex_text(gen: g.Generated) -> None:
    r = _rows(gen)
    clean = r[~r["corruptions"].str.contains("sex_")]
    assert (clean["sex_text"] == clean["true_sex"].map({"M": "男", "F": "女"})).all()
    wrong = r[r["corruptions"].str.contains("sex_wrong")]
    assert len(wrong) and (wrong["sex_text"] != wrong["true_sex"].map({"M": "男", "F": "女"})).all()


# ---------------------------------------------------------------- rates
def test_corruption_rates_scale_with_dirt(gen: g.Generated, dirty: g.Generated) -> None:
    a, b = _kinds(gen.truth), _kinds(dirty.truth)
    ratio = sum(b.values()) / sum(a.values())
    assert 2.0 < ratio < 2.9, ratio
    for kind in ("name_homophone", "date_fmt_other", "id_quote", "hukou_vague"):
        assert 1.6 < b[kind] / a[kind] < 3.4, (kind, a[kind], b[kind])
    # Default rates stay realistic: most records are clean.
    clean_share = (gen.truth["corruptions"] == "").mean()
    assert 0.6 < clean_share < 0.85


def test_dirt_zero_gives_clean_registries_but_the_same_scenarios() -> None:
    clean = g.generate(500, seed=2, dirt=0.0)
    t = clean.truth
    assert set(t.loc[~t["flags"].str.contains("duplicate"), "corruptions"]) == {""}
    assert len(g.truth_pairs(t)) > 100


# ---------------------------------------------------------------- truth consistency
def test_every_record_in_truth_once_and_pairs_are_same_person(gen: g.Generated) -> None:
    t = gen.truth
    o, d = t[t["source"] == "origin"], t[t["source"] == "dest"]
    assert sorted(o["record_key"]) == sorted(gen.origin["编号"])
    assert sorted(d["record_key"]) == sorted(gen.dest["序号"])
    pid_o = dict(zip(o["record_key"], o["person_id"]))
    pid_d = dict(zip(d["record_key"], d["person_id"]))
    pairs = g.truth_pairs(t)
    assert len(pairs) > 800
    assert all(pid_o[a] == pid_d[b] for a, b in pairs)
    # Every origin/dest combination of a shared person is a pair (none missing).
    shared = set(o["person_id"]) & set(d["person_id"])
    n_expected = (o.groupby("person_id").size().reindex(list(shared)) * d.groupby("person_id").size().reindex(list(shared))).sum()
    assert len(pairs) == n_expected


def test_outcomes_match_roles_and_flow_status(gen: g.Generated) -> None:
    t = gen.truth
    o = t[t["source"] == "origin"].merge(gen.origin, left_on="record_key", right_on="编号")
    unt = g.truth_untraceable(gen)
    assert unt and unt == set(o.loc[o["role"] == "untraceable", "record_key"])
    paired_origin = {a for a, _ in g.truth_pairs(t)}
    assert not unt & paired_origin
    assert (o.loc[o["record_key"].isin(unt), "流动状态"] == "流出").all()
    assert (o.loc[o["role"] == "traced", "流入地"] != "").mean() > 0.8
    cross = g.truth_cross_region_duplicates(gen)
    assert cross and {a for a, _ in cross} == set(o.loc[o["role"] == "cross_region_duplicate", "record_key"])
    unreg = g.truth_unregistered(gen)
    d = t[t["source"] == "dest"]
    assert unreg == set(d.loc[d["role"] == "unregistered", "record_key"])
    # Out-migrants: ~40% of origin persons, of whom ~75% are traced.
    persons = t[t["source"] == "origin"].drop_duplicates("person_id")
    out = persons["role"].isin(["traced", "untraceable"]).mean()
    traced = (persons["role"] == "traced").sum() / persons["role"].isin(["traced", "untraceable"]).sum()
    assert 0.35 < out < 0.45 and 0.7 < traced < 0.8
    # Destination: in-migrants ~1.5 x persons.
    inm = d[d["role"].isin(["in_migrant", "namesake"])].drop_duplicates("person_id")
    assert 1.4 * 3000 < len(inm) < 1.6 * 3000


def test_duplicates_twins_namesakes_and_conflicts(gen: g.Generated) -> None:
    t = gen.truth
    od = g.truth_duplicate_pairs(t, "origin")
    dd = g.truth_duplicate_pairs(t, "dest")
    assert 40 <= len(od) <= 80 and 30 <= len(dd) <= 80
    o = t[t["source"] == "origin"]
    cross_t = o[o["flags"].str.contains("cross_township")]
    assert len(cross_t)
    for key in cross_t["record_key"]:
        pid = o.loc[o["record_key"] == key, "person_id"].iloc[0]
        units = set(o.loc[o["person_id"] == pid, "unit"])
        assert len(units) == 2
    # Twins: same surname, birth date, township; other given name and ID; consecutive sequence.
    tw = o[o["flags"].str.contains("twin") & ~o["flags"].str.contains("duplicate")].drop_duplicates("person_id")
    groups = tw.groupby(["true_birth_date", "unit", tw["true_name"].str[0]])
    pairs = [grp for _, grp in groups if len(grp) == 2]
    assert len(pairs) >= 10
    for grp in pairs:
        a, b = grp["true_id"].tolist()
        assert a != b and a[:14] == b[:14] and abs(int(a[14:17]) - int(b[14:17])) <= 2
        assert grp["true_name"].nunique() == 2
    # Namesakes: an origin person's exact name, another county.
    ns = t[t["role"] == "namesake"]
    assert len(ns) >= 60
    assert ns["true_name"].isin(set(o["true_name"])).all()
    assert (ns["hukou_county"] != "431028").all()
    assert ns["flags"].str.contains("namesake_same_birth").sum() >= 10
    # ID conflicts: each number carried by records of more than one person.
    ids = g.truth_id_conflicts(gen)
    assert len(ids) >= 10
    carried = t[t["id_carried"].isin(ids)]
    assert (carried.groupby("id_carried")["person_id"].nunique() > 1).all()
    assert any("twin" in f for f in carried["flags"])  # the twin case (twin B with A's ID)
    recs = g.truth_id_conflict_records(gen)
    assert {("origin", k) for k in carried.loc[carried["source"] == "origin", "record_key"]} <= recs


def test_common_names_recur_and_rare_surnames_occur() -> None:
    big = g.generate(20000, seed=1, dirt=0.0)
    names = big.truth.drop_duplicates("person_id")["true_name"]
    top = names.value_counts()
    assert top.iloc[0] >= 60  # 王伟/张伟/王静 ... recur: term frequency matters
    assert names.str.startswith(("欧阳", "司马", "诸葛", "上官")).sum() >= 3
    assert names.str[0].isin(list("单区曾覃解仇查")).sum() >= 50
    assert names.str.contains("·").mean() == pytest.approx(0.02, abs=0.006)


def test_other_origin_county() -> None:
    other = g.generate(200, seed=1, origin_county="510722")  # 四川省绵阳市三台县
    o = other.truth[other.truth["source"] == "origin"]
    assert (o["hukou_county"] == "510722").all()
    assert other.origin["户籍地址"].str.contains("三台").mean() > 0.9
    assert g.truth_unregistered(other) == set(other.truth.loc[other.truth["role"] == "unregistered", "record_key"])
    with pytest.raises(ValueError):
        g.generate(10, origin_county="999999")


# ---------------------------------------------------------------- writing and samples
def test_write_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert g.main(["--persons", "150", "--seed", "9", "--out", str(tmp_path), "--xlsx"]) == 0
    out = capsys.readouterr().out
    assert "untraceable" in out and "corruption:id_15digit" in out
    raw = (tmp_path / "origin.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    origin = pd.read_csv(tmp_path / "origin.csv", dtype=str, keep_default_na=False, encoding="gb18030")
    gen = g.generate(150, seed=9)
    pd.testing.assert_frame_equal(origin, gen.origin)
    assert (tmp_path / "dest.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in raw
    truth = pd.read_csv(tmp_path / "truth.csv", dtype=str, keep_default_na=False)
    assert g.truth_pairs(truth) == g.truth_pairs(gen.truth)


def test_committed_samples_encodings() -> None:
    raw = (SAMPLES / "origin_gb18030.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gb18030")
    assert text.startswith("编号,姓名,性别,出生日期,公民身份号码")
    dest = (SAMPLES / "dest_utf8bom.csv").read_bytes()
    assert dest.startswith(b"\xef\xbb\xbf")
    assert dest.decode("utf-8-sig").startswith("序号,姓名,性别,出生年月,身份证号")


def test_committed_samples_are_what_the_generator_makes(tmp_path: Path) -> None:
    paths = g.write_samples(tmp_path)
    for name in ("origin_gb18030.csv", "dest_utf8bom.csv", "truth.csv", "dest.xlsx"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), f"rerun python -m fixtures.generate --samples ({name})"
    assert paths["dest_xlsx"].exists()


def test_committed_samples_cover_every_corruption_kind() -> None:
    truth = pd.read_csv(SAMPLES / "truth.csv", dtype=str, keep_default_na=False)
    kinds = _kinds(truth)
    from fixtures.corrupt import KINDS
    assert set(KINDS) <= set(kinds), set(KINDS) - set(kinds)
    for flag in ("twin", "duplicate", "cross_township", "id_conflict", "namesake_same_birth", "minority", "old_region_code"):
        assert truth["flags"].str.contains(flag).any(), flag


def test_sample_xlsx_text_ids_and_excel_damaged_numbers() -> None:
    from openpyxl import load_workbook

    ws = load_workbook(SAMPLES / "dest.xlsx", read_only=True).active
    rows = list(ws.iter_rows(values_only=True))
    dest = pd.read_csv(SAMPLES / "dest_utf8bom.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    truth = pd.read_csv(SAMPLES / "truth.csv", dtype=str, keep_default_na=False)
    damaged = set(truth.loc[(truth["source"] == "dest") & truth["corruptions"].str.contains("id_excel"), "record_key"])
    assert list(rows[0]) == list(dest.columns) and len(rows) == len(dest) + 1
    numeric = {str(r[0]) for r in rows[1:] if isinstance(r[4], float)}
    assert damaged and numeric == damaged
    for r, (_, d) in zip(rows[1:], dest.iterrows()):
        if str(r[0]) not in damaged:
            assert (r[4] or "") == d["身份证号"]  # text cells, ="..." kept as text, not a formula
            assert r[1] == d["姓名"]


def test_tiny_hand_written_registries() -> None:
    exp = json.loads((SAMPLES / "tiny_expected.json").read_text(encoding="utf-8"))
    o = pd.read_csv(SAMPLES / "tiny_origin.csv", dtype=str, keep_default_na=False)
    d = pd.read_csv(SAMPLES / "tiny_dest.csv", dtype=str, keep_default_na=False)
    assert set(o["编号"]) == set(exp["origin"]) and set(d["序号"]) == set(exp["dest"])
    o_out = Counter(v["outcome"] for v in exp["origin"].values())
    d_out = Counter(v["outcome"] for v in exp["dest"].values())
    assert o_out["traced"] >= 1 and 1 <= o_out["untraceable"] <= 2 and o_out["cross_region_duplicate"] == 1
    assert 1 <= d_out["unregistered"] <= 2 and d_out["in_migrant"] >= 2
    assert len(exp["id_conflicts"]) == 2 and exp["duplicates"]["origin"] and exp["duplicates"]["dest"]
    pairs = {tuple(p) for p in exp["pairs"]}
    assert pairs == {(k, dk) for k, v in exp["origin"].items() for dk in v["dest"]}
    assert pairs == {(ok, k) for k, v in exp["dest"].items() for ok in v["origin"]}
    flow = dict(zip(o["编号"], o["流动状态"]))
    assert all(flow[k] == "流出" for k in exp["untraceable"])
    assert all(flow[a] == "常住" for a, _ in exp["cross_region_duplicates"])
    ids = {("origin", k): v for k, v in zip(o["编号"], o["公民身份号码"])} | {("dest", k): v for k, v in zip(d["序号"], d["身份证号"])}
    for c in exp["id_conflicts"]:
        assert mod_11_2.is_valid(c["id_number"])
        assert all(ids[tuple(r)] == c["id_number"] for r in c["records"])
    # Every plain 18-character ID in the tiny files has a valid check character.
    plain = [v.upper() for v in ids.values() if re.fullmatch(r"\d{17}[\dXx]", v)]
    assert plain and all(mod_11_2.is_valid(v) for v in plain)


# ---------------------------------------------------------------- monthly exports
def test_monthly_exports_keys_events_merge_and_split() -> None:
    ex = mo.generate_months(1500, seed=5, months=3)
    assert [e.month for e in ex] == [1, 2, 3]
    for e in ex:
        assert e.registry["编号"].is_unique
        assert list(e.truth["record_key"]) == list(e.registry["编号"])
    m1, m2, m3 = ex
    # Kept records keep their key and person.
    p1 = dict(zip(m1.truth["record_key"], m1.truth["person_id"]))
    p2 = dict(zip(m2.truth["record_key"], m2.truth["person_id"]))
    assert all(p1[k] == p2[k] for k in set(p1) & set(p2))
    ev2 = m2.events
    deleted = set(ev2.loc[ev2["event"] == "deleted", "record_key"])
    added = set(ev2.loc[ev2["event"] == "added", "record_key"])
    assert deleted and added and not deleted & set(p2) and not added & set(p1)
    assert set(p2) == (set(p1) - deleted) | added
    edited = m2.truth[m2.truth["event"] == "edited"]
    assert len(edited) > 10
    r1 = m1.registry.set_index("编号")
    r2 = m2.registry.set_index("编号")
    for k in edited["record_key"]:
        assert (r1.loc[k] != r2.loc[k]).sum() >= 1
    unchanged = m2.truth.loc[m2.truth["event"] == "unchanged", "record_key"]
    assert (r1.loc[unchanged] == r2.loc[unchanged]).all().all()
    # Merge: a record that looked like someone else becomes a plain duplicate of its person.
    merge = m1.truth[m1.truth["flags"] == "merge_pending"]
    assert len(merge) >= 1
    for _, row in merge.iterrows():
        assert row["apparent_person_id"] != row["person_id"]
        assert r1.loc[row["record_key"], "公民身份号码"] == ""
        assert r2.loc[row["record_key"], "公民身份号码"] == row["true_id"]
        assert r2.loc[row["record_key"], "姓名"] == row["true_name"]
    # Split: a copied record looks like another person in month 1, like itself in month 2.
    split = m1.truth[m1.truth["flags"] == "split_pending"]
    assert len(split) >= 1
    for _, row in split.iterrows():
        other = m1.truth[(m1.truth["person_id"] == row["apparent_person_id"])]["record_key"].iloc[0]
        assert r1.loc[row["record_key"], "公民身份号码"] == r1.loc[other, "公民身份号码"]
        assert r2.loc[row["record_key"], "公民身份号码"] != r1.loc[other, "公民身份号码"]
    a1, t1 = mo.month_duplicate_pairs(m1), mo.month_duplicate_pairs(m1, apparent=False)
    assert a1 != t1
    assert mo.month_duplicate_pairs(m2) == mo.month_duplicate_pairs(m2, apparent=False)
    assert len(mo.month_duplicate_pairs(m3)) > len(mo.month_duplicate_pairs(m2)) - 10


def test_monthly_exports_are_deterministic(tmp_path: Path) -> None:
    a = mo.generate_months(300, seed=8, months=2)
    b = mo.generate_months(300, seed=8, months=2)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x.registry, y.registry)
        pd.testing.assert_frame_equal(x.truth, y.truth)
    paths = mo.write_months(a, tmp_path)
    assert len(paths) == 6
    back = pd.read_csv(paths[0], dtype=str, keep_default_na=False, encoding="gb18030")
    pd.testing.assert_frame_equal(back, a[0].registry)
