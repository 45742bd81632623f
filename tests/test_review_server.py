"""The review server over plain HTTP (no browser): token and Host checks, decide/undo/reveal
through the API, queue filters, and a clean stop on Ctrl-C of the real command."""
from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from reconcile.review.server import ReviewApp, ReviewServer
from review_testdata import build_report


@pytest.fixture
def srv(tmp_path):
    db = tmp_path / "report.db"
    build_report(db)
    server = ReviewServer(ReviewApp(db, run=None, reviewer="李娟", lang="en"))
    server.start_background()
    try:
        yield server, db
    finally:
        server.shutdown()
        server.server_close()


def call(server, method, path, body=None, *, token=True, host=None):
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if token:
        headers["X-Review-Token"] = server.app.token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw.decode("utf-8", "replace")


def test_token_and_host_are_required(srv):
    server, _ = srv
    assert call(server, "GET", "/api/queue", token=False)[0] == 403
    assert call(server, "GET", "/static/review.js", token=False)[0] == 403
    # DNS rebinding: right token, foreign Host.
    assert call(server, "GET", "/api/queue", host="attacker.example:80")[0] == 403
    status, page = call(server, "GET", "/?token=" + server.app.token, token=False)
    assert status == 200 and "static/review.js?token=" in page
    assert call(server, "GET", "/static/../server.py")[0] == 404
    assert call(server, "GET", "/static/review.css")[0] == 200


def test_decide_undo_reveal_through_the_api(srv):
    server, db = srv
    key = {"source_pair": "origin-dest", "origin_key": "H001", "dest_key": "D101"}
    status, res = call(server, "POST", "/api/decide", {**key, "decision": "match", "reason": "同一身份证"})
    assert status == 200 and res["created"] and res["pair"]["decision"]["decision"] == "match"
    status, res = call(server, "POST", "/api/decide", {**key, "decision": "match", "reason": "同一身份证"})
    assert status == 200 and not res["created"]
    status, res = call(server, "POST", "/api/undo", key)
    assert status == 200 and res["pair"]["decision"] is None
    assert call(server, "POST", "/api/decide", {**key, "decision": "maybe"})[0] == 400
    assert call(server, "POST", "/api/decide", {**key, "dest_key": "D999", "decision": "match"})[0] == 409
    assert call(server, "GET", "/api/pair?sp=origin-dest&o=H001&d=D999")[0] == 404
    status, rev = call(server, "POST", "/api/reveal", {**key, "side": "right"})
    assert status == 200 and rev["id_number"]["value"] == "431028199003071233"
    con = sqlite3.connect(db)
    rows = con.execute("SELECT decision, reviewer, channel, supersedes FROM review_decisions ORDER BY decision_id").fetchall()
    reveals = con.execute("SELECT source, record_key, reviewer, channel FROM reveal_log").fetchall()
    con.close()
    assert rows == [("match", "李娟", "web", None), ("withdrawn", "李娟", "web", 1)]
    assert reveals == [("dest", "D101", "李娟", "web")]


def test_queue_filters(srv):
    server, _ = srv
    call(server, "POST", "/api/decide", {"origin_key": "H003", "dest_key": "D103", "decision": "non_match"})
    _, q = call(server, "GET", "/api/queue")
    assert q["total"] == 8 and q["counts"]["decided"] == 1
    assert q["units"] == sorted(["城关镇", "珠泉镇", "行廊镇", "宝安区", "长安镇", "龙岗区", "天河区"])
    _, q = call(server, "GET", "/api/queue?band=80-95")
    assert [(i["o"], i["p"]) for i in q["items"]] == [("D108", 0.85), ("H007", 0.88), ("H002", 0.91)]
    _, q = call(server, "GET", "/api/queue?unit=" + quote("城关镇"))
    assert {i["o"] for i in q["items"]} == {"H001", "H003", "H005"}
    _, q = call(server, "GET", "/api/queue?outcome=duplicate")
    assert [(i["o"], i["d"]) for i in q["items"]] == [("D108", "D109")]
    _, q = call(server, "GET", "/api/queue?state=decided")
    assert [(i["o"], i["decision"]) for i in q["items"]] == [("H003", "non_match")]
    _, q = call(server, "GET", "/api/queue?state=todo")
    assert len(q["items"]) == 6


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    db = tmp_path / "report.db"
    build_report(db)
    exe = Path(sys.executable).parent / "reconcile"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    env = {**os.environ, "RECONCILE_LANG": "en", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*cmd, "review", str(db), "--no-browser", "--reviewer", "李娟"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        deadline = time.time() + 60
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            if "http://127.0.0.1:" in line:
                url = line.strip()
        assert url, "the command did not print its URL"
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", "/api/queue?" + parts.query)
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Review server stopped." in err
    assert "Traceback" not in err


def test_duplicate_cluster_shows_all_its_records(srv):
    server, _ = srv
    status, det = call(server, "GET", "/api/pair?sp=dest-dest&o=D108&d=D109")
    assert status == 200
    assert det["left_source"] == det["right_source"] == "dest"
    members = {(m["record_key"], m["survivor"], m["id_number"]) for m in det["cluster"]}
    assert members == {("D108", 1, "440306********821X"), ("D109", 0, "")}
    residence = next(f for f in det["fields"] if f["field"] == "residence")
    assert residence["right_segs"] == [[False, "广东省深圳市宝安区"], [True, "西乡街道"]]


def test_port_in_use_is_a_clean_error(srv):
    from typer.testing import CliRunner

    from cli import app

    server, db = srv
    r = CliRunner().invoke(app, ["--lang", "zh", "review", str(db), "--no-browser", "--port", str(server.server_address[1])])
    assert r.exit_code == 2
    assert f"无法在 127.0.0.1 的端口 {server.server_address[1]} 上监听" in r.stderr
