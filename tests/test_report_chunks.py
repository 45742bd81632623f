"""The `records` table is built and written in chunks (reconcile.report.ChunkedFrame): the rows
must be the same, in the same order, whatever the chunk size."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd

import reconcile.match as match_mod
from reconcile.match import MatchOptions, run_match
from reconcile.report import ChunkedFrame

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
KEYS = {"origin": {"key": "编号"}, "dest": {"key": "序号"}}


def _records(db: Path) -> pd.DataFrame:
    con = sqlite3.connect(db)
    try:
        return pd.read_sql("SELECT * FROM records ORDER BY rowid", con)
    finally:
        con.close()


def test_records_are_the_same_in_chunks_of_three(tmp_path, monkeypatch):
    whole, chunked = tmp_path / "whole.db", tmp_path / "chunked.db"
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", whole, MatchOptions(**KEYS))
    monkeypatch.setattr(match_mod, "RECORD_CHUNK", 3)
    run_match(SAMPLES / "tiny_origin.csv", SAMPLES / "tiny_dest.csv", chunked, MatchOptions(**KEYS))
    a, b = _records(whole), _records(chunked)
    assert len(a) > 6                                    # several chunks per side
    pd.testing.assert_frame_equal(a, b)
    assert a["raw_json"].str.contains("姓名").all()       # each row has its own raw line
    origin = b[b["source"] == "origin"]
    assert [json.loads(r)["编号"] for r in origin["raw_json"]] == origin["record_key"].tolist()


def test_chunked_frame_to_frame_concatenates_in_order():
    parts = [lambda: pd.DataFrame({"x": [1, 2]}), lambda: pd.DataFrame({"x": [3]})]
    assert ChunkedFrame(parts).to_frame()["x"].tolist() == [1, 2, 3]
    assert [len(c) for c in ChunkedFrame(parts).chunks()] == [2, 1]
