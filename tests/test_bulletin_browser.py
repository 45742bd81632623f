"""The bulletin rendered in headless Debian Chromium: charts laid out, numbers visible, nothing
fetched from outside the file, fits an A4 page; the screenshot is kept in tests/artifacts/."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reconcile.bulletin import write_bulletin
from reconcile.coordination import export_packets, import_feedback
from reconcile.coordination.packets import ALL_COLUMNS
from tests._coord_data import build_db

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def bulletin(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("browser")
    db = build_db(tmp / "r.db")
    export_packets(db, tmp / "p")
    from openpyxl import load_workbook

    src = tmp / "p" / "协查单_龙海镇_致_虎门镇.xlsx"
    wb = load_workbook(src)
    wb["协查清单"].cell(2, ALL_COLUMNS.index("answer") + 1).value = "属实"
    wb.save(tmp / "back.xlsx")
    import_feedback(db, [tmp / "back.xlsx"])
    b, _ = write_bulletin(db, html=tmp / "bulletin.html", mask_names=True, lang="zh")
    return tmp / "bulletin.html", b


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


def test_renders_offline_with_charts_and_numbers(bulletin):
    path, b = bulletin
    sp = _playwright()
    if sp is None:
        pytest.skip("playwright (dev extra) is not installed")
    ARTIFACTS.mkdir(exist_ok=True)
    with sp() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS[1:])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            assert requested == [path.as_uri()]            # nothing but the file itself was loaded
            boxes = page.evaluate("() => [...document.querySelectorAll('svg')].map(s => {"
                                  "const r = s.getBoundingClientRect(); return [r.width, r.height]; })")
            assert len(boxes) == 3 and all(w > 500 and h > 150 for w, h in boxes), boxes
            bars = page.evaluate("() => [...document.querySelectorAll('svg rect.seg')].filter(r => r.getBBox().width > 0).length")
            assert bars == sum(1 for u in b.units for v in u.outcomes.values() if v > 0)
            shown = page.inner_text('[data-metric="untraceable"]')
            assert int(shown) == b.headline["untraceable"]
            league = page.inner_text("table.league")
            assert "安平镇" in league and "✗" in league and "✓" in league
            page.screenshot(path=str(ARTIFACTS / "bulletin.png"), full_page=True)
            # A4 portrait printable width (210 mm - 24 mm margins) at 96 dpi: nothing may stick out.
            page.emulate_media(media="print")
            page.set_viewport_size({"width": 703, "height": 1000})
            overflow = page.evaluate("() => document.documentElement.scrollWidth")
            assert overflow <= 703, overflow
            pdf = page.pdf(format="A4", print_background=True)
        finally:
            browser.close()
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert boxes and all(abs(float(w) - 595.9) < 1.5 and abs(float(h) - 842.9) < 1.5 for w, h in boxes)
    assert 1 <= len(boxes) <= 8
    png = (ARTIFACTS / "bulletin.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_chromium_command_line_screenshot(bulletin, tmp_path):
    """The plain chromium command line (what a clerk's IT department would script) renders it too."""
    path, _ = bulletin
    shot = tmp_path / "cli.png"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1280,2000", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
