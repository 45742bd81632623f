"""Config file reading (``--config reconcile.toml``) and merging of loading options.

A config file is TOML, UTF-8 with or without BOM::

    key = "编号"                 # record-key column (both sides unless a side says otherwise)
    encoding = "gb18030"
    sheet = "户籍人口"

    [columns]                    # "SOURCE HEADER" = "field"; "-" means: leave this column unmapped
    "户籍住址" = "hukou"

    [origin]                     # per-side settings for `reconcile match` (same keys as above)
    key = "个案编号"
    [origin.columns]
    "户籍地详细地址" = "hukou"

    [dest]
    encoding = "utf-8"

Other sections (``[match]``, ``[targets]`` ...) belong to other commands: they are kept as they
are and never an error here.

Top-level ``[columns]`` entries are *strict* for a single file (``side=None``: a header that
is not in the file is a ConfigError) and *soft* for a side of ``match`` (they apply where the
header exists, because origin and destination files have different headers); a side's own
``[origin.columns]`` / ``[dest.columns]`` entries are strict.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from reconcile.errors import ConfigError
from reconcile.fields import INPUT_FIELDS
from reconcile.i18n import t

SIDES = ("origin", "dest")
IGNORE = "-"  # mapping target meaning "do not map this column"
_TEXT_KEYS = ("key", "encoding", "sheet")


def check_field(header: str, value: str) -> str:
    """Validate a mapping target: a canonical input field (case-insensitive) or ``-``.

    Returns the canonical spelling; raises ConfigError naming the header and the field.
    """
    f = str(value).strip()
    if f == IGNORE:
        return IGNORE
    low = f.lower()
    if low in INPUT_FIELDS:
        return low
    raise ConfigError("load.error.map_unknown_field", header=header, field=f, fields=", ".join(INPUT_FIELDS))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a TOML config file; returns the parsed dict (unknown sections kept).

    Column-mapping targets are normalised to canonical field names. Raises ConfigError naming
    the file (and the TOML error line) for a missing, non-UTF-8 or malformed file.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError("load.config.not_found", file=str(path))
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a BOM (Notepad on Windows) is fine
    except UnicodeDecodeError as exc:
        raise ConfigError("load.config.not_utf8", file=str(path), line=data.count(b"\n", 0, exc.start) + 1) from None
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        detail = str(exc)
        # The commonest mistake: a bare Chinese key (TOML bare keys are ASCII only).
        m = re.search(r"at line (\d+)", detail)
        if m:
            lines = text.splitlines()
            n = int(m.group(1))
            bad = lines[n - 1].strip() if 0 < n <= len(lines) else ""
            lhs = bad.split("=", 1)[0]
            if bad and not bad.startswith(('"', "'", "[", "#")) and not lhs.isascii():
                raise ConfigError("load.config.hint_quote", file=str(path), detail=detail) from None
        raise ConfigError("load.config.syntax", file=str(path), detail=detail) from None
    _validate_section(cfg, str(path), None)
    for side in SIDES:
        if side in cfg:
            if not isinstance(cfg[side], dict):
                raise ConfigError("load.config.bad_value", file=str(path), name=side,
                                  expected=t("load.config.expect_table"))
            _validate_section(cfg[side], str(path), side)
    return cfg


def _validate_section(sec: dict[str, Any], file: str, side: str | None) -> None:
    prefix = f"{side}." if side else ""
    for k in _TEXT_KEYS:
        if k in sec and not isinstance(sec[k], str):
            raise ConfigError("load.config.bad_value", file=file, name=prefix + k, expected=t("load.config.expect_text"))
    if "columns" in sec:
        cols = sec["columns"]
        if not isinstance(cols, dict) or not all(isinstance(v, str) for v in cols.values()):
            raise ConfigError("load.config.bad_value", file=file, name=prefix + "columns",
                              expected=t("load.config.expect_table"))
        fixed: dict[str, str] = {}
        for header, value in cols.items():
            try:
                fixed[header.strip()] = check_field(header, value)
            except ConfigError:
                raise ConfigError("load.config.unknown_field", file=file, section=prefix + "columns", header=header,
                                  field=value, fields=", ".join(INPUT_FIELDS)) from None
        sec["columns"] = fixed


@dataclass
class LoadOptions:
    """Options for :func:`reconcile.loading.read_registry`, from a config and/or the command line.

    ``mapping`` entries are strict (header must exist), ``soft_mapping`` entries apply only
    where the header exists.
    """

    encoding: str | None = None
    sheet: str | None = None
    key: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    soft_mapping: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, side: str | None = None) -> "LoadOptions":
        """Options for one file: top-level keys, overridden by ``[origin]``/``[dest]`` when ``side`` is given."""
        if side is not None and side not in SIDES:
            raise ValueError(f"side must be one of {SIDES} or None, not {side!r}")
        config = config or {}
        opts = cls(**{k: config.get(k) for k in _TEXT_KEYS})
        top_cols = dict(config.get("columns") or {})
        if side is None:
            opts.mapping = top_cols
            return opts
        sec = config.get(side) or {}
        for k in _TEXT_KEYS:
            if sec.get(k) is not None:
                setattr(opts, k, sec[k])
        opts.mapping = dict(sec.get("columns") or {})
        # Shared entries must not fight the side's own: drop those naming the same header or field.
        side_fields = {v for v in opts.mapping.values() if v != IGNORE}
        opts.soft_mapping = {h: f for h, f in top_cols.items() if h not in opts.mapping and f not in side_fields}
        return opts

    def merged(self, *, encoding: str | None = None, sheet: str | None = None, key: str | None = None,
               mapping: Mapping[str, str] | None = None, soft: bool = False) -> "LoadOptions":
        """Command-line options over these ones: a value given (not None) wins; mappings merge,
        and a command-line entry replaces any config entry for the same header or the same field.

        ``soft=True`` adds the command-line mapping as soft entries (``reconcile match`` applies
        one ``--map`` list to both files, whose headers differ)."""
        out = LoadOptions(
            encoding=encoding if encoding is not None else self.encoding,
            sheet=sheet if sheet is not None else self.sheet,
            key=key if key is not None else self.key,
            mapping=dict(self.mapping),
            soft_mapping=dict(self.soft_mapping),
        )
        if mapping:
            cli_fields = {f for f in mapping.values() if f != IGNORE}
            for d in (out.mapping, out.soft_mapping):
                # Soft command-line entries may not apply to this file: then a strict config entry
                # for the same field must survive, so only the same header is replaced there.
                same_field_goes = d is out.soft_mapping or not soft
                for h in [h for h, f in d.items() if h in mapping or (same_field_goes and f in cli_fields)]:
                    del d[h]
            (out.soft_mapping if soft else out.mapping).update(mapping)
        return out

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for read_registry (empty mappings passed as None)."""
        return {
            "encoding": self.encoding,
            "sheet": self.sheet,
            "key": self.key,
            "mapping": dict(self.mapping) or None,
            "soft_mapping": dict(self.soft_mapping) or None,
        }


def loading_options(config: Mapping[str, Any] | None, side: str | None = None) -> dict[str, Any]:
    """kwargs for read_registry from a loaded config (``side``: None, 'origin' or 'dest')."""
    return LoadOptions.from_config(config, side).kwargs()
