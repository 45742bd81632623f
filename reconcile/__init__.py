"""reconcile: reconcile Chinese person registries across regions.

Pipeline stages are plain functions over DataFrames:
load -> standardise -> block -> compare -> score -> decide -> cluster -> report.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _pkg_version

try:
    __version__ = _pkg_version("reconcile")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
