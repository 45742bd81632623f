"""`reconcile review decide|status|DB` through the Typer app: messages in both languages, exit codes."""
from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from cli import app
from review_testdata import build_report

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "比对.db"
    build_report(path)
    return path


def _ledger(path):
    con = sqlite3.connect(path)
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'review_decisions'").fetchone():
            return []
        return con.execute("SELECT origin_key, dest_key, decision, reason, reviewer, channel FROM review_decisions ORDER BY decision_id").fetchall()
    finally:
        con.close()


def test_decide_records_and_says_so(db):
    r = runner.invoke(app, ["--lang", "zh", "review", "decide", str(db), "H001", "D101", "--decision", "match",
                            "--reviewer", "李娟", "--reason", "同一身份证"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "已记录判定 #1：H001 / D101 -> match（审核人 李娟）。"
    r = runner.invoke(app, ["--lang", "en", "review", "decide", str(db), "H001", "D101", "--decision", "match",
                            "--reviewer", "王强", "--reason", "同一身份证"])
    assert r.exit_code == 0
    assert r.stdout.strip() == "Decision #1 already says match; nothing recorded."
    r = runner.invoke(app, ["review", "decide", str(db), "D109", "D108", "--pair", "dest-dest", "--decision", "non_match",
                            "--reviewer", "李娟"])
    assert r.exit_code == 0, r.output
    assert _ledger(db) == [("H001", "D101", "match", "同一身份证", "李娟", "cli"), ("D109", "D108", "non_match", "", "李娟", "cli")]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["H001", "D999", "--decision", "match", "--reviewer", "李娟"], 2, "不都在批次 1 中"),
        (["H001", "D101", "--decision", "same", "--reviewer", "李娟"], 2, "无法识别的判定 'same'"),
        (["H001", "D101", "--decision", "match", "--reviewer", "李娟", "--run", "7"], 5, "不存在批次 7"),
        (["H001", "D101", "--decision", "match", "--reviewer", "李娟", "--pair", "origin-x"], 2, "无法识别的比对类型"),
        (["H001", "D101", "--decision", "match"], 2, "--reviewer"),
    ],
)
def test_decide_errors_exit_codes(db, args, code, message):
    r = runner.invoke(app, ["--lang", "zh", "review", "decide", str(db), *args])
    assert r.exit_code == code, r.output
    assert message in r.output
    assert _ledger(db) == []


def test_missing_database_exit_5(tmp_path):
    r = runner.invoke(app, ["--lang", "en", "review", "status", str(tmp_path / "nope.db")])
    assert r.exit_code == 5
    assert "does not exist" in r.stderr
    assert not (tmp_path / "nope.db").exists()


def test_status_both_languages_and_json(db):
    for args in (["H001", "D101", "--decision", "match"], ["H003", "D103", "--decision", "unsure"]):
        assert runner.invoke(app, ["review", "decide", str(db), *args, "--reviewer", "李娟"]).exit_code == 0
    zh = runner.invoke(app, ["--lang", "zh", "review", "status", str(db)])
    assert zh.exit_code == 0
    assert "批次 1 的审核进度：共 8 对" in zh.stdout
    assert "李娟：是 1，否 0，不确定 1" in zh.stdout
    assert "城关镇：待审 1，已过期 0，不确定 1，已判定 1" in zh.stdout
    en = runner.invoke(app, ["--lang", "en", "review", "status", str(db)])
    assert "Review status of run 1: 8 pair(s)" in en.stdout
    assert "to decide 6 (waiting 5, stale 0, unsure 1)" in en.stdout
    js = json.loads(runner.invoke(app, ["review", "status", str(db), "--json"]).stdout)
    assert js["totals"]["decided_match"] == 1 and js["per_reviewer"]["李娟"]["unsure"] == 1


def test_review_db_starts_the_server(db, monkeypatch):
    """`reconcile review DB ...` goes to `serve` (the real server is exercised in the browser test)."""
    import reconcile.review.server as server

    seen = {}

    def fake_serve(path, **kw):
        seen.update(kw, path=path)

    monkeypatch.setattr(server, "serve", fake_serve)
    r = runner.invoke(app, ["review", str(db), "--no-browser", "--port", "0", "--reviewer", "李娟", "--lang", "zh", "--run", "1"])
    assert r.exit_code == 0, r.output
    assert seen == {"path": db, "run": 1, "reviewer": "李娟", "port": 0, "open_browser": False, "lang": "zh", "echo": seen["echo"]}
    r = runner.invoke(app, ["review", "--run", "1", str(db)])
    assert r.exit_code == 0 and seen["open_browser"] is True
    r = runner.invoke(app, ["review", "--help"])
    assert r.exit_code == 0
    for cmd in ("serve", "decide", "status", "export", "import"):
        assert cmd in r.stdout


def test_every_review_command_has_help():
    for cmd in ("serve", "decide", "status", "export", "import"):
        r = runner.invoke(app, ["review", cmd, "--help"])
        assert r.exit_code == 0
        assert "Usage:" in r.stdout and len(r.stdout.splitlines()) > 5
