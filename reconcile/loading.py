"""Loading a person registry (CSV/TSV/TXT/XLSX) into text-only DataFrames, with row accounting.

``read_registry(path)`` returns a :class:`LoadedRegistry`: the rows mapped onto the canonical
input fields (``frame``), the same rows under their original headers (``raw``), and every
rejected row with its line number and reason. ``rows_read == len(frame) + len(rejected)``.

Rules (see issue 2):

* Every value is text. Only an empty cell is missing (``''``); "NA", "None", "Null" are names.
  Headers and values lose their outer whitespace, nothing else.
* Text files are decoded once, whole: BOM (UTF-8/16/32), else strict UTF-8, else strict
  GB18030, else an InputError asking for ``encoding=``. GB18030 is never tried first (UTF-8
  张伟 would "decode" as 寮犱紵).
* Delimiter sniffed among ``,`` ``\\t`` ``;`` ``|`` (ties: the extension's usual one).
* Title lines above the header (a row with at most one filled cell, e.g. "XX县流动人口登记表")
  are skipped; the header is the first row with two or more filled cells (within 20 rows).
* A header cell that is empty names no column: such a column is dropped when it is empty in
  every row, else called ``_col<N>`` (N = 1-based column position).
* Column mapping: explicit ``mapping`` first (header -> field, ``'-'`` = leave unmapped), then
  headers recognised through ``fields.HEADER_ALIASES`` (compared after NFKC, removing all
  whitespace and ``*``, case-folding). When two headers would map to the same field, the first
  in source order wins (e.g. 乡镇 before 村 -> 乡镇 is ``unit``); the other is carried along
  unmapped and listed in ``LoadedRegistry.shadowed``.
* Rejected rows (never silently dropped), checked in this order: completely empty; wrong number
  of fields (fewer than the header's, or extra fields that are not empty: trailing empty extra
  fields are tolerated); a summary row (a cell starting 合计/总计/小计/共计/Total while at most
  half of the other cells are filled, anywhere in the file, since subtotals can sit between
  villages); an empty key (only with ``key=``).
* Line numbers: text files count physical lines with the header's line included (a quoted
  field with a line break makes a record span lines; the record's first line is used); xlsx
  rows are sheet row numbers.

Speed: numpy finds the records and counts each one's fields on the UTF-8 bytes (quotes handled
by parity, checked to be well-formed); Arrow's CSV reader splits the values of a large file whose
records all have the header's number of fields, pandas' C parser the rest; a file with stray
quotes (``张"三``) is read with the csv module instead (exact, about half the speed).
"""
from __future__ import annotations

import codecs
import csv
import datetime as _dt
import io
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from reconcile.codes import lookup, spread, take_rows
from reconcile.config import IGNORE, check_field
from reconcile.errors import ConfigError, DataError, InputError
from reconcile.fields import HEADER_ALIASES, INPUT_FIELDS
from reconcile.i18n import t
from reconcile.privacy import mask_ids_in_text

__all__ = ["RejectedRow", "LoadedRegistry", "read_registry", "parse_map_options", "normalise_header"]

TEXT_EXTENSIONS: dict[str, str] = {".csv": ",", ".tsv": "\t", ".txt": ","}  # value: delimiter preferred on ties
DELIMITERS: tuple[str, ...] = (",", "\t", ";", "|")
HEADER_SEARCH_ROWS = 20     # the header must be within the first 20 rows
SNIFF_CHARS = 1 << 16
_CSV_CHUNK = 100_000
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: .xls, or an encrypted .xlsx
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")  # directory entry name in an encrypted .xlsx
_XLS_STREAM = "Workbook".encode("utf-16-le")  # the BIFF8 stream of an .xls
_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),  # before utf-16: FF FE is also its prefix
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_SUMMARY = re.compile(r"^(?:[合总小共]\s*计|(?:sub)?total\b)", re.IGNORECASE)


@dataclass
class RejectedRow:
    """A data row that was read but not loaded."""

    line: int          # 1-based line in the file (header included) / sheet row number
    reason_key: str    # catalogue key, e.g. "load.reject.field_count"
    reason: str        # rendered in the language in force when loading; IDs masked
    raw: str           # the row's text, ID-like numbers masked
    params: dict[str, Any] = field(default_factory=dict)  # to re-render: t(reason_key, lang, **params)


