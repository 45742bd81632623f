"""Execution engines for `reconcile match`.

``embedded`` (the default) runs every stage in this process with numpy; ``spark`` runs
standardise, block, compare and score as Spark jobs (reconcile.engines.spark) and hands the
scored pairs to the same decision/outcome/report code. pyspark is an optional extra
(``pip install 'reconcile[spark]'``); nothing here imports it.
"""
from __future__ import annotations

import importlib.util
import os
import shutil

from reconcile.errors import ConfigError

__all__ = ["ENGINES", "check_engine_options", "spark_missing_reason", "require_spark"]

ENGINES: tuple[str, ...] = ("embedded", "spark")


def spark_missing_reason() -> str | None:
    """None when the Spark engine can run here, else the catalogue key saying what is missing."""
    if importlib.util.find_spec("pyspark") is None:
        return "engine.spark_missing"
    java_home = os.environ.get("JAVA_HOME", "")
    if not (shutil.which("java") or (java_home and os.path.exists(os.path.join(java_home, "bin", "java")))):
        return "engine.java_missing"
    return None


def require_spark() -> None:
    """Raise ConfigError (exit 2) telling how to install what the Spark engine needs."""
    reason = spark_missing_reason()
    if reason:
        raise ConfigError(reason)


def check_engine_options(engine: str, master: str | None, out_parquet: str | None) -> None:
    """Validate the engine options of `match` (before any heavy work)."""
    if engine not in ENGINES:
        raise ConfigError("engine.unknown", engine=engine)
    if engine != "spark" and out_parquet:
        raise ConfigError("engine.parquet_needs_spark")
    if engine != "spark" and master:
        raise ConfigError("engine.master_needs_spark")
    if engine == "spark":
        require_spark()     # before any heavy work: say how to install it
