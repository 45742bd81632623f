"""Exceptions the library raises; the CLI maps each to a documented exit code.

    ReconcileError                       exit 1
    ├── InputError                       exit 3  file missing, unreadable, undecodable, bad xlsx
    │   └── DataError                    exit 4  file read, but its content is unusable (no name column ...)
    ├── ConfigError                      exit 2  bad option, mapping or config file
    └── ReportError                      exit 5  report database missing, wrong schema, unknown run

Messages are catalogue keys plus parameters so they render in the user's language.
Never put a full ID number into a parameter: pass it through reconcile.privacy.mask_id first.
"""
from __future__ import annotations

from typing import Any


class ReconcileError(Exception):
    """Base class: a message key from the catalogue plus its parameters."""

    exit_code = 1

    def __init__(self, key: str, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(self.render("en"))

    def render(self, lang: str | None = None) -> str:
        from reconcile.i18n import t

        return t(self.key, lang=lang, **self.params)

    def __reduce__(self):
        # pickled by its key and parameters (the loading worker sends a bad file's error to the
        # caller): Exception's own pickling would rebuild it from the English text alone
        return (_rebuild, (type(self), self.key, self.params))


def _rebuild(cls: type, key: str, params: dict[str, Any]) -> ReconcileError:
    return cls(key, **params)


class ConfigError(ReconcileError):
    exit_code = 2


class InputError(ReconcileError):
    exit_code = 3


class DataError(InputError):
    exit_code = 4


class ReportError(ReconcileError):
    exit_code = 5


EXIT_OK = 0
EXIT_INTERRUPTED = 130
