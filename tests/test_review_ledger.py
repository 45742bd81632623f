"""The decisions ledger: append-only, current view, supersede/undo, and decisions binding a re-run."""
from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from reconcile.errors import ConfigError, ReportError
from reconcile.fingerprint import pair_fingerprint
from reconcile.report import open_report, read_table
from reconcile.review.ledger import (
    apply_decisions, current_decision, decided_pairs, ensure_ledger, log_reveal, record_decision, undo_decision,
)
from reconcile.review.pairs import order_queue, pair_states
from reconcile.review.status import format_status, review_status
from reconcile.review.view import char_diff, pair_detail
from review_testdata import LINKS, build_report, fingerprints_of


@pytest.fixture
def report(tmp_path):
    path = tmp_path / "report.db"
    run_id = build_report(path)
    db = open_report(path, create=False)
    ensure_ledger(db)
    yield db, path, run_id
    db.conn.close()


def test_ledger_is_append_only(report):
    db, _, _ = report
    record_decision(db, "H001", "D101", "match", "李娟", reason="同一身份证")
    log_reveal(db, 1, "origin", ["H001"], "李娟", "web")
    for sql in (
        "UPDATE review_decisions SET decision = 'non_match'",
        "DELETE FROM review_decisions",
        "UPDATE reveal_log SET reviewer = '别人'",
        "DELETE FROM reveal_log",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)
    # A fresh connection (another tool) is refused too: the triggers live in the file.
    con = sqlite3.connect(db.conn.execute("PRAGMA database_list").fetchone()[2])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM review_decisions WHERE decision_id = 1")
    con.close()
    assert db.execute("SELECT decision, reason FROM review_decisions").fetchall() == [("match", "同一身份证")]


def test_ensure_ledger_is_idempotent(report):
    db, _, _ = report
    record_decision(db, "H001", "D101", "match", "李娟")
    ensure_ledger(db)
    ensure_ledger(db)
    assert len(decided_pairs(db)) == 1


def test_current_view_supersede_and_undo(report):
    db, _, _ = report
    a = record_decision(db, "H001", "D101", "match", "李娟")
    b = record_decision(db, "H001", "D101", "non_match", "王强", reason="出生地不同")
    record_decision(db, "H002", "D102", "unsure", "李娟")
    cur = decided_pairs(db)
    assert sorted(zip(cur["origin_key"], cur["decision"], cur["reviewer"])) == [
        ("H001", "non_match", "王强"), ("H002", "unsure", "李娟")]
    rows = db.execute("SELECT decision_id, supersedes FROM review_decisions ORDER BY decision_id").fetchall()
    assert rows == [(a.decision_id, None), (b.decision_id, a.decision_id), (3, None)]

    # Undo: a new row that supersedes the undone one and restores what it had superseded.
    u = undo_decision(db, "H001", "D101", "王强")
    assert current_decision(db, "origin-dest", "H001", "D101")["decision"] == "match"
    assert db.execute("SELECT decision, supersedes FROM review_decisions WHERE decision_id = ?", (u.decision_id,)).fetchone() == (
        "match", b.decision_id)
    # Undoing the only decision of a pair withdraws it: the pair waits again.
    undo_decision(db, "H002", "D102", "李娟")
    assert current_decision(db, "origin-dest", "H002", "D102") is None
    assert set(decided_pairs(db)["origin_key"]) == {"H001"}
    assert undo_decision(db, "H002", "D102", "李娟") is None
    assert db.execute("SELECT count(*) FROM review_decisions").fetchone()[0] == 5


def test_same_decision_twice_writes_once(report):
    db, _, _ = report
    first = record_decision(db, "H001", "D101", "match", "李娟", reason="同一身份证")
    again = record_decision(db, "H001", "D101", "match", "王强", reason="同一身份证")
    assert (again.decision_id, again.created) == (first.decision_id, False)
    other_reason = record_decision(db, "H001", "D101", "match", "王强", reason="本人电话确认")
    assert other_reason.created


def test_record_decision_rejects_bad_input(report):
    db, _, _ = report
    with pytest.raises(ConfigError) as e:
        record_decision(db, "H001", "D999", "match", "李娟")
    assert e.value.key == "review.unknown_pair"
    with pytest.raises(ConfigError):
        record_decision(db, "H001", "D101", "same", "李娟")
    with pytest.raises(ConfigError):
        record_decision(db, "H001", "D101", "match", "  ")
    with pytest.raises(ReportError):
        record_decision(db, "H001", "D101", "match", "李娟", run_id=99)
    assert db.execute("SELECT count(*) FROM review_decisions").fetchone()[0] == 0


