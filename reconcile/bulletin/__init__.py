"""The monthly bulletin (通报): unit indicators and targets, HTML with inline SVG charts, xlsx."""
from __future__ import annotations

from pathlib import Path

import sqlite_utils

from reconcile.bulletin.html import render_html
from reconcile.bulletin.indicators import Bulletin, Target, compute_bulletin, load_targets, parse_targets
from reconcile.bulletin.workbook import write_workbook

__all__ = ["Bulletin", "Target", "compute_bulletin", "load_targets", "parse_targets", "render_html", "write_bulletin",
           "write_workbook"]


def write_bulletin(db: sqlite_utils.Database, *, run: int | None = None, html: str | Path | None = None,
                   xlsx: str | Path | None = None, targets: str | Path | None = None, mask_names: bool = False,
                   lang: str = "zh") -> tuple[Bulletin, list[Path]]:
    """Compute the bulletin of a run and write the HTML and/or xlsx; returns it and the paths written."""
    b = compute_bulletin(db, run, targets=load_targets(targets))
    written: list[Path] = []
    if html:
        p = Path(html)
        p.write_text(render_html(b, lang=lang, mask_names=mask_names), encoding="utf-8")
        written.append(p)
    if xlsx:
        written.append(write_workbook(b, xlsx, lang=lang, mask_names=mask_names))
    return b, written
