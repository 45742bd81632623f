"""Independent pipeline steps on a second core: the two registries load and standardise at once,
and the worker that loaded the origin also blocks and compares it with itself (the first half of
its within-file linkage: reconcile.linkage.block_and_compare), which needs no model yet.

The worker is a new Python (``python -m reconcile.parallel``) that reads its job from its stdin and
writes the result to its stdout, both pickled: it behaves the same on Windows, where the users
are, as on Linux, and unlike multiprocessing's spawn it never runs the caller's main script again
(a script without an ``if __name__ == "__main__"`` guard would load the registries once more in
the worker, and again in every replacement). Only worth it for large files: starting a Python
with pandas costs about a second, and the loaded side comes back pickled (about a quarter of its
loading time).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

# both files at least this large (bytes) before the origin loads in a second process
PARALLEL_LOAD_MIN_BYTES = 16 << 20


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # Windows, macOS
        return os.cpu_count() or 1


def use_second_core(*paths: str | Path, min_bytes: int | None = None) -> bool:
    """Whether loading ``paths`` side by side pays: a second core, and every file at least
    ``min_bytes`` (default PARALLEL_LOAD_MIN_BYTES) large."""
    min_bytes = PARALLEL_LOAD_MIN_BYTES if min_bytes is None else min_bytes
    if _cores() < 2 or os.environ.get("RECONCILE_WORKERS", "") == "1":
        return False
    try:
        return all(Path(p).stat().st_size >= min_bytes for p in paths)
    except OSError:   # a missing file: the ordinary path reports it
        return False


def _load_and_block(name: str, path: str, options: dict, within: tuple | None):
    """The worker's job: load one side; with ``within`` = (comparators, passes, block cap), also
    block and compare it with itself. Returns (Side, Blocked or None)."""
    from reconcile.linkage import block_and_compare
    from reconcile.match import load_side

    side = load_side(name, path, options)
    if within is None or len(side.std) < 2:
        return side, None
    comps, passes, cap = within
    blocked = block_and_compare(side.std, None, comps, passes=passes, block_cap=cap)
    blocked.arrays = None   # the frame's own columns: not worth sending back
    return side, blocked


def load_sides(origin_path: str | Path, dest_path: str | Path, origin_opts: Mapping[str, Any],
               dest_opts: Mapping[str, Any], min_bytes: int | None = None,
               within: tuple[Sequence[Any], Sequence[Any], int] | None = None):
    """(origin Side, dest Side, origin's Blocked or None) as reconcile.match.load_side makes
    them; the origin in a second process while this one loads the destination, when both files
    are large. ``within`` = (comparators, passes, block cap): that process then also blocks and
    compares the origin with itself (reconcile.linkage.block_and_compare), for ``link(blocked=)``.

    Whatever goes wrong in the second process (a bad file, a worker that cannot start, a
    comparator that cannot be sent) is done again here, so the error a user sees is the one the
    ordinary path gives. A failure or Ctrl-C here ends the worker."""
    from reconcile.match import load_side

    if not use_second_core(origin_path, dest_path, min_bytes=min_bytes):
        return load_side("origin", origin_path, origin_opts), load_side("dest", dest_path, dest_opts), None
    from reconcile.i18n import get_lang

    # the worker starts afresh: it speaks the language this run speaks (rejected rows' reasons)
    worker = _start_worker((get_lang(), "origin", str(origin_path), dict(origin_opts), within))
    try:
        dest = load_side("dest", dest_path, dest_opts)
        done = _result(worker)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
    if done is None:   # redone in this process, which raises a bad file's error properly
        return load_side("origin", origin_path, origin_opts), dest, None
    origin, blocked = done
    return origin, dest, blocked


def _start_worker(job: tuple) -> subprocess.Popen | None:
    """A new Python running this module's ``_worker_main`` with ``job``; None if it cannot start.
    It imports what this process imports (the same sys.path)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        proc = subprocess.Popen([sys.executable, "-m", "reconcile.parallel"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdin is not None
        pickle.dump(job, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.close()
    except (OSError, pickle.PicklingError, AttributeError, TypeError):
        return None
    return proc


def _result(proc: subprocess.Popen | None):
    """The worker's (Side, Blocked or None), or None when it failed in any way."""
    if proc is None:
        return None
    try:
        ok, payload = pickle.load(proc.stdout)
    except Exception:   # noqa: BLE001 - the worker died or wrote nothing usable
        return None
    finally:
        proc.stdout.close()
        proc.wait()
    return payload if ok else None


def _worker_main() -> None:
    """``python -m reconcile.parallel``: one job from stdin, its result to stdout (pickled)."""
    from reconcile.i18n import set_lang

    out = sys.stdout.buffer
    sys.stdout = sys.stderr   # whatever a library prints must not corrupt the result
    try:
        lang, name, path, options, within = pickle.load(sys.stdin.buffer)
        set_lang(lang)
        result = (True, _load_and_block(name, path, options, within))
    except BaseException:   # noqa: BLE001 - the caller redoes the job and reports the error
        result = (False, None)
    pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


if __name__ == "__main__":
    _worker_main()