def test_decision_stores_probability_and_fingerprint(report):
    db, path, run_id = report
    record_decision(db, "H002", "D102", "match", "李娟")
    row = decided_pairs(db).iloc[0]
    fps = fingerprints_of(path, run_id)
    assert row["match_probability"] == pytest.approx(0.91)
    assert row["evidence_fingerprint"] == pair_fingerprint(fps[("origin", "H002")], fps[("dest", "D102")])
    assert row["decided_at"][-6] in "+-"  # ISO with a time-zone offset
    assert row["run_id"] == run_id and row["channel"] == "cli"


def test_within_file_pair_either_order(report):
    db, _, _ = report
    record_decision(db, "D109", "D108", "non_match", "李娟", source_pair="dest-dest")
    # The same pair the other way round supersedes it rather than starting a second pair.
    record_decision(db, "D108", "D109", "match", "王强", source_pair="dest-dest")
    cur = decided_pairs(db)
    assert len(cur) == 1 and cur.iloc[0]["decision"] == "match"
    st = pair_states(db, 1).set_index(["source_pair", "origin_key", "dest_key"])
    assert st.loc[("dest-dest", "D108", "D109"), "state"] == "decided"


def _new_links(path, run_id, pairs):
    links = read_table(open_report(path, create=False), "links", run_id)
    links = links[[(o, d) in pairs for o, d in zip(links["origin_key"], links["dest_key"])]]
    return links[["source_pair", "origin_key", "dest_key", "match_probability", "match_weight", "decision", "evidence_json"]]


def test_apply_decisions_binds_a_rerun(tmp_path):
    path = tmp_path / "report.db"
    run1 = build_report(path)
    db = open_report(path, create=False)
    record_decision(db, "H001", "D101", "match", "李娟")        # model said review (0.62)
    record_decision(db, "H006", "D106", "non_match", "李娟")    # model said review (0.35)
    record_decision(db, "H003", "D103", "unsure", "李娟")
    record_decision(db, "H004", "D104", "non_match", "王强", reason="双胞胎")  # overrules a model match
    record_decision(db, "H005", "D106", "match", "王强")        # a pair blocking never proposed
    # Run 2: same files, except D102's birth date was corrected after a decision on H002/D102.
    record_decision(db, "H002", "D102", "match", "李娟")
    run2 = build_report(path, dest_edits={"D102": {"birth_date": "1985-11-20"}})
    fps = fingerprints_of(path, run2)
    links = _new_links(path, run2, {("H001", "D101"), ("H002", "D102"), ("H003", "D103"), ("H004", "D104"), ("H006", "D106"), ("H007", "D107")})
    out = apply_decisions(db, links, fps).set_index(["origin_key", "dest_key"])

    assert out.loc[("H001", "D101"), ["decision", "decided_by", "stale"]].tolist() == ["match", "review", 0]
    assert out.loc[("H006", "D106"), ["decision", "decided_by"]].tolist() == ["non_match", "review"]
    assert out.loc[("H003", "D103"), "decision"] == "review"
    assert out.loc[("H004", "D104"), ["decision", "decided_by"]].tolist() == ["non_match", "review"]
    assert out.loc[("H007", "D107"), ["decision", "decided_by", "stale"]].tolist() == ["review", "model", 0]
    # Decided but absent from the candidates: still returned, probability left for the pipeline.
    absent = out.loc[("H005", "D106")]
    assert absent["decision"] == "match" and pd.isna(absent["match_probability"])
    # The edited record makes its pair stale: back to review, saying which record changed.
    stale = out.loc[("H002", "D102")]
    assert (stale["decision"], stale["stale"]) == ("review", 1)
    ev = json.loads(stale["evidence_json"])
    assert ev["stale"]["changed"] == ["dest"] and ev["stale"]["decision"] == "match"
    assert ev["fields"]["id_number"]["level"] == "typo"  # the model's evidence is kept
    assert json.loads(out.loc[("H001", "D101"), "evidence_json"])["review"]["reviewer"] == "李娟"
    assert len(out) == 7
    assert run1 != run2
    db.conn.close()


def test_apply_decisions_without_ledger_rows_changes_nothing(report):
    db, path, run_id = report
    links = _new_links(path, run_id, {(a, b) for _, a, b, _, _ in LINKS})
    out = apply_decisions(db, links, fingerprints_of(path, run_id))
    assert out["decision"].tolist() == links["decision"].tolist()
    assert set(out["decided_by"]) == {"model"} and set(out["stale"]) == {0}


def test_decision_on_records_missing_from_the_new_run_is_dropped(tmp_path):
    path = tmp_path / "report.db"
    build_report(path)
    db = open_report(path, create=False)
    record_decision(db, "H001", "D101", "match", "李娟")
    run2 = build_report(path)
    fps = {k: v for k, v in fingerprints_of(path, run2).items() if k != ("dest", "D101")}  # D101 left the registry
    out = apply_decisions(db, _new_links(path, run2, set()), fps)
    assert out.empty
    db.conn.close()


