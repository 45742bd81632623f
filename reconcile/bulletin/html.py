"""The bulletin as one self-contained HTML file: inline CSS, inline SVG, no scripts, no links
to anything outside the file; prints on A4.

Numbers carry ``data-metric`` / ``data-indicator`` and ``data-value`` attributes so a program
(and the tests) can read them back exactly.
"""
from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

import reconcile
from reconcile.bulletin import svg
from reconcile.bulletin.indicators import (HEADLINE, INDICATORS, TREND_SERIES, UNIT_OUTCOMES,
                                           Bulletin)
from reconcile.i18n import t
from reconcile.privacy import mask_id, mask_name
from reconcile.report import now_iso

CSS = """
:root{--ink:#1d2630;--muted:#5b6770;--line:#d6dde3;--pass:#1a7f37;--fail:#b42318;--head:#eef3f7}
*{box-sizing:border-box}
body{font-family:%(font)s;color:var(--ink);margin:0 auto;max-width:1100px;padding:24px;line-height:1.5;font-size:14px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;border-bottom:2px solid var(--ink);padding-bottom:2px;margin-top:28px}
h3{font-size:15px;margin:18px 0 6px}
.meta,.note,footer{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%%;margin:6px 0 10px}
th,td{border:1px solid var(--line);padding:3px 6px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.up{color:var(--fail)}.down{color:var(--pass)}
.pass{color:var(--pass);font-weight:600}.fail{color:var(--fail);font-weight:600}
.summary li{margin:2px 0}
figure{margin:10px 0 18px;break-inside:avoid;page-break-inside:avoid}
figcaption{font-weight:600;margin-bottom:4px}
svg{max-width:100%%;height:auto;display:block}
.heat td.num{min-width:44px}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 10px;min-width:130px}
.card .v{font-size:22px;font-weight:700}.card .l{font-size:12px;color:var(--muted)}
@page{size:A4;margin:14mm 12mm}
@media print{
  body{max-width:none;padding:0;font-size:11px}
  h2{break-after:avoid;page-break-after:avoid}
  table,figure,.cards{break-inside:avoid;page-break-inside:avoid}
  thead{display:table-header-group}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def _e(s: Any) -> str:
    return escape("" if s is None else str(s), quote=True)


def pct(v: float | None, lang: str) -> str:
    return t("bulletin.league.na", lang=lang) if v is None else f"{v * 100:.1f}%"


def _change(cur: int, prev: int | None) -> tuple[str, str]:
    if prev is None:
        return "", ""
    d = cur - prev
    return (f"{d:+d}" if d else "0"), ("up" if d > 0 else "down" if d < 0 else "")


def _sex(v: str, lang: str) -> str:
    return {"M": t("bulletin.list.male", lang=lang), "F": t("bulletin.list.female", lang=lang)}.get(v, v)


def render_html(b: Bulletin, *, lang: str = "zh", mask_names: bool = False) -> str:
    """The whole bulletin page."""
    L = lang
    name = (lambda s: mask_name(s)) if mask_names else (lambda s: s)
    out: list[str] = [
        f'<!DOCTYPE html><html lang="{"zh-CN" if L == "zh" else "en"}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(t('bulletin.title', lang=L))} #{b.run_id}</title>",
        f"<style>{CSS % {'font': svg.FONT}}</style></head><body>",
        f"<header><h1>{_e(t('bulletin.title', lang=L))}</h1>",
        f'<p class="meta">{_e(t("bulletin.meta", lang=L, run=b.run_id, started=str(b.run.get("started_at") or "")[:10], origin=b.run.get("origin_path") or "", dest=b.run.get("dest_path") or ""))}</p></header>',
    ]

    # 1. headline
    out.append(f'<section id="headline"><h2>{_e(t("bulletin.section.headline", lang=L))}</h2><div class="cards">')
    for k in ("untraceable", "cross_region_duplicates", "unregistered", "id_conflict_records"):
        ch, cls = _change(b.headline[k], b.previous[k] if b.previous else None)
        out.append(f'<div class="card"><div class="v">{b.headline[k]}'
                   f'{f" <small class={chr(34)}{cls}{chr(34)}>{_e(ch)}</small>" if ch else ""}</div>'
                   f'<div class="l">{_e(t("bulletin.metric." + k, lang=L))}</div></div>')
    out.append("</div><table class=\"headline\"><thead><tr>"
               f"<th>{_e(t('bulletin.headline.item', lang=L))}</th><th class=\"num\">{_e(t('bulletin.headline.value', lang=L))}</th>"
               f"<th class=\"num\">{_e(t('bulletin.headline.previous', lang=L))}</th><th class=\"num\">{_e(t('bulletin.headline.change', lang=L))}</th>"
               "</tr></thead><tbody>")
    for k in HEADLINE:
        prev = b.previous[k] if b.previous else None
        ch, cls = _change(b.headline[k], prev)
        out.append(f'<tr><td>{_e(t("bulletin.metric." + k, lang=L))}</td>'
                   f'<td class="num" data-metric="{k}" data-value="{b.headline[k]}">{b.headline[k]}</td>'
                   f'<td class="num" data-metric-prev="{k}" data-value="{"" if prev is None else prev}">{"" if prev is None else prev}</td>'
                   f'<td class="num {cls}" data-metric-change="{k}">{_e(ch)}</td></tr>')
    out.append("</tbody></table>")
    if b.previous is None:
        out.append(f'<p class="note">{_e(t("bulletin.headline.no_previous", lang=L))}</p>')
    out.append("</section>")

    # 2. league table
    out.append(f'<section id="league"><h2>{_e(t("bulletin.section.league", lang=L))}</h2>')
    if not b.units:
        out.append(f'<p class="note">{_e(t("bulletin.league.no_units", lang=L))}</p>')
    else:
        out.append('<ul class="summary">')
        if len(b.units) >= 2:
            top, bottom = b.units[0], b.units[-1]
            out.append(f'<li data-top="{_e(top.unit)}" data-bottom="{_e(bottom.unit)}">' + _e(t(
                "bulletin.league.top", lang=L, unit=top.unit, met=top.met, targets=len(b.targets),
                bottom=bottom.unit, bottom_met=bottom.met)) + "</li>")
        sep = "、" if L == "zh" else ", "
        for k, (best, worst) in b.best_worst.items():
            bv = next(r.values[k] for r in b.units if r.unit == best[0])
            wv = next(r.values[k] for r in b.units if r.unit == worst[0])
            out.append(f'<li data-indicator="{k}" data-best="{_e("|".join(best))}" data-worst="{_e("|".join(worst))}">' + _e(t(
                "bulletin.league.best", lang=L, indicator=t("bulletin.indicator." + k, lang=L), best=_names(best, sep, L),
                best_value=pct(bv, L), worst=_names(worst, sep, L), worst_value=pct(wv, L))) + "</li>")
        out.append("</ul><table class=\"league\"><thead><tr>")
        out.append("".join(f"<th>{_e(t('bulletin.league.' + c, lang=L))}</th>" for c in ("rank", "unit", "side")))
        out.append(f"<th class=\"num\">{_e(t('bulletin.league.records', lang=L))}</th>")
        for k in INDICATORS:
            tgt = b.targets.get(k)
            sub = f"<br><small>{_e(t('bulletin.league.target', lang=L))} {_e(tgt.text())}</small>" if tgt else ""
            out.append(f'<th class="num">{_e(t("bulletin.indicator." + k, lang=L))}{sub}</th>')
        out.append(f"<th class=\"num\">{_e(t('bulletin.league.met', lang=L))}</th></tr></thead><tbody>")
        for r in b.units:
            out.append(f'<tr data-unit="{_e(r.unit)}"><td class="num" data-rank="{r.rank}">{r.rank}</td><td>{_e(r.unit or t("bulletin.league.blank_unit", lang=L))}</td>'
                       f'<td>{_e(t("bulletin.league.side_" + r.sides, lang=L))}</td>'
                       f'<td class="num" data-field="records" data-value="{r.records}">{r.records}</td>')
            for k in INDICATORS:
                v = r.values[k]
                p = r.passes[k]
                mark = ""
                if p is not None:
                    mark = (f' <span class="{"pass" if p else "fail"}" data-pass="{int(p)}" '
                            f'title="{_e(t("bulletin.league.pass" if p else "bulletin.league.fail", lang=L))}">{"✓" if p else "✗"}</span>')
                star = "*" if r.value_source[k] == "computed" and v is not None else ""
                out.append(f'<td class="num" data-indicator="{k}" data-value="{"" if v is None else repr(round(v, 6))}">'
                           f'{_e(pct(v, L))}{star}{mark}</td>')
            out.append(f'<td class="num" data-field="met" data-value="{r.met}">{r.met}/{len(b.targets)}</td></tr>')
        out.append("</tbody></table>")
        out.append(f'<p class="note">{_e(t("bulletin.league.ranking_note", lang=L))}'
                   f'{"" if b.targets else " " + _e(t("bulletin.league.no_targets", lang=L))}</p>')
    out.append("</section>")

    # 3. charts
    out.append(f'<section id="charts"><h2>{_e(t("bulletin.section.charts", lang=L))}</h2>')
    series = [t("bulletin.metric." + o, lang=L) for o in UNIT_OUTCOMES]
    if b.units:
        rows = [(r.unit or t("bulletin.league.blank_unit", lang=L), [r.outcomes[o] for o in UNIT_OUTCOMES]) for r in sorted(b.units, key=lambda r: r.unit)]
        out.append(f'<figure id="chart-outcomes"><figcaption>{_e(t("bulletin.chart.outcomes", lang=L))}</figcaption>'
                   + svg.stacked_bars(rows, series, t("bulletin.chart.outcomes", lang=L)) + "</figure>")
    labels = [tr["label"] for tr in b.trends]
    lines = {t("bulletin.metric." + s, lang=L): [tr[s] for tr in b.trends] for s in TREND_SERIES}
    out.append(f'<figure id="chart-trends"><figcaption>{_e(t("bulletin.chart.trends", lang=L))}</figcaption>'
               + svg.line_chart(labels, lines, t("bulletin.chart.trends", lang=L)) + "</figure>")
    out.append(f'<figure id="chart-histogram"><figcaption>{_e(t("bulletin.chart.histogram", lang=L))}</figcaption>')
    out.append(svg.histogram(b.hist_edges, b.hist_counts, b.thresholds,
                             {k: t("bulletin.chart." + k, lang=L) for k in ("match_threshold", "review_threshold")},
                             t("bulletin.chart.histogram", lang=L), t("bulletin.chart.probability", lang=L)))
    if not sum(b.hist_counts):
        out.append(f'<p class="note">{_e(t("bulletin.chart.no_links", lang=L))}</p>')
    if not b.thresholds:
        out.append(f'<p class="note">{_e(t("bulletin.chart.no_thresholds", lang=L))}</p>')
    out.append("</figure></section>")

    # 4. matrices
    out.append(f'<section id="matrix"><h2>{_e(t("bulletin.section.matrix", lang=L))}</h2>')
    out.append(_matrix(b.cross_matrix, t("bulletin.matrix.cross", lang=L), "cross", L))
    out.append(_matrix(b.within_matrix, t("bulletin.matrix.within", lang=L), "within", L))
    out.append("</section>")

    # 5. lists
    out.append(f'<section id="lists"><h2>{_e(t("bulletin.section.lists", lang=L))}</h2>')
    out.append(f"<h3>{_e(t('bulletin.list.conflicts', lang=L))}</h3>")
    out.append(_list(b.conflicts, ["group", "name", "sex", "birth_date", "id", "unit", "registry"], L, name, "conflicts"))
    out.append(f"<h3>{_e(t('bulletin.list.untraceable', lang=L))}</h3>")
    out.append(_list(b.untraceable, ["name", "sex", "birth_date", "id", "unit", "flow_place", "best"], L, name, "untraceable"))
    out.append("</section>")

    out.append(f'<footer><h3>{_e(t("bulletin.section.definitions", lang=L))}</h3><p>{_e(t("bulletin.def.text", lang=L))}</p>'
               f'<p>{_e(t("bulletin.generated", lang=L, at=now_iso(), version=reconcile.__version__))}</p></footer>')
    out.append("</body></html>\n")
    return "".join(out)


def _names(units: list[str], sep: str, L: str, limit: int = 3) -> str:
    """Tied units by name, at most ``limit`` of them (many units at 100% would fill the page)."""
    if len(units) <= limit:
        return sep.join(units)
    return sep.join(units[:limit]) + t("bulletin.league.and_more", lang=L, count=len(units) - limit)


def _matrix(m: pd.DataFrame, caption: str, kind: str, L: str) -> str:
    parts = [f"<h3>{_e(caption)}</h3>"]
    if m.empty or int(m.values.sum()) == 0:
        return parts[0] + f'<p class="note">{_e(t("bulletin.matrix.none", lang=L))}</p>'
    top = max(int(m.values.max()), 1)
    parts.append(f'<table class="heat" data-matrix="{kind}"><thead><tr><th></th>')
    parts.extend(f'<th class="num">{_e(c)}</th>' for c in m.columns)
    parts.append("</tr></thead><tbody>")
    for r in m.index:
        parts.append(f"<tr><th>{_e(r)}</th>")
        for c in m.columns:
            v = int(m.loc[r, c])
            alpha = 0.12 + 0.6 * v / top if v else 0
            style = f' style="background:rgba(213,94,0,{alpha:.2f})"' if v else ""
            parts.append(f'<td class="num" data-m="{kind}" data-row="{_e(r)}" data-col="{_e(c)}" data-value="{v}"{style}>{v or ""}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def list_rows(items: list[dict[str, Any]], cols: list[str], L: str, name) -> tuple[list[list[str]], int]:
    """Rows of a people list as display text (IDs masked); second value: how many were left out."""
    rows, more = [], 0
    for it in items:
        if "more" in it:
            more = int(it["more"])
            continue
        idn = it.get("id_number") or it.get("id_raw") or ""
        cells = {
            "group": it.get("group", ""), "name": name(it.get("name_raw") or it.get("name") or ""),
            "sex": _sex(it.get("sex", ""), L), "birth_date": it.get("birth_date", ""), "id": mask_id(idn),
            "unit": it.get("unit", ""), "registry": t("coord.source." + it["source"], lang=L) if it.get("source") in ("origin", "dest") else "",
            "flow_place": it.get("flow_place", ""),
            "best": (f"{name(it['best_name'])}（{it.get('best_unit', '')}，{float(it['best_probability']) * 100:.0f}%）"
                     if it.get("best_name") and it.get("best_probability") not in (None, "") else ""),
        }
        rows.append([str(cells[c]) for c in cols])
    return rows, more


def _list(items: list[dict[str, Any]], cols: list[str], L: str, name, kind: str) -> str:
    rows, more = list_rows(items, cols, L, name)
    if not rows:
        return f'<p class="note">{_e(t("bulletin.matrix.none", lang=L))}</p>'
    parts = [f'<table class="people" data-list="{kind}"><thead><tr>']
    parts.extend(f"<th>{_e(t('bulletin.list.' + c, lang=L))}</th>" for c in cols)
    parts.append("</tr></thead><tbody>")
    for r in rows:
        parts.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>")
    parts.append("</tbody></table>")
    if more:
        parts.append(f'<p class="note">{_e(t("bulletin.list.more", lang=L, count=more))}</p>')
    return "".join(parts)