@dataclass
class LoadedRegistry:
    """A registry file read as text, with the mapping used and the row accounting."""

    path: Path
    encoding: str                 # 'utf-8-sig' | 'utf-8' | 'gb18030' | 'utf-16' ... | user-given | 'xlsx'
    delimiter: str | None         # None for xlsx
    sheet: str | None             # sheet read (xlsx), else None
    columns: dict[str, str]       # source header -> canonical field, mapped ones only, source order
    key_column: str | None        # header of the record key, None: 1-based data row number
    frame: pd.DataFrame           # record_key, line (int), one column per INPUT_FIELDS ('' where unmapped)
    raw: pd.DataFrame             # loaded rows under their original headers, all str, same index as frame
    rejected: list[RejectedRow]
    rows_read: int                # == len(frame) + len(rejected)
    header_line: int = 1          # line / sheet row of the header (title lines above it skipped)
    shadowed: dict[str, str] = field(default_factory=dict)  # header -> field it also matched but lost

    @property
    def rows_loaded(self) -> int:
        return len(self.frame)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected)

    def notes(self, lang: str | None = None) -> list[str]:
        """Human-readable notes about this load (encoding, mapping, shadowed columns, title lines)."""
        out = [t("load.note.encoding", lang=lang, encoding=self.encoding)]
        if self.header_line > 1:
            out.append(t("load.note.preamble", lang=lang, count=self.header_line - 1, line=self.header_line))
        out += [t("load.note.mapping", lang=lang, header=h, field=f) for h, f in self.columns.items()]
        used = {f: h for h, f in self.columns.items()}
        out += [t("load.note.shadowed", lang=lang, header=h, field=f, used=used.get(f, ""))
                for h, f in self.shadowed.items()]
        return out


# ---- public helpers ----------------------------------------------------------------------------