def test_stale_state_status_and_changes_after_an_edit(tmp_path):
    path = tmp_path / "report.db"
    build_report(path)
    db = open_report(path, create=False)
    record_decision(db, "H001", "D101", "match", "李娟")
    record_decision(db, "H003", "D103", "non_match", "王强")
    run2 = build_report(path, origin_edits={"H001": {"name": "张玮"}})
    st = pair_states(db, run2).set_index(["origin_key", "dest_key"])
    assert st.loc[("H001", "D101"), "state"] == "stale"
    assert st.loc[("H001", "D101"), "changed"] == ["origin"]
    assert st.loc[("H003", "D103"), "state"] == "decided"
    status = review_status(db, run2)
    assert status["totals"]["stale"] == 1 and status["totals"]["decided"] == 1
    assert status["per_reviewer"]["李娟"]["stale"] == 1
    det = pair_detail(db, run2, "origin-dest", "H001", "D101", "zh")
    assert det["stale"] and det["stale_sides"] == ["origin"]
    assert {"field": "name", "label": "姓名", "before": "张伟", "after": "张玮"} in det["stale_changes"]["left"]
    # Deciding again on the edited records clears the staleness.
    record_decision(db, "H001", "D101", "match", "李娟", run_id=run2)
    assert pair_states(db, run2).set_index(["origin_key", "dest_key"]).loc[("H001", "D101"), "state"] == "decided"
    db.conn.close()


def test_queue_order_and_status_counts(report):
    db, _, run_id = report
    record_decision(db, "H003", "D103", "match", "李娟")
    record_decision(db, "H001", "D101", "unsure", "王强")
    q = order_queue(pair_states(db, run_id))
    keys = list(zip(q["origin_key"], q["state"]))
    # To-decide pairs by uncertainty |p - 0.5|: H001 (unsure, 0.62), H006 (0.35), H005 (0.78),
    # D108/D109 (0.85), H007 (0.88), H002 (0.91); then the model match H004; decided last.
    assert keys == [("H001", "unsure"), ("H006", "waiting"), ("H005", "waiting"), ("D108", "waiting"),
                    ("H007", "waiting"), ("H002", "waiting"), ("H004", "auto_match"), ("H003", "decided")]
    s = review_status(db, run_id)
    assert s["totals"] == {"pairs": 8, "waiting": 5, "stale": 0, "unsure": 1, "decided": 1, "auto_match": 1,
                           "decided_match": 1, "decided_non_match": 0, "to_decide": 6}
    assert s["per_unit"]["城关镇"] == {"waiting": 1, "stale": 0, "unsure": 1, "decided": 1, "auto_match": 0}
    assert "待判定 6" in format_status(s, "zh") and "to decide 6" in format_status(s, "en")


def test_pair_detail_masks_ids_and_highlights_characters(report):
    db, _, run_id = report
    det = pair_detail(db, run_id, "origin-dest", "H002", "D102", "en")
    fields = {f["field"]: f for f in det["fields"]}
    assert fields["id_number"]["left"] == "431028********2046"
    # The one differing digit is highlighted even though it is masked.
    assert [t for changed, t in fields["id_number"]["left_segs"] if changed][0] == "0"
    assert "431028198511022046" not in json.dumps(det)
    assert fields["sex"]["left"] == "female"
    ev = {f["field"]: f for f in det["evidence"]["fields"]}
    assert (ev["id_number"]["label"], ev["id_number"]["level_label"], ev["id_number"]["weight"]) == (
        "ID number", "one digit or transposition apart", 6.1)
    assert ev["id_number"]["left"] == "431028********2046"   # evidence values are masked too
    assert det["evidence"]["prior"] == -14.0
    assert det["evidence"]["one_person"] == 2.0
    assert char_diff("阿依古丽·买买提", "阿依古丽买买提") == (
        [[False, "阿依古丽"], [True, "·"], [False, "买买提"]], [[False, "阿依古丽买买提"]])
    assert pair_detail(db, run_id, "origin-dest", "H001", "D999") is None


def test_stale_non_match_outside_the_candidates_is_dropped(tmp_path):
    path = tmp_path / "report.db"
    build_report(path)
    db = open_report(path, create=False)
    record_decision(db, "H005", "D106", "non_match", "李娟")   # never a candidate
    record_decision(db, "H002", "D106", "match", "李娟")       # never a candidate either
    run2 = build_report(path, dest_edits={"D106": {"residence": "广东省东莞市虎门镇"}})
    out = apply_decisions(db, _new_links(path, run2, set()), fingerprints_of(path, run2))
    # The stale match comes back for review; the stale non_match is not worth a reviewer's time.
    assert list(zip(out["origin_key"], out["decision"], out["stale"])) == [("H002", "review", 1)]
    st = pair_states(db, run2)
    extra = st[~st["in_links"].astype(bool)]
    assert list(zip(extra["origin_key"], extra["dest_key"], extra["state"])) == [("H002", "D106", "stale")]
    db.conn.close()

