"""The bulletin's tables as an xlsx workbook, one sheet each, every cell written as safe text
or a plain number (never a formula)."""
from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

from reconcile.bulletin.html import list_rows, pct
from reconcile.bulletin.indicators import HEADLINE, INDICATORS, TREND_SERIES, UNIT_OUTCOMES, Bulletin
from reconcile.coordination.xlsx_safe import HEADER_FONT, fit_columns, set_text
from reconcile.i18n import t
from reconcile.privacy import mask_name


def _sheet(wb: Workbook, title: str, headers: list[str], rows: list[list[object]]) -> None:
    ws = wb.create_sheet(title[:31])
    for j, h in enumerate(headers, start=1):
        set_text(ws, 1, j, h).font = HEADER_FONT
    for i, r in enumerate(rows, start=2):
        for j, v in enumerate(r, start=1):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                ws.cell(row=i, column=j, value=v)        # numbers stay numbers (sortable, chartable)
                if isinstance(v, float) and 0 <= v <= 1 and headers[j - 1].endswith("%"):
                    ws.cell(row=i, column=j).number_format = "0.0%"
            else:
                set_text(ws, i, j, v)
    ws.freeze_panes = "A2"
    fit_columns(ws, [headers] + [[str(v) for v in r] for r in rows])


def write_workbook(b: Bulletin, path: str | Path, *, lang: str = "zh", mask_names: bool = False) -> Path:
    """Write the bulletin workbook; returns its path."""
    L = lang
    wb = Workbook()
    wb.remove(wb.active)
    _sheet(wb, t("bulletin.sheet.headline", lang=L),
           [t("bulletin.headline." + c, lang=L) for c in ("item", "value", "previous", "change")],
           [[t("bulletin.metric." + k, lang=L), b.headline[k],
             "" if b.previous is None else b.previous[k],
             "" if b.previous is None else b.headline[k] - b.previous[k]] for k in HEADLINE])
    heads = [t("bulletin.league." + c, lang=L) for c in ("rank", "unit", "side", "records")]
    heads += [t("bulletin.indicator." + k, lang=L) + " %" for k in INDICATORS]
    heads += [t("bulletin.indicator." + k, lang=L) + " " + t("bulletin.league.target", lang=L) for k in INDICATORS if k in b.targets]
    heads += [t("bulletin.league.met", lang=L)]
    rows = []
    for r in b.units:
        row: list[object] = [r.rank, r.unit, t("bulletin.league.side_" + r.sides, lang=L), r.records]
        row += [("" if r.values[k] is None else round(r.values[k], 6)) for k in INDICATORS]
        row += [("" if r.passes[k] is None else t("bulletin.league.pass" if r.passes[k] else "bulletin.league.fail", lang=L))
                for k in INDICATORS if k in b.targets]
        row.append(r.met)
        rows.append(row)
    _sheet(wb, t("bulletin.sheet.league", lang=L), heads, rows)
    _sheet(wb, t("bulletin.sheet.outcomes", lang=L),
           [t("bulletin.league.unit", lang=L)] + [t("bulletin.metric." + o, lang=L) for o in UNIT_OUTCOMES],
           [[r.unit] + [r.outcomes[o] for o in UNIT_OUTCOMES] for r in sorted(b.units, key=lambda r: r.unit)])
    _sheet(wb, t("bulletin.sheet.trends", lang=L),
           [t("bulletin.sheet.run", lang=L)] + [t("bulletin.metric." + s, lang=L) for s in TREND_SERIES],
           [[tr["label"]] + [tr[s] for s in TREND_SERIES] for tr in b.trends])
    _sheet(wb, t("bulletin.sheet.histogram", lang=L),
           [t("bulletin.sheet.bin", lang=L), t("bulletin.sheet.bin_to", lang=L), t("bulletin.sheet.count", lang=L)],
           [[b.hist_edges[i], b.hist_edges[i + 1], c] for i, c in enumerate(b.hist_counts)]
           + [[t("bulletin.chart." + k, lang=L), v, ""] for k, v in b.thresholds.items()])
    for key, m in (("cross", b.cross_matrix), ("within", b.within_matrix)):
        _sheet(wb, t("bulletin.sheet." + key, lang=L), [""] + [str(c) for c in m.columns],
               [[str(r)] + [int(m.loc[r, c]) for c in m.columns] for r in m.index])
    name = mask_name if mask_names else (lambda s: s)
    for key, items, cols in (("conflicts", b.conflicts, ["group", "name", "sex", "birth_date", "id", "unit", "registry"]),
                             ("untraceable", b.untraceable, ["name", "sex", "birth_date", "id", "unit", "flow_place", "best"])):
        rows_, more = list_rows(items, cols, L, name)
        if more:
            rows_.append([t("bulletin.list.more", lang=L, count=more)] + [""] * (len(cols) - 1))
        _sheet(wb, t("bulletin.sheet." + key, lang=L), [t("bulletin.list." + c, lang=L) for c in cols], rows_)
    p = Path(path)
    wb.save(p)
    return p