def parse_map_options(items: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``--map 'COLUMN=field'`` options into ``{header: field}``.

    A later item for the same column wins. ``field`` may be ``-`` (leave the column unmapped).
    Raises ConfigError for an item without ``=``, an empty side, or an unknown field.
    """
    out: dict[str, str] = {}
    for item in items:
        header, sep, fld = str(item).rpartition("=")
        header = header.strip()
        if not sep or not header or not fld.strip():
            raise ConfigError("load.error.map_syntax", item=item)
        out[header] = check_field(header, fld)
    return out


def normalise_header(header: str) -> str:
    """Comparison form of a header: NFKC, no whitespace (incl. full-width), no ``*``, case-folded."""
    s = unicodedata.normalize("NFKC", str(header))
    return re.sub(r"\s+", "", s).strip("*").casefold()


_ALIAS_INDEX: dict[str, str] = {}
for _f, _aliases in HEADER_ALIASES.items():
    for _a in _aliases:
        _ALIAS_INDEX.setdefault(normalise_header(_a), _f)


# ---- entry point --------------------------------------------------------------------------------

def read_registry(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    key: str | None = None,
    soft_mapping: Mapping[str, str] | None = None,
) -> LoadedRegistry:
    """Read a registry file; every value as text, every row accounted for.

    ``encoding`` overrides detection (text files); ``sheet`` picks an xlsx sheet (default:
    the first visible one; ignored for text files); ``mapping`` maps headers to fields
    (strict: the header must exist); ``soft_mapping`` likewise but applied only where the
    header exists (a config's shared ``[columns]``); ``key`` names the record-key column.

    Raises InputError (file problems), DataError (unusable content), ConfigError (options).
    """
    p = Path(path)
    file = str(path)
    if not p.exists():
        raise InputError("load.error.not_found", file=file)
    if p.is_dir():
        raise InputError("load.error.is_directory", file=file)
    ext = p.suffix.lower()
    if ext == ".xls":
        raise InputError("load.error.xls", file=file)
    if ext not in TEXT_EXTENSIONS and ext != ".xlsx":
        raise InputError("load.error.bad_extension", file=file, ext=ext or p.name)
    if encoding is not None and ext != ".xlsx":
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ConfigError("load.error.unknown_encoding", encoding=encoding) from None
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError("load.error.unreadable", file=file, detail=exc.strerror or type(exc).__name__) from None
    if size == 0:
        raise DataError("load.error.empty_file", file=file)

    if ext == ".xlsx":
        grid, sheet_name = _grid_xlsx(p, file, sheet)
        used_encoding, delimiter = "xlsx", None
    else:
        grid, delimiter, used_encoding = _read_text(p, file, encoding, TEXT_EXTENSIONS[ext])
        sheet_name = None
    return _finish(grid, path=p, file=file, encoding=used_encoding, delimiter=delimiter, sheet=sheet_name,
                   mapping=mapping, soft_mapping=soft_mapping, key=key)


# ---- the grid: header + cells of every data record, before any judgement -----------------------

@dataclass
class _Grid:
    header: list[str]
    header_line: int
    cells: list[np.ndarray]          # one object array per header column, values stripped
    lines: np.ndarray                # int64, line of each record
    nfields: np.ndarray | None       # fields per record (text files), None for xlsx
    extra_nonempty: np.ndarray       # bool: fields beyond the header's that are not empty
    raw_text: Callable[[int], str]   # text of record i (for rejected rows)


def _strip_array(values: Iterable[Any]) -> np.ndarray:
    return np.array([v.strip() for v in values], dtype=object)


def _find_header(records: list[list[str]]) -> int:
    """Index of the header among the first records: first with >= 2 filled cells."""
    first_filled = None
    for i, rec in enumerate(records[:HEADER_SEARCH_ROWS]):
        filled = sum(1 for c in rec if c.strip())
        if filled >= 2:
            return i
        if filled and first_filled is None:
            first_filled = i
    return first_filled or 0


# ---- text files --------------------------------------------------------------------------------

def _read_bytes(p: Path, file: str) -> bytes:
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError("load.error.unreadable", file=file, detail=exc.strerror or type(exc).__name__) from None


def _line_of(data: bytes, pos: int) -> int:
    return data.count(b"\n", 0, pos) + 1


def _decode(data: bytes, file: str, encoding: str | None) -> tuple[str, str]:
    """Decode the whole file once: given encoding, else BOM, else UTF-8, else GB18030."""
    if encoding:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise InputError("load.error.undecodable_given", file=file, encoding=encoding,
                             line=_line_of(data, exc.start), byte=f"{data[exc.start]:02X}") from None
        return (text[1:] if text.startswith("\ufeff") else text), encoding
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError as exc:
                raise InputError("load.error.undecodable_given", file=file, encoding=enc,
                                 line=_line_of(data, exc.start), byte=f"{data[exc.start]:02X}") from None
            return text.lstrip("\ufeff") if enc != "utf-8-sig" else text, enc
    guess = _utf16_without_bom(data[:4096])
    if guess:
        try:
            return data.decode(guess), guess
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        err_utf8 = exc
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        err_gb = exc
    # The decoder that got further is the likelier encoding; its first bad byte is the one to show.
    pos = max(err_utf8.start, err_gb.start)
    raise InputError("load.error.undecodable", file=file, line=_line_of(data, pos), byte=f"{data[pos]:02X}")


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 text without a BOM is full of NUL bytes on one side; UTF-8/GB18030 text has none."""
    if len(head) < 4 or b"\x00" not in head:
        return None
    pairs = len(head) // 2
    even = head[0:pairs * 2:2].count(0)
    odd = head[1:pairs * 2:2].count(0)
    if odd > 0.3 * pairs and even < 0.05 * pairs:
        return "utf-16-le"
    if even > 0.3 * pairs and odd < 0.05 * pairs:
        return "utf-16-be"
    return None


def _sniff(head: str, truncated: bool, preferred: str) -> tuple[str, int]:
    """Pick the delimiter and the header's record index from the first records."""
    order = (preferred,) + tuple(d for d in DELIMITERS if d != preferred)
    best: tuple[tuple, str, int] | None = None
    for d in order:
        try:
            recs = list(islice(csv.reader(io.StringIO(head, newline=""), delimiter=d), 60))
        except csv.Error:
            continue
        if truncated and len(recs) > 1:
            recs = recs[:-1]  # the last one may be cut short
        h = _find_header(recs)
        hdr = recs[h] if recs else []
        body = [r for r in recs[h + 1:] if any(c.strip() for c in r)]
        consistent = sum(1 for r in body if len(r) == len(hdr)) / len(body) if body else 1.0
        filled = sum(1 for c in hdr if c.strip())
        # A header on the first line beats one found below "title lines" by another delimiter.
        score = (filled >= 2, consistent, -h, len(hdr))
        if best is None or score > best[0]:
            best = (score, d, h)
    assert best is not None
    return best[1], best[2]


def _read_text(p: Path, file: str, encoding: str | None, preferred: str) -> tuple[_Grid, str, str]:
    """Read, decode (once, whole) and split a text file; keeps at most two copies alive at a time."""
    data = _read_bytes(p, file)
    if data.startswith((b"PK\x03\x04", _OLE_SIGNATURE)):  # a workbook under a text name
        raise InputError("load.error.workbook_as_text", file=file)
    text, enc = _decode(data, file, encoding)
    normalised = "\r" in text
    if normalised:  # one line-break convention; a lone CR (old Mac) is a line break too
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text or text.isspace():
        raise DataError("load.error.empty_file", file=file)
    truncated = len(text) > SNIFF_CHARS
    head = text[:SNIFF_CHARS]
    if truncated and "\n" in head:
        head = head[: head.rfind("\n") + 1]
    delim, h = _sniff(head, truncated, preferred)
    if enc in ("utf-8", "utf-8-sig") and not normalised:
        b = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    else:
        b = text.encode("utf-8")
    del data, text  # the UTF-8 bytes are all that is needed from here on
    grid = _grid_fast(b, delim, h)
    if grid is None:
        grid = _grid_csv(b.decode("utf-8"), delim, h, file)
    return grid, delim, enc


def _grid_fast(b: bytes, delim: str, h: int) -> _Grid | None:
    """numpy finds the records and counts their fields on the bytes (UTF-8 never has an ASCII byte
    inside a multi-byte character); pandas' C parser splits the values.

    Quotes: a delimiter or line break is quoted when an odd number of quote characters precede
    it. That is exact when every quote that opens a quoted part stands at the start of a field
    (or right after the closing quote, i.e. a doubled ""), which is checked; otherwise None, and
    the caller reads the file with the csv module. None too if pandas sees other rows.
    """
    arr = np.frombuffer(b, dtype=np.uint8)
    nl_all = np.flatnonzero(arr == 10)
    dpos = np.flatnonzero(arr == ord(delim))
    qpos = np.flatnonzero(arr == 34)
    nl = nl_all
    closing_ok = True
    if len(qpos):
        if len(qpos) % 2:
            return None
        opening = qpos[0::2]
        before = arr[np.maximum(opening - 1, 0)]
        ok = (opening == 0) | (before == 10) | (before == ord(delim))
        ok[1:] |= opening[1:] - qpos[1::2][:-1] == 1  # "" inside a quoted field
        if not ok.all():
            return None
        # and whether every closing quote ends its field (the delimiter, a line break, the end or
        # a doubled "" follows): the RFC 4180 shape, which Arrow's reader splits as pandas' does
        after = qpos[1::2] + 1
        follow = arr[np.minimum(after, len(arr) - 1)]
        closing_ok = bool(((after >= len(arr)) | (follow == 10) | (follow == ord(delim)) | (follow == 34)).all())
        nl = nl_all[np.searchsorted(qpos, nl_all) % 2 == 0]
        dpos = dpos[np.searchsorted(qpos, dpos) % 2 == 0]
    del arr
    if len(nl) < h:
        return None
    header_start = int(nl[h - 1]) + 1 if h > 0 else 0
    header_end = int(nl[h]) if len(nl) > h else len(b)
    header_text = b[header_start:header_end].decode("utf-8")
    header = next(csv.reader(io.StringIO(header_text, newline=""), delimiter=delim), [])
    data_start = min(header_end + 1, len(b))
    nl_d = nl[h + 1:]
    starts = np.concatenate(([data_start], nl_d + 1)).astype(np.int64)
    ends = np.concatenate((nl_d, [len(b)])).astype(np.int64)
    if starts[-1] >= len(b):  # nothing after the last line break
        starts, ends = starts[:-1], ends[:-1]
    n = len(starts)
    W = len(header)
    header_line = int(np.searchsorted(nl_all, header_start)) + 1
    lines = np.searchsorted(nl_all, starts).astype(np.int64) + 1
    raw_text = lambda i: b[starts[i]:ends[i]].decode("utf-8")  # noqa: E731
    if n == 0:
        return _Grid(header, header_line, [np.empty(0, dtype=object) for _ in range(W)], lines,
                     np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), raw_text)
    nfields = np.searchsorted(dpos, ends) - np.searchsorted(dpos, starts) + 1
    quoted_breaks = len(nl) < len(nl_all)
    del nl, nl_all, dpos, qpos
    if W >= 2 and len(b) >= ARROW_MIN_BYTES and closing_ok and bool((nfields == W).all()):
        cells = _arrow_cells(memoryview(b)[data_start:], delim, W, quoted_breaks)
        if cells is not None and len(cells[0]) == n:
            return _Grid(header, header_line, cells, lines, nfields, np.zeros(n, dtype=bool), raw_text)
    ncols = max(W, int(nfields.max()))
    df = pd.read_csv(
        io.BytesIO(b[data_start:]), sep=delim, header=None, names=list(range(ncols)), index_col=False,
        dtype=str, na_filter=False, keep_default_na=False, skip_blank_lines=False,
        quoting=csv.QUOTE_MINIMAL if b'"' in b else csv.QUOTE_NONE, doublequote=True, engine="c", encoding="utf-8",
    )
    if len(df) != n:
        return None
    cells = [_strip_array(df[j].to_numpy()) for j in range(W)]
    extra = np.zeros(n, dtype=bool)
    for j in range(W, ncols):
        extra |= _strip_array(df[j].to_numpy()) != ""
    return _Grid(header, header_line, cells, lines, nfields, extra, raw_text)


# Files this large are split by Arrow's CSV reader (C++, both cores: read_registry of 1.86 M
# records, 296 MB, 10.4 s with pandas' C parser and the strip per cell, 6.0 s with Arrow); smaller
# ones by pandas, which saves importing pyarrow for a few thousand rows.
ARROW_MIN_BYTES = 8 << 20
# what Python's str.strip() removes (str.isspace()): the cells lose exactly these at either end
_PY_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def _arrow_cells(data: bytes | memoryview, delim: str, width: int, quoted_breaks: bool) -> list[np.ndarray] | None:
    """The records' cells split by Arrow (every record has ``width`` fields, checked by the caller),
    each column an object array of str stripped as str.strip() strips; None when Arrow is missing
    or reads the bytes otherwise (the caller then uses pandas)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    names = [f"c{j}" for j in range(width)]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delim, quote_char='"', double_quote=True,
                                             escape_char=False, newlines_in_values=quoted_breaks,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.large_string() for c in names},
                                                 null_values=[], strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False),
        )
    except pa.ArrowException:   # (ArrowInvalid: a record Arrow splits otherwise)
        return None
    columns: list = table.columns
    del table
    cells = []
    for j in range(width):   # each column's Arrow buffers let go once it is converted
        col = pc.utf8_trim(columns[j], characters=_PY_WHITESPACE).combine_chunks()
        columns[j] = None
        cells.append(_object_array(col))
        del col
    # Arrow's allocator keeps what was freed for reuse: at 1,000,000 persons about 0.75 GB that
    # nothing else would use, held to the end of the run (measured: RSS 2.05 GB after loading the
    # destination, 1.30 GB after this; pandas' parser 1.37 GB)
    pa.default_memory_pool().release_unused()
    return cells


# A column whose values repeat is converted once per distinct value: one str object per value, as
# pandas' parser shares them (names, sexes, dates, units); a str per cell would cost the
# 1,000,000-person destination about 0.6 GB more. A column whose sample is nearly all distinct
# (record keys, ID numbers) is converted cell by cell: Arrow's dictionary would cost as much as
# the conversion.
NEARLY_ALL_DISTINCT = 0.95
_SAMPLE = 20_000


def _object_array(col) -> np.ndarray:
    """An Arrow text array as an object array of str, one object per distinct value where the
    values repeat (and its codes remembered: reconcile.codes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(col)
    if n > _SAMPLE:
        sample = col.take(pa.array(np.arange(0, n, n // _SAMPLE)))
        repeats = pc.count_distinct(sample).as_py() < NEARLY_ALL_DISTINCT * len(sample)
    else:
        repeats = n > 0
    if repeats:
        # Arrow numbers the distinct values in the order the rows show them, as pandas.factorize
        # does: the column's codes come with it (reconcile.codes), standardise does not factorise
        # it again
        coded = pc.dictionary_encode(col)
        uniques = coded.dictionary.to_numpy(zero_copy_only=False).astype(object, copy=False)
        return spread(uniques, coded.indices.to_numpy(), distinct=True)
    return col.to_numpy(zero_copy_only=False).astype(object, copy=False)


def _grid_csv(text: str, delim: str, h: int, file: str) -> _Grid:
    """Exact reading with the csv module (quoted delimiters and line breaks)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    header: list[str] = []
    header_line = 1
    W = 0
    rows: list[list[str]] = []
    chunks: list[list[np.ndarray]] = []
    lines: list[int] = []
    nfields: list[int] = []
    extra: list[bool] = []
    originals: dict[int, str] = {}  # text of rows whose field count is off
    prev = 0
    k = 0
    i = 0

    def flush() -> None:
        if rows:
            chunks.append([np.array(col, dtype=object) for col in zip(*rows)])
            rows.clear()

    try:
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if k <= h:
                if k == h:
                    header, header_line, W = rec, start, len(rec)
                k += 1
                continue
            n = len(rec)
            more = n > W and any(c.strip() for c in rec[W:])
            if n < W or more:
                originals[i] = delim.join(rec)
            vals = rec[:W] if n >= W else rec + [""] * (W - n)
            rows.append([v.strip() for v in vals])
            lines.append(start)
            nfields.append(n)
            extra.append(more)
            i += 1
            if len(rows) >= _CSV_CHUNK:
                flush()
    except csv.Error as exc:
        raise InputError("load.error.csv_parse", file=file, line=prev + 1, detail=str(exc)) from None
    flush()
    _check_unclosed_quote(text, delim, lines[-1] if lines else header_line, prev, file)
    if chunks and W:
        cells = [np.concatenate([c[j] for c in chunks]) for j in range(W)]
    else:
        cells = [np.empty(0, dtype=object) for _ in range(W)]

    def raw_text(idx: int) -> str:
        if idx in originals:
            return originals[idx]
        return delim.join(str(c[idx]) for c in cells)

    return _Grid(header, header_line, cells, np.asarray(lines, dtype=np.int64), np.asarray(nfields, dtype=np.int64),
                 np.asarray(extra, dtype=bool), raw_text)


def _check_unclosed_quote(text: str, delim: str, last_start: int, last_line: int, file: str) -> None:
    """A quote that opens a field and never closes swallows the rest of the file into one record:
    an error naming the line where it opens, not one silently huge row."""
    if last_line <= last_start:  # the last record is a single line
        return
    offset = 0
    for _ in range(last_start - 1):
        offset = text.index("\n", offset) + 1
    try:
        for _ in csv.reader(io.StringIO(text[offset:], newline=""), delimiter=delim, strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InputError("load.error.csv_parse", file=file, line=last_start, detail=str(exc)) from None


# ---- xlsx --------------------------------------------------------------------------------------

def _cell_text(v: Any) -> str:
    """An xlsx cell as the text a person sees: 12 not 12.0, dates ISO; big numbers as the digits
    Excel kept (4.31028199001011E+17 -> 431028199001011000: the standardiser flags it)."""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        if v.is_integer():
            # repr is the shortest text that round-trips, i.e. the digits stored in the file.
            return str(int(v)) if abs(v) < 1e15 else str(int(Decimal(repr(v))))
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, _dt.datetime):
        return v.date().isoformat() if v.time() == _dt.time(0) else v.isoformat(sep=" ")
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    if v is None:
        return ""
    return str(v).strip()


def _grid_xlsx(p: Path, file: str, sheet: str | None) -> tuple[_Grid, str]:
    try:
        with p.open("rb") as fh:
            magic = fh.read(8)
    except OSError as exc:
        raise InputError("load.error.unreadable", file=file, detail=exc.strerror or type(exc).__name__) from None
    if magic.startswith(_OLE_SIGNATURE[:4]):
        # An .xlsx saved with a password is an OLE compound file holding an "EncryptedPackage"
        # stream. A compound file with a "Workbook" stream and no such package is an old .xls
        # that was renamed to .xlsx.
        content = _read_bytes(p, file)
        if _ENCRYPTED_STREAM not in content and _XLS_STREAM in content:
            raise InputError("load.error.xls", file=file)
        raise InputError("load.error.xlsx_encrypted", file=file)
    if not magic.startswith(b"PK"):
        raise InputError("load.error.xlsx_corrupt", file=file, detail="not a zip archive")
    import python_calamine as pc

    try:
        wb = pc.CalamineWorkbook.from_path(str(p))
        names = list(wb.sheet_names)
        if sheet is not None:
            if sheet not in names:
                raise ConfigError("load.error.sheet_not_found", file=file, sheet=sheet,
                                  sheets=", ".join(names) or "-")
            name = sheet
        else:
            visible = [m.name for m in wb.sheets_metadata
                       if m.typ == pc.SheetTypeEnum.WorkSheet and m.visible == pc.SheetVisibleEnum.Visible]
            if not (visible or names):
                raise DataError("load.error.empty_file", file=file)
            name = (visible or names)[0]
        ws = wb.get_sheet_by_name(name)
        rows_iter = iter(ws.iter_rows())
        first = [[_cell_text(v) for v in row] for row in islice(rows_iter, HEADER_SEARCH_ROWS)]
    except pc.PasswordError:
        raise InputError("load.error.xlsx_encrypted", file=file) from None
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # calamine raises several types for broken zips / XML
        raise InputError("load.error.xlsx_corrupt", file=file, detail=f"{type(exc).__name__}: {exc}"[:200]) from None
    if not any(c for row in first for c in row):
        raise DataError("load.error.empty_file", file=file)
    h = _find_header(first)
    header = first[h]
    W = len(header)
    # iter_rows starts at sheet row 1 (leading empty rows included), so row index + 1 is the row number.
    rest = first[h + 1:]
    cols: list[list[np.ndarray]] = []
    buf: list[list[str]] = list(rest)
    count = len(rest)

    def flush() -> None:
        if buf:
            cols.append([np.array(c, dtype=object) for c in zip(*[(r + [""] * (W - len(r)))[:W] for r in buf])])
            buf.clear()

    try:
        for row in rows_iter:
            buf.append([c.strip() if type(c) is str else _cell_text(c) for c in row])
            count += 1
            if len(buf) >= _CSV_CHUNK:
                flush()
    except Exception as exc:
        raise InputError("load.error.xlsx_corrupt", file=file, detail=f"{type(exc).__name__}: {exc}"[:200]) from None
    flush()
    cells = [np.concatenate([c[j] for c in cols]) if cols else np.empty(0, dtype=object) for j in range(W)]
    lines = np.arange(h + 2, h + 2 + count, dtype=np.int64)
    raw_text = lambda i: "\t".join(str(c[i]) for c in cells)  # noqa: E731
    return _Grid(header, h + 1, cells, lines, None, np.zeros(count, dtype=bool), raw_text), name


# ---- judging rows, mapping, keys ----------------------------------------------------------------

def _lookup_header(names: list[str], wanted: str) -> str | None:
    """The header ``wanted`` refers to: exact, else the single one equal after normalising."""
    w = wanted.strip()
    if w in names:
        return w
    hits = [h for h in names if normalise_header(h) == normalise_header(w)]
    return hits[0] if len(hits) == 1 else None


def _quote_list(items: Iterable[str], limit: int = 30) -> str:
    items = list(items)
    s = ", ".join(f"'{x}'" for x in items[:limit])
    return s + (", ..." if len(items) > limit else "")


def _resolve_mapping(names: list[str], mapping: Mapping[str, str] | None, soft: Mapping[str, str] | None,
                     file: str) -> tuple[dict[str, str], dict[str, str]]:
    explicit: dict[str, str] = {}
    for h, f in (mapping or {}).items():
        fld = check_field(h, f)
        src = _lookup_header(names, h)
        if src is None:
            raise ConfigError("load.error.map_unknown_header", file=file, header=h, headers=_quote_list(names))
        explicit[src] = fld
    for h, f in (soft or {}).items():
        fld = check_field(h, f)
        src = _lookup_header(names, h)
        if src is None or src in explicit or (fld != IGNORE and fld in explicit.values()):
            continue
        explicit[src] = fld
    by_field: dict[str, str] = {}
    for h in names:
        fld = explicit.get(h)
        if fld and fld != IGNORE:
            if fld in by_field:
                raise ConfigError("load.error.map_conflict", first=by_field[fld], second=h, field=fld)
            by_field[fld] = h
    columns: dict[str, str] = {}
    shadowed: dict[str, str] = {}
    for h in names:
        if h in explicit:
            if explicit[h] != IGNORE:
                columns[h] = explicit[h]
            continue
        fld = _ALIAS_INDEX.get(normalise_header(h))
        if fld is None:
            continue
        if fld in by_field:
            shadowed[h] = fld
            continue
        by_field[fld] = h
        columns[h] = fld
    return columns, shadowed


def _finish(grid: _Grid, *, path: Path, file: str, encoding: str, delimiter: str | None, sheet: str | None,
            mapping: Mapping[str, str] | None, soft_mapping: Mapping[str, str] | None,
            key: str | None) -> LoadedRegistry:
    n = len(grid.lines)
    header = [h.strip() for h in grid.header]
    W = len(header)

    # Name the columns; an unnamed column that is empty everywhere is no column at all.
    keep: list[int] = []
    names: list[str] = []
    for j, h in enumerate(header):
        if not h:
            if n == 0 or not (grid.cells[j] != "").any():
                continue
            h = f"_col{j + 1}"
        keep.append(j)
        names.append(h)
    positions: dict[str, list[int]] = {}
    for j, h in zip(keep, names):
        positions.setdefault(h, []).append(j + 1)
    dups = {h: pos for h, pos in positions.items() if len(pos) > 1}
    if dups:
        raise DataError("load.error.duplicate_headers", file=file, line=grid.header_line,
                        headers=", ".join(f"'{h}' ({'/'.join(map(str, pos))})" for h, pos in dups.items()))
    if n == 0:
        raise DataError("load.error.header_only", file=file, line=grid.header_line)

    columns, shadowed = _resolve_mapping(names, mapping, soft_mapping, file)
    mapped = set(columns.values())
    if "name" not in mapped:
        raise DataError("load.error.no_name_column", file=file, headers=_quote_list(names))
    if not mapped & {"id_number", "birth_date"}:
        raise DataError("load.error.no_id_or_birth", file=file, headers=_quote_list(names))
    key_column = None
    if key is not None:
        key_column = _lookup_header(names, key)
        if key_column is None:
            raise ConfigError("load.error.key_column_missing", file=file, column=key, headers=_quote_list(names))

    col = {h: grid.cells[j] for j, h in zip(keep, names)}

    # Judge every row (vectorised); reasons in priority order.
    filled = np.zeros(n, dtype=np.int32)
    for j in keep:
        filled += grid.cells[j] != ""
    empty = (filled == 0) & ~grid.extra_nonempty
    last_named = keep[-1] + 1 if keep else W
    if grid.nfields is not None:
        bad_count = ~empty & ((grid.nfields < last_named) | grid.extra_nonempty)
    else:
        bad_count = ~empty & grid.extra_nonempty
    summary_cell: dict[int, str] = {}
    limit = max(1, (len(keep) - 1) // 2)
    for i in np.flatnonzero(~empty & ~bad_count & (filled - 1 <= limit)):
        for h in names:
            v = col[h][i]
            if v and _SUMMARY.match(v):
                summary_cell[int(i)] = v
                break
    summary = np.zeros(n, dtype=bool)
    if summary_cell:
        summary[list(summary_cell)] = True
    key_missing = np.zeros(n, dtype=bool)
    if key_column is not None:
        key_missing = ~empty & ~bad_count & ~summary & (col[key_column] == "")
    reject = empty | bad_count | summary | key_missing

    rejected: list[RejectedRow] = []
    for i in np.flatnonzero(reject):
        i = int(i)
        if empty[i]:
            rkey, params = "load.reject.empty_row", {}
        elif bad_count[i]:
            rkey, params = "load.reject.field_count", {"expected": W, "found": int(grid.nfields[i]) if grid.nfields is not None else W}
        elif summary[i]:
            rkey, params = "load.reject.summary_row", {"cell": mask_ids_in_text(summary_cell[i])}
        else:
            rkey, params = "load.reject.key_missing", {"column": key_column}
        rejected.append(RejectedRow(line=int(grid.lines[i]), reason_key=rkey, reason=mask_ids_in_text(t(rkey, **params)),
                                    raw=mask_ids_in_text(grid.raw_text(i)), params=params))

    accepted = np.flatnonzero(~reject)
    if len(accepted) == 0:
        first = rejected[0]
        raise DataError("load.error.all_rejected", file=file, count=n, line=first.line, reason=first.reason)

    # the accepted rows of every named column, once for both frames (which share them: nothing
    # writes into a loaded column), with their codes (reconcile.codes.take_rows); all of a column
    # when no row was rejected
    kept = {h: col[h] if len(accepted) == n else take_rows(col[h], accepted) for h in names}
    if key_column is not None:
        keys = kept[key_column]
        _check_duplicate_keys(keys, grid.lines[accepted], key_column, file)
    else:
        keys = np.array([str(i + 1) for i in accepted], dtype=object)  # stable: rejected rows count too

    # copy=False: one block per column (pandas would copy them into one)
    raw = pd.DataFrame(kept, columns=names, copy=False)
    by_field = {f: h for h, f in columns.items()}
    m = len(accepted)
    data: dict[str, Any] = {"record_key": keys, "line": grid.lines[accepted]}
    for f in INPUT_FIELDS:
        data[f] = kept[by_field[f]] if f in by_field else np.full(m, "", dtype=object)
    frame = pd.DataFrame(data, copy=False)

    reg = LoadedRegistry(path=path, encoding=encoding, delimiter=delimiter, sheet=sheet, columns=columns,
                         key_column=key_column, frame=frame, raw=raw, rejected=rejected, rows_read=n,
                         header_line=grid.header_line, shadowed=shadowed)
    assert reg.rows_read == len(reg.frame) + len(reg.rejected)
    return reg


def _check_duplicate_keys(keys: np.ndarray, lines: np.ndarray, column: str, file: str) -> None:
    got = lookup(keys)   # (the keys' codes, when they came with them: no hashing again)
    if got is not None and not got.missing:
        codes = got.codes.astype(np.int64)
        dup = np.bincount(codes, minlength=got.n)[codes] > 1
    else:
        dup = pd.Series(keys).duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    groups: dict[str, list[int]] = {}
    for k, ln in zip(keys[dup], lines[dup]):
        groups.setdefault(k, []).append(int(ln))
    shown = [f"'{mask_ids_in_text(k)}' ({t('load.error.lines_word', lines=', '.join(map(str, lns[:5])))})"
             for k, lns in list(groups.items())[:5]]
    examples = "; ".join(shown) + ("; ..." if len(groups) > 5 else "")
    raise DataError("load.error.duplicate_keys", file=file, column=column, count=len(groups), examples=examples)
