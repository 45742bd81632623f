"""`reconcile match` through the command line: exit codes, JSON, masking, and a kill mid-run."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "samples"
runner = CliRunner()
TINY = [str(SAMPLES / "tiny_origin.csv"), str(SAMPLES / "tiny_dest.csv"), "--origin-key", "编号", "--dest-key", "序号"]


def test_json_summary_on_stdout(tmp_path):
    r = runner.invoke(app, ["match", *TINY, "--out", str(tmp_path / "r.db"), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["untraceable"] == 2 and data["traced"] == 4 and data["run_id"] == 1
    assert data["report"].endswith("r.db")


def test_table_summary_in_both_languages(tmp_path):
    r = runner.invoke(app, ["--lang", "zh", "match", *TINY, "--out", str(tmp_path / "a.db")])
    assert r.exit_code == 0
    assert "流向不明" in r.stdout and "报告" in r.stdout
    r = runner.invoke(app, ["--lang", "en", "match", *TINY, "--out", str(tmp_path / "b.db")])
    assert "Untraceable out-migrants" in r.stdout and "Report:" in r.stdout


@pytest.mark.parametrize("args,code,needle", [
    (["match", "missing.csv", str(SAMPLES / "tiny_dest.csv")], 3, "missing.csv"),
    (["match", *TINY, "--match-threshold", "0.2", "--review-threshold", "0.5"], 2, "0.2"),
    (["match", *TINY, "--map", "nonsense"], 2, "nonsense"),
    (["match", str(SAMPLES / "tiny_origin.csv"), str(SAMPLES / "tiny_dest.csv"), "--origin-key", "没有这列"], 2, "没有这列"),
])
def test_errors_exit_codes(tmp_path, args, code, needle):
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "r.db")])
    assert r.exit_code == code, r.output
    assert needle in r.output
    assert "Traceback" not in r.output


def test_out_that_is_not_a_report(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    r = runner.invoke(app, ["match", *TINY, "--out", str(other)])
    assert r.exit_code == 5 and "runs" in r.output


def test_no_full_id_on_the_terminal(tmp_path):
    r = runner.invoke(app, ["match", *TINY, "--out", str(tmp_path / "r.db")])
    assert "431028198803120035" not in r.output


def _write_registries(tmp: Path, persons: int) -> tuple[Path, Path]:
    import fixtures.generate as gm

    paths = gm.write(gm.generate(persons, seed=5), tmp)
    return Path(paths["origin"]), Path(paths["dest"])


@pytest.mark.slow
def test_kill_mid_run_leaves_earlier_runs_and_no_partial_run(tmp_path):
    """SIGKILL a real `reconcile match` while it writes its report: the earlier run is intact,
    no trace of the killed run remains, and the next run works."""
    origin, dest = _write_registries(tmp_path, 4000)
    out = tmp_path / "r.db"
    cmd = [sys.executable, "-c", "from cli import main; main()", "match", str(origin), str(dest),
           "--origin-key", "编号", "--dest-key", "序号", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    con = sqlite3.connect(out)
    before = con.execute("SELECT count(*) FROM records").fetchone()[0]
    con.close()
    killed_while_writing = False
    for attempt in range(3):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        journal = Path(str(out) + "-journal")
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if journal.exists():       # the run's transaction is open: kill it now
                time.sleep(0.05 * attempt)
                proc.send_signal(signal.SIGKILL)
                killed_while_writing = True
                break
            time.sleep(0.005)
        proc.wait()
        if killed_while_writing:
            break
    assert killed_while_writing, "never caught the run inside its transaction"
    con = sqlite3.connect(out)
    runs = con.execute("SELECT run_id, status FROM runs").fetchall()
    assert runs == [(1, "complete")]
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == before
    assert con.execute("SELECT count(DISTINCT run_id) FROM links").fetchone()[0] == 1
    con.close()
    r = subprocess.run(cmd, env=env, capture_output=True)
    assert r.returncode == 0
    con = sqlite3.connect(out)
    assert [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id")] == [1, 2]
    con.close()
