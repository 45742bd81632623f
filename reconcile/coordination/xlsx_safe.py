"""Formula-safe writing of text into xlsx and CSV files that clerks open in Excel / WPS.

A cell whose text starts with = + - @ TAB or CR is treated by spreadsheet programs as a
formula (CSV injection, `=HYPERLINK(...)` in a name column). Every value we write is text:
in xlsx the cell is typed as a string and gets Excel's quote prefix; in CSV a leading
apostrophe is added (and long digit runs get a leading TAB so Excel does not turn an ID
into 4.31028E+17). ``read_cell_text`` undoes exactly what the writers added.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Sequence

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_LONG_DIGITS = re.compile(r"^\d{11,}$")

HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDE6F0")
ANSWER_FILL = PatternFill("solid", fgColor="FFF7D6")
UNLOCKED = Protection(locked=False)


def is_formula_like(text: str) -> bool:
    """True when a spreadsheet would read ``text`` as a formula."""
    return bool(text) and text.startswith(FORMULA_TRIGGERS)


def to_text(value: Any) -> str:
    """Any value as the text we show: None/NaN -> '', floats without a spurious '.0'."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def clean_xml(text: str) -> str:
    """Drop control characters that xlsx (XML) cannot hold; TAB/CR/LF stay."""
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def set_text(ws: Worksheet, row: int, col: int, value: Any, *, locked: bool = True):
    """Write ``value`` as a text cell (never a formula); returns the cell."""
    text = clean_xml(to_text(value))
    cell = ws.cell(row=row, column=col)
    cell.value = text if text != "" else None
    if text:
        cell.data_type = "s"  # openpyxl would type '=...' as a formula
        if is_formula_like(text):
            cell.quotePrefix = True  # Excel keeps it text even after the cell is edited
    if not locked:  # cells are locked by default; styling every cell is what makes openpyxl slow
        cell.protection = UNLOCKED
    return cell


def display_width(text: str) -> int:
    """Width in Excel character units: CJK/full-width characters count two."""
    w = 0
    for ch in text:
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def fit_columns(ws: Worksheet, rows: Sequence[Sequence[Any]], *, minimum: int = 6, maximum: int = 60) -> None:
    """Set each column's width to fit its longest line (headers included), within bounds."""
    widths: dict[int, int] = {}
    for r in rows:
        for i, v in enumerate(r, start=1):
            text = to_text(v)
            longest = max((display_width(line) for line in text.split("\n")), default=0)
            widths[i] = max(widths.get(i, 0), longest)
    for i, w in widths.items():
        ws.column_dimensions[get_column_letter(i)].width = max(minimum, min(maximum, w + 2))


def write_table(
    ws: Worksheet,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    unlocked_columns: Sequence[int] = (),
    start_row: int = 1,
    freeze: bool = True,
) -> int:
    """Write a header row and text rows; freeze the header; fit widths. Returns rows written.

    ``unlocked_columns`` (0-based) stay editable when the sheet is protected.
    """
    rows = [list(r) for r in rows]
    unlocked = set(unlocked_columns)
    for j, h in enumerate(headers, start=1):
        c = set_text(ws, start_row, j, h)
        c.font = HEADER_FONT
        c.fill = HEADER_FILL
        c.alignment = Alignment(vertical="center", wrap_text=False)
    for i, r in enumerate(rows, start=start_row + 1):
        for j, v in enumerate(r, start=1):
            c = set_text(ws, i, j, v, locked=(j - 1) not in unlocked)
            if (j - 1) in unlocked:
                c.fill = ANSWER_FILL
    # Cells below the data in unlocked columns stay editable too (clerks may add a note).
    if freeze:
        ws.freeze_panes = ws.cell(row=start_row + 1, column=1)
    fit_columns(ws, [list(headers)] + rows)
    return len(rows)


def csv_text(value: Any) -> str:
    """A value as CSV-safe text: formula-like text gets a leading apostrophe, long digit runs a TAB."""
    text = to_text(value)
    if is_formula_like(text):
        return "'" + text
    if _LONG_DIGITS.match(text):
        return "\t" + text
    return text


def write_csv(path: str | Path, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write UTF-8 with BOM (Excel detects it), every cell through ``csv_text``. Returns rows written."""
    n = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow([csv_text(h) for h in headers])
        for r in rows:
            w.writerow([csv_text(v) for v in r])
            n += 1
    return n


def read_cell_text(value: Any, *, from_csv: bool = False) -> str:
    """Text of a cell read back from a returned file, undoing what the writers added."""
    text = to_text(value)
    if from_csv:
        if text.startswith("'") and is_formula_like(text[1:]):
            return text[1:]
        if text.startswith("\t") and _LONG_DIGITS.match(text[1:]):
            return text[1:]
    return text
