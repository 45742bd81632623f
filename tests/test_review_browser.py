"""The review page in a real headless browser (Debian chromium driven by Playwright).

Reviews three pairs with the keyboard, reloads, sees them decided, checks the ledger rows,
the 403 without the token, the ID reveal log, and keeps a screenshot in tests/artifacts/.
"""
from __future__ import annotations

import shutil
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from review_testdata import build_report

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright==1.65.2)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def server(tmp_path):
    from reconcile.review.server import ReviewApp, ReviewServer

    db = tmp_path / "report.db"
    build_report(db)
    app = ReviewApp(db, run=None, reviewer="李娟", lang="zh")
    srv = ReviewServer(app)
    srv.start_background()
    try:
        yield srv, db
    finally:
        srv.shutdown()
        srv.server_close()


def _wait_pair(page, key: str) -> None:
    page.wait_for_selector(f'#pairhead[data-key="{key}"]')


def test_review_three_pairs_with_keyboard(server, browser):
    srv, db = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.url)
    page.wait_for_selector("body[data-ready='1']")
    items = page.locator("#queue li")
    # Review pairs first, highest uncertainty (|p - 0.5|) first: 0.55, 0.62, 0.35, 0.78, ...
    keys = [items.nth(i).get_attribute("data-key") for i in range(items.count())]
    assert keys[:4] == ["origin-dest|H003|D103", "origin-dest|H001|D101", "origin-dest|H006|D106", "origin-dest|H005|D105"]
    assert page.locator("#title").inner_text() == "比对结果审核"

    _wait_pair(page, keys[0])
    # Differing characters are highlighted: 欧阳晓棠 / 欧阳晓堂 differ in the last character only.
    name_row = page.locator('#fields tr[data-field="name"]')
    assert name_row.locator('td[data-side="left"] mark.diff').all_inner_texts() == ["棠"]
    assert name_row.locator('td[data-side="right"] mark.diff').all_inner_texts() == ["堂"]
    # The evidence waterfall has a bar per field plus prior, the other candidates and total.
    assert page.locator("#evidence svg rect").count() == 7
    assert page.locator('#evidence svg g[data-field="其他候选（一人只对应一条）"]').count() == 1

    page.keyboard.press("y")                       # H003/D103 -> match
    _wait_pair(page, keys[1])
    # 张伟 / 章伟: the surname is the differing character.
    assert page.locator('#fields tr[data-field="name"] td[data-side="left"] mark.diff').all_inner_texts() == ["张"]
    assert page.locator('#fields tr[data-field="name"] td[data-side="right"] mark.diff').all_inner_texts() == ["章"]
    page.keyboard.press("u")                       # H001/D101 -> unsure
    _wait_pair(page, keys[2])
    page.keyboard.press("r")                       # type a reason; Enter leaves the field
    page.keyboard.type("出生日期不符")
    page.keyboard.press("Enter")
    page.keyboard.press("n")                       # H006/D106 -> non_match, with the reason
    _wait_pair(page, keys[3])
    page.keyboard.press("ArrowLeft")
    _wait_pair(page, keys[2])
    page.keyboard.press("ArrowRight")
    _wait_pair(page, keys[3])

    # IDs are masked until revealed; the reveal is logged with the reviewer's name.
    id_left = page.locator('#fields tr[data-field="id_number"] td[data-side="left"] .val')
    assert "********" in id_left.inner_text()
    page.locator('#fields tr[data-field="id_number"] td[data-side="left"] button.reveal').click()
    page.wait_for_function("() => !document.querySelector('#fields tr[data-field=\"id_number\"] td[data-side=\"left\"] .val').textContent.includes('*')")
    assert len(id_left.inner_text()) == 18

    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    states = {li.get_attribute("data-key"): (li.get_attribute("data-state"), li.get_attribute("data-decision"))
              for li in page.locator("#queue li").all()}
    assert states["origin-dest|H003|D103"] == ("decided", "match")
    assert states["origin-dest|H006|D106"] == ("decided", "non_match")
    assert states["origin-dest|H001|D101"] == ("unsure", "unsure")
    assert states["origin-dest|H005|D105"] == ("waiting", "")
    # Undecided pairs come first after the reload; decided ones go to the end of the queue.
    assert page.locator("#queue li").first.get_attribute("data-state") in ("waiting", "unsure")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "review.png"
    page.locator('#queue li[data-key="origin-dest|H001|D101"]').click()
    _wait_pair(page, "origin-dest|H001|D101")
    page.screenshot(path=str(shot), full_page=False)
    print(f"\nscreenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert errors == []

    con = sqlite3.connect(db)
    rows = con.execute(
        "SELECT origin_key, dest_key, decision, reason, reviewer, channel, supersedes, decided_at FROM review_decisions ORDER BY decision_id"
    ).fetchall()
    reveals = con.execute("SELECT source, record_key, reviewer, channel FROM reveal_log").fetchall()
    con.close()
    assert [r[:6] for r in rows] == [
        ("H003", "D103", "match", "", "李娟", "web"),
        ("H001", "D101", "unsure", "", "李娟", "web"),
        ("H006", "D106", "non_match", "出生日期不符", "李娟", "web"),
    ]
    assert all(r[6] is None for r in rows)
    assert all("+" in r[7] or r[7].endswith("Z") or "-" in r[7][19:] for r in rows)  # time zone offset present
    assert reveals == [("origin", "H005", "李娟", "web")]


def test_undo_button_supersedes(server, browser):
    srv, db = server
    page = browser.new_page()
    page.goto(srv.url)
    page.wait_for_selector("body[data-ready='1']")
    first = page.locator("#queue li").first.get_attribute("data-key")
    _wait_pair(page, first)
    second = page.locator("#queue li").nth(1).get_attribute("data-key")
    page.keyboard.press("n")
    _wait_pair(page, second)
    page.keyboard.press("ArrowLeft")
    _wait_pair(page, first)
    page.keyboard.press("z")
    page.wait_for_function("() => document.querySelector('#toast').textContent.length > 0")
    assert page.locator(f'#queue li[data-key="{first}"]').get_attribute("data-state") == "waiting"
    con = sqlite3.connect(db)
    rows = con.execute("SELECT decision_id, decision, supersedes FROM review_decisions ORDER BY decision_id").fetchall()
    con.close()
    assert rows == [(1, "non_match", None), (2, "withdrawn", 1)]


def test_requests_without_token_are_refused(server):
    srv, db = server
    base = srv.url.split("?")[0]
    for path in ("", "api/queue", "static/review.js"):
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(base + path, timeout=10)
        assert exc.value.code == 403
    wrong = base + "api/queue?token=" + "x" * len(srv.app.token)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(wrong, timeout=10)
    assert exc.value.code == 403
    with urllib.request.urlopen(srv.url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # A POST without the token writes nothing.
    req = urllib.request.Request(base + "api/decide", data=b'{"origin_key":"H001","dest_key":"D101","decision":"match"}',
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 403
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM review_decisions").fetchone() == (0,)
    con.close()
    assert srv.server_address[0] == "127.0.0.1"


def test_markup_in_data_stays_text(tmp_path, browser):
    from reconcile.review.server import ReviewApp, ReviewServer

    db = tmp_path / "report.db"
    payload = '<img src=x onerror="document.body.dataset.pwned=1">刘阳'
    build_report(db, dest_edits={"D106": {"name": payload}})
    srv = ReviewServer(ReviewApp(db, run=None, reviewer="李娟", lang="en"))
    srv.start_background()
    try:
        page = browser.new_page()
        page.goto(srv.url)
        page.wait_for_selector("body[data-ready='1']")
        page.locator('#queue li[data-key="origin-dest|H006|D106"]').click()
        _wait_pair(page, "origin-dest|H006|D106")
        cell = page.locator('#fields tr[data-field="name"] td[data-side="right"] .val')
        assert cell.inner_text() == payload
        assert page.locator("#fields img").count() == 0
        assert page.evaluate("document.body.dataset.pwned") is None
        assert page.locator("#title").inner_text() == "Review candidate matches"
    finally:
        srv.shutdown()
        srv.server_close()
